//! Gas benchmark: deploys on a fresh anvil and prints the gas of `pay`, `payWithPermit`,
//! one badge issue, a batch of 100, one update, one revoke and one move, each beside a
//! baseline measured in the same run on the same chain state, with the ratio and its target;
//! then, on the committed fixtures' market (`tmai-pay dev`'s chain), the checkout page's
//! one-click buy: the swap of the missing TMAI (`multicall(selfPermit, exactOutput)` through
//! Uniswap's router, USD → WETH → TMAI) plus `payWithPermit`, beside `payWithPermit` alone;
//! and Unlock Protocol's PublicLock v15 (the pinned npm artifact) on the same anvil: a key
//! purchase, `extend` and the keeper's `renewMembershipFor` beside our payment with its
//! badge share, our payment, and the renewer's mandate `charge` (see `bench_unlock`).
//!
//! Run: `cargo bench --bench gas` (or `scripts/bench-gas`).

#[path = "support/record.rs"]
#[allow(dead_code, unreachable_pub)]
mod record;

use alloy::{
    network::Ethereum,
    primitives::{Address, U256, keccak256},
    providers::{DynProvider, PendingTransactionBuilder, Provider, ext::AnvilApi},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, Result, ensure};
use tmai_pay::{
    chain::{
        bindings::{IMembershipBadge::Membership, ISubscriptionCheckout::Quote, MembershipBadge, ReferenceBadge, SubscriptionCheckout, TestToken},
        deployment::Deployment,
        devnet::{self, AnvilOptions},
        signing::{PermitRequest, quote_domain, sign_permit, sign_quote},
    },
    toolchain::Toolchain,
};

const PAYMENTS: u64 = 100;
const SAMPLES: u64 = 20;
const BATCH: usize = 100;
const EXPIRY: u64 = 2_000_000_000;

struct Row {
    name: String,
    gas: f64,
    baseline_name: String,
    baseline: f64,
    target: Option<f64>,
    absolute_target: Option<f64>,
}

/// Returns the gas a sent transaction used. Polls for the receipt directly: after
/// `anvil_revert` block numbers repeat, which alloy's block heartbeat does not follow.
async fn gas(pending: alloy::contract::Result<PendingTransactionBuilder<Ethereum>>) -> Result<u64> {
    let pending = pending?;
    let hash = *pending.tx_hash();
    let receipt: TransactionReceipt = loop {
        if let Some(receipt) = pending.provider().get_transaction_receipt(hash).await? {
            break receipt;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    ensure!(receipt.status(), "transaction reverted: {:?}", receipt.transaction_hash);
    Ok(receipt.gas_used)
}

fn mean(values: &[u64]) -> f64 {
    values.iter().sum::<u64>() as f64 / values.len() as f64
}

fn member(i: u64) -> Address {
    Address::from_word(keccak256(format!("bench-member-{i}")))
}

struct Env {
    anvil: alloy::node_bindings::AnvilInstance,
    deployment: Deployment,
    payer: DynProvider,
    payer_key: PrivateKeySigner,
    spender: DynProvider,
    issuer: DynProvider,
    signer: PrivateKeySigner,
}

impl Env {
    async fn snapshot(&self) -> Result<U256> {
        Ok(self.payer.anvil_snapshot().await?)
    }

    async fn revert(&self, id: U256) -> Result<()> {
        ensure!(self.payer.anvil_revert(id).await?, "anvil_revert failed");
        Ok(())
    }

    async fn quote(&self, order_id: u64, amount: U256) -> Result<(Quote, alloy::primitives::Bytes)> {
        let quote = Quote {
            orderId: U256::from(order_id),
            payer: self.payer_key.address(),
            token: self.deployment.token("TMAI").context("TMAI")?.address,
            amount,
            planId: 3,
            periods: 1,
            deadline: EXPIRY,
        };
        let domain = quote_domain(self.deployment.chain_id, self.deployment.checkout);
        let signature = sign_quote(&self.signer, &quote, &domain).await?;
        Ok((quote, signature))
    }
}

async fn bench_pay(env: &Env, amount: U256) -> Result<Row> {
    let token_address = env.deployment.token("TMAI").context("TMAI")?.address;
    let checkout = SubscriptionCheckout::new(env.deployment.checkout, &env.payer);
    let token = TestToken::new(token_address, &env.payer);
    let total = amount * U256::from(PAYMENTS);

    let snapshot = env.snapshot().await?;
    gas(token.approve(env.deployment.checkout, total).send().await).await?;
    let mut pays = Vec::new();
    for i in 0..PAYMENTS {
        let (quote, signature) = env.quote(i + 1, amount).await?;
        pays.push(gas(checkout.pay(quote, signature).send().await).await?);
    }
    env.revert(snapshot).await?;

    let snapshot = env.snapshot().await?;
    let payer = env.payer_key.address();
    gas(token.approve(payer, total).send().await).await?;
    let mut transfers = Vec::new();
    for _ in 0..PAYMENTS {
        transfers.push(gas(token.transferFrom(payer, env.deployment.treasury, amount).send().await).await?);
    }
    env.revert(snapshot).await?;

    Ok(Row {
        name: format!("pay (mean of {PAYMENTS} consecutive)"),
        gas: mean(&pays),
        baseline_name: "ERC-20 transferFrom tx".into(),
        baseline: mean(&transfers),
        target: Some(1.5),
        absolute_target: None,
    })
}

async fn bench_permit(env: &Env, amount: U256) -> Result<Row> {
    let info = env.deployment.token("TMAI").context("TMAI")?.clone();
    let checkout = SubscriptionCheckout::new(env.deployment.checkout, &env.payer);
    let token_for_payer = TestToken::new(info.address, &env.payer);
    let token_for_spender = TestToken::new(info.address, &env.spender);
    let token_name = token_for_payer.name().call().await?;
    let payer = env.payer_key.address();
    let spender = env.anvil.addresses()[1];
    let request = |spender: Address, nonce: u64| PermitRequest {
        token_name: token_name.clone(),
        token: info.address,
        chain_id: env.deployment.chain_id,
        spender,
        value: amount,
        nonce: U256::from(nonce),
        deadline: U256::from(EXPIRY),
    };

    let snapshot = env.snapshot().await?;
    let mut with_permit = Vec::new();
    for i in 0..SAMPLES {
        let (quote, signature) = env.quote(i + 1, amount).await?;
        let permit = sign_permit(&env.payer_key, &request(env.deployment.checkout, i)).await?;
        let call = checkout.payWithPermit(quote, signature, U256::from(EXPIRY), permit.v, permit.r, permit.s);
        with_permit.push(gas(call.send().await).await?);
    }
    env.revert(snapshot).await?;

    let snapshot = env.snapshot().await?;
    let mut two_txs = Vec::new();
    for i in 0..SAMPLES {
        let permit = sign_permit(&env.payer_key, &request(spender, i)).await?;
        let permit_gas = gas(token_for_spender.permit(payer, spender, amount, U256::from(EXPIRY), permit.v, permit.r, permit.s).send().await).await?;
        let transfer_gas = gas(token_for_spender.transferFrom(payer, env.deployment.treasury, amount).send().await).await?;
        two_txs.push(permit_gas + transfer_gas);
    }
    env.revert(snapshot).await?;

    Ok(Row {
        name: format!("payWithPermit (mean of {SAMPLES})"),
        gas: mean(&with_permit),
        baseline_name: "permit tx + transferFrom tx".into(),
        baseline: mean(&two_txs),
        target: Some(1.0),
        absolute_target: None,
    })
}

async fn bench_badges(env: &Env) -> Result<Vec<Row>> {
    let badge = MembershipBadge::new(env.deployment.badge, &env.issuer);
    let reference = ReferenceBadge::deploy(&env.issuer).await?;
    let membership = |i: u64, tier: u8, expiry: u64| Membership { wallet: member(i), tier, expiresAt: expiry };

    let snapshot = env.snapshot().await?;
    let mut issues = Vec::new();
    let mut reference_issues = Vec::new();
    let mut updates = Vec::new();
    let mut reference_updates = Vec::new();
    for i in 0..SAMPLES {
        issues.push(gas(badge.issue(vec![membership(i, 3, EXPIRY)]).send().await).await?);
        reference_issues.push(gas(reference.issue(member(i), 3, EXPIRY).send().await).await?);
    }
    for i in 0..SAMPLES {
        updates.push(gas(badge.update(vec![membership(i, 4, EXPIRY + 86_400)]).send().await).await?);
        reference_updates.push(gas(reference.update(U256::from(i + 1), 4, EXPIRY + 86_400).send().await).await?);
    }
    let batch: Vec<Membership> = (1_000..1_000 + BATCH as u64).map(|i| membership(i, 2, EXPIRY)).collect();
    let batch_gas = gas(badge.issue(batch).send().await).await?;

    // Moves to fresh wallets (whose ids are not minted), then revokes of the moved badges.
    let mut moves = Vec::new();
    let mut reference_moves = Vec::new();
    for i in 0..SAMPLES {
        moves.push(gas(badge.r#move(member(i), member(2_000 + i)).send().await).await?);
        reference_moves.push(gas(reference.r#move(U256::from(i + 1), member(2_000 + i)).send().await).await?);
    }
    let mut revokes = Vec::new();
    let mut reference_revokes = Vec::new();
    for i in 0..SAMPLES {
        revokes.push(gas(badge.revoke(vec![member(2_000 + i)]).send().await).await?);
        reference_revokes.push(gas(reference.revoke(U256::from(i + 1)).send().await).await?);
    }
    env.revert(snapshot).await?;

    let reference_issue = mean(&reference_issues);
    Ok(vec![
        Row {
            name: format!("issue 1 badge (mean of {SAMPLES})"),
            gas: mean(&issues),
            baseline_name: "OZ ERC721._mint + tier/expiry".into(),
            baseline: reference_issue,
            target: Some(0.75),
            absolute_target: None,
        },
        Row {
            name: format!("issue {BATCH} in one batch, per badge"),
            gas: batch_gas as f64 / BATCH as f64,
            baseline_name: "OZ ERC721._mint + tier/expiry".into(),
            baseline: reference_issue,
            target: None,
            absolute_target: Some(30_000.0),
        },
        Row {
            name: format!("update 1 badge (mean of {SAMPLES})"),
            gas: mean(&updates),
            baseline_name: "OZ reference: rewrite tier/expiry".into(),
            baseline: mean(&reference_updates),
            target: None,
            absolute_target: None,
        },
        Row {
            name: format!("move 1 badge (mean of {SAMPLES})"),
            gas: mean(&moves),
            baseline_name: "OZ reference: ERC721._transfer".into(),
            baseline: mean(&reference_moves),
            target: None,
            absolute_target: None,
        },
        Row {
            name: format!("revoke 1 badge (mean of {SAMPLES})"),
            gas: mean(&revokes),
            baseline_name: "OZ reference: _burn + delete data".into(),
            baseline: mean(&reference_revokes),
            target: None,
            absolute_target: None,
        },
    ])
}

alloy::sol! {
    /// The parts of Unlock Protocol's PublicLock v15 the comparison calls (the deployed code is
    /// the pinned npm package's artifact).
    #[sol(rpc)]
    interface IPublicLockV15 {
        function initialize(address lockCreator, uint256 expirationDuration, address tokenAddress, uint256 keyPrice, uint256 maxNumberOfKeys, string lockName) external;
        function purchase(uint256[] values, address[] recipients, address[] referrers, address[] keyManagers, bytes[] data) external payable returns (uint256[] tokenIds);
        function extend(uint256 value, uint256 tokenId, address referrer, bytes data) external payable;
        function renewMembershipFor(uint256 tokenId, address referrer) external;
        function keyExpirationTimestampFor(uint256 tokenId) external view returns (uint256);
        function tokenOfOwnerByIndex(address owner, uint256 index) external view returns (uint256);
        function publicLockVersion() external pure returns (uint16);
    }
}

const MONTH: u64 = 30 * 86_400;
/// Months renewed by Unlock's keeper call and by our mandate charge (as the forge bench).
const RENEWALS: u64 = 12;

/// Unlock Protocol's PublicLock v15 on the same anvil, an ERC-20 lock at the same price in
/// the same token with a 30-day key, reporting to a stub Unlock (`UnlockStub`: no fee,
/// nothing recorded, so the lock's figures are a lower bound), beside ours:
/// - a new member's purchase: Unlock's `purchase` (mints the key) against our `pay` plus
///   the member's share of a batched badge issue (what activates and proves the plan);
/// - the member paying the next month: Unlock's `extend` against our `pay`;
/// - the keeper renewal: Unlock's `renewMembershipFor` (callable by anyone once 90 % of the
///   key is used) against our renewer's mandate `charge` (a mandate already registered), each
///   measured once a month for `RENEWALS` months.
async fn bench_unlock(toolchain: &Toolchain, env: &Env, amount: U256, pay_gas: f64, batch_share: f64) -> Result<Vec<Row>> {
    use alloy::{network::TransactionBuilder, rpc::types::TransactionRequest};
    use tmai_pay::{
        billing::renewals::mandate::mandate_id,
        chain::bindings::{IRenewalMandates::RenewalMandate, UnlockStub},
    };
    let snapshot = env.snapshot().await?;
    let tmai = env.deployment.token("TMAI").context("TMAI")?.address;
    let payer = env.payer_key.address();

    // The lock, from the npm artifact, initialised by the stub (as the factory would).
    let artifact: serde_json::Value = serde_json::from_slice(&std::fs::read(
        toolchain.root().join("tools/node_modules/@unlock-protocol/contracts/dist/abis/PublicLock/PublicLockV15.json"),
    )?)?;
    let code = alloy::primitives::hex::decode(artifact["bytecode"].as_str().context("PublicLockV15 bytecode")?)?;
    let deploy = TransactionRequest::default().with_deploy_code(code);
    let receipt = env.payer.send_transaction(deploy).await?.get_receipt().await?;
    let lock_address = receipt.contract_address.context("PublicLock deployment")?;
    let stub = *UnlockStub::deploy(&env.payer).await?.address();
    let plain = alloy::providers::ProviderBuilder::new().connect_http(env.anvil.endpoint_url()).erased();
    plain.anvil_impersonate_account(stub).await?;
    plain.anvil_set_balance(stub, U256::from(10u64).pow(U256::from(18))).await?;
    IPublicLockV15::new(lock_address, &plain)
        .initialize(payer, U256::from(MONTH), tmai, amount, U256::MAX, "Bench lock".into())
        .from(stub)
        .send()
        .await?
        .get_receipt()
        .await?;
    plain.anvil_stop_impersonating_account(stub).await?;
    let lock = IPublicLockV15::new(lock_address, &env.payer);
    ensure!(lock.publicLockVersion().call().await? == 15, "PublicLock version");
    let token = TestToken::new(tmai, &env.payer);
    gas(token.approve(lock_address, U256::MAX).send().await).await?;

    // Purchases: the payer's own key first (renewed below), then one key per new member.
    let one = |a: Address| (vec![amount], vec![a], vec![Address::ZERO], vec![a], vec![alloy::primitives::Bytes::new()]);
    let (v, r, f, k, d) = one(payer);
    gas(lock.purchase(v, r, f, k, d).send().await).await?;
    let own_key = lock.tokenOfOwnerByIndex(payer, U256::ZERO).call().await?;
    let mut purchases = Vec::new();
    for i in 0..SAMPLES {
        let (v, r, f, k, d) = one(member(10_000 + i));
        purchases.push(gas(lock.purchase(v, r, f, k, d).send().await).await?);
    }
    // The member pays the next month on the lock.
    let mut extends = Vec::new();
    for _ in 0..SAMPLES {
        extends.push(gas(lock.extend(amount, own_key, Address::ZERO, alloy::primitives::Bytes::new()).send().await).await?);
    }
    // The keeper's renewal, each month when the lock first allows it (90 % into the key).
    let keeper = IPublicLockV15::new(lock_address, &env.spender);
    let mut renewals = Vec::new();
    for _ in 0..RENEWALS {
        let expires: u64 = lock.keyExpirationTimestampFor(own_key).call().await?.try_into()?;
        env.payer.anvil_set_next_block_timestamp(expires - MONTH / 10).await?;
        renewals.push(gas(keeper.renewMembershipFor(own_key, Address::ZERO).send().await).await?);
    }

    // Our renewer's charges under one mandate, registered by the first charge.
    let renewer_key = devnet::enable_renewer(&env.anvil, &env.deployment).await?;
    let renewer =
        alloy::providers::ProviderBuilder::new().wallet(alloy::network::EthereumWallet::from(renewer_key)).connect_http(env.anvil.endpoint_url()).erased();
    let now = env.payer.get_block_by_number(Default::default()).await?.context("head")?.header.timestamp + 1;
    let mandate = RenewalMandate {
        payer,
        token: tmai,
        maxAmount: amount,
        period: MONTH as u32,
        maxCharges: (RENEWALS + 1) as u32,
        start: now,
        validUntil: now + (RENEWALS + 1) * MONTH,
        earlyWindow: 3 * 86_400,
        planId: 3,
        salt: U256::from(7),
    };
    use alloy::signers::Signer;
    let signature = env.payer_key.sign_hash(&mandate_id(&mandate, env.deployment.chain_id, env.deployment.checkout)).await?;
    gas(token.approve(env.deployment.checkout, U256::MAX).send().await).await?;
    // An earlier order in the same word of paid-order bits, as the service's order ids run
    // (the forge bench does the same): the first charge is not also the word's first write.
    let (quote, quote_signature) = env.quote(4_999_999, amount).await?;
    gas(SubscriptionCheckout::new(env.deployment.checkout, &env.payer).pay(quote, quote_signature).send().await).await?;
    let checkout = SubscriptionCheckout::new(env.deployment.checkout, &renewer);
    env.payer.anvil_set_next_block_timestamp(now).await?;
    let first = gas(checkout.charge(mandate.clone(), signature.as_bytes().to_vec().into(), U256::from(5_000_000), amount).send().await).await?;
    let mut charges = Vec::new();
    for k in 1..=RENEWALS {
        env.payer.anvil_set_next_block_timestamp(now + k * MONTH).await?;
        charges.push(gas(checkout.charge(mandate.clone(), alloy::primitives::Bytes::new(), U256::from(5_000_000 + k), amount).send().await).await?);
    }
    env.revert(snapshot).await?;

    let row = |name: String, gas: f64, baseline_name: &str, baseline: f64| Row {
        name,
        gas,
        baseline_name: baseline_name.into(),
        baseline,
        target: None,
        absolute_target: None,
    };
    Ok(vec![
        row(
            format!("pay + badge's share of a batch of {BATCH}"),
            pay_gas + batch_share,
            &format!("Unlock v15 purchase, ERC-20 key (mean of {SAMPLES})"),
            mean(&purchases),
        ),
        row("pay, the next month".into(), pay_gas, &format!("Unlock v15 extend (mean of {SAMPLES})"), mean(&extends)),
        row(
            format!("renewer charge, mandate registered (mean of {RENEWALS})"),
            mean(&charges),
            &format!("Unlock v15 renewMembershipFor (mean of {RENEWALS})"),
            mean(&renewals),
        ),
        row("renewer charge registering the mandate".into(), first as f64, &format!("Unlock v15 renewMembershipFor (mean of {RENEWALS})"), mean(&renewals)),
    ])
}

/// The one-click buy on the fixtures' market: `SAMPLES` plain `payWithPermit`s, then
/// `SAMPLES` swaps of exactly the amount (the page's multicall, priced by the configured
/// quoter with the example's route) each followed by its `payWithPermit`.
async fn bench_one_click(toolchain: &Toolchain, amount: U256) -> Result<Row> {
    use alloy::sol_types::SolCall;
    use tmai_pay::{billing::swaps::SwapDesk, chain::market::ISwapRouter, config::Settings};
    let dir = toolchain.fixtures_dir();
    let deployment = Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE))?;
    let anvil = devnet::spawn_anvil(toolchain, &AnvilOptions { load_state: Some(dir.join(devnet::STATE_FILE)), ..Default::default() })?;
    let env = Env {
        payer: devnet::provider_for(&anvil, 0),
        payer_key: devnet::key(&anvil, 0),
        spender: devnet::provider_for(&anvil, 1),
        issuer: devnet::provider_for(&anvil, devnet::ISSUER),
        signer: devnet::key(&anvil, devnet::QUOTE_SIGNER),
        deployment: deployment.clone(),
        anvil,
    };
    let settings = Settings::from_toml(include_str!("../tmai-pay.example.toml"))?;
    let swap = settings.pricing.swap.context("the example configures [pricing.swap]")?;
    let desk = SwapDesk::new(&swap, &deployment, env.payer.clone()).map_err(|(f, e)| anyhow::anyhow!("{f}: {e}"))?;
    let tmai = deployment.token("TMAI").context("TMAI")?.clone();
    let usd = deployment.token("USD").context("USD")?.clone();
    let checkout = SubscriptionCheckout::new(deployment.checkout, &env.payer);
    let router = ISwapRouter::new(swap.router, &env.payer);
    let payer = env.payer_key.address();
    let permit = |token: &tmai_pay::chain::deployment::TokenInfo, name: String, spender: Address, value: U256, nonce: U256| PermitRequest {
        token_name: name,
        token: token.address,
        chain_id: deployment.chain_id,
        spender,
        value,
        nonce,
        deadline: U256::from(EXPIRY),
    };
    let (tmai_token, usd_token) = (TestToken::new(tmai.address, &env.payer), TestToken::new(usd.address, &env.payer));
    let (tmai_name, usd_name) = (tmai_token.name().call().await?, usd_token.name().call().await?);
    let pay = |order: u64| {
        let (env, checkout, tmai, tmai_token, tmai_name) = (&env, &checkout, &tmai, &tmai_token, tmai_name.clone());
        async move {
            let (quote, signature) = env.quote(order, amount).await?;
            let nonce = tmai_token.nonces(payer).call().await?;
            let signed = sign_permit(&env.payer_key, &permit(tmai, tmai_name, env.deployment.checkout, amount, nonce)).await?;
            gas(checkout.payWithPermit(quote, signature, U256::from(EXPIRY), signed.v, signed.r, signed.s).send().await).await
        }
    };
    let mut plain = Vec::new();
    for i in 0..SAMPLES {
        plain.push(pay(1_000_000 + i).await?);
    }
    let mut bought = Vec::new();
    for i in 0..SAMPLES {
        let quote = desk.quote("TMAI", amount).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let nonce = usd_token.nonces(payer).call().await?;
        let signed = sign_permit(&env.payer_key, &permit(&usd, usd_name.clone(), swap.router, quote.amount_in_max, nonce)).await?;
        let self_permit =
            ISwapRouter::selfPermitCall { token: usd.address, value: quote.amount_in_max, deadline: U256::from(EXPIRY), v: signed.v, r: signed.r, s: signed.s };
        let exact_output = ISwapRouter::exactOutputCall {
            params: ISwapRouter::ExactOutputParams {
                path: quote.route.path.clone(),
                recipient: payer,
                deadline: U256::from(EXPIRY),
                amountOut: amount,
                amountInMaximum: quote.amount_in_max,
            },
        };
        let swapped = gas(router.multicall(vec![self_permit.abi_encode().into(), exact_output.abi_encode().into()]).send().await).await?;
        bought.push(swapped + pay(2_000_000 + i).await?);
    }
    Ok(Row {
        name: format!("one-click buy: swap + payWithPermit ({SAMPLES})"),
        gas: mean(&bought),
        baseline_name: "payWithPermit alone".into(),
        baseline: mean(&plain),
        target: None,
        absolute_target: None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let toolchain = Toolchain::locate()?;
    let anvil = devnet::spawn_anvil(&toolchain, &AnvilOptions::default())?;
    let deployment = devnet::deploy_fixture_contracts(&anvil).await?;
    let env = Env {
        payer: devnet::provider_for(&anvil, 0),
        payer_key: devnet::key(&anvil, 0),
        spender: devnet::provider_for(&anvil, 1),
        issuer: devnet::provider_for(&anvil, devnet::ISSUER),
        signer: devnet::key(&anvil, devnet::QUOTE_SIGNER),
        deployment,
        anvil,
    };
    let amount = U256::from(25) * U256::from(10).pow(U256::from(18));

    let mut rows = vec![bench_pay(&env, amount).await?, bench_permit(&env, amount).await?];
    rows.extend(bench_badges(&env).await?);
    let (pay_gas, batch_share) = (rows[0].gas, rows.iter().find(|r| r.name.contains("one batch")).context("the batch row")?.gas);
    rows.extend(bench_unlock(&toolchain, &env, amount, pay_gas, batch_share).await?);
    rows.push(bench_one_click(&toolchain, amount).await?);

    println!("gas benchmark (anvil {}, chain {})", env.anvil.endpoint(), env.deployment.chain_id);
    println!("{:<38} {:>10}  {:<34} {:>10} {:>7}  {:<14}", "operation", "gas", "baseline (same run)", "gas", "ratio", "target");
    let mut missed = 0;
    for row in &rows {
        let ratio = row.gas / row.baseline;
        let (target, ok) = match (row.target, row.absolute_target) {
            (Some(t), _) => (format!("≤ {t:.2}×"), ratio <= t),
            (None, Some(a)) => (format!("≤ {a:.0} gas"), row.gas <= a),
            (None, None) => ("(reported)".to_string(), true),
        };
        if !ok {
            missed += 1;
        }
        println!(
            "{:<38} {:>10.0}  {:<34} {:>10.0} {:>6.3}×  {:<14} {}",
            row.name,
            row.gas,
            row.baseline_name,
            row.baseline,
            ratio,
            target,
            if ok { "met" } else { "MISSED" }
        );
    }
    let mut rec = record::Record::new("gas");
    rec.param("payments", PAYMENTS);
    rec.param("samples", SAMPLES);
    rec.param("batch", BATCH);
    for row in &rows {
        let key: String = row.name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect::<Vec<_>>().join("_");
        let base_key = format!("{key}.baseline");
        rec.add(record::figure(&base_key, &row.baseline_name, "gas", row.baseline).lower().group(&row.name));
        let mut fig = record::figure(&key, &row.name, "gas", row.gas).baseline(&base_key).lower().group(&row.name);
        match (row.target, row.absolute_target) {
            (Some(t), _) => fig = fig.target(&format!("≤ {t:.2}×")),
            (None, Some(a)) => fig = fig.target(&format!("≤ {a:.0} gas")),
            (None, None) => {}
        }
        rec.add(fig);
    }
    rec.save()?;
    if missed > 0 {
        println!("{missed} target(s) missed");
    } else {
        println!("all targets met");
    }
    Ok(())
}
