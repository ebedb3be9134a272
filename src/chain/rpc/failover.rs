//! Failover over a chain's nodes ([module documentation](super)): the node in use, the
//! transport that moves a request to the next node when the one in use keeps failing, and
//! [`Nodes`], which gives readers either every node with failover or one node pinned.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{
        client::RpcClient,
        json_rpc::{RequestPacket, ResponsePacket},
    },
    transports::{BoxTransport, IntoBoxTransport, TransportError, TransportFut, http::Http},
};
use tower::{Layer, Service};

use super::{PRIMARY_RECHECK, RetryLayer, is_transient};

/// Which node requests go to, shared by the failover transport and [`Nodes::pinned`].
#[derive(Debug)]
struct Active {
    index: AtomicUsize,
    /// When requests left the first node (to try it again after [`PRIMARY_RECHECK`]).
    left_primary: Mutex<Option<Instant>>,
    /// The nodes' URLs without their keys, for log lines.
    shown: Vec<String>,
    /// Whether each node may take requests (one whose chain id start-up could not check
    /// is left out until it is checked).
    usable: Vec<AtomicBool>,
}

impl Active {
    fn new(shown: Vec<String>) -> Self {
        let usable = shown.iter().map(|_| AtomicBool::new(true)).collect();
        Self { index: AtomicUsize::new(0), left_primary: Mutex::new(None), shown, usable }
    }

    fn usable(&self, index: usize) -> bool {
        self.usable[index].load(Ordering::Relaxed)
    }

    /// Returns the first usable node after `index` (in order, wrapping), or `index`.
    fn after(&self, index: usize) -> usize {
        (1..self.shown.len()).map(|step| (index + step) % self.shown.len()).find(|i| self.usable(*i)).unwrap_or(index)
    }

    /// Returns the node to use now, moving back to the first one when it is time to try it.
    fn current(&self) -> usize {
        let mut left = self.left_primary.lock().expect("node lock");
        if left.is_some_and(|at| at.elapsed() >= PRIMARY_RECHECK) && self.usable(0) {
            *left = None;
            self.index.store(0, Ordering::Relaxed);
            tracing::info!(node = %self.shown[0], "trying the first RPC node again");
        }
        self.index.load(Ordering::Relaxed)
    }

    /// Moves requests from node `failed` to the next one (unless another caller already did).
    fn advance(&self, failed: usize, error: &TransportError) {
        let next = self.after(failed);
        if next != failed && self.move_from(failed, next) {
            metrics::counter!("tmai_rpc_failovers_total").increment(1);
            tracing::warn!(failed = %self.shown[failed], next = %self.shown[next], error = %crate::config::scrubbed_urls(&error.to_string()), "RPC node keeps failing; switching nodes");
        }
    }

    /// Moves requests from node `from` to `to` when `from` is still the node in use;
    /// returns whether it did.
    fn move_from(&self, from: usize, to: usize) -> bool {
        let mut left = self.left_primary.lock().expect("node lock");
        if self.index.compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return false;
        }
        if to == 0 {
            *left = None;
        } else if left.is_none() {
            *left = Some(Instant::now());
        }
        true
    }
}

/// A transport over several nodes: each request goes to the node in use and, when it fails
/// transiently there (after that node's retries), to the next ([module documentation](super)).
#[derive(Debug, Clone)]
pub struct Failover {
    nodes: Arc<[BoxTransport]>,
    active: Arc<Active>,
}

impl Service<RequestPacket> for Failover {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let (nodes, active) = (self.nodes.clone(), self.active.clone());
        Box::pin(async move {
            let mut index = active.current();
            let mut tries = 0;
            loop {
                tries += 1;
                let mut node = nodes[index].clone();
                match node.call(request.clone()).await {
                    Err(error) if is_transient(&error) => {
                        active.advance(index, &error);
                        let next = active.after(index);
                        if next == index || tries >= nodes.len() {
                            return Err(error);
                        }
                        index = next;
                    }
                    other => return other,
                }
            }
        })
    }
}

/// The chain's nodes: a provider over all of them with failover (for every reader that
/// needs an answer, not one node's view) and each node alone for pinned readers.
#[derive(Debug, Clone)]
pub struct Nodes {
    /// Every node, with retry and failover.
    pub provider: DynProvider,
    single: Arc<[DynProvider]>,
    active: Arc<Active>,
}

impl Nodes {
    /// Returns the nodes at `urls` (the first is the primary), each behind the retry layer;
    /// `shown` are the same URLs without their keys. The URLs must be parsed already.
    pub fn new(urls: Vec<url::Url>, shown: Vec<String>) -> Self {
        assert!(!urls.is_empty() && urls.len() == shown.len(), "at least one node, each with its shown URL");
        let is_local = urls.iter().all(|u| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "::1")));
        let transports: Vec<BoxTransport> = urls.into_iter().map(|url| RetryLayer::default().layer(Http::new(url)).into_box_transport()).collect();
        let single = transports.iter().map(|t| ProviderBuilder::new().connect_client(RpcClient::new(t.clone(), is_local)).erased()).collect();
        let active = Arc::new(Active::new(shown));
        let failover = Failover { nodes: transports.into(), active: active.clone() };
        let provider = ProviderBuilder::new().connect_client(RpcClient::new(failover, is_local)).erased();
        Self { provider, single, active }
    }

    /// Returns the nodes of a single provider (tests and benchmarks that build their own).
    pub fn single(provider: DynProvider) -> Self {
        let active = Arc::new(Active::new(vec!["(node)".into()]));
        Self { provider: provider.clone(), single: vec![provider].into(), active }
    }

    /// Returns the node in use now (its index and a provider reading that node only): a
    /// reader that must see one node's chain from start to end of a unit of work holds it
    /// for that unit.
    pub fn pinned(&self) -> (usize, DynProvider) {
        let index = self.active.current();
        (index, self.single[index].clone())
    }

    /// Reports that a unit of work on node `index` failed transiently: the next unit starts
    /// on the next node (when there is one).
    pub fn failed(&self, index: usize, error: &TransportError) {
        if self.single.len() > 1 && is_transient(error) {
            self.active.advance(index, error);
        }
    }

    /// Returns node `index` alone (with its retry layer, without failover).
    pub fn node(&self, index: usize) -> DynProvider {
        self.single[index].clone()
    }

    /// Takes node `index` out of the rotation (`false`) or brings it back (`true`).
    pub fn set_usable(&self, index: usize, usable: bool) {
        self.active.usable[index].store(usable, Ordering::Relaxed);
        if !usable {
            self.active.move_from(index, self.active.after(index));
        }
    }

    /// Returns how many nodes there are.
    pub fn len(&self) -> usize {
        self.single.len()
    }

    /// Returns whether there are no nodes (never: [`Self::new`] needs one).
    pub fn is_empty(&self) -> bool {
        self.single.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> TransportError {
        alloy::transports::TransportErrorKind::custom_str("connection refused")
    }

    #[test]
    fn requests_move_to_the_next_usable_node_in_order_and_back_to_the_first_after_the_recheck() {
        let active = Active::new(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(active.current(), 0);
        // The next node after the last wraps to the first; a node taken out is skipped.
        assert_eq!((active.after(0), active.after(2)), (1, 0));
        active.usable[1].store(false, Ordering::Relaxed);
        assert_eq!(active.after(0), 2);
        active.advance(0, &refused());
        assert_eq!(active.current(), 2);
        // A second caller that saw the same node fail does not move requests again.
        active.advance(0, &refused());
        assert_eq!(active.current(), 2);
        // Before the recheck the fallback stays in use; after it, the first node is tried again.
        let left = active.left_primary.lock().unwrap().expect("left the first node");
        *active.left_primary.lock().unwrap() = Some(left - PRIMARY_RECHECK);
        assert_eq!(active.current(), 0);
        assert!(active.left_primary.lock().unwrap().is_none());
    }

    #[test]
    fn the_first_node_is_not_rechecked_while_it_is_out_of_the_rotation() {
        let active = Active::new(vec!["a".into(), "b".into()]);
        assert!(active.move_from(0, 1));
        active.usable[0].store(false, Ordering::Relaxed);
        *active.left_primary.lock().unwrap() = Some(Instant::now() - PRIMARY_RECHECK);
        assert_eq!(active.current(), 1);
        // With one usable node there is nowhere to move.
        assert_eq!(active.after(1), 1);
        assert!(!active.move_from(0, 1), "requests already left node 0");
    }
}
