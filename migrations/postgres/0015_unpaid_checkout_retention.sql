-- Retention of unpaid checkouts (issue 26 §5; the same schema on SQLite and PostgreSQL).
--
-- The pruning pass (billing::retention) looks for orders still open whose quote's deadline
-- passed more than `retention.unpaid_checkouts_days` ago, oldest deadline first, a bounded
-- batch at a time. This index holds open orders only (a paid order leaves it), so that
-- read touches just the rows it returns instead of scanning every order ever sold, and a
-- new order appends near its right edge (deadlines grow with time).
CREATE INDEX orders_open_deadline ON orders (deadline, order_id) WHERE status = 'open';
