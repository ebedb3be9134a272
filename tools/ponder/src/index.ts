import { ponder } from "ponder:registry";
import { orderPaid } from "ponder:schema";

ponder.on("Checkout:OrderPaid", async ({ event, context }) => {
  await context.db.insert(orderPaid).values({
    id: event.id,
    orderId: event.args.orderId,
    payer: event.args.payer,
    planId: event.args.planId,
    token: event.args.token,
    amount: event.args.amount,
    periods: event.args.periods,
    blockNumber: event.block.number,
    transactionHash: event.transaction.hash,
  });
});
