// caravan's wallet claim (Apache-2.0, part of caravan; no third-party code).
// Sends the distributor calls the claim page lists from the browser's injected EIP-1193
// wallet: it switches the wallet to the chain, then asks it to send each call. The calls are
// made on the node (the page carries them); the wallet shows each before signing it.
(() => {
  const button = document.getElementById('wallet-claim');
  const status = document.getElementById('claim-status');
  if (!button || !status) return;
  const say = (text) => { status.textContent = text; };

  button.addEventListener('click', async () => {
    const wallet = window.ethereum;
    if (!wallet || typeof wallet.request !== 'function') {
      say('No wallet was found in this browser. Install one and reload, or send the calls below from any tool that signs for your account.');
      return;
    }
    const chainId = button.dataset.chain;
    const transactions = JSON.parse(button.dataset.transactions || '[]');
    if (transactions.length === 0) {
      say('Nothing is left to claim against this root.');
      return;
    }
    button.setAttribute('aria-disabled', 'true');
    try {
      say('Asking your wallet for your account…');
      const [from] = await wallet.request({ method: 'eth_requestAccounts' });
      if (!from) throw new Error('the wallet shared no account');
      const current = await wallet.request({ method: 'eth_chainId' });
      if (String(current).toLowerCase() !== chainId) {
        say(`Asking your wallet to switch to chain ${parseInt(chainId, 16)}…`);
        try {
          await wallet.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] });
        } catch (error) {
          throw new Error(`your wallet did not switch to chain ${parseInt(chainId, 16)} (${error.message}); add that chain to it and try again`);
        }
      }
      const sent = [];
      for (const [index, transaction] of transactions.entries()) {
        say(`Confirm claim ${index + 1} of ${transactions.length} in your wallet…`);
        sent.push(await wallet.request({ method: 'eth_sendTransaction', params: [{ from, ...transaction }] }));
      }
      say(`Sent: ${sent.join(', ')}. Once the chain includes ${sent.length === 1 ? 'it' : 'them'}, the earnings page shows what you claimed.`);
    } catch (error) {
      say(`The claim was not sent: ${error.message}`);
    } finally {
      button.removeAttribute('aria-disabled');
    }
  });
})();
