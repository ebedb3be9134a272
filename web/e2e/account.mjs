// End-to-end check of the account page in headless Chromium: a member who paid on the
// checkout page signs in with an injected wallet (personal_sign by an unlocked anvil
// account), sees the plan, the badge and the payment with its receipt, cancels and takes
// it back, opens the receipt, and signs out.
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

let rpcId = 0;
async function rpc(method, params) {
  const response = await fetch(RPC_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params: params ?? [] }),
  });
  const body = await response.json();
  return body.error ? { error: body.error } : { result: body.result ?? null };
}

/** One EIP-1193 wallet as window.ethereum; runs in the browser. */
function installWallet({ account }) {
  window.ethereum = {
    isE2e: true,
    on() {},
    removeListener() {},
    async request({ method, params }) {
      if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [account];
      if (method === 'personal_sign' && String(params?.[1]).toLowerCase() !== account) {
        const error = new Error(`e2e wallet ${account} asked to sign for ${params?.[1]}`);
        error.code = 4100;
        throw error;
      }
      const answer = await window.__e2eRpc(method, params ?? []);
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      return answer.result;
    },
  };
}

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
  const number = (await links.first().textContent()).trim();
  if (!/^R-\d{6}/.test(number)) throw new Error(`the first payment's document is ${number}`);
  console.log(`e2e: payment with receipt ${number}`);
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

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

  // Sign out: the page is signed out again.
  await page.goBack({ waitUntil: 'domcontentloaded' });
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
