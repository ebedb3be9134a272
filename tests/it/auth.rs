//! Sign-In with Ethereum and membership tokens on a real anvil and a real database: plain
//! keys, a deployed ERC-1271 wallet and a not-yet-deployed ERC-6492 one; each refused
//! input; the token checked by an independent library (npm `jose`) against the served
//! JWKS; key rotation. What sign-in may cost the node and the tables is in [`budget`].

mod budget;
mod sessions;

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    signers::{Signer, SignerSync, local::PrivateKeySigner},
    sol,
    sol_types::{SolCall, SolValue},
};
use serde_json::{Value, json};
use tmai_pay::{
    auth::{
        AuthService,
        signature::ERC6492_SUFFIX,
        tokens::{TokenKeys, generate_pem},
    },
    chain::devnet,
    config::{AuthSettings, HttpSettings, SigningKeyConfig},
};

use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    harness::CONFIRMATIONS,
};

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestSmartWalletFactory,
    "contracts/artifacts/TestSmartWalletFactory.json"
);

pub(crate) const ORIGIN: &str = "https://shop.example";

/// Auth settings for the tests: one origin, one fresh key (and an older retired one).
pub(crate) fn auth_settings(extra_origin: Option<&str>) -> AuthSettings {
    let mut origins = vec![ORIGIN.to_string()];
    origins.extend(extra_origin.map(str::to_string));
    AuthSettings {
        allowed_origins: origins,
        statement: Some("Sign in to your membership.".into()),
        keys: vec![
            SigningKeyConfig { kid: "k2".into(), private_key_pem: Some(generate_pem().into()), private_key_env: None, retired_at: None },
            SigningKeyConfig { kid: "k1".into(), private_key_pem: Some(generate_pem().into()), private_key_env: None, retired_at: Some(1) },
        ],
        ..Default::default()
    }
}

pub(crate) async fn spawn_with_auth(kind: DbKind, extra_origin: Option<&str>) -> App {
    let settings = auth_settings(extra_origin);
    App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| {
        state.with_auth(AuthService::from_settings(&settings).unwrap())
    })
    .await
}

/// The RFC 3339 text of unix time `t`.
fn rfc3339(t: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The parts of a message that tests vary.
pub(crate) struct Msg {
    pub(crate) domain: String,
    pub(crate) uri: String,
    pub(crate) address: Address,
    pub(crate) chain_id: u64,
    pub(crate) nonce: String,
    pub(crate) issued_at: u64,
    pub(crate) expires_at: Option<u64>,
    pub(crate) statement: String,
}

impl Msg {
    pub(crate) fn new(address: Address, nonce: &str, now: u64) -> Self {
        Self {
            domain: "shop.example".into(),
            uri: format!("{ORIGIN}/login"),
            address,
            chain_id: devnet::CHAIN_ID,
            nonce: nonce.into(),
            issued_at: now,
            expires_at: Some(now + 600),
            statement: "Sign in to your membership.".into(),
        }
    }

    /// The EIP-4361 text, as a wallet shows and signs it.
    pub(crate) fn text(&self) -> String {
        let mut text = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\n{}\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.domain,
            self.address.to_checksum(None),
            self.statement,
            self.uri,
            self.chain_id,
            self.nonce,
            rfc3339(self.issued_at)
        );
        if let Some(expiry) = self.expires_at {
            text.push_str(&format!("\nExpiration Time: {}", rfc3339(expiry)));
        }
        text
    }
}

pub(crate) async fn new_nonce(app: &App) -> String {
    let (status, body) = app.call("POST", "/v1/auth/nonce", "/v1/auth/nonce", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chain_id"], devnet::CHAIN_ID);
    body["nonce"].as_str().unwrap().to_string()
}

pub(crate) fn sign(key: &PrivateKeySigner, text: &str) -> String {
    format!("0x{}", alloy::hex::encode(key.sign_message_sync(text.as_bytes()).unwrap().as_bytes()))
}

pub(crate) async fn verify(app: &App, text: &str, signature: &str) -> (u16, Value) {
    app.call("POST", "/v1/auth/verify", "/v1/auth/verify", Some(json!({ "message": text, "signature": signature })), None).await
}

/// Makes wallet `index` a Premium member by a real payment.
pub(crate) async fn pay_premium(app: &App, index: usize) {
    let quote = app.h.quote(index, 3, "TMAI", 1).await;
    app.h.pay(index, &quote).await;
    app.h.mine(CONFIRMATIONS).await;
    app.h.catch_up().await;
}

/// A member signs in with a plain key; the token says who and what they are, ends with
/// the subscription, verifies with `jose` against the JWKS, and answers `/v1/me` (as a
/// Bearer token and as the session cookie); the same message again is refused.
async fn a_member_signs_in_and_the_token_verifies_elsewhere(kind: DbKind) {
    // Arrange
    let app = spawn_with_auth(kind, None).await;
    pay_premium(&app, 1).await;
    let key = devnet::key(&app.h.chain.anvil, 1);
    let now = app.state.clock.now();
    let nonce = new_nonce(&app).await;
    let text = Msg::new(key.address(), &nonce, now).text();

    // Act
    let response =
        app.client.post(format!("{}/v1/auth/verify", app.base)).json(&json!({ "message": text, "signature": sign(&key, &text) })).send().await.unwrap();
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    app.check("POST", "/v1/auth/verify", status, &body);

    // Assert: the answer and its cookie
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signer"], "eoa");
    let membership = &body["membership"];
    assert_eq!(membership["wallet"], key.address().to_checksum(None));
    assert_eq!((membership["tier"].as_u64(), membership["plan_id"].as_u64(), membership["status"].as_str()), (Some(3), Some(3), Some("active")));
    let period_end = membership["period_end"].as_u64().unwrap();
    let expires_at = membership["expires_at"].as_u64().unwrap();
    assert!(expires_at <= period_end && expires_at <= now + AuthSettings::default().token_secs + 5, "{membership}");
    assert!(cookie.starts_with("__Host-tmai_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Secure"), "an https origin gets a Secure cookie: {cookie}");
    let token = body["token"].as_str().unwrap();

    // Assert: an independent library verifies the token against the served JWKS
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jwt/verify.mjs");
    let output = std::process::Command::new("node").args([script, &format!("{}/.well-known/jwks.json", app.base), token, "tmai-pay"]).output().unwrap();
    assert!(output.status.success(), "jose refused the token: {}", String::from_utf8_lossy(&output.stderr));
    let verified: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["payload"]["sub"], key.address().to_checksum(None));
    assert_eq!((verified["payload"]["tier"].as_u64(), verified["payload"]["status"].as_str()), (Some(3), Some("active")));
    assert_eq!(verified["payload"]["exp"].as_u64(), Some(expires_at));
    assert_eq!(verified["header"]["kid"], "k2");
    // A changed signature byte (not the last character, whose low bits are padding).
    let (signed_part, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{signed_part}.{flipped}{}", &signature[1..]);
    let refused = std::process::Command::new("node").args([script, &format!("{}/.well-known/jwks.json", app.base), &tampered, "tmai-pay"]).output().unwrap();
    assert!(!refused.status.success(), "jose accepted a tampered token");

    // Assert: /v1/me by Bearer token and by cookie; none without
    let me = app.client.get(format!("{}/v1/me", app.base)).bearer_auth(token).send().await.unwrap();
    let me_body: Value = me.json().await.unwrap();
    app.check("GET", "/v1/me", 200, &me_body);
    assert_eq!(me_body["wallet"], key.address().to_checksum(None));
    assert_eq!(me_body["tier"], 3);
    let session = cookie.split(';').next().unwrap();
    let by_cookie = app.client.get(format!("{}/v1/me", app.base)).header("cookie", session).send().await.unwrap();
    assert_eq!(by_cookie.status().as_u16(), 200);
    let (status, none) = app.call("GET", "/v1/me", "/v1/me", None, None).await;
    assert_eq!((status, none["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = app.call("GET", "/v1/me", "/v1/me", None, Some(&tampered)).await;
    assert_eq!(status, 401);

    // Assert: the same message again is a replay
    let (status, replay) = verify(&app, &text, &sign(&key, &text)).await;
    assert_eq!((status, replay["error"]["code"].as_str()), (401, Some("nonce_used")), "{replay}");
    assert_eq!(app.count("SELECT COUNT(*) FROM auth_nonces WHERE used_at IS NOT NULL").await, 1);
}
on_both_databases!(a_member_signs_in_and_the_token_verifies_elsewhere);

/// Every refused input answers 4xx in the one error shape, with its own code, and spends
/// no nonce.
async fn bad_sign_ins_are_refused_with_their_reason(kind: DbKind) {
    let app = spawn_with_auth(kind, None).await;
    let key = devnet::key(&app.h.chain.anvil, 2);
    let other = devnet::key(&app.h.chain.anvil, 3);
    let now = app.state.clock.now();
    let nonce = new_nonce(&app).await;
    let base = || Msg::new(key.address(), &nonce, now);
    let cases: Vec<(&str, Msg, Option<&PrivateKeySigner>, u16, &str)> = vec![
        ("wrong domain", Msg { domain: "evil.example".into(), uri: "https://evil.example/login".into(), ..base() }, None, 403, "wrong_domain"),
        ("URI elsewhere", Msg { uri: "https://evil.example/login".into(), ..base() }, None, 403, "wrong_domain"),
        ("wrong chain", Msg { chain_id: 1, ..base() }, None, 400, "wrong_chain"),
        ("expired", Msg { issued_at: now - 120, expires_at: Some(now - 60), ..base() }, None, 401, "expired_message"),
        ("issued long ago", Msg { issued_at: now - 3_600, expires_at: None, ..base() }, None, 401, "expired_message"),
        ("issued in the future", Msg { issued_at: now + 3_600, expires_at: None, ..base() }, None, 401, "expired_message"),
        ("wrong statement", Msg { statement: "Give me everything.".into(), ..base() }, None, 400, "wrong_statement"),
        ("unknown nonce", Msg { nonce: "abcdefgh12345678".into(), ..base() }, None, 401, "invalid_nonce"),
        ("another wallet's signature", base(), Some(&other), 401, "wrong_signer"),
    ];
    for (name, msg, signer, want_status, want_code) in cases {
        let text = msg.text();
        let (status, body) = verify(&app, &text, &sign(signer.unwrap_or(&key), &text)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (want_status, Some(want_code)), "{name}: {body}");
    }
    let text = base().text();
    let mut broken = key.sign_message_sync(text.as_bytes()).unwrap().as_bytes();
    broken[64] = 7;
    let (status, body) = verify(&app, &text, &format!("0x{}", alloy::hex::encode(broken))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("bad_signature")), "{body}");
    let (status, body) = verify(&app, "hello", &sign(&key, "hello")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = verify(&app, &text, "0xzz").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    // None of those spent the nonce: the right message still signs in, once.
    let (status, body) = verify(&app, &text, &sign(&key, &text)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["membership"]["status"], "none");
    assert_eq!(body["membership"]["tier"], 0);
    // An expired nonce is refused.
    let stale = new_nonce(&app).await;
    app.state.clock.advance(std::time::Duration::from_secs(AuthSettings::default().nonce_ttl_secs + 1));
    let later = app.state.clock.now();
    let text = Msg::new(key.address(), &stale, later).text();
    let (status, body) = verify(&app, &text, &sign(&key, &text)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_nonce")), "{body}");
}
on_both_databases!(bad_sign_ins_are_refused_with_their_reason);

/// A deployed contract wallet signs in through ERC-1271, a not-yet-deployed one through
/// ERC-6492 (and stays undeployed), and a contract wallet's signature by a stranger is
/// refused.
async fn contract_wallets_sign_in(kind: DbKind) {
    // Arrange: a wallet factory, one wallet deployed, one only counted on
    let app = spawn_with_auth(kind, None).await;
    let owner = devnet::key(&app.h.chain.anvil, 4);
    let stranger = devnet::key(&app.h.chain.anvil, 5);
    let deployer = devnet::provider_for(&app.h.chain.anvil, devnet::DEPLOYER);
    let factory = TestSmartWalletFactory::deploy(&deployer).await.unwrap();
    let deployed_salt = B256::with_last_byte(1);
    factory.deployWallet(owner.address(), deployed_salt).send().await.unwrap().get_receipt().await.unwrap();
    let deployed = factory.addressOf(owner.address(), deployed_salt).call().await.unwrap();
    let future_salt = B256::with_last_byte(2);
    let future = factory.addressOf(owner.address(), future_salt).call().await.unwrap();
    use alloy::providers::Provider;
    assert!(app.h.rpc.get_code_at(future).await.unwrap().is_empty());
    let digest = |text: &str| keccak256([format!("\x19Ethereum Signed Message:\n{}", text.len()).as_bytes(), text.as_bytes()].concat());
    let now = app.state.clock.now();

    // Act + Assert: ERC-1271
    let nonce = new_nonce(&app).await;
    let text = Msg::new(deployed, &nonce, now).text();
    let by_stranger = stranger.sign_hash(&digest(&text)).await.unwrap().as_bytes();
    let (status, body) = verify(&app, &text, &format!("0x{}", alloy::hex::encode(by_stranger))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("bad_signature")), "{body}");
    let by_owner = owner.sign_hash(&digest(&text)).await.unwrap().as_bytes();
    let (status, body) = verify(&app, &text, &format!("0x{}", alloy::hex::encode(by_owner))).await;
    assert_eq!((status, body["signer"].as_str()), (200, Some("erc1271")), "{body}");

    // Act + Assert: ERC-6492
    let nonce = new_nonce(&app).await;
    let text = Msg::new(future, &nonce, now).text();
    let wrap = |inner: Vec<u8>| {
        let call = TestSmartWalletFactory::deployWalletCall { owner: owner.address(), salt: future_salt }.abi_encode();
        let mut sig = (*factory.address(), Bytes::from(call), Bytes::from(inner)).abi_encode_params();
        sig.extend_from_slice(&ERC6492_SUFFIX);
        format!("0x{}", alloy::hex::encode(sig))
    };
    let (status, body) = verify(&app, &text, &wrap(stranger.sign_hash(&digest(&text)).await.unwrap().as_bytes().to_vec())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("bad_signature")), "{body}");
    let (status, body) = verify(&app, &text, &wrap(owner.sign_hash(&digest(&text)).await.unwrap().as_bytes().to_vec())).await;
    assert_eq!((status, body["signer"].as_str()), (200, Some("erc6492")), "{body}");
    assert!(app.h.rpc.get_code_at(future).await.unwrap().is_empty(), "the check deploys nothing for real");
}
on_both_databases!(contract_wallets_sign_in);

/// Without an `[auth]` table the sign-in routes answer 404 `sign_in_not_configured`, as
/// documented (nothing is failing, so no 5xx).
async fn sign_in_is_off_until_configured(kind: DbKind) {
    let app = App::spawn(kind).await;
    for (method, route) in [("POST", "/v1/auth/nonce"), ("GET", "/.well-known/jwks.json")] {
        let (status, body) = app.call(method, route, route, None, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("sign_in_not_configured")), "{route}: {body}");
    }
    // /v1/me needs a token first (401 without one, as the document says); with one, 404.
    let (status, body) = app.call("GET", "/v1/me", "/v1/me", None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = app.call("GET", "/v1/me", "/v1/me", None, Some(&app.key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("sign_in_not_configured")), "{body}");
    let (status, body) = verify(&app, "x", "0x00").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("sign_in_not_configured")), "{body}");
}
on_both_databases!(sign_in_is_off_until_configured);

/// A retired key stays published (and its tokens valid) until its last tokens expire,
/// then disappears; a new key signs; a key that does not load names its id, not its text.
#[test]
fn keys_rotate_without_breaking_live_tokens() {
    // Arrange
    let old_pem = generate_pem();
    let settings = |retired_at: Option<u64>, with_new: bool| AuthSettings {
        allowed_origins: vec![ORIGIN.into()],
        session_secs: 3_600,
        keys: with_new
            .then(|| SigningKeyConfig { kid: "new".into(), private_key_pem: Some(generate_pem().into()), private_key_env: None, retired_at: None })
            .into_iter()
            .chain([SigningKeyConfig { kid: "old".into(), private_key_pem: Some(old_pem.clone().into()), private_key_env: None, retired_at }])
            .collect(),
        ..Default::default()
    };
    let before = AuthService::from_settings(&settings(None, false)).unwrap().unwrap();
    let t0 = 1_800_000_000;
    let claims = before.claims(Address::repeat_byte(7), None, t0, t0, "n1");
    let old_token = before.keys.sign(&claims).unwrap();

    // Act: rotate at t0 + 60
    let after = AuthService::from_settings(&settings(Some(t0 + 60), true)).unwrap().unwrap();
    let kids = |keys: &TokenKeys, now: u64| keys.jwks(now).keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect::<Vec<_>>();

    // Assert
    assert_eq!(kids(&after.keys, t0 + 120), ["new", "old"]);
    assert_eq!(after.keys.verify(&old_token, t0 + 120).unwrap().sub, Address::repeat_byte(7).to_checksum(None));
    let new_token = after.keys.sign(&after.claims(Address::repeat_byte(8), None, t0 + 120, t0 + 120, "n2")).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some("new"));
    assert_eq!(kids(&after.keys, t0 + 60 + 3_600), ["new"]);
    assert!(after.keys.verify(&old_token, t0 + 60 + 3_600).is_err());
    let broken = AuthSettings {
        keys: vec![SigningKeyConfig {
            kid: "bad".into(),
            private_key_pem: Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()),
            private_key_env: None,
            retired_at: None,
        }],
        ..settings(None, false)
    };
    let error = AuthService::from_settings(&broken).unwrap_err().to_string();
    assert!(error.contains("auth.keys[bad]") && !error.contains("AAAA"), "{error}");
}
