-- Plans priced in US dollars (issue 19): the market rate a quote's amount was priced at is
-- locked with its order, so receipts, webhooks and the payments list show the USD value
-- at that rate. NULL for orders priced in tokens.
ALTER TABLE orders ADD COLUMN usd_micro BIGINT;
ALTER TABLE orders ADD COLUMN rate_usd TEXT;
ALTER TABLE orders ADD COLUMN rate_source TEXT;
ALTER TABLE orders ADD COLUMN rate_at BIGINT;
