// Opens the receipt of the first confirmed payment in headless Chromium, as a browser opens
// the link a webhook carries, and saves a screenshot of the printable page.
//
// Environment:
//   BASE_URL    the service, e.g. http://127.0.0.1:3000
//   API_KEY     the merchant's API key (the merchant reads every receipt; a member reads
//               their own with the membership token or the account session)
//   SCREENSHOT  PNG path for the page
//   CHROMIUM    browser executable (default /usr/bin/chromium)
//
// Prints "e2e: receipt <number> ok" and exits 0, or prints what went wrong and exits 1.
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is required`);
    process.exit(2);
  }
  return value;
};
const base = need('BASE_URL');
const key = need('API_KEY');
const shot = need('SCREENSHOT');

const events = await fetch(`${base}/v1/events?type=payment.confirmed&limit=10`, { headers: { authorization: `Bearer ${key}` } });
if (!events.ok) {
  console.error(`e2e: GET /v1/events answered ${events.status}: ${await events.text()}`);
  process.exit(1);
}
const confirmed = (await events.json()).events.find((e) => e.body.data.receipt_url);
if (!confirmed) {
  console.error('e2e: no payment.confirmed carries a receipt_url');
  process.exit(1);
}
const url = confirmed.body.data.receipt_url;
if (!url.startsWith(base)) {
  console.error(`e2e: receipt_url ${url} is not under the service's public URL ${base}`);
  process.exit(1);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 }, extraHTTPHeaders: { authorization: `Bearer ${key}` } });
  const page = await context.newPage();
  const response = await page.goto(url);
  const type = response.headers()['content-type'] || '';
  if (response.status() !== 200 || !type.startsWith('text/html')) {
    console.error(`e2e: the receipt answered ${response.status()} ${type}`);
    process.exit(1);
  }
  const number = (await page.textContent('.number')).trim();
  const merchant = (await page.textContent('.merchant strong')).trim();
  if (!/^R-\d{6}$/.test(number) || !merchant) {
    console.error(`e2e: the page shows number ${JSON.stringify(number)} and merchant ${JSON.stringify(merchant)}`);
    process.exit(1);
  }
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`e2e: receipt ${number} ok (${merchant})`);
  console.log("e2e: ok");
} finally {
  await browser.close();
}
