-- Order ids are handed out from blocks reserved here (store::orders), so a checkout can
-- sign its quote before its order is written and many new orders can share one commit.
-- next_id: the first id not yet reserved. Ids of a block never written (a restart) are
-- skipped, never reused. The same schema as sqlite/0006_order_ids.sql.
CREATE TABLE id_blocks (
    name          TEXT    PRIMARY KEY,
    next_id       BIGINT NOT NULL
);
INSERT INTO id_blocks (name, next_id) SELECT 'order_id', COALESCE(MAX(order_id), 0) + 1 FROM orders;

-- Read caches of other instances (store::changes) drop what they hold when this notifies.
CREATE FUNCTION tmai_pay_subscriptions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tmai_pay_changes', 'subscriptions');
    RETURN NULL;
END;
$$;
CREATE TRIGGER subscriptions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION tmai_pay_subscriptions_changed();
