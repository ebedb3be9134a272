// End-to-end check of the account page in headless Chromium: a member who paid on the
// checkout page signs in with an injected wallet (personal_sign by an unlocked anvil
// account), sees the plan, the badge and the payment with its receipt, reads the service's
// preview of an upgrade and pays it on the checkout page, schedules a switch to a lower
// tier and undoes it, cancels and takes it back, opens the receipt, and signs out.
//
// Environment:
//   BASE_URL    the service, e.g. http://127.0.0.1:3000 (the page is BASE_URL/account)
//   RPC_URL     the anvil node the wallet forwards to
//   ACCOUNT     an unlocked anvil account that holds a membership
//   SCREENSHOT  PNG path for the signed-in page; RECEIPT_SCREENSHOT for the receipt opened from it
//   CHROMIUM    browser executable (default /usr/bin/chromium)
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
const ACCOUNT = need('ACCOUNT').toLowerCase();
const SCREENSHOT = need('SCREENSHOT');
const RECEIPT_SCREENSHOT = need('RECEIPT_SCREENSHOT');

const rpc = rpcTo(RPC_URL);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const problems = [];
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 }, locale: 'en-US' });
  context.setDefaultTimeout(30_000);
  page = await context.newPage();
  // A 401 while signed out is the page asking whether it is signed in, not a problem; every
  // status that matters is checked below.
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.exposeFunction('__e2eRpc', rpc);
  await page.addInitScript(installWallet, { account: ACCOUNT });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP: ${e.violatedDirective} blocked ${e.blockedURI}`));
  });

  const response = await page.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' });
  if (!response?.ok()) throw new Error(`GET /account answered ${response?.status()}`);
  if (!(response.headers()['content-security-policy'] ?? '').includes("default-src 'self'")) throw new Error('the account page has no Content-Security-Policy');
  await page.getByTestId('signed-out').waitFor();

  // Sign in: the page builds the EIP-4361 message, the wallet signs it.
  await page.getByTestId('sign-in').click();
  await page.getByTestId('plan').waitFor();
  const status = (await page.getByTestId('plan-status').textContent()).trim();
  const plan = (await page.getByTestId('plan-name').textContent()).trim();
  if (status !== 'Active' || !plan.includes('Premium')) throw new Error(`the plan shows ${status} / ${plan}`);
  const wallet = (await page.getByTestId('plan-wallet').textContent()).trim().toLowerCase();
  if (wallet !== ACCOUNT) throw new Error(`signed in as ${wallet}, not ${ACCOUNT}`);
  console.log(`e2e: signed in; plan ${plan}, ${status}, ${(await page.getByTestId('plan-days').textContent()).trim()} days left`);

  // The badge as the chain renders it (minted a few blocks after the payment).
  await page.getByTestId('badge-image').waitFor({ state: 'visible', timeout: 60_000 }).catch(async () => {
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.getByTestId('badge-image').waitFor({ state: 'visible', timeout: 30_000 });
  });
  const links = page.getByTestId('receipt-link');
  await links.first().waitFor();
  const first = (await links.first().textContent()).trim();
  if (!/^R-\d{6}/.test(first)) throw new Error(`the first payment's document is ${first}`);
  console.log(`e2e: payment with receipt ${first}`);

  // Upgrade: the service's preview of what the unused time becomes, then the checkout page
  // takes the payment the preview described.
  const previewText = async (prefix) => {
    const handle = await page.waitForFunction(
      (start) => {
        const error = document.querySelector('[data-testid="error"]');
        if (error && !error.hidden) return `error: ${error.textContent}`;
        const text = document.querySelector('[data-testid="preview"]')?.textContent ?? '';
        return text.startsWith(start) ? text : false;
      },
      prefix,
      { polling: 200 },
    );
    const text = await handle.jsonValue();
    if (text.startsWith('error:')) throw new Error(`the account page shows ${text}`);
    return text;
  };
  await page.getByTestId('change').waitFor();
  await page.getByTestId('change-token').selectOption('TMAI');
  await page.getByTestId('change-plan').selectOption({ label: 'VIP monthly' });
  const upgrade = await previewText('Upgrades to VIP monthly');
  if (!/becomes [\d.]+ days of VIP monthly/.test(upgrade)) throw new Error(`the upgrade preview does not credit the unused time: ${upgrade}`);
  if (!(await page.getByTestId('schedule-switch').isHidden())) throw new Error('an upgrade is offered as a switch at the end of the period');
  console.log(`e2e: preview: ${upgrade}`);
  await page.getByTestId('pay-change').click();
  await page.waitForURL(/\/checkout\?plan=4/);
  await page.getByTestId('connect').click();
  await page.waitForFunction((account) => document.getElementById('summary-wallet')?.title.toLowerCase() === account, ACCOUNT);
  await page.getByTestId('pay').click();
  const paid = await page.waitForFunction(
    () => {
      const error = document.querySelector('[data-testid="error"]');
      if (error && !error.hidden) return `error: ${error.textContent}`;
      return (document.querySelector('[data-testid="status"]')?.textContent ?? '').includes('Badge issued') ? 'done' : false;
    },
    null,
    { timeout: 90_000, polling: 250 },
  );
  if ((await paid.jsonValue()) !== 'done') throw new Error(`the checkout page shows ${await paid.jsonValue()}`);
  await page.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' });
  await page.getByTestId('plan').waitFor();
  await page.waitForFunction(() => (document.querySelector('[data-testid="plan-name"]')?.textContent ?? '').includes('VIP'));
  await page.getByTestId('receipt-link').nth(1).waitFor();
  const number = (await links.first().textContent()).trim();
  if (number === first) throw new Error(`the upgrade has no receipt of its own (${number})`);
  console.log(`e2e: upgraded to ${(await page.getByTestId('plan-name').textContent()).trim()}, receipt ${number}`);

  // A lower tier at the end of the period, unpaid, shown with its date, then undone.
  await page.getByTestId('change-plan').selectOption({ label: 'Premium monthly' });
  const down = await previewText('Premium monthly takes effect on');
  console.log(`e2e: preview: ${down}`);
  await page.getByTestId('schedule-switch').click();
  await page.getByTestId('switch-note').waitFor({ state: 'visible' });
  const note = (await page.getByTestId('switch-note').textContent()).replace(/\s+/g, ' ').trim();
  const ends = (await page.getByTestId('plan-ends').textContent()).trim();
  if (!note.includes('Premium monthly') || !note.includes(ends)) throw new Error(`the switch note says ${note} (the period ends ${ends})`);
  if (!(await page.getByTestId('plan-name').textContent()).includes('VIP')) throw new Error('the switch changed the plan before the end of the period');
  console.log(`e2e: ${note}`);
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  await page.getByTestId('undo-switch').click();
  await page.getByTestId('switch-note').waitFor({ state: 'hidden' });
  console.log('e2e: switch undone');

  // Cancel, then take it back.
  await page.getByTestId('cancel').click();
  await page.getByText('Canceled', { exact: true }).waitFor();
  await page.getByTestId('undo-cancel').waitFor({ state: 'visible' });
  console.log('e2e: canceled');
  await page.getByTestId('undo-cancel').click();
  await page.getByText('Active', { exact: true }).waitFor();
  await page.getByTestId('cancel').waitFor({ state: 'visible' });
  console.log('e2e: cancel taken back');

  // The receipt, opened from the page with the session.
  await links.first().click();
  await page.waitForSelector('main.doc');
  const printed = (await page.textContent('.number')).trim();
  if (printed !== number.split(' ')[0]) throw new Error(`the receipt page shows ${printed}, the account ${number}`);
  await page.screenshot({ path: RECEIPT_SCREENSHOT, fullPage: true });
  console.log(`e2e: receipt ${printed} opened`);

  // Automatic renewal: turned on with one signature and one bounded approval; the chain's
  // time (and the service's clock with it) moves to two days before the end; the renewer
  // charges, the plan and the badge's expiry move a month; turned off, the allowance is zero.
  await page.goBack({ waitUntil: 'domcontentloaded' });
  await page.getByTestId('renewal').waitFor();
  await page.waitForFunction(() => /at most [\d,.]+ TMAI a month for 12 months/.test(document.querySelector('[data-testid="renewal-text"]')?.textContent ?? ''));
  console.log(`e2e: offer: ${(await page.getByTestId('renewal-text').textContent()).trim()}`);
  await page.getByTestId('renewal-on').click();
  await page.getByTestId('renewal-off').waitFor({ state: 'visible', timeout: 60_000 });
  const mandate = await page.evaluate(async () => (await fetch('/v1/me/mandate')).json());
  const allowanceOf = async () => {
    const data = `0xdd62ed3e${ACCOUNT.slice(2).padStart(64, '0')}${mandate.checkout.slice(2).toLowerCase().padStart(64, '0')}`;
    const answer = await rpc('eth_call', [{ to: mandate.token, data }, 'latest']);
    if (answer.error) throw new Error(`allowance: ${answer.error.message}`);
    return BigInt(answer.result);
  };
  const bounded = BigInt(mandate.max_amount) * BigInt(mandate.max_charges);
  if ((await allowanceOf()) !== bounded) throw new Error(`the allowance is ${await allowanceOf()}, not cap × charges ${bounded}`);
  console.log(`e2e: renewal on: ${(await page.getByTestId('renewal-text').textContent()).trim()}; allowance ${bounded} (cap × ${mandate.max_charges})`);
  await page.getByTestId('renewal').screenshot({ path: SCREENSHOT.replace(/\.png$/, '-renewal.png') });
  const before = await (await fetch(`${BASE_URL}/v1/subscriptions/${ACCOUNT}`)).json();
  await rpc('evm_setNextBlockTimestamp', [before.expires_at - 2 * 86_400]);
  await rpc('evm_mine');
  let renewedTo = before;
  let badge = null;
  for (let i = 0; i < 90 && !(renewedTo.expires_at > before.expires_at && badge?.expires_at === renewedTo.expires_at); i++) {
    await rpc('evm_mine');
    await new Promise((r) => setTimeout(r, 1000));
    renewedTo = await (await fetch(`${BASE_URL}/v1/subscriptions/${ACCOUNT}`)).json();
    const answer = await fetch(`${BASE_URL}/v1/badges/${ACCOUNT}`);
    badge = answer.ok ? await answer.json() : null;
  }
  if (renewedTo.expires_at !== before.expires_at + 30 * 86_400) throw new Error(`the plan ran to ${before.expires_at}, now ${renewedTo.expires_at}: not renewed by one month`);
  if (badge?.expires_at !== renewedTo.expires_at) throw new Error(`the badge's expiry is ${badge?.expires_at}, the plan's ${renewedTo.expires_at}`);
  console.log(`e2e: renewed automatically: the plan and the badge now end ${new Date(renewedTo.expires_at * 1000).toISOString().slice(0, 10)}`);
  // A payment on the checkout page while renewal is on leaves the renewal's allowance as it
  // was: the page approves it plus the payment instead of a permit that would reset it.
  const kept = await allowanceOf();
  await page.goto(`${BASE_URL}/checkout?plan=4&period=monthly&token=TMAI`, { waitUntil: 'domcontentloaded' });
  await page.getByTestId('connect').click();
  await page.waitForFunction((account) => document.getElementById('summary-wallet')?.title.toLowerCase() === account, ACCOUNT);
  await page.getByTestId('pay').click();
  const paidAgain = await page.waitForFunction(
    () => {
      const error = document.querySelector('[data-testid="error"]');
      if (error && !error.hidden) return `error: ${error.textContent}`;
      return (document.querySelector('[data-testid="status"]')?.textContent ?? '').includes('Badge issued') ? 'done' : false;
    },
    null,
    { timeout: 90_000, polling: 250 },
  );
  if ((await paidAgain.jsonValue()) !== 'done') throw new Error(`the checkout page shows ${await paidAgain.jsonValue()}`);
  if ((await allowanceOf()) !== kept) throw new Error(`paying by hand moved the renewal's allowance from ${kept} to ${await allowanceOf()}`);
  console.log(`e2e: paid by hand with renewal on; the renewal's allowance stays ${kept}`);
  await page.goto(`${BASE_URL}/account`, { waitUntil: 'domcontentloaded' });

  // A month and more passed: the session ended; sign in again, then turn it off.
  if (await page.getByTestId('signed-out').isVisible()) {
    await page.getByTestId('sign-in').click();
    await page.getByTestId('plan').waitFor();
  }
  await page.getByTestId('renewal-off').waitFor({ state: 'visible' });
  await page.getByTestId('renewal-off').click();
  await page.getByTestId('renewal-on').waitFor({ state: 'visible', timeout: 60_000 });
  const left = await allowanceOf();
  if (left !== 0n) throw new Error(`after turning off, the allowance is ${left}`);
  console.log('e2e: renewal off; allowance 0');

  // On again, then the plan canceled: a canceled plan does not renew, so the mandate is
  // withdrawn on-chain and the allowance zeroed in the same flow; undoing the cancel leaves
  // renewal off (the member consents again).
  await page.getByTestId('renewal-on').click();
  await page.getByTestId('renewal-off').waitFor({ state: 'visible', timeout: 60_000 });
  if ((await allowanceOf()) === 0n) throw new Error('turning renewal on again gave no allowance');
  await page.getByTestId('cancel').click();
  await page.getByText('Canceled', { exact: true }).waitFor({ timeout: 60_000 });
  const withdrawn = await page.evaluate(async () => (await fetch('/v1/me/mandate')).json());
  if ((await allowanceOf()) !== 0n || withdrawn.status !== 'off') throw new Error(`after cancel: allowance ${await allowanceOf()}, mandate ${withdrawn.status}`);
  await page.getByTestId('undo-cancel').click();
  await page.getByText('Active', { exact: true }).waitFor();
  await page.getByTestId('renewal-on').waitFor({ state: 'visible' });
  console.log('e2e: cancel withdrew renewal; allowance 0; undo leaves it off');

  // Sign out: the page is signed out again.
  await page.getByTestId('sign-out').click();
  await page.getByTestId('signed-out').waitFor({ state: 'visible' });
  const after = await page.evaluate(async () => (await fetch('/v1/me/account')).status);
  if (after !== 401) throw new Error(`after signing out /v1/me/account answered ${after}`);
  console.log('e2e: signed out');
  if (problems.length) throw new Error(`console errors: ${problems.join(' | ')}`);
  console.log('e2e: ok');
} catch (err) {
  console.log(`e2e: failed: ${err.message}`);
  if (page) await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-failed.png'), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
