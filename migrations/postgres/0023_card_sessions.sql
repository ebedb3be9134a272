-- card_sessions: the Checkout Sessions the service created at the card processor (issue 28
-- §2: "Pay by card" on the checkout page, and a member's switch from crypto to card). Kept
-- so the session's `checkout.session.completed` is judged by what the service asked for,
-- not only by what the event says: a switch starts the card subscription at the end of
-- the paid crypto time (`trial_end`), so its session completes with nothing paid, and that
-- must neither grant time nor count as the wallet's one card trial.
-- purpose: 'checkout' (the checkout page) or 'switch' (from crypto, deferred start).
CREATE TABLE card_sessions (
    session_id  TEXT   PRIMARY KEY,
    wallet      BYTEA  NOT NULL,
    plan_id     BIGINT NOT NULL,
    purpose     TEXT   NOT NULL CHECK (purpose IN ('checkout', 'switch')),
    trial_end   BIGINT,
    trial_days  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX card_sessions_wallet ON card_sessions (wallet, created_at);
