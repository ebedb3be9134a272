-- The watcher looks up payments still waiting for confirmations; confirmed ones (most of
-- them, and every one a backfill records already deep) no longer need an entry, so the
-- index keeps only the detected ones. The checkout routes find an order's payment by
-- matched_order, which had no index (a scan of every payment per checkout read).
-- The same schema on SQLite and PostgreSQL.
DROP INDEX payments_detected;
CREATE INDEX payments_detected ON payments (chain_id, block_number) WHERE status = 'detected';
CREATE INDEX payments_matched_order ON payments (matched_order) WHERE matched_order IS NOT NULL;
