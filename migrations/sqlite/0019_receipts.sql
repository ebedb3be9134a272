-- Receipts and credit notes (same schema on SQLite and PostgreSQL).
-- receipt_numbers: the merchant's one gap-free sequence of documents. A document takes the
-- next number with an UPDATE of this row in the transaction that issues it, so a
-- transaction that rolls back gives its number back (nothing is skipped) and concurrent
-- issuers queue on the row (no number is taken twice).
-- receipts: one row per document, a snapshot of what it says when issued (plan name,
-- token symbol and decimals, the merchant's details are read from the configuration when
-- shown). kind: receipt | credit_note. A credit note names the receipt it credits
-- (credits) and why (reason: reorged | refunded); a receipt a credit note cancels in full
-- names it (cancelled_by). payment_id: the on-chain payment (payments.id); card_grant:
-- the card event that granted the paid time (card_grants.event_id). Buyer details are the
-- member's own, added once per receipt (and kept in buyer_details for the next ones).
CREATE TABLE receipt_numbers (
    series  TEXT    PRIMARY KEY,
    last    BIGINT  NOT NULL
);
INSERT INTO receipt_numbers (series, last) VALUES ('documents', 0);
CREATE TABLE receipts (
    id              TEXT    PRIMARY KEY,
    number          BIGINT  NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    credits         TEXT,
    reason          TEXT,
    cancelled_by    TEXT,
    wallet          BLOB   NOT NULL,
    customer_ref    TEXT,
    plan_id         BIGINT  NOT NULL,
    plan_name       TEXT    NOT NULL,
    periods         BIGINT  NOT NULL,
    period_start    BIGINT  NOT NULL,
    period_end      BIGINT  NOT NULL,
    payment_id      BIGINT,
    chain_id        BIGINT,
    tx_hash         BLOB,
    block_number    BIGINT,
    token           BLOB,
    token_symbol    TEXT,
    token_decimals  BIGINT,
    amount          TEXT,
    card_grant      TEXT,
    card_payment    TEXT,
    cents           BIGINT,
    currency        TEXT,
    usd_micro       BIGINT,
    rate_usd        TEXT,
    buyer_name      TEXT,
    buyer_address   TEXT,
    buyer_tax_id    TEXT,
    issued_at       BIGINT  NOT NULL
);
CREATE INDEX receipts_wallet ON receipts (wallet, number);
CREATE INDEX receipts_payment ON receipts (payment_id);
CREATE INDEX receipts_card_grant ON receipts (card_grant);
CREATE TABLE buyer_details (
    wallet      BLOB   PRIMARY KEY,
    name        TEXT,
    address     TEXT,
    tax_id      TEXT,
    updated_at  BIGINT  NOT NULL
);
