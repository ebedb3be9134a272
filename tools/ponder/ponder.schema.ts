// One row per OrderPaid: the log's fields and where it was found.
import { onchainTable } from "ponder";

export const orderPaid = onchainTable("order_paid", (t) => ({
  id: t.text().primaryKey(),
  orderId: t.bigint().notNull(),
  payer: t.hex().notNull(),
  planId: t.integer().notNull(),
  token: t.hex().notNull(),
  amount: t.bigint().notNull(),
  periods: t.integer().notNull(),
  blockNumber: t.bigint().notNull(),
  transactionHash: t.hex().notNull(),
}));
