-- Confirmed badge batches stay watched for reorgs deeper than the confirmations (PostgreSQL
-- flavour; sqlite/0020_minter_reorg.sql is the same schema).
--
-- mined_block_hash: the hash of the block the batch was seen mined in. While a confirmed
-- batch is within the reorg window below the head, the minter compares it with the
-- canonical chain's block at mined_block; a batch whose block is gone is sent again at its
-- nonce (or its jobs are queued again when another transaction took the nonce). NULL for
-- batches recorded before this column: they are checked by their receipt instead.
ALTER TABLE badge_batches ADD COLUMN mined_block_hash BYTEA;
-- The confirmed batches of one issuer by block, newest first (the per-tick check).
CREATE INDEX badge_batches_confirmed_block ON badge_batches (chain_id, issuer, mined_block)
    WHERE status = 'confirmed';
-- A wallet's jobs by id: a waiting job that a later one for its wallet, already sent or
-- confirmed, replaces is superseded before it is retried (an older state must not be put
-- back on the badge after a deep reorg made its batch revert).
CREATE INDEX badge_jobs_wallet ON badge_jobs (wallet, id);
