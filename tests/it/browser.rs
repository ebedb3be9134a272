//! The checkout page in a real browser: `tmai-pay dev` (anvil with the fixtures, the
//! service on SQLite, a block a second) and headless Chromium driven by playwright-core
//! (`web/e2e/checkout.mjs`) with an injected EIP-1193 wallet backed by an anvil test
//! account: open the page, connect, Premium monthly in TMAI, pay, see Active and the badge.
//! Twice on the same chain: once with the wallet as `window.ethereum` only (the fallback),
//! once with two wallets announced by EIP-6963 where the member picks and pays with the
//! second. Then the market moves (`tmai-pay devnet swap --usd 50000`, a TWAP window passes)
//! and a wallet with USD but no TMAI buys the plan with the page's one-click buy: the offer
//! shows the swap's cost before any wallet prompt, one click swaps exactly the shortfall
//! through the Uniswap router and pays, and the TMAI amount shown for the same dollar price
//! followed the market. The screenshots are saved to `target/e2e/checkout.png`,
//! `target/e2e/checkout-usd.png` (the dollar price; `docs/checkout-usd.png` is a copy),
//! `target/e2e/wallets.png` (the wallet list; `docs/wallets.png` is a copy),
//! `target/e2e/wallets-paid.png`, `target/e2e/buy-tmai.png` (the offer; `docs/buy-tmai.png`
//! is a copy), `target/e2e/bought.png`, and `target/e2e/receipt.png` (the first payment's
//! receipt opened from its webhook's `receipt_url`; `docs/receipt.png` is a copy).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use crate::helpers::{free_port, toolchain};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

#[test]
fn a_wallet_buys_premium_monthly_in_tmai_on_the_checkout_page_the_second_of_two_announced_wallets_too_and_one_short_of_tmai_buys_it_in_one_click() {
    // Arrange: the one-command dev setup
    let root = toolchain().root().to_path_buf();
    assert!(root.join("web/dist/checkout.js").exists(), "web/dist is not built: run tools/install.sh");
    let (rpc_port, http_port, ops_port) = (free_port(), free_port(), free_port());
    let mut dev = Command::new(env!("CARGO_BIN_EXE_tmai-pay"))
        .args(["dev", "--rpc-port", &rpc_port.to_string(), "--http-port", &http_port.to_string(), "--ops-port", &ops_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut ready, mut api_key) = (false, String::new());
    for line in BufReader::new(dev.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(rest) = line.trim().strip_prefix("merchant key") {
            api_key = rest.split_whitespace().next().unwrap_or_default().to_string();
        }
        if line.starts_with("Press Ctrl-C") {
            ready = true;
            break;
        }
    }
    assert!(ready, "tmai-pay dev did not start");
    let shots = root.join("target/e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join("checkout.png");
    let wallets_paid = shots.join("wallets-paid.png");
    let wallet_list = shots.join("wallets.png");
    let price_shot = shots.join("checkout-usd.png");
    let offer_shot = shots.join("buy-tmai.png");
    let bought_shot = shots.join("bought.png");
    let receipt_shot = shots.join("receipt.png");
    let account_shot = shots.join("account.png");
    let account_receipt_shot = shots.join("account-receipt.png");
    for shot in [&screenshot, &wallets_paid, &wallet_list, &price_shot, &offer_shot, &bought_shot, &receipt_shot, &account_shot, &account_receipt_shot] {
        let _ = std::fs::remove_file(shot);
    }
    let browser_run = |account: &str, extra: &[(&str, &std::path::Path)], wallets: &str, other: &str, shot: &std::path::Path| {
        let mut node = Command::new("node");
        node.arg(root.join("web/e2e/checkout.mjs"))
            .env("BASE_URL", format!("http://127.0.0.1:{http_port}"))
            .env("RPC_URL", format!("http://127.0.0.1:{rpc_port}"))
            .env("ACCOUNT", account)
            .env("WALLETS", wallets)
            .env("OTHER_ACCOUNT", other)
            .env("PLAN", "premium")
            .env("TOKEN", "TMAI")
            .env("SCREENSHOT", shot);
        for (name, value) in extra {
            node.env(name, value);
        }
        node.output().expect("node runs")
    };

    // Act: the wallet as window.ethereum only, then two announced wallets (anvil's second
    // and third test accounts, the third listed first) paying with the second listed
    let injected = browser_run("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", &[("PRICE_SCREENSHOT", &price_shot)], "injected", "", &screenshot);
    let announced = browser_run(
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        &[("WALLETS_SCREENSHOT", &wallet_list)],
        "announced",
        "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
        &wallets_paid,
    );
    // The market moves: $50,000 of TMAI bought, then a whole TWAP window passes (the
    // service's clock follows the chain's), so the same dollar price is fewer TMAI.
    let rpc_url = format!("http://127.0.0.1:{rpc_port}");
    let moved = Command::new(env!("CARGO_BIN_EXE_tmai-pay")).args(["devnet", "swap", "--usd", "50000", "--rpc-url", &rpc_url]).output().unwrap();
    assert!(moved.status.success(), "devnet swap: {}", String::from_utf8_lossy(&moved.stderr));
    let cast = root.join("tools/bin/cast");
    for args in [vec!["rpc", "evm_increaseTime", "1801"], vec!["rpc", "evm_mine"]] {
        let done = Command::new(&cast).args(&args).args(["--rpc-url", &rpc_url]).output().unwrap();
        assert!(done.status.success(), "cast {args:?}: {}", String::from_utf8_lossy(&done.stderr));
    }
    // The rates are read again on the next blocks.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let bought = browser_run(
        "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
        &[("BUY", std::path::Path::new("1")), ("BUY_SCREENSHOT", &offer_shot)],
        "injected",
        "",
        &bought_shot,
    );
    // The first payment's receipt, opened from the link its webhook carries.
    let receipt = Command::new("node")
        .arg(root.join("web/e2e/receipt.mjs"))
        .env("BASE_URL", format!("http://127.0.0.1:{http_port}"))
        .env("API_KEY", &api_key)
        .env("SCREENSHOT", &receipt_shot)
        .output()
        .expect("node runs");
    // The first member's account page: sign in, plan, badge, payment with its receipt, an
    // upgrade previewed and paid on the checkout page (receipt R-000004, after the other two
    // wallets' payments), a lower tier scheduled and undone, cancel and take it back, open
    // the newest receipt, sign out.
    let account = Command::new("node")
        .arg(root.join("web/e2e/account.mjs"))
        .env("BASE_URL", format!("http://127.0.0.1:{http_port}"))
        .env("RPC_URL", format!("http://127.0.0.1:{rpc_port}"))
        .env("ACCOUNT", "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")
        .env("SCREENSHOT", &account_shot)
        .env("RECEIPT_SCREENSHOT", &account_receipt_shot)
        .output()
        .expect("node runs");
    // Ctrl-C, not SIGKILL: a killed `dev` cannot stop its anvil, which would outlive the test.
    let _ = Command::new("kill").args(["-INT", &dev.id().to_string()]).status();
    let _ = dev.wait();

    // Assert
    for (run, output) in [
        ("window.ethereum", &injected),
        ("two announced wallets", &announced),
        ("the one-click buy", &bought),
        ("the receipt", &receipt),
        ("the account page", &account),
    ] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && stdout.contains("e2e: ok"), "browser run with {run} failed:\n{stdout}\n{stderr}");
        println!("{run}:\n{stdout}");
    }
    let stdout = String::from_utf8_lossy(&announced.stdout);
    assert!(stdout.contains("e2e: wallets listed: Harbor Wallet, Lantern Wallet"), "{stdout}");
    let amount_shown = |output: &std::process::Output| -> u128 {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find(|l| l.starts_with("e2e: price shown:")).unwrap_or_else(|| panic!("no price line:\n{stdout}"));
        line.rsplit("(amount ").next().and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    let (before, after) = (amount_shown(&injected), amount_shown(&bought));
    assert!(after * 100 < before * 96, "after a $50,000 buy and a TWAP window the $49.00 plan costs fewer TMAI: {before} then {after}");
    let stdout = String::from_utf8_lossy(&bought.stdout);
    assert!(stdout.contains("e2e: offer: You have 0 TMAI. Buy the missing"), "{stdout}");
    assert!(stdout.contains("e2e: bought exactly"), "{stdout}");
    let stdout = String::from_utf8_lossy(&receipt.stdout);
    assert!(stdout.contains("e2e: receipt R-000001 ok (tmai-pay dev shop)"), "{stdout}");
    let stdout = String::from_utf8_lossy(&account.stdout);
    for step in [
        "e2e: signed in; plan Premium monthly (Premium), Active",
        "e2e: preview: Upgrades to VIP monthly at once. Your unused paid time becomes",
        "e2e: upgraded to VIP monthly (VIP), receipt R-000004",
        "e2e: preview: Premium monthly takes effect on",
        "e2e: Your next renewal switches to Premium monthly, paid in TMAI, on",
        "e2e: switch undone",
        "e2e: canceled",
        "e2e: cancel taken back",
        "e2e: receipt R-000004 opened",
        "e2e: renewal on: Renews automatically: next charge on",
        "e2e: renewed automatically: the plan and the badge now end",
        "e2e: paid by hand with renewal on; the renewal's allowance stays",
        "e2e: renewal off; allowance 0",
        "e2e: cancel withdrew renewal; allowance 0; undo leaves it off",
        "e2e: signed out",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    for shot in [&screenshot, &wallets_paid, &wallet_list, &price_shot, &offer_shot, &bought_shot, &receipt_shot, &account_shot, &account_receipt_shot] {
        let png = std::fs::read(shot).expect("the screenshot was saved");
        assert_eq!(&png[..8], PNG, "{}", shot.display());
    }
}
