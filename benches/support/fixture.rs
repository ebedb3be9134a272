//! The local chain the HTTP benches serve against: anvil loaded with the committed fixture
//! state (`tmai-pay dev`'s contracts and accounts), its deployment, and a provider for it.

use alloy::{
    node_bindings::AnvilInstance,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use anyhow::Result;
use tmai_pay::{
    chain::{
        deployment::Deployment,
        devnet::{self, AnvilOptions},
    },
    toolchain::Toolchain,
};

/// The fixture chain: its deployment, the anvil serving it (kept alive by the caller) and a
/// provider for it.
pub struct FixtureChain {
    pub deployment: Deployment,
    pub anvil: AnvilInstance,
    pub provider: DynProvider,
}

/// Starts anvil on the fixture state.
pub fn start() -> Result<FixtureChain> {
    let toolchain = Toolchain::locate()?;
    let dir = toolchain.fixtures_dir();
    let deployment = Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE))?;
    let anvil = devnet::spawn_anvil(&toolchain, &AnvilOptions { load_state: Some(dir.join(devnet::STATE_FILE)), ..Default::default() })?;
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url()).erased();
    Ok(FixtureChain { deployment, anvil, provider })
}
