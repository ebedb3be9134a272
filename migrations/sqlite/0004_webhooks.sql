-- Outgoing webhooks and reminders (SQLite flavour; postgres/0004_webhooks.sql is the same
-- schema). Times in milliseconds where retries need them (`*_ms`), else unix seconds.

-- A merchant's receiving endpoint. The secret signs deliveries; during a rotation the
-- previous secret signs too, until previous_secret_until. event_types is a JSON array of
-- event names, or NULL for every event. from_seq: the endpoint receives events from this
-- outbox position on (events written after it was registered).
CREATE TABLE webhook_endpoints (
    id            TEXT    PRIMARY KEY,
    url           TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    secret        TEXT    NOT NULL,
    previous_secret TEXT,
    previous_secret_until INTEGER,
    event_types   TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    from_seq      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    deleted_at    INTEGER
);

-- Whether an event has been fanned out into deliveries. A flag, not a cursor over seq: on
-- PostgreSQL a transaction can commit a lower seq after a higher one, and a cursor would
-- skip it.
ALTER TABLE outbox_events ADD COLUMN fanned_out INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_events_unfanned ON outbox_events (seq) WHERE fanned_out = 0;

-- One event for one endpoint. An endpoint's pending deliveries go out strictly in id order
-- (ordered per endpoint): the next waits until the one before it is delivered or given up.
-- status: pending -> delivered | failed (schedule exhausted) | canceled (endpoint deleted).
-- A redelivery is a new row with the same event (the same webhook-id).
CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id   TEXT    NOT NULL REFERENCES webhook_endpoints (id),
    event_seq     INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    finished_ms   INTEGER,
    last_status   INTEGER,
    last_error    TEXT
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

-- Every attempt: what the endpoint answered (or why there was no answer) and how fast.
CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries (id),
    endpoint_id   TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    attempted_ms  INTEGER NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    response_excerpt TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

-- Reminders and expiry notices sent, one per subscription period and kind
-- ('expiring_7d', 'expired', …): the key that makes each exactly once.
CREATE TABLE subscription_notices (
    wallet        BLOB    NOT NULL,
    period_end    INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (wallet, period_end, kind)
);
CREATE INDEX subscriptions_expiry ON subscriptions (expires_at);
