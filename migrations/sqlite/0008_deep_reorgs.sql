-- Reorgs deeper than the confirmations (the same schema on SQLite and PostgreSQL).
--
-- A confirmed payment that a reorg removes keeps what it bought while the watcher waits to
-- see whether the chain mines it again: its row is `reorged` with `orphaned_at` set (and
-- `confirmed_at` kept, which is how a payment that was once confirmed is told apart). Mined
-- again, the same row moves to its new block and log index and keeps its effects; not mined
-- again by the time the new branch is N deep where it stood, its effects are taken back
-- (`payment_reversals` keeps what was undone), `revision` counts up so a later payment of
-- the same transaction activates afresh with new event ids, and its order opens again.
ALTER TABLE payments ADD COLUMN orphaned_at INTEGER;
ALTER TABLE payments ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- One confirmed payment per *matched* order: a log for an order another transaction has
-- already paid is recorded unmatched (and reported) instead of stopping the watcher on
-- this index.
DROP INDEX payments_one_confirmed_per_order;
CREATE UNIQUE INDEX payments_one_confirmed_per_order ON payments (chain_id, matched_order)
    WHERE status = 'confirmed' AND matched_order IS NOT NULL;

-- Reorged rows, looked up by transaction when their logs come back.
CREATE INDEX payments_reorged ON payments (chain_id, tx_hash) WHERE status = 'reorged';

-- The subscription before an upgrade (JSON), so taking the upgrade back can restore it.
ALTER TABLE activations ADD COLUMN previous TEXT;

-- What taking back a vanished payment's effects undid: its activation, and the
-- subscription's expiry before and after.
CREATE TABLE payment_reversals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id      INTEGER NOT NULL REFERENCES payments (id),
    revision        INTEGER NOT NULL,
    wallet          BLOB    NOT NULL,
    kind            TEXT,
    plan_id         INTEGER,
    activated_expires_at INTEGER,
    expires_before  INTEGER,
    expires_after   INTEGER,
    reason          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (payment_id, revision)
);
