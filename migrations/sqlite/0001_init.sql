-- tmai-pay schema, SQLite flavour (postgres/0001_init.sql is the same schema).
-- Chain values keep their exact types as fixed-width big-endian bytes: addresses 20 bytes,
-- hashes 32 bytes, uint256 amounts and order ids 32 bytes. Unix times are seconds.

-- Orders: one per issued quote. order_id is the on-chain Quote.orderId, assigned in
-- sequence; checkout_id is the public, unguessable id.
CREATE TABLE orders (
    order_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    checkout_id   TEXT    NOT NULL UNIQUE,
    chain_id      INTEGER NOT NULL,
    payer         BLOB    NOT NULL,
    token         BLOB    NOT NULL,
    amount        BLOB    NOT NULL,
    plan_id       INTEGER NOT NULL,
    periods       INTEGER NOT NULL,
    deadline      INTEGER NOT NULL,
    signature     BLOB    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'expired')),
    created_at    INTEGER NOT NULL
);

-- The watcher's position: the next block to read, per chain.
CREATE TABLE chain_cursor (
    chain_id      INTEGER PRIMARY KEY,
    next_block    INTEGER NOT NULL
);

-- Recent canonical blocks, to detect reorgs by comparing hashes with the node.
CREATE TABLE chain_blocks (
    chain_id      INTEGER NOT NULL,
    number        INTEGER NOT NULL,
    hash          BLOB    NOT NULL,
    parent_hash   BLOB    NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- OrderPaid logs. A log is one row, keyed by (chain, tx, log index); a reorg marks it
-- reorged, and its re-inclusion turns it back to detected in its new block.
CREATE TABLE payments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id      INTEGER NOT NULL,
    tx_hash       BLOB    NOT NULL,
    log_index     INTEGER NOT NULL,
    block_number  INTEGER NOT NULL,
    block_hash    BLOB    NOT NULL,
    order_id      BLOB    NOT NULL,
    payer         BLOB    NOT NULL,
    token         BLOB    NOT NULL,
    amount        BLOB    NOT NULL,
    plan_id       INTEGER NOT NULL,
    periods       INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('detected', 'confirmed', 'reorged')),
    matched_order INTEGER REFERENCES orders (order_id),
    unmatched_reason TEXT,
    detected_at   INTEGER NOT NULL,
    confirmed_at  INTEGER,
    UNIQUE (chain_id, tx_hash, log_index)
);
CREATE UNIQUE INDEX payments_one_confirmed_per_order ON payments (chain_id, order_id) WHERE status = 'confirmed';
CREATE INDEX payments_detected ON payments (chain_id, status, block_number);

-- One subscription per wallet.
CREATE TABLE subscriptions (
    wallet        BLOB    PRIMARY KEY,
    plan_id       INTEGER NOT NULL,
    tier          INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('trialing', 'active', 'expired', 'canceled')),
    started_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    next_plan_id  INTEGER,
    next_expires_at INTEGER,
    updated_at    INTEGER NOT NULL
);

-- What each confirmed payment did to a subscription: at most one row per payment, which
-- is what makes activation exactly-once.
CREATE TABLE activations (
    payment_id    INTEGER PRIMARY KEY REFERENCES payments (id),
    wallet        BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    plan_id       INTEGER NOT NULL,
    old_expires_at INTEGER,
    new_expires_at INTEGER NOT NULL,
    credit_seconds INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Badge work for the minter.
CREATE TABLE badge_jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet        BLOB    NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('issue', 'update', 'revoke', 'move')),
    tier          INTEGER,
    expires_at    INTEGER,
    status        TEXT    NOT NULL DEFAULT 'queued',
    created_at    INTEGER NOT NULL
);
CREATE INDEX badge_jobs_status ON badge_jobs (status, id);

-- The outbox: every state change as an event with a stable id, written in the same
-- transaction as the change. seq gives the order.
CREATE TABLE outbox_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    event_type    TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
