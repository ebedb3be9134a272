//! The local chain: anvil from the pinned toolchain, the fixed test accounts, and the
//! fixtures in `anvil-fixtures/` (a state file for `anvil --load-state` with the contracts
//! deployed at fixed addresses, and the matching `deployment.json`).
//!
//! Accounts come from anvil's public test mnemonic: 0–9 are the funded test wallets
//! (ETH, TMAI and USD), 10 deploys and owns the contracts, 11 signs quotes, 12 issues
//! badges and 13 is the treasury.

use std::{io::Read, path::Path};

use alloy::{
    eips::BlockNumberOrTag,
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};

use super::{
    deploy::{self, DeployError, DeployPlan, Tokens},
    deployment::{Deployment, DeploymentFileError, TestWallet},
    market,
};
use crate::toolchain::Toolchain;

/// Chain id of the local chain.
pub const CHAIN_ID: u64 = 31337;
/// Accounts anvil creates from its mnemonic.
pub const ACCOUNTS: usize = 14;
/// Number of funded test wallets (accounts 0–9).
pub const TEST_WALLETS: usize = 10;
/// Index of the deployer, contract owner and badge admin.
pub const DEPLOYER: usize = 10;
/// Index of the quote signer.
pub const QUOTE_SIGNER: usize = 11;
/// Index of the badge issuer.
pub const ISSUER: usize = 12;
/// Index of the treasury.
pub const TREASURY: usize = 13;
/// State file name inside the fixtures folder.
pub const STATE_FILE: &str = "state.json";
/// Deployment file name inside the fixtures folder.
pub const DEPLOYMENT_FILE: &str = "deployment.json";

/// Why the local chain could not be started or its fixtures made.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// anvil did not start.
    #[error("anvil did not start: {0}")]
    Spawn(String),
    /// Deploying the fixtures failed.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// anvil's RPC failed.
    #[error("anvil RPC failed: {0}")]
    Rpc(String),
    /// A fixture file could not be read or written.
    #[error("{0}")]
    File(String),
    /// The deployment file is unreadable.
    #[error(transparent)]
    Deployment(#[from] DeploymentFileError),
}

/// Options for starting anvil.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Port to listen on; a free one when `None`.
    pub port: Option<u16>,
    /// State file to load (`--load-state`).
    pub load_state: Option<std::path::PathBuf>,
    /// Seconds between blocks; mines on every transaction when `None`.
    pub block_time: Option<u64>,
    /// Listen on all interfaces instead of 127.0.0.1.
    pub public: bool,
    /// The genesis block's timestamp (`--timestamp`); the wall clock when `None`.
    pub timestamp: Option<u64>,
}

/// Starts anvil from the toolchain with the test accounts; it is killed when the
/// returned instance is dropped.
pub fn spawn_anvil(toolchain: &Toolchain, options: &AnvilOptions) -> Result<AnvilInstance, DevnetError> {
    let mut anvil = Anvil::at(toolchain.anvil())
        .arg("--chain-id")
        .arg(CHAIN_ID.to_string())
        .arg("--accounts")
        .arg(ACCOUNTS.to_string())
        .arg("--host")
        .arg(if options.public { "0.0.0.0" } else { "127.0.0.1" });
    if let Some(port) = options.port {
        anvil = anvil.port(port);
    }
    if let Some(state) = &options.load_state {
        anvil = anvil.arg("--load-state").arg(state);
    }
    if let Some(time) = options.timestamp {
        anvil = anvil.arg("--timestamp").arg(time.to_string());
    }
    if let Some(seconds) = options.block_time {
        anvil = anvil.arg("--block-time").arg(seconds.to_string());
    }
    anvil.try_spawn().map_err(|e| DevnetError::Spawn(e.to_string()))
}

/// Returns anvil's test key at `index`.
pub fn key(anvil: &AnvilInstance, index: usize) -> PrivateKeySigner {
    anvil.keys()[index].clone().into()
}

/// Returns a provider for `anvil` that signs with the key at `index`. It asks the chain
/// for the nonce on every transaction (no cache), so it stays right across
/// `anvil_revert`, reorgs and transactions sent by other tools.
pub fn provider_for(anvil: &AnvilInstance, index: usize) -> DynProvider {
    let wallet = EthereumWallet::from(key(anvil, index));
    ProviderBuilder::default().with_gas_estimation().with_simple_nonce_management().fetch_chain_id().wallet(wallet).connect_http(anvil.endpoint_url()).erased()
}

/// Makes a fresh renewer for the local chain: a new key (its own, never a test account's),
/// funded for gas, set as the checkout's renewer by its owner (the deployer). Returns the key.
pub async fn enable_renewer(anvil: &AnvilInstance, deployment: &Deployment) -> Result<PrivateKeySigner, DevnetError> {
    let renewer = PrivateKeySigner::random();
    let owner = provider_for(anvil, DEPLOYER);
    owner
        .anvil_set_balance(renewer.address(), alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(19u64)))
        .await
        .map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let checkout = super::bindings::SubscriptionCheckout::new(deployment.checkout, &owner);
    let set = checkout.setRenewer(renewer.address()).send().await.map_err(|e| DevnetError::Rpc(e.to_string()))?;
    set.get_receipt().await.map_err(|e| DevnetError::Rpc(e.to_string()))?;
    Ok(renewer)
}

/// Deploys the contracts and test tokens on a fresh `anvil` the way the fixtures are made:
/// deployer account 10, quote signer 11, issuer 12, treasury 13, test wallets 0–9 funded,
/// the badge's admin delay the default one (a local chain can skip it with `evm_increaseTime`).
pub async fn deploy_fixture_contracts(anvil: &AnvilInstance) -> Result<Deployment, DevnetError> {
    let provider = provider_for(anvil, DEPLOYER);
    let holders: Vec<Address> = anvil.addresses()[..TEST_WALLETS].to_vec();
    let plan = DeployPlan {
        owner: anvil.addresses()[DEPLOYER],
        quote_signer: anvil.addresses()[QUOTE_SIGNER],
        issuer: anvil.addresses()[ISSUER],
        treasury: anvil.addresses()[TREASURY],
        admin_delay: deploy::DEFAULT_ADMIN_DELAY,
        tokens: Tokens::Test { holders: holders.clone() },
    };
    let mut deployment = deploy::deploy(&provider, &plan).await?;
    deployment.test_wallets =
        (0..TEST_WALLETS).map(|i| TestWallet { address: anvil.addresses()[i], private_key: B256::from(key(anvil, i).to_bytes()) }).collect();
    Ok(deployment)
}

/// The fixtures' genesis time (2026-11-01 00:00 UTC). Every block after it is stamped one
/// second after the one before, and the market's history at fixed times, so the state
/// (pool observations, feed rounds) is the same on every run.
pub const FIXTURE_GENESIS_TIME: u64 = 1_793_491_200;

/// Deploys on a fresh anvil and returns the deployment and anvil's dumped state (JSON):
/// the contracts and test tokens ([`deploy_fixture_contracts`]), then the market
/// ([`market::deploy_market`]) with its TWAP history ([`market::build_history`]).
pub async fn make_fixtures(toolchain: &Toolchain) -> Result<(Deployment, serde_json::Value), DevnetError> {
    let anvil = spawn_anvil(toolchain, &AnvilOptions { timestamp: Some(FIXTURE_GENESIS_TIME), ..AnvilOptions::default() })?;
    let provider = provider_for(&anvil, DEPLOYER);
    provider.anvil_set_block_timestamp_interval(1).await.map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let mut deployment = deploy_fixture_contracts(&anvil).await?;
    let owner = anvil.addresses()[DEPLOYER];
    let market = market::deploy_market(toolchain, &provider, owner, &deployment).await?;
    let tmai = deployment.token("TMAI").map(|t| t.address).ok_or_else(|| DevnetError::File("no TMAI token".into()))?;
    let head = provider.get_block_by_number(BlockNumberOrTag::Latest).await.map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let head_time = head.map(|b| b.header.timestamp).ok_or_else(|| DevnetError::Rpc("no latest block".into()))?;
    market::build_history(&provider, owner, tmai, &market, head_time + market::HISTORY_STEP_SECS).await?;
    // The feeds' rounds at the end of the history, as a keeper's would be.
    market::refresh_feeds(&provider, &market).await?;
    let mut market = market;
    market.quoter = market::deploy_quoter(toolchain, &provider, &market).await?;
    deployment.market = Some(market);
    let dumped = provider.anvil_dump_state().await.map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let state = decode_state(&dumped)?;
    Ok((deployment, state))
}

/// Regenerates `anvil-fixtures/` and returns the deployment it describes.
pub async fn write_fixtures(toolchain: &Toolchain, dir: &Path) -> Result<Deployment, DevnetError> {
    let (deployment, state) = make_fixtures(toolchain).await?;
    std::fs::create_dir_all(dir).map_err(|e| DevnetError::File(format!("{}: {e}", dir.display())))?;
    let state_path = dir.join(STATE_FILE);
    let text = serde_json::to_string(&state).expect("state serializes");
    std::fs::write(&state_path, text).map_err(|e| DevnetError::File(format!("{}: {e}", state_path.display())))?;
    deployment.write(&dir.join(DEPLOYMENT_FILE))?;
    Ok(deployment)
}

/// System contracts whose storage records block hashes, beacon roots and request
/// queues (EIP-2935, EIP-4788, EIP-7002, EIP-7251): it differs from run to run.
const SYSTEM_CONTRACTS: &[&str] = &[
    "0x0000f90827f1c53a10cb7a02335b175320002935",
    "0x000f3df6d732807ef1319fb7b8bb8522d0beac02",
    "0x00000961ef480eb55e80d19ad83579a64c007002",
    "0x0000bbddc7ce488642fb579f8b00f3a590007251",
];

/// Returns the accounts of a dumped state (code, storage, balances and nonces): what must
/// match between the committed fixtures and a fresh deployment. Block data (times, hashes)
/// and the system contracts that record it differ from run to run and are left out.
pub fn accounts_of(state: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut accounts = state.get("accounts").and_then(|a| a.as_object()).cloned().unwrap_or_default();
    accounts.retain(|address, _| !SYSTEM_CONTRACTS.contains(&address.to_ascii_lowercase().as_str()));
    accounts
}

/// Reads the committed state file.
pub fn read_state(dir: &Path) -> Result<serde_json::Value, DevnetError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| DevnetError::File(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| DevnetError::File(format!("{}: {e}", path.display())))
}

/// `anvil_dumpState` answers with gzip-compressed JSON; older versions with plain JSON.
fn decode_state(bytes: &[u8]) -> Result<serde_json::Value, DevnetError> {
    let mut json = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut json).map_err(|e| DevnetError::Rpc(format!("bad gzip state: {e}")))?;
    } else {
        json.extend_from_slice(bytes);
    }
    serde_json::from_slice(&json).map_err(|e| DevnetError::Rpc(format!("bad state JSON: {e}")))
}
