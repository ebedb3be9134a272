//! Real markets on anvil for the USD pricing tests: Uniswap v3 (factory, pool, position
//! manager and swap router) deployed from the bytecode in its published npm packages, and
//! Chainlink's own `MockV3Aggregator` compiled from `@chainlink/contracts` with the
//! project's pinned solc. No price oracle of ours stands in for either. The deployment code
//! is the product's (`tmai_pay::chain::market`, which the fixtures use too); these tests add
//! pools of their own shapes.
#![allow(clippy::too_many_arguments, dead_code)]

use alloy::node_bindings::AnvilInstance;
use alloy::{
    primitives::{Address, Bytes, U256, aliases::I24, aliases::U24, aliases::U160},
    providers::{DynProvider, ext::AnvilApi},
    sol_types::SolValue,
};
use tmai_pay::{
    chain::{
        bindings::TestToken,
        deployment::Deployment,
        devnet,
        market::{self, INonfungiblePositionManager, IPoolSetup, ISwapRouter, IUniswapV3Factory},
    },
    toolchain::Toolchain,
};

fn toolchain() -> Toolchain {
    Toolchain::locate().expect("toolchain installs")
}

/// The pool's fee tier (0.3 %, ticks spaced 60).
pub(crate) const FEE: u32 = market::FEE;
/// The widest ticks a 0.3 % pool takes.
const FULL_RANGE: i32 = market::FULL_RANGE;
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
    pub(crate) factory: Address,
    pub(crate) manager: Address,
    /// ETH/USD, 8 decimals, at $3000.
    pub(crate) eth_usd: Address,
    /// USD-coin/USD, 8 decimals, at $1.
    pub(crate) usd_peg: Address,
}

/// Deploys a Chainlink MockV3Aggregator with `decimals` answering `answer` (the product's
/// implementation, [`market::deploy_feed`]).
pub(crate) async fn deploy_feed(provider: &DynProvider, decimals: u8, answer: i128) -> Address {
    market::deploy_feed(&toolchain(), provider, decimals, answer).await.unwrap()
}

/// Sets `feed`'s answer (and its updated time to the next block's).
pub(crate) async fn set_answer(provider: &DynProvider, feed: Address, answer: i128) {
    market::set_answer(provider, feed, answer).await.unwrap();
}

async fn deploy(provider: &DynProvider, code: Bytes, args: Vec<u8>) -> Address {
    market::deploy_code(provider, code, args).await.unwrap()
}

fn artifact_bytecode(path: &str) -> Bytes {
    market::artifact_bytecode(&toolchain(), path).unwrap()
}

/// Creates the 0.3 % pool of `tmai` and `other` with `uniswap` (factory, position manager,
/// router, and the deployer who holds both tokens), initialised at `other_per_tmai` (whole units, both 18 decimals) with room for
/// 100 observations, and adds `amounts` (TMAI, other) over the full range; returns the pool.
async fn full_range_pool(provider: &DynProvider, uniswap: [Address; 4], tmai: Address, other: Address, amounts: (U256, U256), other_per_tmai: f64) -> Address {
    let [factory, manager, router, deployer] = uniswap;
    let f = IUniswapV3Factory::new(factory, provider);
    f.createPool(tmai, other, U24::from(FEE)).gas(8_000_000).send().await.unwrap().get_receipt().await.unwrap();
    let pool = f.getPool(tmai, other, U24::from(FEE)).call().await.unwrap();
    let (token0, token1) = if tmai < other { (tmai, other) } else { (other, tmai) };
    // Gas limits are fixed: estimates of calls that pay through a callback can fall
    // short by the 1/64 a call keeps back, and the transaction then runs out of gas.
    let price = if token0 == tmai { other_per_tmai } else { 1.0 / other_per_tmai };
    let sqrt_x96 = U160::from((price.sqrt() * 2f64.powi(96)) as u128);
    let p = IPoolSetup::new(pool, provider);
    p.initialize(sqrt_x96).send().await.unwrap().get_receipt().await.unwrap();
    p.increaseObservationCardinalityNext(100).send().await.unwrap().get_receipt().await.unwrap();

    for token in [tmai, other] {
        for spender in [manager, router] {
            TestToken::new(token, provider).approve(spender, U256::MAX).send().await.unwrap().get_receipt().await.unwrap();
        }
    }
    let (tmai_amount, other_amount) = amounts;
    let (amount0, amount1) = if token0 == tmai { (tmai_amount, other_amount) } else { (other_amount, tmai_amount) };
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
    let npm = INonfungiblePositionManager::new(manager, provider);
    if let Err(e) = npm.mint(params.clone()).call().await {
        panic!("adding liquidity would revert: {e} (token0 {token0}, sqrt price {sqrt_x96})");
    }
    let minted = npm.mint(params).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
    assert!(minted.status(), "adding liquidity reverted");
    pool
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

        let tmai_amount = U256::from(1_000_000u64) * U256::from(10).pow(U256::from(18));
        // WETH per TMAI: 0.0025 / 3000.
        let pool =
            full_range_pool(&provider, [factory, manager, router, deployer], tmai, weth, (tmai_amount, U256::from(POOL_WETH_WEI)), 0.0025 / 3000.0).await;

        let eth_usd = deploy_feed(&provider, 8, 300_000_000_000).await;
        let usd_peg = deploy_feed(&provider, 8, 100_000_000).await;
        Self { provider, deployer, tmai, weth, pool, router, factory, manager, eth_usd, usd_peg }
    }

    /// Deploys a test token that sorts below TMAI (so TMAI is the pool's token1) and a
    /// full-range pool of `amounts` (TMAI, other) at `other_per_tmai`; returns the pool and
    /// the token.
    pub(crate) async fn pool_with_tmai_as_token1(&self, amounts: (U256, U256), other_per_tmai: f64) -> (Address, Address) {
        let big = U256::from(10).pow(U256::from(30));
        for _ in 0..64 {
            let token = TestToken::deploy(&self.provider, "Quote (test)".into(), "QUOTE".into(), 18, self.deployer).await.unwrap();
            if *token.address() < self.tmai {
                token.mint(self.deployer, big).send().await.unwrap().get_receipt().await.unwrap();
                let other = *token.address();
                let pool =
                    full_range_pool(&self.provider, [self.factory, self.manager, self.router, self.deployer], self.tmai, other, amounts, other_per_tmai).await;
                return (pool, other);
            }
        }
        panic!("no test token address sorted below TMAI in 64 deployments");
    }

    /// Buys TMAI with `weth_wei` WETH (the TMAI price goes up), in one mined transaction.
    pub(crate) async fn buy_tmai(&self, weth_wei: u128) {
        self.buy_tmai_with(self.weth, weth_wei).await;
    }

    /// Buys TMAI with `amount` of `token_in` in their pool, in one mined transaction.
    pub(crate) async fn buy_tmai_with(&self, token_in: Address, amount: u128) {
        let params = ISwapRouter::ExactInputSingleParams {
            tokenIn: token_in,
            tokenOut: self.tmai,
            fee: U24::from(FEE),
            recipient: self.deployer,
            deadline: U256::from(u64::MAX),
            amountIn: U256::from(amount),
            amountOutMinimum: U256::ZERO,
            sqrtPriceLimitX96: U160::ZERO,
        };
        let receipt = ISwapRouter::new(self.router, &self.provider).exactInputSingle(params).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "swap reverted");
    }

    /// The pool's spot tick.
    pub(crate) async fn spot_tick(&self) -> i32 {
        self.spot_tick_of(self.pool).await
    }

    /// `pool`'s spot price, token1 per token0 in raw units (from `sqrtPriceX96`, not the
    /// tick: the price the tick is the floor of).
    pub(crate) async fn spot_price_of(&self, pool: Address) -> f64 {
        let sqrt: f64 = IPoolSetup::new(pool, &self.provider).slot0().call().await.unwrap().sqrtPriceX96.to_string().parse().unwrap();
        (sqrt / 2f64.powi(96)).powi(2)
    }

    /// `pool`'s spot tick.
    pub(crate) async fn spot_tick_of(&self, pool: Address) -> i32 {
        IPoolSetup::new(pool, &self.provider).slot0().call().await.unwrap().tick.as_i32()
    }

    /// The pool's in-range liquidity.
    pub(crate) async fn liquidity(&self) -> u128 {
        IPoolSetup::new(self.pool, &self.provider).liquidity().call().await.unwrap()
    }

    /// Moves the chain's time forward by `secs` and mines a block.
    pub(crate) async fn advance(&self, secs: u64) {
        self.provider.anvil_increase_time(secs).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
    }
}
