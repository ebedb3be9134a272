// The wallet checkout page: pick a plan, connect an EIP-1193 wallet, pay the service's signed
// quote on the SubscriptionCheckout contract (permit or approve + pay), then follow the
// checkout's progress stream until the membership badge is issued.
//
// Everything on-chain goes through viem with the ABIs compiled from contracts/ (ABI drift
// breaks the build, not the payment); reads go through the wallet too, so the page needs no
// RPC configuration of its own. People see plain sentences; technical detail goes to the
// console.
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  formatUnits,
  getAddress,
  numberToHex,
  parseSignature,
} from 'viem';
import { abi as checkoutArtifactAbi } from '../../contracts/artifacts/SubscriptionCheckout.json';
import { abi as tokenArtifactAbi } from '../../contracts/artifacts/TestToken.json';

/** The checkout calls the page makes, and every custom error so viem names reverts. */
const checkoutAbi = pick(checkoutArtifactAbi, ['pay', 'payWithPermit']);
/** ERC-20 + EIP-2612 + ERC-5267 reads and `approve`, with OpenZeppelin's ERC-20 errors. */
const tokenAbi = pick(tokenArtifactAbi, ['balanceOf', 'allowance', 'approve', 'nonces', 'eip712Domain']);

function pick(abi, names) {
  const wanted = new Set(names);
  const fragments = abi.filter((f) => f.type === 'error' || (f.type === 'function' && wanted.has(f.name)));
  for (const name of wanted) {
    if (!fragments.some((f) => f.name === name)) throw new Error(`ABI has no function ${name}`);
  }
  return fragments;
}

const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

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
  summaryWallet: document.getElementById('summary-wallet'),
  footerChain: document.getElementById('footer-chain'),
};

// ---------------------------------------------------------------------------------------------
// Errors a person understands

/** An error whose message is written for the subscriber; `action` names a follow-up button. */
class FriendlyError extends Error {
  constructor(message, { action = null, cause } = {}) {
    super(message, { cause });
    this.name = 'FriendlyError';
    this.action = action;
  }
}

/** A 4xx/5xx answer of the service, with its `{"error": {"code", "message"}}` body. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

function* causes(err) {
  const seen = new Set();
  for (let e = err; e && typeof e === 'object' && !seen.has(e); e = e.cause) {
    seen.add(e);
    yield e;
    // MetaMask nests the provider's own error here.
    if (e.data && typeof e.data === 'object' && e.data.originalError) yield e.data.originalError;
  }
}

function codeIn(err, code) {
  for (const e of causes(err)) if (e.code === code) return true;
  return false;
}

function errorNamed(err, name) {
  for (const e of causes(err)) if (e.name === name) return e;
  return null;
}

function expiredError() {
  return new FriendlyError('This quote expired.', { action: 'retry-quote' });
}

function wrongNetworkError(cause) {
  const { name, id } = state.catalog.chain;
  return new FriendlyError(`Switch your wallet to ${name} (chain id ${id}).`, { action: 'switch-network', cause });
}

/** Turns any failure into `{message, action}` for the page. */
function explain(err) {
  if (err instanceof FriendlyError) return { message: err.message, action: err.action };
  if (codeIn(err, 4001)) return { message: 'You rejected the request in your wallet.', action: null };
  if (errorNamed(err, 'ChainMismatchError') || codeIn(err, 4901)) {
    const e = wrongNetworkError(err);
    return { message: e.message, action: e.action };
  }
  if (err instanceof ApiError) {
    if (err.status >= 500) return { message: 'The checkout service had a problem. Please try again in a moment.', action: null };
    return { message: err.message, action: null };
  }
  const revert = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
  if (revert) return explainRevert(revert);
  if (errorNamed(err, 'InsufficientFundsError')) {
    return { message: "Your wallet doesn't have enough ETH to pay the network fee.", action: null };
  }
  if (codeIn(err, 4100)) return { message: 'Your wallet did not authorize this site. Connect your wallet again.', action: null };
  return { message: 'Something went wrong. Please try again.', action: null };
}

function explainRevert(revert) {
  const name = revert.data?.errorName;
  const args = revert.data?.args ?? [];
  switch (name) {
    case 'SubscriptionCheckout__QuoteExpired':
      return { message: 'This quote expired.', action: 'retry-quote' };
    case 'SubscriptionCheckout__OrderAlreadyPaid':
      return { message: 'This order has already been paid. Get a new quote to buy again.', action: 'retry-quote' };
    case 'SubscriptionCheckout__WrongPayer':
      return {
        message: `This quote is for wallet ${args[0]}, but your wallet is sending from ${args[1]}. Get a new quote for this wallet.`,
        action: 'retry-quote',
      };
    case 'SubscriptionCheckout__InvalidSignature':
      return { message: 'The checkout contract did not accept this quote. Get a new quote.', action: 'retry-quote' };
    case 'SubscriptionCheckout__AmountMismatch':
      return { message: 'This token takes a fee on transfers, so it cannot pay for a plan. Choose another token.', action: null };
    case 'EnforcedPause':
      return { message: 'Payments are paused at the moment. Please try again later.', action: null };
    case 'ERC20InsufficientBalance':
      return { message: "Your wallet doesn't hold enough of this token for the plan.", action: null };
    case 'ERC20InsufficientAllowance':
      return { message: 'The token approval did not cover the price. Please try again.', action: null };
    default:
      return { message: 'The payment was refused by the checkout contract. Please try again.', action: null };
  }
}

function showError(err) {
  console.error('[checkout]', err);
  const { message, action } = explain(err);
  el.errorMessage.textContent = message;
  el.retryQuote.hidden = action !== 'retry-quote';
  el.switchNetwork.hidden = action !== 'switch-network';
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.errorMessage.textContent = '';
  el.retryQuote.hidden = true;
  el.switchNetwork.hidden = true;
}

function setStatus(text) {
  el.status.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** Formats a token amount with grouped thousands and at most six decimals. */
function formatAmount(value, decimals) {
  const [whole, fraction = ''] = formatUnits(BigInt(value), decimals).split('.');
  const grouped = BigInt(whole).toLocaleString('en-US');
  const shown = fraction.slice(0, 6).replace(/0+$/, '');
  return shown ? `${grouped}.${shown}` : grouped;
}

function shortHex(hex) {
  return hex && hex.length > 12 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : hex ?? '';
}

function formatDate(unixSeconds) {
  return new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', day: 'numeric' }).format(
    new Date(Number(unixSeconds) * 1000),
  );
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------
// The service

async function api(path, init = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}) },
    });
  } catch (cause) {
    throw new FriendlyError("Can't reach the checkout service. Check your connection and try again.", { cause });
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    console.warn('[checkout] non-JSON answer', response.status, text.slice(0, 200));
  }
  if (!response.ok) {
    const message = body?.error?.message || `The checkout service answered ${response.status}.`;
    throw new ApiError(response.status, body?.error?.code ?? null, message);
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Catalog and pickers

const plansFor = (period) =>
  state.catalog.plans.filter((p) => p.period === period).sort((a, b) => a.tier - b.tier || a.id - b.id);
const selectedPlan = () => state.catalog?.plans.find((p) => p.id === state.planId) ?? null;
const tokenInfo = (symbol) => state.catalog.tokens.find((t) => t.symbol === symbol) ?? null;
const priceOf = (plan, symbol) => plan?.prices.find((p) => p.token === symbol) ?? null;

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
  el.summaryPrice.textContent = price ? `${price.display} ${price.token} per ${PERIOD_UNIT[plan.period] ?? plan.period}` : '—';
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
  if (price) {
    amount.append(node('strong', null, price.display), node('span', null, `${price.token} / ${unit}`));
  } else {
    amount.append(node('span', 'muted', `Not payable in ${state.token}`));
  }
  card.append(name, title, amount);
  if (discount !== null && priceOf(plan, 'TMAI')) {
    card.append(node('span', 'plan-discount', `Save ${discount} % with TMAI`));
  }
  card.setAttribute('aria-label', `${plan.name}${price ? `, ${price.display} ${price.token} per ${unit}` : ''}`);
  card.addEventListener('click', () => {
    state.planId = plan.id;
    clearError();
    render();
    updateReadyStatus();
  });
  return card;
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
  button.addEventListener('click', () => {
    state.token = token.symbol;
    clearError();
    render();
    updateReadyStatus();
  });
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
    state.chain = defineChain({
      id,
      name,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [rpcUrl] } },
    });
    if (!plansFor(state.period).length) state.period = plansFor('yearly').length ? 'yearly' : 'monthly';
    if (!tokenInfo(state.token) && catalog.tokens.length) state.token = catalog.tokens[0].symbol;
    el.footerChain.textContent = `Payments settle on ${name} (chain id ${id}) through contract ${catalog.chain.checkout}.`;
    render();
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
    if (!codeIn(err, 4902)) throw wrongNetworkError(err);
    try {
      await eth.request({
        method: 'wallet_addEthereumChain',
        params: [{ chainId, chainName: name, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: [rpcUrl] }],
      });
      await eth.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] });
    } catch (addErr) {
      throw wrongNetworkError(addErr);
    }
  }
  const now = Number(await eth.request({ method: 'eth_chainId' }));
  if (now !== id) throw wrongNetworkError();
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
  return new FriendlyError(
    `Insufficient balance: you have ${formatAmount(balance, token.decimals)} ${token.symbol}, ` +
      `the plan costs ${formatAmount(amount, token.decimals)} ${token.symbol}`,
  );
}

function assertFresh(deadline) {
  if (Number(deadline) <= nowSeconds()) throw expiredError();
}

/** The quote as the contract's tuple: uint256 and uint64 as bigint, uint32 as number. */
function toQuote(q) {
  return {
    orderId: BigInt(q.orderId),
    payer: getAddress(q.payer),
    token: getAddress(q.token),
    amount: BigInt(q.amount),
    planId: Number(q.planId),
    periods: Number(q.periods),
    deadline: BigInt(q.deadline),
  };
}

/** Builds the EIP-712 domain a token reports through ERC-5267, keeping only its fields. */
async function tokenDomain(reader, address) {
  const [fields, name, version, chainId, verifyingContract, salt] = await reader.readContract({
    address,
    abi: tokenAbi,
    functionName: 'eip712Domain',
  });
  const bits = Number(fields);
  const domain = {};
  if (bits & 1) domain.name = name;
  if (bits & 2) domain.version = version;
  if (bits & 4) domain.chainId = Number(chainId);
  if (bits & 8) domain.verifyingContract = verifyingContract;
  if (bits & 16) domain.salt = salt;
  return domain;
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
  if (Number(checkout.chain_id) !== state.catalog.chain.id) throw wrongNetworkError();

  const quote = toQuote(checkout.quote);
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
  follow(checkout, hash);
  watchReceipt(reader, hash);
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

function follow(checkout, txHash) {
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
    renderProgress(progress, txHash);
    if (progress.stage === 'badge_issued' && !finished) {
      finished = true;
      stream.close();
      showBadge(checkout.quote.payer).catch((err) => {
        console.error('[checkout] badge', err);
        el.badgeCaption.textContent = 'Your badge is issued; it will show in your wallet shortly.';
        el.badge.hidden = false;
      });
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
  if (typeof metadata.image !== 'string' || !/^(data:image\/|https:\/\/)/.test(metadata.image)) {
    throw new Error(`badge metadata has no usable image: ${String(metadata.image).slice(0, 60)}`);
  }
  el.badgeImage.alt = metadata.name ? `${metadata.name} badge` : 'Your membership badge';
  el.badgeImage.src = metadata.image;
  el.badgeCaption.textContent = badge.expires_at
    ? `${metadata.name ?? 'Membership'} · valid until ${formatDate(badge.expires_at)}`
    : metadata.name ?? 'Your membership badge';
  el.badge.hidden = false;
}

/** Returns the text of a `data:` URI (base64 or percent-encoded). */
function decodeDataUri(uri) {
  const comma = uri.indexOf(',');
  if (!uri.startsWith('data:') || comma < 0) throw new Error('token URI is not a data: URI');
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  if (!meta.endsWith(';base64')) return decodeURIComponent(payload);
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
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

el.connect.addEventListener('click', async () => {
  if (state.busy || !state.catalog) return;
  clearError();
  state.busy = true;
  render();
  try {
    await connect();
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    render();
    updateReadyStatus();
  }
});

el.pay.addEventListener('click', pay);

el.retryQuote.addEventListener('click', () => {
  state.paid = false;
  pay();
});

el.switchNetwork.addEventListener('click', async () => {
  if (state.busy) return;
  clearError();
  state.busy = true;
  render();
  try {
    await ensureChain();
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    render();
    updateReadyStatus();
  }
});

watchWallet();
loadCatalog();
