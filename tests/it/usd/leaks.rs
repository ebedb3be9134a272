//! No provider text in anonymous answers (issue 26, §3): a rate refused because the node
//! resets connections is answered with a fixed code and sentence; the transport's error,
//! which names the RPC URL and its key, goes to the log only, with the key redacted.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::QuoteIssuer,
        rates::{RateBook, RefusalCode},
    },
    chain::devnet,
    clock::Clock,
    config::{PricingSettings, RateSourceConfig},
};
use tracing::instrument::WithSubscriber;

use super::{Api, QUOTE_TTL, feed, usd_plan};
use crate::{
    db::{DbKind, fresh_db, on_both_databases},
    helpers::spawn_chain,
    markets::deploy_feed,
    rpc_proxy::{KEY, RpcProxy},
};

/// A log sink for one future's events.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn a_node_that_resets_connections_leaks_no_url_to_callers(kind: DbKind) {
    // Arrange: the stablecoin priced with a peg feed, read through a proxy whose URL holds a
    // key; one good reading first.
    let chain = spawn_chain().await;
    let test_db = fresh_db(kind).await;
    let d = chain.deployment.clone();
    let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let peg = deploy_feed(&rpc, 8, 100_000_000).await;
    let usd = d.tokens.iter().find(|t| t.symbol == "USD").unwrap().clone();
    let mut pricing = PricingSettings::default();
    pricing.tokens.insert("USD".into(), RateSourceConfig::Stable { peg_feed: Some(feed(peg, 86_400)), peg_tolerance_bps: 100 });
    let proxy = RpcProxy::start(chain.anvil.endpoint());
    let book = Arc::new(RateBook::connect(&pricing, &d.tokens, proxy.provider(), Clock::system()).await.unwrap());
    book.refresh().await;
    assert!(book.current(usd.address).is_ok(), "{:?}", book.current(usd.address));
    let host = proxy.url.trim_start_matches("http://").split('/').next().unwrap().to_string();

    // Act: the node now resets every eth_call's connection.
    proxy.reset_calls(true);
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).finish();
    book.refresh().with_subscriber(subscriber).await;

    // Assert: a fixed code and sentence; the detail is scrubbed, and so is the log line.
    let refused = book.current(usd.address).unwrap_err();
    assert_eq!(refused.code, RefusalCode::ChainUnreadable);
    assert_eq!(refused.reason, RefusalCode::ChainUnreadable.message());
    assert!(!refused.to_string().contains(&host), "{refused}");
    assert!(refused.detail.contains("/v3/***") && !refused.detail.contains(KEY), "{}", refused.detail);
    let log = logs.text();
    assert!(log.contains("rate refused") && log.contains("chain_unreadable"), "{log}");
    assert!(log.contains("/v3/***") && !log.contains(KEY), "the log line names the node, scrubbed: {log}");

    // Assert: nothing of the URL in the anonymous answers (plans, checkout), nor in /readyz.
    let catalog = Arc::new(Catalog::new(&[usd_plan()], &d.tokens).unwrap());
    let issuer = QuoteIssuer::new(devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), d.chain_id, d.checkout, QUOTE_TTL).with_rates(book.clone());
    let api = Api::spawn(&test_db.db, catalog, d.clone(), rpc.clone(), issuer, book.clone()).await;
    let plans: Value = api.client.get(format!("{}/v1/plans", api.base)).send().await.unwrap().json().await.unwrap();
    let price = plans["plans"][0]["prices"].as_array().unwrap().iter().find(|p| p["token"] == "USD").unwrap().clone();
    assert_eq!((price["reason_code"].as_str(), price["reason"].as_str()), (Some("chain_unreadable"), Some(RefusalCode::ChainUnreadable.message())));
    let (status, checkout) = api.checkout("USD", chain.anvil.addresses()[3]).await;
    assert_eq!((status, checkout["error"]["code"].as_str()), (503, Some("rate_unavailable")), "{checkout}");
    let ready: Value = api.client.get(format!("{}/readyz", api.ops)).send().await.unwrap().json().await.unwrap();
    for answer in [&plans, &checkout, &ready] {
        let text = answer.to_string();
        assert!(!text.contains(KEY) && !text.contains(&host) && !text.contains("/v3/"), "{text}");
    }
}
on_both_databases!(a_node_that_resets_connections_leaks_no_url_to_callers);
