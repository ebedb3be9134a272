//! A whole payment path on a real anvil and a real database: quotes issued by the
//! service's code, paid by test wallets, watched by the watcher.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::TransactionReceipt,
};
use sqlx::Row;
use tmai_pay::watcher::{Watcher, WatcherConfig};
use tmai_pay::{
    billing::{
        plans::Catalog,
        quotes::{IssuedQuote, QuoteIssuer, QuoteRequest},
    },
    chain::{
        bindings::{SubscriptionCheckout, TestToken},
        devnet,
    },
    config::PlanConfig,
    store::outbox,
};

use crate::{
    db::{DbKind, TestDb, fresh_db},
    helpers::{TestChain, spawn_chain},
};

pub(crate) const CONFIRMATIONS: u64 = 3;

/// The test catalog: the four tiers monthly, Premium yearly; TMAI prices are discounted;
/// each plan's processor price id is `price_<id>`.
pub(crate) fn plan_configs() -> Vec<PlanConfig> {
    let plan = |id: u32, name: &str, tier: u8, period: &str, tmai: &str, usd: &str, cents: u64| PlanConfig {
        id,
        name: name.into(),
        tier,
        period: period.into(),
        prices: [("TMAI".to_string(), tmai.to_string()), ("USD".to_string(), usd.to_string())].into(),
        card_price_cents: Some(cents),
        card_price_id: Some(format!("price_{id}")),
        trial_days: 7,
        tmai_discount_percent: None,
        price_usd: None,
    };
    vec![
        plan(1, "Basic monthly", 1, "monthly", "80", "9", 900),
        plan(2, "Advanced monthly", 2, "monthly", "160", "19", 1900),
        plan(3, "Premium monthly", 3, "monthly", "400", "49", 4900),
        plan(4, "VIP monthly", 4, "monthly", "800", "99", 9900),
        plan(13, "Premium yearly", 3, "yearly", "4000", "490", 49000),
    ]
}

pub(crate) struct Harness {
    pub(crate) chain: TestChain,
    pub(crate) test_db: TestDb,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) quotes: QuoteIssuer,
    pub(crate) watcher: Watcher,
    pub(crate) rpc: DynProvider,
}

/// The tests' watcher settings for `d`.
fn watcher_config(d: &tmai_pay::chain::deployment::Deployment, max_block_range: u64) -> WatcherConfig {
    WatcherConfig {
        chain_id: d.chain_id,
        checkout: d.checkout,
        confirmations: CONFIRMATIONS,
        max_block_range,
        start_block: d.deploy_block,
        poll_interval: Duration::from_millis(50),
    }
}

impl Harness {
    pub(crate) async fn start(kind: DbKind) -> Self {
        Self::start_with(kind, 2_000).await
    }

    pub(crate) async fn start_with(kind: DbKind, max_block_range: u64) -> Self {
        let chain = spawn_chain().await;
        let test_db = fresh_db(kind).await;
        let catalog = Arc::new(Catalog::new(&plan_configs(), &chain.deployment.tokens).unwrap());
        let d = &chain.deployment;
        let quotes = QuoteIssuer::new(devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), d.chain_id, d.checkout, 1_800);
        let rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
        let watcher = Watcher::new(test_db.db.clone(), rpc.clone(), catalog.clone(), watcher_config(d, max_block_range));
        Self { chain, test_db, catalog, quotes, watcher, rpc }
    }

    /// Returns another watcher of this chain's checkout, on `db` through `provider`, reading
    /// at most `max_block_range` blocks a pass.
    pub(crate) fn watcher_with_range(&self, db: &tmai_pay::store::Db, provider: DynProvider, max_block_range: u64) -> Watcher {
        Watcher::new(db.clone(), provider, self.catalog.clone(), watcher_config(&self.chain.deployment, max_block_range))
    }

    /// Returns another watcher of this chain's checkout, on `db` through `provider`.
    pub(crate) fn watcher_on(&self, db: &tmai_pay::store::Db, provider: DynProvider) -> Watcher {
        Watcher::new(db.clone(), provider, self.catalog.clone(), watcher_config(&self.chain.deployment, 2_000))
    }

    pub(crate) fn wallet(&self, index: usize) -> Address {
        self.chain.anvil.addresses()[index]
    }

    /// Returns the chain's latest block time (quotes use chain time, as anvil may run ahead).
    pub(crate) async fn chain_now(&self) -> u64 {
        self.rpc.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp
    }

    /// Issues a quote through the service's code for wallet `index`.
    pub(crate) async fn quote(&self, index: usize, plan_id: u32, token: &str, periods: u32) -> IssuedQuote {
        let request = QuoteRequest { plan_id, token: token.into(), payer: self.wallet(index), periods };
        self.quotes.issue(&self.test_db.db, &self.catalog, &request, self.chain_now().await).await.unwrap()
    }

    /// Pays `quote` from wallet `index` (approve + pay), mined at once.
    pub(crate) async fn pay(&self, index: usize, quote: &IssuedQuote) -> TransactionReceipt {
        self.approve_and_pay(index, quote).await.1
    }

    /// Pays `quote` from wallet `index`; returns the approval's and the payment's receipts.
    pub(crate) async fn approve_and_pay(&self, index: usize, quote: &IssuedQuote) -> (TransactionReceipt, TransactionReceipt) {
        self.approve_and_pay_with_gas(index, quote, None).await
    }

    /// Pays `quote` from wallet `index`, with `(approve, pay)` gas limits when given (else
    /// estimated); returns the approval's and the payment's receipts.
    pub(crate) async fn approve_and_pay_with_gas(
        &self,
        index: usize,
        quote: &IssuedQuote,
        gas: Option<(u64, u64)>,
    ) -> (TransactionReceipt, TransactionReceipt) {
        let wallet = devnet::provider_for(&self.chain.anvil, index);
        let token = TestToken::new(quote.token, &wallet);
        let mut approve = token.approve(quote.checkout, quote.amount);
        let checkout = SubscriptionCheckout::new(quote.checkout, &wallet);
        let mut pay = checkout.pay(quote.quote.clone(), quote.signature.clone());
        if let Some((approve_gas, pay_gas)) = gas {
            approve = approve.gas(approve_gas);
            pay = pay.gas(pay_gas);
        }
        let approval = approve.send().await.unwrap().get_receipt().await.unwrap();
        let receipt = pay.send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status());
        (approval, receipt)
    }

    pub(crate) async fn mine(&self, blocks: u64) {
        self.rpc.anvil_mine(Some(blocks), None).await.unwrap();
    }

    /// Runs watcher passes until one finds the cursor at the head.
    pub(crate) async fn catch_up(&self) {
        for _ in 0..1_000 {
            if self.watcher.pass().await.unwrap().caught_up {
                return;
            }
        }
        panic!("watcher did not catch up");
    }

    /// Runs `watcher`'s passes until one finds the cursor at the head.
    pub(crate) async fn catch_up_with(&self, watcher: &Watcher) {
        for _ in 0..1_000 {
            if watcher.pass().await.unwrap().caught_up {
                return;
            }
        }
        panic!("watcher did not catch up");
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql).fetch_one(self.test_db.db.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
    }

    pub(crate) async fn events(&self, event_type: &str) -> Vec<outbox::StoredEvent> {
        outbox::all(self.test_db.db.pool()).await.unwrap().into_iter().filter(|e| e.event_type == event_type).collect()
    }

    pub(crate) async fn payment_status(&self, tx: alloy::primitives::B256) -> String {
        sqlx::query("SELECT status FROM payments WHERE tx_hash = $1")
            .bind(tx.to_vec())
            .fetch_one(self.test_db.db.pool())
            .await
            .unwrap()
            .try_get("status")
            .unwrap()
    }
}

/// Returns `whole` tokens in the smallest unit of a token with `decimals`.
pub(crate) fn units(whole: u64, decimals: u8) -> U256 {
    U256::from(whole) * U256::from(10).pow(U256::from(decimals))
}
