// The contract interfaces the page uses, taken from the compiled artifacts in contracts/ so that
// a changed contract changes the bundle (esbuild keeps only the `abi` field of each artifact).
import { getAddress } from 'viem';
import { abi as checkoutArtifactAbi } from '../../contracts/artifacts/SubscriptionCheckout.json';
import { abi as tokenArtifactAbi } from '../../contracts/artifacts/TestToken.json';
// Uniswap v3's SwapRouter as published (the pinned @uniswap/v3-periphery in tools/).
import { abi as swapRouterArtifactAbi } from '../../tools/node_modules/@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json';

/** The checkout calls the page makes, and every custom error so viem names reverts. */
export const checkoutAbi = pick(checkoutArtifactAbi, ['pay', 'payWithPermit']);
/** Withdrawing a renewal mandate on-chain (the account page's "turn off"). */
export const mandateAbi = pick(checkoutArtifactAbi, ['revokeMandate']);
/** ERC-20 + EIP-2612 + ERC-5267 reads and `approve`, with OpenZeppelin's ERC-20 errors. */
export const tokenAbi = pick(tokenArtifactAbi, ['balanceOf', 'allowance', 'approve', 'nonces', 'eip712Domain']);
/** The router calls of the one-click buy: `multicall(selfPermit, exactOutput)`. */
export const swapRouterAbi = pick(swapRouterArtifactAbi, ['multicall', 'selfPermit', 'exactOutput']);

function pick(abi, names) {
  const wanted = new Set(names);
  const fragments = abi.filter((f) => f.type === 'error' || (f.type === 'function' && wanted.has(f.name)));
  for (const name of wanted) {
    if (!fragments.some((f) => f.name === name)) throw new Error(`ABI has no function ${name}`);
  }
  return fragments;
}

/** EIP-2612 `Permit`, signed with the token's own EIP-712 domain. */
export const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

/** The quote as the contract's tuple: uint256 and uint64 as bigint, uint32 as number. */
export function toQuote(q) {
  return {
    orderId: BigInt(q.orderId),
    payer: getAddress(q.payer),
    token: getAddress(q.token),
    amount: BigInt(q.amount),
    planId: Number(q.planId),
    periods: Number(q.periods),
    deadline: BigInt(q.deadline),
  };
}

/** Builds the EIP-712 domain a token reports through ERC-5267, keeping only its fields. */
export async function tokenDomain(reader, address) {
  const [fields, name, version, chainId, verifyingContract, salt] = await reader.readContract({
    address,
    abi: tokenAbi,
    functionName: 'eip712Domain',
  });
  const bits = Number(fields);
  const domain = {};
  if (bits & 1) domain.name = name;
  if (bits & 2) domain.version = version;
  if (bits & 4) domain.chainId = Number(chainId);
  if (bits & 8) domain.verifyingContract = verifyingContract;
  if (bits & 16) domain.salt = salt;
  return domain;
}
