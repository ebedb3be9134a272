//! Receipts and credit notes (issue 28 §4), on a real chain and database: every confirmed
//! payment, on chain or by card, gets a receipt numbered from one gap-free sequence in the
//! transaction that confirms it; its member and the merchant read it as JSON or a printable
//! page, nobody else does; the member adds buyer details once; a refund or a reorg cancels it
//! with a numbered credit note; numbers are never skipped or taken twice, even by issuers
//! racing or rolling back.

use alloy::primitives::Address;
use serde_json::{Value, json};
use tmai_pay::{
    auth::AuthService,
    clock::Clock,
    config::{CardSettings, HttpSettings, MerchantSettings},
    store::receipts::{self, NewReceipt, PaidWith},
};

use crate::{
    api::App,
    auth::{Msg, ORIGIN, auth_settings, new_nonce, pay_premium, sign},
    card::{Card, SECRET, cents, charge_refunded, payment_session},
    db::{DbKind, on_both_databases},
};

const RECEIPT: &str = "/v1/receipts/{id}";
const BUYER: &str = "/v1/receipts/{id}/buyer";

fn merchant() -> MerchantSettings {
    MerchantSettings {
        name: Some("Example <Shop>".into()),
        address: Some("1 Main Street\nSpringfield".into()),
        tax_id: Some("EU123456789".into()),
        ..Default::default()
    }
}

/// A service with sign-in, card payments and the merchant's details.
pub(crate) async fn spawn(kind: DbKind) -> Card {
    let clock = Clock::system();
    let (state_clock, auth) = (clock.clone(), auth_settings(None));
    let card = CardSettings { webhook_secret: Some(SECRET.to_string().into()), ..Default::default() };
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
        state.with_card(card).with_clock(state_clock).with_auth(AuthService::from_settings(&auth).unwrap()).with_merchant(merchant())
    })
    .await;
    Card { app, clock }
}

/// Signs wallet `index` in; returns its membership token and session cookie and CSRF token.
pub(crate) async fn sign_in(app: &App, index: usize) -> (String, String, String) {
    let key = tmai_pay::chain::devnet::key(&app.h.chain.anvil, index);
    let nonce = new_nonce(app).await;
    let text = Msg::new(key.address(), &nonce, app.state.clock.now()).text();
    let response =
        app.client.post(format!("{}/v1/auth/verify", app.base)).json(&json!({ "message": text, "signature": sign(&key, &text) })).send().await.unwrap();
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (body["token"].as_str().unwrap().to_string(), cookie, body["csrf_token"].as_str().unwrap().to_string())
}

/// The id at the end of a receipt url.
fn id_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// The receipt url `payment.confirmed` carried for `wallet`.
async fn receipt_of(app: &App, wallet: &str) -> String {
    let confirmed = app.h.events("payment.confirmed").await;
    let event = confirmed.iter().rev().find(|e| e.payload["data"]["payer"].as_str().unwrap().eq_ignore_ascii_case(wallet)).expect("a confirmation");
    let url = event.payload["data"]["receipt_url"].as_str().expect("payment.confirmed carries receipt_url");
    assert!(url.starts_with("/v1/receipts/rcpt_"), "{url}");
    id_of(url)
}

/// Asserts the documents are numbered 1, 2, … with no gap and no repeat.
async fn assert_gap_free(app: &App, count: u64) {
    let numbers = receipts::numbers(&app.h.test_db.db).await.unwrap();
    assert_eq!(numbers, (1..=count).collect::<Vec<_>>(), "one unbroken sequence");
}

async fn put_buyer(app: &App, id: &str, body: Value, auth: (&str, Option<(&str, &str)>)) -> (u16, Value) {
    let mut request = app.client.put(format!("{}/v1/receipts/{id}/buyer", app.base)).json(&body);
    request = match auth.1 {
        Some((origin, csrf)) => request.header("cookie", auth.0).header("origin", origin).header("x-csrf-token", csrf),
        None => request.bearer_auth(auth.0),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    app.check("PUT", BUYER, status, &body);
    (status, body)
}

/// Two members pay on chain. Each payment's `payment.confirmed` names its receipt; the
/// merchant reads both, each member only their own (another's is the same 404 as none), an
/// anonymous caller neither; a browser gets the printable page with the merchant's details,
/// escaped. The member adds buyer details once (a second time, bad ones, a forged
/// cross-site request are refused and change nothing), and their next receipt carries them.
/// The merchant's refund cancels a receipt with a credit note; the numbers stay unbroken.
async fn a_paid_checkout_has_a_receipt_its_member_and_the_merchant_read(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;
    pay_premium(app, 1).await;
    pay_premium(app, 2).await;
    let (alice, bob) = (app.wallet(1), app.wallet(2));
    let (mine, theirs) = (receipt_of(app, &alice).await, receipt_of(app, &bob).await);
    assert_gap_free(app, 2).await;

    // Who may read.
    let path = |id: &str| format!("/v1/receipts/{id}");
    let (status, answer) = app.call("GET", RECEIPT, &path(&mine), None, None).await;
    assert_eq!(status, 401, "{answer}");
    let (status, merchant_view) = app.call("GET", RECEIPT, &path(&mine), None, Some(&app.key)).await;
    assert_eq!(status, 200, "{merchant_view}");
    let (token, cookie, csrf) = sign_in(app, 1).await;
    let (status, view) = app.call("GET", RECEIPT, &path(&mine), None, Some(&token)).await;
    assert_eq!((status, &view), (200, &merchant_view));
    for id in [theirs.as_str(), "rcpt_00000000000000000000000000000000", "not-an-id!"] {
        let (status, answer) = app.call("GET", RECEIPT, &path(id), None, Some(&token)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")), "{id}: {answer}");
    }
    let (status, answer) = app.call("GET", RECEIPT, &path(&mine), None, Some("tmai_sk_0000")).await;
    assert_eq!(status, 401, "{answer}");

    // What it says.
    assert_eq!(view["kind"], "receipt");
    assert_eq!(view["status"], "issued");
    assert!(view["number"].as_str().unwrap().starts_with("R-00000"));
    assert_eq!(view["merchant"]["name"], "Example <Shop>");
    assert_eq!(view["merchant"]["tax_id"], "EU123456789");
    assert!(view["wallet"].as_str().unwrap().eq_ignore_ascii_case(&alice));
    assert_eq!((view["plan_id"].as_u64(), view["periods"].as_u64(), view["method"].as_str()), (Some(3), Some(1), Some("chain")));
    assert_eq!(view["chain"]["token_symbol"], "TMAI");
    let payment: Vec<u8> = sqlx::query_scalar("SELECT amount FROM payments WHERE payer = $1")
        .bind(alice.parse::<Address>().unwrap().to_vec())
        .fetch_one(app.h.test_db.db.pool())
        .await
        .unwrap();
    assert_eq!(view["chain"]["amount"].as_str().unwrap(), alloy::primitives::U256::from_be_slice(&payment).to_string());
    let sub = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{alice}"), None, None).await.1;
    assert_eq!(view["period_end"], sub["expires_at"]);
    assert!(view["period_start"].as_u64().unwrap() < view["period_end"].as_u64().unwrap());

    // The member's list.
    let (status, list) = app.call("GET", "/v1/me/receipts", "/v1/me/receipts", None, Some(&token)).await;
    assert_eq!((status, list["receipts"].as_array().unwrap().len()), (200, 1), "{list}");

    // Buyer details: refused ones change nothing.
    let bad = [
        (json!({ "name": "x".repeat(201) }), 400),
        (json!({}), 400),
        (json!({ "name": "  " }), 400),
        (json!({ "name": "Ada", "vat": "x" }), 400),
        (json!({ "name": "Ada\u{7}" }), 400),
        // null is not text (the schema says string): leave a field out instead.
        (json!({ "name": "Ada", "tax_id": null }), 400),
        (json!({ "name": 7 }), 400),
    ];
    for (body, status) in bad {
        let (got, answer) = put_buyer(app, &mine, body.clone(), (&token, None)).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let (status, answer) = put_buyer(app, &theirs, json!({ "name": "Ada" }), (&token, None)).await;
    assert_eq!(status, 404, "another wallet's receipt: {answer}");
    let (status, answer) = put_buyer(app, &mine, json!({ "name": "Ada" }), (&cookie, Some(("https://evil.example", &csrf)))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("csrf")), "{answer}");
    let (status, answer) = put_buyer(app, &mine, json!({ "name": "Ada" }), (&cookie, Some((ORIGIN, "wrong")))).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM buyer_details").await, 0);
    let (status, added) =
        put_buyer(app, &mine, json!({ "name": "<b>Ada</b> Ltd", "address": "2 Side Road\nShelbyville", "tax_id": "GB99" }), (&cookie, Some((ORIGIN, &csrf))))
            .await;
    assert_eq!((status, added["buyer"]["name"].as_str()), (200, Some("<b>Ada</b> Ltd")), "{added}");
    let (status, answer) = put_buyer(app, &mine, json!({ "name": "Eve" }), (&token, None)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("receipt_fixed")), "{answer}");

    // The printable page, everything escaped.
    let page = app.client.get(format!("{}{}", app.base, path(&mine))).bearer_auth(&token).header("accept", "text/html,*/*").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    for expected in ["Example &lt;Shop&gt;", "Springfield", "EU123456789", "&lt;b&gt;Ada&lt;/b&gt; Ltd", "Shelbyville", "GB99", "TMAI", &mine] {
        assert!(html.contains(expected), "{expected} missing from the page");
    }
    assert!(!html.contains("<b>Ada</b>"), "buyer text reaches the page unescaped");
    assert!(html.to_lowercase().contains(&alice.to_lowercase()));

    // The next receipt of that member names the buyer at once.
    pay_premium(app, 1).await;
    let next = receipt_of(app, &alice).await;
    assert_ne!(next, mine);
    let (_, view) = app.call("GET", RECEIPT, &path(&next), None, Some(&token)).await;
    assert_eq!(view["buyer"]["tax_id"], "GB99");
    assert_gap_free(app, 3).await;

    // The merchant refunds Bob's payment: a credit note cancels its receipt.
    let id: i64 = sqlx::query_scalar("SELECT id FROM payments WHERE payer = $1")
        .bind(bob.parse::<Address>().unwrap().to_vec())
        .fetch_one(app.h.test_db.db.pool())
        .await
        .unwrap();
    let (status, answer) =
        app.call("POST", "/v1/payments/{id}/refund", &format!("/v1/payments/{id}/refund"), Some(json!({ "note": "asked" })), Some(&app.key)).await;
    assert_eq!(status, 200, "{answer}");
    let (_, cancelled) = app.call("GET", RECEIPT, &path(&theirs), None, Some(&app.key)).await;
    assert_eq!(cancelled["status"], "cancelled");
    let credit = cancelled["cancelled_by"].as_str().unwrap();
    let (_, note) = app.call("GET", RECEIPT, &path(credit), None, Some(&app.key)).await;
    assert_eq!((note["kind"].as_str(), note["reason"].as_str(), note["credits"].as_str()), (Some("credit_note"), Some("refunded"), Some(theirs.as_str())));
    assert_eq!(note["number"], "CN-000004");
    assert_eq!(note["chain"]["amount"], cancelled["chain"]["amount"]);
    assert_gap_free(app, 4).await;
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_paid_checkout_has_a_receipt_its_member_and_the_merchant_read);

/// A card payment gets a receipt with the processor's payment id and the cents; a partial
/// refund a credit note for the part (the receipt stands), the rest of the refund one that
/// cancels it; the processor resending an event issues nothing twice.
async fn card_payments_have_receipts_and_refunds_credit_notes(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;
    let wallet = app.wallet(4);
    let amount = cents(3);
    let paid = payment_session("evt_rc_1", &wallet, 3, amount);
    for _ in 0..2 {
        assert_eq!(card.send(&paid).await.0, 200);
    }
    let id = tmai_pay::billing::receipts::card_receipt_id("evt_rc_1");
    let (status, view) = app.call("GET", RECEIPT, &format!("/v1/receipts/{id}"), None, Some(&app.key)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["method"].as_str(), view["card"]["payment"].as_str(), view["card"]["amount_cents"].as_u64()),
        (Some("card"), Some("pi_evt_rc_1"), Some(amount))
    );
    assert_eq!(view["usd_value"], "49.00");
    assert_gap_free(app, 1).await;
    // The card event's subscription event names the receipt.
    let activated = app.h.events("subscription.activated").await;
    assert_eq!(activated[0].payload["data"]["receipt_url"], format!("/v1/receipts/{id}"), "{}", activated[0].payload);

    let part = charge_refunded("evt_rc_2", "pi_evt_rc_1", amount, 1_000);
    for _ in 0..2 {
        assert_eq!(card.send(&part).await.0, 200);
    }
    let (_, view) = app.call("GET", RECEIPT, &format!("/v1/receipts/{id}"), None, Some(&app.key)).await;
    assert_eq!(view["status"], "issued", "a partial refund leaves the receipt standing");
    assert_gap_free(app, 2).await;
    assert_eq!(card.send(&charge_refunded("evt_rc_3", "pi_evt_rc_1", amount, amount)).await.0, 200);
    let (_, view) = app.call("GET", RECEIPT, &format!("/v1/receipts/{id}"), None, Some(&app.key)).await;
    assert_eq!(view["status"], "cancelled");
    let credited: Vec<i64> =
        sqlx::query_scalar("SELECT cents FROM receipts WHERE kind = 'credit_note' ORDER BY number").fetch_all(app.h.test_db.db.pool()).await.unwrap();
    assert_eq!(credited, [1_000, amount as i64 - 1_000], "the credit notes add up to the payment");
    assert_gap_free(app, 3).await;
}
on_both_databases!(card_payments_have_receipts_and_refunds_credit_notes);

fn card_receipt(i: u64) -> NewReceipt {
    NewReceipt {
        id: format!("rcpt_test_{i}"),
        wallet: Address::with_last_byte(i as u8),
        customer_ref: None,
        plan_id: 1,
        plan_name: "Basic".into(),
        periods: 1,
        period_start: 0,
        period_end: 1,
        paid_with: PaidWith::Card { grant: format!("evt_{i}"), payment: None, cents: 900, currency: "usd".into() },
        usd_micro: None,
        rate_usd: None,
    }
}

/// Issuers at the same moment queue on the sequence (no number twice); one that rolls back
/// gives its number back (no gap); an id issued before takes no number.
async fn racing_and_rolled_back_issuers_leave_no_gap(kind: DbKind) {
    let card = spawn(kind).await;
    let db = card.app.h.test_db.db.clone();
    let mut tx = db.begin_write().await.unwrap();
    assert_eq!(receipts::issue(&mut tx, &card_receipt(100), 1).await.unwrap(), Some(1));
    drop(tx);
    let tasks: Vec<_> = (0..12u64)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin_write().await.unwrap();
                let number = receipts::issue(&mut tx, &card_receipt(i), 1).await.unwrap();
                tx.commit().await.unwrap();
                number
            })
        })
        .collect();
    let mut numbers: Vec<u64> = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
    let mut tx = db.begin_write().await.unwrap();
    assert_eq!(receipts::issue(&mut tx, &card_receipt(3), 1).await.unwrap(), None, "issued before");
    // A batch (the watcher's pass) with one issued before and one twice: the rest take the
    // next numbers in order.
    let batch = [card_receipt(20), card_receipt(3), card_receipt(21), card_receipt(20)];
    assert_eq!(receipts::issue_all(&mut tx, &batch, 1).await.unwrap(), [Some(13), None, Some(14), None]);
    tx.commit().await.unwrap();
    assert_gap_free(&card.app, 14).await;
}
on_both_databases!(racing_and_rolled_back_issuers_leave_no_gap);
