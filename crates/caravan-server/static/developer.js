// caravan's developer page (Apache-2.0, part of caravan; no third-party code).
// Issues and revokes API keys through /v1/keys: each request is EIP-712 typed data under
// caravan's domain, signed by the browser's wallet with eth_signTypedData_v4. The wallet's key
// never reaches the page; a new key is shown once and filled into the snippets.
(() => {
  const page = document.querySelector('.developer');
  if (!page) return;
  const status = document.getElementById('key-status');
  const say = (text) => { status.textContent = text; };
  const domain = [
    { name: 'name', type: 'string' },
    { name: 'version', type: 'string' },
  ];

  async function wallet() {
    const provider = window.ethereum;
    if (!provider || typeof provider.request !== 'function') {
      throw new Error('no wallet was found in this browser; `caravan key issue --key-file FILE` does the same from a key file');
    }
    const [account] = await provider.request({ method: 'eth_requestAccounts' });
    if (!account || account.toLowerCase() !== page.dataset.account.toLowerCase()) {
      throw new Error(`the wallet's account is not ${page.dataset.account}, the one signed in here; switch accounts in the wallet`);
    }
    return { provider, account };
  }

  async function sign(primaryType, fields, message) {
    const { provider, account } = await wallet();
    const typed = {
      domain: { name: 'caravan', version: '1' },
      types: { EIP712Domain: domain, [primaryType]: fields },
      primaryType,
      message,
    };
    return provider.request({ method: 'eth_signTypedData_v4', params: [account, JSON.stringify(typed)] });
  }

  async function answer(response) {
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(body?.error?.message || `the node answered ${response.status}`);
    return body;
  }

  document.getElementById('issue').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    const scopes = Array.from(form.querySelectorAll('input[name="scope"]:checked'), (input) => input.value);
    const name = form.querySelector('#key-name').value.trim();
    const days = form.querySelector('#key-days').value;
    if (scopes.length === 0) {
      say('Tick at least one scope.');
      return;
    }
    const signedAtMs = Date.now();
    try {
      say('Confirm the request in your wallet…');
      const signature = await sign('IssueApiKey', [
        { name: 'payer', type: 'address' },
        { name: 'node', type: 'address' },
        { name: 'scopes', type: 'string[]' },
        { name: 'expiresInDays', type: 'uint32' },
        { name: 'name', type: 'string' },
        { name: 'signedAtMs', type: 'uint64' },
      ], {
        payer: page.dataset.account,
        node: page.dataset.node,
        scopes,
        expiresInDays: days ? Number(days) : 0,
        name,
        signedAtMs,
      });
      const body = { payer: page.dataset.account, scopes, name, signed_at_ms: signedAtMs, signature };
      if (days) body.expires_in_days = Number(days);
      const issued = await answer(await fetch('/v1/keys', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }));
      document.getElementById('new-key-value').textContent = issued.key;
      document.getElementById('new-key').hidden = false;
      document.querySelectorAll('.snippet').forEach((snippet) => {
        snippet.textContent = snippet.textContent.replaceAll('$CARAVAN_API_KEY', issued.key);
      });
      say(`Issued ${issued.id}. It is in the snippets below; reload the page to see it listed.`);
    } catch (error) {
      say(`No key was issued: ${error.message}`);
    }
  });

  const deposit = document.getElementById('deposit');
  if (deposit) {
    const depositStatus = document.getElementById('deposit-status');
    deposit.addEventListener('submit', async (event) => {
      event.preventDefault();
      const query = new URLSearchParams({
        chain_id: deposit.querySelector('#deposit-chain').value,
        token: deposit.querySelector('#deposit-token').value,
        amount: deposit.querySelector('#deposit-amount').value.trim(),
      });
      try {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const plan = await answer(await fetch(`/developer/deposit?${query}`, { headers: { 'x-csrf-token': csrf } }));
        const { provider, account } = await wallet();
        if (String(await provider.request({ method: 'eth_chainId' })).toLowerCase() !== plan.chain_id) {
          depositStatus.textContent = 'Asking your wallet to switch chains…';
          await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: plan.chain_id }] });
        }
        const [approval, payment] = plan.calls;
        depositStatus.textContent = 'Confirm the approval in your wallet (1 of 2)…';
        await provider.request({ method: 'eth_sendTransaction', params: [{ from: account, ...approval }] });
        depositStatus.textContent = 'Confirm the deposit in your wallet (2 of 2)…';
        const sent = await provider.request({ method: 'eth_sendTransaction', params: [{ from: account, ...payment }] });
        depositStatus.textContent = `Deposit sent (${sent}). Your balance holds it once the chain confirms it and the node reads it, within seconds; reload to see it.`;
      } catch (error) {
        depositStatus.textContent = `Nothing was deposited: ${error.message}`;
      }
    });
  }

  document.querySelectorAll('.revoke').forEach((button) => {
    button.addEventListener('click', async () => {
      const key = button.dataset.key;
      const signedAtMs = Date.now();
      try {
        say(`Confirm revoking ${key} in your wallet…`);
        const signature = await sign('RevokeApiKey', [
          { name: 'payer', type: 'address' },
          { name: 'node', type: 'address' },
          { name: 'key', type: 'string' },
          { name: 'signedAtMs', type: 'uint64' },
        ], { payer: page.dataset.account, node: page.dataset.node, key, signedAtMs });
        const query = new URLSearchParams({ payer: page.dataset.account, signed_at_ms: String(signedAtMs), signature });
        await answer(await fetch(`/v1/keys/${encodeURIComponent(key)}?${query}`, { method: 'DELETE' }));
        button.closest('tr').remove();
        say(`Revoked ${key}: calls with it are refused from now on.`);
      } catch (error) {
        say(`${key} was not revoked: ${error.message}`);
      }
    });
  });
})();
