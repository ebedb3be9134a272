// The indexing peer of benches/watcher.rs: the checkout's OrderPaid logs from one anvil,
// into PGlite (ponder's default store) or, with DATABASE_URL, into PostgreSQL. Everything
// comes from the environment the bench sets.
import { createConfig } from "ponder";
import { parseAbi } from "viem";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export default createConfig({
  database: process.env.DATABASE_URL
    ? { kind: "postgres", connectionString: process.env.DATABASE_URL }
    : { kind: "pglite", directory: env("PONDER_PGLITE_DIR") },
  chains: {
    // disableCache: no copy of the fetched logs, blocks and transactions in its sync store
    // (the lighter setting; our watcher keeps none either).
    anvil: { id: Number(env("PONDER_CHAIN_ID")), rpc: env("PONDER_RPC_URL"), disableCache: true },
  },
  contracts: {
    Checkout: {
      chain: "anvil",
      abi: parseAbi([
        "event OrderPaid(uint256 indexed orderId, address indexed payer, uint32 indexed planId, address token, uint256 amount, uint32 periods)",
      ]),
      address: env("PONDER_CHECKOUT") as `0x${string}`,
      startBlock: Number(env("PONDER_START_BLOCK")),
      endBlock: Number(env("PONDER_END_BLOCK")),
    },
  },
});
