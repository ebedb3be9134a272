// Errors a person understands: every failure becomes one plain sentence and, where it helps,
// a follow-up button; the technical detail stays in the console.
import { BaseError, ContractFunctionRevertedError } from 'viem';

/** An error whose message is written for the subscriber; `action` names a follow-up button. */
export class FriendlyError extends Error {
  constructor(message, { action = null, cause } = {}) {
    super(message, { cause });
    this.name = 'FriendlyError';
    this.action = action;
  }
}

/** A 4xx/5xx answer of the service, with its `{"error": {"code", "message"}}` body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Yields an error and every error it wraps (`cause`, and MetaMask's `data.originalError`). */
function* causes(err) {
  const seen = new Set();
  for (let e = err; e && typeof e === 'object' && !seen.has(e); e = e.cause) {
    seen.add(e);
    yield e;
    // MetaMask nests the provider's own error here.
    if (e.data && typeof e.data === 'object' && e.data.originalError) yield e.data.originalError;
  }
}

/** Whether an EIP-1193 / JSON-RPC `code` appears anywhere in the error chain. */
export function codeIn(err, code) {
  for (const e of causes(err)) if (e.code === code) return true;
  return false;
}

function errorNamed(err, name) {
  for (const e of causes(err)) if (e.name === name) return e;
  return null;
}

export function expiredError() {
  return new FriendlyError('This quote expired.', { action: 'retry-quote' });
}

/** `chain` is the catalog's `{name, id}`. */
export function wrongNetworkError(chain, cause) {
  const { name, id } = chain ?? { name: 'the checkout network', id: '?' };
  return new FriendlyError(`Switch your wallet to ${name} (chain id ${id}).`, { action: 'switch-network', cause });
}

/** The wallet does not know the chain and the service publishes no RPC URL for it. */
export function unknownNetworkError(chain, cause) {
  const { name, id } = chain ?? { name: 'the checkout network', id: '?' };
  return new FriendlyError(
    `Your wallet does not know ${name} (chain id ${id}). Add this network in your wallet with an RPC provider you trust, then try again.`,
    { action: 'switch-network', cause },
  );
}

/** Turns any failure into `{message, action}` for the page. */
export function explain(err, chain) {
  if (err instanceof FriendlyError) return { message: err.message, action: err.action };
  if (codeIn(err, 4001)) return { message: 'You rejected the request in your wallet.', action: null };
  if (errorNamed(err, 'ChainMismatchError') || codeIn(err, 4901)) {
    const e = wrongNetworkError(chain, err);
    return { message: e.message, action: e.action };
  }
  if (err instanceof ApiError) {
    if (err.status >= 500) return { message: 'The checkout service had a problem. Please try again in a moment.', action: null };
    // The merchant's link tied this purchase to an account of theirs; these refusals are
    // about the link, not about the member's wallet or money.
    if (err.code === 'customer_ref_conflict') {
      return { message: 'This wallet already belongs to another account at this shop. Sign in there, or pay with another wallet.', action: null };
    }
    if (err.code === 'invalid_customer_ref' || err.code === 'customer_ref_needs_signature') {
      return { message: 'This checkout link is no longer valid. Go back to the shop and open the checkout link again.', action: null };
    }
    return { message: err.message, action: null };
  }
  const revert = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
  if (revert) return explainRevert(revert);
  if (errorNamed(err, 'InsufficientFundsError')) {
    return { message: "Your wallet doesn't have enough ETH to pay the network fee.", action: null };
  }
  if (codeIn(err, 4100)) return { message: 'Your wallet did not authorize this site. Connect your wallet again.', action: null };
  return { message: 'Something went wrong. Please try again.', action: null };
}

function explainRevert(revert) {
  const name = revert.data?.errorName;
  const args = revert.data?.args ?? [];
  switch (name) {
    case 'SubscriptionCheckout__QuoteExpired':
      return { message: 'This quote expired.', action: 'retry-quote' };
    case 'SubscriptionCheckout__OrderAlreadyPaid':
      return { message: 'This order has already been paid. Get a new quote to buy again.', action: 'retry-quote' };
    case 'SubscriptionCheckout__WrongPayer':
      return {
        message: `This quote is for wallet ${args[0]}, but your wallet is sending from ${args[1]}. Get a new quote for this wallet.`,
        action: 'retry-quote',
      };
    case 'SubscriptionCheckout__InvalidSignature':
      return { message: 'The checkout contract did not accept this quote. Get a new quote.', action: 'retry-quote' };
    case 'SubscriptionCheckout__AmountMismatch':
      return { message: 'This token takes a fee on transfers, so it cannot pay for a plan. Choose another token.', action: null };
    case 'EnforcedPause':
      return { message: 'Payments are paused at the moment. Please try again later.', action: null };
    case 'ERC20InsufficientBalance':
      return { message: "Your wallet doesn't hold enough of this token for the plan.", action: null };
    case 'ERC20InsufficientAllowance':
      return { message: 'The token approval did not cover the price. Please try again.', action: null };
    default:
      return { message: 'The payment was refused by the checkout contract. Please try again.', action: null };
  }
}
