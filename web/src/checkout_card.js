// "Pay by card" on the checkout page (issue 28 §2): where GET /v1/plans says a plan can be
// bought by card (`card_available`), the page offers a card choice beside the tokens. Paying
// asks the service for a card Checkout Session (POST /v1/checkouts/card, subscription mode,
// the plan's free trial for a wallet that never had one) and sends the browser to the card
// processor's page; the processor's signed webhook then activates the plan.
import { api } from './api.js';

/** The token picker's value for the card choice. */
export const CARD = 'CARD';

const PERIOD_UNIT = { monthly: 'month', yearly: 'year' };

/** Whether any plan of the catalog can be bought by card (the card choice is shown). */
export const cardOffered = (catalog) => Boolean(catalog?.plans.some((p) => p.card_available));

/** Whether `plan` can be bought by card. */
export const cardAvailable = (plan) => Boolean(plan?.card_available && plan.card_price_cents);

/** "$49.00" for a card price in cents. */
export const cardPrice = (plan) => `$${(plan.card_price_cents / 100).toFixed(2)}`;

/** "7-day free trial, card only", or null for a plan without one. */
export const trialNote = (plan) => (plan?.trial_days > 0 ? `${plan.trial_days}-day free trial, card only` : null);

/** The card choice's price line for `plan`: "$49.00 / month". */
export const cardLabel = (plan) => `${cardPrice(plan)} / ${PERIOD_UNIT[plan.period] ?? plan.period}`;

/** The pay button's text with the card chosen. */
export const cardPayText = (plan) => (plan.trial_days > 0 ? 'Pay by card' : `Pay ${cardPrice(plan)} by card`);

/**
 * Creates the card session for `plan` and `wallet` and sends the browser to the
 * processor's page (`navigate`, for tests); returns the session.
 */
export async function payByCard({ plan, wallet, customerRef, navigate = (url) => window.location.assign(url) }) {
  const session = await api('/v1/checkouts/card', {
    method: 'POST',
    body: JSON.stringify({ plan_id: plan.id, wallet, ...(customerRef ? { customer_ref: customerRef } : {}) }),
  });
  console.info('[checkout] card session', session.session_id);
  navigate(session.url);
  return session;
}

/**
 * What to say to a member the card processor sent back (`?card=paid` or `?card=canceled`
 * on the page's URL), or null.
 */
export function cardReturn(search = window.location.search) {
  const card = new URLSearchParams(search).get('card');
  if (card === 'paid') return 'Card payment done at the card processor: your plan starts as soon as it confirms it (usually seconds). Your account page shows it.';
  if (card === 'canceled') return 'Card payment not finished: nothing was charged. Choose again to pay.';
  return null;
}
