//! Real markets on anvil for the USD pricing tests: Uniswap v3 (factory, pool, position
//! manager and swap router) deployed from the bytecode in its published npm packages, and
//! Chainlink's own `MockV3Aggregator` compiled from `@chainlink/contracts` with the
//! project's pinned solc. No price oracle of ours stands in for either.
#![allow(clippy::too_many_arguments, dead_code)]

use std::{path::PathBuf, sync::OnceLock};

use alloy::node_bindings::AnvilInstance;
use alloy::{
    network::TransactionBuilder,
    primitives::{Address, Bytes, U256, aliases::I24, aliases::U24, aliases::U160},
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::TransactionRequest,
    sol,
    sol_types::SolValue,
};
use serde_json::{Value, json};
use tmai_pay::{
    chain::{bindings::TestToken, deployment::Deployment, devnet},
    toolchain::Toolchain,
};

fn toolchain() -> Toolchain {
    Toolchain::locate().expect("toolchain installs")
}

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
        function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256 amountOut);
    }

    #[sol(rpc)]
    interface IMockV3Aggregator {
        function updateAnswer(int256 _answer) external;
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

/// The pool's fee tier (0.3 %, ticks spaced 60).
pub(crate) const FEE: u32 = 3_000;
/// The widest ticks a 0.3 % pool takes.
const FULL_RANGE: i32 = 887_220;
/// WETH in the pool at the start.
pub(crate) const POOL_WETH_WEI: u128 = 833_333_333_333_333_333;

/// The markets of one test chain.
pub(crate) struct Markets {
    pub(crate) provider: DynProvider,
    pub(crate) deployer: Address,
    pub(crate) tmai: Address,
    pub(crate) weth: Address,
    pub(crate) pool: Address,
    pub(crate) router: Address,
    /// ETH/USD, 8 decimals, at $3000.
    pub(crate) eth_usd: Address,
    /// USD-coin/USD, 8 decimals, at $1.
    pub(crate) usd_peg: Address,
}

fn modules() -> PathBuf {
    toolchain().root().join("tools/node_modules")
}

fn artifact_bytecode(path: &str) -> Bytes {
    let file = modules().join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e} (run tools/install.sh)", file.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["bytecode"].as_str().unwrap().parse().unwrap()
}

/// Chainlink's MockV3Aggregator creation code, compiled once per test run with tools/bin/solc.
fn aggregator_bytecode() -> Bytes {
    static CODE: OnceLock<Bytes> = OnceLock::new();
    CODE.get_or_init(|| {
        let base = modules().join("@chainlink/contracts");
        let files = [
            "src/v0.8/tests/MockV3Aggregator.sol",
            "src/v0.8/shared/interfaces/AggregatorV2V3Interface.sol",
            "src/v0.8/shared/interfaces/AggregatorInterface.sol",
            "src/v0.8/shared/interfaces/AggregatorV3Interface.sol",
        ];
        let sources: serde_json::Map<String, Value> =
            files.iter().map(|f| (f.to_string(), json!({ "content": std::fs::read_to_string(base.join(f)).unwrap() }))).collect();
        let input = json!({
            "language": "Solidity",
            "sources": sources,
            "settings": { "optimizer": { "enabled": true, "runs": 200 }, "outputSelection": { "*": { "*": ["evm.bytecode.object"] } } }
        });
        let solc = toolchain().root().join("tools/bin/solc");
        let mut child = std::process::Command::new(&solc)
            .arg("--standard-json")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", solc.display()));
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let out: Value = serde_json::from_slice(&output.stdout).expect("solc answers JSON");
        let code = out["contracts"][files[0]]["MockV3Aggregator"]["evm"]["bytecode"]["object"].as_str().unwrap_or_else(|| panic!("solc: {out}"));
        format!("0x{code}").parse().unwrap()
    })
    .clone()
}

async fn deploy(provider: &DynProvider, code: Bytes, args: Vec<u8>) -> Address {
    let mut data = code.to_vec();
    data.extend(args);
    let tx = TransactionRequest::default().with_deploy_code(data);
    let receipt = provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "deployment reverted");
    receipt.contract_address.unwrap()
}

/// Deploys a Chainlink MockV3Aggregator with `decimals` answering `answer`.
pub(crate) async fn deploy_feed(provider: &DynProvider, decimals: u8, answer: i128) -> Address {
    deploy(provider, aggregator_bytecode(), (U256::from(decimals), alloy::primitives::I256::try_from(answer).unwrap()).abi_encode_params()).await
}

/// Sets `feed`'s answer (and its updated time to the next block's).
pub(crate) async fn set_answer(provider: &DynProvider, feed: Address, answer: i128) {
    let aggregator = IMockV3Aggregator::new(feed, provider);
    let call = aggregator.updateAnswer(alloy::primitives::I256::try_from(answer).unwrap());
    assert!(call.send().await.unwrap().get_receipt().await.unwrap().status());
}

impl Markets {
    /// Deploys WETH (a test token), Uniswap v3 with a TMAI/WETH pool at $0.0025 per TMAI
    /// (ETH at $3000) holding 1,000,000 TMAI, room for 100 observations, and the feeds.
    pub(crate) async fn deploy(anvil: &AnvilInstance, deployment: &Deployment) -> Self {
        let provider = devnet::provider_for(anvil, devnet::DEPLOYER);
        let deployer = anvil.addresses()[devnet::DEPLOYER];
        let tmai = deployment.tokens.iter().find(|t| t.symbol == "TMAI").unwrap().address;
        let weth_token = TestToken::deploy(&provider, "Wrapped Ether (test)".into(), "WETH".into(), 18, deployer).await.unwrap();
        let weth = *weth_token.address();
        let big = U256::from(10).pow(U256::from(30));
        weth_token.mint(deployer, big).send().await.unwrap().get_receipt().await.unwrap();
        TestToken::new(tmai, &provider).mint(deployer, big).send().await.unwrap().get_receipt().await.unwrap();

        let factory = deploy(&provider, artifact_bytecode("@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"), vec![]).await;
        let periphery = "@uniswap/v3-periphery/artifacts/contracts";
        let manager = deploy(
            &provider,
            artifact_bytecode(&format!("{periphery}/NonfungiblePositionManager.sol/NonfungiblePositionManager.json")),
            (factory, weth, Address::repeat_byte(0xde)).abi_encode_params(),
        )
        .await;
        let router = deploy(&provider, artifact_bytecode(&format!("{periphery}/SwapRouter.sol/SwapRouter.json")), (factory, weth).abi_encode_params()).await;

        let f = IUniswapV3Factory::new(factory, &provider);
        f.createPool(tmai, weth, U24::from(FEE)).gas(8_000_000).send().await.unwrap().get_receipt().await.unwrap();
        let pool = f.getPool(tmai, weth, U24::from(FEE)).call().await.unwrap();
        let (token0, token1) = if tmai < weth { (tmai, weth) } else { (weth, tmai) };
        // Gas limits are fixed: estimates of calls that pay through a callback can fall
        // short by the 1/64 a call keeps back, and the transaction then runs out of gas.
        // WETH per TMAI: 0.0025 / 3000.
        let weth_per_tmai: f64 = 0.0025 / 3000.0;
        let price = if token0 == tmai { weth_per_tmai } else { 1.0 / weth_per_tmai };
        let sqrt_x96 = U160::from((price.sqrt() * 2f64.powi(96)) as u128);
        let p = IPoolSetup::new(pool, &provider);
        p.initialize(sqrt_x96).send().await.unwrap().get_receipt().await.unwrap();
        p.increaseObservationCardinalityNext(100).send().await.unwrap().get_receipt().await.unwrap();

        for token in [tmai, weth] {
            for spender in [manager, router] {
                TestToken::new(token, &provider).approve(spender, U256::MAX).send().await.unwrap().get_receipt().await.unwrap();
            }
        }
        let tmai_amount = U256::from(1_000_000u64) * U256::from(10).pow(U256::from(18));
        let weth_amount = U256::from(POOL_WETH_WEI);
        let (amount0, amount1) = if token0 == tmai { (tmai_amount, weth_amount) } else { (weth_amount, tmai_amount) };
        let params = INonfungiblePositionManager::MintParams {
            token0,
            token1,
            fee: U24::from(FEE),
            tickLower: I24::try_from(-FULL_RANGE).unwrap(),
            tickUpper: I24::try_from(FULL_RANGE).unwrap(),
            amount0Desired: amount0,
            amount1Desired: amount1,
            amount0Min: U256::ZERO,
            amount1Min: U256::ZERO,
            recipient: deployer,
            deadline: U256::from(u64::MAX),
        };
        let npm = INonfungiblePositionManager::new(manager, &provider);
        if let Err(e) = npm.mint(params.clone()).call().await {
            panic!("adding liquidity would revert: {e} (token0 {token0}, sqrt price {sqrt_x96})");
        }
        let minted = npm.mint(params).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
        assert!(minted.status(), "adding liquidity reverted");

        let eth_usd = deploy_feed(&provider, 8, 300_000_000_000).await;
        let usd_peg = deploy_feed(&provider, 8, 100_000_000).await;
        Self { provider, deployer, tmai, weth, pool, router, eth_usd, usd_peg }
    }

    /// Buys TMAI with `weth_wei` WETH (the TMAI price goes up), in one mined transaction.
    pub(crate) async fn buy_tmai(&self, weth_wei: u128) {
        let params = ISwapRouter::ExactInputSingleParams {
            tokenIn: self.weth,
            tokenOut: self.tmai,
            fee: U24::from(FEE),
            recipient: self.deployer,
            deadline: U256::from(u64::MAX),
            amountIn: U256::from(weth_wei),
            amountOutMinimum: U256::ZERO,
            sqrtPriceLimitX96: U160::ZERO,
        };
        let receipt = ISwapRouter::new(self.router, &self.provider).exactInputSingle(params).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "swap reverted");
    }

    /// The pool's spot tick.
    pub(crate) async fn spot_tick(&self) -> i32 {
        IPoolSetup::new(self.pool, &self.provider).slot0().call().await.unwrap().tick.as_i32()
    }

    /// Moves the chain's time forward by `secs` and mines a block.
    pub(crate) async fn advance(&self, secs: u64) {
        self.provider.anvil_increase_time(secs).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
    }
}
