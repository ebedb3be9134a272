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
import { renderRenewal, withdrawBeforeCancel } from './account_renewal.js';
import { renderPaymentMethod } from './account_payment.js';

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
  for (const id of ['plan-panel', 'change-panel', 'renewal-panel', 'badge-panel', 'reminders-panel', 'payments-panel', 'payment-method-panel']) $(id).hidden = true;
  $('signed-out').hidden = false;
  $('sign-in').hidden = false;
  $('sign-out').hidden = true;
  setStatus('');
}

/** Calls a member action (cancel, undo, switch) from this page: the session cookie with its CSRF token. */
async function act(path, done, method = 'POST', body = undefined) {
  clearError();
  try {
    await api(path, { method, headers: { 'x-csrf-token': csrf() }, ...(body ? { body: JSON.stringify(body) } : {}) });
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
    $('renew').href = '/checkout';
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
  if (sub.status === 'past_due')
    notes.push(
      sub.days_left > 0
        ? `The renewal payment failed; your plan runs until ${formatDate(sub.expires_at)}. See Automatic renewal below for why and what to do.`
        : `Your paid time ended on ${formatDate(sub.expires_at)} and the renewal payment failed: access resumes when it goes through (see Automatic renewal below), or renew by hand.`,
    );
  if (sub.next_plan_id) notes.push(`${sub.next_plan_name} takes effect on ${formatDate(sub.expires_at)}.`);
  if (sub.switch) notes.push(`Switches to ${sub.switch.plan_name} (paid in ${sub.switch.token}) on ${formatDate(sub.switch.takes_effect_at)}.`);
  $('plan-note').textContent = notes.join(' ');
  $('plan-note').hidden = notes.length === 0;
  $('renew').textContent = sub.status === 'expired' ? 'Buy again' : 'Renew or change plan';
  $('renew').href = '#change-panel';
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
        const explorer = change.catalog?.chain?.explorer_tx_url;
        if (r.chain && explorer) {
          const link = document.createElement('a');
          link.href = explorer.replace('{tx}', r.chain.tx_hash);
          link.rel = 'noopener noreferrer';
          link.target = '_blank';
          link.dataset.testid = 'tx-link';
          link.textContent = shortHex(r.chain.tx_hash);
          cell.append(link);
        } else {
          cell.textContent = r.chain ? shortHex(r.chain.tx_hash) : 'card';
        }
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

// ---------------------------------------------------------------------------------------------
// Renew, add periods, upgrade, switch: the service previews each purchase
// (GET /v1/me/plan-change) and the checkout page takes the payment; a switch to another
// period or a lower tier can instead be scheduled for the period's end (PUT /v1/me/switch).

const change = { catalog: null, account: null, seq: 0 };
const PERIOD_WORD = { monthly: 'month', yearly: 'year' };

function option(value, text, selected) {
  const item = document.createElement('option');
  item.value = String(value);
  item.textContent = text;
  item.selected = selected;
  return item;
}

/** Fills the pickers once per load: the member's switch, else their plan, preselected. */
function renderChange(account) {
  const sub = account.subscription;
  change.account = account;
  if (!change.catalog || !sub || sub.status === 'expired') {
    $('change-panel').hidden = true;
    return;
  }
  $('change-panel').hidden = false;
  const chosen = sub.switch?.plan_id ?? sub.plan_id;
  const plans = [...change.catalog.plans].sort((a, b) => a.tier - b.tier || a.period.localeCompare(b.period) || a.id - b.id);
  $('change-plan').replaceChildren(
    ...plans.map((p) => option(p.id, `${p.name}${p.id === sub.plan_id ? ' (your plan)' : ''}`, p.id === chosen)),
  );
  const periods = Number($('change-periods').value) || 1;
  $('change-periods').replaceChildren(...[1, 2, 3, 6, 12].map((n) => option(n, String(n), n === periods)));
  const token = sub.switch?.token ?? account.receipts.find((r) => r.chain)?.chain.token_symbol ?? change.catalog.tokens[0]?.symbol;
  $('change-token').replaceChildren(...change.catalog.tokens.map((t) => option(t.symbol, t.symbol, t.symbol === token)));
  if (sub.switch) {
    $('switch-text').textContent = `Your next renewal switches to ${sub.switch.plan_name}, paid in ${sub.switch.token}, on ${formatDate(sub.switch.takes_effect_at)}.`;
    $('switch-note').hidden = false;
  } else {
    $('switch-note').hidden = true;
  }
  preview().catch(showError);
}

/** Asks the service what the chosen purchase does, and says it in a sentence. */
async function preview() {
  const sub = change.account?.subscription;
  if (!sub) return;
  const planId = Number($('change-plan').value);
  const periods = Number($('change-periods').value) || 1;
  const token = $('change-token').value;
  const plan = change.catalog.plans.find((p) => p.id === planId);
  if (!plan || !token) return;
  const seq = ++change.seq;
  $('pay-change').hidden = true;
  $('schedule-switch').hidden = true;
  $('preview').textContent = 'Working out what this changes…';
  const query = new URLSearchParams({ plan_id: String(planId), periods: String(periods), token });
  const p = await api(`/v1/me/plan-change?${query}`);
  if (seq !== change.seq) return; // a newer choice is on its way
  const unit = PERIOD_WORD[plan.period] ?? plan.period;
  const bought = `${periods} ${unit}${periods === 1 ? '' : 's'} of ${plan.name}`;
  const text = {
    'subscription.activated': `${bought}, from now until ${formatDate(p.expires_at)}.`,
    'subscription.renewed':
      p.plan_id === sub.plan_id
        ? `Adds ${bought}: your plan runs until ${formatDate(p.expires_at)}.`
        : `${plan.name} from now, with ${bought} added: your plan runs until ${formatDate(p.expires_at)}.`,
    'subscription.upgraded':
      `Upgrades to ${plan.name} at once. ` +
      (p.credit_seconds > 0
        ? `Your unused paid time becomes ${(p.credit_seconds / 86400).toFixed(1)} days of ${plan.name}, added to the ${bought}: `
        : `Nothing is left to credit from your current plan: `) +
      `your plan runs until ${formatDate(p.expires_at)}.`,
    'subscription.downgrade_scheduled': `${plan.name} takes effect on ${formatDate(p.takes_effect_at)}, after your current plan, and runs until ${formatDate(p.next_expires_at)}.`,
  }[p.change]; // the activation's event name
  const renewal = {
    continues: ' Automatic renewal stays on, in the token you signed for.',
    stops: ` Automatic renewal stops: it was signed for your current plan; turn it on again for ${plan.name} afterwards.`,
  }[p.automatic_renewal] ?? '';
  $('preview').textContent = (text ?? `This purchase runs your plan until ${formatDate(p.expires_at)}.`) + renewal;
  change.switchStopsRenewal = p.switch_stops_renewal;
  const link = new URLSearchParams({ plan: String(planId), period: plan.period, token, periods: String(periods) });
  $('pay-change').href = `/checkout?${link}`;
  $('pay-change').hidden = false;
  // Another period of the same tier, or a lower tier: it can wait for the period's end, unpaid.
  const switchable = ['active', 'trialing'].includes(sub.status) && !sub.next_plan_id && plan.tier <= sub.tier;
  // The renewal as it stands: the scheduled switch, else the plan in the token last paid in.
  const lastToken = change.account.receipts.find((r) => r.chain)?.chain.token_symbol;
  const same = sub.switch ? sub.switch.plan_id === planId && sub.switch.token === token : planId === sub.plan_id && (!lastToken || token === lastToken);
  $('schedule-switch').hidden = !switchable || same;
}

async function scheduleSwitch() {
  const planId = Number($('change-plan').value);
  const token = $('change-token').value;
  const plan = change.catalog.plans.find((p) => p.id === planId);
  const stops = change.switchStopsRenewal ? ' Automatic renewal is off: turn it on again for the new plan.' : '';
  await act('/v1/me/switch', `Your next renewal switches to ${plan?.name ?? 'the plan you chose'}.${stops}`, 'PUT', { plan_id: planId, token });
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
  if (!change.catalog) change.catalog = await api('/v1/plans').catch((err) => (console.warn('[account] plans', err), null));
  renderChange(account);
  renderBadge(account);
  renderReminders(account);
  renderPayments(account);
  await renderPaymentMethod($('payment-method-panel'), { csrf, onError: showError, reload: load });
  await renderRenewal(account, { provider: wallet, csrf, reload: load, say: setStatus, fail: showError }).catch(showError);
  setStatus(`Signed in as ${shortHex(account.wallet)}.`);
}

function main() {
  const guard = (f) => () => f().catch(showError);
  $('sign-in').addEventListener('click', guard(signIn));
  $('sign-out').addEventListener('click', guard(signOut));
  $('cancel').addEventListener('click', async () => {
    try {
      await withdrawBeforeCancel({ provider: wallet, csrf, say: setStatus, fail: showError });
    } catch (err) {
      return showError(err);
    }
    await act('/v1/me/cancel', 'Your plan will not renew. You keep it until the end of the period.');
  });
  $('undo-cancel').addEventListener('click', () => act('/v1/me/uncancel', 'Your plan continues.'));
  for (const id of ['change-plan', 'change-periods', 'change-token']) $(id).addEventListener('change', () => preview().catch(showError));
  $('schedule-switch').addEventListener('click', () => scheduleSwitch());
  $('undo-switch').addEventListener('click', () => act('/v1/me/switch', 'Your next renewal keeps your current plan.', 'DELETE'));
  load().catch(showError);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
else main();


