//! The command line as a person uses it: deploy (and its refusals), dev, bad input.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use alloy::{
    hex,
    primitives::{B256, aliases::U48},
    providers::{Provider, ProviderBuilder},
};
use tmai_pay::chain::{
    bindings::{MembershipBadge, SubscriptionCheckout},
    deploy::DEFAULT_ADMIN_DELAY,
    deployment::Deployment,
    devnet::{self, AnvilOptions},
};

use crate::helpers::{free_port, spawn_chain, text, tmai_pay, toolchain};

fn key_hex(anvil: &alloy::node_bindings::AnvilInstance, index: usize) -> String {
    hex::encode_prefixed(devnet::key(anvil, index).to_bytes())
}

#[tokio::test]
async fn deploy_writes_a_deployment_file_that_matches_the_chain() {
    // Arrange
    let anvil = devnet::spawn_anvil(&toolchain(), &AnvilOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment.json");
    let (deployer, signer, issuer) = (key_hex(&anvil, 10), key_hex(&anvil, 11), key_hex(&anvil, 12));

    // Act
    let output = tmai_pay(
        &["deploy", "--rpc-url", &anvil.endpoint(), "--test-tokens", "--out", out.to_str().unwrap()],
        &[("TMAI_PAY_DEPLOYER_KEY", &deployer), ("TMAI_PAY_QUOTE_SIGNER_KEY", &signer), ("TMAI_PAY_ISSUER_KEY", &issuer)],
    );

    // Assert
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "deploy failed: {stderr}");
    for secret in [&deployer, &signer, &issuer] {
        assert!(!stdout.contains(&secret[2..]) && !stderr.contains(&secret[2..]), "a key was printed");
    }
    let deployment = Deployment::read(&out).unwrap();
    assert_eq!(deployment.chain_id, devnet::CHAIN_ID);
    assert_eq!(deployment.quote_signer, anvil.addresses()[11]);
    assert_eq!(deployment.issuer, anvil.addresses()[12]);
    assert_eq!(deployment.treasury, anvil.addresses()[10]);
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let checkout = SubscriptionCheckout::new(deployment.checkout, &provider);
    assert_eq!(checkout.quoteSigner().call().await.unwrap(), deployment.quote_signer);
    assert_eq!(checkout.treasury().call().await.unwrap(), deployment.treasury);
    let badge = MembershipBadge::new(deployment.badge, &provider);
    let issuer_role = badge.ISSUER_ROLE().call().await.unwrap();
    assert!(badge.hasRole(issuer_role, deployment.issuer).call().await.unwrap());
    assert!(badge.hasRole(B256::ZERO, deployment.owner).call().await.unwrap());
    assert_eq!(badge.defaultAdmin().call().await.unwrap(), deployment.owner);
    assert_eq!(badge.defaultAdminDelay().call().await.unwrap(), U48::from(DEFAULT_ADMIN_DELAY.as_secs()));
    let symbols: Vec<&str> = deployment.tokens.iter().map(|t| t.symbol.as_str()).collect();
    assert_eq!(symbols, ["TMAI", "USD"]);
}

#[tokio::test]
async fn deploy_with_existing_tokens_reads_their_symbol_and_decimals() {
    let chain = spawn_chain().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json");
    let usd = chain.deployment.token("USD").unwrap().address.to_string();
    let deployer = key_hex(&chain.anvil, 5);

    let output = tmai_pay(
        &[
            "deploy",
            "--rpc-url",
            &chain.anvil.endpoint(),
            "--token",
            &usd,
            "--quote-signer",
            &chain.anvil.addresses()[11].to_string(),
            "--issuer",
            &chain.anvil.addresses()[12].to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[("TMAI_PAY_DEPLOYER_KEY", &deployer)],
    );

    assert!(output.status.success(), "{}", text(&output).1);
    let deployment = Deployment::read(&out).unwrap();
    assert_eq!(deployment.tokens.len(), 1);
    assert_eq!(deployment.tokens[0].symbol, "USD");
    assert_eq!(deployment.tokens[0].decimals, 6);
    assert!(deployment.tokens[0].permit);
}

#[tokio::test]
async fn deploy_sets_the_badge_admin_delay_from_the_command_line() {
    // Arrange
    let anvil = devnet::spawn_anvil(&toolchain(), &AnvilOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment.json");
    let (deployer, signer, issuer) = (key_hex(&anvil, 10), key_hex(&anvil, 11), key_hex(&anvil, 12));

    // Act
    let output = tmai_pay(
        &["deploy", "--rpc-url", &anvil.endpoint(), "--test-tokens", "--admin-delay-secs", "3600", "--out", out.to_str().unwrap()],
        &[("TMAI_PAY_DEPLOYER_KEY", &deployer), ("TMAI_PAY_QUOTE_SIGNER_KEY", &signer), ("TMAI_PAY_ISSUER_KEY", &issuer)],
    );

    // Assert
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "deploy failed: {stderr}");
    assert!(stdout.contains("admin delay    3600 s"), "{stdout}");
    let deployment = Deployment::read(&out).unwrap();
    let badge = MembershipBadge::new(deployment.badge, ProviderBuilder::new().connect_http(anvil.endpoint_url()));
    assert_eq!(badge.defaultAdminDelay().call().await.unwrap(), U48::from(3600u64));
}

#[test]
fn deploy_refuses_an_admin_delay_longer_than_a_year() {
    // 2 days written in milliseconds: the mistake the cap is there to catch
    let stderr = failed_deploy(
        &["--rpc-url", "http://127.0.0.1:1", "--test-tokens", "--admin-delay-secs", "172800000"],
        &[("TMAI_PAY_DEPLOYER_KEY", SOME_KEY), ("TMAI_PAY_QUOTE_SIGNER_KEY", SOME_KEY), ("TMAI_PAY_ISSUER_KEY", SOME_KEY)],
    );
    assert!(stderr.contains("--admin-delay-secs") && stderr.contains("172800000"), "{stderr}");
}

/// Runs a deploy that must fail; returns stderr after checking that nothing was written.
fn failed_deploy(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.json");
    let mut all = vec!["deploy", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = tmai_pay(&all, env);
    let (_, stderr) = text(&output);
    assert!(!output.status.success(), "deploy should fail");
    assert!(!out.exists(), "a failed deploy wrote a deployment file");
    stderr
}

const SOME_KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

#[test]
fn deploy_refuses_an_unreachable_rpc_url() {
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let stderr = failed_deploy(
        &["--rpc-url", &url, "--test-tokens"],
        &[("TMAI_PAY_DEPLOYER_KEY", SOME_KEY), ("TMAI_PAY_QUOTE_SIGNER_KEY", SOME_KEY), ("TMAI_PAY_ISSUER_KEY", SOME_KEY)],
    );
    assert!(stderr.contains("cannot reach the RPC endpoint"), "{stderr}");
}

#[test]
fn deploy_refuses_a_malformed_rpc_url() {
    let stderr = failed_deploy(
        &["--rpc-url", "not a url", "--test-tokens"],
        &[("TMAI_PAY_DEPLOYER_KEY", SOME_KEY), ("TMAI_PAY_QUOTE_SIGNER_KEY", SOME_KEY), ("TMAI_PAY_ISSUER_KEY", SOME_KEY)],
    );
    assert!(stderr.contains("is not a URL"), "{stderr}");
}

#[test]
fn deploy_refuses_a_missing_deployer_key() {
    let stderr = failed_deploy(&["--rpc-url", "http://127.0.0.1:1", "--test-tokens"], &[]);
    assert!(stderr.contains("TMAI_PAY_DEPLOYER_KEY is not set"), "{stderr}");
}

#[test]
fn deploy_refuses_an_invalid_key_without_printing_it() {
    let bad = "0xnot-a-key-but-a-secret-looking-string";
    let stderr = failed_deploy(&["--rpc-url", "http://127.0.0.1:1", "--test-tokens"], &[("TMAI_PAY_DEPLOYER_KEY", bad)]);
    assert!(stderr.contains("TMAI_PAY_DEPLOYER_KEY is not a valid private key"), "{stderr}");
    assert!(!stderr.contains("secret-looking"), "the key was printed: {stderr}");
}

#[test]
fn deploy_refuses_without_tokens() {
    let stderr = failed_deploy(
        &["--rpc-url", "http://127.0.0.1:1"],
        &[("TMAI_PAY_DEPLOYER_KEY", SOME_KEY), ("TMAI_PAY_QUOTE_SIGNER_KEY", SOME_KEY), ("TMAI_PAY_ISSUER_KEY", SOME_KEY)],
    );
    assert!(stderr.contains("no tokens"), "{stderr}");
}

#[tokio::test]
async fn deploy_refuses_an_unfunded_deployer() {
    let anvil = devnet::spawn_anvil(&toolchain(), &AnvilOptions::default()).unwrap();
    let stderr = failed_deploy(
        &["--rpc-url", &anvil.endpoint(), "--test-tokens"],
        &[("TMAI_PAY_DEPLOYER_KEY", SOME_KEY), ("TMAI_PAY_QUOTE_SIGNER_KEY", SOME_KEY), ("TMAI_PAY_ISSUER_KEY", SOME_KEY)],
    );
    assert!(stderr.contains("has 0.000000000000000000 ETH") && stderr.contains("fund it first"), "{stderr}");
}

#[test]
fn an_unknown_command_fails_with_usage() {
    let output = tmai_pay(&["launch-rockets"], &[]);
    assert!(!output.status.success());
    assert!(text(&output).1.contains("Usage"), "{}", text(&output).1);
}

#[tokio::test]
async fn dev_serves_the_chain_the_api_and_the_page_and_stops_on_ctrl_c() {
    // Arrange
    let port = free_port();
    let http_port = free_port();
    let ops_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmai-pay"))
        .args(["dev", "--rpc-port", &port.to_string(), "--http-port", &http_port.to_string(), "--ops-port", &ops_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let fixture = Deployment::read(&toolchain().fixtures_dir().join(devnet::DEPLOYMENT_FILE)).unwrap();

    // Act
    let provider = ProviderBuilder::new().connect_http(format!("http://127.0.0.1:{port}").parse().unwrap());
    let signer = SubscriptionCheckout::new(fixture.checkout, &provider).quoteSigner().call().await;
    let api = format!("http://127.0.0.1:{http_port}");
    let plans: serde_json::Value = reqwest::get(format!("{api}/v1/plans")).await.unwrap().json().await.unwrap();
    let ops = format!("http://127.0.0.1:{ops_port}");
    let ready = reqwest::get(format!("{ops}/readyz")).await.unwrap().status();
    let public_ready = reqwest::get(format!("{api}/readyz")).await.unwrap().status();
    // `tmai-pay rates` with the example catalog against the dev chain, before and after a
    // $50,000 push with `tmai-pay devnet swap`.
    let example = toolchain().root().join("tmai-pay.example.toml");
    let rpc = format!("http://127.0.0.1:{port}");
    let rates_args = ["rates", "--config", example.to_str().unwrap()];
    let rates_env = [("TMAI_PAY__CHAIN__RPC_URL", rpc.as_str())];
    let rates = tmai_pay(&rates_args, &rates_env);
    let swap = tmai_pay(&["devnet", "swap", "--usd", "50000", "--rpc-url", &rpc], &[]);
    let pushed = tmai_pay(&rates_args, &rates_env);
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();

    // Assert
    assert_eq!(signer.unwrap(), fixture.quote_signer);
    assert!(printed.contains(&format!("127.0.0.1:{port}")) || printed.contains(&format!("localhost:{port}")), "{printed}");
    assert!(printed.contains(&fixture.checkout.to_string()), "{printed}");
    assert!(printed.contains(&fixture.test_wallets[0].private_key.to_string()), "{printed}");
    assert!(printed.contains(&format!("http://127.0.0.1:{http_port}/checkout")), "{printed}");
    assert_eq!(plans["chain"]["checkout"], fixture.checkout.to_string());
    // The example catalog prices every plan in dollars, in TMAI (the pool's TWAP times
    // ETH/USD, less the discount) and in USD (the guarded stablecoin), with healthy rates:
    // dev refreshed the fixtures' feeds, however old they are.
    for plan in plans["plans"].as_array().unwrap() {
        let price_usd = plan["price_usd"].as_str().unwrap_or_else(|| panic!("a plan without price_usd: {plan}"));
        for symbol in ["TMAI", "USD"] {
            let price = plan["prices"].as_array().unwrap().iter().find(|p| p["token"] == symbol).unwrap_or_else(|| panic!("{plan}"));
            assert!(price["reason"].is_null() && price["amount"].as_str().is_some_and(|a| a != "0"), "{price}");
            let source = if symbol == "TMAI" { "uniswap_v3" } else { "stable" };
            assert_eq!(price["usd"]["source"], source, "{price}");
            if symbol == "USD" {
                assert_eq!(price["usd"]["price_usd"], price_usd, "{price}");
            }
        }
    }
    assert!(printed.contains("tmai-pay devnet swap --usd 50000"), "{printed}");
    let (rates_out, rates_err) = text(&rates);
    assert!(rates.status.success(), "{rates_out}{rates_err}");
    assert!(rates_out.lines().filter(|l| l.ends_with(" ok")).count() == 2 && rates_out.contains("uniswap_v3"), "{rates_out}");
    let (swap_out, swap_err) = text(&swap);
    assert!(swap.status.success() && swap_out.contains("bought") && swap_out.contains("TMAI spot $0.1"), "{swap_out}{swap_err}");
    let (pushed_out, _) = text(&pushed);
    assert_eq!(pushed.status.code(), Some(1), "a same-block push is refused: {pushed_out}");
    assert!(pushed_out.contains("manipulated") && pushed_out.lines().any(|l| l.starts_with("USD ") && l.ends_with(" ok")), "{pushed_out}");
    assert_eq!(ready.as_u16(), 200);
    assert_eq!(public_ready.as_u16(), 404, "/readyz is on the operations listener only");
    assert!(printed.contains(&format!("http://127.0.0.1:{ops_port}/metrics")), "{printed}");
    // The local anvil carries no key: dev publishes it for wallets explicitly.
    let published = plans["chain"]["rpc_url"].as_str().unwrap_or_default();
    assert!(published.starts_with("http://") && published.ends_with(&format!(":{port}")), "{plans}");
    assert!(exit.success(), "dev exited with {exit}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(provider.get_block_number().await.is_err(), "anvil still answers after Ctrl-C");
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_from_the_command_line() {
    // Arrange: a configuration naming a fresh SQLite database
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tmai-pay.toml");
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    std::fs::write(&config, format!("database_url = \"{url}\"\n[chain]\nrpc_url = \"http://127.0.0.1:9\"\nchain_id = 31337\n")).unwrap();
    let config = config.to_str().unwrap();

    // Act
    let created = tmai_pay(&["api-key", "create", "--name", "billing app", "--config", config], &[]);
    let (stdout, stderr) = text(&created);
    assert!(created.status.success(), "{stderr}");
    let key = stdout.lines().find(|l| l.starts_with("tmai_sk_")).expect("the key is printed once").to_string();
    let listed = text(&tmai_pay(&["api-key", "list", "--config", config], &[])).0;
    let db = tmai_pay::store::Db::connect(&url).await.unwrap();
    let live = tmai_pay::http::keys::verify(&db, &key).await.unwrap();
    let revoked = tmai_pay(&["api-key", "revoke", "1", "--config", config], &[]);
    let again = tmai_pay(&["api-key", "revoke", "1", "--config", config], &[]);

    // Assert
    assert_eq!(key.len(), 8 + 64);
    assert!(listed.contains("billing app") && listed.contains("live") && !listed.contains(&key), "{listed}");
    assert_eq!(live, Some(1));
    assert!(revoked.status.success());
    assert_eq!(tmai_pay::http::keys::verify(&db, &key).await.unwrap(), None);
    assert!(!again.status.success());
    assert!(text(&again).1.contains("no live API key with id 1"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT hash FROM api_keys").fetch_one(db.pool()).await.unwrap();
    assert_eq!(stored.len(), 32, "only the hash is stored");
}
