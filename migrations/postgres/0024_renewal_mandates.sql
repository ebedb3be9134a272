-- Automatic renewal (PostgreSQL flavour; sqlite/0024_renewal_mandates.sql is the same schema).
--
-- renewal_mandates: the EIP-712 RenewalMandate a member signed (every field, as signed, and
-- the signature), keyed by its digest, the id the checkout contract knows it by. status:
-- 'active' (the renewer charges it), 'off' (the member turned it off), 'ended' (it can never
-- be charged again: ended_reason is revoked, expired, exhausted or price_above_cap), or
-- 'replaced' (a newer mandate of the wallet took over). At most one active per wallet.
CREATE TABLE renewal_mandates (
    mandate_id   BYTEA   PRIMARY KEY,
    wallet       BYTEA   NOT NULL,
    token        BYTEA   NOT NULL,
    max_amount   BYTEA   NOT NULL,
    period_secs  BIGINT  NOT NULL,
    max_charges  BIGINT  NOT NULL,
    start_at     BIGINT  NOT NULL,
    valid_until  BIGINT  NOT NULL,
    early_window BIGINT  NOT NULL,
    plan_id      BIGINT  NOT NULL,
    salt         BYTEA   NOT NULL,
    signature    BYTEA   NOT NULL,
    status       TEXT    NOT NULL,
    ended_reason TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
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
    mandate_id      BYTEA   NOT NULL,
    period_index    BIGINT  NOT NULL,
    order_id        BIGINT,
    tx_hash         BYTEA,
    sent_at         BIGINT,
    attempts        BIGINT  NOT NULL,
    last_reason     TEXT,
    next_attempt_at BIGINT  NOT NULL,
    preflight_at    BIGINT,
    charged         BIGINT  NOT NULL DEFAULT 0,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (mandate_id, period_index)
);
