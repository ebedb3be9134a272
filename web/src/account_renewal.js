// The account page's "Automatic renewal" section: turn it on (one signature of the mandate
// the service proposes and one bounded approval: the cap times the charges, never unlimited),
// see the next charge and its bound, or why the last attempt failed and what to do, and turn
// it off (the mandate revoked on-chain and the allowance set back to zero, then the service
// told). Every figure comes from the service; the page computes nothing about money.
import { createPublicClient, custom, encodeFunctionData, getAddress } from 'viem';

import { api } from './api.js';
import { mandateAbi, tokenAbi } from './contracts.js';
import { formatDate } from './format.js';

const $ = (id) => document.getElementById(id);
/** The mandate shown as on, if any (cancelling the plan withdraws it first). */
let active = null;
const UNIT = { 2592000: 'month', 31536000: 'year' };

/** The mandate's fields as the contract's tuple (bigints for the wide ones). */
function tuple(m) {
  return {
    payer: getAddress(m.payer),
    token: getAddress(m.token),
    maxAmount: BigInt(m.maxAmount),
    period: Number(m.period),
    maxCharges: Number(m.maxCharges),
    start: BigInt(m.start),
    validUntil: BigInt(m.validUntil),
    earlyWindow: Number(m.earlyWindow),
    planId: Number(m.planId),
    salt: BigInt(m.salt),
  };
}

async function send(provider, from, to, data, say, step) {
  say(step);
  const hash = await provider.request({ method: 'eth_sendTransaction', params: [{ from, to, data }] });
  const reader = createPublicClient({ transport: custom(provider), pollingInterval: 500 });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success') throw new Error(`the transaction ${hash} failed`);
}

/**
 * Shows the section for `account` (GET /v1/me/account's answer). `ctx`: { provider() — the
 * wallet, csrf() — the session's token, reload(), say(text), fail(err) }.
 */
export async function renderRenewal(account, ctx) {
  const panel = $('renewal-panel');
  const sub = account.subscription;
  if (!sub || sub.status === 'expired' || sub.status === 'canceled') {
    panel.hidden = true;
    active = null;
    return;
  }
  let mandate = null;
  try {
    mandate = await api('/v1/me/mandate');
  } catch (err) {
    if (err.code === 'renewals_not_configured') {
      panel.hidden = true;
      return;
    }
    if (err.status !== 404) throw err;
  }
  panel.hidden = false;
  const on = mandate?.status === 'active';
  active = on ? mandate : null;
  $('renewal-on').hidden = on;
  $('renewal-off').hidden = !on;
  $('renewal-failure').hidden = true;
  if (on) {
    const unit = UNIT[mandate.period] ?? `${mandate.period} s`;
    $('renewal-text').textContent =
      `Renews automatically: next charge on ${formatDate(mandate.next_charge_at)}, at most ${mandate.max_amount_display} ${mandate.token_symbol} a ${unit}.`;
    if (mandate.last_failure) {
      const f = mandate.last_failure;
      $('renewal-failure').textContent =
        `The last attempt failed (${f.reason.replaceAll('_', ' ')}). ${f.fix}` + (f.next_attempt_at ? ` Next attempt: ${formatDate(f.next_attempt_at)}.` : '');
      $('renewal-failure').hidden = false;
    }
    $('renewal-off').onclick = () => turnOff(mandate, ctx).catch(ctx.fail);
    return;
  }
  const token = account.receipts.find((r) => r.chain)?.chain.token_symbol ?? 'TMAI';
  const proposal = await api(`/v1/me/mandate/proposal?token=${encodeURIComponent(token)}`);
  const unit = UNIT[proposal.typed_data.message.period] ?? 'period';
  const why = { plan_changed: 'your plan changed', token_changed: 'your renewal token changed' }[mandate?.ended_reason] ?? mandate?.ended_reason?.replaceAll('_', ' ');
  const ended = mandate?.status === 'ended' ? ` Your last permission ended (${why}).` : '';
  $('renewal-text').textContent =
    `Renew ${proposal.plan_name} automatically: at most ${proposal.cap_display} ${proposal.token_symbol} a ${unit} for ${proposal.max_charges} ${unit}s, ` +
    `first on ${formatDate(proposal.first_charge_at)}. One signature and one approval, bounded to what those charges can take.${ended}`;
  $('renewal-on').onclick = () => turnOn(proposal, ctx).catch(ctx.fail);
}

async function turnOn(proposal, ctx) {
  const provider = ctx.provider();
  const [from] = await provider.request({ method: 'eth_requestAccounts' });
  ctx.say('Sign the renewal permission in your wallet (no transaction, no fee).');
  const signature = await provider.request({ method: 'eth_signTypedData_v4', params: [from, JSON.stringify(proposal.typed_data)] });
  const data = encodeFunctionData({ abi: tokenAbi, functionName: 'approve', args: [getAddress(proposal.spender), BigInt(proposal.approve_amount)] });
  await send(provider, from, proposal.token, data, ctx.say, 'Approve the bounded amount in your wallet…');
  await api('/v1/me/mandate', {
    method: 'POST',
    headers: { 'x-csrf-token': ctx.csrf() },
    body: JSON.stringify({ mandate: proposal.typed_data.message, signature }),
  });
  await ctx.reload();
  ctx.say('Automatic renewal is on.');
}

/**
 * Before the plan is canceled: a canceled plan does not renew, so a mandate that is on is
 * withdrawn on-chain and the allowance set back to zero in the same flow (the service turns
 * it off with the cancel).
 */
export async function withdrawBeforeCancel(ctx) {
  if (active) await turnOff(active, { ...ctx, reload: async () => {} });
}

async function turnOff(mandate, ctx) {
  const provider = ctx.provider();
  const [from] = await provider.request({ method: 'eth_requestAccounts' });
  const revoke = encodeFunctionData({ abi: mandateAbi, functionName: 'revokeMandate', args: [tuple(mandate.mandate)] });
  await send(provider, from, mandate.checkout, revoke, ctx.say, 'Confirm withdrawing the renewal permission in your wallet…');
  const zero = encodeFunctionData({ abi: tokenAbi, functionName: 'approve', args: [getAddress(mandate.checkout), 0n] });
  await send(provider, from, mandate.token, zero, ctx.say, 'Confirm setting the allowance back to zero in your wallet…');
  await api('/v1/me/mandate', { method: 'DELETE', headers: { 'x-csrf-token': ctx.csrf() } });
  await ctx.reload();
  ctx.say('Automatic renewal is off; nothing more can be charged.');
}
