//! The deployment file: which chain, which contracts, which roles and tokens. Written by
//! `tmai-pay deploy` and by the fixture generator, read by the service and `tmai-pay dev`.

use std::path::Path;

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// One deployment of tmai-pay's contracts on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Block holding the first contract creation; the watcher starts here.
    pub deploy_block: u64,
    /// `SubscriptionCheckout` address.
    pub checkout: Address,
    /// `MembershipBadge` address.
    pub badge: Address,
    /// Owner of the checkout and admin of the badge.
    pub owner: Address,
    /// Account whose signatures make quotes valid.
    pub quote_signer: Address,
    /// Account holding the badge's issuer role.
    pub issuer: Address,
    /// Account that receives payments.
    pub treasury: Address,
    /// Tokens the checkout is meant to accept.
    pub tokens: Vec<TokenInfo>,
    /// The local chain's market (WETH, Uniswap v3, pools, feeds); absent from deployments
    /// of real chains and from older fixture files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<MarketInfo>,
    /// Funded wallets of a local test chain with their (public, well-known) test keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_wallets: Vec<TestWallet>,
}

/// An ERC-20 token the checkout takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenInfo {
    /// Token symbol, as the plans catalog names it.
    pub symbol: String,
    /// Token contract.
    pub address: Address,
    /// Display decimals.
    pub decimals: u8,
    /// Whether the token implements EIP-2612 `permit`.
    pub permit: bool,
}

/// The market deployed on a local test chain (`tmai-pay fixtures regenerate`): what a
/// buyer's route (USD → WETH → TMAI) and the USD pricing sources need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarketInfo {
    /// WETH9.
    pub weth: Address,
    /// `UniswapV3Factory`.
    pub uniswap_factory: Address,
    /// `NonfungiblePositionManager`.
    pub position_manager: Address,
    /// `SwapRouter`.
    pub swap_router: Address,
    /// The pools' fee tier, in hundredths of a basis point (3000: 0.3 %).
    pub fee: u32,
    /// The TMAI/WETH pool (TMAI's TWAP).
    pub tmai_weth_pool: Address,
    /// The WETH/USD pool (the rest of a buyer's route).
    pub weth_usd_pool: Address,
    /// Chainlink `MockV3Aggregator`: ETH/USD, 8 decimals.
    pub eth_usd_feed: Address,
    /// Chainlink `MockV3Aggregator`: the USD test token's peg, 8 decimals.
    pub usd_peg_feed: Address,
    /// `QuoterV2` (Uniswap v3 periphery's lens): what a swap costs, by simulating it.
    pub quoter: Address,
}

/// A funded account of a local test chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestWallet {
    /// The account.
    pub address: Address,
    /// Its private key: one of anvil's public test keys, never a real secret.
    pub private_key: B256,
}

/// Why a deployment file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid deployment.
    #[error("{path} is not a valid deployment file: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl Deployment {
    /// Reads a deployment file.
    pub fn read(path: &Path) -> Result<Self, DeploymentFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentFileError::Io { path: name.clone(), source })?;
        serde_json::from_str(&text).map_err(|source| DeploymentFileError::Parse { path: name, source })
    }

    /// Writes the deployment as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), DeploymentFileError> {
        let text = serde_json::to_string_pretty(self).expect("deployment serializes") + "\n";
        std::fs::write(path, text).map_err(|source| DeploymentFileError::Io { path: path.display().to_string(), source })
    }

    /// Returns the token with `symbol`, if the deployment has it.
    pub fn token(&self, symbol: &str) -> Option<&TokenInfo> {
        self.tokens.iter().find(|t| t.symbol.eq_ignore_ascii_case(symbol))
    }
}
