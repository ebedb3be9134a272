// Formatting for people: token amounts, hashes, dates, and the data: URIs of badge metadata.
import { formatUnits } from 'viem';

/** Formats a token amount with grouped thousands and at most six decimals. */
export function formatAmount(value, decimals) {
  const [whole, fraction = ''] = formatUnits(BigInt(value), decimals).split('.');
  const grouped = BigInt(whole).toLocaleString('en-US');
  const shown = fraction.slice(0, 6).replace(/0+$/, '');
  return shown ? `${grouped}.${shown}` : grouped;
}

/** Shortens a hash or address to 0x1234…abcd. */
export function shortHex(hex) {
  return hex && hex.length > 12 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : hex ?? '';
}

/** Formats unix seconds as a long date in the reader's locale. */
export function formatDate(unixSeconds) {
  return new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', day: 'numeric' }).format(
    new Date(Number(unixSeconds) * 1000),
  );
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Returns the text of a `data:` URI (base64 or percent-encoded). */
export function decodeDataUri(uri) {
  const comma = uri.indexOf(',');
  if (!uri.startsWith('data:') || comma < 0) throw new Error('token URI is not a data: URI');
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  if (!meta.endsWith(';base64')) return decodeURIComponent(payload);
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
