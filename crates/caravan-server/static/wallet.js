// caravan's wallet sign-in (Apache-2.0, part of caravan; no third-party code).
// Asks the browser's injected EIP-1193 wallet for an account, fetches the node's EIP-4361
// message for it, has the wallet personal_sign it, and exchanges the signature for a session
// cookie at POST /v1/auth/siwe. The wallet's secret never leaves the wallet.
(() => {
  const button = document.getElementById('wallet-sign-in');
  const status = document.getElementById('sign-in-status');
  if (!button || !status) return;
  const say = (text) => { status.textContent = text; };
  const hexOf = (text) => '0x' + Array.from(new TextEncoder().encode(text),
    (byte) => byte.toString(16).padStart(2, '0')).join('');

  async function json(response) {
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error(body?.error?.message || `the node answered ${response.status}`);
    }
    return body;
  }

  async function challengeFor(account, chainId) {
    const url = new URL('/v1/auth/nonce', location.origin);
    url.searchParams.set('address', account);
    if (chainId !== undefined) url.searchParams.set('chain_id', String(chainId));
    return json(await fetch(url, { credentials: 'same-origin' }));
  }

  button.addEventListener('click', async () => {
    const wallet = window.ethereum;
    if (!wallet || typeof wallet.request !== 'function') {
      say('No wallet was found in this browser. Install one (MetaMask, Rabby, Coinbase Wallet …) and reload, or use a sign-in link as described below.');
      return;
    }
    button.disabled = true;
    try {
      say('Asking your wallet for your account…');
      const [account] = await wallet.request({ method: 'eth_requestAccounts' });
      if (!account) throw new Error('the wallet shared no account');
      let challenge = await challengeFor(account);
      // A contract wallet's signature is checked on the chain the message names: name the
      // wallet's own chain when this node settles on it.
      const walletChain = await wallet.request({ method: 'eth_chainId' })
        .then((hex) => parseInt(hex, 16)).catch(() => undefined);
      if (walletChain && walletChain !== challenge.chain_ids[0]
          && challenge.chain_ids.includes(walletChain)) {
        challenge = await challengeFor(account, walletChain);
      }
      say('Sign the message in your wallet. It names this site and costs nothing.');
      const signature = await wallet.request({
        method: 'personal_sign',
        params: [hexOf(challenge.message), account],
      });
      say('Checking your signature…');
      await json(await fetch('/v1/auth/siwe', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: challenge.message, signature }),
      }));
      say('Signed in.');
      location.assign(button.dataset.next || '/tasks');
    } catch (error) {
      say(error && error.code === 4001
        ? 'You declined in your wallet, so nothing was signed. Press the button to try again.'
        : `Sign-in did not work: ${error && error.message ? error.message : error}`);
      button.disabled = false;
    }
  });
})();
