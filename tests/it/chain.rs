//! The contracts as the service sees them: artifacts, fixtures, quotes signed in Rust and
//! paid on a real anvil, badges issued and rendered.

use alloy::{
    primitives::{Address, U256, aliases::U48},
    providers::{Provider, ext::AnvilApi},
    sol_types::SolEvent,
};
use base64::Engine;
use tmai_pay::{
    chain::{
        bindings::{
            IMembershipBadge::Membership,
            ISubscriptionCheckout::Quote,
            MembershipBadge,
            SubscriptionCheckout::{self, OrderPaid},
            TestToken,
        },
        compile,
        deploy::DEFAULT_ADMIN_DELAY,
        devnet,
        signing::{PermitRequest, quote_digest, quote_domain, sign_permit, sign_quote},
    },
    commands,
};

use crate::helpers::{spawn_chain, toolchain};

const DEADLINE: u64 = 4_000_000_000;

fn quote(order_id: u64, payer: Address, token: Address, amount: U256) -> Quote {
    Quote { orderId: U256::from(order_id), payer, token, amount, planId: 3, periods: 1, deadline: DEADLINE }
}

#[test]
fn committed_artifacts_match_a_fresh_compile() {
    let stale = compile::check(&toolchain()).expect("contracts compile");
    assert!(stale.is_empty(), "stale artifacts (run `tmai-pay contracts build`): {stale:?}");
}

#[tokio::test]
async fn committed_fixtures_match_a_fresh_deploy() {
    let toolchain = toolchain();
    let differences = commands::fixture_differences(&toolchain, &toolchain.fixtures_dir()).await.expect("fixtures deploy");
    assert!(differences.is_empty(), "fixtures differ (run scripts/regenerate): {differences:?}");
}

#[tokio::test]
async fn a_quote_signed_in_rust_pays_on_chain_and_emits_order_paid() {
    // Arrange
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let payer = devnet::provider_for(&chain.anvil, 0);
    let payer_address = chain.anvil.addresses()[0];
    let signer = devnet::key(&chain.anvil, devnet::QUOTE_SIGNER);
    let tmai = d.token("TMAI").unwrap().address;
    let amount = U256::from(49) * U256::from(10).pow(U256::from(18));
    let q = quote(7, payer_address, tmai, amount);
    let domain = quote_domain(d.chain_id, d.checkout);
    let signature = sign_quote(&signer, &q, &domain).await.unwrap();
    let checkout = SubscriptionCheckout::new(d.checkout, &payer);
    let token = TestToken::new(tmai, &payer);
    token.approve(d.checkout, amount).send().await.unwrap().get_receipt().await.unwrap();
    let treasury_before = token.balanceOf(d.treasury).call().await.unwrap();

    // Act
    let receipt = checkout.pay(q.clone(), signature.clone()).send().await.unwrap().get_receipt().await.unwrap();

    // Assert
    assert!(receipt.status());
    assert_eq!(checkout.quoteDigest(q.clone()).call().await.unwrap(), quote_digest(&q, &domain));
    let event = receipt.inner.logs().iter().find_map(|log| OrderPaid::decode_log(&log.inner).ok()).expect("OrderPaid emitted");
    assert_eq!(event.orderId, U256::from(7));
    assert_eq!(event.payer, payer_address);
    assert_eq!(event.planId, 3);
    assert_eq!(event.token, tmai);
    assert_eq!(event.amount, amount);
    assert_eq!(event.periods, 1);
    assert_eq!(token.balanceOf(d.treasury).call().await.unwrap() - treasury_before, amount);
    assert!(checkout.isOrderPaid(U256::from(7)).call().await.unwrap());

    // A replay is refused with the contract's own error.
    token.approve(d.checkout, amount).send().await.unwrap().get_receipt().await.unwrap();
    let replay = checkout.pay(q, signature).call().await.expect_err("replay must revert");
    let decoded = replay.as_decoded_interface_error::<SubscriptionCheckout::SubscriptionCheckoutErrors>();
    assert!(matches!(decoded, Some(SubscriptionCheckout::SubscriptionCheckoutErrors::SubscriptionCheckout__OrderAlreadyPaid(_))), "unexpected error: {replay}");
}

#[tokio::test]
async fn pay_with_permit_signed_in_rust_takes_one_transaction() {
    // Arrange
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let payer = devnet::provider_for(&chain.anvil, 1);
    let payer_key = devnet::key(&chain.anvil, 1);
    let usd = d.token("USD").unwrap().address;
    let amount = U256::from(19_990_000u64);
    let q = quote(8, payer_key.address(), usd, amount);
    let signature = sign_quote(&devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), &q, &quote_domain(d.chain_id, d.checkout)).await.unwrap();
    let token = TestToken::new(usd, &payer);
    let permit = sign_permit(
        &payer_key,
        &PermitRequest {
            token_name: token.name().call().await.unwrap(),
            token: usd,
            chain_id: d.chain_id,
            spender: d.checkout,
            value: amount,
            nonce: token.nonces(payer_key.address()).call().await.unwrap(),
            deadline: U256::from(DEADLINE),
        },
    )
    .await
    .unwrap();
    let nonce_before = payer.get_transaction_count(payer_key.address()).await.unwrap();

    // Act
    let receipt = SubscriptionCheckout::new(d.checkout, &payer)
        .payWithPermit(q, signature, U256::from(DEADLINE), permit.v, permit.r, permit.s)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // Assert
    assert!(receipt.status());
    assert_eq!(payer.get_transaction_count(payer_key.address()).await.unwrap(), nonce_before + 1);
    assert_eq!(token.allowance(payer_key.address(), d.checkout).call().await.unwrap(), U256::ZERO);
    assert!(SubscriptionCheckout::new(d.checkout, &payer).isOrderPaid(U256::from(8)).call().await.unwrap());
}

#[tokio::test]
async fn a_quote_paid_by_another_wallet_is_refused_and_changes_nothing() {
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let intruder = devnet::provider_for(&chain.anvil, 2);
    let tmai = d.token("TMAI").unwrap().address;
    let amount = U256::from(10).pow(U256::from(18));
    let q = quote(9, chain.anvil.addresses()[0], tmai, amount);
    let signature = sign_quote(&devnet::key(&chain.anvil, devnet::QUOTE_SIGNER), &q, &quote_domain(d.chain_id, d.checkout)).await.unwrap();
    TestToken::new(tmai, &intruder).approve(d.checkout, amount).send().await.unwrap().get_receipt().await.unwrap();
    let checkout = SubscriptionCheckout::new(d.checkout, &intruder);

    let error = checkout.pay(q, signature).call().await.expect_err("wrong payer must revert");

    let decoded = error.as_decoded_interface_error::<SubscriptionCheckout::SubscriptionCheckoutErrors>();
    assert!(matches!(decoded, Some(SubscriptionCheckout::SubscriptionCheckoutErrors::SubscriptionCheckout__WrongPayer(_))), "unexpected error: {error}");
    assert!(!checkout.isOrderPaid(U256::from(9)).call().await.unwrap());
}

#[tokio::test]
async fn an_issued_badge_gates_by_tier_and_expiry_and_renders_its_card() {
    // Arrange
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let issuer = devnet::provider_for(&chain.anvil, devnet::ISSUER);
    let badge = MembershipBadge::new(d.badge, &issuer);
    let member = chain.anvil.addresses()[3];
    let now = issuer.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp;
    let expiry = now + 30 * 86_400;

    // Act
    badge.issue(vec![Membership { wallet: member, tier: 3, expiresAt: expiry }]).send().await.unwrap().get_receipt().await.unwrap();

    // Assert
    assert!(badge.isActive(member).call().await.unwrap());
    assert_eq!(badge.tierOf(member).call().await.unwrap(), 3);
    let token_id = badge.tokenOf(member).call().await.unwrap();
    assert_eq!(token_id, U256::from_be_slice(member.as_slice()));
    assert_eq!(badge.expiresAt(token_id).call().await.unwrap(), expiry);
    let uri = badge.tokenURI(token_id).call().await.unwrap();
    let json = uri.strip_prefix("data:application/json;base64,").expect("data URI");
    let metadata: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(json).unwrap()).unwrap();
    assert_eq!(metadata["name"], "TMAI Premium Membership");
    let image = metadata["image"].as_str().unwrap().strip_prefix("data:image/svg+xml;base64,").unwrap();
    let svg = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(image).unwrap()).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">Premium<") && svg.contains("ACTIVE"), "{svg}");
    let preview = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("badge-premium.svg");
    std::fs::write(&preview, &svg).unwrap();

    // A holder cannot move it.
    let holder = MembershipBadge::new(d.badge, devnet::provider_for(&chain.anvil, 3));
    let error = holder.transferFrom(member, chain.anvil.addresses()[4], token_id).call().await.expect_err("soulbound");
    assert!(error.to_string().contains("revert"), "{error}");
    assert_eq!(badge.ownerOf(token_id).call().await.unwrap(), member);
}

/// The deployed badge's admin role moves only by the delayed two-step: the successor cannot
/// accept before the default delay has passed, can after it, and the old admin then can no
/// longer revoke; `grantRole` cannot shortcut it.
#[tokio::test]
async fn the_badge_admin_role_changes_hands_only_after_the_delay() {
    // Arrange
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let admin_rpc = devnet::provider_for(&chain.anvil, devnet::DEPLOYER);
    let admin = MembershipBadge::new(d.badge, &admin_rpc);
    let successor = chain.anvil.addresses()[9];
    let heir = MembershipBadge::new(d.badge, devnet::provider_for(&chain.anvil, 9));
    assert_eq!(admin.defaultAdmin().call().await.unwrap(), d.owner);
    assert_eq!(admin.defaultAdminDelay().call().await.unwrap(), U48::from(DEFAULT_ADMIN_DELAY.as_secs()));
    let refused = admin.grantRole(admin.DEFAULT_ADMIN_ROLE().call().await.unwrap(), successor).call().await.expect_err("grantRole");
    assert!(
        matches!(
            refused.as_decoded_interface_error::<MembershipBadge::MembershipBadgeErrors>(),
            Some(MembershipBadge::MembershipBadgeErrors::AccessControlEnforcedDefaultAdminRules(_))
        ),
        "unexpected error: {refused}"
    );

    // Act 1: begin the transfer and try to accept it at once
    admin.beginDefaultAdminTransfer(successor).send().await.unwrap().get_receipt().await.unwrap();
    let early = heir.acceptDefaultAdminTransfer().call().await.expect_err("accepted before the delay");

    // Assert 1
    assert!(
        matches!(
            early.as_decoded_interface_error::<MembershipBadge::MembershipBadgeErrors>(),
            Some(MembershipBadge::MembershipBadgeErrors::AccessControlEnforcedDefaultAdminDelay(_))
        ),
        "unexpected error: {early}"
    );
    assert_eq!(admin.defaultAdmin().call().await.unwrap(), d.owner);

    // Act 2: past the delay
    admin_rpc.anvil_increase_time(DEFAULT_ADMIN_DELAY.as_secs() + 1).await.unwrap();
    admin_rpc.evm_mine(None).await.unwrap();
    heir.acceptDefaultAdminTransfer().send().await.unwrap().get_receipt().await.unwrap();

    // Assert 2
    assert_eq!(admin.defaultAdmin().call().await.unwrap(), successor);
    let member = chain.anvil.addresses()[3];
    let stale = admin.revoke(vec![member]).call().await.expect_err("the old admin revoked");
    assert!(
        matches!(
            stale.as_decoded_interface_error::<MembershipBadge::MembershipBadgeErrors>(),
            Some(MembershipBadge::MembershipBadgeErrors::MembershipBadge__Unauthorized(_))
        ),
        "unexpected error: {stale}"
    );
}

/// The checkout's owner cannot renounce: an ownerless checkout could never unpause or
/// rotate its signer.
#[tokio::test]
async fn the_checkout_refuses_to_renounce_ownership() {
    let chain = spawn_chain().await;
    let d = &chain.deployment;
    let checkout = SubscriptionCheckout::new(d.checkout, devnet::provider_for(&chain.anvil, devnet::DEPLOYER));

    let error = checkout.renounceOwnership().call().await.expect_err("renounced");

    assert!(
        matches!(
            error.as_decoded_interface_error::<SubscriptionCheckout::SubscriptionCheckoutErrors>(),
            Some(SubscriptionCheckout::SubscriptionCheckoutErrors::SubscriptionCheckout__RenounceOwnershipDisabled(_))
        ),
        "unexpected error: {error}"
    );
    assert_eq!(checkout.owner().call().await.unwrap(), d.owner);
}
