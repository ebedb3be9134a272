-- The badge minter (SQLite flavour; postgres/0002_minter.sql is the same schema).
--
-- A badge job goes queued -> sent -> mined -> confirmed. A job that fails is 'failed' and
-- retried after next_attempt_at with a growing backoff; 'superseded' when a later job for
-- the same wallet replaced it before it was sent; 'rejected' when it can never succeed.
ALTER TABLE badge_jobs ADD COLUMN new_wallet BLOB;
ALTER TABLE badge_jobs ADD COLUMN batch_id INTEGER;
ALTER TABLE badge_jobs ADD COLUMN position INTEGER;
ALTER TABLE badge_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE badge_jobs ADD COLUMN last_error TEXT;
ALTER TABLE badge_jobs ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE badge_jobs ADD COLUMN token_id BLOB;
ALTER TABLE badge_jobs ADD COLUMN tx_hash BLOB;
ALTER TABLE badge_jobs ADD COLUMN updated_at INTEGER;
CREATE INDEX badge_jobs_batch ON badge_jobs (batch_id);

-- One row per issuer nonce the minter used: the batch call it carries and the latest
-- signed version of it (raw bytes, so it can be re-broadcast exactly after a crash or a
-- node restart). Written before the transaction is broadcast.
CREATE TABLE badge_batches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id      INTEGER NOT NULL,
    issuer        BLOB    NOT NULL,
    nonce         INTEGER NOT NULL,
    call          TEXT    NOT NULL CHECK (call IN ('issue', 'update', 'revoke', 'move', 'noop')),
    input         BLOB    NOT NULL,
    gas_limit     INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('signed', 'sent', 'mined', 'confirmed', 'reverted', 'dropped')),
    bumps         INTEGER NOT NULL DEFAULT 0,
    max_fee       BLOB    NOT NULL,
    priority_fee  BLOB    NOT NULL,
    tx_hash       BLOB    NOT NULL,
    raw_tx        BLOB    NOT NULL,
    sent_at       INTEGER,
    mined_tx_hash BLOB,
    mined_block   INTEGER,
    gas_used      INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX badge_batches_open_nonce ON badge_batches (chain_id, issuer, nonce)
    WHERE status IN ('signed', 'sent', 'mined');
CREATE INDEX badge_batches_status ON badge_batches (status, nonce);

-- Every signed version of a batch (the first and each fee-bumped replacement): any of
-- them may be the one that is mined.
CREATE TABLE badge_batch_txs (
    tx_hash       BLOB    PRIMARY KEY,
    batch_id      INTEGER NOT NULL REFERENCES badge_batches (id),
    max_fee       BLOB    NOT NULL,
    priority_fee  BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX badge_batch_txs_batch ON badge_batch_txs (batch_id);

-- The issuer nonce the minter will use next, per chain and issuer (reconciled with the
-- chain on start and on every nonce error).
CREATE TABLE minter_state (
    chain_id      INTEGER NOT NULL,
    issuer        BLOB    NOT NULL,
    next_nonce    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (chain_id, issuer)
);
