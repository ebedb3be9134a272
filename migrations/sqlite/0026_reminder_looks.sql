-- The reminder pass read every live plan ending 1 to 7 days ahead on every pass (every 30 s)
-- and looked each one up against its notice: ~16,000 lookups at 1,000,000 members, 10.7 ms
-- on SQLite and 49 ms on PostgreSQL for a pass with nothing to send (benches/growth.rs).
-- Now each pass remembers how far it looked (`reminder_looks`) and the next one reads only
-- the plans whose end crossed into a window since then and those written since then
-- (`updated_at`, this index), with a full look at least once an hour
-- (src/billing/reminders.rs says why both are enough).
CREATE INDEX subscriptions_updated ON subscriptions (updated_at);
CREATE TABLE reminder_looks (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    -- The offsets the look was made with (`7,1`): another set means a full look.
    offsets     TEXT    NOT NULL,
    -- The `now` of the last pass that committed, and of the last full look.
    looked_at   BIGINT  NOT NULL,
    full_at     BIGINT  NOT NULL
);
