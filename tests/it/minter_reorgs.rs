//! The minter after a reorg deeper than its confirmations (`anvil_reorg`), on SQLite and
//! PostgreSQL: a confirmed batch the reorg drops is sent again at its own nonce, a job
//! queued meanwhile waits behind it, a batch whose nonce another transaction took has its
//! jobs planned again, one the reorg mines again stays confirmed, and a failed job retried
//! after a newer one for its wallet never puts the older state back. Every case ends with
//! the badges on chain matching the database and every issuer nonce used by a mined
//! transaction, and a later job still goes through.

use alloy::{
    consensus::Transaction as _,
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::{Provider, ext::AnvilApi},
    rpc::types::{
        TransactionRequest,
        anvil::{ReorgOptions, TransactionData},
    },
    sol_types::SolCall,
};
use sqlx::Row;
use tmai_pay::{
    chain::{
        bindings::{IMembershipBadge::Membership, MembershipBadge},
        minter::Minter,
    },
    store::unix_now,
};

use crate::{
    db::{DbKind, on_both_databases},
    minter::{Bench, CONFIRMATIONS, wallet},
};

/// Ticks (mining a block after each) until a batch is confirmed; returns its nonce and
/// the block it was mined in.
async fn confirm_a_batch(b: &Bench, minter: &Minter) -> (u64, u64) {
    for _ in 0..50 {
        minter.tick().await.unwrap();
        let row = sqlx::query("SELECT nonce, mined_block FROM badge_batches WHERE status = 'confirmed' ORDER BY nonce DESC")
            .fetch_optional(b.db().pool())
            .await
            .unwrap();
        if let Some(row) = row {
            return (row.get::<i64, _>("nonce") as u64, row.get::<i64, _>("mined_block") as u64);
        }
        b.rpc.anvil_mine(Some(1), None).await.unwrap();
    }
    panic!("no batch was confirmed");
}

/// Reorganises the chain from `block` up, deeper than the confirmations (blocks are mined
/// first when the head is not far enough above it), putting `txs` on the new branch (none:
/// the removed blocks' transactions are dropped). Returns the depth.
async fn reorg_from(b: &Bench, block: u64, txs: Vec<(TransactionData, u64)>) -> u64 {
    let head = b.rpc.get_block_number().await.unwrap();
    let extra = (block + CONFIRMATIONS + 1).saturating_sub(head);
    if extra > 0 {
        b.rpc.anvil_mine(Some(extra), None).await.unwrap();
    }
    let depth = b.rpc.get_block_number().await.unwrap() + 1 - block;
    assert!(depth > CONFIRMATIONS);
    b.rpc.anvil_reorg(ReorgOptions { depth, tx_block_pairs: txs }).await.unwrap();
    depth
}

/// Returns the nonces of the issuer's mined transactions, in chain order.
async fn issuer_nonces(b: &Bench) -> Vec<u64> {
    let head = b.rpc.get_block_number().await.unwrap();
    let mut nonces = Vec::new();
    for number in 0..=head {
        let block = b.rpc.get_block_by_number(number.into()).full().await.unwrap().unwrap();
        for tx in block.transactions.txns() {
            if tx.inner.signer() == b.issuer() {
                nonces.push(tx.nonce());
            }
        }
    }
    nonces
}

/// Asserts that the issuer's mined transactions use every nonce from 0 to its latest
/// count once, in order.
async fn assert_no_nonce_gap(b: &Bench) {
    let latest = b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap();
    assert_eq!(issuer_nonces(b).await, (0..latest).collect::<Vec<_>>(), "the issuer's nonces on chain");
}

/// Asserts that each wallet's badge on chain shows its subscription's tier and expiry, and
/// that every badge job is confirmed or superseded.
async fn assert_badges_match_the_database(b: &Bench) {
    let rows = sqlx::query("SELECT wallet, tier, expires_at FROM subscriptions").fetch_all(b.db().pool()).await.unwrap();
    for row in rows {
        let wallet = Address::from_slice(&row.get::<Vec<u8>, _>("wallet"));
        let (token, tier, expiry) = b.on_chain(wallet).await;
        assert!(!token.is_zero(), "{wallet} holds a badge");
        assert_eq!((i64::from(tier), expiry as i64), (row.get::<i64, _>("tier"), row.get::<i64, _>("expires_at")), "{wallet}");
        assert_eq!(b.balance(wallet).await, U256::from(1), "{wallet}");
    }
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status NOT IN ('confirmed', 'superseded')").await, 0);
}

/// Activates one more wallet after the reorg is settled: its job goes through at the next
/// nonce.
async fn a_later_job_goes_through(b: &Bench, minter: &Minter, i: u64) {
    let expiry = unix_now() as u64 + 90 * 86_400;
    b.activate(wallet(i), 2, expiry, "issue").await;
    b.drain(minter).await;
    assert_eq!(b.on_chain(wallet(i)).await.2, expiry);
    assert_no_nonce_gap(b).await;
}

/// A deep reorg drops a confirmed mint: the minter sends the same batch again at its
/// nonce, the badges come back once, and no nonce is skipped.
async fn a_confirmed_mint_a_deep_reorg_drops_is_sent_again_at_its_nonce(kind: DbKind) {
    // Arrange: ten badges minted and confirmed
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..10 {
        b.activate(wallet(i), 3, expiry, "issue").await;
    }
    let minter = b.minter(b.config());
    let (nonce, block) = confirm_a_batch(&b, &minter).await;
    assert_eq!(b.balance(wallet(0)).await, U256::from(1));

    // Act: a reorg deeper than the confirmations drops the issuer's transaction
    reorg_from(&b, block, Vec::new()).await;
    assert_eq!(b.balance(wallet(0)).await, U256::ZERO, "the reorg removed the mint");
    assert_eq!(b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap(), nonce);
    let reports = b.drain(&minter).await;

    // Assert: sent again at the same nonce, confirmed once, events not repeated
    assert_eq!(reports.iter().map(|r| r.reorged_confirmed).sum::<usize>(), 1, "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.rebroadcast + r.sent).sum::<usize>(), 1, "{reports:?}");
    let batches = sqlx::query("SELECT nonce, status FROM badge_batches").fetch_all(b.db().pool()).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!((batches[0].get::<i64, _>("nonce") as u64, batches[0].get::<String, _>("status")), (nonce, "confirmed".to_string()));
    assert_eq!(b.events("badge.minted").await.len(), 10);
    assert_badges_match_the_database(&b).await;
    assert_no_nonce_gap(&b).await;
    a_later_job_goes_through(&b, &minter, 40).await;
}
on_both_databases!(a_confirmed_mint_a_deep_reorg_drops_is_sent_again_at_its_nonce);

/// Jobs queued after the confirmation and before the minter notices the reorg (a renewal
/// of a dropped badge, a new member): the dropped batch goes first at its nonce, the
/// renewal waits for it and becomes an update, and nothing is skipped.
async fn jobs_queued_meanwhile_follow_the_resent_batch(kind: DbKind) {
    // Arrange: five badges confirmed; then a renewal of wallet 0 and a new member queued
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..5 {
        b.activate(wallet(i), 1, expiry, "issue").await;
    }
    let minter = b.minter(b.config());
    let (nonce, block) = confirm_a_batch(&b, &minter).await;
    reorg_from(&b, block, Vec::new()).await;
    b.activate(wallet(0), 4, expiry + 30 * 86_400, "update").await;
    b.activate(wallet(20), 2, expiry, "issue").await;

    // Act
    let reports = b.drain(&minter).await;

    // Assert: the dropped batch kept its nonce; the rest came after it
    assert_eq!(reports.iter().map(|r| r.reorged_confirmed).sum::<usize>(), 1, "{reports:?}");
    let first: String = sqlx::query("SELECT status FROM badge_batches WHERE nonce = $1").bind(nonce as i64).fetch_one(b.db().pool()).await.unwrap().get(0);
    assert_eq!(first, "confirmed");
    assert_eq!(b.on_chain(wallet(0)).await.1, 4, "the renewal applied after the re-sent mint");
    assert_eq!(b.events("badge.minted").await.len(), 6);
    assert_eq!(b.events("badge.updated").await.len(), 1);
    assert_badges_match_the_database(&b).await;
    assert_no_nonce_gap(&b).await;
    a_later_job_goes_through(&b, &minter, 41).await;
}
on_both_databases!(jobs_queued_meanwhile_follow_the_resent_batch);

/// The reorg drops the confirmed mint and its new branch carries another issuer
/// transaction at that nonce (issuing a badge to one of the same wallets): the batch is
/// given up, its jobs are planned again at the next nonce (an update where the badge
/// already exists), and no nonce is skipped.
async fn a_confirmed_mint_whose_nonce_a_reorg_gave_away_is_planned_again(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..5 {
        b.activate(wallet(i), 2, expiry, "issue").await;
    }
    let minter = b.minter(b.config());
    let (_, block) = confirm_a_batch(&b, &minter).await;

    // Act: the new branch holds an outside issue of wallet 3 from the issuer key
    let call = MembershipBadge::issueCall { memberships: vec![Membership { wallet: wallet(3), tier: 1, expiresAt: expiry - 1 }] };
    let outside = TransactionRequest::default().with_from(b.issuer()).with_to(b.chain.deployment.badge).with_input(call.abi_encode()).with_gas_limit(300_000);
    reorg_from(&b, block, vec![(TransactionData::JSON(outside), 0)]).await;
    assert_eq!(b.on_chain(wallet(3)).await.1, 1, "the outside transaction took the nonce");
    let reports = b.drain(&minter).await;

    // Assert
    assert_eq!(reports.iter().map(|r| r.reorged_confirmed).sum::<usize>(), 1, "{reports:?}");
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_batches WHERE status = 'dropped'").await, 1);
    assert_eq!(b.on_chain(wallet(3)).await.1, 2, "planned again as an update");
    assert_eq!(b.events("badge.minted").await.len(), 5);
    assert_badges_match_the_database(&b).await;
    assert_no_nonce_gap(&b).await;
    a_later_job_goes_through(&b, &minter, 42).await;
}
on_both_databases!(a_confirmed_mint_whose_nonce_a_reorg_gave_away_is_planned_again);

/// The reorg mines the confirmed mint again in another block: it stays confirmed at its
/// new place, nothing is sent again.
async fn a_confirmed_mint_a_deep_reorg_mines_again_stays_confirmed(kind: DbKind) {
    // Arrange
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    for i in 0..5 {
        b.activate(wallet(i), 3, expiry, "issue").await;
    }
    let minter = b.minter(b.config());
    let (_, block) = confirm_a_batch(&b, &minter).await;
    let hash: Vec<u8> = sqlx::query("SELECT mined_tx_hash FROM badge_batches").fetch_one(b.db().pool()).await.unwrap().get(0);
    let raw = b.rpc.get_raw_transaction_by_hash(alloy::primitives::B256::from_slice(&hash)).await.unwrap().unwrap();

    // Act: the same transaction in the second block of the new branch
    reorg_from(&b, block, vec![(TransactionData::Raw(raw), 1)]).await;
    let reports = b.drain(&minter).await;

    // Assert
    assert_eq!(reports.iter().map(|r| r.reorged_confirmed + r.sent + r.rebroadcast).sum::<usize>(), 0, "{reports:?}");
    let row = sqlx::query("SELECT status, mined_block FROM badge_batches").fetch_one(b.db().pool()).await.unwrap();
    assert_eq!(row.get::<String, _>("status"), "confirmed");
    assert_eq!(row.get::<i64, _>("mined_block") as u64, block + 1, "recorded at its new place");
    assert_eq!(b.rpc.get_transaction_count(b.issuer()).latest().await.unwrap(), 1);
    assert_badges_match_the_database(&b).await;
    a_later_job_goes_through(&b, &minter, 43).await;
}
on_both_databases!(a_confirmed_mint_a_deep_reorg_mines_again_stays_confirmed);

/// A job that failed (as one does in a batch a deep reorg made revert) and waits for its
/// retry is superseded once a newer job for its wallet is sent: it never comes due after
/// it and puts the older state back on the badge.
async fn a_retried_job_never_puts_an_older_state_back(kind: DbKind) {
    // Arrange: a badge; an update that failed and waits for its retry
    let b = Bench::start(kind).await;
    let expiry = unix_now() as u64 + 86_400;
    b.activate(wallet(0), 1, expiry, "issue").await;
    let minter = b.minter(b.config());
    b.drain(&minter).await;
    b.activate(wallet(0), 2, expiry + 1_000, "update").await;
    sqlx::query("UPDATE badge_jobs SET status = 'failed', attempts = 1, next_attempt_at = $1 WHERE status = 'queued'")
        .bind(unix_now() + 2)
        .execute(b.db().pool())
        .await
        .unwrap();

    // Act: a newer update goes through; then the failed one's retry time passes
    b.activate(wallet(0), 3, expiry + 2_000, "update").await;
    b.drain(&minter).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    b.drain(&minter).await;

    // Assert
    assert_eq!(b.on_chain(wallet(0)).await, (U256::from_be_slice(wallet(0).as_slice()), 3, expiry + 2_000));
    assert_eq!(b.count("SELECT COUNT(*) FROM badge_jobs WHERE status = 'superseded'").await, 1);
    assert_badges_match_the_database(&b).await;
}
on_both_databases!(a_retried_job_never_puts_an_older_state_back);
