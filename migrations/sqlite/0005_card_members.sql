-- Card payments in and member management (SQLite flavour; postgres/0005_card_members.sql
-- is the same schema). Unix times in seconds.

-- Every card-processor event handled, keyed by the processor's event id: inserted in the
-- transaction that applies the event, which is what makes each event apply exactly once.
-- outcome: what it did (`trialing`, `activated`, `renewed`, `canceled`, `ignored`, …).
CREATE TABLE card_events (
    event_id      TEXT    PRIMARY KEY,
    event_type    TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    wallet        BLOB,
    received_at   INTEGER NOT NULL
);

-- A card subscription (the processor's `sub_…` id) and the wallet and plan it pays for.
CREATE TABLE card_subscriptions (
    card_subscription_id TEXT PRIMARY KEY,
    wallet        BLOB    NOT NULL,
    plan_id       INTEGER NOT NULL,
    customer      TEXT,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'canceled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX card_subscriptions_wallet ON card_subscriptions (wallet);

-- Comp time, kept apart from paid time: comp_seconds is the comped part of the current
-- expiry (an upgrade credits only the paid part at a price), and each grant is in the
-- ledger with who got how much and why.
ALTER TABLE subscriptions ADD COLUMN comp_seconds INTEGER NOT NULL DEFAULT 0;
CREATE TABLE comp_grants (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet        BLOB    NOT NULL,
    days          INTEGER NOT NULL,
    seconds       INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    old_expires_at INTEGER NOT NULL,
    new_expires_at INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX comp_grants_wallet ON comp_grants (wallet, id);

-- Refunds of on-chain payments (made outside the service; recorded here). The payment's
-- status stays `confirmed`: the payment happened, refunded_at says it was given back.
ALTER TABLE payments ADD COLUMN refunded_at INTEGER;
ALTER TABLE payments ADD COLUMN refund_note TEXT;
