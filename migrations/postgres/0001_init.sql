-- tmai-pay schema, PostgreSQL flavour (sqlite/0001_init.sql is the same schema).
-- Chain values keep their exact types as fixed-width big-endian bytes: addresses 20 bytes,
-- hashes 32 bytes, uint256 amounts and order ids 32 bytes. Unix times are seconds.

-- Orders: one per issued quote. order_id is the on-chain Quote.orderId, assigned in
-- sequence; checkout_id is the public, unguessable id.
CREATE TABLE orders (
    order_id      BIGSERIAL PRIMARY KEY,
    checkout_id   TEXT    NOT NULL UNIQUE,
    chain_id      BIGINT NOT NULL,
    payer         BYTEA    NOT NULL,
    token         BYTEA    NOT NULL,
    amount        BYTEA    NOT NULL,
    plan_id       BIGINT NOT NULL,
    periods       BIGINT NOT NULL,
    deadline      BIGINT NOT NULL,
    signature     BYTEA    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'expired')),
    created_at    BIGINT NOT NULL
);

-- The watcher's position: the next block to read, per chain.
CREATE TABLE chain_cursor (
    chain_id      BIGINT PRIMARY KEY,
    next_block    BIGINT NOT NULL
);

-- Recent canonical blocks, to detect reorgs by comparing hashes with the node.
CREATE TABLE chain_blocks (
    chain_id      BIGINT NOT NULL,
    number        BIGINT NOT NULL,
    hash          BYTEA    NOT NULL,
    parent_hash   BYTEA    NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- OrderPaid logs. A log is one row, keyed by (chain, tx, log index); a reorg marks it
-- reorged, and its re-inclusion turns it back to detected in its new block.
CREATE TABLE payments (
    id            BIGSERIAL PRIMARY KEY,
    chain_id      BIGINT NOT NULL,
    tx_hash       BYTEA    NOT NULL,
    log_index     BIGINT NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    BYTEA    NOT NULL,
    order_id      BYTEA    NOT NULL,
    payer         BYTEA    NOT NULL,
    token         BYTEA    NOT NULL,
    amount        BYTEA    NOT NULL,
    plan_id       BIGINT NOT NULL,
    periods       BIGINT NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('detected', 'confirmed', 'reorged')),
    matched_order BIGINT REFERENCES orders (order_id),
    unmatched_reason TEXT,
    detected_at   BIGINT NOT NULL,
    confirmed_at  BIGINT,
    UNIQUE (chain_id, tx_hash, log_index)
);
CREATE UNIQUE INDEX payments_one_confirmed_per_order ON payments (chain_id, order_id) WHERE status = 'confirmed';
CREATE INDEX payments_detected ON payments (chain_id, status, block_number);

-- One subscription per wallet.
CREATE TABLE subscriptions (
    wallet        BYTEA    PRIMARY KEY,
    plan_id       BIGINT NOT NULL,
    tier          BIGINT NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('trialing', 'active', 'expired', 'canceled')),
    started_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    next_plan_id  BIGINT,
    next_expires_at BIGINT,
    updated_at    BIGINT NOT NULL
);

-- What each confirmed payment did to a subscription: at most one row per payment, which
-- is what makes activation exactly-once.
CREATE TABLE activations (
    payment_id    BIGINT PRIMARY KEY REFERENCES payments (id),
    wallet        BYTEA    NOT NULL,
    kind          TEXT    NOT NULL,
    plan_id       BIGINT NOT NULL,
    old_expires_at BIGINT,
    new_expires_at BIGINT NOT NULL,
    credit_seconds BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Badge work for the minter.
CREATE TABLE badge_jobs (
    id            BIGSERIAL PRIMARY KEY,
    wallet        BYTEA    NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('issue', 'update', 'revoke', 'move')),
    tier          BIGINT,
    expires_at    BIGINT,
    status        TEXT    NOT NULL DEFAULT 'queued',
    created_at    BIGINT NOT NULL
);
CREATE INDEX badge_jobs_status ON badge_jobs (status, id);

-- The outbox: every state change as an event with a stable id, written in the same
-- transaction as the change. seq gives the order.
CREATE TABLE outbox_events (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    event_type    TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at    BIGINT NOT NULL
);
