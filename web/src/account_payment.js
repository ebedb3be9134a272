// The account page's "Payment method" section (issue 28 §2): how the member pays, and the
// switch between crypto and card, each with the date it takes effect.
//
// - Paying with crypto → "Switch to card": the service creates a card Checkout Session whose
//   first charge is at the end of the paid time (nothing is paid twice) and the page sends
//   the browser to the card processor's page.
// - Paying by card → "Back to crypto": the service sets the card subscription to end at its
//   period end; the member then pays on-chain on the checkout page.
// Everything shown comes from GET /v1/me/payment-method; the page computes no dates itself.
import { api } from './api.js';
import { formatDate } from './format.js';

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) e.setAttribute(key, value);
  if (text !== undefined) e.textContent = text;
  return e;
}

const day = (unix) => formatDate(unix);

/**
 * Renders the section into `panel` for the signed-in member. `csrf` returns the session's
 * CSRF token, `onError` shows a failure, `reload` redraws the page after a change and
 * `navigate` opens the card processor's page.
 */
export async function renderPaymentMethod(panel, { csrf, onError, reload, navigate = (url) => window.location.assign(url) }) {
  if (!panel) return;
  let view;
  try {
    view = await api('/v1/me/payment-method');
  } catch (err) {
    panel.hidden = true;
    if (err.status !== 401) onError(err);
    return;
  }
  const post = (path) => api(path, { method: 'POST', headers: { 'x-csrf-token': csrf() } });
  const heading = el('h2', { id: 'payment-method-heading' }, 'Payment method');
  const line = el('p', { 'data-testid': 'payment-method-state' });
  const note = el('p', { class: 'muted', 'data-testid': 'payment-method-note' });
  const actions = el('div', { class: 'actions' });
  panel.setAttribute('aria-labelledby', 'payment-method-heading');

  if (view.method === 'none') {
    panel.hidden = true;
    return;
  }
  if (view.method === 'card' && !view.card_ending) {
    line.textContent = 'Paying by card';
    note.textContent = view.next_card_charge_at
      ? `Your card is charged next on ${day(view.next_card_charge_at)}. Back to crypto: the card plan runs to that date, is not charged again, and you then pay on-chain.`
      : 'Your card renews the plan.';
    const back = el('button', { type: 'button', class: 'button button-secondary', 'data-testid': 'back-to-crypto' }, 'Back to crypto');
    back.addEventListener('click', async () => {
      back.disabled = true;
      try {
        const done = await post('/v1/me/payment-method/crypto');
        note.textContent = done.crypto_from
          ? `Done: your card will not be charged again. Pay with crypto from ${day(done.crypto_from)} on the checkout page.`
          : 'Done: your card will not be charged again.';
        await reload();
      } catch (err) {
        back.disabled = false;
        onError(err);
      }
    });
    actions.append(back);
  } else if (view.method === 'card') {
    line.textContent = 'Paying by card until the period ends';
    note.textContent = view.crypto_from
      ? `Your card will not be charged again. From ${day(view.crypto_from)} you pay with crypto.`
      : 'Your card will not be charged again.';
    actions.append(el('a', { class: 'button button-primary', 'data-testid': 'pay-with-crypto', href: '/checkout' }, 'Pay with crypto'));
  } else {
    line.textContent = 'Paying with crypto';
    if (view.can_switch_to_card) {
      note.textContent = `Switch to card: your card is first charged on ${day(view.paid_until)}, when your paid time ends, so nothing is paid twice.`;
      const toCard = el('button', { type: 'button', class: 'button button-secondary', 'data-testid': 'switch-to-card' }, 'Switch to card');
      toCard.addEventListener('click', async () => {
        toCard.disabled = true;
        try {
          const session = await post('/v1/me/payment-method/card');
          note.textContent = `Opening the card page… Your card is first charged on ${day(session.first_charge_at)}.`;
          navigate(session.url);
        } catch (err) {
          toCard.disabled = false;
          onError(err);
        }
      });
      actions.append(toCard);
    } else {
      note.textContent = view.switch_unavailable_reason ? `Switching to card is not available: ${view.switch_unavailable_reason}.` : '';
    }
  }
  panel.replaceChildren(heading, line, note, actions);
  panel.hidden = false;
}
