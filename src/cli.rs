//! The command line: `tmai-pay <command>`. Each command's documentation is its `--help`.

use std::path::PathBuf;

use alloy::primitives::Address;
use clap::{Args, Parser, Subcommand};

/// tmai-pay: subscription checkout paid on-chain, with soulbound membership badges.
#[derive(Debug, Parser)]
#[command(name = "tmai-pay", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "TMAI_PAY_LOG_JSON")]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile the Solidity contracts or check the committed artifacts.
    #[command(subcommand)]
    Contracts(ContractsCommand),
    /// Deploy the contracts to a chain (keys from the environment).
    Deploy(DeployArgs),
    /// Regenerate or check the local chain fixtures in anvil-fixtures/.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// Run the local chain with the contracts deployed; stop with Ctrl-C.
    Dev(DevArgs),
    /// Move the local chain's market (`tmai-pay dev`'s anvil).
    #[command(subcommand)]
    Devnet(DevnetCommand),
    /// Run the payment watcher (leader-elected on PostgreSQL); stop with Ctrl-C.
    Watch(WatchArgs),
    /// Run the service: the payment watcher and the badge minter (each leader-elected on
    /// PostgreSQL); stop with Ctrl-C.
    Run(WatchArgs),
    /// Create, list or revoke merchant API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Print every priced token's current USD rate, source, age and guard status (exits 1
    /// when one is refused, 2 — with the field named — when the configuration is bad).
    Rates(WatchArgs),
    /// Print the signed form of a customer reference (`<ref>.<expires_at>.<mac>`, keyed by
    /// `merchant.customer_ref_secret`) for a checkout link a public page may carry.
    CustomerRef(CustomerRefArgs),
}

/// `tmai-pay customer-ref`
#[derive(Debug, Args)]
pub struct CustomerRefArgs {
    /// The merchant's user id: 1–64 characters of A-Z a-z 0-9 _ : @ -.
    pub customer_ref: String,
    /// Seconds the signed reference stays valid.
    #[arg(long, default_value_t = 86_400)]
    pub ttl_secs: u64,
    /// Configuration file (for `merchant.customer_ref_secret`).
    #[arg(long, default_value = "tmai-pay.toml")]
    pub config: PathBuf,
}

/// `tmai-pay api-key …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// Configuration file (for the database).
        #[arg(long, default_value = "tmai-pay.toml", env = "TMAI_PAY_CONFIG")]
        config: PathBuf,
    },
    /// List keys (ids, names, prefixes; never the keys).
    List {
        /// Configuration file (for the database).
        #[arg(long, default_value = "tmai-pay.toml", env = "TMAI_PAY_CONFIG")]
        config: PathBuf,
    },
    /// Revoke a key by id; requests with it are refused from then on.
    Revoke {
        /// Key id, from `tmai-pay api-key list`.
        id: i64,
        /// Configuration file (for the database).
        #[arg(long, default_value = "tmai-pay.toml", env = "TMAI_PAY_CONFIG")]
        config: PathBuf,
    },
}

/// `tmai-pay watch` and `tmai-pay run`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Configuration file (TOML); TMAI_PAY__… environment variables override it.
    #[arg(long, default_value = "tmai-pay.toml", env = "TMAI_PAY_CONFIG")]
    pub config: PathBuf,
}

/// `tmai-pay contracts …`
#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Compile contracts/ and write contracts/artifacts/ (the bindings' source).
    Build,
    /// Compile afresh and fail when contracts/artifacts/ differs.
    Check,
}

/// `tmai-pay fixtures …`
#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Deploy on a fresh anvil and rewrite anvil-fixtures/.
    Regenerate,
    /// Deploy on a fresh anvil and fail when anvil-fixtures/ differs.
    Check,
}

/// `tmai-pay devnet …`
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Buy (or, with --sell, sell) TMAI worth --usd dollars through the Uniswap router,
    /// USD → WETH → TMAI, as the tokens' owner (impersonated; anvil only), who mints what it
    /// pays with. The spot price moves at once, the TWAP over its window.
    Swap(SwapArgs),
}

/// `tmai-pay devnet swap`
#[derive(Debug, Args)]
pub struct SwapArgs {
    /// Dollars of TMAI to buy (or, with --sell, the dollars to receive for TMAI).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub usd: u64,
    /// Sell TMAI instead of buying it (the TMAI price falls).
    #[arg(long)]
    pub sell: bool,
    /// The local chain's JSON-RPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// The deployment file naming the market (default: anvil-fixtures/deployment.json).
    #[arg(long)]
    pub deployment: Option<PathBuf>,
}

/// `tmai-pay deploy`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the target chain (http, https, ws or wss).
    #[arg(long, env = "TMAI_PAY_RPC_URL")]
    pub rpc_url: String,
    /// Where to write the deployment file.
    #[arg(long, default_value = "deployment.json")]
    pub out: PathBuf,
    /// Account that receives payments (default: the deployer).
    #[arg(long)]
    pub treasury: Option<Address>,
    /// Owner of the checkout and admin of the badge (default: the deployer).
    #[arg(long)]
    pub owner: Option<Address>,
    /// Quote signer address (default: the address of TMAI_PAY_QUOTE_SIGNER_KEY).
    #[arg(long)]
    pub quote_signer: Option<Address>,
    /// Badge issuer address (default: the address of TMAI_PAY_ISSUER_KEY).
    #[arg(long)]
    pub issuer: Option<Address>,
    /// Seconds between beginning and accepting a transfer of the badge's admin role
    /// (OpenZeppelin AccessControlDefaultAdminRules); 0 to 31536000 (365 days).
    #[arg(long, default_value_t = crate::chain::deploy::DEFAULT_ADMIN_DELAY.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=crate::chain::deploy::MAX_ADMIN_DELAY.as_secs()))]
    pub admin_delay_secs: u64,
    /// An existing ERC-20 token the checkout takes; repeat for several.
    #[arg(long = "token", conflicts_with = "test_tokens")]
    pub tokens: Vec<Address>,
    /// Deploy TMAI and USD test tokens instead (test chains only).
    #[arg(long)]
    pub test_tokens: bool,
}

/// `tmai-pay dev`
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the local chain's JSON-RPC endpoint.
    #[arg(long, default_value_t = 8545, env = "TMAI_PAY_DEV_RPC_PORT")]
    pub rpc_port: u16,
    /// Seconds between blocks (0: a block per transaction only).
    #[arg(long, default_value_t = 1)]
    pub block_time: u64,
    /// Port of the HTTP API and checkout page.
    #[arg(long, default_value_t = 8080, env = "TMAI_PAY_DEV_HTTP_PORT")]
    pub http_port: u16,
    /// Port of the operations listener (`/metrics`, `/readyz`) on 127.0.0.1.
    #[arg(long, default_value_t = 9090, env = "TMAI_PAY_DEV_OPS_PORT")]
    pub ops_port: u16,
}
