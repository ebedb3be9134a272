-- The payment behind a badge job (same schema on SQLite and PostgreSQL): its on-chain
-- order id, its checkout id and its transaction, carried into the job's badge.* event so a
-- merchant's app needs no join to payment.confirmed. NULL for jobs no payment caused
-- (member management, card payments, downgrades taking effect).
ALTER TABLE badge_jobs ADD COLUMN cause_order_id TEXT;
ALTER TABLE badge_jobs ADD COLUMN cause_checkout_id TEXT;
ALTER TABLE badge_jobs ADD COLUMN cause_tx_hash BLOB;
