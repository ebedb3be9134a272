//! SQL that both implementations of a pass run (`$n` numbered in the order they appear,
//! so rusqlite binds them by position as sqlx does). States are bound parameters, from
//! [`crate::states::PaymentStatus`]: the comment on each statement says which values it
//! takes.

use super::PAYMENT_COLUMNS;

/// The payments a roll-back above `$2` reaches (`$3`, `$4`: detected, confirmed).
pub(super) fn rolled_back() -> String {
    format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE chain_id = $1 AND block_number > $2 AND status IN ($3, $4) \
         ORDER BY block_number, log_index"
    )
}

/// Marks them reorged (`$1`); one that was confirmed is orphaned at `$2` and keeps its
/// confirmation time (and its effects). `$5`, `$6`: detected, confirmed.
pub(super) const ROLL_BACK: &str = "UPDATE payments SET status = $1, \
    orphaned_at = CASE WHEN confirmed_at IS NULL THEN NULL ELSE $2 END \
    WHERE chain_id = $3 AND block_number > $4 AND status IN ($5, $6)";

/// The blocks a roll-back above `$2` forgets.
pub(super) const FORGET_BLOCKS_ABOVE: &str = "DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2";

/// Whether chain `$1` holds any reorged payment (`$2`: reorged).
pub(super) const ANY_REORGED: &str = "SELECT 1 FROM payments WHERE chain_id = $1 AND status = $2";

/// The reorged (`$2`) payments of one transaction (`= $3`, or an `IN` list appended on
/// the set-based path).
pub(super) fn reorged_of(tail: &str) -> String {
    format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE chain_id = $1 AND status = $2 AND tx_hash {tail}")
}

/// Takes a moved row off its `(chain, tx, log index)` key for the moment.
pub(super) const PARK: &str = "UPDATE payments SET log_index = -1 - id WHERE id = $1";

/// Puts a moved row where the chain holds its log now.
pub(super) const RELOCATE: &str = "UPDATE payments SET status = $1, confirmed_at = $2, orphaned_at = NULL, \
    log_index = $3, block_number = $4, block_hash = $5 WHERE id = $6";

/// The transaction of the confirmed (`$3`) payment of one order.
pub(super) const PAID_BY_ONE: &str = "SELECT tx_hash FROM payments WHERE chain_id = $1 AND matched_order = $2 AND status = $3";

/// Orphaned payments (`$2`: reorged) whose old block the new branch has made `N` deep.
pub(super) fn orphans_up_to() -> String {
    format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE chain_id = $1 AND status = $2 AND orphaned_at IS NOT NULL \
         AND block_number <= $3 ORDER BY block_number, log_index"
    )
}

/// The detected (`$2`) payments at or below block `$3`, in chain order.
pub(super) fn detected_up_to() -> String {
    format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE chain_id = $1 AND status = $2 AND block_number <= $3 \
         ORDER BY block_number, log_index"
    )
}

/// What a take-back undid (`$9`: the reason, the payment's state that caused it).
pub(super) const RECORD_REVERSAL: &str = "INSERT INTO payment_reversals (payment_id, revision, wallet, kind, plan_id, \
    activated_expires_at, expires_before, expires_after, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A taken-back payment: a new revision, never confirmed on the chain as it is now.
pub(super) const FORGET_CONFIRMATION: &str = "UPDATE payments SET revision = revision + 1, confirmed_at = NULL, orphaned_at = NULL WHERE id = $1";

/// The columns a payment is recorded with.
pub(super) const INSERT_PAYMENT: &str = "INSERT INTO payments (chain_id, tx_hash, log_index, block_number, block_hash, order_id, payer, \
    token, amount, plan_id, periods, status, matched_order, unmatched_reason, detected_at, confirmed_at)";

/// The watcher's cursor on chain `$1`.
pub(super) const CURSOR: &str = "SELECT next_block FROM chain_cursor WHERE chain_id = $1";

/// Moves the cursor of chain `$1` to `$2`.
pub(super) const SET_CURSOR: &str =
    "INSERT INTO chain_cursor (chain_id, next_block) VALUES ($1, $2) ON CONFLICT (chain_id) DO UPDATE SET next_block = excluded.next_block";

/// The columns a recent block is stored with.
pub(super) const SAVE_BLOCK_HEAD: &str = "INSERT INTO chain_blocks (chain_id, number, hash, parent_hash)";

/// How a stored block is replaced.
pub(super) const SAVE_BLOCK_TAIL: &str = "ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash";

/// The blocks of chain `$1` below `$2`, forgotten.
pub(super) const FORGET_BLOCKS_BELOW: &str = "DELETE FROM chain_blocks WHERE chain_id = $1 AND number < $2";
