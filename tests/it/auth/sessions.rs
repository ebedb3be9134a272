//! Account sessions (issue 28 §1): a sign-in opens a stored session and answers a
//! short-lived membership token; the page renews it with the session cookie, an allowed
//! `Origin` and the session's `X-CSRF-Token`; a forged cross-site request changes nothing;
//! a revoke ends the wallet's sessions, sign-out can end them all, and a session expires —
//! on SQLite and PostgreSQL.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use tmai_pay::{chain::devnet, config::AuthSettings};

use super::{Msg, ORIGIN, new_nonce, pay_premium, sign, spawn_with_auth};
use crate::{
    api::App,
    db::{DbKind, on_both_databases},
};

/// A signed-in session: its cookie (`name=value`) and cross-site request token.
struct Signed {
    cookie: String,
    csrf: String,
    body: Value,
    set_cookie: String,
}

async fn sign_in(app: &App, key: &PrivateKeySigner) -> Signed {
    let nonce = new_nonce(app).await;
    let text = Msg::new(key.address(), &nonce, app.state.clock.now()).text();
    let response =
        app.client.post(format!("{}/v1/auth/verify", app.base)).json(&json!({ "message": text, "signature": sign(key, &text) })).send().await.unwrap();
    let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    app.check("POST", "/v1/auth/verify", status, &body);
    assert_eq!(status, 200, "{body}");
    Signed { cookie: set_cookie.split(';').next().unwrap().to_string(), csrf: body["csrf_token"].as_str().unwrap().to_string(), body, set_cookie }
}

/// Posts to `path` with the session cookie, `origin` and `csrf` (each when given).
async fn post_with(
    app: &App,
    route: &str,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    csrf: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = app.client.post(format!("{}{path}", app.base));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 204 {
        app.check("POST", route, status, &body);
    }
    (status, body, headers)
}

async fn refresh(app: &App, s: &Signed) -> (u16, Value) {
    let (status, body, _) = post_with(app, "/v1/auth/refresh", "/v1/auth/refresh", Some(&s.cookie), Some(ORIGIN), Some(&s.csrf)).await;
    (status, body)
}

async fn sessions_renew_tokens_and_end_with_the_membership(kind: DbKind) {
    let app = spawn_with_auth(kind, None).await;
    pay_premium(&app, 1).await;
    let key = devnet::key(&app.h.chain.anvil, 1);
    let now = app.state.clock.now();
    let s = sign_in(&app, &key).await;

    // The cookie is the session's secret, __Host- over https; the token lives 15 minutes.
    assert!(s.set_cookie.starts_with("__Host-tmai_session=") && s.set_cookie.contains("; Secure") && s.set_cookie.contains("HttpOnly"), "{}", s.set_cookie);
    assert!(!s.cookie.contains(s.body["token"].as_str().unwrap()), "the cookie holds no token");
    let expires_at = s.body["membership"]["expires_at"].as_u64().unwrap();
    assert!(expires_at <= now + AuthSettings::default().token_secs + 5, "{}", s.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM auth_sessions WHERE ended_at IS NULL").await, 1);

    // Renewed from the session: a new token with the membership as it stands.
    app.state.clock.advance(Duration::from_secs(600));
    let (status, renewed, headers) = post_with(&app, "/v1/auth/refresh", "/v1/auth/refresh", Some(&s.cookie), Some(ORIGIN), Some(&s.csrf)).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    assert_eq!((renewed["membership"]["tier"].as_u64(), renewed["membership"]["status"].as_str()), (Some(3), Some("active")));
    assert!(renewed["membership"]["expires_at"].as_u64().unwrap() > expires_at, "{renewed}");
    assert_ne!(renewed["token"], s.body["token"]);

    // Forged cross-site requests: another origin, no origin, no or another CSRF token.
    for (origin, csrf) in
        [(Some("https://evil.example"), Some(s.csrf.as_str())), (None, Some(s.csrf.as_str())), (Some(ORIGIN), None), (Some(ORIGIN), Some("forged"))]
    {
        let (status, error, _) = post_with(&app, "/v1/auth/refresh", "/v1/auth/refresh", Some(&s.cookie), origin, csrf).await;
        assert_eq!((status, error["error"]["code"].as_str()), (403, Some("csrf")), "{origin:?} {csrf:?}: {error}");
        let (status, error, _) = post_with(&app, "/v1/auth/logout", "/v1/auth/logout", Some(&s.cookie), origin, csrf).await;
        assert_eq!((status, error["error"]["code"].as_str()), (403, Some("csrf")), "logout {origin:?} {csrf:?}: {error}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM auth_sessions WHERE ended_at IS NULL").await, 1, "a forged request ended the session");
    // No session: 401.
    let (status, _, _) = post_with(&app, "/v1/auth/refresh", "/v1/auth/refresh", None, Some(ORIGIN), Some(&s.csrf)).await;
    assert_eq!(status, 401);

    // /v1/me by the cookie, never cached.
    let me = app.client.get(format!("{}/v1/me", app.base)).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert_eq!(me.headers().get("cache-control").unwrap(), "no-store");

    // By the token too; this read fills the verified-token and subscription caches.
    let token = s.body["token"].as_str().unwrap().to_string();
    let before: Value = app.client.get(format!("{}/v1/me", app.base)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(before["status"], "active", "{before}");

    // The merchant revokes the membership: the session ends, no token is renewed.
    let wallet = app.wallet(1);
    let revoke = app.client.post(format!("{}/v1/members/{wallet}/revoke", app.base)).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let (status, error) = refresh(&app, &s).await;
    assert_eq!(status, 401, "{error}");
    let me = app.client.get(format!("{}/v1/me", app.base)).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(me.status().as_u16(), 401);
    // The token is still validly signed until it expires, but /v1/me answers the membership
    // as it stands now, not as the caches held it.
    let after: Value = app.client.get(format!("{}/v1/me", app.base)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["wallet"], before["wallet"]);
    assert!(after["status"] != "active" && after["tier"] == 0, "a revoked member still shows as a member: {after}");
}
on_both_databases!(sessions_renew_tokens_and_end_with_the_membership);

async fn sign_out_ends_one_session_or_every_one_and_sessions_expire(kind: DbKind) {
    let app = spawn_with_auth(kind, None).await;
    let key = devnet::key(&app.h.chain.anvil, 2);
    let (a, b, c) = (sign_in(&app, &key).await, sign_in(&app, &key).await, sign_in(&app, &key).await);

    // Signing out of one leaves the others.
    let (status, _, headers) = post_with(&app, "/v1/auth/logout", "/v1/auth/logout", Some(&a.cookie), Some(ORIGIN), Some(&a.csrf)).await;
    assert_eq!(status, 204);
    assert!(headers.get_all("set-cookie").iter().any(|v| v.to_str().unwrap().starts_with("__Host-tmai_session=;")));
    assert_eq!(refresh(&app, &a).await.0, 401);
    assert_eq!(refresh(&app, &b).await.0, 200);

    // Everywhere: every session of the wallet ends.
    let (status, _, _) = post_with(&app, "/v1/auth/logout", "/v1/auth/logout?everywhere=true", Some(&b.cookie), Some(ORIGIN), Some(&b.csrf)).await;
    assert_eq!(status, 204);
    assert_eq!((refresh(&app, &b).await.0, refresh(&app, &c).await.0), (401, 401));

    // A session lives session_secs at most.
    let d = sign_in(&app, &key).await;
    app.state.clock.advance(Duration::from_secs(AuthSettings::default().session_secs + 1));
    assert_eq!(refresh(&app, &d).await.0, 401);
    // Signing out without a session only clears cookies.
    let (status, _, _) = post_with(&app, "/v1/auth/logout", "/v1/auth/logout", None, None, None).await;
    assert_eq!(status, 204);
}
on_both_databases!(sign_out_ends_one_session_or_every_one_and_sessions_expire);
