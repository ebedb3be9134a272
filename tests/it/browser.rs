//! The checkout page in a real browser: `tmai-pay dev` (anvil with the fixtures, the
//! service on SQLite, a block a second) and headless Chromium driven by playwright-core
//! (`web/e2e/checkout.mjs`) with an injected EIP-1193 wallet backed by an anvil test
//! account: open the page, connect, Premium monthly in TMAI, pay, see Active and the badge.
//! The screenshot is saved to `target/e2e/checkout.png`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use crate::helpers::{free_port, toolchain};

#[test]
fn a_wallet_buys_premium_monthly_in_tmai_on_the_checkout_page() {
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
    let mut ready = false;
    for line in BufReader::new(dev.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if line.starts_with("Press Ctrl-C") {
            ready = true;
            break;
        }
    }
    assert!(ready, "tmai-pay dev did not start");
    let shots = root.join("target/e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join("checkout.png");
    let _ = std::fs::remove_file(&screenshot);

    // Act: the browser run
    let output = Command::new("node")
        .arg(root.join("web/e2e/checkout.mjs"))
        .env("BASE_URL", format!("http://127.0.0.1:{http_port}"))
        .env("RPC_URL", format!("http://127.0.0.1:{rpc_port}"))
        .env("ACCOUNT", "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")
        .env("PLAN", "premium")
        .env("TOKEN", "TMAI")
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node runs");
    // Ctrl-C, not SIGKILL: a killed `dev` cannot stop its anvil, which would outlive the test.
    let _ = Command::new("kill").args(["-INT", &dev.id().to_string()]).status();
    let _ = dev.wait();

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.contains("e2e: ok"), "browser run failed:\n{stdout}\n{stderr}");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
