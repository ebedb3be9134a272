// Finding the member's wallets: every wallet extension that announces itself by EIP-6963
// (through `mipd`, the viem authors' store of announcements), so a member with two wallets
// picks one instead of getting whichever extension wrote `window.ethereum` last. The choice
// is remembered in localStorage by the wallet's reverse-DNS id (`info.rdns`).
import { createStore } from 'mipd';

const CHOICE_KEY = 'tmai-pay.wallet';

// EIP-6963 requires the icon to be a data URI; anything else is not shown (the page's CSP
// takes images from data: URLs and the page's own origin only anyway). The icon only ever
// becomes an <img src>, never markup.
const ICON = /^data:image\/(?:svg\+xml|png|jpeg|webp|gif)[;,]/i;

/** The announcement's icon as an image source, or null when it is not a data: image. */
export function iconSource(icon) {
  return typeof icon === 'string' && ICON.test(icon) ? icon : null;
}

/** The rdns of the wallet chosen on an earlier visit, or null. */
export function rememberedWallet() {
  try {
    return localStorage.getItem(CHOICE_KEY);
  } catch {
    return null; // storage disabled: nothing is remembered
  }
}

/** Remembers the chosen wallet for the next visit. */
export function rememberWallet(rdns) {
  try {
    localStorage.setItem(CHOICE_KEY, rdns);
  } catch (err) {
    console.warn('[checkout] cannot remember the chosen wallet', err);
  }
}

// An announcement the page can use: a named wallet with an EIP-1193 provider.
const usable = ({ info, provider } = {}) =>
  typeof info?.uuid === 'string' &&
  typeof info.name === 'string' &&
  info.name.trim() !== '' &&
  typeof info.rdns === 'string' &&
  typeof provider?.request === 'function';

/**
 * Asks the installed wallets to announce themselves and calls `onChange` with the usable
 * announcements ({ info: { uuid, name, icon, rdns }, provider }) now and whenever another
 * wallet announces itself later (an extension that loads after the page).
 */
export function discoverWallets(onChange) {
  const store = createStore();
  store.subscribe((details) => onChange(details.filter(usable)), { emitImmediately: true });
  return store;
}
