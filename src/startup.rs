//! Building the service from its configuration, refusing to start on anything that would
//! make it silently wrong: a bad catalog, a deployment for another chain, an unreachable
//! RPC or one on the wrong chain, no checkout contract, a quote key the contract does not
//! trust.

use std::{str::FromStr, sync::Arc, time::Duration};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder, WsConnect},
    signers::local::PrivateKeySigner,
    transports::TransportError,
};
use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use tokio_util::sync::CancellationToken;

use crate::http::ops::OpsGate;
use crate::watcher::{Watcher, WatcherConfig};
use crate::{
    billing::{plans::Catalog, quotes::QuoteIssuer},
    chain::{
        bindings::{MembershipBadge, SubscriptionCheckout},
        deployment::Deployment,
        minter::{Minter, MinterConfig},
        rpc,
    },
    config::Settings,
    http::AppState,
    store::Db,
};

/// The parts of a running service.
#[derive(Debug)]
pub struct Service {
    /// The configuration it was built from.
    pub settings: Settings,
    /// The deployment it serves.
    pub deployment: Deployment,
    /// The plans.
    pub catalog: Arc<Catalog>,
    /// The database.
    pub db: Db,
    /// The chain: every node, with retry and failover.
    pub provider: DynProvider,
    /// The chain's nodes one by one, for readers that must see one node's view (the
    /// watcher's pass).
    pub nodes: rpc::Nodes,
    /// The quote signer, when configured.
    pub quote_signer: Option<PrivateKeySigner>,
    /// The badge issuer, when configured.
    pub issuer: Option<PrivateKeySigner>,
    /// The renewer that charges renewal mandates, when configured.
    pub renewer: Option<PrivateKeySigner>,
    /// The clock every time-based decision reads.
    pub clock: crate::clock::Clock,
    /// Sign-in and membership tokens, when the `[auth]` table configures them.
    pub auth: Option<crate::auth::AuthService>,
    /// The market rates of USD-priced tokens, checked against the chain at start-up.
    pub rates: Arc<crate::billing::rates::RateBook>,
    /// The one-click buy of a missing token (`[pricing.swap]`), when configured.
    pub swaps: Option<Arc<crate::billing::swaps::SwapDesk>>,
}

/// What start-up shares with its caller while it waits for the chain: the token that stops
/// the wait (Ctrl-C) and, when the operations listener is served already, its gate, whose
/// `/readyz` says what start-up waits for.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// Fires to stop waiting.
    pub cancel: CancellationToken,
    /// The operations listener's gate, when it is served already.
    pub gate: Option<OpsGate>,
}

/// The operations listener, served from before start-up ([`OpsGate`]): `/readyz` answers
/// 503 with what start-up waits for until [`Service::run_until_stopped`] opens the gate.
#[derive(Debug)]
pub struct OpsListener {
    gate: OpsGate,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl OpsListener {
    /// Serves the operations gate on `listener` until `cancel` fires.
    pub fn serve(listener: tokio::net::TcpListener, cancel: CancellationToken) -> Self {
        let gate = OpsGate::default();
        let serving = tokio::spawn(crate::http::serve(listener, gate.router(), cancel));
        Self { gate, serving }
    }

    /// Returns the gate, for start-up to say what it waits for.
    pub fn gate(&self) -> OpsGate {
        self.gate.clone()
    }
}

/// The first wait between two start-up reads of an RPC endpoint that does not answer; it
/// doubles up to [`STARTUP_BACKOFF_CAP`] (each read has already been retried by the
/// transport, [`rpc::RETRIES`] times).
const STARTUP_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest wait between two start-up reads.
const STARTUP_BACKOFF_CAP: Duration = Duration::from_secs(30);

impl Startup {
    /// Runs `read` until it succeeds or fails in a way waiting cannot cure. A transient
    /// failure (the node is down, cuts connections, answers 5xx: [`rpc::is_transient`]) is
    /// logged with what start-up waits for and retried after a capped exponential backoff
    /// with jitter, and `/readyz` says what it waits for meanwhile; any other error (a
    /// revert, a refused key) stops start-up at once, as does `cancel`.
    async fn chain_read<T, F, Fut>(&self, what: &str, shown: &str, url: &str, mut read: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, alloy::contract::Error>>,
    {
        let mut attempt = 0u32;
        loop {
            let error = match read().await {
                Ok(value) => {
                    if attempt > 0 {
                        tracing::info!(waited_for = what, rpc = %shown, attempts = attempt + 1, "the RPC endpoint answers; start-up goes on");
                    }
                    return Ok(value);
                }
                Err(alloy::contract::Error::TransportError(e)) if rpc::is_transient(&e) => e,
                // The transport's error names the URL, key and all.
                Err(e) => bail!("{what} from the RPC endpoint {shown}: {}", crate::config::scrubbed(&format!("{e:#}"), url)),
            };
            attempt += 1;
            let wait = rpc::backoff(attempt, STARTUP_BACKOFF_BASE, STARTUP_BACKOFF_CAP);
            let error = crate::config::scrubbed_urls(&crate::config::scrubbed(&format!("{error:#}"), url));
            if let Some(gate) = &self.gate {
                gate.waiting_for(format!("{what} from the RPC endpoint {shown} ({attempt} attempts so far; last error: {error})"));
            }
            tracing::warn!(
                waiting_for = what,
                rpc = %shown,
                attempt,
                retry_in_ms = wait.as_millis() as u64,
                %error,
                "waiting for the RPC endpoint to answer (start-up goes on when it does)"
            );
            tokio::select! {
                _ = self.cancel.cancelled() => bail!("stopped while waiting for {what} from the RPC endpoint {shown}"),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Returns the chain's nodes from `chain.rpc_url` and `chain.fallback_rpc_urls`, or the
/// first that is not a URL, named by its field.
/// One configured node: its field, its URL without the key (for messages), its URL.
#[derive(Debug, Clone)]
struct NamedNode {
    field: String,
    shown: String,
    url: String,
}

fn nodes(chain: &crate::config::ChainSettings) -> anyhow::Result<(rpc::Nodes, Vec<NamedNode>)> {
    let mut named = vec![("chain.rpc_url".to_string(), chain.rpc_url.trim().to_string())];
    named.extend(chain.fallback_rpc_urls.iter().enumerate().map(|(i, u)| (format!("chain.fallback_rpc_urls[{i}]"), u.trim().to_string())));
    let mut urls = Vec::new();
    let mut nodes = Vec::new();
    for (field, url) in named {
        let shown = crate::config::redacted(&url);
        urls.push(url.parse::<url::Url>().with_context(|| format!("{field} {shown} is not a URL"))?);
        nodes.push(NamedNode { field, shown, url });
    }
    Ok((rpc::Nodes::new(urls, nodes.iter().map(|n| n.shown.clone()).collect()), nodes))
}

impl Service {
    /// Checks the configuration against the deployment, the chain and the database.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, &Startup::default()).await
    }

    /// [`Self::build`], waiting (and saying so in the log and on `startup.gate`'s `/readyz`)
    /// while the RPC endpoint does not answer; configuration errors still stop it at once,
    /// naming the field, and `startup.cancel` stops the wait.
    pub async fn build_with(settings: Settings, startup: &Startup) -> anyhow::Result<Self> {
        let deployment = Deployment::read(&settings.deployment_file)?;
        let catalog = Arc::new(Catalog::new(&settings.plans, &deployment.tokens)?);
        if deployment.chain_id != settings.chain.chain_id {
            bail!("{} is a deployment on chain {}, but chain.chain_id is {}", settings.deployment_file.display(), deployment.chain_id, settings.chain.chain_id);
        }
        let (nodes, named) = nodes(&settings.chain)?;
        let provider = nodes.provider.clone();
        let (shown, url) = (named[0].shown.clone(), named[0].url.clone());
        let wanted = settings.chain.chain_id;
        let reported = startup.chain_read("the chain id", &shown, &url, || async { Ok(provider.get_chain_id().await?) }).await?;
        if reported != wanted {
            bail!("the RPC endpoint {shown} reports chain id {reported}, but chain.chain_id is {wanted}");
        }
        check_each_node(&nodes, &named, wanted, &startup.cancel).await?;
        let code = startup.chain_read("the checkout contract's code", &shown, &url, || async { Ok(provider.get_code_at(deployment.checkout).await?) }).await?;
        if code.is_empty() {
            bail!("no contract at the checkout address {} on chain {reported}; is the deployment file for this chain?", deployment.checkout);
        }
        let quote_signer = match &settings.chain.quote_signer_key {
            Some(key) => {
                let signer =
                    PrivateKeySigner::from_str(key.expose_secret().trim()).map_err(|_| anyhow::anyhow!("chain.quote_signer_key is not a valid private key"))?;
                let checkout = SubscriptionCheckout::new(deployment.checkout, &provider);
                let trusted = startup.chain_read("the checkout's quote signer", &shown, &url, || async { checkout.quoteSigner().call().await }).await?;
                if trusted != signer.address() {
                    bail!("chain.quote_signer_key belongs to {}, but the checkout trusts {trusted}", signer.address());
                }
                Some(signer)
            }
            None => None,
        };
        let issuer = match &settings.chain.issuer_key {
            Some(key) => {
                let signer =
                    PrivateKeySigner::from_str(key.expose_secret().trim()).map_err(|_| anyhow::anyhow!("chain.issuer_key is not a valid private key"))?;
                let badge = MembershipBadge::new(deployment.badge, &provider);
                let role = startup.chain_read("the badge's ISSUER_ROLE", &shown, &url, || async { badge.ISSUER_ROLE().call().await }).await?;
                if !startup.chain_read("the issuer's role on the badge", &shown, &url, || async { badge.hasRole(role, signer.address()).call().await }).await? {
                    bail!("chain.issuer_key belongs to {}, which does not hold ISSUER_ROLE on the badge {}", signer.address(), deployment.badge);
                }
                Some(signer)
            }
            None => None,
        };
        let renewer = match &settings.chain.renewer_key {
            Some(key) => {
                let signer =
                    PrivateKeySigner::from_str(key.expose_secret().trim()).map_err(|_| anyhow::anyhow!("chain.renewer_key is not a valid private key"))?;
                if issuer.as_ref().is_some_and(|i| i.address() == signer.address()) {
                    bail!("chain.renewer_key is the issuer's key: the renewer needs its own (the minter tracks the issuer's nonces)");
                }
                let checkout = SubscriptionCheckout::new(deployment.checkout, &provider);
                let trusted = startup.chain_read("the checkout's renewer", &shown, &url, || async { checkout.renewer().call().await }).await?;
                if trusted != signer.address() {
                    bail!("chain.renewer_key belongs to {}, but the checkout's renewer is {trusted} (the owner sets it with setRenewer)", signer.address());
                }
                Some(signer)
            }
            None => None,
        };
        let db =
            Db::connect(&settings.database_url).await.with_context(|| format!("opening the database {}", crate::config::redacted(&settings.database_url)))?;
        // Order ids come from the database's sequence; a database that is behind the chain
        // (restored from an old backup, or a new one against a used contract) would sign
        // quotes for ids already paid, which the contract refuses.
        let next = crate::store::orders::id_after_last(&db).await?;
        let checkout = SubscriptionCheckout::new(deployment.checkout, &provider);
        let next_paid = checkout.isOrderPaid(alloy::primitives::U256::from(next as u64));
        if startup.chain_read("whether the next order id is paid", &shown, &url, || async { next_paid.call().await }).await? {
            bail!(
                "the database is behind the checkout contract: order {next}, the next order id, is already paid on chain {}; \
                 use the database that issued those orders (or restore its latest backup)",
                deployment.chain_id
            );
        }
        let clock = crate::clock::Clock::system();
        let auth = crate::auth::AuthService::from_settings(&settings.auth)?;
        let rates = crate::billing::rates::RateBook::connect(&settings.pricing, &deployment.tokens, provider.clone(), clock.clone()).await?;
        rates.refresh().await;
        let rates = Arc::new(rates);
        let swaps = match &settings.pricing.swap {
            Some(swap) => {
                let desk =
                    crate::billing::swaps::SwapDesk::new(swap, &deployment, provider.clone()).map_err(|(field, why)| anyhow::anyhow!("{field}: {why}"))?;
                for (field, address) in [("pricing.swap.router", swap.router), ("pricing.swap.quoter", swap.quoter)] {
                    if provider.get_code_at(address).await.with_context(|| format!("reading {field}"))?.is_empty() {
                        bail!("{field}: no contract at {address} on chain {}", deployment.chain_id);
                    }
                }
                Some(Arc::new(desk))
            }
            None => None,
        };
        Ok(Self { settings, deployment, catalog, db, provider, nodes, quote_signer, issuer, renewer, clock, rates, auth, swaps })
    }

    /// Returns the watcher for this service.
    pub fn watcher(&self) -> Watcher {
        Watcher::new(
            self.db.clone(),
            self.provider.clone(),
            self.catalog.clone(),
            WatcherConfig {
                chain_id: self.deployment.chain_id,
                checkout: self.deployment.checkout,
                confirmations: self.settings.chain.confirmations(),
                max_block_range: self.settings.chain.max_block_range,
                start_block: self.deployment.deploy_block,
                poll_interval: Duration::from_millis(self.settings.chain.poll_interval_ms),
            },
        )
        .with_clock(self.clock.clone())
        .with_nodes(self.nodes.clone())
        .with_receipt_base(self.settings.http.public_url())
    }

    /// Returns the quote issuer, when a quote signer is configured.
    pub fn quotes(&self) -> Option<QuoteIssuer> {
        self.quote_signer.clone().map(|signer| {
            QuoteIssuer::new(signer, self.deployment.chain_id, self.deployment.checkout, self.settings.chain.quote_ttl_secs).with_rates(self.rates.clone())
        })
    }

    /// Returns the renewer, when a renewer key (and a quote signer, which stores its orders)
    /// is configured.
    pub fn renewer(&self) -> Option<crate::billing::renewals::Renewer> {
        let (renewer, quotes) = (self.renewer.clone()?, self.quotes()?);
        Some(crate::billing::renewals::Renewer::new(
            self.db.clone(),
            self.provider.clone(),
            alloy::network::EthereumWallet::from(renewer),
            self.deployment.chain_id,
            self.deployment.checkout,
            self.catalog.clone(),
            quotes,
            self.settings.renewals.clone(),
            self.clock.clone(),
        ))
    }

    /// Returns the HTTP state for this service.
    pub fn app_state(&self, cancel: CancellationToken) -> AppState {
        let chain = &self.settings.chain;
        let quotes = self.quotes();
        // No fallback to chain.rpc_url for wallets: provider URLs carry API keys.
        let http = self.settings.http.clone();
        AppState::new(self.db.clone(), self.catalog.clone(), self.deployment.clone(), self.provider.clone(), chain.confirmations(), http, cancel)
            .with_quotes(quotes)
            .with_clock(self.clock.clone())
            .with_webhooks(self.settings.webhooks.clone())
            .with_card(self.settings.card.clone())
            .with_auth(self.auth.clone())
            .with_merchant(self.settings.merchant.clone())
            .with_reminders(self.settings.reminders.clone())
            .with_renewals(self.renewer.as_ref().map(|_| self.settings.renewals.clone()))
            .with_rates(self.rates.clone())
            .with_swaps(self.swaps.clone())
    }

    /// Runs the public HTTP server on `listener` and the operations routes on `ops` (served
    /// since before start-up), the
    /// watcher, the minter (when an issuer key is set), the webhook deliverer and the pruning
    /// of unpaid checkouts (each leader-elected on PostgreSQL), and the reminder pass (on
    /// every instance) until
    /// `cancel` fires; in-flight requests finish first.
    pub async fn run_until_stopped(&self, listener: tokio::net::TcpListener, ops: OpsListener, cancel: CancellationToken) -> anyhow::Result<()> {
        if self.settings.chain.follow_chain_time {
            // A local chain moved ahead moves the service's clock with it (chain id checked
            // by the configuration).
            tokio::spawn(crate::chain::chain_time::follow_chain_time(self.provider.clone(), self.clock.clone(), Duration::from_millis(500), cancel.clone()));
        }
        let state = self.app_state(cancel.clone());
        let public = crate::http::serve(listener, crate::http::router(state.clone()), cancel.clone());
        ops.gate.open(crate::http::ops_router(state));
        let operations = async { ops.serving.await.unwrap_or_else(|e| Err(std::io::Error::other(e))) };
        let server = async {
            let (public, operations) = tokio::join!(public, operations);
            public.context("public HTTP listener")?;
            operations.context("operations HTTP listener")
        };
        let watcher = self.watcher();
        let retry = Duration::from_secs(1);
        // Each leadership term subscribes to new heads afresh.
        let watching = crate::store::leader::run_as_leader(&self.db, crate::store::leader::WATCHER_LOCK, retry, cancel.clone(), |token| {
            let watcher = watcher.clone();
            async move { watcher.run(token, self.heads().await).await }
        });
        let minter = self.minter();
        let minting = async {
            let Some(minter) = minter else {
                tracing::warn!("chain.issuer_key is not set: badges are not minted");
                return Ok(());
            };
            crate::store::leader::run_as_leader(&self.db, crate::store::leader::MINTER_LOCK, retry, cancel.clone(), |token| {
                let minter = minter.clone();
                async move { minter.run(token, self.heads().await).await }
            })
            .await
        };
        let renewer = self.renewer();
        let renewing = async {
            let Some(renewer) = renewer else {
                tracing::info!("chain.renewer_key is not set: automatic renewal is off");
                return Ok(());
            };
            crate::store::leader::run_as_leader(&self.db, crate::store::leader::RENEWER_LOCK, retry, cancel.clone(), |token| {
                let renewer = renewer.clone();
                async move { renewer.run(token).await }
            })
            .await
        };
        let deliverer = self.deliverer()?;
        let delivering = crate::store::leader::run_as_leader(&self.db, crate::store::leader::WEBHOOK_LOCK, retry, cancel.clone(), |token| {
            let deliverer = deliverer.clone();
            async move { deliverer.run(token).await }
        });
        // Reminders run on every instance: each is exactly once by its key, not by leadership.
        let reminders = self.reminders();
        let reminding = reminders.run(cancel.clone());
        // Unpaid checkouts past their retention are deleted by one instance at a time.
        let retention = self.retention();
        let pruning = crate::store::leader::run_as_leader(&self.db, crate::store::leader::RETENTION_LOCK, retry, cancel.clone(), |token| {
            let retention = retention.clone();
            async move { retention.run(token).await }
        });
        let server = async {
            let result = server.await;
            cancel.cancel();
            result
        };
        // One task keeps the rates fresh for every checkout (at most once per block).
        let pricing = self.rates.clone().run(cancel.clone());
        let (s, w, m, r, d, (), (), p) = tokio::join!(server, watching, minting, renewing, delivering, reminding, pricing, pruning);
        s?;
        w?;
        m?;
        r?;
        d?;
        p?;
        self.db.close().await;
        Ok(())
    }

    /// Returns the webhook delivery worker.
    pub fn deliverer(&self) -> anyhow::Result<crate::notify::delivery::Deliverer> {
        crate::notify::delivery::Deliverer::new(self.db.clone(), self.settings.webhooks.clone(), self.clock.clone())
    }

    /// Returns the reminder pass.
    pub fn reminders(&self) -> crate::billing::reminders::Reminders {
        crate::billing::reminders::Reminders::new(self.db.clone(), self.catalog.clone(), self.settings.reminders.clone(), self.clock.clone())
            .with_renewal_grace(u64::from(self.settings.renewals.grace_days) * 86_400)
    }

    /// Returns the pruning pass of unpaid checkouts.
    pub fn retention(&self) -> crate::billing::retention::Retention {
        crate::billing::retention::Retention::new(self.db.clone(), self.settings.retention.clone(), self.clock.clone())
    }

    /// Returns the badge minter, when an issuer key is configured.
    pub fn minter(&self) -> Option<Minter> {
        let issuer = self.issuer.clone()?;
        let m = &self.settings.minter;
        let mut config = MinterConfig::new(self.deployment.chain_id, self.deployment.badge, self.settings.chain.confirmations());
        config.max_batch_size = m.max_batch_size;
        config.max_batch_gas = m.max_batch_gas;
        config.max_in_flight = m.max_in_flight;
        config.fee_cap = m.fee_cap_wei();
        config.stuck_after = Duration::from_secs(m.stuck_after_secs);
        config.retry_base = Duration::from_secs(m.retry_base_secs);
        config.retry_max = Duration::from_secs(m.retry_max_secs);
        config.poll_interval = Duration::from_millis(self.settings.chain.poll_interval_ms);
        Some(Minter::new(self.db.clone(), self.provider.clone(), alloy::network::EthereumWallet::from(issuer), config).with_clock(self.clock.clone()))
    }

    /// Subscribes to new heads over the websocket endpoint, when one is configured; the
    /// watcher polls without it.
    pub async fn heads(&self) -> Option<mpsc::Receiver<u64>> {
        let url = self.settings.chain.ws_url.clone()?;
        let ws = match ProviderBuilder::new().connect_ws(WsConnect::new(url.clone())).await {
            Ok(ws) => ws,
            Err(error) => {
                tracing::warn!(%error, url = %crate::config::redacted(&url), "no websocket; polling for new blocks");
                return None;
            }
        };
        let subscription = match ws.subscribe_blocks().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "block subscription refused; polling");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _keep = ws;
            let mut stream = subscription.into_stream();
            use futures::StreamExt;
            while let Some(header) = stream.next().await {
                if tx.send(header.number).await.is_err() {
                    return;
                }
            }
            tracing::warn!("block subscription ended; polling");
        });
        Some(rx)
    }
}

/// Checks that each node reports `chain_id` (a wrong one stops start-up, naming its field).
/// A node that does not answer now is left out of the rotation until a background check
/// (until `cancel`) finds it on the right chain; start-up does not wait for it, since one
/// node answering is enough to start.
async fn check_each_node(nodes: &rpc::Nodes, named: &[NamedNode], chain_id: u64, cancel: &CancellationToken) -> anyhow::Result<()> {
    if nodes.len() < 2 {
        return Ok(());
    }
    for (index, NamedNode { field, shown, url }) in named.iter().enumerate() {
        let node = nodes.node(index);
        match tokio::time::timeout(Duration::from_secs(10), node.get_chain_id()).await {
            Ok(Ok(id)) if id == chain_id => {}
            Ok(Ok(id)) => bail!("{field}: the RPC endpoint {shown} reports chain id {id}, but chain.chain_id is {chain_id}"),
            failed => {
                let error = match failed {
                    Ok(Err(e)) => crate::config::scrubbed(&format!("{e:#}"), url),
                    _ => "no answer in 10 s".to_string(),
                };
                tracing::warn!(field = %field, rpc = %shown, %error, "an RPC node does not answer; it is used once it reports the right chain id");
                nodes.set_usable(index, false);
                tokio::spawn(check_later(nodes.clone(), index, field.clone(), shown.clone(), chain_id, cancel.clone()));
            }
        }
    }
    Ok(())
}

/// Reads node `index`'s chain id until it answers: the right one brings the node into the
/// rotation, a wrong one keeps it out with an error log.
async fn check_later(nodes: rpc::Nodes, index: usize, field: String, shown: String, chain_id: u64, cancel: CancellationToken) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = rpc::backoff(attempt, STARTUP_BACKOFF_BASE, STARTUP_BACKOFF_CAP);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let answer: Result<u64, TransportError> = nodes.node(index).get_chain_id().await;
        match answer {
            Ok(id) if id == chain_id => {
                tracing::info!(field = %field, rpc = %shown, "the RPC node answers on the right chain; it joins the rotation");
                nodes.set_usable(index, true);
                return;
            }
            Ok(id) => {
                tracing::error!(field = %field, rpc = %shown, reported = id, chain_id, "the RPC node is on another chain; it is never used");
                return;
            }
            Err(_) => {}
        }
    }
}
