//! The paying side: wallets with their own keys (funded on anvil), checkouts created through
//! the service's API on any live instance, paid with real signed transactions (approve then
//! pay, or one permit transaction), and card processor webhooks for some wallets.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sha2::Sha256;
use tmai_pay::chain::{
    bindings::{ISubscriptionCheckout::Quote, SubscriptionCheckout, TestToken},
    deployment::Deployment,
    signing::{PermitRequest, sign_permit},
};
use tokio::sync::RwLock;

/// Plans of the generated configuration: (id, card price cents).
pub(crate) const PLANS: [(u32, u64); 5] = [(1, 900), (2, 1900), (3, 4900), (4, 9900), (13, 49000)];

/// Tokens a checkout may be paid in. USD pricing of other tokens is another issue's work:
/// when it lands, add its symbols here (the deployment must list them).
pub(crate) const TOKENS: [&str; 2] = ["TMAI", "USD"];

pub(crate) struct Wallet {
    pub(crate) key: PrivateKeySigner,
    pub(crate) provider: DynProvider,
}

/// Wallet `i` of the campaign: its key follows from the seed.
pub(crate) fn wallet(seed: u64, i: usize, anvil_url: &str) -> Wallet {
    let key = PrivateKeySigner::from_bytes(&keccak256(format!("tmai-chaos/{seed}/{i}"))).unwrap();
    let provider = ProviderBuilder::default()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(anvil_url.parse().unwrap())
        .erased();
    Wallet { key, provider }
}

/// Gives each wallet ETH and a large balance of every token.
pub(crate) async fn fund(owner: &DynProvider, deployment: &Deployment, wallets: &[Wallet]) {
    use alloy::providers::ext::AnvilApi;
    for w in wallets {
        owner.anvil_set_balance(w.key.address(), U256::from(10u64).pow(U256::from(21))).await.unwrap();
        for t in &deployment.tokens {
            let amount = U256::from(10_000_000u64) * U256::from(10u64).pow(U256::from(t.decimals));
            TestToken::new(t.address, owner).mint(w.key.address(), amount).send().await.unwrap().get_receipt().await.unwrap();
        }
    }
}

/// Figures the traffic keeps while it runs.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) done: AtomicU64,
    pub(crate) paid: AtomicU64,
    pub(crate) permit: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) card_events: AtomicU64,
}

pub(crate) struct Traffic {
    pub(crate) seed: u64,
    pub(crate) deployment: Deployment,
    pub(crate) instances: Vec<String>,
    pub(crate) client: reqwest::Client,
    pub(crate) card_secret: String,
    pub(crate) progress: Arc<Progress>,
    /// Held for reading around each transaction, for writing around each reorg.
    pub(crate) chain_lock: Arc<RwLock<()>>,
}

impl Traffic {
    /// Posts `path` to a live instance (the `i`-th first), trying the others and waiting out
    /// restarts; gives up after 90 s.
    async fn post(&self, i: usize, path: &str, body: &Value, headers: &[(&str, String)], raw: Option<String>) -> Option<(u16, Value)> {
        self.call(reqwest::Method::POST, i, path, Some(raw.unwrap_or_else(|| body.to_string())), headers).await
    }

    /// Sends `method` `path` (with `body`, JSON) to a live instance as [`Self::post`] does.
    pub(crate) async fn call(&self, method: reqwest::Method, i: usize, path: &str, body: Option<String>, headers: &[(&str, String)]) -> Option<(u16, Value)> {
        for attempt in 0..180 {
            let base = &self.instances[(i + attempt) % self.instances.len()];
            let mut request = self.client.request(method.clone(), format!("{base}{path}"));
            for (k, v) in headers {
                request = request.header(*k, v);
            }
            if let Some(body) = &body {
                request = request.header("content-type", "application/json").body(body.clone());
            }
            match request.send().await {
                Ok(r) if r.status().as_u16() < 500 && r.status().as_u16() != 429 => {
                    let status = r.status().as_u16();
                    return Some((status, r.json().await.unwrap_or(Value::Null)));
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        None
    }

    /// Checkout `n` of wallet `w`: a plan and token from the seed, then approve+pay or permit.
    pub(crate) async fn checkout(&self, n: u64, w: &Wallet, rng: &mut StdRng) {
        let (plan, _) = PLANS[rng.random_range(0..PLANS.len())];
        let token = TOKENS[rng.random_range(0..TOKENS.len())];
        let use_permit = rng.random_bool(0.5);
        self.buy(n, w, plan, token, rng.random_range(1..=2), use_permit).await;
    }

    /// Wallet `w` buys `periods` of `plan` in `token` (checkout `n`); true when the payment
    /// was mined.
    pub(crate) async fn buy(&self, n: u64, w: &Wallet, plan: u32, token: &str, periods: u32, use_permit: bool) -> bool {
        let body = json!({ "plan_id": plan, "token": token, "wallet": w.key.address().to_string(), "periods": periods });
        let Some((201 | 200, view)) = self.post(n as usize, "/v1/checkouts", &body, &[], None).await else {
            self.progress.failed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let q = &view["quote"];
        let quote = Quote {
            orderId: q["orderId"].as_str().unwrap().parse().unwrap(),
            payer: q["payer"].as_str().unwrap().parse().unwrap(),
            token: q["token"].as_str().unwrap().parse().unwrap(),
            amount: q["amount"].as_str().unwrap().parse().unwrap(),
            planId: q["planId"].as_u64().unwrap() as u32,
            periods: q["periods"].as_u64().unwrap() as u32,
            deadline: q["deadline"].as_u64().unwrap(),
        };
        let signature: alloy::primitives::Bytes = view["signature"].as_str().unwrap().parse().unwrap();
        let paid = tokio::time::timeout(Duration::from_secs(30), self.pay(w, quote, signature, use_permit)).await;
        if matches!(paid, Ok(Ok(true))) {
            self.progress.paid.fetch_add(1, Ordering::Relaxed);
            if use_permit {
                self.progress.permit.fetch_add(1, Ordering::Relaxed);
            }
            true
        } else {
            self.progress.failed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    async fn pay(&self, w: &Wallet, quote: Quote, signature: alloy::primitives::Bytes, use_permit: bool) -> anyhow::Result<bool> {
        // The chain lock is held for reading around each broadcast only, never while waiting
        // for a receipt (blocks come from the miner, which takes it too; a reorg waits for
        // broadcasts in progress and none starts during it).
        let checkout = SubscriptionCheckout::new(self.deployment.checkout, &w.provider);
        let token = TestToken::new(quote.token, &w.provider);
        if use_permit {
            let deadline = U256::from(quote.deadline);
            let permit = sign_permit(
                &w.key,
                &PermitRequest {
                    token_name: token.name().call().await?,
                    token: quote.token,
                    chain_id: self.deployment.chain_id,
                    spender: self.deployment.checkout,
                    value: quote.amount,
                    nonce: token.nonces(w.key.address()).call().await?,
                    deadline,
                },
            )
            .await?;
            let call = checkout.payWithPermit(quote, signature, deadline, permit.v, permit.r, permit.s);
            let pending = {
                let _chain = self.chain_lock.read().await;
                call.send().await?
            };
            Ok(pending.get_receipt().await?.status())
        } else {
            let approve = token.approve(self.deployment.checkout, quote.amount);
            let pending = {
                let _chain = self.chain_lock.read().await;
                approve.send().await?
            };
            pending.get_receipt().await?;
            let call = checkout.pay(quote, signature);
            let pending = {
                let _chain = self.chain_lock.read().await;
                call.send().await?
            };
            Ok(pending.get_receipt().await?.status())
        }
    }

    /// A card subscription for `wallet` (checkout session, sent twice as processors do),
    /// then a renewal invoice.
    pub(crate) async fn card(&self, n: u64, wallet: Address, rng: &mut StdRng) {
        let (plan, cents) = PLANS[rng.random_range(0..PLANS.len())];
        let sub = format!("sub_chaos_{}_{n}", self.seed);
        let session = card_session(&format!("evt_cs_{}_{n}", self.seed), &wallet.to_string(), plan, &sub, cents);
        let invoice = card_invoice(&format!("evt_in_{}_{n}", self.seed), &sub, plan, cents);
        for event in [&session, &session, &invoice] {
            let body = event.to_string();
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let header = card_signature(body.as_bytes(), &self.card_secret, t);
            if let Some((200, _)) = self.post(n as usize, "/v1/card/webhook", &Value::Null, &[("Stripe-Signature", header)], Some(body)).await {
                self.progress.card_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A per-task generator derived from the campaign seed.
pub(crate) fn rng_for(seed: u64, stream: u64) -> StdRng {
    let bytes: B256 = keccak256(format!("{seed}/{stream}"));
    StdRng::from_seed(bytes.0)
}

/// The processor's signature: `t=<t>,v1=<hex HMAC-SHA256 of "t.body">` (as tests/it/card.rs).
fn card_signature(body: &[u8], secret: &str, t: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", alloy::hex::encode(mac.finalize().into_bytes()))
}

fn card_session(id: &str, wallet: &str, plan_id: u32, subscription: &str, cents: u64) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": 1_764_000_000, "livemode": false,
        "pending_webhooks": 1, "type": "checkout.session.completed",
        "data": { "object": {
            "id": format!("cs_test_{id}"), "object": "checkout.session", "mode": "subscription", "status": "complete",
            "amount_subtotal": cents, "amount_total": cents, "currency": "usd", "customer": format!("cus_{subscription}"),
            "payment_status": "paid", "subscription": subscription, "invoice": format!("in_{id}"),
            "metadata": { "wallet": wallet, "plan_id": plan_id.to_string() },
        }},
    })
}

fn card_invoice(id: &str, subscription: &str, plan_id: u32, cents: u64) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "type": "invoice.paid",
        "data": { "object": {
            "id": format!("in_{id}"), "object": "invoice", "billing_reason": "subscription_cycle", "currency": "usd",
            "customer": format!("cus_{subscription}"), "status": "paid", "amount_due": cents, "amount_paid": cents,
            "amount_remaining": 0, "attempt_count": 1,
            "parent": { "type": "subscription_details", "subscription_details": { "metadata": {}, "subscription": subscription }},
            "lines": { "object": "list", "has_more": false, "total_count": 1, "data": [{
                "id": format!("il_{id}"), "object": "line_item", "amount": cents, "currency": "usd", "quantity": 1,
                "parent": { "type": "subscription_item_details", "subscription_item_details": {
                    "proration": false, "subscription": subscription, "subscription_item": format!("si_{subscription}"),
                }},
                "pricing": { "type": "price_details", "price_details": { "price": format!("price_{plan_id}"), "product": "prod_chaos" }, "unit_amount_decimal": cents.to_string() },
            }]},
        }},
    })
}
