-- What a subscription's paid time is worth (same schema on SQLite and PostgreSQL).
--
-- subscriptions.paid_micro / paid_seconds: the lowest price per second, as the exact
-- fraction micro-dollars / seconds, among the payments whose time the subscription still
-- runs on. An upgrade credits the unused paid time at this rate, so the credit is never
-- worth more than what was actually paid for it (README "Upgrade credit"). NULL on rows
-- written before: those are credited at their current plan's list price, as before.
ALTER TABLE subscriptions ADD COLUMN paid_micro BIGINT;
ALTER TABLE subscriptions ADD COLUMN paid_seconds BIGINT;

-- card_grants: the time each card payment bought, so a refund or dispute at the processor
-- takes back what it paid for (README "Card payments"). Found by the payment intent, the
-- invoice or the charge a refund or dispute names. refunded_cents / disputed_cents: what
-- was refunded or is in dispute so far (the processor's amounts are cumulative);
-- taken_seconds / disputed_seconds: the time taken back for them.
CREATE TABLE card_grants (
    card_event      TEXT    PRIMARY KEY,
    wallet          BLOB    NOT NULL,
    payment_intent  TEXT,
    invoice         TEXT,
    charge          TEXT,
    collected_cents BIGINT  NOT NULL,
    seconds         BIGINT  NOT NULL,
    refunded_cents  BIGINT  NOT NULL DEFAULT 0,
    taken_seconds   BIGINT  NOT NULL DEFAULT 0,
    disputed_cents  BIGINT  NOT NULL DEFAULT 0,
    disputed_seconds BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX card_grants_payment_intent ON card_grants (payment_intent);
CREATE INDEX card_grants_invoice ON card_grants (invoice);
CREATE INDEX card_grants_charge ON card_grants (charge);
