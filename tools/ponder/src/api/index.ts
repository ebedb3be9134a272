// The bench's check that ponder stored every event: GET /count answers the rows of
// order_paid. /ready and /metrics ponder serves itself.
import { db } from "ponder:api";
import { orderPaid } from "ponder:schema";
import { count } from "ponder";
import { Hono } from "hono";

const app = new Hono();

app.get("/count", async (c) => {
  const [row] = await db.select({ n: count() }).from(orderPaid);
  return c.json({ rows: row?.n ?? 0 });
});

export default app;
