-- Card billing (PostgreSQL flavour; sqlite/0009_card_billing.sql is the same schema).
--
-- 1. Subscriptions gain the status 'past_due': a card renewal failed; access runs to
--    expires_at, a later paid renewal makes it 'active' again, the end of the period
--    'expired'. (SQLite rebuilds the table for this; PostgreSQL swaps the constraint.)
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check
    CHECK (status IN ('trialing', 'active', 'past_due', 'expired', 'canceled'));

-- 2. Card trials given, one row per wallet ever: a wallet gets at most one trial. Filled
--    from what was recorded before: every card event that started a trial, and every
--    subscription trialing now.
CREATE TABLE card_trials (
    wallet        BYTEA   PRIMARY KEY,
    plan_id       BIGINT,
    card_event    TEXT,
    started_at    BIGINT NOT NULL
);
INSERT INTO card_trials (wallet, started_at)
    SELECT wallet, MIN(received_at) FROM card_events WHERE outcome = 'trialing' AND wallet IS NOT NULL GROUP BY wallet;
INSERT INTO card_trials (wallet, plan_id, started_at)
    SELECT wallet, plan_id, started_at FROM subscriptions WHERE status = 'trialing'
    ON CONFLICT (wallet) DO NOTHING;
