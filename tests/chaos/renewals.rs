//! Automatic renewal under the campaign's faults (issue 29). Before the checkout traffic,
//! dedicated wallets buy a monthly plan once, sign in with their wallet (EIP-4361), sign the
//! renewal mandate the service proposes and approve its bounded allowance, as the account
//! page does. After the traffic the driver moves the chain's time into the charge window (the
//! service's clock follows it: `chain.follow_chain_time`) with the RPC faults still on, kills
//! the service while its renewer sends, and reorganises the chain below the oldest charge
//! once all are confirmed, dropping the renewer's transactions. The checks:
//! no mandate period charged twice on chain, every due period charged once settled, each
//! renewed plan extended by exactly one period, the renewer's records agree with the chain.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::Filter,
    signers::SignerSync,
    sol_types::{SolEvent, SolStruct},
};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use tmai_pay::chain::{
    bindings::{IRenewalMandates::RenewalMandate, SubscriptionCheckout, TestToken},
    signing::quote_domain,
};

use rand::Rng;
use tokio::sync::RwLock;

use crate::{
    checks::Report,
    procs::{Instance, Led},
    traffic::{Traffic, Wallet},
};

/// The plan renewal wallets buy (monthly) and renew, in TMAI.
pub(crate) const PLAN: u32 = 3;
const TOKEN: &str = "TMAI";
const DAY: u64 = 86_400;
/// The campaign's `renewals.charge_days_before`.
pub(crate) const CHARGE_DAYS_BEFORE: u64 = 3;
/// The origin sign-in messages are written for (the campaign's `auth.allowed_origins`).
pub(crate) const ORIGIN: &str = "https://shop.example";
/// The statement of the campaign's `[auth]`.
pub(crate) const STATEMENT: &str = "Sign in to your membership.";

/// A mandate a renewal wallet registered.
#[derive(Debug, Clone)]
pub(crate) struct Mandate {
    pub(crate) wallet: Address,
    /// Its id on the checkout: the EIP-712 digest.
    pub(crate) id: B256,
    /// When its period 0 begins: the end of the period the wallet bought.
    pub(crate) start: u64,
    pub(crate) period: u64,
}

/// The RFC 3339 text of unix time `t`.
fn rfc3339(t: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// Signs `w` in (a nonce, the EIP-4361 message personal-signed); returns the membership token.
async fn sign_in(traffic: &Traffic, n: u64, w: &Wallet) -> Result<String, String> {
    let Some((200, nonce)) = traffic.call(reqwest::Method::POST, n as usize, "/v1/auth/nonce", None, &[]).await else {
        return Err("no sign-in nonce".into());
    };
    let issued_at = nonce["issued_at"].as_u64().ok_or(format!("nonce without issued_at: {nonce}"))?;
    let text = format!(
        "shop.example wants you to sign in with your Ethereum account:\n{}\n\n{STATEMENT}\n\nURI: {ORIGIN}/account\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}",
        w.key.address().to_checksum(None),
        traffic.deployment.chain_id,
        nonce["nonce"].as_str().unwrap_or_default(),
        rfc3339(issued_at),
        rfc3339(issued_at + 600),
    );
    let signature = format!("0x{}", alloy::hex::encode(w.key.sign_message_sync(text.as_bytes()).map_err(|e| e.to_string())?.as_bytes()));
    let body = json!({ "message": text, "signature": signature }).to_string();
    match traffic.call(reqwest::Method::POST, n as usize, "/v1/auth/verify", Some(body), &[]).await {
        Some((200, view)) => view["token"].as_str().map(str::to_string).ok_or(format!("no token: {view}")),
        other => Err(format!("sign-in refused: {other:?}")),
    }
}

/// The signed struct of a proposal's `typed_data.message`.
fn mandate_of(message: &Value) -> Result<RenewalMandate, String> {
    let text = |f: &str| message[f].as_str().map(str::to_string).ok_or(format!("{f} in {message}"));
    let small = |f: &str| message[f].as_u64().and_then(|v| u32::try_from(v).ok()).ok_or(format!("{f} in {message}"));
    let parse = |f: &str| text(f).and_then(|t| t.parse::<U256>().map_err(|e| format!("{f}: {e}")));
    Ok(RenewalMandate {
        payer: text("payer")?.parse().map_err(|e| format!("payer: {e}"))?,
        token: text("token")?.parse().map_err(|e| format!("token: {e}"))?,
        maxAmount: parse("maxAmount")?,
        period: small("period")?,
        maxCharges: small("maxCharges")?,
        start: text("start")?.parse().map_err(|e| format!("start: {e}"))?,
        validUntil: text("validUntil")?.parse().map_err(|e| format!("validUntil: {e}"))?,
        earlyWindow: small("earlyWindow")?,
        planId: small("planId")?,
        salt: parse("salt")?,
    })
}

/// Wallet `w` (checkout `n`) buys one month of [`PLAN`], signs in once the plan is active and
/// turns automatic renewal on as the account page does: the service's proposal, the bounded
/// approval, the signed mandate.
pub(crate) async fn sign_up(traffic: &Traffic, n: u64, w: &Wallet) -> Result<Mandate, String> {
    if !traffic.buy(n, w, PLAN, TOKEN, 1, false).await {
        return Err(format!("renewal wallet {} could not buy its plan", w.key.address()));
    }
    let token = sign_in(traffic, n, w).await?;
    let auth = [("authorization", format!("Bearer {token}"))];
    // The proposal answers once the watcher has confirmed the purchase and the plan runs.
    let mut proposal = Value::Null;
    for _ in 0..240 {
        match traffic.call(reqwest::Method::GET, n as usize, "/v1/me/mandate/proposal?token=TMAI&max_charges=3", None, &auth).await {
            Some((200, body)) => {
                proposal = body;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let message = &proposal["typed_data"]["message"];
    let m = mandate_of(message).map_err(|e| format!("no mandate proposal for {}: {e}", w.key.address()))?;
    let allowance: U256 = proposal["approve_amount"].as_str().and_then(|a| a.parse().ok()).ok_or(format!("approve_amount in {proposal}"))?;
    let erc20 = TestToken::new(m.token, &w.provider);
    let approve = erc20.approve(traffic.deployment.checkout, allowance);
    let pending = {
        let _chain = traffic.chain_lock.read().await;
        approve.send().await.map_err(|e| e.to_string())?
    };
    pending.get_receipt().await.map_err(|e| e.to_string())?;
    let digest = m.eip712_signing_hash(&quote_domain(traffic.deployment.chain_id, traffic.deployment.checkout));
    let signature = format!("0x{}", alloy::hex::encode(w.key.sign_hash_sync(&digest).map_err(|e| e.to_string())?.as_bytes()));
    let body = json!({ "mandate": message, "signature": signature }).to_string();
    match traffic.call(reqwest::Method::POST, n as usize, "/v1/me/mandate", Some(body), &auth).await {
        Some((201, view)) if view["status"] == "active" && view["mandate_id"].as_str() == Some(digest.to_string().as_str()) => {}
        other => return Err(format!("mandate of {} not registered: {other:?}", w.key.address())),
    }
    Ok(Mandate { wallet: w.key.address(), id: digest, start: m.start, period: u64::from(m.period) })
}

/// The chain time at which every mandate's period 0 is inside the renewer's charge window.
pub(crate) fn charge_time(mandates: &[Mandate]) -> u64 {
    mandates.iter().map(|m| m.start).max().unwrap_or(0) - CHARGE_DAYS_BEFORE * DAY + 60
}

/// The canonical `MandateCharged` logs of the checkout: (mandate, period) → (order id, block).
pub(crate) async fn charges_on_chain(rpc: &DynProvider, checkout: Address) -> Result<Vec<(B256, u64, U256, u64)>, String> {
    let filter = Filter::new().address(checkout).event_signature(SubscriptionCheckout::MandateCharged::SIGNATURE_HASH).from_block(0);
    let logs = rpc.get_logs(&filter).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for log in logs {
        let block = log.block_number.unwrap_or_default();
        let e = log.log_decode::<SubscriptionCheckout::MandateCharged>().map_err(|e| e.to_string())?.inner.data;
        out.push((e.mandateId, e.period, e.orderId, block));
    }
    Ok(out)
}

/// How many mandates still wait for their period 0's charge on chain, and how many renewed
/// plans the service does not yet show extended by exactly that period (for the settle loop).
pub(crate) async fn pending(rpc: &DynProvider, checkout: Address, pool: &AnyPool, mandates: &[Mandate]) -> i64 {
    let mut pending = uncharged(rpc, checkout, mandates).await as i64;
    for m in mandates {
        if expires_at(pool, m.wallet).await != Some(m.start + m.period) {
            pending += 1;
        }
    }
    pending
}

/// How many of `mandates` the chain does not yet show charged for their period 0 (a state
/// that cannot be read counts as not charged).
async fn uncharged(rpc: &DynProvider, checkout: Address, mandates: &[Mandate]) -> usize {
    let contract = SubscriptionCheckout::new(checkout, rpc);
    let mut waiting = 0;
    for m in mandates {
        if !contract.mandateState(m.id).call().await.is_ok_and(|s| s.nextPeriod >= 1) {
            waiting += 1;
        }
    }
    waiting
}

async fn expires_at(pool: &AnyPool, wallet: Address) -> Option<u64> {
    let sql = "SELECT expires_at FROM subscriptions WHERE wallet = $1";
    let row = sqlx::query(sql).bind(wallet.as_slice().to_vec()).fetch_optional(pool).await.ok().flatten()?;
    row.try_get::<i64, _>(0).ok().map(|e| e as u64)
}

/// The checks of the renewals after settling.
pub(crate) async fn check(report: &mut Report, rpc: &DynProvider, checkout: Address, pool: &AnyPool, mandates: &[Mandate]) {
    let logs = charges_on_chain(rpc, checkout).await.unwrap_or_default();
    let mut per_period: HashMap<(B256, u64), u32> = HashMap::new();
    for (id, period, _, _) in &logs {
        *per_period.entry((*id, *period)).or_default() += 1;
    }
    let twice = per_period.iter().find(|(_, n)| **n > 1).map(|((id, period), n)| format!("mandate {id} period {period} charged {n} times"));
    report.check("mandate periods charged at most once on chain", per_period.len() as i64, twice);

    let contract = SubscriptionCheckout::new(checkout, rpc);
    let mut uncharged = None;
    let mut charged = 0;
    for m in mandates {
        let state = contract.mandateState(m.id).call().await;
        let logged = logs.iter().filter(|(id, ..)| *id == m.id).count() as u32;
        match state {
            Ok(s) if s.nextPeriod == 1 && s.charges == 1 && logged == 1 => charged += 1,
            Ok(s) => {
                uncharged.get_or_insert(format!("mandate {} of {}: {} charge(s), next period {}, {logged} log(s)", m.id, m.wallet, s.charges, s.nextPeriod));
            }
            Err(e) => {
                uncharged.get_or_insert(format!("mandate {}: {e}", m.id));
            }
        }
    }
    report.check("due mandate periods charged once on chain after settling", charged, uncharged);

    let mut wrong = None;
    let mut extended = 0;
    for m in mandates {
        match expires_at(pool, m.wallet).await {
            Some(e) if e == m.start + m.period => extended += 1,
            other => {
                wrong.get_or_insert(format!("{}: expires at {other:?}, not {} (one period after {})", m.wallet, m.start + m.period, m.start));
            }
        }
    }
    report.check("renewed plans extended by exactly one period", extended, wrong);

    // The renewer's records: one for every period charged on chain (sent by it, or found
    // charged after a kill lost the record of sending), none that claims a charge the chain
    // does not show.
    let rows = sqlx::query("SELECT mandate_id, period_index, attempts, charged FROM renewal_charges").fetch_all(pool).await.unwrap_or_default();
    let mut records: HashMap<(B256, u64), (i64, i64)> = HashMap::new();
    for r in &rows {
        let id: Vec<u8> = r.try_get("mandate_id").unwrap_or_default();
        let index: i64 = r.try_get("period_index").unwrap_or(-1);
        records.insert((B256::from_slice(&id), index as u64), (r.try_get("attempts").unwrap_or(0), r.try_get("charged").unwrap_or(0)));
    }
    let mut disagree = None;
    for (id, period) in per_period.keys() {
        match records.get(&(*id, *period)) {
            Some(_) => {}
            None => {
                disagree.get_or_insert(format!("mandate {id} period {period} charged on chain, no renewer's record of it"));
            }
        }
    }
    for ((id, period), (_, charged)) in &records {
        if *charged != 0 && !per_period.contains_key(&(*id, *period)) {
            disagree.get_or_insert(format!("mandate {id} period {period} recorded charged, not charged on chain"));
        }
    }
    report.check("renewal charge records agree with the chain", records.len() as i64, disagree);
    report.note("renewal charges sent (attempts, re-sends included)", records.values().map(|(a, ..)| *a).sum());
}

/// The renewal phase (after the traffic, faults on): moves the chain's time to where every
/// mandate's charge is due, kills the instance that leads (the renewer's) once its first
/// charge is recorded, waits
/// for every charge on chain, mines until the newest is confirmed, lets the watcher confirm
/// them and reorganises under all of them, dropping the renewer's (and any payer's or the
/// issuer's) transactions. Returns its figures.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn phase(
    owner: &DynProvider,
    anvil: &alloy::node_bindings::AnvilInstance,
    deployment: &tmai_pay::chain::deployment::Deployment,
    pool: &sqlx::AnyPool,
    chain_lock: &RwLock<()>,
    instances: &mut [Instance],
    led: &Arc<Mutex<Vec<Led>>>,
    client: &reqwest::Client,
    mandates: &[Mandate],
    receiver_clock: &str,
    dropped: [Address; 2],
    rng: &mut impl Rng,
) -> Result<Value, String> {
    if mandates.is_empty() {
        return Ok(Value::Null);
    }
    let at = charge_time(mandates);
    // The merchant's server lives in the same (moved) time: its Standard Webhooks check
    // refuses a signature timestamp five minutes off its clock.
    let wall_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    client.post(receiver_clock).json(&json!({ "offset_ms": at as i64 * 1000 - wall_ms })).send().await.map_err(|e| e.to_string())?;
    {
        let _guard = chain_lock.write().await;
        owner.anvil_set_next_block_timestamp(at).await.map_err(|e| e.to_string())?;
        owner.anvil_mine(Some(1), None).await.map_err(|e| e.to_string())?;
    }
    let moved = Instant::now();
    println!("chaos: chain time moved to {at} ({} days before the first renewal is due)", CHARGE_DAYS_BEFORE);
    // The kill lands inside the renewer's pass: as soon as its first charge is recorded
    // (the others are being priced, simulated or sent, slowly under the faults).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM renewal_charges WHERE tx_hash IS NOT NULL").fetch_one(pool).await.unwrap_or(0);
        if sent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = crate::pick_victim(instances, led, rng);
    let killed_after = moved.elapsed();
    instances[victim].kill();
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM renewal_charges WHERE tx_hash IS NOT NULL").fetch_one(pool).await.unwrap_or(0);
    instances[victim].start();
    let recovered = instances[victim].wait_healthy(client, Duration::from_secs(60)).await.ok_or("a restarted instance did not come up")?;
    println!(
        "chaos: SIGKILL instance {victim} {} ms after the time moved, {sent} of {} charges recorded; serving again after {} ms",
        killed_after.as_millis(),
        mandates.len(),
        recovered.as_millis()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while uncharged(owner, deployment.checkout, mandates).await > 0 {
        if Instant::now() > deadline {
            return Err("the renewer did not charge every due mandate within 120 s of the time moving".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let charged_after = moved.elapsed();

    // The reorg: no block comes while the lock is held but those mined here.
    let _guard = chain_lock.write().await;
    let charges = charges_on_chain(owner, deployment.checkout).await?;
    let (oldest, newest) = charges.iter().fold((u64::MAX, 0), |(lo, hi), c| (lo.min(c.3), hi.max(c.3)));
    let mut head = owner.get_block_number().await.map_err(|e| e.to_string())?;
    if head < newest + crate::CONFIRMATIONS {
        owner.anvil_mine(Some(newest + crate::CONFIRMATIONS - head), None).await.map_err(|e| e.to_string())?;
        head = newest + crate::CONFIRMATIONS;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let read: Option<i64> = sqlx::query_scalar("SELECT next_block FROM chain_cursor").fetch_optional(pool).await.ok().flatten();
        if read.is_some_and(|n| n > head as i64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let depth = head + 1 - oldest;
    let tmai = deployment.token("TMAI").ok_or("no TMAI")?.address;
    let senders = crate::reorg(owner, depth, crate::filler(anvil, tmai), |s| dropped.contains(&s)).await?;
    let renewer_txs = senders.iter().filter(|s| **s == dropped[0]).count();
    println!("chaos: reorg depth {depth} under the renewals (charges in blocks {oldest}..={newest}, head {head}), {renewer_txs} renewer tx(s) dropped");
    Ok(json!({
        "mandates": mandates.len(),
        "charged_secs_after_time_moved": charged_after.as_secs_f64(),
        "kill_recovery_ms": recovered.as_millis() as u64,
        "reorg_depth": depth,
        "renewer_txs_dropped": renewer_txs,
    }))
}
