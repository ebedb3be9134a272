-- card_invoice_payments: the payment intent each card subscription's first invoice was paid
-- with (same schema on SQLite and PostgreSQL). Stripe sends that invoice's `invoice.paid`
-- before or after the Checkout Session that grants the first period, in no set order (most
-- often before); the session names only the invoice, and a refund's charge or a dispute
-- only the payment intent. Kept here when it comes first, so the session's grant
-- (card_grants.payment_intent) is found by the payment intent either way.
CREATE TABLE card_invoice_payments (
    invoice        TEXT   PRIMARY KEY,
    payment_intent TEXT   NOT NULL,
    created_at     BIGINT NOT NULL
);
