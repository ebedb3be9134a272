-- The badge minter (PostgreSQL flavour; sqlite/0002_minter.sql is the same schema).
--
-- A badge job goes queued -> sent -> mined -> confirmed. A job that fails is 'failed' and
-- retried after next_attempt_at with a growing backoff; 'superseded' when a later job for
-- the same wallet replaced it before it was sent; 'rejected' when it can never succeed.
ALTER TABLE badge_jobs ADD COLUMN new_wallet BYTEA;
ALTER TABLE badge_jobs ADD COLUMN batch_id BIGINT;
ALTER TABLE badge_jobs ADD COLUMN position BIGINT;
ALTER TABLE badge_jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE badge_jobs ADD COLUMN last_error TEXT;
ALTER TABLE badge_jobs ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE badge_jobs ADD COLUMN token_id BYTEA;
ALTER TABLE badge_jobs ADD COLUMN tx_hash BYTEA;
ALTER TABLE badge_jobs ADD COLUMN updated_at BIGINT;
CREATE INDEX badge_jobs_batch ON badge_jobs (batch_id);

-- One row per issuer nonce the minter used: the batch call it carries and the latest
-- signed version of it (raw bytes, so it can be re-broadcast exactly after a crash or a
-- node restart). Written before the transaction is broadcast.
CREATE TABLE badge_batches (
    id            BIGSERIAL PRIMARY KEY,
    chain_id      BIGINT NOT NULL,
    issuer        BYTEA    NOT NULL,
    nonce         BIGINT NOT NULL,
    call          TEXT    NOT NULL CHECK (call IN ('issue', 'update', 'revoke', 'move', 'noop')),
    input         BYTEA    NOT NULL,
    gas_limit     BIGINT NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('signed', 'sent', 'mined', 'confirmed', 'reverted', 'dropped')),
    bumps         BIGINT NOT NULL DEFAULT 0,
    max_fee       BYTEA    NOT NULL,
    priority_fee  BYTEA    NOT NULL,
    tx_hash       BYTEA    NOT NULL,
    raw_tx        BYTEA    NOT NULL,
    sent_at       BIGINT,
    mined_tx_hash BYTEA,
    mined_block   BIGINT,
    gas_used      BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX badge_batches_open_nonce ON badge_batches (chain_id, issuer, nonce)
    WHERE status IN ('signed', 'sent', 'mined');
CREATE INDEX badge_batches_status ON badge_batches (status, nonce);

-- Every signed version of a batch (the first and each fee-bumped replacement): any of
-- them may be the one that is mined.
CREATE TABLE badge_batch_txs (
    tx_hash       BYTEA    PRIMARY KEY,
    batch_id      BIGINT NOT NULL REFERENCES badge_batches (id),
    max_fee       BYTEA    NOT NULL,
    priority_fee  BYTEA    NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX badge_batch_txs_batch ON badge_batch_txs (batch_id);

-- The issuer nonce the minter will use next, per chain and issuer (reconciled with the
-- chain on start and on every nonce error).
CREATE TABLE minter_state (
    chain_id      BIGINT NOT NULL,
    issuer        BYTEA    NOT NULL,
    next_nonce    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (chain_id, issuer)
);
