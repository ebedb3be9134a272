//! Shared test set-up: the toolchain, a fresh anvil with the fixture contracts, and
//! running the real `tmai-pay` binary.

use std::process::{Command, Output};

use alloy::node_bindings::AnvilInstance;
use tmai_pay::{
    chain::{
        deployment::Deployment,
        devnet::{self, AnvilOptions},
    },
    toolchain::Toolchain,
};

/// Returns the project's toolchain (installing it on first use).
pub(crate) fn toolchain() -> Toolchain {
    Toolchain::locate().expect("toolchain installs")
}

/// A fresh anvil with the contracts deployed as the fixtures deploy them.
pub(crate) struct TestChain {
    pub(crate) anvil: AnvilInstance,
    pub(crate) deployment: Deployment,
}

/// Starts a fresh anvil (killed on drop) and deploys the fixture contracts on it.
pub(crate) async fn spawn_chain() -> TestChain {
    let anvil = devnet::spawn_anvil(&toolchain(), &AnvilOptions::default()).expect("anvil starts");
    let deployment = devnet::deploy_fixture_contracts(&anvil).await.expect("contracts deploy");
    TestChain { anvil, deployment }
}

/// Runs the `tmai-pay` binary with `args` and extra environment variables; the
/// deployment key variables are cleared unless given.
pub(crate) fn tmai_pay(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tmai-pay"));
    command.args(args);
    for var in ["TMAI_PAY_DEPLOYER_KEY", "TMAI_PAY_QUOTE_SIGNER_KEY", "TMAI_PAY_ISSUER_KEY", "TMAI_PAY_RPC_URL"] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("tmai-pay runs")
}

/// Returns stdout and stderr of `output` as text.
pub(crate) fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Returns a TCP port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
