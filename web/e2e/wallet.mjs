// The test wallet the browser scripts share (account.mjs, card_switch.mjs): one unlocked
// anvil account as an EIP-1193 provider, window.ethereum, forwarding every call it does not
// answer itself to the node through a function the page exposes (`__e2eRpc`).

/** A JSON-RPC caller for `url`, answering `{ result }` or `{ error }` (for `__e2eRpc`). */
export function rpcTo(url) {
  let id = 0;
  return async (method, params) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params: params ?? [] }),
    });
    const body = await response.json();
    return body.error ? { error: body.error } : { result: body.result ?? null };
  };
}

/** Installs the wallet for `account`; runs in the browser (page.addInitScript), so it
 *  uses nothing from this module. */
export function installWallet({ account }) {
  window.ethereum = {
    isE2e: true,
    on() {},
    removeListener() {},
    async request({ method, params }) {
      if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [account];
      if (method === 'wallet_switchEthereumChain' || method === 'wallet_addEthereumChain') return null;
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
