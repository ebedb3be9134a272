//! The member's account (issue 28 §2, `GET /v1/me/account`), on a real chain and database:
//! a signed-in member sees their subscription, the reminders to come, every payment with
//! its receipt, and the badge as the chain renders it once minted; nobody else does.

use crate::{
    auth::pay_premium,
    db::{DbKind, on_both_databases},
    receipts::{sign_in, spawn},
};

const ACCOUNT: &str = "/v1/me/account";

async fn a_member_sees_plan_reminders_payments_and_badge(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;

    // Signed in before any purchase: an empty account.
    let (token, cookie, _) = sign_in(app, 1).await;
    let (status, empty) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    assert_eq!(status, 200, "{empty}");
    assert!(empty["subscription"].is_null() && empty["badge"].is_null(), "{empty}");
    assert_eq!((empty["receipts"].as_array().unwrap().len(), empty["reminders"].as_array().unwrap().len()), (0, 0));
    assert!(empty["wallet"].as_str().unwrap().eq_ignore_ascii_case(&app.wallet(1)));

    // Nobody else: no token, another's key, a made-up token.
    for auth in [None, Some(app.key.as_str()), Some("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")] {
        let (status, answer) = app.call("GET", ACCOUNT, ACCOUNT, None, auth).await;
        assert_eq!(status, 401, "{auth:?}: {answer}");
    }

    // Paid: the plan, its days, the reminders still to come, the payment with its receipt.
    pay_premium(app, 1).await;
    let (_, account) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    let sub = &account["subscription"];
    assert_eq!((sub["plan_id"].as_u64(), sub["status"].as_str(), sub["tier_name"].as_str()), (Some(3), Some("active"), Some("Premium")), "{account}");
    let now = app.state.clock.now();
    let expires_at = sub["expires_at"].as_u64().unwrap();
    assert_eq!(sub["days_left"].as_u64().unwrap(), (expires_at - now).div_ceil(86_400));
    let reminders: Vec<u64> = account["reminders"].as_array().unwrap().iter().map(|r| r["days_before"].as_u64().unwrap()).collect();
    assert_eq!(reminders, [7, 1], "the default reminders, soonest first");
    assert_eq!(account["reminders"][1]["at"].as_u64().unwrap(), expires_at - 86_400);
    let receipts = account["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!((receipts[0]["kind"].as_str(), receipts[0]["chain"]["token_symbol"].as_str()), (Some("receipt"), Some("TMAI")));
    assert!(account["badge"].is_null(), "not minted yet: {account}");
    assert_eq!(account["badge_unavailable"], false);

    // Minted: the badge as the chain renders it, read with the session cookie as the page does.
    let minter = app.minter();
    for _ in 0..50 {
        if minter.tick().await.unwrap().idle() {
            break;
        }
        app.h.mine(1).await;
    }
    let response = app.client.get(format!("{}{ACCOUNT}", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let status = response.status().as_u16();
    let account: serde_json::Value = response.json().await.unwrap();
    app.check("GET", ACCOUNT, status, &account);
    let badge = &account["badge"];
    assert_eq!((badge["tier"].as_u64(), badge["active"].as_bool(), badge["expires_at"].as_u64()), (Some(3), Some(true), Some(expires_at)), "{account}");
    assert!(badge["token_uri"].as_str().unwrap().starts_with("data:application/json;base64,"));

    // Another member sees only their own.
    let (other, _, _) = sign_in(app, 2).await;
    let (_, theirs) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&other)).await;
    assert!(theirs["subscription"].is_null() && theirs["receipts"].as_array().unwrap().is_empty(), "{theirs}");
}
on_both_databases!(a_member_sees_plan_reminders_payments_and_badge);

const PREVIEW: &str = "/v1/me/plan-change";

async fn preview(app: &crate::api::App, token: &str, query: &str) -> (u16, serde_json::Value) {
    app.call("GET", PREVIEW, &format!("{PREVIEW}?{query}"), None, Some(token)).await
}

/// The preview of a purchase is what its payment then does: an upgrade credits the unused
/// paid time (no more than previewed: the period is used meanwhile), a lower tier is
/// scheduled from the end of the period, the same tier adds its time; bad queries are
/// refused in words.
async fn the_plan_change_preview_is_what_the_payment_then_does(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;
    let (token, _, _) = sign_in(app, 1).await;
    let (status, fresh) = preview(app, &token, "plan_id=1&token=TMAI").await;
    assert_eq!((status, fresh["change"].as_str()), (200, Some("subscription.activated")), "{fresh}");

    // A Basic member.
    let quote = app.h.quote(1, 1, "TMAI", 1).await;
    app.h.pay(1, &quote).await;
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    let current = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{}", app.wallet(1)), None, None).await.1;
    let basic_end = current["expires_at"].as_u64().unwrap();

    let (_, same) = preview(app, &token, "plan_id=1&token=TMAI&periods=2").await;
    assert_eq!((same["change"].as_str(), same["credit_seconds"].as_u64()), (Some("subscription.renewed"), Some(0)));
    assert_eq!(same["expires_at"].as_u64().unwrap(), basic_end + 2 * 30 * 86_400);

    // Upgrade: preview, then pay it.
    let (status, up) = preview(app, &token, "plan_id=3&token=TMAI").await;
    assert_eq!((status, up["change"].as_str(), up["after_plan_id"].as_u64()), (200, Some("subscription.upgraded"), Some(3)), "{up}");
    let previewed = up["credit_seconds"].as_u64().unwrap();
    assert!(previewed > 0, "a month of Basic is worth some Premium time: {up}");
    let quote = app.h.quote(1, 3, "TMAI", 1).await;
    app.h.pay(1, &quote).await;
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    let upgraded = app.h.events("subscription.upgraded").await;
    let credited = upgraded[0].payload["data"]["credit_seconds"].as_u64().unwrap();
    assert!(credited <= previewed, "never more than previewed: {credited} > {previewed}");
    let elapsed = app.state.clock.now() - up["as_of"].as_u64().unwrap();
    // Premium time is worth ~5x Basic's: each second used costs about a fifth of one.
    assert!(previewed - credited <= elapsed + 1, "credit {credited} vs previewed {previewed} after {elapsed} s");

    // A lower tier now: scheduled from the end of the Premium period.
    let premium = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{}", app.wallet(1)), None, None).await.1;
    let premium_end = premium["expires_at"].as_u64().unwrap();
    let (_, down) = preview(app, &token, "plan_id=1&token=USD").await;
    assert_eq!(down["change"], "subscription.downgrade_scheduled", "{down}");
    assert_eq!((down["takes_effect_at"].as_u64(), down["expires_at"].as_u64()), (Some(premium_end), Some(premium_end)));
    assert_eq!(down["next_expires_at"].as_u64(), Some(premium_end + 30 * 86_400));

    // Bad queries.
    for (query, status) in [
        ("plan_id=99&token=TMAI", 404),
        ("plan_id=1&token=DOGE", 404),
        ("plan_id=1&token=TMAI&periods=0", 400),
        ("plan_id=1&token=TMAI&periods=37", 400),
        ("plan_id=1", 400),
        ("plan_id=x&token=TMAI", 400),
        ("plan_id=1&token=TMAI&extra=1", 400),
    ] {
        let (got, answer) = preview(app, &token, query).await;
        assert_eq!(got, status, "{query}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = app.call("GET", PREVIEW, &format!("{PREVIEW}?plan_id=1&token=TMAI"), None, None).await;
    assert_eq!(status, 401);
}
on_both_databases!(the_plan_change_preview_is_what_the_payment_then_does);

/// Posts to a member route with the token, or with the session cookie from `origin` with
/// `csrf`.
async fn post_member(app: &crate::api::App, route: &str, token: Option<&str>, session: Option<(&str, &str, &str)>) -> (u16, serde_json::Value) {
    let mut request = app.client.post(format!("{}{route}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((cookie, origin, csrf)) = session {
        request = request.header("cookie", cookie).header("origin", origin).header("x-csrf-token", csrf);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    app.check("POST", route, status, &body);
    (status, body)
}

/// A member cancels their own plan (access to the end of the period) and takes it back
/// before the end; each step once (a second is a 409), a forged cross-site request changes
/// nothing, a plan a card renews is the processor's to cancel, an ended plan cannot be
/// uncanceled; each change is an event with `source: member`.
async fn a_member_cancels_and_takes_it_back(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;
    let (token, cookie, csrf) = sign_in(app, 1).await;
    let (status, _) = post_member(app, "/v1/me/cancel", Some(&token), None).await;
    assert_eq!(status, 404, "no subscription yet");
    pay_premium(app, 1).await;

    // Forged: another origin, or no CSRF token: refused, nothing changed.
    for session in [(cookie.as_str(), "https://evil.example", csrf.as_str()), (cookie.as_str(), crate::auth::ORIGIN, "forged")] {
        let (status, answer) = post_member(app, "/v1/me/cancel", None, Some(session)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("csrf")), "{answer}");
    }
    assert_eq!(app.h.events("subscription.canceled").await.len(), 0);

    // From the account page (session, its origin, its CSRF token).
    let (status, canceled) = post_member(app, "/v1/me/cancel", None, Some((&cookie, crate::auth::ORIGIN, &csrf))).await;
    assert_eq!((status, canceled["status"].as_str()), (200, Some("canceled")), "{canceled}");
    let (status, again) = post_member(app, "/v1/me/cancel", Some(&token), None).await;
    assert_eq!(status, 409, "{again}");
    let events = app.h.events("subscription.canceled").await;
    assert_eq!((events.len(), events[0].payload["data"]["source"].as_str()), (1, Some("member")));
    let (_, account) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    assert_eq!(account["subscription"]["status"], "canceled");
    assert_eq!(account["reminders"].as_array().unwrap().len(), 2, "the end is still announced");

    // Taken back.
    let (status, active) = post_member(app, "/v1/me/uncancel", Some(&token), None).await;
    assert_eq!((status, active["status"].as_str(), active["expires_at"].as_u64()), (200, Some("active"), canceled["expires_at"].as_u64()), "{active}");
    let (status, _) = post_member(app, "/v1/me/uncancel", Some(&token), None).await;
    assert_eq!(status, 409, "nothing to undo");
    let events = app.h.events("subscription.uncanceled").await;
    assert_eq!((events.len(), events[0].payload["data"]["source"].as_str()), (1, Some("member")));

    // Ended: no undo.
    post_member(app, "/v1/me/cancel", Some(&token), None).await;
    card.clock.advance(std::time::Duration::from_secs(40 * 86_400));
    let (token, _, _) = sign_in(app, 1).await;
    let (status, answer) = post_member(app, "/v1/me/uncancel", Some(&token), None).await;
    assert_eq!(status, 409, "{answer}");

    // A plan a card subscription renews: the processor's to cancel.
    let wallet = app.wallet(5);
    assert_eq!(card.send(&crate::card::paid_session("evt_acc_1", &wallet, 3, "sub_acc_1", crate::card::cents(3))).await.0, 200);
    let (card_token, _, _) = sign_in(app, 5).await;
    let (status, answer) = post_member(app, "/v1/me/cancel", Some(&card_token), None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("card"));
    // Once the processor ended that card subscription and the member pays on-chain, the
    // plan is theirs to cancel again (an ended card subscription renews nothing).
    let deleted = serde_json::json!({ "id": "evt_acc_del", "type": "customer.subscription.deleted", "data": { "object": { "id": "sub_acc_1", "object": "subscription" }}});
    assert_eq!(card.send(&deleted).await.0, 200);
    pay_premium(app, 5).await;
    let (status, answer) = post_member(app, "/v1/me/cancel", Some(&card_token), None).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("canceled")), "{answer}");
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_member_cancels_and_takes_it_back);

const SWITCH: &str = "/v1/me/switch";

/// Calls a member route with `method` and a JSON body, with the token or the session cookie
/// from `origin` with `csrf`.
async fn member_call(
    app: &crate::api::App,
    method: &str,
    route: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
    session: Option<(&str, &str, &str)>,
) -> (u16, serde_json::Value) {
    let mut request = app.client.request(method.parse().unwrap(), format!("{}{route}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((cookie, origin, csrf)) = session {
        request = request.header("cookie", cookie).header("origin", origin).header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    app.check(method, route, status, &body);
    (status, body)
}

/// A member schedules a switch for their next renewal — monthly to yearly, or a lower tier,
/// in another token — sees it take effect "on" the period's end, replaces and undoes it;
/// nothing is paid and the current plan stays. Refused in words: a higher tier (an upgrade
/// is paid for now), an unknown plan or token, a canceled plan, a forged cross-site request,
/// a second undo. A payment that buys the lower plan, or moves the period's end, settles it.
pub(crate) async fn a_member_schedules_a_switch_and_undoes_it(kind: DbKind) {
    let card = spawn(kind).await;
    let app = &card.app;
    let (token, cookie, csrf) = sign_in(app, 1).await;
    let yearly = serde_json::json!({"plan_id": 13, "token": "USD"});
    let (status, _) = member_call(app, "PUT", SWITCH, Some(yearly.clone()), Some(&token), None).await;
    assert_eq!(status, 404, "no subscription yet");
    pay_premium(app, 1).await;
    let (_, before) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    let end = before["subscription"]["expires_at"].as_u64().unwrap();
    assert!(before["subscription"]["switch"].is_null(), "{before}");

    // Forged from another site: refused, nothing set.
    let (status, answer) = member_call(app, "PUT", SWITCH, Some(yearly.clone()), None, Some((&cookie, "https://evil.example", &csrf))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("csrf")), "{answer}");

    // Premium monthly → Premium yearly in USD, from the account page.
    let (status, sub) = member_call(app, "PUT", SWITCH, Some(yearly.clone()), None, Some((&cookie, crate::auth::ORIGIN, &csrf))).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!((sub["plan_id"].as_u64(), sub["expires_at"].as_u64()), (Some(3), Some(end)), "the current plan is unchanged: {sub}");
    let switch = &sub["switch"];
    assert_eq!((switch["plan_id"].as_u64(), switch["token"].as_str(), switch["takes_effect_at"].as_u64()), (Some(13), Some("USD"), Some(end)), "{sub}");
    // The same again changes nothing and says nothing more.
    assert_eq!(member_call(app, "PUT", SWITCH, Some(yearly.clone()), Some(&token), None).await.0, 200);
    let scheduled = app.h.events("subscription.switch_scheduled").await;
    assert_eq!(scheduled.len(), 1);
    let data = &scheduled[0].payload["data"];
    assert_eq!((data["switch_plan_id"].as_u64(), data["switch_token"].as_str(), data["source"].as_str()), (Some(13), Some("USD"), Some("member")), "{data}");
    assert_eq!((data["plan_id"].as_u64(), data["expires_at"].as_u64()), (Some(3), Some(end)));
    let (_, account) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    assert_eq!(account["subscription"]["switch"]["plan_name"], "Premium yearly", "{account}");

    // Refused: a higher tier, an unknown plan or token, a malformed body; nothing changes.
    for (body, status) in [
        (serde_json::json!({"plan_id": 4, "token": "TMAI"}), 409),
        (serde_json::json!({"plan_id": 99, "token": "TMAI"}), 404),
        (serde_json::json!({"plan_id": 1, "token": "DOGE"}), 422),
        (serde_json::json!({"plan_id": 1}), 400),
        (serde_json::json!({"plan_id": 1, "token": "TMAI", "extra": 1}), 400),
    ] {
        let (got, answer) = member_call(app, "PUT", SWITCH, Some(body.clone()), Some(&token), None).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty(), "{answer}");
    }
    let (_, answer) = member_call(app, "PUT", SWITCH, Some(serde_json::json!({"plan_id": 4, "token": "TMAI"})), Some(&token), None).await;
    assert!(answer["error"]["message"].as_str().unwrap().contains("upgrade"), "{answer}");
    assert_eq!(app.h.events("subscription.switch_scheduled").await.len(), 1);

    // Replaced by a lower tier, then undone; a second undo has nothing to undo.
    let (status, sub) = member_call(app, "PUT", SWITCH, Some(serde_json::json!({"plan_id": 1, "token": "TMAI"})), Some(&token), None).await;
    assert_eq!((status, sub["switch"]["plan_id"].as_u64()), (200, Some(1)), "{sub}");
    let (status, sub) = member_call(app, "DELETE", SWITCH, None, None, Some((&cookie, crate::auth::ORIGIN, &csrf))).await;
    assert_eq!((status, sub["switch"].is_null(), sub["plan_id"].as_u64()), (200, true, Some(3)), "{sub}");
    let (status, answer) = member_call(app, "DELETE", SWITCH, None, Some(&token), None).await;
    assert_eq!(status, 404, "{answer}");
    let undone = app.h.events("subscription.switch_canceled").await;
    assert_eq!((undone.len(), undone[0].payload["data"]["switch_plan_id"].as_u64()), (1, Some(1)));

    // Scheduled again, then the member pays for the lower plan: the switch is settled by
    // the paid downgrade, and no other switch can be set over it.
    member_call(app, "PUT", SWITCH, Some(serde_json::json!({"plan_id": 1, "token": "TMAI"})), Some(&token), None).await;
    let quote = app.h.quote(1, 1, "TMAI", 1).await;
    app.h.pay(1, &quote).await;
    app.h.mine(crate::harness::CONFIRMATIONS).await;
    app.h.catch_up().await;
    let (_, account) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&token)).await;
    let sub = &account["subscription"];
    assert_eq!((sub["next_plan_id"].as_u64(), sub["switch"].is_null()), (Some(1), true), "{account}");
    let (status, answer) = member_call(app, "PUT", SWITCH, Some(yearly.clone()), Some(&token), None).await;
    assert_eq!(status, 409, "{answer}");
    let (status, _) = member_call(app, "DELETE", SWITCH, None, Some(&token), None).await;
    assert_eq!(status, 404, "a settled switch is no longer there to undo");

    // A renewal that moves the period's end settles a switch too; a canceled plan has none.
    let (other, _, _) = sign_in(app, 2).await;
    pay_premium(app, 2).await;
    assert_eq!(member_call(app, "PUT", SWITCH, Some(yearly.clone()), Some(&other), None).await.0, 200);
    pay_premium(app, 2).await;
    let (_, account) = app.call("GET", ACCOUNT, ACCOUNT, None, Some(&other)).await;
    assert!(account["subscription"]["switch"].is_null(), "{account}");
    post_member(app, "/v1/me/cancel", Some(&other), None).await;
    let (status, answer) = member_call(app, "PUT", SWITCH, Some(yearly), Some(&other), None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("canceled"), "{answer}");
    crate::event_schemas::check_outbox(&app.h.test_db.db).await;
}
on_both_databases!(a_member_schedules_a_switch_and_undoes_it);
