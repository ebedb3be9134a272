//! Automatic renewal (issue 29, the service's side), on a real anvil chain and database: a
//! member signs the mandate the service proposes and approves the bounded allowance; the
//! renewer charges it days before the period ends, the watcher confirms the `OrderPaid` and
//! renews the plan with a receipt; a second look charges nothing twice; a charge that would
//! fail is not sent and says why (`subscription.renewal_failed` with the reason, its fix and
//! the next attempt), a revoked mandate ends; bad mandates are refused in words.

use alloy::{
    primitives::{Address, B256, U256},
    providers::ext::AnvilApi,
    signers::SignerSync,
    sol_types::SolStruct,
};
use serde_json::{Value, json};
use tmai_pay::{
    auth::AuthService,
    billing::{
        reminders::Reminders,
        renewals::{Outcome, Renewer},
    },
    chain::{
        bindings::{IRenewalMandates::RenewalMandate, SubscriptionCheckout, TestToken},
        devnet,
        signing::quote_domain,
    },
    clock::Clock,
    config::{HttpSettings, ReminderSettings, RenewalSettings},
    events::RenewalFailure,
};

use crate::{
    api::App,
    auth::{ORIGIN, auth_settings, pay_premium},
    db::{DbKind, on_both_databases},
    receipts::sign_in,
};

const DAY: u64 = 86_400;
const MANDATE: &str = "/v1/me/mandate";
const PROPOSAL: &str = "/v1/me/mandate/proposal";

/// A service with sign-in and automatic renewal, and the renewer (its own key, set on the
/// checkout by the owner).
async fn spawn(kind: DbKind) -> (App, Renewer) {
    let clock = Clock::system();
    let (state_clock, auth) = (clock.clone(), auth_settings(None));
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
        state.with_clock(state_clock).with_auth(AuthService::from_settings(&auth).unwrap()).with_renewals(Some(RenewalSettings::default()))
    })
    .await;
    let d = &app.h.chain.deployment;
    let key = devnet::enable_renewer(&app.h.chain.anvil, d).await.unwrap();
    let renewer = Renewer::new(
        app.h.test_db.db.clone(),
        app.h.rpc.clone(),
        alloy::network::EthereumWallet::from(key),
        d.chain_id,
        d.checkout,
        app.h.catalog.clone(),
        app.h.quotes.clone(),
        RenewalSettings::default(),
        clock,
    );
    (app, renewer)
}

/// Calls a member route with the token (or the cookie from `origin` with `csrf`).
async fn member(app: &App, method: &str, route: &str, path: &str, body: Option<Value>, token: &str, session: Option<(&str, &str, &str)>) -> (u16, Value) {
    let mut request = app.client.request(method.parse().unwrap(), format!("{}{path}", app.base));
    match session {
        Some((cookie, origin, csrf)) => request = request.header("cookie", cookie).header("origin", origin).header("x-csrf-token", csrf),
        None => request = request.bearer_auth(token),
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    app.check(method, route, status, &body);
    (status, body)
}

/// The signed struct of a proposal's `typed_data.message`.
fn mandate_of(message: &Value) -> RenewalMandate {
    let text = |f: &str| message[f].as_str().unwrap_or_else(|| panic!("{f} in {message}")).to_string();
    let small = |f: &str| u32::try_from(message[f].as_u64().unwrap()).unwrap();
    RenewalMandate {
        payer: text("payer").parse().unwrap(),
        token: text("token").parse().unwrap(),
        maxAmount: text("maxAmount").parse().unwrap(),
        period: small("period"),
        maxCharges: small("maxCharges"),
        start: text("start").parse().unwrap(),
        validUntil: text("validUntil").parse().unwrap(),
        earlyWindow: small("earlyWindow"),
        planId: small("planId"),
        salt: text("salt").parse().unwrap(),
    }
}

/// Wallet `index` signs `m` (EIP-712 under the checkout's domain).
fn sign_mandate(app: &App, index: usize, m: &RenewalMandate) -> String {
    let d = &app.h.chain.deployment;
    let hash = m.eip712_signing_hash(&quote_domain(d.chain_id, d.checkout));
    let signature = devnet::key(&app.h.chain.anvil, index).sign_hash_sync(&hash).unwrap();
    format!("0x{}", alloy::hex::encode(signature.as_bytes()))
}

/// Wallet `index` approves `amount` of `token` to the checkout.
async fn approve(app: &App, index: usize, token: Address, amount: U256) {
    let wallet = devnet::provider_for(&app.h.chain.anvil, index);
    let receipt = TestToken::new(token, &wallet).approve(app.h.chain.deployment.checkout, amount).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
}

/// Wallet `index` (a Premium member) turns automatic renewal on as the page does: the
/// proposal, its signature, the bounded approval. Returns the proposal.
async fn turn_on(app: &App, index: usize, token: &str) -> Value {
    let (status, proposal) = member(app, "GET", PROPOSAL, &format!("{PROPOSAL}?token=TMAI&max_charges=3"), None, token, None).await;
    assert_eq!(status, 200, "{proposal}");
    let message = &proposal["typed_data"]["message"];
    let m = mandate_of(message);
    approve(app, index, m.token, proposal["approve_amount"].as_str().unwrap().parse().unwrap()).await;
    let body = json!({ "mandate": message, "signature": sign_mandate(app, index, &m) });
    let (status, view) = member(app, "POST", MANDATE, MANDATE, Some(body), token, None).await;
    assert_eq!((status, view["status"].as_str()), (201, Some("active")), "{view}");
    proposal
}

/// Moves the chain's time (and the service's clock with it) to `at`.
async fn travel(app: &App, at: u64) {
    app.h.rpc.anvil_set_next_block_timestamp(at).await.unwrap();
    app.h.mine(1).await;
    app.state.clock.catch_up_to(app.h.chain_now().await);
}

/// The receipt of `tx`, once anvil has mined it (automine answers the send before the
/// block is in).
async fn mined(app: &App, tx: alloy::primitives::TxHash) -> alloy::rpc::types::TransactionReceipt {
    for _ in 0..100 {
        if let Some(receipt) = alloy::providers::Provider::get_transaction_receipt(&app.h.rpc, tx).await.unwrap() {
            return receipt;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{tx} was not mined within 5 s")
}

/// The reminder pass with the renewals' default grace period.
fn reminders(app: &App) -> Reminders {
    Reminders::new(app.h.test_db.db.clone(), app.h.catalog.clone(), ReminderSettings::default(), app.state.clock.clone())
        .with_renewal_grace(u64::from(RenewalSettings::default().grace_days) * DAY)
}

async fn subscription(app: &App, index: usize) -> Value {
    let path = format!("/v1/subscriptions/{}", app.wallet(index));
    app.call("GET", "/v1/subscriptions/{wallet}", &path, None, None).await.1
}

async fn badge_active(app: &App, index: usize) -> bool {
    let path = format!("/v1/badges/{}", app.wallet(index));
    let (status, badge) = app.call("GET", "/v1/badges/{wallet}", &path, None, None).await;
    assert_eq!(status, 200, "{badge}");
    badge["active"].as_bool().unwrap()
}

/// Runs the minter until it has nothing left to send.
async fn mint(app: &App) {
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }
}

async fn expires_at(app: &App, index: usize) -> u64 {
    let path = format!("/v1/subscriptions/{}", app.wallet(index));
    app.call("GET", "/v1/subscriptions/{wallet}", &path, None, None).await.1["expires_at"].as_u64().unwrap()
}

async fn balance(app: &App, token: Address, index: usize) -> U256 {
    TestToken::new(token, &app.h.rpc).balanceOf(app.h.wallet(index)).call().await.unwrap()
}

/// The happy path and exactly once: one charge, at today's price, for one period; the plan
/// renews through the watcher with a receipt; looking again, sending again after the resend
/// delay, or a second renewer, charges nothing more.
pub(crate) async fn a_mandate_renews_the_plan_once_per_period(kind: DbKind) {
    let (app, renewer) = spawn(kind).await;
    pay_premium(&app, 1).await;
    let (token, _, _) = sign_in(&app, 1).await;
    let proposal = turn_on(&app, 1, &token).await;
    let price: U256 = proposal["price"].as_str().unwrap().parse().unwrap();
    let cap: U256 = proposal["cap"].as_str().unwrap().parse().unwrap();
    assert_eq!(price, U256::from(400) * U256::from(10).pow(U256::from(18)), "Premium monthly is 400 TMAI");
    assert!(cap >= price && cap <= price * U256::from(2), "cap {cap} for price {price}");
    assert_eq!(proposal["approve_amount"].as_str().unwrap(), (cap * U256::from(3)).to_string(), "bounded: cap × charges");
    let end = expires_at(&app, 1).await;
    assert_eq!(proposal["first_charge_at"].as_u64(), Some(end - 3 * DAY));

    // Not due yet: nothing happens.
    assert!(renewer.tick().await.unwrap().outcomes.is_empty());

    // Five days before the end (two before the charge): told the date and the amount, once.
    travel(&app, end - 5 * DAY).await;
    assert_eq!(renewer.tick().await.unwrap().outcomes[0].1, Outcome::Told);
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "told once a period (and a told period is not even looked at)");
    let told = app.h.events("subscription.renewal_upcoming").await;
    assert_eq!(told.len(), 1);
    let data = &told[0].payload["data"];
    assert_eq!(
        (data["charge_at"].as_u64(), data["amount"].as_str(), data["usd_value"].as_str()),
        (Some(end - 3 * DAY), Some(price.to_string().as_str()), Some("49.00")),
        "{data}"
    );
    assert!(data["reason"].is_null() && app.h.events("subscription.renewal_at_risk").await.is_empty(), "{data}");

    // Two days before the end: charged once.
    let tmai = app.h.chain.deployment.tokens[0].address;
    let before = balance(&app, tmai, 1).await;
    travel(&app, end - 2 * DAY).await;
    let report = renewer.tick().await.unwrap();
    assert!(matches!(report.outcomes.as_slice(), [(_, Outcome::Sent(_))]), "{report:?}");
    // Looking again before the watcher confirmed it: nothing sent (the sent charge is given
    // the resend delay to land, and the look leaves it out).
    assert!(renewer.tick().await.unwrap().outcomes.is_empty());
    // After the resend delay, the chain says it is charged: nothing sent again.
    travel(&app, end - 2 * DAY + 700).await;
    assert_eq!(renewer.tick().await.unwrap().outcomes[0].1, Outcome::Charged);
    assert_eq!(before - balance(&app, tmai, 1).await, price, "exactly one period's price was taken");

    // The watcher confirms the OrderPaid: renewed by one period, with a receipt.
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    let (token, _, _) = sign_in(&app, 1).await; // the first token expired on the way
    assert_eq!(expires_at(&app, 1).await, end + 30 * DAY);
    let renewed = app.h.events("subscription.renewed").await;
    assert_eq!(renewed.len(), 1, "one renewal");
    let (_, account) = member(&app, "GET", "/v1/me/account", "/v1/me/account", None, &token, None).await;
    assert_eq!(account["receipts"].as_array().unwrap().len(), 2, "the charge has its receipt: {account}");
    // The next period is not due: nothing.
    assert!(renewer.tick().await.unwrap().outcomes.is_empty());
    let (status, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!((status, view["status"].as_str(), view["next_charge_at"].as_u64()), (200, Some("active"), Some(end + 30 * DAY - 3 * DAY)), "{view}");
    assert!(view["last_failure"].is_null(), "{view}");

    // The merchant sees the mandate with the member.
    let path = format!("/v1/members/{}", app.wallet(1));
    let (status, seen) = app.call("GET", "/v1/members/{wallet}", &path, None, Some(&app.key)).await;
    assert_eq!((status, seen["mandate"]["status"].as_str(), seen["mandate"]["max_charges"].as_u64()), (200, Some("active"), Some(3)), "{seen}");

    // On-chain: one charge of three, period 1 next.
    let m = mandate_of(&proposal["typed_data"]["message"]);
    let id: B256 = view["mandate_id"].as_str().unwrap().parse().unwrap();
    let state = SubscriptionCheckout::new(app.h.chain.deployment.checkout, &app.h.rpc).mandateState(id).call().await.unwrap();
    assert_eq!((state.charges, state.nextPeriod), (1, 1));
    assert_eq!(m.maxCharges, 3);
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_mandate_renews_the_plan_once_per_period);

/// A charge that would fail is not sent and says why: the allowance taken back, then the
/// mandate revoked on the chain (which ends it); each is `subscription.renewal_failed` with
/// the reason, the fix and the next attempt (none once only the member can fix it), and the
/// mandate's view shows the last failure.
pub(crate) async fn a_failing_renewal_says_why_and_a_revoked_mandate_ends(kind: DbKind) {
    let (app, renewer) = spawn(kind).await;
    pay_premium(&app, 2).await;
    let (token, _, _) = sign_in(&app, 2).await;
    let proposal = turn_on(&app, 2, &token).await;
    let m = mandate_of(&proposal["typed_data"]["message"]);
    approve(&app, 2, m.token, U256::ZERO).await;
    let end = expires_at(&app, 2).await;
    // The pre-flight, days before the charge, finds it would fail and says how to fix it.
    travel(&app, end - 5 * DAY).await;
    assert_eq!(renewer.tick().await.unwrap().outcomes[0].1, Outcome::AtRisk(RenewalFailure::InsufficientAllowance));
    let risk = app.h.events("subscription.renewal_at_risk").await;
    assert_eq!((risk.len(), risk[0].payload["data"]["reason"].as_str()), (1, Some("insufficient_allowance")));
    assert!(risk[0].payload["data"]["fix"].as_str().unwrap().contains("Approve"));
    travel(&app, end - 2 * DAY).await;
    let report = renewer.tick().await.unwrap();
    assert_eq!(report.outcomes[0].1, Outcome::Failed(RenewalFailure::InsufficientAllowance), "{report:?}");
    let failed = app.h.events("subscription.renewal_failed").await;
    let data = &failed[0].payload["data"];
    assert_eq!((data["reason"].as_str(), data["source"].as_str(), data["attempt_count"].as_u64()), (Some("insufficient_allowance"), Some("mandate"), Some(1)));
    let now = app.state.clock.now();
    let next = data["next_attempt_at"].as_u64().unwrap();
    assert!((now + 24 * 3_600 - 5..=now + 24 * 3_600 + 5).contains(&next), "next attempt in a day: {next} vs {now}");
    assert!(data["fix"].as_str().unwrap().contains("Approve"), "{data}");
    let (token, _, _) = sign_in(&app, 2).await; // the first token expired on the way
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!(view["last_failure"]["reason"], "insufficient_allowance", "{view}");
    // The renewal of the current period failed: past_due, access still to the end.
    let path = format!("/v1/subscriptions/{}", app.wallet(2));
    let (_, sub) = app.call("GET", "/v1/subscriptions/{wallet}", &path, None, None).await;
    assert_eq!((sub["status"].as_str(), sub["expires_at"].as_u64()), (Some("past_due"), Some(end)), "{sub}");
    // Not again before the next attempt.
    assert!(renewer.tick().await.unwrap().outcomes.is_empty());

    // Revoked on the chain by the payer: the next attempt ends the mandate.
    let wallet = devnet::provider_for(&app.h.chain.anvil, 2);
    let revoked = SubscriptionCheckout::new(app.h.chain.deployment.checkout, &wallet).revokeMandate(m.clone()).send().await.unwrap();
    assert!(revoked.get_receipt().await.unwrap().status());
    travel(&app, next + 1).await;
    assert_eq!(renewer.tick().await.unwrap().outcomes[0].1, Outcome::Failed(RenewalFailure::MandateRevoked));
    let failed = app.h.events("subscription.renewal_failed").await;
    assert_eq!((failed.len(), failed[1].payload["data"]["next_attempt_at"].as_u64()), (2, None));
    let (token, _, _) = sign_in(&app, 2).await;
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!((view["status"].as_str(), view["ended_reason"].as_str()), (Some("ended"), Some("mandate_revoked")), "{view}");
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "an ended mandate is not looked at again");
    assert_eq!(expires_at(&app, 2).await, end, "nothing was charged");
    // Nothing is retried any more, so no grace: at its end the plan expires, and says why.
    travel(&app, end + 60).await;
    reminders(&app).tick().await.unwrap();
    let expired = app.h.events("subscription.expired").await;
    let data = &expired[0].payload["data"];
    assert_eq!((data["reason"].as_str(), data["renewal_failure"].as_str()), (Some("renewal_failed"), Some("mandate_revoked")), "{data}");
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_failing_renewal_says_why_and_a_revoked_mandate_ends);

/// Bad mandates are refused in words and store nothing: a signature over other terms or by
/// another wallet, terms that do not fit the plan (a cap below the price, another start), a
/// forged cross-site request, no subscription; turning off stops the renewer.
pub(crate) async fn bad_mandates_are_refused_and_turning_off_stops_the_renewer(kind: DbKind) {
    let (app, renewer) = spawn(kind).await;
    let (token, cookie, csrf) = sign_in(&app, 3).await;
    let (status, _) = member(&app, "GET", PROPOSAL, &format!("{PROPOSAL}?token=TMAI"), None, &token, None).await;
    assert_eq!(status, 404, "no subscription");
    pay_premium(&app, 3).await;
    let (status, proposal) = member(&app, "GET", PROPOSAL, &format!("{PROPOSAL}?token=TMAI&max_charges=2"), None, &token, None).await;
    assert_eq!(status, 200, "{proposal}");
    let message = proposal["typed_data"]["message"].clone();
    let m = mandate_of(&message);
    let good = sign_mandate(&app, 3, &m);
    let post = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move { member(app, "POST", MANDATE, MANDATE, Some(body), &token, None).await }
    };

    // Well-formed but refused (422, not 400: nothing in the body is malformed): signed over
    // other terms (a higher cap than the one posted) or by another wallet, a token the
    // checkout does not take, a charge count beyond what a mandate allows.
    let mut bigger = m.clone();
    bigger.maxAmount *= U256::from(10);
    for signature in [sign_mandate(&app, 3, &bigger), sign_mandate(&app, 4, &m)] {
        let (status, answer) = post(json!({ "mandate": message, "signature": signature })).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("mandate_refused")), "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("would not accept"), "{answer}");
    }
    for (field, value) in [("token", json!(format!("{}", Address::ZERO))), ("maxCharges", json!(500))] {
        let mut changed = message.clone();
        changed[field] = value;
        let signature = sign_mandate(&app, 3, &mandate_of(&changed));
        let (status, answer) = post(json!({ "mandate": changed, "signature": signature })).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("mandate_refused")), "{field}: {answer}");
    }
    // Terms that do not fit: a cap below today's price, another start.
    for (field, value) in [("maxAmount", json!("1")), ("start", json!((m.start + DAY).to_string()))] {
        let mut changed = message.clone();
        changed[field] = value;
        let signature = sign_mandate(&app, 3, &mandate_of(&changed));
        let (status, answer) = post(json!({ "mandate": changed, "signature": signature })).await;
        assert_eq!(status, 409, "{field}: {answer}");
    }
    // Malformed.
    for body in [json!({ "mandate": message }), json!({ "mandate": message, "signature": "xyz" }), json!({ "mandate": {"payer": "0x1"}, "signature": good })] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    // Forged from another site.
    let (status, answer) =
        member(&app, "POST", MANDATE, MANDATE, Some(json!({ "mandate": message, "signature": good })), &token, Some((&cookie, "https://evil.example", &csrf)))
            .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("csrf")), "{answer}");
    let (status, _) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!(status, 404, "nothing was stored");

    // Canceling the plan turns automatic renewal off with it; undoing the cancel does not
    // turn it on again (the member consents again).
    approve(&app, 3, m.token, proposal["approve_amount"].as_str().unwrap().parse().unwrap()).await;
    let (status, _) = member(&app, "POST", MANDATE, MANDATE, Some(json!({ "mandate": message, "signature": good })), &token, None).await;
    assert_eq!(status, 201);
    let (status, _) = member(&app, "POST", "/v1/me/cancel", "/v1/me/cancel", None, &token, None).await;
    assert_eq!(status, 200);
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!(view["status"], "off", "{view}");
    let (status, _) = member(&app, "POST", "/v1/me/uncancel", "/v1/me/uncancel", None, &token, None).await;
    assert_eq!(status, 200);
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!(view["status"], "off", "{view}");
    assert_eq!(app.h.events("subscription.renewal_disabled").await.len(), 1);

    // A fresh proposal (a new salt: a mandate turned off is never charged again), from the
    // page (cookie, origin, CSRF), then turned off: the renewer leaves it alone.
    let (_, proposal) = member(&app, "GET", PROPOSAL, &format!("{PROPOSAL}?token=TMAI&max_charges=2"), None, &token, None).await;
    let message = proposal["typed_data"]["message"].clone();
    let m = mandate_of(&message);
    let good = sign_mandate(&app, 3, &m);
    approve(&app, 3, m.token, proposal["approve_amount"].as_str().unwrap().parse().unwrap()).await;
    let (status, view) =
        member(&app, "POST", MANDATE, MANDATE, Some(json!({ "mandate": message, "signature": good })), &token, Some((&cookie, ORIGIN, &csrf))).await;
    assert_eq!(status, 201, "{view}");
    let (status, off) = member(&app, "DELETE", MANDATE, MANDATE, None, &token, Some((&cookie, ORIGIN, &csrf))).await;
    assert_eq!((status, off["status"].as_str(), off["next_charge_at"].as_u64()), (200, Some("off"), None), "{off}");
    let (status, _) = member(&app, "DELETE", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!(status, 404, "already off");
    let (on, off) = (app.h.events("subscription.renewal_enabled").await, app.h.events("subscription.renewal_disabled").await);
    assert_eq!((on.len(), off.len()), (2, 2), "one event each way, each time");
    assert_eq!((on[0].payload["data"]["max_charges"].as_u64(), off[0].payload["data"]["source"].as_str()), (Some(2), Some("member")));
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
    travel(&app, expires_at(&app, 3).await - 2 * DAY).await;
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "a mandate turned off is never charged");
}
on_both_databases!(bad_mandates_are_refused_and_turning_off_stops_the_renewer);

/// A renewal that keeps failing makes the plan `past_due`: access (the API and the badge's
/// `isActive` alike) ends at the paid expiry, nobody having paid for more; the renewer keeps
/// trying through the grace period, and a charge that lands there starts a full period from
/// its confirmation. A plan whose renewal never lands expires when the grace period ends,
/// with the reason (`renewal_failed`, `insufficient_allowance`).
async fn a_failed_renewal_is_past_due_without_access_until_it_lands_or_the_grace_ends(kind: DbKind) {
    let (app, renewer) = spawn(kind).await;
    let mut cap = U256::ZERO;
    for index in [5, 6] {
        pay_premium(&app, index).await;
        let (token, _, _) = sign_in(&app, index).await;
        let proposal = turn_on(&app, index, &token).await;
        cap = proposal["approve_amount"].as_str().unwrap().parse().unwrap();
        approve(&app, index, app.h.chain.deployment.tokens[0].address, U256::ZERO).await;
    }
    mint(&app).await;
    let (end5, end6) = (expires_at(&app, 5).await, expires_at(&app, 6).await);
    assert!(badge_active(&app, 5).await);

    // Two days before the end: both fail, both past_due, access still to the end.
    travel(&app, end5 - 2 * DAY).await;
    let report = renewer.tick().await.unwrap();
    assert!(report.outcomes.iter().all(|(_, o)| *o == Outcome::Failed(RenewalFailure::InsufficientAllowance)) && report.outcomes.len() == 2, "{report:?}");
    assert_eq!(subscription(&app, 5).await["status"], "past_due");
    assert!(badge_active(&app, 5).await, "paid time still runs");

    // A day past the end: no access (the badge agrees), still past_due, not expired.
    travel(&app, end6 + DAY).await;
    assert_eq!(reminders(&app).tick().await.unwrap().expired, 0, "in the grace period");
    let sub = subscription(&app, 5).await;
    assert_eq!((sub["status"].as_str(), sub["expires_at"].as_u64()), (Some("past_due"), Some(end5)), "{sub}");
    assert!(!badge_active(&app, 5).await, "no access past the paid expiry, on the chain as in the API");
    let (token, _, _) = sign_in(&app, 5).await;
    let (_, me) = member(&app, "GET", "/v1/me", "/v1/me", None, &token, None).await;
    assert_eq!((me["status"].as_str(), me["tier"].as_u64()), (Some("past_due"), Some(0)), "{me}");
    // Tried again a day after the first attempt: still failing.
    let report = renewer.tick().await.unwrap();
    assert_eq!(report.outcomes.len(), 2, "{report:?}");

    // Wallet 5 approves again; the next attempt, inside the grace period, lands.
    approve(&app, 5, app.h.chain.deployment.tokens[0].address, cap).await;
    travel(&app, end6 + 2 * DAY + 60).await;
    let report = renewer.tick().await.unwrap();
    assert!(report.outcomes.iter().any(|(_, o)| matches!(o, Outcome::Sent(_))), "{report:?}");
    assert!(report.outcomes.iter().any(|(_, o)| *o == Outcome::Failed(RenewalFailure::InsufficientAllowance)), "{report:?}");
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    // The watcher on the service's clock, which follows the chain's time here.
    app.h.catch_up_with(&app.h.watcher.clone().with_clock(app.state.clock.clone())).await;
    let charged_at = app.state.clock.now();
    let sub = subscription(&app, 5).await;
    let renewed_to = sub["expires_at"].as_u64().unwrap();
    assert_eq!(sub["status"], "active", "{sub}");
    assert!((charged_at + 30 * DAY - 120..=charged_at + 30 * DAY).contains(&renewed_to), "a full period from the charge: {renewed_to} vs {charged_at}");
    mint(&app).await;
    assert!(badge_active(&app, 5).await, "the badge follows the renewal");

    // Wallet 6 never fixes it: expired when the grace period ends, with the reason.
    travel(&app, end6 + 3 * DAY + 60).await;
    assert_eq!(reminders(&app).tick().await.unwrap().expired, 1);
    let expired = app.h.events("subscription.expired").await;
    let data = &expired[0].payload["data"];
    assert_eq!(
        (data["wallet"].as_str(), data["reason"].as_str(), data["renewal_failure"].as_str(), data["expired_at"].as_u64()),
        (Some(app.wallet(6).to_lowercase().as_str()), Some("renewal_failed"), Some("insufficient_allowance"), Some(end6)),
        "{data}"
    );
    assert_eq!(subscription(&app, 6).await["status"], "expired");
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "an expired plan is not charged");
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_failed_renewal_is_past_due_without_access_until_it_lands_or_the_grace_ends);

/// A mandate pays for the plan it was signed for: a scheduled switch to another token stops
/// it at once, an upgrade paid on-chain stops it when it confirms (`plan_changed`), each
/// plainly (`subscription.renewal_disabled` with the reason; the preview says so before),
/// and nothing is charged for the old plan.
async fn another_plan_or_token_stops_automatic_renewal_plainly(kind: DbKind) {
    let (app, renewer) = spawn(kind).await;
    pay_premium(&app, 7).await;
    let (token, _, _) = sign_in(&app, 7).await;
    turn_on(&app, 7, &token).await;
    let preview = |plan: u32| {
        let (app, token) = (&app, token.clone());
        async move {
            let path = format!("/v1/me/plan-change?plan_id={plan}&token=TMAI");
            let (status, p) = member(app, "GET", "/v1/me/plan-change", &path, None, &token, None).await;
            assert_eq!(status, 200, "{p}");
            p
        }
    };
    let (same, up, yearly) = (preview(3).await, preview(4).await, preview(13).await);
    assert_eq!((same["automatic_renewal"].as_str(), same["switch_stops_renewal"].as_bool()), (Some("continues"), Some(false)), "{same}");
    assert_eq!(up["automatic_renewal"], "stops", "{up}");
    // Premium yearly is the same tier, but another plan: the monthly mandate stops too.
    assert_eq!((yearly["automatic_renewal"].as_str(), yearly["switch_stops_renewal"].as_bool()), (Some("stops"), Some(true)), "{yearly}");

    // The same plan, paid in USD from the next renewal: the TMAI mandate stops now.
    let (status, answer) = member(&app, "PUT", "/v1/me/switch", "/v1/me/switch", Some(json!({ "plan_id": 3, "token": "USD" })), &token, None).await;
    assert_eq!(status, 200, "{answer}");
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!((view["status"].as_str(), view["ended_reason"].as_str()), (Some("ended"), Some("token_changed")), "{view}");
    let off = app.h.events("subscription.renewal_disabled").await;
    assert_eq!((off.len(), off[0].payload["data"]["reason"].as_str(), off[0].payload["data"]["source"].as_str()), (1, Some("token_changed"), Some("mandate")));
    let (status, _) = member(&app, "DELETE", "/v1/me/switch", "/v1/me/switch", None, &token, None).await;
    assert_eq!(status, 200);

    // On again (a minute later); then an upgrade to VIP paid on-chain: the Premium mandate
    // ends when it confirms.
    travel(&app, app.state.clock.now() + 60).await;
    let (token, _, _) = sign_in(&app, 7).await;
    turn_on(&app, 7, &token).await;
    let quote = app.h.quote(7, 4, "TMAI", 1).await;
    app.h.approve_and_pay(7, &quote).await;
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "nothing charged for the old plan");
    let (token, _, _) = sign_in(&app, 7).await;
    let (_, view) = member(&app, "GET", MANDATE, MANDATE, None, &token, None).await;
    assert_eq!((view["status"].as_str(), view["ended_reason"].as_str()), (Some("ended"), Some("plan_changed")), "{view}");
    let off = app.h.events("subscription.renewal_disabled").await;
    assert_eq!((off.len(), off[1].payload["data"]["reason"].as_str(), off[1].payload["data"]["plan_id"].as_u64()), (2, Some("plan_changed"), Some(3)));
    // Even at the new end, the old mandate is never charged.
    travel(&app, expires_at(&app, 7).await - 2 * DAY).await;
    assert!(renewer.tick().await.unwrap().outcomes.is_empty());
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(another_plan_or_token_stops_automatic_renewal_plainly);

/// The mandate's state on the chain: `(charges, nextPeriod)`.
async fn on_chain(app: &App, token: &str) -> (u32, u64) {
    let (_, view) = member(app, "GET", MANDATE, MANDATE, None, token, None).await;
    let id: B256 = view["mandate_id"].as_str().unwrap().parse().unwrap();
    let state = SubscriptionCheckout::new(app.h.chain.deployment.checkout, &app.h.rpc).mandateState(id).call().await.unwrap();
    (state.charges, state.nextPeriod)
}

/// Wallet 1, a Premium member who turned automatic renewal on, before its first charge.
struct Renewing {
    app: App,
    renewer: Renewer,
    /// One period's price in TMAI.
    price: U256,
    tmai: Address,
    /// The paid period's end.
    end: u64,
    /// The member's TMAI balance before any charge.
    before: U256,
}

async fn renewing(kind: DbKind) -> Renewing {
    let (app, renewer) = spawn(kind).await;
    pay_premium(&app, 1).await;
    let (token, _, _) = sign_in(&app, 1).await;
    let proposal = turn_on(&app, 1, &token).await;
    let price: U256 = proposal["price"].as_str().unwrap().parse().unwrap();
    let tmai = app.h.chain.deployment.tokens[0].address;
    let end = expires_at(&app, 1).await;
    let before = balance(&app, tmai, 1).await;
    Renewing { app, renewer, price, tmai, end, before }
}

/// Exactly once against the service's own failures: two renewers at the same moment (a
/// take-over) and a renewer whose record of the charge was lost (a crash between sending and
/// recording) charge the period once, and the plan renews once.
async fn two_renewers_or_a_lost_record_charge_once(kind: DbKind) {
    let Renewing { app, renewer, price, tmai, end, before } = renewing(kind).await;
    travel(&app, end - 2 * DAY).await;

    // Two renewers with the checkout's renewer key look at the same moment.
    let second = renewer.clone();
    let (a, b) = tokio::join!(renewer.tick(), second.tick());
    let sent = [a, b].into_iter().filter_map(Result::ok).flat_map(|r| r.outcomes).filter(|(_, o)| matches!(o, Outcome::Sent(_))).count();
    assert!(sent >= 1, "at least one of them sent the charge");
    app.h.mine(1).await;
    let (token, _, _) = sign_in(&app, 1).await;
    assert_eq!(on_chain(&app, &token).await, (1, 1), "charged once");
    assert_eq!(before - balance(&app, tmai, 1).await, price, "one period's price");

    // The record is lost (a crash before it was written): the chain says charged, nothing is
    // sent again.
    sqlx::query("DELETE FROM renewal_charges").execute(app.h.test_db.db.pool()).await.unwrap();
    let report = renewer.tick().await.unwrap();
    assert_eq!(report.outcomes.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(), [Outcome::Charged], "{report:?}");
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    assert_eq!((app.h.events("subscription.renewed").await.len(), expires_at(&app, 1).await), (1, end + 30 * DAY));
    assert_eq!(before - balance(&app, tmai, 1).await, price, "still one period's price");
}
on_both_databases!(two_renewers_or_a_lost_record_charge_once);

/// Exactly once against the chain: a charge a reorg drops before its confirmations is sent
/// again after the resend delay; a charge a reorg drops after the plan was renewed is taken
/// back by the watcher and charged again. The member pays one period's price each time and
/// the plan renews once.
async fn a_reorged_charge_is_charged_again_once(kind: DbKind) {
    let Renewing { app, renewer, price, tmai, end, before } = renewing(kind).await;
    let reorg = |depth: u64| {
        let rpc = app.h.rpc.clone();
        async move { rpc.anvil_reorg(alloy::rpc::types::anvil::ReorgOptions { depth, tx_block_pairs: vec![] }).await.unwrap() }
    };

    // Sent, then dropped by a one-block reorg before any confirmation.
    travel(&app, end - 2 * DAY).await;
    let report = renewer.tick().await.unwrap();
    let [(_, Outcome::Sent(first))] = report.outcomes.as_slice() else { panic!("{report:?}") };
    let receipt = mined(&app, *first).await;
    let head = alloy::providers::Provider::get_block_number(&app.h.rpc).await.unwrap();
    reorg(head - receipt.block_number.unwrap() + 1).await;
    assert_eq!(before, balance(&app, tmai, 1).await, "the reorg took the charge back");
    assert!(renewer.tick().await.unwrap().outcomes.is_empty(), "a sent charge is given the resend delay");
    travel(&app, end - 2 * DAY + 700).await;
    let report = renewer.tick().await.unwrap();
    let [(_, Outcome::Sent(second))] = report.outcomes.as_slice() else { panic!("{report:?}") };
    assert_ne!(first, second, "a new charge (for a new order)");
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    assert_eq!(expires_at(&app, 1).await, end + 30 * DAY);
    assert_eq!(before - balance(&app, tmai, 1).await, price);

    // Dropped again, now deeper than the confirmations, after the plan was renewed: the
    // watcher takes the renewal back, and the renewer charges the period again.
    let receipt = mined(&app, *second).await;
    let head = alloy::providers::Provider::get_block_number(&app.h.rpc).await.unwrap();
    reorg(head - receipt.block_number.unwrap() + 1).await;
    app.h.mine(crate::harness::CONFIRMATIONS + 1).await;
    app.h.catch_up().await;
    assert_eq!(expires_at(&app, 1).await, end, "the renewal the dropped charge paid was taken back");
    assert_eq!(before, balance(&app, tmai, 1).await);
    travel(&app, end - 2 * DAY + 1_400).await;
    let report = renewer.tick().await.unwrap();
    assert!(matches!(report.outcomes.as_slice(), [(_, Outcome::Sent(_))]), "{report:?}");
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    assert_eq!(expires_at(&app, 1).await, end + 30 * DAY);
    assert_eq!(before - balance(&app, tmai, 1).await, price, "one period's price in all");
    let (token, _, _) = sign_in(&app, 1).await;
    assert_eq!(on_chain(&app, &token).await, (1, 1));
}
on_both_databases!(a_reorged_charge_is_charged_again_once);
