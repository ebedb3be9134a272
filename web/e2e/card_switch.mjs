// End-to-end check of paying by card in headless Chromium (issue 28 §2): on the checkout
// page a new member picks Premium, chooses "Pay by card" beside the tokens (it shows the
// plan's free trial) and is sent to the card processor's page the service's session names;
// on the account page a member who paid on-chain signs in, sees "Paying with crypto", clicks
// "Switch to card" and is sent to the processor's page for a session whose first charge is
// at the end of the paid time. The processor's page is the test's stand-in (the real one
// takes a card; the test follows up to the hand-off). With PHASE=back, the member (whose
// switch the processor has since completed) sees "Paying by card", clicks "Back to crypto"
// and, once the processor's update arrives, sees the card plan run to its end.
//
// Environment:
//   BASE_URL        the service (the pages are BASE_URL/checkout and BASE_URL/account)
//   RPC_URL         the anvil node the wallet forwards to
//   NEW_ACCOUNT     an unlocked anvil account without a plan (the checkout page)
//   MEMBER_ACCOUNT  an unlocked anvil account with a plan paid on-chain (the account page)
//   HANDOFF         the processor's page prefix, e.g. http://127.0.0.1:4000/c/pay/
//   SCREENSHOT      PNG path of the checkout page with the card chosen;
//   ACCOUNT_SCREENSHOT  PNG path of the account page's payment method
//   PHASE           `back` for the second part (the other variables are then unused but
//                   for BASE_URL, RPC_URL and MEMBER_ACCOUNT)
//   CHROMIUM        browser executable (default /usr/bin/chromium)
//
// Prints "e2e: ok" and exits 0, or prints what went wrong and exits 1.
import { chromium } from 'playwright-core';
import { installWallet, rpcTo } from './wallet.mjs';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is required`);
    process.exit(2);
  }
  return value;
};
const BASE_URL = need('BASE_URL');
const RPC_URL = need('RPC_URL');
const NEW_ACCOUNT = need('NEW_ACCOUNT').toLowerCase();
const MEMBER_ACCOUNT = need('MEMBER_ACCOUNT').toLowerCase();
const HANDOFF = need('HANDOFF');
const SCREENSHOT = need('SCREENSHOT');
const ACCOUNT_SCREENSHOT = need('ACCOUNT_SCREENSHOT');

const rpc = rpcTo(RPC_URL);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const problems = [];

async function pageFor(account) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 }, locale: 'en-US' });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.exposeFunction('__e2eRpc', rpc);
  await page.addInitScript(installWallet, { account });
  return page;
}

async function back() {
  const account = await pageFor(MEMBER_ACCOUNT);
  await account.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' });
  await account.getByTestId('signed-out').waitFor();
  await account.getByTestId('sign-in').click();
  const state = account.getByTestId('payment-method-state');
  await state.waitFor();
  if ((await state.textContent()).trim() !== 'Paying by card') throw new Error(`the payment method shows ${await state.textContent()}`);
  console.log(`e2e: paying by card: ${(await account.getByTestId('payment-method-note').textContent()).trim()}`);
  const [answer] = await Promise.all([
    account.waitForResponse((r) => r.url().endsWith('/v1/me/payment-method/crypto')),
    account.getByTestId('back-to-crypto').click(),
  ]);
  if (answer.status() !== 200) throw new Error(`back to crypto answered ${answer.status()}`);
  // The processor's customer.subscription.updated follows; the page then shows the card
  // plan running to its end.
  for (let i = 0; i < 60; i++) {
    const text = (await state.textContent().catch(() => '')).trim();
    if (text === 'Paying by card until the period ends') break;
    await new Promise((r) => setTimeout(r, 1000));
    await account.reload({ waitUntil: 'domcontentloaded' });
    await state.waitFor().catch(() => {});
  }
  const shown = (await state.textContent()).trim();
  if (shown !== 'Paying by card until the period ends') throw new Error(`after back to crypto the payment method shows ${shown}`);
  console.log(`e2e: back to crypto: ${shown}; ${(await account.getByTestId('payment-method-note').textContent()).trim()}`);
}

try {
  if (process.env.PHASE === 'back') {
    await back();
    if (problems.length) throw new Error(`console errors: ${problems.join(' | ')}`);
    console.log('e2e: ok');
    process.exit(0);
  }
  // The checkout page: Premium, "Pay by card", to the processor's page.
  const checkout = await pageFor(NEW_ACCOUNT);
  const response = await checkout.goto(`${BASE_URL}/checkout?plan=3`, { waitUntil: 'domcontentloaded' });
  if (!response?.ok()) throw new Error(`GET /checkout answered ${response?.status()}`);
  const byCard = checkout.getByTestId('pay-by-card');
  await byCard.waitFor();
  await byCard.click();
  const choice = (await byCard.textContent()).trim();
  if (!choice.includes('7-day free trial, card only')) throw new Error(`the card choice shows ${choice}`);
  const pay = checkout.getByTestId('pay');
  const label = (await pay.textContent()).trim();
  if (!label.includes('by card')) throw new Error(`the pay button says ${label}`);
  console.log(`e2e: card choice: ${choice}; button: ${label}`);
  await checkout.screenshot({ path: SCREENSHOT, fullPage: true });
  await Promise.all([checkout.waitForURL((url) => url.href.startsWith(HANDOFF), { timeout: 30_000 }), pay.click()]);
  await checkout.getByTestId('card-page').waitFor();
  console.log(`e2e: checkout handed off to ${checkout.url()}`);

  // The account page: sign in, paying with crypto, switch to card, to the processor's page.
  const account = await pageFor(MEMBER_ACCOUNT);
  const accountResponse = await account.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' });
  if (!accountResponse?.ok()) throw new Error(`GET /account answered ${accountResponse?.status()}`);
  await account.getByTestId('signed-out').waitFor();
  await account.getByTestId('sign-in').click();
  const method = account.getByTestId('payment-method');
  await method.waitFor({ state: 'visible' });
  const shown = (await account.getByTestId('payment-method-state').textContent()).trim();
  if (shown !== 'Paying with crypto') throw new Error(`the payment method shows ${shown}`);
  const note = (await account.getByTestId('payment-method-note').textContent()).trim();
  if (!/first charged on \w+ \d+, \d{4}, when your paid time ends/.test(note)) throw new Error(`the note says ${note}`);
  console.log(`e2e: account: ${shown}; ${note}`);
  await method.screenshot({ path: ACCOUNT_SCREENSHOT });
  await Promise.all([
    account.waitForURL((url) => url.href.startsWith(HANDOFF), { timeout: 30_000 }),
    account.getByTestId('switch-to-card').click(),
  ]);
  await account.getByTestId('card-page').waitFor();
  console.log(`e2e: switch handed off to ${account.url()}`);
  if (problems.length) throw new Error(`console errors: ${problems.join(' | ')}`);
  console.log('e2e: ok');
} catch (err) {
  console.log(`e2e: failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
