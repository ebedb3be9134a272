-- Card billing (SQLite flavour; postgres/0009_card_billing.sql is the same schema).
--
-- 1. Subscriptions gain the status 'past_due': a card renewal failed; access runs to
--    expires_at, a later paid renewal makes it 'active' again, the end of the period
--    'expired'. SQLite cannot change a CHECK constraint in place, so the table is rebuilt
--    as its documented procedure does (create the new table, copy, drop, rename, recreate
--    the indexes), here inside the migration's own transaction: sqlx 0.8's SQLite migrator
--    runs every migration in a transaction (it ignores `-- no-transaction`, which only its
--    PostgreSQL migrator honours), and `PRAGMA foreign_keys = OFF` is a no-op inside one.
--    Neither is needed: no table references subscriptions (checked below) and
--    subscriptions references none, so dropping it fires no foreign-key action.
--
--    The guards below stop the migration (and so the start-up) instead of silently losing
--    something if the schema has moved on since this was written: a foreign key pointing
--    at subscriptions, a trigger or view on it, or an index other than subscriptions_expiry
--    (the rebuild would drop them), or a column added to it (`SELECT *` into the new table
--    then fails on the column count). A CHECK on a scratch table is the only way plain
--    SQLite SQL has to fail a statement on a condition.
CREATE TEMP TABLE migration_0009_guard (
    what TEXT NOT NULL,
    found INTEGER NOT NULL CONSTRAINT "migration 0009 would drop something on subscriptions: see its guards" CHECK (found = 0)
);
INSERT INTO migration_0009_guard
    SELECT 'foreign keys referencing subscriptions', COUNT(*)
    FROM sqlite_master m, pragma_foreign_key_list(m.name) f
    WHERE m.type = 'table' AND f."table" = 'subscriptions';
INSERT INTO migration_0009_guard
    SELECT 'indexes, triggers or views on subscriptions this rebuild does not recreate', COUNT(*)
    FROM sqlite_master
    WHERE tbl_name = 'subscriptions' AND type IN ('index', 'trigger', 'view') AND sql IS NOT NULL
      AND name <> 'subscriptions_expiry';
DROP TABLE migration_0009_guard;

-- The columns in the order the table has them (comp_seconds came last, in 0005).
CREATE TABLE subscriptions_0009 (
    wallet        BLOB    PRIMARY KEY,
    plan_id       INTEGER NOT NULL,
    tier          INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'expired', 'canceled')),
    started_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    next_plan_id  INTEGER,
    next_expires_at INTEGER,
    updated_at    INTEGER NOT NULL,
    comp_seconds  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO subscriptions_0009 SELECT * FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_0009 RENAME TO subscriptions;
CREATE INDEX subscriptions_expiry ON subscriptions (expires_at);

-- 2. Card trials given, one row per wallet ever: a wallet gets at most one trial. Filled
--    from what was recorded before: every card event that started a trial, and every
--    subscription trialing now.
CREATE TABLE card_trials (
    wallet        BLOB    PRIMARY KEY,
    plan_id       INTEGER,
    card_event    TEXT,
    started_at    INTEGER NOT NULL
);
INSERT INTO card_trials (wallet, started_at)
    SELECT wallet, MIN(received_at) FROM card_events WHERE outcome = 'trialing' AND wallet IS NOT NULL GROUP BY wallet;
INSERT INTO card_trials (wallet, plan_id, started_at)
    SELECT wallet, plan_id, started_at FROM subscriptions WHERE status = 'trialing'
    ON CONFLICT (wallet) DO NOTHING;
