-- Two looks at subscriptions searched `subscriptions_expiry` from the beginning of time and
-- so read every plan that had ever ended: the reminder pass's look for ended plans (status
-- in the live ones, expires_at up to now) and the look for due downgrades that the reminder
-- pass and every watcher pass make (a scheduled plan, expires_at up to now). Measured with
-- benches/growth.rs: a pass with nothing to do took 2.5 ms at 10,000 members and 28 ms at
-- 100,000 on SQLite. With these, each reads only the live or scheduled plans in its range.
CREATE INDEX subscriptions_status_expiry ON subscriptions (status, expires_at);
CREATE INDEX subscriptions_scheduled_expiry ON subscriptions (expires_at) WHERE next_plan_id IS NOT NULL;
