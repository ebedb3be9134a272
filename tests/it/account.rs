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
