//! Sign-in cannot spend the service's RPC budget or grow its tables (issue 26, §4 and §5):
//! contract-wallet checks stay within their own share of the node, counted at a JSON-RPC
//! proxy in front of anvil, each with a gas limit; a nonce dies after its tries; the
//! watcher's calls go through during a flood; live nonces stop at their cap. No timed
//! assertion: the proxy holds the checks, the test waits for states, not for durations.

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    signers::{Signer, local::PrivateKeySigner},
    sol_types::{SolCall, SolValue},
};
use serde_json::{Value, json};
use tmai_pay::{
    auth::{AuthService, signature::ERC6492_SUFFIX},
    chain::devnet,
    config::{AuthSettings, HttpSettings},
};

use super::{Msg, TestSmartWalletFactory, auth_settings, new_nonce, sign, verify};
use crate::{
    api::App,
    db::{DbKind, on_both_databases},
    rpc_proxy::RpcProxy,
};

const BUDGET: u32 = 2;
const TRIES: u32 = 3;
const GAS: u64 = 500_000;
const FLOOD: usize = 12;

/// The API with sign-in (a budget of `BUDGET`, `TRIES` per nonce, at most `max_nonces`
/// live), its node reached through a counting proxy.
async fn spawn_budgeted(kind: DbKind, max_nonces: u64) -> (App, RpcProxy) {
    let settings =
        AuthSettings { contract_checks_in_flight: BUDGET, tries_per_nonce: TRIES, contract_check_gas: GAS, max_live_nonces: max_nonces, ..auth_settings(None) };
    let mut proxy = None;
    let app = App::spawn_through(
        kind,
        HttpSettings { rate_limit_per_second: 0, ..Default::default() },
        |h| {
            let started = RpcProxy::start(h.chain.anvil.endpoint());
            let provider = started.provider();
            proxy = Some(started);
            provider
        },
        move |state| state.with_auth(AuthService::from_settings(&settings).unwrap()),
    )
    .await;
    (app, proxy.unwrap())
}

/// A deployed test smart wallet and a counterfactual one, both of `owner`.
struct Wallets {
    factory: Address,
    deployed: Address,
    future: Address,
    future_salt: B256,
}

async fn wallets(app: &App, owner: Address) -> Wallets {
    let deployer = devnet::provider_for(&app.h.chain.anvil, devnet::DEPLOYER);
    let factory = TestSmartWalletFactory::deploy(&deployer).await.unwrap();
    factory.deployWallet(owner, B256::with_last_byte(1)).send().await.unwrap().get_receipt().await.unwrap();
    let deployed = factory.addressOf(owner, B256::with_last_byte(1)).call().await.unwrap();
    let future = factory.addressOf(owner, B256::with_last_byte(2)).call().await.unwrap();
    Wallets { factory: *factory.address(), deployed, future, future_salt: B256::with_last_byte(2) }
}

/// `signer`'s signature over `text` as `wallet`'s: plain (ERC-1271) for the deployed wallet,
/// wrapped in ERC-6492 with its factory call for the counterfactual one.
async fn contract_signature(w: &Wallets, owner: Address, wallet: Address, signer: &PrivateKeySigner, text: &str) -> String {
    let digest = keccak256([format!("\x19Ethereum Signed Message:\n{}", text.len()).as_bytes(), text.as_bytes()].concat());
    let inner = signer.sign_hash(&digest).await.unwrap().as_bytes().to_vec();
    if wallet == w.deployed {
        return format!("0x{}", alloy::hex::encode(inner));
    }
    let call = TestSmartWalletFactory::deployWalletCall { owner, salt: w.future_salt }.abi_encode();
    let mut sig = (w.factory, Bytes::from(call), Bytes::from(inner)).abi_encode_params();
    sig.extend_from_slice(&ERC6492_SUFFIX);
    format!("0x{}", alloy::hex::encode(sig))
}

/// Waits (without a deadline in any assertion) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..3_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the state was never reached");
}

/// A flood of bad contract-wallet signatures (ERC-1271 and ERC-6492) never has more than the
/// budget of checks in flight at the node, each with the gas limit; the rest are refused at
/// once with 503 and Retry-After; a watcher pass and a plain-key sign-in go through meanwhile.
async fn a_flood_of_contract_wallet_sign_ins_stays_within_its_budget(kind: DbKind) {
    // Arrange
    let (app, proxy) = spawn_budgeted(kind, 1_000).await;
    let owner = devnet::key(&app.h.chain.anvil, 4);
    let stranger = devnet::key(&app.h.chain.anvil, 5);
    let w = wallets(&app, owner.address()).await;
    let now = app.state.clock.now();
    let mut requests = Vec::new();
    for i in 0..FLOOD {
        let wallet = if i % 2 == 0 { w.deployed } else { w.future };
        let text = Msg::new(wallet, &new_nonce(&app).await, now).text();
        let signature = contract_signature(&w, owner.address(), wallet, &stranger, &text).await;
        requests.push(json!({ "message": text, "signature": signature }));
    }
    let before = proxy.counted();

    // Act: the node holds every check; the flood arrives at once.
    proxy.hold(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for body in requests {
        let (client, url, tx, answered) = (app.client.clone(), format!("{}/v1/auth/verify", app.base), tx.clone(), answered.clone());
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            tx.send((status, body["error"]["code"].as_str().unwrap_or_default().to_string(), retry_after)).unwrap();
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    // Every request is now either held at the node or answered.
    until(|| proxy.in_flight() + answered.load(std::sync::atomic::Ordering::SeqCst) == FLOOD).await;

    // Assert: the budget is full, everything else was refused without reaching the node.
    assert_eq!(proxy.max_in_flight(), BUDGET as usize, "at most the budget in flight at the node");
    let mut answers = Vec::new();
    for _ in 0..FLOOD - BUDGET as usize {
        answers.push(rx.recv().await.unwrap());
    }
    for (status, code, retry_after) in &answers {
        assert_eq!((*status, code.as_str()), (503, "sign_in_busy"));
        assert!(retry_after.is_some(), "a busy refusal says when to come back");
    }
    // Meanwhile the watcher reads the chain through the same node, and a plain key signs in.
    let watcher = app.h.watcher_on(&app.h.test_db.db, proxy.provider());
    watcher.pass().await.expect("the watcher's calls go through during the flood");
    let key = devnet::key(&app.h.chain.anvil, 6);
    let text = Msg::new(key.address(), &new_nonce(&app).await, now).text();
    let (status, body) = verify(&app, &text, &sign(&key, &text)).await;
    assert_eq!((status, body["signer"].as_str()), (200, Some("eoa")), "{body}");

    // Release: the held checks end as bad signatures; never more than the budget was in flight.
    proxy.hold(false);
    for _ in 0..BUDGET {
        let (status, code, _) = rx.recv().await.unwrap();
        assert_eq!((status, code.as_str()), (401, "bad_signature"));
    }
    assert_eq!(proxy.max_in_flight(), BUDGET as usize, "still at most the budget after the release");
    assert!(proxy.counted() - before <= 2 * BUDGET as usize, "only the admitted checks reached the node");
    let gas = proxy.call_gas();
    assert!(!gas.is_empty() && gas.iter().all(|g| g.as_deref() == Some(format!("{GAS:#x}").as_str())), "every check has the gas limit: {gas:?}");
}
on_both_databases!(a_flood_of_contract_wallet_sign_ins_stays_within_its_budget);

/// A nonce allows `TRIES` failed signature checks, then is spent: the right signature is
/// refused too, and costs the node nothing.
async fn a_nonce_dies_after_its_failed_tries(kind: DbKind) {
    let (app, proxy) = spawn_budgeted(kind, 1_000).await;
    let owner = devnet::key(&app.h.chain.anvil, 4);
    let stranger = devnet::key(&app.h.chain.anvil, 5);
    let w = wallets(&app, owner.address()).await;
    let now = app.state.clock.now();
    for wallet in [w.deployed, w.future] {
        let text = Msg::new(wallet, &new_nonce(&app).await, now).text();
        let bad = contract_signature(&w, owner.address(), wallet, &stranger, &text).await;
        for _ in 0..TRIES {
            let (status, body) = verify(&app, &text, &bad).await;
            assert_eq!((status, body["error"]["code"].as_str()), (401, Some("bad_signature")), "{body}");
        }
        let calls = proxy.counted();
        let good = contract_signature(&w, owner.address(), wallet, &owner, &text).await;
        let (status, body) = verify(&app, &text, &good).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("nonce_tries_spent")), "{body}");
        assert_eq!(proxy.counted(), calls, "a spent nonce asks the node nothing");
        // A fresh nonce signs the same wallet in.
        let text = Msg::new(wallet, &new_nonce(&app).await, now).text();
        let good = contract_signature(&w, owner.address(), wallet, &owner, &text).await;
        let (status, body) = verify(&app, &text, &good).await;
        assert_eq!(status, 200, "{body}");
    }
}
on_both_databases!(a_nonce_dies_after_its_failed_tries);

/// At `max_live_nonces` live nonces, `POST /v1/auth/nonce` answers 503 with Retry-After and
/// the table stops growing, while the rest of the service answers and issued nonces still
/// sign in; once they expire they are pruned and nonces are issued again.
async fn live_nonces_stop_at_their_cap(kind: DbKind) {
    const CAP: u64 = 5;
    let (app, _proxy) = spawn_budgeted(kind, CAP).await;
    let mut nonces = Vec::new();
    for _ in 0..CAP {
        nonces.push(new_nonce(&app).await);
    }
    for _ in 0..3 {
        let response = app.client.post(format!("{}/v1/auth/nonce", app.base)).send().await.unwrap();
        let retry_after: u64 = response.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        app.check("POST", "/v1/auth/nonce", status, &body);
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("too_many_nonces")), "{body}");
        assert!((1..=AuthSettings::default().nonce_ttl_secs).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM auth_nonces").await, CAP as i64, "the table stops growing");
    let (status, _) = app.call("GET", "/v1/plans", "/v1/plans", None, None).await;
    assert_eq!(status, 200, "the service keeps answering");
    let key = devnet::key(&app.h.chain.anvil, 6);
    let text = Msg::new(key.address(), &nonces[0], app.state.clock.now()).text();
    let (status, body) = verify(&app, &text, &sign(&key, &text)).await;
    assert_eq!(status, 200, "an issued nonce still signs in at the cap: {body}");

    // Once they expire, they are pruned as the next nonce is issued.
    app.state.clock.advance(Duration::from_secs(AuthSettings::default().nonce_ttl_secs + 1));
    new_nonce(&app).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM auth_nonces").await, 1);
}
on_both_databases!(live_nonces_stop_at_their_cap);
