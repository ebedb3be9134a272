// End-to-end check of the checkout page in headless Chromium: a wallet backed by an unlocked
// anvil account picks a plan, pays, and waits until the membership badge is shown.
//
// Environment:
//   BASE_URL    the service, e.g. http://127.0.0.1:3000 (the page is BASE_URL/checkout)
//   RPC_URL     the anvil node the wallet forwards to
//   ACCOUNT     an unlocked anvil account (anvil signs eth_sendTransaction and
//               eth_signTypedData_v4 for it)
//   SCREENSHOT  PNG path for the final page; a failure writes <name>-failed.png instead
//   PLAN        tier to buy (default premium), TOKEN (default TMAI),
//   PERIOD      monthly or yearly (default monthly), TIMEOUT_MS (default 90000)
//   CHROMIUM    browser executable (default /usr/bin/chromium)
//
// Prints "e2e: ok" and exits 0, or prints the page's status, error and console errors and
// exits 1. The service (and whoever mines blocks) runs elsewhere; this script only waits.
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`e2e: ${name} is required`);
    process.exit(2);
  }
  return value;
};

const BASE_URL = env('BASE_URL').replace(/\/+$/, '');
const RPC_URL = env('RPC_URL');
const ACCOUNT = env('ACCOUNT').toLowerCase();
const SCREENSHOT = env('SCREENSHOT', 'checkout-e2e.png');
const PLAN = env('PLAN', 'premium').toLowerCase();
const TOKEN = env('TOKEN', 'TMAI');
const PERIOD = env('PERIOD', 'monthly');
const TIMEOUT_MS = Number(env('TIMEOUT_MS', '90000'));
const FAILED_SCREENSHOT = SCREENSHOT.replace(/(\.png)?$/i, '-failed.png');

let rpcId = 0;
/** Forwards one JSON-RPC call to anvil from node (no CORS involved). */
async function rpc(method, params) {
  try {
    const response = await fetch(RPC_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params: params ?? [] }),
    });
    const body = await response.json();
    if (body.error) return { error: body.error };
    return { result: body.result ?? null };
  } catch (err) {
    return { error: { code: -32603, message: `e2e wallet: RPC ${method} failed: ${err.message}` } };
  }
}

/** The EIP-1193 provider injected into the page; runs in the browser. */
function installWallet(account) {
  const request = async ({ method, params }) => {
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return [account];
      case 'wallet_switchEthereumChain':
      case 'wallet_addEthereumChain':
        return null;
      default: {
        const answer = await window.__e2eRpc(method, params ?? []);
        if (answer.error) {
          const error = new Error(answer.error.message);
          error.code = answer.error.code;
          error.data = answer.error.data;
          throw error;
        }
        return answer.result;
      }
    }
  };
  window.ethereum = {
    isE2E: true,
    request,
    on() {},
    removeListener() {},
  };
}

const consoleErrors = [];
let browser;
let page;

/** Returns the visible text of an element, '(none)' when hidden, '(missing)' when absent. */
async function text(testId) {
  try {
    return await page.evaluate((id) => {
      const e = document.querySelector(`[data-testid="${id}"]`);
      if (!e) return '(missing)';
      if (e.hidden || !e.getClientRects().length) return '(none)';
      return e.innerText.replace(/\s+/g, ' ').trim();
    }, testId);
  } catch {
    return '(unreadable)';
  }
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, locale: 'en-US' });
  context.setDefaultTimeout(Math.min(TIMEOUT_MS, 30_000));
  page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
  await page.exposeFunction('__e2eRpc', rpc);
  await page.addInitScript(installWallet, ACCOUNT);
  // Anything the page's Content-Security-Policy blocks fails the run.
  const violations = [];
  await page.exposeFunction('__e2eViolation', (text) => violations.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.__e2eViolation(`${e.violatedDirective} blocked ${e.blockedURI}`));
  });

  const deadline = Date.now() + TIMEOUT_MS;
  const left = () => Math.max(1_000, deadline - Date.now());

  const response = await page.goto(`${BASE_URL}/checkout`, { waitUntil: 'domcontentloaded', timeout: left() });
  if (!response?.ok()) throw new Error(`GET /checkout answered ${response?.status()}`);
  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  for (const directive of ["default-src 'self'", "frame-ancestors 'none'"]) {
    if (!csp.includes(directive)) throw new Error(`the page's Content-Security-Policy lacks ${directive}: ${csp || '(none)'}`);
  }
  if (headers['x-content-type-options'] !== 'nosniff') throw new Error('the page is sent without X-Content-Type-Options: nosniff');

  await page.getByTestId(`period-${PERIOD}`).click({ timeout: left() });
  await page.getByTestId(`plan-${PLAN}`).click({ timeout: left() });
  await page.getByTestId(`token-${TOKEN}`).click({ timeout: left() });
  await page.getByTestId('connect').click({ timeout: left() });

  // A quote that charges less than the price shown is refused before the wallet is asked.
  await page.route('**/v1/checkouts', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const answer = await route.fetch();
    const body = await answer.json();
    body.quote.amount = (BigInt(body.quote.amount) / 2n).toString();
    body.amount = body.quote.amount;
    await route.fulfill({ response: answer, json: body });
  });
  await page.getByTestId('pay').click({ timeout: left() });
  await page.waitForFunction(() => !document.querySelector('[data-testid="error"]')?.hidden, null, { timeout: left() });
  const refusal = await text('error');
  if (!refusal.includes('does not match your order')) throw new Error(`a tampered quote was not refused: ${refusal}`);
  console.log(`e2e: tampered quote refused: ${refusal}`);
  await page.unroute('**/v1/checkouts');

  await page.getByTestId('pay').click({ timeout: left() });

  // Fail fast when the page reports an error instead of waiting out the timeout.
  await page.waitForFunction(
    () => {
      const error = document.querySelector('[data-testid="error"]');
      if (error && !error.hidden) return 'error';
      const status = document.querySelector('[data-testid="status"]')?.textContent ?? '';
      const img = document.querySelector('[data-testid="badge-image"]');
      return status.includes('Badge issued') && img?.complete && img.naturalWidth > 0 ? 'done' : false;
    },
    null,
    { timeout: left(), polling: 250 },
  ).then(async (handle) => {
    if ((await handle.jsonValue()) === 'error') throw new Error(`the page shows an error: ${await text('error')}`);
  });

  const status = await text('status');
  if (!status.includes('Active')) throw new Error(`status does not say Active: ${status}`);
  if (violations.length) throw new Error(`the Content-Security-Policy blocked: ${violations.join('; ')}`);
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`e2e: status: ${status}; ${await text('expiry')}`);
  console.log('e2e: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (err) {
  console.error(`e2e: FAILED: ${err.message}`);
  if (page) {
    try {
      await page.screenshot({ path: FAILED_SCREENSHOT, fullPage: true });
      console.error(`e2e: screenshot: ${FAILED_SCREENSHOT}`);
    } catch (shotErr) {
      console.error(`e2e: no screenshot: ${shotErr.message}`);
    }
    console.error(`e2e: status: ${await text('status')}`);
    console.error(`e2e: error: ${await text('error')}`);
  }
  for (const line of consoleErrors) console.error(`e2e: console: ${line}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
