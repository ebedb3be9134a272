// The service's JSON API (same origin as the page).
import { ApiError, FriendlyError } from './errors.js';

/** Fetches `path` and returns its JSON; a 4xx/5xx becomes an ApiError with the service's message. */
export async function api(path, init = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}), ...(init.headers ?? {}) },
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
