-- Order ids are handed out from blocks reserved here (store::orders), so a checkout can
-- sign its quote before its order is written and many new orders can share one commit.
-- next_id: the first id not yet reserved. Ids of a block never written (a restart) are
-- skipped, never reused.
CREATE TABLE id_blocks (
    name          TEXT    PRIMARY KEY,
    next_id       INTEGER NOT NULL
);
INSERT INTO id_blocks (name, next_id) SELECT 'order_id', COALESCE(MAX(order_id), 0) + 1 FROM orders;
