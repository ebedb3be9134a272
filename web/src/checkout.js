// The wallet checkout page: pick a plan, connect an EIP-1193 wallet, pay the service's signed
// quote on the SubscriptionCheckout contract (permit or approve + pay), then follow the
// checkout's progress stream until the membership badge is issued.
//
// Everything on-chain goes through viem with the ABIs compiled from contracts/ (ABI drift
// breaks the build, not the payment); reads go through the wallet too, so the page needs no
// RPC configuration of its own. People see plain sentences; technical detail goes to the
// console.
import { createPublicClient, createWalletClient, custom, defineChain, getAddress, numberToHex, parseSignature } from 'viem';
import { api } from './api.js';
import { checkoutAbi, PERMIT_TYPES, toQuote, tokenAbi, tokenDomain } from './contracts.js';
import { ApiError, codeIn, explain, expiredError, FriendlyError, unknownNetworkError, wrongNetworkError } from './errors.js';
import { decodeDataUri, formatAmount, formatDate, nowSeconds, shortHex } from './format.js';

const STAGES = ['open', 'detected', 'confirming', 'active', 'badge_issued'];
const PERIOD_UNIT = { monthly: 'month', yearly: 'year' };

// ---------------------------------------------------------------------------------------------
// State and elements

const state = {
  catalog: null, // GET /v1/plans
  chain: null, // viem chain built from catalog.chain
  period: 'monthly',
  planId: null,
  token: 'TMAI',
  account: null,
  busy: false,
  paid: false, // a payment transaction was sent; the pickers are locked
  checkout: null, // the last POST /v1/checkouts answer
  stream: null,
};

const $ = (testId) => document.querySelector(`[data-testid="${testId}"]`);
const el = {
  main: document.getElementById('checkout'),
  plans: document.getElementById('plans'),
  tokens: document.getElementById('tokens'),
  network: document.getElementById('network'),
  connect: $('connect'),
  pay: $('pay'),
  status: $('status'),
  expiry: $('expiry'),
  error: $('error'),
  errorMessage: document.getElementById('error-message'),
  retryQuote: $('retry-quote'),
  switchNetwork: $('switch-network'),
  stepper: document.getElementById('stepper'),
  badge: document.getElementById('badge'),
  badgeImage: $('badge-image'),
  badgeCaption: document.getElementById('badge-caption'),
  summaryPlan: document.getElementById('summary-plan'),
  summaryPrice: document.getElementById('summary-price'),
  buyToken: document.getElementById('buy-token'),
  summaryWallet: document.getElementById('summary-wallet'),
  footerChain: document.getElementById('footer-chain'),
};

// ---------------------------------------------------------------------------------------------
// Messages

function showError(err) {
  // Expected refusals are warnings; anything else is an error with its full cause chain.
  const expected = err instanceof FriendlyError || (err instanceof ApiError && err.status < 500) || codeIn(err, 4001);
  (expected ? console.warn : console.error)('[checkout]', err);
  const { message, action } = explain(err, state.catalog?.chain);
  el.errorMessage.textContent = message;
  el.retryQuote.hidden = action !== 'retry-quote';
  el.switchNetwork.hidden = action !== 'switch-network';
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.errorMessage.textContent = '';
  el.buyToken.hidden = true;
  el.retryQuote.hidden = true;
  el.switchNetwork.hidden = true;
}

function setStatus(text) {
  el.status.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Catalog and pickers

const plansFor = (period) =>
  state.catalog.plans.filter((p) => p.period === period).sort((a, b) => a.tier - b.tier || a.id - b.id);
const selectedPlan = () => state.catalog?.plans.find((p) => p.id === state.planId) ?? null;
const tokenInfo = (symbol) => state.catalog.tokens.find((t) => t.symbol === symbol) ?? null;
const priceOf = (plan, symbol) => plan?.prices.find((p) => p.token === symbol && p.amount) ?? null;
// A plan priced in dollars: "$49.00 / month", the token amount at today's rate beside it.
const usdLabel = (plan, unit) => (plan?.price_usd ? `$${plan.price_usd} / ${unit}` : null);

function render() {
  if (!state.catalog) return;
  const locked = state.busy || state.paid;

  for (const button of document.querySelectorAll('[data-period]')) {
    const period = button.dataset.period;
    button.setAttribute('aria-pressed', String(period === state.period));
    button.disabled = locked || plansFor(period).length === 0;
  }

  el.plans.replaceChildren(...plansFor(state.period).map((plan) => planCard(plan, locked)));
  if (!el.plans.children.length) {
    const empty = document.createElement('p');
    empty.className = 'muted';
    empty.textContent = 'No plans are offered for this period.';
    el.plans.append(empty);
  }

  const plan = selectedPlan();
  el.tokens.replaceChildren(...state.catalog.tokens.map((token) => tokenButton(token, plan, locked)));

  const price = priceOf(plan, state.token);
  const token = tokenInfo(state.token);
  el.summaryPlan.textContent = plan ? plan.name : '—';
  const usd = usdLabel(plan, PERIOD_UNIT[plan?.period] ?? plan?.period);
  el.summaryPrice.textContent = price
    ? usd
      ? `${usd} · ${price.display} ${price.token} at today's rate${price.usd?.discount_percent ? ` (${price.usd.discount_percent} % off)` : ''}`
      : `${price.display} ${price.token} per ${PERIOD_UNIT[plan.period] ?? plan.period}`
    : '—';
  el.summaryWallet.textContent = state.account ? shortHex(state.account) : 'Not connected';
  el.summaryWallet.title = state.account ?? '';
  el.summaryWallet.classList.toggle('mono', Boolean(state.account));

  el.connect.disabled = state.busy;
  el.connect.textContent = state.account ? shortHex(state.account) : 'Connect wallet';
  el.connect.title = state.account ? `Connected: ${state.account}` : '';
  el.connect.setAttribute('aria-label', state.account ? `Connected wallet ${state.account}` : 'Connect wallet');
  el.connect.classList.toggle('connected', Boolean(state.account));

  el.pay.disabled = locked || !plan || !price || !token;
  el.pay.classList.toggle('is-busy', state.busy);
  el.pay.classList.toggle('is-done', state.paid);
  el.pay.textContent = state.paid
    ? '✓ Payment sent'
    : state.busy
      ? 'Working…'
      : !plan
        ? 'Choose a plan'
        : !price
          ? `Not payable in ${state.token}`
          : `Pay ${price.display} ${price.token}`;
  el.retryQuote.disabled = state.busy;
  el.switchNetwork.disabled = state.busy;
  el.main.setAttribute('aria-busy', String(state.busy));
}

function planCard(plan, locked) {
  const selected = plan.id === state.planId;
  const card = document.createElement('button');
  card.type = 'button';
  card.className = `plan tier-${plan.tier}`;
  card.dataset.testid = `plan-${String(plan.tier_name).toLowerCase()}`;
  card.setAttribute('role', 'radio');
  card.setAttribute('aria-checked', String(selected));
  card.disabled = locked;

  const price = priceOf(plan, state.token);
  const unit = PERIOD_UNIT[plan.period] ?? plan.period;
  const discount = typeof plan.discount_percent === 'number' ? plan.discount_percent : null;

  const name = node('span', 'plan-tier', plan.tier_name);
  const title = node('span', 'plan-name', plan.name);
  const amount = node('span', 'plan-price');
  if (price && plan.price_usd) {
    amount.append(node('strong', null, `$${plan.price_usd}`), node('span', null, `/ ${unit} · ${price.display} ${price.token}`));
  } else if (price) {
    amount.append(node('strong', null, price.display), node('span', null, `${price.token} / ${unit}`));
  } else {
    amount.append(node('span', 'muted', `Not payable in ${state.token}`));
  }
  card.append(name, title, amount);
  if (discount !== null && priceOf(plan, 'TMAI')) {
    card.append(node('span', 'plan-discount', `Save ${discount} % with TMAI`));
  }
  card.setAttribute('aria-label', `${plan.name}${price ? `, ${price.display} ${price.token} per ${unit}` : ''}`);
  card.addEventListener('click', () => choose(() => { state.planId = plan.id; }));
  return card;
}

// Applies a choice (plan, token), then redraws.
function choose(apply) {
  apply();
  clearError();
  render();
  updateReadyStatus();
}

function tokenButton(token, plan, locked) {
  const price = priceOf(plan, token.symbol);
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'token';
  button.dataset.testid = `token-${token.symbol}`;
  button.setAttribute('role', 'radio');
  button.setAttribute('aria-checked', String(token.symbol === state.token));
  button.disabled = locked || (plan !== null && !price);
  button.append(node('span', 'token-symbol', token.symbol));
  if (price) {
    const label = node('span', 'token-price', `${price.display} ${token.symbol}`);
    button.append(label);
    if (token.symbol === 'TMAI' && typeof plan.discount_percent === 'number') {
      button.append(node('span', 'token-note', 'discounted price in TMAI'));
    }
  } else {
    button.append(node('span', 'token-price muted', plan ? 'not offered for this plan' : 'pick a plan'));
  }
  button.addEventListener('click', () => choose(() => { state.token = token.symbol; }));
  return button;
}

function node(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function updateReadyStatus() {
  if (state.paid || state.busy) return;
  const plan = selectedPlan();
  const price = priceOf(plan, state.token);
  if (!plan) setStatus('Choose a plan to continue.');
  else if (!price) setStatus(`${plan.name} is not offered in ${state.token}; choose another token.`);
  else if (!state.account) setStatus('Connect your wallet to pay.');
  else if (!el.error.hidden) setStatus('Not paid yet.');
  else setStatus(`Ready to pay ${price.display} ${price.token} for ${plan.name}.`);
}

async function loadCatalog() {
  try {
    const catalog = await api('/v1/plans');
    state.catalog = catalog;
    const { id, name, rpc_url: rpcUrl } = catalog.chain;
    // Every read and write goes through the wallet; the RPC URL (null unless the merchant
    // published one) only matters when the wallet does not know the chain yet.
    state.chain = defineChain({
      id,
      name,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: rpcUrl ? [rpcUrl] : [] } },
    });
    if (!plansFor(state.period).length) state.period = plansFor('yearly').length ? 'yearly' : 'monthly';
    if (!tokenInfo(state.token) && catalog.tokens.length) state.token = catalog.tokens[0].symbol;
    el.footerChain.textContent = `Payments settle on ${name} (chain id ${id}) through contract ${catalog.chain.checkout}.`;
    render();
    // Amounts of plans priced in dollars follow the market: read them again every 30 s
    // (and so after a quote's lifetime) while nothing is being paid.
    if (catalog.plans.some((p) => p.price_usd) && !state.refreshing) {
      state.refreshing = setInterval(async () => {
        if (state.busy || state.paid) return;
        try {
          state.catalog = { ...state.catalog, ...(await api('/v1/plans')) };
          render();
        } catch (err) {
          console.warn('[checkout] refreshing the prices failed', err);
        }
      }, 30_000);
    }
    updateReadyStatus();
  } catch (err) {
    el.plans.replaceChildren(node('p', 'muted', 'Plans are unavailable.'));
    setStatus('Could not load the plans.');
    showError(err);
  } finally {
    el.main.setAttribute('aria-busy', 'false');
  }
}

// ---------------------------------------------------------------------------------------------
// Wallet

function provider() {
  if (!window.ethereum) {
    throw new FriendlyError('No browser wallet found. Install MetaMask or another Ethereum wallet, then reload this page.');
  }
  return window.ethereum;
}

function clients() {
  const transport = custom(provider());
  return {
    wallet: createWalletClient({ chain: state.chain, transport }),
    reader: createPublicClient({ chain: state.chain, transport, pollingInterval: 1_000 }),
  };
}

async function connect() {
  const eth = provider();
  setStatus('Confirm the connection in your wallet…');
  const accounts = await eth.request({ method: 'eth_requestAccounts' });
  if (!accounts?.length) throw new FriendlyError('Your wallet shared no account. Unlock it and try again.');
  state.account = getAddress(accounts[0]);
  await ensureChain();
  render();
}

async function ensureChain() {
  const eth = provider();
  const { id, name, rpc_url: rpcUrl } = state.catalog.chain;
  if (Number(await eth.request({ method: 'eth_chainId' })) === id) return showNetwork(id);
  const chainId = numberToHex(id);
  setStatus(`Switch your wallet to ${name}…`);
  try {
    await eth.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] });
  } catch (err) {
    if (!codeIn(err, 4902)) throw wrongNetworkError(state.catalog.chain, err);
    // The wallet does not know the chain; without a published RPC URL it must be added
    // in the wallet with the wallet's own RPC.
    if (!rpcUrl) throw unknownNetworkError(state.catalog.chain, err);
    try {
      await eth.request({
        method: 'wallet_addEthereumChain',
        params: [{ chainId, chainName: name, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: [rpcUrl] }],
      });
      await eth.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] });
    } catch (addErr) {
      throw wrongNetworkError(state.catalog.chain, addErr);
    }
  }
  const now = Number(await eth.request({ method: 'eth_chainId' }));
  if (now !== id) throw wrongNetworkError(state.catalog.chain);
  showNetwork(id);
}

function showNetwork(id) {
  el.network.textContent = state.catalog.chain.name;
  el.network.title = `Chain id ${id}`;
  el.network.hidden = false;
}

function watchWallet() {
  const eth = window.ethereum;
  if (!eth?.on) return;
  eth.on('accountsChanged', (accounts) => {
    state.account = accounts?.length ? getAddress(accounts[0]) : null;
    render();
    updateReadyStatus();
  });
  eth.on('chainChanged', (chainId) => {
    if (state.catalog && Number(chainId) !== state.catalog.chain.id) el.network.hidden = true;
    else if (state.catalog) showNetwork(state.catalog.chain.id);
  });
}

// ---------------------------------------------------------------------------------------------
// Paying

function insufficient(balance, amount, token) {
  // The merchant's swap link (GET /v1/plans buy_url), with the token and the amount missing.
  const base = state.catalog?.buy_url;
  if (base && BigInt(amount) > BigInt(balance)) {
    const missing = formatAmount(BigInt(amount) - BigInt(balance), token.decimals).replace(/,/g, '');
    el.buyToken.href = base.replace('{token}', token.address).replace('{amount}', missing);
    el.buyToken.textContent = `Buy ${token.symbol}`;
    el.buyToken.hidden = false;
  }
  return new FriendlyError(
    `Insufficient balance: you have ${formatAmount(balance, token.decimals)} ${token.symbol}, ` +
      `the plan costs ${formatAmount(amount, token.decimals)} ${token.symbol}`,
  );
}

function assertFresh(deadline) {
  if (Number(deadline) <= nowSeconds()) throw expiredError();
}

async function pay() {
  if (state.busy) return;
  clearError();
  state.busy = true;
  render();
  try {
    if (!state.account) await connect();
    else await ensureChain();
    await payOnce();
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    render();
    updateReadyStatus();
  }
}

async function payOnce() {
  const plan = selectedPlan();
  const price = priceOf(plan, state.token);
  const token = tokenInfo(state.token);
  if (!plan || !price || !token) throw new FriendlyError('Choose a plan and a token first.');
  const { wallet, reader } = clients();
  const account = state.account;
  const tokenAddress = getAddress(token.address);

  setStatus('Checking your balance…');
  const balance = await reader.readContract({ address: tokenAddress, abi: tokenAbi, functionName: 'balanceOf', args: [account] });
  if (balance < BigInt(price.amount)) throw insufficient(balance, price.amount, token);

  setStatus('Getting a quote…');
  const checkout = await api('/v1/checkouts', {
    method: 'POST',
    body: JSON.stringify({ plan_id: plan.id, token: token.symbol, wallet: account, periods: 1 }),
  });
  state.checkout = checkout;
  console.info('[checkout] quote', checkout);
  if (Number(checkout.chain_id) !== state.catalog.chain.id) throw wrongNetworkError(state.catalog.chain);

  const quote = toQuote(checkout.quote);
  // Nothing is signed until the quote is what the member chose: this wallet pays, the
  // chosen token and the shown price, on the catalog's checkout contract.
  checkQuote(checkout, quote, { account, plan, price, token, periods: 1 });
  const contract = getAddress(checkout.contract);
  const paying = { ...token, ...checkout.token };
  if (quote.amount > balance) throw insufficient(balance, quote.amount, paying);
  assertFresh(quote.deadline);

  let hash;
  const domain = paying.permit ? await tokenDomain(reader, quote.token).catch(logAndNull) : null;
  if (domain) {
    const nonce = await reader.readContract({ address: quote.token, abi: tokenAbi, functionName: 'nonces', args: [account] });
    setStatus('Sign the payment permit in your wallet…');
    const permit = await wallet.signTypedData({
      account,
      domain,
      types: PERMIT_TYPES,
      primaryType: 'Permit',
      message: { owner: account, spender: contract, value: quote.amount, nonce, deadline: quote.deadline },
    });
    const { r, s, v, yParity } = parseSignature(permit);
    assertFresh(quote.deadline);
    setStatus('Confirm the payment in your wallet…');
    const { request } = await reader.simulateContract({
      account,
      address: contract,
      abi: checkoutAbi,
      functionName: 'payWithPermit',
      args: [quote, checkout.signature, quote.deadline, v === undefined ? 27 + yParity : Number(v), r, s],
    });
    hash = await wallet.writeContract(request);
  } else {
    const allowance = await reader.readContract({
      address: quote.token,
      abi: tokenAbi,
      functionName: 'allowance',
      args: [account, contract],
    });
    if (allowance < quote.amount) {
      setStatus(`Approve ${formatAmount(quote.amount, paying.decimals)} ${paying.symbol} in your wallet…`);
      const approval = await wallet.writeContract({
        account,
        address: quote.token,
        abi: tokenAbi,
        functionName: 'approve',
        args: [contract, quote.amount],
      });
      setStatus('Waiting for the approval to be confirmed…');
      const receipt = await reader.waitForTransactionReceipt({ hash: approval });
      if (receipt.status !== 'success') throw new FriendlyError('The token approval failed. Please try again.');
    }
    assertFresh(quote.deadline);
    setStatus('Confirm the payment in your wallet…');
    const { request } = await reader.simulateContract({
      account,
      address: contract,
      abi: checkoutAbi,
      functionName: 'pay',
      args: [quote, checkout.signature],
    });
    hash = await wallet.writeContract(request);
  }

  console.info('[checkout] payment sent', hash);
  state.paid = true;
  follow(checkout, hash, reader);
  watchReceipt(reader, hash);
}

/**
 * Refuses a quote that differs from the member's choice (a compromised or buggy service, or
 * something between it and the page): the wallet would otherwise be asked to sign it.
 */
function checkQuote(checkout, quote, { account, plan, price, token, periods }) {
  const problems = [];
  const same = (a, b) => {
    try {
      return getAddress(a) === getAddress(b);
    } catch {
      return false;
    }
  };
  const expected = BigInt(price.amount) * BigInt(periods);
  if (!same(quote.payer, account)) problems.push(`it is for wallet ${quote.payer}, not your wallet ${account}`);
  if (!same(quote.token, token.address) || (checkout.token?.address && !same(checkout.token.address, token.address))) {
    problems.push(`it charges token ${quote.token}, not ${token.symbol} (${getAddress(token.address)})`);
  }
  // A plan priced in dollars is quoted at the rate of the moment: the amount may differ from
  // the one shown a while ago, but its USD value never falls below the price, and a quote
  // more than 10 % above the shown amount is refused.
  const live = Boolean(price.usd);
  const amountOk = live
    ? quote.amount <= (expected * 110n) / 100n && Boolean(checkout.usd) && Number(checkout.usd.usd_value) >= Number(price.usd.price_usd) * periods
    : quote.amount === expected;
  if (!amountOk || BigInt(checkout.amount) !== quote.amount) {
    problems.push(
      `it charges ${formatAmount(quote.amount, token.decimals)} ${token.symbol}, not the ${price.display} ${price.token} shown`,
    );
  }
  if (!same(checkout.contract, state.catalog.chain.checkout)) {
    problems.push(`it pays contract ${checkout.contract}, not the checkout contract ${state.catalog.chain.checkout}`);
  }
  if (quote.planId !== plan.id || quote.periods !== periods) problems.push(`it is for another plan or period count`);
  if (!problems.length) return;
  console.error('[checkout] the quote does not match the order', { quote, checkout, plan, price, token, account });
  throw new FriendlyError(
    `The quote from the checkout service does not match your order: ${problems.join('; ')}. ` +
      'Nothing was signed or paid. Reload the page and try again; if this persists, contact the merchant.',
  );
}

function logAndNull(err) {
  console.warn('[checkout] token has no readable EIP-712 domain; using approve + pay', err);
  return null;
}

/** Reports a payment that the chain reverted (the stream would otherwise wait forever). */
function watchReceipt(reader, hash) {
  reader
    .waitForTransactionReceipt({ hash })
    .then((receipt) => {
      if (receipt.status === 'success') return;
      state.stream?.close();
      state.paid = false;
      render();
      setStatus('The payment did not go through.');
      showError(new FriendlyError('The payment transaction failed on-chain. No tokens were taken; get a new quote to try again.', { action: 'retry-quote' }));
    })
    .catch((err) => console.warn('[checkout] could not watch the payment receipt', err));
}

// ---------------------------------------------------------------------------------------------
// Progress

function follow(checkout, txHash, reader) {
  state.stream?.close();
  setStatus('Waiting for payment');
  markStage('open');
  const stream = new EventSource(checkout.events_url);
  state.stream = stream;
  let finished = false;
  stream.addEventListener('progress', (event) => {
    let progress;
    try {
      progress = JSON.parse(event.data);
    } catch (err) {
      console.warn('[checkout] unreadable progress event', event.data, err);
      return;
    }
    if (progress.stage === 'expired') {
      finished = true;
      stream.close();
      expiredWhileWaiting(checkout, txHash, reader);
      return;
    }
    renderProgress(progress, txHash);
    if (progress.stage === 'badge_issued' && !finished) {
      finished = true;
      stream.close();
      showBadge(checkout.quote.payer).catch((err) => {
        console.error('[checkout] badge', err);
        el.badgeCaption.textContent = 'Your badge is issued; it will show in your wallet shortly.';
        el.badge.hidden = false;
      });
    } else if (progress.done && !finished) {
      // Active with no badge change now (a downgrade starts when the current period ends).
      finished = true;
      stream.close();
      if (progress.stage === 'active') setStatus('Active · your badge changes when the new plan starts');
    }
  });
  stream.addEventListener('error', (event) => {
    if (finished) return;
    console.warn('[checkout] progress stream interrupted; the browser reconnects', event);
    if (stream.readyState === EventSource.CLOSED) {
      showError(new FriendlyError('Live updates stopped. Your payment is safe; reload the page to see its status.'));
    }
  });
}

/**
 * Handles the service reporting the quote expired unpaid. A payment mined just before the
 * deadline may not be indexed yet, so a successful receipt means "keep following", and only
 * a missing or failed one means nothing was taken and a new quote is needed.
 */
async function expiredWhileWaiting(checkout, txHash, reader) {
  const receipt = await reader.getTransactionReceipt({ hash: txHash }).catch(() => null);
  if (receipt?.status === 'success') {
    console.warn('[checkout] service reports the quote expired, but the payment is mined; following again');
    setTimeout(() => follow(checkout, txHash, reader), 3_000);
    return;
  }
  state.paid = false;
  render();
  setStatus('Not paid yet.');
  showError(expiredError());
}

function renderProgress(p, txHash) {
  markStage(p.stage);
  const active = p.stage === 'active' || p.stage === 'badge_issued';
  switch (p.stage) {
    case 'open':
      setStatus('Waiting for payment');
      break;
    case 'detected':
      setStatus('Payment detected');
      break;
    case 'confirming':
      setStatus(`Confirmations ${p.confirmations ?? 0}/${p.required ?? '?'}`);
      break;
    case 'active':
      setStatus('Active');
      break;
    case 'badge_issued':
      setStatus(p.badge_tx_hash ? `Active · Badge issued (tx ${shortHex(p.badge_tx_hash)})` : 'Active · Badge issued');
      el.status.title = p.badge_tx_hash ?? '';
      break;
    default:
      console.warn('[checkout] unknown stage', p);
  }
  if (active && p.expires_at) {
    el.expiry.textContent = `Active until ${formatDate(p.expires_at)}`;
    el.expiry.hidden = false;
  }
  if (p.tx_hash || txHash) el.stepper.title = `Payment transaction ${p.tx_hash ?? txHash}`;
}

function markStage(stage) {
  const reached = STAGES.indexOf(stage);
  for (const item of el.stepper.children) {
    const i = STAGES.indexOf(item.dataset.stage);
    item.classList.toggle('done', i < reached || (i === reached && stage === 'badge_issued'));
    item.classList.toggle('current', i === reached && stage !== 'badge_issued');
  }
  el.stepper.classList.add('started');
}

async function showBadge(wallet) {
  let badge = null;
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      badge = await api(`/v1/badges/${wallet}`);
      if (badge?.token_uri) break;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** Math.min(attempt, 3)));
  }
  if (!badge?.token_uri) throw new Error('badge not found after it was issued');
  const metadata = JSON.parse(decodeDataUri(badge.token_uri));
  // The badge's picture is on-chain SVG; the page's Content-Security-Policy takes images
  // from data: URLs and the page's own origin only.
  if (typeof metadata.image !== 'string' || !/^data:image\//.test(metadata.image)) {
    throw new Error(`badge metadata has no usable image: ${String(metadata.image).slice(0, 60)}`);
  }
  el.badgeImage.alt = metadata.name ? `${metadata.name} badge` : 'Your membership badge';
  el.badgeImage.src = metadata.image;
  el.badgeCaption.textContent = badge.expires_at
    ? `${metadata.name ?? 'Membership'} · valid until ${formatDate(badge.expires_at)}`
    : metadata.name ?? 'Your membership badge';
  el.badge.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Wiring

for (const button of document.querySelectorAll('[data-period]')) {
  button.addEventListener('click', () => {
    state.period = button.dataset.period;
    if (selectedPlan()?.period !== state.period) state.planId = null;
    clearError();
    render();
    updateReadyStatus();
  });
}

// Runs one wallet step behind the busy flag, showing any error in words a person reads.
async function walletStep(step) {
  clearError();
  state.busy = true;
  render();
  try {
    await step();
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    render();
    updateReadyStatus();
  }
}

el.connect.addEventListener('click', () => {
  if (state.busy || !state.catalog) return;
  walletStep(connect);
});

el.pay.addEventListener('click', pay);

el.retryQuote.addEventListener('click', () => {
  state.paid = false;
  pay();
});

el.switchNetwork.addEventListener('click', () => {
  if (state.busy) return;
  walletStep(ensureChain);
});

watchWallet();
loadCatalog();
