// The member's account page (/account): sign in with the wallet (Sign-In with Ethereum, the
// message built by viem), then the plan, the badge as the chain renders it, the reminders
// still to come, every payment with its receipt, and the actions the service offers. The
// page computes nothing about money or time itself: every figure comes from the service.
import { getAddress, toHex } from 'viem';
import { createSiweMessage } from 'viem/siwe';

import { api } from './api.js';
import { FriendlyError, explain } from './errors.js';
import { decodeDataUri, formatDate, shortHex } from './format.js';
import { discoverWallets, rememberedWallet } from './wallets.js';

const $ = (id) => document.getElementById(id);
const CSRF_KEY = 'tmai-pay-csrf';


let announced = [];
discoverWallets((list) => {
  announced = list;
});

/** The wallet to sign with: the one chosen on the checkout page, else the first announced, else window.ethereum. */
function wallet() {
  const remembered = rememberedWallet();
  const chosen = announced.find((w) => w.info.rdns === remembered) ?? announced[0];
  const provider = chosen?.provider ?? window.ethereum;
  if (!provider) throw new FriendlyError('No wallet found in this browser. Install or enable a wallet extension, then try again.');
  return provider;
}

/** The session's cross-site request token (the session cookie itself is HttpOnly). */
const csrf = () => sessionStorage.getItem(CSRF_KEY) ?? '';

function setStatus(text) {
  $('status').textContent = text;
}

function showError(err) {
  const { message } = explain(err, null);
  console.error('[account]', err);
  $('error-message').textContent = message;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

async function signIn() {
  clearError();
  const provider = wallet();
  setStatus('Connecting your wallet…');
  const [account] = await provider.request({ method: 'eth_requestAccounts' });
  const nonce = await api('/v1/auth/nonce', { method: 'POST' });
  const message = createSiweMessage({
    domain: window.location.host,
    address: getAddress(account),
    statement: nonce.statement ?? undefined,
    uri: `${window.location.origin}/account`,
    version: '1',
    chainId: nonce.chain_id,
    nonce: nonce.nonce,
    // The service's clock, not this computer's: a clock that is off must not make the
    // message look stale or from the future.
    issuedAt: new Date(nonce.issued_at * 1000),
    expirationTime: new Date(Math.min(nonce.expires_at, nonce.issued_at + 600) * 1000),
  });
  setStatus('Sign the message in your wallet (no transaction, no fee).');
  const signature = await provider.request({ method: 'personal_sign', params: [toHex(message), account] });
  const signed = await api('/v1/auth/verify', { method: 'POST', body: JSON.stringify({ message, signature }) });
  sessionStorage.setItem(CSRF_KEY, signed.csrf_token);
  await load();
}

async function signOut() {
  clearError();
  await api('/v1/auth/logout', { method: 'POST', headers: { 'x-csrf-token': csrf() } });
  sessionStorage.removeItem(CSRF_KEY);
  showSignedOut();
}

function showSignedOut() {
  for (const id of ['plan-panel', 'badge-panel', 'reminders-panel', 'payments-panel']) $(id).hidden = true;
  $('signed-out').hidden = false;
  $('sign-in').hidden = false;
  $('sign-out').hidden = true;
  setStatus('');
}

/** Calls a member action (cancel, undo) from this page: the session cookie with its CSRF token. */
async function act(path, done) {
  clearError();
  try {
    await api(path, { method: 'POST', headers: { 'x-csrf-token': csrf() } });
    setStatus(done);
    await load();
  } catch (err) {
    showError(err);
  }
}

function statusText(status) {
  return { active: 'Active', trialing: 'Trial', past_due: 'Payment due', canceled: 'Canceled', expired: 'Expired' }[status] ?? status;
}

function renderPlan(account) {
  const sub = account.subscription;
  $('plan-panel').hidden = false;
  $('plan-wallet').textContent = account.wallet;
  if (!sub) {
    $('plan-status').textContent = 'No plan';
    $('plan-status').className = 'pill is-expired';
    $('plan-name').textContent = '—';
    $('plan-ends').textContent = '—';
    $('plan-days').textContent = '—';
    $('plan-note').textContent = 'This wallet has no membership yet.';
    $('plan-note').hidden = false;
    $('renew').textContent = 'Choose a plan';
    $('cancel').hidden = true;
    $('undo-cancel').hidden = true;
    return;
  }
  $('plan-status').textContent = statusText(sub.status);
  $('plan-status').className = `pill is-${sub.status}`;
  $('plan-name').textContent = `${sub.plan_name} (${sub.tier_name})`;
  $('plan-ends').textContent = formatDate(sub.expires_at);
  $('plan-days').textContent = String(sub.days_left);
  const notes = [];
  if (sub.status === 'canceled') notes.push(`Your plan ends on ${formatDate(sub.expires_at)} and will not renew.`);
  if (sub.next_plan_id) notes.push(`${sub.next_plan_name} takes effect on ${formatDate(sub.expires_at)}.`);
  $('plan-note').textContent = notes.join(' ');
  $('plan-note').hidden = notes.length === 0;
  $('renew').textContent = sub.status === 'expired' ? 'Buy again' : 'Renew or change plan';
  $('renew').href = `/checkout?plan=${encodeURIComponent(sub.plan_id)}`;
  $('cancel').hidden = !['active', 'trialing'].includes(sub.status);
  $('undo-cancel').hidden = !(sub.status === 'canceled' && sub.days_left > 0);
}

function renderBadge(account) {
  $('badge-panel').hidden = false;
  const image = $('badge-image');
  if (account.badge) {
    try {
      const metadata = JSON.parse(decodeDataUri(account.badge.token_uri));
      image.src = metadata.image;
      image.hidden = false;
      $('badge-note').textContent = `${account.badge.active ? 'Active' : 'Not active'} until ${formatDate(account.badge.expires_at)}, as the chain shows it.`;
    } catch (err) {
      console.warn('[account] badge metadata', err);
      $('badge-note').textContent = 'Your badge is on chain, but its picture could not be read.';
    }
  } else {
    image.hidden = true;
    $('badge-note').textContent = account.badge_unavailable
      ? 'The chain cannot be read right now; your badge shows again in a moment.'
      : 'Your badge appears here once it is issued (a few blocks after a payment).';
  }
}

function renderReminders(account) {
  const list = $('reminders');
  list.replaceChildren(
    ...account.reminders.map((r) => {
      const item = document.createElement('li');
      item.textContent = `${r.days_before} ${r.days_before === 1 ? 'day' : 'days'} before the end: ${formatDate(r.at)}`;
      return item;
    }),
  );
  $('reminders-panel').hidden = account.reminders.length === 0;
}

function amountOf(receipt) {
  if (receipt.chain) return `${receipt.chain.amount_display} ${receipt.chain.token_symbol}`;
  if (receipt.card) return `${(receipt.card.amount_cents / 100).toFixed(2)} ${receipt.card.currency.toUpperCase()}`;
  return '';
}

function renderPayments(account) {
  $('payments-panel').hidden = false;
  const rows = account.receipts.map((r) => {
    const row = document.createElement('tr');
    if (r.kind === 'credit_note') row.className = 'credit';
    const cells = [formatDate(r.issued_at), null, `${r.plan_name} × ${r.periods}`, amountOf(r) + (r.usd_value ? ` ($${r.usd_value})` : ''), null];
    for (const [i, text] of cells.entries()) {
      const cell = document.createElement('td');
      if (i === 1) {
        const link = document.createElement('a');
        link.href = r.url;
        link.dataset.testid = 'receipt-link';
        link.textContent = r.kind === 'credit_note' ? `${r.number} (credit note)` : r.number + (r.status === 'cancelled' ? ' (cancelled)' : '');
        cell.append(link);
      } else if (i === 4) {
        cell.className = 'mono';
        cell.textContent = r.chain ? shortHex(r.chain.tx_hash) : 'card';
        if (r.chain) cell.title = r.chain.tx_hash;
      } else {
        cell.textContent = text;
        if (i === 3) cell.className = 'num';
      }
      row.append(cell);
    }
    return row;
  });
  $('payments').replaceChildren(...rows);
  $('no-payments').hidden = rows.length > 0;
}

async function load() {
  let account;
  try {
    account = await api('/v1/me/account');
  } catch (err) {
    if (err.status === 401) return showSignedOut();
    throw err;
  }
  $('signed-out').hidden = true;
  $('sign-in').hidden = true;
  $('sign-out').hidden = false;
  renderPlan(account);
  renderBadge(account);
  renderReminders(account);
  renderPayments(account);
  setStatus(`Signed in as ${shortHex(account.wallet)}.`);
}

function main() {
  const guard = (f) => () => f().catch(showError);
  $('sign-in').addEventListener('click', guard(signIn));
  $('sign-out').addEventListener('click', guard(signOut));
  $('cancel').addEventListener('click', () => act('/v1/me/cancel', 'Your plan will not renew. You keep it until the end of the period.'));
  $('undo-cancel').addEventListener('click', () => act('/v1/me/uncancel', 'Your plan continues.'));
  load().catch(showError);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
else main();


