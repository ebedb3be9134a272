//! Deploys `SubscriptionCheckout` and `MembershipBadge` (and, on test chains, the TMAI
//! and USD test tokens) from a funded deployer, and describes the result as a
//! [`Deployment`].

use std::time::Duration;

use alloy::{
    primitives::{Address, U256, aliases::U48, utils::format_ether},
    providers::{DynProvider, Provider},
};

use super::{
    bindings::{MembershipBadge, SubscriptionCheckout, TestToken},
    deployment::{Deployment, TokenInfo},
};

/// Gas a full deployment with test tokens uses, with headroom; the balance check asks
/// the deployer for this much at the current gas price.
pub const DEPLOY_GAS_BUDGET: u64 = 12_000_000;

/// Delay between beginning and accepting a transfer of the badge's admin role when none is
/// given: long enough to notice and cancel a transfer begun with a stolen admin key.
pub const DEFAULT_ADMIN_DELAY: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// Longest admin-transfer delay a deployment accepts (365 days). Anything longer is far
/// more likely a unit mistake (milliseconds for seconds) than a wish, and a delay that
/// overflows the contract's 48-bit timestamps would make the admin role untransferable.
pub const MAX_ADMIN_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The RPC endpoint did not answer.
    #[error("cannot reach the RPC endpoint: {0}")]
    Unreachable(String),
    /// The deployer cannot pay for the deployment.
    #[error("deployer {deployer} has {balance} ETH on chain {chain_id} but the deployment needs about {needed} ETH; fund it first")]
    Unfunded {
        /// The deployer.
        deployer: Address,
        /// Its balance, in ETH.
        balance: String,
        /// The estimated cost, in ETH.
        needed: String,
        /// The chain.
        chain_id: u64,
    },
    /// The admin-transfer delay is longer than [`MAX_ADMIN_DELAY`].
    #[error("the badge admin delay of {0} s is longer than the maximum of {max} s (365 days)", max = MAX_ADMIN_DELAY.as_secs())]
    AdminDelayTooLong(u64),
    /// A token address does not hold an ERC-20 contract.
    #[error("token {0} does not answer symbol()/decimals(); is it an ERC-20 on this chain?")]
    NotAToken(Address),
    /// A transaction failed.
    #[error("{step} failed: {reason}")]
    Transaction {
        /// What was being done.
        step: String,
        /// The node's or contract's answer.
        reason: String,
    },
}

/// Which tokens the checkout takes.
#[derive(Debug, Clone)]
pub enum Tokens {
    /// Deploy TMAI (18 decimals) and USD (6 decimals) test tokens and mint to these wallets.
    Test {
        /// Wallets to fund with test tokens.
        holders: Vec<Address>,
    },
    /// Use tokens that already exist on the chain.
    Existing(Vec<Address>),
}

/// Roles and tokens of a deployment.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// Owner of the checkout, admin of the badge.
    pub owner: Address,
    /// Quote signer (the service's key).
    pub quote_signer: Address,
    /// Badge issuer (the service's key).
    pub issuer: Address,
    /// Payment receiver.
    pub treasury: Address,
    /// Delay between beginning and accepting a transfer of the badge's admin role (whole
    /// seconds, at most [`MAX_ADMIN_DELAY`]).
    pub admin_delay: Duration,
    /// Tokens to deploy or use.
    pub tokens: Tokens,
}

/// TMAI each test wallet receives (whole tokens).
pub const TEST_TMAI_PER_WALLET: u64 = 1_000_000;
/// USD each test wallet receives (whole tokens).
pub const TEST_USD_PER_WALLET: u64 = 100_000;

fn tx_err(step: &str) -> impl Fn(alloy::contract::Error) -> DeployError + '_ {
    move |e| DeployError::Transaction { step: step.to_string(), reason: e.to_string() }
}

fn rpc_err(step: &str) -> impl Fn(alloy::transports::TransportError) -> DeployError + '_ {
    move |e| DeployError::Transaction { step: step.to_string(), reason: e.to_string() }
}

/// Checks that the endpoint answers and that `deployer` can pay for a deployment;
/// returns the chain id.
pub async fn preflight(provider: &DynProvider, deployer: Address) -> Result<u64, DeployError> {
    let chain_id = provider.get_chain_id().await.map_err(|e| DeployError::Unreachable(e.to_string()))?;
    let balance = provider.get_balance(deployer).await.map_err(|e| DeployError::Unreachable(e.to_string()))?;
    let gas_price = provider.get_gas_price().await.map_err(|e| DeployError::Unreachable(e.to_string()))?;
    let needed = U256::from(gas_price) * U256::from(DEPLOY_GAS_BUDGET);
    if balance < needed || balance.is_zero() {
        return Err(DeployError::Unfunded { deployer, balance: format_ether(balance), needed: format_ether(needed), chain_id });
    }
    Ok(chain_id)
}

/// Deploys the contracts with `provider`'s default signer and returns the deployment.
pub async fn deploy(provider: &DynProvider, plan: &DeployPlan) -> Result<Deployment, DeployError> {
    if plan.admin_delay > MAX_ADMIN_DELAY {
        return Err(DeployError::AdminDelayTooLong(plan.admin_delay.as_secs()));
    }
    let admin_delay = U48::from(plan.admin_delay.as_secs());
    let chain_id = provider.get_chain_id().await.map_err(|e| DeployError::Unreachable(e.to_string()))?;
    let deploy_block = provider.get_block_number().await.map_err(rpc_err("reading the head block"))? + 1;

    let tokens = match &plan.tokens {
        Tokens::Test { holders } => deploy_test_tokens(provider, plan.owner, holders).await?,
        Tokens::Existing(addresses) => {
            let mut infos = Vec::new();
            for address in addresses {
                infos.push(describe_token(provider, *address).await?);
            }
            infos
        }
    };

    let checkout =
        SubscriptionCheckout::deploy(provider, plan.owner, plan.quote_signer, plan.treasury).await.map_err(tx_err("deploying SubscriptionCheckout"))?;
    let badge = MembershipBadge::deploy(provider, plan.owner, plan.issuer, admin_delay).await.map_err(tx_err("deploying MembershipBadge"))?;

    Ok(Deployment {
        chain_id,
        deploy_block,
        checkout: *checkout.address(),
        badge: *badge.address(),
        owner: plan.owner,
        quote_signer: plan.quote_signer,
        issuer: plan.issuer,
        treasury: plan.treasury,
        tokens,
        market: None,
        test_wallets: Vec::new(),
    })
}

async fn deploy_test_tokens(provider: &DynProvider, owner: Address, holders: &[Address]) -> Result<Vec<TokenInfo>, DeployError> {
    let mut infos = Vec::new();
    for (name, symbol, decimals, per_wallet) in [("TMAI", "TMAI", 18u8, TEST_TMAI_PER_WALLET), ("USD Coin (test)", "USD", 6u8, TEST_USD_PER_WALLET)] {
        let token = TestToken::deploy(provider, name.to_string(), symbol.to_string(), decimals, owner).await.map_err(tx_err("deploying a test token"))?;
        let amount = U256::from(per_wallet) * U256::from(10).pow(U256::from(decimals));
        for holder in holders {
            token
                .mint(*holder, amount)
                .send()
                .await
                .map_err(tx_err("minting test tokens"))?
                .get_receipt()
                .await
                .map_err(|e| DeployError::Transaction { step: "minting test tokens".into(), reason: e.to_string() })?;
        }
        infos.push(TokenInfo { symbol: symbol.to_string(), address: *token.address(), decimals, permit: true });
    }
    Ok(infos)
}

/// Reads an existing token's symbol and decimals, and whether it has EIP-2612 `permit`.
async fn describe_token(provider: &DynProvider, address: Address) -> Result<TokenInfo, DeployError> {
    let token = TestToken::new(address, provider);
    let symbol = token.symbol().call().await.map_err(|_| DeployError::NotAToken(address))?;
    let decimals = token.decimals().call().await.map_err(|_| DeployError::NotAToken(address))?;
    let permit = token.DOMAIN_SEPARATOR().call().await.is_ok();
    Ok(TokenInfo { symbol, address, decimals, permit })
}

#[cfg(test)]
mod tests {
    use alloy::providers::ProviderBuilder;

    use super::*;

    #[tokio::test]
    async fn an_admin_delay_over_the_maximum_is_refused_before_anything_is_sent() {
        // Nothing listens on port 1: the delay must be refused before the first RPC.
        let provider = ProviderBuilder::new().connect_http("http://127.0.0.1:1".parse().unwrap()).erased();
        let plan = DeployPlan {
            owner: Address::repeat_byte(1),
            quote_signer: Address::repeat_byte(2),
            issuer: Address::repeat_byte(3),
            treasury: Address::repeat_byte(4),
            admin_delay: MAX_ADMIN_DELAY + Duration::from_secs(1),
            tokens: Tokens::Existing(vec![]),
        };

        let error = deploy(&provider, &plan).await.expect_err("too long a delay");

        assert!(matches!(error, DeployError::AdminDelayTooLong(secs) if secs == MAX_ADMIN_DELAY.as_secs() + 1), "{error}");
    }
}
