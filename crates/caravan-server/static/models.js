// caravan's model catalogue (Apache-2.0, part of caravan; no third-party code).
// The try-it box makes one paid call to the model's route with the API key typed into it, the
// way any OpenAI client would, and shows the answer and what the call cost. The key is sent
// once, to this node, and kept nowhere.
(() => {
  // Base units as whole tokens, exactly (no floating point).
  const units = (base, decimals) => {
    const digits = String(base).padStart(decimals + 1, '0');
    const whole = digits.slice(0, digits.length - decimals);
    const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
    return fraction ? `${whole}.${fraction}` : whole;
  };
  document.querySelectorAll('.card.model').forEach((card) => {
    const form = card.querySelector('.try-form');
    if (!form) return;
    const status = form.querySelector('.status');
    const output = form.querySelector('.answer');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = form.querySelector('textarea').value.trim();
      const key = form.querySelector('input[name="key"]').value.trim();
      const model = card.dataset.model;
      let body;
      switch (card.dataset.endpoint) {
        case '/v1/classifications': {
          const numbers = input.split(/[\s,]+/).filter(Boolean).map(Number);
          if (numbers.some(Number.isNaN)) {
            status.textContent = 'Give the item as numbers separated by commas.';
            return;
          }
          body = { model, input: numbers };
          break;
        }
        case '/v1/embeddings':
          body = { model, input };
          break;
        default:
          body = { model, messages: [{ role: 'user', content: input }] };
      }
      status.textContent = 'Calling…';
      let response;
      try {
        response = await fetch(card.dataset.endpoint, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      } catch (error) {
        status.textContent = `The network failed: ${error.message}`;
        return;
      }
      try {
        const answer = await response.json().catch(() => null);
        if (!response.ok) {
          status.textContent = `The call was refused: ${answer?.error?.message || response.status}`;
          return;
        }
        // The signed receipt: its JSON, base64-encoded, in a header.
        const header = response.headers.get('caravan-receipt');
        const receipt = header ? JSON.parse(atob(header)) : null;
        status.textContent = receipt
          ? `Answered; charged ${units(receipt.charged, Number(card.dataset.decimals))} ${card.dataset.symbol} (call ${receipt.call}, signed receipt in the caravan-receipt header).`
          : 'Answered.';
        if (Array.isArray(answer?.data) && Array.isArray(answer.data[0]?.embedding)) {
          const vector = answer.data[0].embedding;
          answer.data[0].embedding = `${vector.length} numbers: ${vector.slice(0, 4).map((x) => x.toFixed(4)).join(', ')}, …`;
        }
        output.textContent = JSON.stringify(answer, null, 2);
        output.hidden = false;
      } catch (error) {
        status.textContent = `The call was answered, but its answer could not be read: ${error.message}`;
      }
    });
  });
})();
