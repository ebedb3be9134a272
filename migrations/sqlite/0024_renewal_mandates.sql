-- Automatic renewal (SQLite flavour; postgres/0024_renewal_mandates.sql is the same schema).
--
-- renewal_mandates: the EIP-712 RenewalMandate a member signed (every field, as signed, and
-- the signature), keyed by its digest, the id the checkout contract knows it by. status:
-- 'active' (the renewer charges it), 'off' (the member turned it off), 'ended' (it can never
-- be charged again: ended_reason is revoked, expired, exhausted or price_above_cap), or
-- 'replaced' (a newer mandate of the wallet took over). At most one active per wallet.
CREATE TABLE renewal_mandates (
    mandate_id   BLOB    PRIMARY KEY,
    wallet       BLOB    NOT NULL,
    token        BLOB    NOT NULL,
    max_amount   BLOB    NOT NULL,
    period_secs  INTEGER NOT NULL,
    max_charges  INTEGER NOT NULL,
    start_at     INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL,
    early_window INTEGER NOT NULL,
    plan_id      INTEGER NOT NULL,
    salt         BLOB    NOT NULL,
    signature    BLOB    NOT NULL,
    status       TEXT    NOT NULL,
    ended_reason TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX renewal_mandates_active ON renewal_mandates (wallet) WHERE status = 'active';

-- renewal_charges: the renewer's record of one mandate period (period_index k: the period
-- that begins at start_at + k * period_secs): the order and transaction of its last attempt,
-- how many attempts, the last failure, when to try next. The chain decides whether the
-- period was charged (the mandate's state on the contract); this row only paces attempts,
-- so a crash between sending and recording at worst sends a second charge the contract
-- refuses (one charge per period). preflight_at: when the member was told of the coming
-- charge (and of any reason it would fail), once per period.
CREATE TABLE renewal_charges (
    mandate_id      BLOB    NOT NULL,
    period_index    INTEGER NOT NULL,
    order_id        INTEGER,
    tx_hash         BLOB,
    sent_at         INTEGER,
    attempts        INTEGER NOT NULL,
    last_reason     TEXT,
    next_attempt_at INTEGER NOT NULL,
    preflight_at    INTEGER,
    charged         INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (mandate_id, period_index)
);
