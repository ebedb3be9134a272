//! A real market on the local chain, deployed into the fixtures: WETH9, Uniswap v3 (factory,
//! position manager, swap router) from the bytecode of their published npm packages, a
//! TMAI/WETH and a WETH/USD pool with liquidity over a realistic range, and Chainlink's
//! own `MockV3Aggregator` (compiled from `@chainlink/contracts` with the pinned solc) as the
//! ETH/USD and USD-token peg feeds. Tests and `tmai-pay fixtures regenerate` share this
//! code; `tmai-pay dev` refreshes the feeds and `tmai-pay devnet swap` moves the market.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

use std::sync::OnceLock;

use alloy::{
    network::TransactionBuilder,
    primitives::{
        Address, Bytes, I256, U256,
        aliases::{I24, U24, U160},
    },
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::TransactionRequest,
    sol,
    sol_types::SolValue,
};
use serde_json::{Value, json};

use super::{
    bindings::TestToken,
    deployment::{Deployment, MarketInfo},
    devnet::DevnetError,
};
use crate::toolchain::Toolchain;

sol! {
    #[sol(rpc)]
    interface IUniswapV3Factory {
        function createPool(address tokenA, address tokenB, uint24 fee) external returns (address pool);
        function getPool(address tokenA, address tokenB, uint24 fee) external view returns (address pool);
    }

    #[sol(rpc)]
    interface IPoolSetup {
        function initialize(uint160 sqrtPriceX96) external;
        function increaseObservationCardinalityNext(uint16 observationCardinalityNext) external;
        function slot0() external view returns (uint160 sqrtPriceX96, int24 tick, uint16 observationIndex, uint16 observationCardinality, uint16 observationCardinalityNext, uint8 feeProtocol, bool unlocked);
        function liquidity() external view returns (uint128);
        function token0() external view returns (address);
    }

    #[sol(rpc)]
    interface INonfungiblePositionManager {
        struct MintParams {
            address token0;
            address token1;
            uint24 fee;
            int24 tickLower;
            int24 tickUpper;
            uint256 amount0Desired;
            uint256 amount1Desired;
            uint256 amount0Min;
            uint256 amount1Min;
            address recipient;
            uint256 deadline;
        }
        function mint(MintParams calldata params) external payable returns (uint256 tokenId, uint128 liquidity, uint256 amount0, uint256 amount1);
    }

    #[sol(rpc)]
    interface ISwapRouter {
        struct ExactInputSingleParams {
            address tokenIn;
            address tokenOut;
            uint24 fee;
            address recipient;
            uint256 deadline;
            uint256 amountIn;
            uint256 amountOutMinimum;
            uint160 sqrtPriceLimitX96;
        }
        struct ExactInputParams {
            bytes path;
            address recipient;
            uint256 deadline;
            uint256 amountIn;
            uint256 amountOutMinimum;
        }
        struct ExactOutputParams {
            bytes path;
            address recipient;
            uint256 deadline;
            uint256 amountOut;
            uint256 amountInMaximum;
        }
        function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256 amountOut);
        function exactInput(ExactInputParams calldata params) external payable returns (uint256 amountOut);
        function exactOutput(ExactOutputParams calldata params) external payable returns (uint256 amountIn);
        // What the checkout page's one-click buy sends: one multicall of these two.
        function multicall(bytes[] calldata data) external payable returns (bytes[] memory results);
        function selfPermit(address token, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external payable;
    }

    #[sol(rpc)]
    interface IWETH9 {
        function deposit() external payable;
        function approve(address guy, uint256 wad) external returns (bool);
        function balanceOf(address) external view returns (uint256);
    }

    #[sol(rpc)]
    interface IMockV3Aggregator {
        function updateAnswer(int256 _answer) external;
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

/// The pools' fee tier (0.3 %, ticks spaced 60).
pub const FEE: u32 = 3_000;
/// Tick spacing of the 0.3 % tier.
pub const TICK_SPACING: i32 = 60;
/// The widest ticks a 0.3 % pool takes.
pub const FULL_RANGE: i32 = 887_220;
/// Ticks either side of the start price of the concentrated positions: 1.0001^13,860 ≈ 4,
/// so they cover a quarter to four times the start price.
pub const CONCENTRATED_TICKS: i32 = 13_860;
/// ETH at the start, in dollars.
pub const ETH_USD: u64 = 3_000;
/// TMAI at the start, in dollars (a tenth of a dollar).
pub const TMAI_USD: f64 = 0.10;
/// Decimals of both feeds (as Chainlink's USD feeds).
pub const FEED_DECIMALS: u8 = 8;
/// Observations each pool keeps: 30-minute windows with an observation a block.
pub const OBSERVATION_CARDINALITY: u16 = 64;
/// Seconds between the observation-building swaps while the fixtures are made, and how
/// many: 9 × 300 s covers 45 minutes of history, more than a 1800 s TWAP window.
pub const HISTORY_STEP_SECS: u64 = 300;
/// See [`HISTORY_STEP_SECS`].
pub const HISTORY_STEPS: u64 = 9;

fn rpc_err(step: &str) -> impl Fn(alloy::transports::TransportError) -> DevnetError + '_ {
    move |e| DevnetError::Rpc(format!("{step}: {e}"))
}

fn call_err(step: &str) -> impl Fn(alloy::contract::Error) -> DevnetError + '_ {
    move |e| DevnetError::Rpc(format!("{step}: {e}"))
}

fn pending_err(step: &str) -> impl Fn(alloy::providers::PendingTransactionError) -> DevnetError + '_ {
    move |e| DevnetError::Rpc(format!("{step}: {e}"))
}

/// Reads `bytecode` from a Hardhat artifact under `tools/node_modules`.
pub fn artifact_bytecode(toolchain: &Toolchain, path: &str) -> Result<Bytes, DevnetError> {
    let file = toolchain.root().join("tools/node_modules").join(path);
    let text = std::fs::read_to_string(&file).map_err(|e| DevnetError::File(format!("{}: {e} (run tools/install.sh)", file.display())))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| DevnetError::File(format!("{}: {e}", file.display())))?;
    json["bytecode"].as_str().and_then(|b| b.parse().ok()).ok_or_else(|| DevnetError::File(format!("{}: no bytecode", file.display())))
}

/// Chainlink's `MockV3Aggregator` creation code, compiled once per process with the pinned
/// solc from `@chainlink/contracts`.
pub fn aggregator_bytecode(toolchain: &Toolchain) -> Result<Bytes, DevnetError> {
    static CODE: OnceLock<Bytes> = OnceLock::new();
    if let Some(code) = CODE.get() {
        return Ok(code.clone());
    }
    let code = compile_aggregator(toolchain)?;
    Ok(CODE.get_or_init(|| code).clone())
}

fn compile_aggregator(toolchain: &Toolchain) -> Result<Bytes, DevnetError> {
    use std::io::Write;
    let base = toolchain.root().join("tools/node_modules/@chainlink/contracts");
    let files = [
        "src/v0.8/tests/MockV3Aggregator.sol",
        "src/v0.8/shared/interfaces/AggregatorV2V3Interface.sol",
        "src/v0.8/shared/interfaces/AggregatorInterface.sol",
        "src/v0.8/shared/interfaces/AggregatorV3Interface.sol",
    ];
    let mut sources = serde_json::Map::new();
    for f in files {
        let path = base.join(f);
        let content = std::fs::read_to_string(&path).map_err(|e| DevnetError::File(format!("{}: {e} (run tools/install.sh)", path.display())))?;
        sources.insert(f.to_string(), json!({ "content": content }));
    }
    let input = json!({
        "language": "Solidity",
        "sources": sources,
        "settings": { "optimizer": { "enabled": true, "runs": 200 }, "outputSelection": { "*": { "*": ["evm.bytecode.object"] } } }
    });
    let solc = toolchain.solc();
    let mut child = std::process::Command::new(solc)
        .arg("--standard-json")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DevnetError::File(format!("{}: {e}", solc.display())))?;
    child.stdin.take().expect("piped stdin").write_all(input.to_string().as_bytes()).map_err(|e| DevnetError::File(format!("{}: {e}", solc.display())))?;
    let output = child.wait_with_output().map_err(|e| DevnetError::File(format!("{}: {e}", solc.display())))?;
    let out: Value = serde_json::from_slice(&output.stdout).map_err(|e| DevnetError::File(format!("solc answered no JSON: {e}")))?;
    let code = out["contracts"][files[0]]["MockV3Aggregator"]["evm"]["bytecode"]["object"]
        .as_str()
        .ok_or_else(|| DevnetError::File(format!("solc did not compile MockV3Aggregator: {}", out["errors"])))?;
    format!("0x{code}").parse().map_err(|e| DevnetError::File(format!("solc's bytecode: {e}")))
}

/// Sends a contract creation of `code` followed by `args`; returns the contract.
pub async fn deploy_code(provider: &DynProvider, code: Bytes, args: Vec<u8>) -> Result<Address, DevnetError> {
    let mut data = code.to_vec();
    data.extend(args);
    let tx = TransactionRequest::default().with_deploy_code(data);
    let receipt =
        provider.send_transaction(tx).await.map_err(rpc_err("deploying a contract"))?.get_receipt().await.map_err(pending_err("deploying a contract"))?;
    if !receipt.status() {
        return Err(DevnetError::Rpc("a contract deployment reverted".into()));
    }
    receipt.contract_address.ok_or_else(|| DevnetError::Rpc("a deployment receipt has no contract address".into()))
}

/// Deploys a `MockV3Aggregator` with `decimals` answering `answer`.
pub async fn deploy_feed(toolchain: &Toolchain, provider: &DynProvider, decimals: u8, answer: i128) -> Result<Address, DevnetError> {
    let answer = I256::try_from(answer).expect("an i128 fits");
    deploy_code(provider, aggregator_bytecode(toolchain)?, (U256::from(decimals), answer).abi_encode_params()).await
}

/// Sets `feed`'s answer; its `updatedAt` becomes the next block's time.
pub async fn set_answer(provider: &DynProvider, feed: Address, answer: i128) -> Result<(), DevnetError> {
    let call = IMockV3Aggregator::new(feed, provider);
    let receipt = call
        .updateAnswer(I256::try_from(answer).expect("an i128 fits"))
        .send()
        .await
        .map_err(call_err("updating a feed"))?
        .get_receipt()
        .await
        .map_err(pending_err("updating a feed"))?;
    if !receipt.status() {
        return Err(DevnetError::Rpc("updating a feed reverted".into()));
    }
    Ok(())
}

/// Posts a new round with the same answer on both feeds, so they are fresh at the chain's
/// current time (the fixtures' rounds are as old as the fixtures).
pub async fn refresh_feeds(provider: &DynProvider, market: &MarketInfo) -> Result<(), DevnetError> {
    for feed in [market.eth_usd_feed, market.usd_peg_feed] {
        let answer = IMockV3Aggregator::new(feed, provider).latestRoundData().call().await.map_err(call_err("reading a feed"))?.answer;
        set_answer(provider, feed, i128::try_from(answer).map_err(|_| DevnetError::Rpc("a feed's answer overflows".into()))?).await?;
    }
    Ok(())
}

/// The tick of `price` (token1 per token0, raw units), rounded down to the tick spacing.
fn spaced_tick(price: f64) -> i32 {
    let tick = (price.ln() / 1.0001f64.ln()).floor() as i32;
    tick.div_euclid(TICK_SPACING) * TICK_SPACING
}

/// `sqrt(price) · 2^96`, the pool's price format.
fn sqrt_price_x96(price: f64) -> U160 {
    U160::from((price.sqrt() * 2f64.powi(96)) as u128)
}

/// A pool of `a` and `b`, created at `b_per_a` (raw units).
struct PoolPlan {
    a: Address,
    b: Address,
    /// Raw units of `b` per raw unit of `a`.
    b_per_a: f64,
    /// (raw `a`, raw `b`) over the full range.
    full: (U256, U256),
    /// (raw `a`, raw `b`) over a quarter to four times the start price.
    concentrated: (U256, U256),
}

async fn create_pool(provider: &DynProvider, m: &MarketInfo, owner: Address, plan: &PoolPlan) -> Result<Address, DevnetError> {
    let factory = IUniswapV3Factory::new(m.uniswap_factory, provider);
    let fee = U24::from(FEE);
    // Gas limits are fixed: estimates of calls that pay through a callback can fall
    // short by the 1/64 a call keeps back, and the transaction then runs out of gas.
    factory
        .createPool(plan.a, plan.b, fee)
        .gas(8_000_000)
        .send()
        .await
        .map_err(call_err("creating a pool"))?
        .get_receipt()
        .await
        .map_err(pending_err("creating a pool"))?;
    let pool = factory.getPool(plan.a, plan.b, fee).call().await.map_err(call_err("reading a pool"))?;
    let a_is_0 = plan.a < plan.b;
    let (token0, token1) = if a_is_0 { (plan.a, plan.b) } else { (plan.b, plan.a) };
    let price = if a_is_0 { plan.b_per_a } else { 1.0 / plan.b_per_a };
    let p = IPoolSetup::new(pool, provider);
    p.initialize(sqrt_price_x96(price)).send().await.map_err(call_err("initializing a pool"))?.get_receipt().await.map_err(pending_err("initializing"))?;
    p.increaseObservationCardinalityNext(OBSERVATION_CARDINALITY)
        .gas(3_000_000)
        .send()
        .await
        .map_err(call_err("growing a pool's observations"))?
        .get_receipt()
        .await
        .map_err(pending_err("growing a pool's observations"))?;
    let center = spaced_tick(price);
    let npm = INonfungiblePositionManager::new(m.position_manager, provider);
    for ((amount_a, amount_b), (lower, upper)) in
        [(plan.full, (-FULL_RANGE, FULL_RANGE)), (plan.concentrated, (center - CONCENTRATED_TICKS, center + CONCENTRATED_TICKS))]
    {
        let (amount0, amount1) = if a_is_0 { (amount_a, amount_b) } else { (amount_b, amount_a) };
        let params = INonfungiblePositionManager::MintParams {
            token0,
            token1,
            fee,
            tickLower: I24::try_from(lower).expect("a tick fits"),
            tickUpper: I24::try_from(upper).expect("a tick fits"),
            amount0Desired: amount0,
            amount1Desired: amount1,
            amount0Min: U256::ZERO,
            amount1Min: U256::ZERO,
            recipient: owner,
            deadline: U256::from(u64::MAX),
        };
        let receipt =
            npm.mint(params).gas(1_000_000).send().await.map_err(call_err("adding liquidity"))?.get_receipt().await.map_err(pending_err("adding liquidity"))?;
        if !receipt.status() {
            return Err(DevnetError::Rpc(format!("adding liquidity to {pool} reverted")));
        }
    }
    Ok(pool)
}

fn units(whole: f64, decimals: u8) -> U256 {
    // Exact for the round amounts used here.
    U256::from((whole * 1e6).round() as u128) * U256::from(10).pow(U256::from(decimals)) / U256::from(1_000_000u64)
}

/// Deploys the market with `provider`'s signer, which must be `owner`, the owner of the
/// TMAI and USD test tokens of `deployment` (it mints what the pools hold), and holds the
/// ETH wrapped into them (about 1,510 ETH).
pub async fn deploy_market(toolchain: &Toolchain, provider: &DynProvider, owner: Address, deployment: &Deployment) -> Result<MarketInfo, DevnetError> {
    let token = |symbol: &str| deployment.token(symbol).map(|t| t.address).ok_or_else(|| DevnetError::File(format!("the deployment has no {symbol} token")));
    let (tmai, usd) = (token("TMAI")?, token("USD")?);
    let weth =
        deploy_code(provider, artifact_bytecode(toolchain, "@eth-optimism/contracts/artifacts/contracts/L2/predeploys/WETH9.sol/WETH9.json")?, vec![]).await?;
    let factory =
        deploy_code(provider, artifact_bytecode(toolchain, "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json")?, vec![]).await?;
    let periphery = "@uniswap/v3-periphery/artifacts/contracts";
    // The position manager's token descriptor only renders token URIs: none here.
    let manager = deploy_code(
        provider,
        artifact_bytecode(toolchain, &format!("{periphery}/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"))?,
        (factory, weth, Address::ZERO).abi_encode_params(),
    )
    .await?;
    let router =
        deploy_code(provider, artifact_bytecode(toolchain, &format!("{periphery}/SwapRouter.sol/SwapRouter.json"))?, (factory, weth).abi_encode_params())
            .await?;
    let eth_usd_feed = deploy_feed(toolchain, provider, FEED_DECIMALS, i128::from(ETH_USD) * 100_000_000).await?;
    let usd_peg_feed = deploy_feed(toolchain, provider, FEED_DECIMALS, 100_000_000).await?;
    let mut market = MarketInfo {
        weth,
        uniswap_factory: factory,
        position_manager: manager,
        swap_router: router,
        fee: FEE,
        tmai_weth_pool: Address::ZERO,
        weth_usd_pool: Address::ZERO,
        eth_usd_feed,
        usd_peg_feed,
        quoter: Address::ZERO,
    };

    // What the pools hold: TMAI/WETH $100k a side over the full range and $500k a side
    // within 4× of the price; WETH/USD $900k and $3M a side.
    let eth = ETH_USD as f64;
    let tmai_per_side = [1_000_000.0, 5_000_000.0];
    let tmai_weth = tmai_per_side.map(|t| (units(t, 18), units(t * TMAI_USD / eth, 18)));
    let weth_usd = [300.0, 1_000.0].map(|w| (units(w, 18), units(w * eth, 6)));
    let weth_total: U256 = tmai_weth.iter().map(|(_, w)| *w).chain(weth_usd.iter().map(|(w, _)| *w)).fold(U256::ZERO, |a, b| a + b) + units(10.0, 18);
    let w = IWETH9::new(weth, provider);
    w.deposit().value(weth_total).send().await.map_err(call_err("wrapping ETH"))?.get_receipt().await.map_err(pending_err("wrapping ETH"))?;
    let tmai_total = tmai_weth.iter().map(|(t, _)| *t).fold(U256::ZERO, |a, b| a + b) + units(100_000.0, 18);
    let usd_total = weth_usd.iter().map(|(_, u)| *u).fold(U256::ZERO, |a, b| a + b);
    for (address, amount) in [(tmai, tmai_total), (usd, usd_total)] {
        TestToken::new(address, provider)
            .mint(owner, amount)
            .send()
            .await
            .map_err(call_err("minting the pools' tokens"))?
            .get_receipt()
            .await
            .map_err(pending_err("minting"))?;
    }
    approve_all(provider, &market, &[tmai, usd, weth]).await?;

    market.tmai_weth_pool =
        create_pool(provider, &market, owner, &PoolPlan { a: tmai, b: weth, b_per_a: TMAI_USD / eth, full: tmai_weth[0], concentrated: tmai_weth[1] }).await?;
    market.weth_usd_pool =
        create_pool(provider, &market, owner, &PoolPlan { a: weth, b: usd, b_per_a: eth * 1e6 / 1e18, full: weth_usd[0], concentrated: weth_usd[1] }).await?;
    Ok(market)
}

async fn approve_all(provider: &DynProvider, market: &MarketInfo, tokens: &[Address]) -> Result<(), DevnetError> {
    for token in tokens {
        for spender in [market.position_manager, market.swap_router] {
            TestToken::new(*token, provider)
                .approve(spender, U256::MAX)
                .send()
                .await
                .map_err(call_err("approving the market"))?
                .get_receipt()
                .await
                .map_err(pending_err("approving"))?;
        }
    }
    Ok(())
}

/// Builds the TMAI/WETH pool's observation history: a small round trip (buy, then sell
/// back) every [`HISTORY_STEP_SECS`] from `start`, [`HISTORY_STEPS`] times, each in a block
/// stamped exactly (so the fixtures are the same from run to run).
pub async fn build_history(provider: &DynProvider, owner: Address, tmai: Address, market: &MarketInfo, start: u64) -> Result<u64, DevnetError> {
    let router = ISwapRouter::new(market.swap_router, provider);
    let mut time = start;
    for step in 0..HISTORY_STEPS {
        time = start + step * HISTORY_STEP_SECS;
        provider.anvil_set_next_block_timestamp(time).await.map_err(rpc_err("pinning a block time"))?;
        let (token_in, token_out, amount) = if step % 2 == 0 { (market.weth, tmai, units(0.01, 18)) } else { (tmai, market.weth, units(250.0, 18)) };
        let params = ISwapRouter::ExactInputSingleParams {
            tokenIn: token_in,
            tokenOut: token_out,
            fee: U24::from(FEE),
            recipient: owner,
            deadline: U256::from(u64::MAX),
            amountIn: amount,
            amountOutMinimum: U256::ZERO,
            sqrtPriceLimitX96: U160::ZERO,
        };
        let receipt = router
            .exactInputSingle(params)
            .gas(1_000_000)
            .send()
            .await
            .map_err(call_err("a history swap"))?
            .get_receipt()
            .await
            .map_err(pending_err("a history swap"))?;
        if !receipt.status() {
            return Err(DevnetError::Rpc("a history swap reverted".into()));
        }
    }
    Ok(time)
}

/// The route of a buyer: USD → WETH → TMAI (or back), as the router's path bytes, USD first.
fn usd_weth_tmai_path(usd: Address, weth: Address, tmai: Address) -> Bytes {
    let fee = FEE.to_be_bytes();
    let mut path = Vec::with_capacity(66);
    path.extend_from_slice(usd.as_slice());
    path.extend_from_slice(&fee[1..]);
    path.extend_from_slice(weth.as_slice());
    path.extend_from_slice(&fee[1..]);
    path.extend_from_slice(tmai.as_slice());
    path.into()
}

/// TMAI's spot price in dollars: the TMAI/WETH pool's `sqrtPriceX96` times the ETH/USD feed
/// (for display; the service prices from the TWAP).
pub async fn tmai_spot_usd(provider: &DynProvider, deployment: &Deployment) -> Result<f64, DevnetError> {
    let market = deployment.market.as_ref().ok_or_else(|| DevnetError::File("the deployment file names no market".into()))?;
    let tmai = deployment.token("TMAI").ok_or_else(|| DevnetError::File("the deployment has no TMAI token".into()))?.address;
    let pool = IPoolSetup::new(market.tmai_weth_pool, provider);
    let sqrt: f64 = pool.slot0().call().await.map_err(call_err("reading the pool"))?.sqrtPriceX96.to_string().parse().unwrap_or(0.0);
    let raw = (sqrt / 2f64.powi(96)).powi(2);
    // Both 18 decimals: raw units are whole units.
    let weth_per_tmai = if tmai < market.weth { raw } else { 1.0 / raw };
    let feed = IMockV3Aggregator::new(market.eth_usd_feed, provider);
    let answer: f64 = feed.latestRoundData().call().await.map_err(call_err("reading the ETH/USD feed"))?.answer.to_string().parse().unwrap_or(0.0);
    let decimals = feed.decimals().call().await.map_err(call_err("reading the ETH/USD feed"))?;
    Ok(weth_per_tmai * answer / 10f64.powi(i32::from(decimals)))
}

/// What a [`swap_usd`] did.
#[derive(Debug, Clone, Copy)]
pub struct SwapOutcome {
    /// TMAI's spot price before, in dollars.
    pub spot_before: f64,
    /// TMAI's spot price after, in dollars.
    pub spot_after: f64,
    /// TMAI bought (or sold), whole tokens.
    pub tmai: f64,
    /// The block of the swap.
    pub block: u64,
}

/// Buys (or, with `sell`, sells) TMAI worth `usd` dollars through the router on a local
/// anvil chain, USD → WETH → TMAI, as the tokens' owner (impersonated: anvil only), who
/// mints what it pays with.
pub async fn swap_usd(provider: &DynProvider, deployment: &Deployment, usd: u64, sell: bool) -> Result<SwapOutcome, DevnetError> {
    let market =
        deployment.market.as_ref().ok_or_else(|| DevnetError::File("the deployment file names no market; run `tmai-pay fixtures regenerate`".into()))?;
    let token = |symbol: &str| deployment.token(symbol).map(|t| t.address).ok_or_else(|| DevnetError::File(format!("the deployment has no {symbol} token")));
    let (tmai, usd_token) = (token("TMAI")?, token("USD")?);
    let owner = deployment.owner;
    let spot_before = tmai_spot_usd(provider, deployment).await?;
    provider.anvil_impersonate_account(owner).await.map_err(rpc_err("impersonating the tokens' owner (is this anvil?)"))?;
    let result = async {
        approve_all_from(provider, market, owner, &[tmai, usd_token]).await?;
        let dollars = U256::from(usd) * U256::from(1_000_000u64);
        let (pay_token, pay_amount) = if sell {
            // Twice the TMAI the dollars buy at the spot price covers the swap's price impact.
            (tmai, units((usd as f64 / spot_before.max(1e-9)) * 2.0, 18))
        } else {
            (usd_token, dollars)
        };
        mint_from(provider, pay_token, owner, pay_amount).await?;
        let tmai_before = TestToken::new(tmai, provider).balanceOf(owner).call().await.map_err(call_err("reading a balance"))?;
        let router = ISwapRouter::new(market.swap_router, provider);
        let path = usd_weth_tmai_path(usd_token, market.weth, tmai);
        let call = if sell {
            let params =
                ISwapRouter::ExactOutputParams { path, recipient: owner, deadline: U256::from(u64::MAX), amountOut: dollars, amountInMaximum: pay_amount };
            router.exactOutput(params).from(owner).gas(1_500_000).into_transaction_request()
        } else {
            let params =
                ISwapRouter::ExactInputParams { path, recipient: owner, deadline: U256::from(u64::MAX), amountIn: dollars, amountOutMinimum: U256::ZERO };
            router.exactInput(params).from(owner).gas(1_500_000).into_transaction_request()
        };
        let receipt = provider.send_transaction(call).await.map_err(rpc_err("swapping"))?.get_receipt().await.map_err(pending_err("swapping"))?;
        if !receipt.status() {
            return Err(DevnetError::Rpc("the swap reverted".into()));
        }
        let tmai_after = TestToken::new(tmai, provider).balanceOf(owner).call().await.map_err(call_err("reading a balance"))?;
        let moved = if tmai_after > tmai_before { tmai_after - tmai_before } else { tmai_before - tmai_after };
        let moved: f64 = moved.to_string().parse::<f64>().unwrap_or(0.0) / 1e18;
        Ok((moved, receipt.block_number.unwrap_or_default()))
    }
    .await;
    provider.anvil_stop_impersonating_account(owner).await.map_err(rpc_err("ending the impersonation"))?;
    let (tmai_moved, block) = result?;
    let spot_after = tmai_spot_usd(provider, deployment).await?;
    Ok(SwapOutcome { spot_before, spot_after, tmai: tmai_moved, block })
}

async fn approve_all_from(provider: &DynProvider, market: &MarketInfo, owner: Address, tokens: &[Address]) -> Result<(), DevnetError> {
    for token in tokens {
        let t = TestToken::new(*token, provider);
        if t.allowance(owner, market.swap_router).call().await.map_err(call_err("reading an allowance"))? < U256::MAX / U256::from(2) {
            t.approve(market.swap_router, U256::MAX)
                .from(owner)
                .send()
                .await
                .map_err(call_err("approving the router"))?
                .get_receipt()
                .await
                .map_err(pending_err("approving the router"))?;
        }
    }
    Ok(())
}

async fn mint_from(provider: &DynProvider, token: Address, owner: Address, amount: U256) -> Result<(), DevnetError> {
    TestToken::new(token, provider)
        .mint(owner, amount)
        .from(owner)
        .send()
        .await
        .map_err(call_err("minting test tokens"))?
        .get_receipt()
        .await
        .map_err(pending_err("minting test tokens"))?;
    Ok(())
}

/// Deploys Uniswap's `QuoterV2` (periphery's lens, from its npm artifact) for `market`'s
/// factory and WETH. Deployed last by the fixtures, so every earlier address stays the same.
pub async fn deploy_quoter(toolchain: &Toolchain, provider: &DynProvider, market: &MarketInfo) -> Result<Address, DevnetError> {
    let code = artifact_bytecode(toolchain, "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json")?;
    deploy_code(provider, code, (market.uniswap_factory, market.weth).abi_encode_params()).await
}

/// Whether the deployment's market contracts have code on the chain `provider` reads.
pub async fn has_code(provider: &DynProvider, market: &MarketInfo) -> Result<bool, DevnetError> {
    for address in [market.tmai_weth_pool, market.weth_usd_pool, market.eth_usd_feed, market.usd_peg_feed, market.swap_router, market.quoter] {
        if provider.get_code_at(address).await.map_err(rpc_err("reading code"))?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateSourceConfig, Settings};

    const FIXTURE_DEPLOYMENT: &str = include_str!("../../anvil-fixtures/deployment.json");

    #[test]
    fn the_example_catalog_names_the_fixture_market() {
        let settings = Settings::from_toml(include_str!("../../tmai-pay.example.toml")).unwrap();
        let deployment: Deployment = serde_json::from_str(FIXTURE_DEPLOYMENT).unwrap();
        let market = deployment.market.expect("the fixtures name a market");

        let Some(RateSourceConfig::UniswapV3 { pool, quote_feed: Some(feed), twap_secs, .. }) = settings.pricing.tokens.get("TMAI") else {
            panic!("TMAI is priced from the pool");
        };
        let Some(RateSourceConfig::Stable { peg_feed: Some(peg), .. }) = settings.pricing.tokens.get("USD") else {
            panic!("USD is a guarded stablecoin");
        };

        assert_eq!(
            (*pool, feed.address, peg.address),
            (market.tmai_weth_pool, market.eth_usd_feed, market.usd_peg_feed),
            "run `tmai-pay fixtures regenerate` and copy the addresses"
        );
        assert!(u64::from(*twap_secs) < HISTORY_STEP_SECS * (HISTORY_STEPS - 1), "the fixtures' history covers the window");
        assert!(settings.plans.iter().all(|p| p.price_usd.is_some() && p.prices.is_empty()), "every plan is priced in dollars");
    }

    #[test]
    fn a_deployment_file_without_a_market_still_loads() {
        let mut json: Value = serde_json::from_str(FIXTURE_DEPLOYMENT).unwrap();
        json.as_object_mut().unwrap().remove("market");

        let deployment: Deployment = serde_json::from_value(json.clone()).unwrap();

        assert!(deployment.market.is_none());
        assert!(!serde_json::to_string(&deployment).unwrap().contains("market"), "and is written back without one");
    }

    #[test]
    fn the_router_path_is_token_fee_token_fee_token() {
        let (a, b, c) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));

        let path = usd_weth_tmai_path(a, b, c);

        assert_eq!(path.len(), 20 + 3 + 20 + 3 + 20);
        assert_eq!(&path[20..23], &[0x00, 0x0b, 0xb8], "3000 as uint24");
        assert_eq!(&path[46..], c.as_slice());
    }
}
