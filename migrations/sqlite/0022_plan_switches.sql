-- A member's scheduled switch (SQLite flavour; postgres/0022_plan_switches.sql is the same
-- schema): the plan (another period of the same tier, or a lower tier) and the token the
-- next renewal buys, from the end of the current period. Nothing is paid when it is set and
-- nothing changes before that end; the account page's renewal, the reminders' renewal plan
-- and automatic renewal read it. The member undoes it by deleting the row.
--
-- for_expires_at: the period end it was scheduled for. A payment that moves the end (or
-- buys the lower plan itself) settles it: a row whose for_expires_at is not the
-- subscription's expires_at is no longer in force and is never shown or used.
CREATE TABLE plan_switches (
    wallet         BLOB    PRIMARY KEY,
    plan_id        INTEGER NOT NULL,
    token          TEXT    NOT NULL,
    for_expires_at INTEGER NOT NULL,
    requested_at   INTEGER NOT NULL
);
