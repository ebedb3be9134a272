-- The merchant's own customer on each purchase (same schema on SQLite and PostgreSQL).
-- orders.customer_ref: the reference the checkout was created with (the merchant's user id,
-- 1-64 characters of A-Z a-z 0-9 _ : @ -), kept with the order and put into the
-- checkout.* and payment.* events it causes.
-- customers: the reference a wallet's membership belongs to, bound by the first confirmed
-- payment (or card event) that carried one and never changed by a later one: the
-- subscription.* and badge.* events of that wallet carry it. Several wallets may belong to
-- one customer; a wallet belongs to at most one.
ALTER TABLE orders ADD COLUMN customer_ref TEXT;
CREATE TABLE customers (
    wallet        BLOB   PRIMARY KEY,
    customer_ref  TEXT    NOT NULL,
    bound_at      BIGINT  NOT NULL
);
CREATE INDEX customers_customer_ref ON customers (customer_ref);
