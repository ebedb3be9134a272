// The wallet checkout page: pick a plan, connect an EIP-1193 wallet, pay the service's signed
// quote on the SubscriptionCheckout contract (permit or approve + pay), then follow the
// checkout's progress stream until the membership badge is issued.
//
// Everything on-chain goes through viem with the ABIs compiled from contracts/ (ABI drift
// breaks the build, not the payment); reads go through the wallet too, so the page needs no
// RPC configuration of its own. People see plain sentences; technical detail goes to the
// console.
import { createPublicClient, createWalletClient, custom, defineChain, encodeFunctionData, getAddress, numberToHex, parseSignature } from 'viem';
import { api } from './api.js';
import { checkoutAbi, PERMIT_TYPES, swapRouterAbi, toQuote, tokenAbi, tokenDomain } from './contracts.js';
import { ApiError, codeIn, explain, expiredError, FriendlyError, unknownNetworkError, wrongNetworkError } from './errors.js';
import { decodeDataUri, formatAmount, formatDate, nowSeconds, shortHex } from './format.js';
import { discoverWallets, iconSource, rememberedWallet, rememberWallet } from './wallets.js';
import { CARD, cardAvailable, cardLabel, cardOffered, cardPayText, cardReturn, payByCard, trialNote } from './checkout_card.js';

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
  wallets: [], // EIP-6963 announcements ({ info, provider }), in announcement order
  walletRdns: rememberedWallet(), // the chosen wallet's info.rdns (remembered across visits)
  listening: null, // the provider whose accountsChanged / chainChanged the page follows
  busy: false,
  paid: false, // a payment transaction was sent; the pickers are locked
  checkout: null, // the last POST /v1/checkouts answer
  offer: null, // a shown one-click buy: { checkout, quote, paying, balance, swap, shortfall }
  stream: null,
  // What the merchant's link preselected (?plan=&period=&token=&periods=&customer_ref=); the
  // customer reference is passed on as it came (signed by the merchant's server).
  link: linkParams(),
};

// Reads the merchant's link: a plan id, a period (monthly | yearly), a token symbol and a
// customer reference, each optional; anything else is ignored.
function linkParams() {
  const query = new URLSearchParams(window.location.search);
  const plan = Number.parseInt(query.get('plan') ?? '', 10);
  const period = query.get('period');
  // Periods to buy (the account page's "renew now / add periods"), 1–36.
  const periods = Number.parseInt(query.get('periods') ?? '', 10);
  return {
    periods: Number.isSafeInteger(periods) && periods >= 1 && periods <= 36 ? periods : 1,
    planId: Number.isSafeInteger(plan) && plan > 0 ? plan : null,
    period: period === 'monthly' || period === 'yearly' ? period : null,
    token: query.get('token')?.trim() || null,
    customerRef: query.get('customer_ref')?.trim() || null,
  };
}

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
  walletPicker: document.getElementById('wallet-picker'),
  walletList: $('wallets'),
  swapOffer: $('swap-offer'),
  swapSummary: $('swap-summary'),
  swapDetail: $('swap-detail'),
  swapAndPay: $('swap-and-pay'),
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
  el.tokens.replaceChildren(
    ...state.catalog.tokens.map((token) => tokenButton(token, plan, locked)),
    ...(cardOffered(state.catalog) ? [cardButton(plan, locked)] : []),
  );
  const byCard = state.token === CARD;

  const price = priceOf(plan, state.token);
  const token = tokenInfo(state.token);
  el.summaryPlan.textContent = plan ? plan.name : '—';
  const usd = usdLabel(plan, PERIOD_UNIT[plan?.period] ?? plan?.period);
  const times = state.link.periods > 1 ? `${state.link.periods} × ` : '';
  el.summaryPrice.textContent = byCard
    ? cardAvailable(plan)
      ? `${cardLabel(plan)} by card${trialNote(plan) ? ` · ${trialNote(plan)}` : ''}`
      : '—'
    : price
    ? times + (usd
      ? `${usd} · ${price.display} ${price.token} at today's rate${price.usd?.discount_percent ? ` (${price.usd.discount_percent} % off)` : ''}`
      : `${price.display} ${price.token} per ${PERIOD_UNIT[plan.period] ?? plan.period}`)
    : '—';
  el.summaryWallet.textContent = state.account ? shortHex(state.account) : 'Not connected';
  el.summaryWallet.title = state.account ?? '';
  el.summaryWallet.classList.toggle('mono', Boolean(state.account));

  renderWallets(locked);

  el.connect.disabled = state.busy;
  el.connect.textContent = state.account ? shortHex(state.account) : 'Connect wallet';
  el.connect.title = state.account ? `Connected: ${state.account}` : '';
  el.connect.setAttribute('aria-label', state.account ? `Connected wallet ${state.account}` : 'Connect wallet');
  el.connect.classList.toggle('connected', Boolean(state.account));

  el.pay.disabled = locked || !plan || (byCard ? !cardAvailable(plan) : !price || !token);
  const fineprint = document.getElementById('fineprint');
  if (fineprint) {
    fineprint.textContent = byCard
      ? 'You pay by card on the card processor\'s page. Your membership badge is a soulbound NFT on this wallet: it shows your tier and expiry.'
      : 'You sign one payment in your wallet. Your membership badge is a soulbound NFT: it stays with this wallet and shows your tier and expiry.';
  }
  el.pay.classList.toggle('is-busy', state.busy);
  el.pay.classList.toggle('is-done', state.paid);
  el.pay.textContent = state.paid
    ? '✓ Payment sent'
    : state.busy
      ? 'Working…'
      : !plan
        ? 'Choose a plan'
        : byCard
          ? cardAvailable(plan) ? cardPayText(plan) : 'Not payable by card'
        : !price
          ? `Not payable in ${state.token}`
          : `Pay ${price.display} ${price.token}`;
  el.retryQuote.disabled = state.busy;
  el.switchNetwork.disabled = state.busy;
  el.swapAndPay.disabled = state.busy || state.paid;
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
  if (state.token === CARD) {
    amount.append(...(cardAvailable(plan) ? [node('strong', null, cardLabel(plan)), node('span', null, 'by card')] : [node('span', 'muted', 'Not payable by card')]));
  } else if (price && plan.price_usd) {
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
  hideOffer();
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

// The card choice beside the tokens: the plan's card price and its free trial, if any.
function cardButton(plan, locked) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'token token-card';
  button.dataset.testid = 'pay-by-card';
  button.setAttribute('role', 'radio');
  button.setAttribute('aria-checked', String(state.token === CARD));
  button.disabled = locked || (plan !== null && !cardAvailable(plan));
  button.append(node('span', 'token-symbol', 'Pay by card'));
  if (cardAvailable(plan)) {
    button.append(node('span', 'token-price', cardLabel(plan)));
    if (trialNote(plan)) button.append(node('span', 'token-note', trialNote(plan)));
  } else {
    button.append(node('span', 'token-price muted', plan ? 'not offered for this plan' : 'pick a plan'));
  }
  button.addEventListener('click', () => choose(() => { state.token = CARD; }));
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
  else if (state.token === CARD) {
    if (!cardAvailable(plan)) setStatus(`${plan.name} is not offered by card; choose a token.`);
    else if (!state.account) setStatus('Connect your wallet: the plan and its badge go to it. You pay on the card page next.');
    else setStatus(`Ready: you will enter your card on the card processor's page for ${plan.name}.`);
  } else if (!price) setStatus(`${plan.name} is not offered in ${state.token}; choose another token.`);
  else if (!state.account) setStatus('Connect your wallet to pay.');
  else if (!el.error.hidden) setStatus('Not paid yet.');
  else if (state.offer) setStatus(`You are ${formatAmount(state.offer.shortfall, state.offer.paying.decimals)} ${state.offer.paying.symbol} short: buy it and pay in one go.`);
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
    const linked = catalog.plans.find((p) => p.id === state.link.planId);
    if (linked) {
      state.planId = linked.id;
      state.period = linked.period;
    } else if (state.link.period && plansFor(state.link.period).length) {
      state.period = state.link.period;
    }
    if (state.link.token && tokenInfo(state.link.token)) state.token = tokenInfo(state.link.token).symbol;
    state.link.planId = null; // applied once: later catalog reads keep the member's choice
    if (!plansFor(state.period).length) state.period = plansFor('yearly').length ? 'yearly' : 'monthly';
    if (state.link.token?.toLowerCase() === 'card' && cardOffered(catalog)) state.token = CARD;
    if (state.token !== CARD && !tokenInfo(state.token) && catalog.tokens.length) state.token = catalog.tokens[0].symbol;
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
    if (cardReturn()) setStatus(cardReturn());
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

// Wallets are found by EIP-6963 announcements; with several, the member picks one (the
// choice is remembered), with one it is used, and with none the page falls back to the
// provider a wallet injected as window.ethereum.

/** The announced wallet in use: the only one, or the chosen one among several; else null. */
function chosenWallet() {
  if (state.wallets.length === 1) return state.wallets[0];
  return state.wallets.find((w) => w.info.rdns === state.walletRdns) ?? null;
}

/** The EIP-1193 provider every request and event goes through, or null when there is none yet. */
function activeProvider() {
  if (state.wallets.length) return chosenWallet()?.provider ?? null;
  return window.ethereum ?? null;
}

function provider() {
  const eth = activeProvider();
  if (eth) return eth;
  if (state.wallets.length > 1) {
    throw new FriendlyError('You have more than one wallet: choose the one to pay with under “Pay from”, above the pay button.');
  }
  throw new FriendlyError('No browser wallet found. Install MetaMask or another Ethereum wallet, then reload this page.');
}

function renderWallets(locked) {
  // The list shows only when there is a choice to make.
  const several = state.wallets.length > 1;
  el.walletPicker.hidden = !several;
  if (!several) {
    el.walletList.replaceChildren();
    return;
  }
  const chosen = chosenWallet();
  el.walletList.replaceChildren(...state.wallets.map((wallet) => walletButton(wallet, wallet === chosen, locked)));
}

function walletButton(wallet, checked, locked) {
  const { name, icon, rdns } = wallet.info;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'wallet-option';
  button.dataset.testid = 'wallet-option';
  button.dataset.rdns = rdns;
  button.setAttribute('role', 'radio');
  button.setAttribute('aria-checked', String(checked));
  button.disabled = locked;
  const source = iconSource(icon);
  if (source) {
    const img = document.createElement('img');
    img.className = 'wallet-icon';
    img.alt = ''; // the name beside it says which wallet
    img.width = 28;
    img.height = 28;
    img.src = source;
    button.append(img);
  } else {
    button.append(node('span', 'wallet-icon wallet-icon-blank', name.trim().charAt(0).toUpperCase()));
  }
  const label = node('span', 'wallet-label');
  label.append(node('span', 'wallet-name', name));
  const note = checked && state.account ? `Connected · ${shortHex(state.account)}` : checked ? 'Selected' : 'Use this wallet';
  label.append(node('span', 'wallet-note', note));
  button.append(label);
  button.setAttribute('aria-label', checked && state.account ? `${name}, connected ${state.account}` : name);
  button.addEventListener('click', () => chooseWallet(wallet));
  return button;
}

/** The member picked a wallet in the list: remember it and connect with it. */
function chooseWallet(wallet) {
  if (state.busy || state.paid) return;
  if (wallet !== chosenWallet()) {
    state.walletRdns = wallet.info.rdns;
    state.account = null;
    el.network.hidden = true;
    watchWallet();
  }
  rememberWallet(wallet.info.rdns);
  render();
  if (state.catalog) walletStep(connect);
}

function walletsChanged(wallets) {
  state.wallets = wallets;
  // A wallet announcing itself late can change which provider is in use (window.ethereum
  // gives way to the announced ones); an account connected through another one is dropped.
  if (activeProvider() !== state.listening) {
    state.account = null;
    el.network.hidden = true;
  }
  watchWallet();
  render();
  updateReadyStatus();
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
  const wallet = chosenWallet();
  if (wallet) rememberWallet(wallet.info.rdns);
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

// Follows the account and network of the wallet in use (and only that one).
function onAccountsChanged(accounts) {
  state.account = accounts?.length ? getAddress(accounts[0]) : null;
  render();
  updateReadyStatus();
}

function onChainChanged(chainId) {
  if (state.catalog && Number(chainId) !== state.catalog.chain.id) el.network.hidden = true;
  else if (state.catalog) showNetwork(state.catalog.chain.id);
}

function watchWallet() {
  const eth = activeProvider();
  if (eth === state.listening) return;
  const old = state.listening;
  if (old?.removeListener) {
    old.removeListener('accountsChanged', onAccountsChanged);
    old.removeListener('chainChanged', onChainChanged);
  }
  state.listening = eth;
  if (!eth?.on) return;
  eth.on('accountsChanged', onAccountsChanged);
  eth.on('chainChanged', onChainChanged);
}

// ---------------------------------------------------------------------------------------------
// Paying

function insufficient(balance, amount, token, more = '') {
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
      `the plan costs ${formatAmount(amount, token.decimals)} ${token.symbol}${more ? `. ${more}` : ''}`,
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
    if (state.token === CARD) {
      if (!state.account) await connect();
      setStatus('Opening the card payment page…');
      await payByCard({ plan: selectedPlan(), wallet: state.account, customerRef: state.link.customerRef });
      return;
    }
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
  hideOffer();
  const plan = selectedPlan();
  const price = priceOf(plan, state.token);
  const token = tokenInfo(state.token);
  if (!plan || !price || !token) throw new FriendlyError('Choose a plan and a token first.');
  const { reader } = clients();
  const account = state.account;
  const tokenAddress = getAddress(token.address);
  const periods = state.link.periods;
  const listed = BigInt(price.amount) * BigInt(periods);

  setStatus('Checking your balance…');
  const balance = await reader.readContract({ address: tokenAddress, abi: tokenAbi, functionName: 'balanceOf', args: [account] });
  if (balance < listed && !canSwap(token.symbol)) throw insufficient(balance, listed, token);

  setStatus('Getting a quote…');
  const checkout = await api('/v1/checkouts', {
    method: 'POST',
    body: JSON.stringify({
      plan_id: plan.id,
      token: token.symbol,
      wallet: account,
      periods,
      ...(state.link.customerRef ? { customer_ref: state.link.customerRef } : {}),
    }),
  });
  state.checkout = checkout;
  console.info('[checkout] quote', checkout);
  if (Number(checkout.chain_id) !== state.catalog.chain.id) throw wrongNetworkError(state.catalog.chain);

  const quote = toQuote(checkout.quote);
  // Nothing is signed until the quote is what the member chose: this wallet pays, the
  // chosen token and the shown price, on the catalog's checkout contract.
  checkQuote(checkout, quote, { account, plan, price, token, periods });
  const paying = { ...token, ...checkout.token };
  if (quote.amount > balance) {
    if (!canSwap(token.symbol)) throw insufficient(balance, quote.amount, paying);
    await offerSwap({ checkout, quote, paying, balance, plan });
    return;
  }
  assertFresh(quote.deadline);
  await payQuote(checkout, quote, paying);
}

/**
 * Pays a checked quote: a permit and `payWithPermit` where the token has EIP-2612, else an
 * approval (when the allowance is short) and `pay`. `step` numbers the wallet prompts when the
 * payment follows a swap (`{ first, of }`).
 */
async function payQuote(checkout, quote, paying, step = null) {
  const { wallet, reader } = clients();
  const account = state.account;
  const contract = getAddress(checkout.contract);
  const say = (n, text) => setStatus(step ? `Step ${step.first + n} of ${step.of}: ${text}` : text);
  let hash;
  const allowance = await reader.readContract({ address: quote.token, abi: tokenAbi, functionName: 'allowance', args: [account, contract] });
  // An allowance already given to the checkout (an automatic renewal's, say) is kept: a permit
  // would set it to this payment's amount, so then the page approves the allowance plus the
  // payment instead, and paying leaves it as it was.
  const keep = allowance > 0n;
  const domain = paying.permit && !keep ? await tokenDomain(reader, quote.token).catch(logAndNull) : null;
  if (domain) {
    const nonce = await reader.readContract({ address: quote.token, abi: tokenAbi, functionName: 'nonces', args: [account] });
    say(0, 'Sign the payment permit in your wallet…');
    const permit = await wallet.signTypedData({
      account,
      domain,
      types: PERMIT_TYPES,
      primaryType: 'Permit',
      message: { owner: account, spender: contract, value: quote.amount, nonce, deadline: quote.deadline },
    });
    const { r, s, v, yParity } = parseSignature(permit);
    assertFresh(quote.deadline);
    say(1, 'Confirm the payment in your wallet…');
    const { request } = await reader.simulateContract({
      account,
      address: contract,
      abi: checkoutAbi,
      functionName: 'payWithPermit',
      args: [quote, checkout.signature, quote.deadline, v === undefined ? 27 + yParity : Number(v), r, s],
    });
    hash = await wallet.writeContract(request);
  } else {
    if (keep || allowance < quote.amount) {
      say(0, `Approve ${formatAmount(quote.amount, paying.decimals)} ${paying.symbol} in your wallet${keep ? ' (on top of the allowance you gave before)' : ''}…`);
      const approval = await wallet.writeContract({
        account,
        address: quote.token,
        abi: tokenAbi,
        functionName: 'approve',
        args: [contract, keep ? allowance + quote.amount : quote.amount],
      });
      setStatus('Waiting for the approval to be confirmed…');
      const receipt = await reader.waitForTransactionReceipt({ hash: approval });
      if (receipt.status !== 'success') throw new FriendlyError('The token approval failed. Please try again.');
    }
    assertFresh(quote.deadline);
    say(1, 'Confirm the payment in your wallet…');
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

// ---------------------------------------------------------------------------------------------
// The one-click buy of a missing token ([pricing.swap]): the service prices exactly the
// shortfall with Uniswap's quoter; the page shows the cost (the quote, the bound it may not
// exceed, the pools' fees and the network fee) before any wallet prompt, and one click chains
// what remains: the permit (or approval) of the paying token to the router, the swap of
// exactly the shortfall through the router's multicall, then the payment.

const canSwap = (symbol) => Boolean(state.catalog?.swap?.tokens?.includes(symbol));

function hideOffer() {
  state.offer = null;
  el.swapOffer.hidden = true;
}

async function offerSwap({ checkout, quote, paying, balance, plan }) {
  const shortfall = quote.amount - balance;
  setStatus(`Pricing the ${formatAmount(shortfall, paying.decimals)} ${paying.symbol} you are missing…`);
  const swap = await api(`/v1/swaps/quote?token=${encodeURIComponent(paying.symbol)}&amount=${shortfall}`);
  const configured = state.catalog.swap;
  const same = (a, b) => getAddress(a) === getAddress(b);
  if (
    BigInt(swap.amount_out) !== shortfall ||
    !same(swap.token.address, paying.address) ||
    !same(swap.router, configured.router) ||
    !same(swap.pay_with.address, configured.pay_with.address) ||
    BigInt(swap.amount_in_max) < BigInt(swap.amount_in)
  ) {
    console.error('[checkout] the swap quote does not match the shortfall', { swap, shortfall, paying, configured });
    throw new FriendlyError('The swap quote from the checkout service does not match what you are missing. Nothing was signed. Reload the page and try again.');
  }
  const payWith = swap.pay_with;
  const { reader } = clients();
  const have = await reader.readContract({ address: getAddress(payWith.address), abi: tokenAbi, functionName: 'balanceOf', args: [state.account] });
  const max = BigInt(swap.amount_in_max);
  const show = (amount, token) => `${formatAmount(amount, token.decimals)} ${token.symbol}`;
  if (have < max) {
    throw insufficient(balance, quote.amount, paying, `To buy the missing ${show(shortfall, paying)} the swap may take up to ${show(max, payWith)}, and you have ${show(have, payWith)}.`);
  }
  const percent = (value) => `${Number(value.toFixed(2))} %`;
  const fee = swap.network_fee_wei ? ` The network fee of the swap is about ${formatAmount(BigInt(swap.network_fee_wei), 18)} ETH.` : '';
  el.swapSummary.textContent = `You have ${show(balance, paying)}. Buy the missing ${show(shortfall, paying)} for about ${show(BigInt(swap.amount_in), payWith)}.`;
  el.swapDetail.textContent =
    `The swap takes at most ${show(max, payWith)} (a ${percent(swap.slippage_bps / 100)} bound for price moves) and buys exactly ${show(shortfall, paying)}; ` +
    `the pools' fees (${percent(swap.pool_fee_ppm / 10_000)}) are included.${fee} ` +
    `Then you pay ${show(quote.amount, paying)} for ${plan.name}. Your wallet asks you to confirm each step.`;
  el.swapAndPay.textContent = `Buy ${formatAmount(shortfall, paying.decimals)} ${paying.symbol} and pay`;
  state.offer = { checkout, quote, paying, balance, swap, shortfall };
  el.swapOffer.hidden = false;
}

async function buyAndPay() {
  if (state.busy || state.paid || !state.offer) return;
  const offer = state.offer;
  clearError();
  state.busy = true;
  render();
  try {
    await ensureChain();
    await swapThenPay(offer);
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    render();
    updateReadyStatus();
  }
}

async function swapThenPay({ checkout, quote, paying, swap, shortfall }) {
  const { wallet, reader } = clients();
  const account = state.account;
  const router = getAddress(swap.router);
  const payWith = swap.pay_with;
  const payToken = getAddress(payWith.address);
  const max = BigInt(swap.amount_in_max);
  const steps = 4;
  assertFresh(quote.deadline);
  // The swap may run until the payment's quote expires, not later.
  const deadline = quote.deadline;
  const exactOutput = encodeFunctionData({
    abi: swapRouterAbi,
    functionName: 'exactOutput',
    args: [{ path: swap.path, recipient: account, deadline, amountOut: shortfall, amountInMaximum: max }],
  });
  let calls = [exactOutput];
  const domain = payWith.permit ? await tokenDomain(reader, payToken).catch(logAndNull) : null;
  if (domain) {
    const nonce = await reader.readContract({ address: payToken, abi: tokenAbi, functionName: 'nonces', args: [account] });
    setStatus(`Step 1 of ${steps}: sign the ${payWith.symbol} permit for the swap in your wallet…`);
    const permit = await wallet.signTypedData({
      account,
      domain,
      types: PERMIT_TYPES,
      primaryType: 'Permit',
      message: { owner: account, spender: router, value: max, nonce, deadline },
    });
    const { r, s, v, yParity } = parseSignature(permit);
    const selfPermit = encodeFunctionData({
      abi: swapRouterAbi,
      functionName: 'selfPermit',
      args: [payToken, max, deadline, v === undefined ? 27 + yParity : Number(v), r, s],
    });
    calls = [selfPermit, exactOutput];
  } else {
    const allowance = await reader.readContract({ address: payToken, abi: tokenAbi, functionName: 'allowance', args: [account, router] });
    if (allowance < max) {
      setStatus(`Step 1 of ${steps}: approve up to ${formatAmount(max, payWith.decimals)} ${payWith.symbol} for the swap in your wallet…`);
      const approval = await wallet.writeContract({ account, address: payToken, abi: tokenAbi, functionName: 'approve', args: [router, max] });
      const receipt = await reader.waitForTransactionReceipt({ hash: approval });
      if (receipt.status !== 'success') throw new FriendlyError('The approval for the swap failed. Nothing was swapped; please try again.');
    }
  }
  assertFresh(quote.deadline);
  setStatus(`Step 2 of ${steps}: confirm the swap in your wallet…`);
  let request;
  try {
    ({ request } = await reader.simulateContract({ account, address: router, abi: swapRouterAbi, functionName: 'multicall', args: [calls] }));
  } catch (err) {
    throw swapRefusal(err, swap);
  }
  const hash = await wallet.writeContract(request);
  console.info('[checkout] swap sent', hash);
  setStatus(`Step 2 of ${steps}: waiting for the swap to be confirmed…`);
  const receipt = await reader.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success') {
    throw new FriendlyError(`The swap did not go through (the price may have moved past the bound). Nothing was swapped; try again to see the new price.`);
  }
  hideOffer();
  const balance = await reader.readContract({ address: getAddress(paying.address), abi: tokenAbi, functionName: 'balanceOf', args: [account] });
  if (balance < quote.amount) throw insufficient(balance, quote.amount, paying);
  await payQuote(checkout, quote, paying, { first: 3, of: steps });
}

/** Says why the router refused the swap in the member's words (its revert strings). */
function swapRefusal(err, swap) {
  const text = `${err?.shortMessage ?? ''} ${err?.message ?? ''}`;
  if (text.includes('Too much requested')) {
    return new FriendlyError(
      `The price moved more than the ${Number((swap.slippage_bps / 100).toFixed(2))} % bound since it was shown. Nothing was swapped; try again to see the new price.`,
      { cause: err },
    );
  }
  if (text.includes('Transaction too old')) return new FriendlyError('The quote expired before the swap.', { action: 'retry-quote', cause: err });
  if (/\bSTF\b/.test(text) || text.includes('ERC20InsufficientBalance') || text.includes('ERC2612')) {
    return new FriendlyError(`Your ${swap.pay_with.symbol} could not be taken for the swap (balance or permit). Nothing was swapped.`, { cause: err });
  }
  return err;
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
el.swapAndPay.addEventListener('click', buyAndPay);

el.retryQuote.addEventListener('click', () => {
  state.paid = false;
  pay();
});

el.switchNetwork.addEventListener('click', () => {
  if (state.busy) return;
  walletStep(ensureChain);
});

watchWallet();
discoverWallets(walletsChanged);
loadCatalog();
