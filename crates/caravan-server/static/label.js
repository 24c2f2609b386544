// caravan's labeling screen (Apache-2.0, part of caravan; no third-party code).
// Fetches items without reloading the page, sends answers as JSON with the session's CSRF
// token, and is driven from the keyboard: digits pick (as the buttons show), Enter submits,
// S skips, U takes back the latest answer while it is unsettled, ? shows the keys, arrows move
// where that makes sense. A failed submission keeps what was typed and says why.
// In review mode (the review queue) the form holds the labeller's answer: Enter accepts it, with
// the reviewer's changes as a fix if they made any; A accepts it as written; R rejects it.
(() => {
  const screen = document.querySelector('.label-screen');
  if (!screen) return;
  const reviewing = screen.dataset.mode === 'review';
  const base = `/projects/${screen.dataset.project}/${reviewing ? 'review' : 'label'}`;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const work = document.getElementById('work');
  const outcome = document.getElementById('outcome');
  const problem = document.getElementById('problem');
  const keys = document.getElementById('keys');
  let form = null;
  let clockOffset = 0;
  let busy = false;
  // Spans: the text, its tokens (UTF-16 offsets), the marks, the keyboard cursor and selection.
  let source = '';
  let tokens = [];
  let marks = [];
  let cursor = 0;
  let anchor = null;
  let selection = null;
  let labels = [];
  // The colour class of a label: its place in the schema's list, six colours round.
  const colourOf = (label) => `label-${Math.max(0, labels.indexOf(label)) % 6}`;

  const now = () => Date.now() + clockOffset;
  const say = (text) => { problem.textContent = text; };
  const seconds = (ms) => Math.max(0, Math.ceil(ms / 1000));
  const clock = (ms) => {
    const total = seconds(ms);
    return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
  };

  function post(path, body) {
    return fetch(base + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'x-csrf-token': csrf, 'content-type': 'application/json' },
      body: body === undefined ? '' : JSON.stringify(body),
    });
  }

  async function reason(response) {
    const body = await response.json().catch(() => null);
    return body?.error?.message || `the node answered ${response.status}`;
  }

  // Redraws the progress strip; a failure leaves the last one standing.
  async function refreshProgress() {
    if (reviewing) return;
    try {
      const response = await fetch(`${base}/progress`, { credentials: 'same-origin' });
      if (response.ok) document.getElementById('progress').innerHTML = await response.text();
    } catch {
      // The strip is a convenience: the next answer redraws it.
    }
  }

  async function next() {
    let response;
    try {
      response = await post('/next');
    } catch {
      say('The network failed while fetching your next item. Trying again in 5 s…');
      setTimeout(next, 5000);
      return;
    }
    if (!response.ok) {
      say(`No item: ${await reason(response)}`);
      return;
    }
    work.innerHTML = await response.text();
    setUp();
  }

  function setUp() {
    form = work.querySelector('#answer');
    marks = [];
    selection = null;
    anchor = null;
    cursor = 0;
    if (!form) {
      const heading = work.querySelector('h2');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
      return;
    }
    clockOffset = Number(form.dataset.now) - Date.now();
    form.setAttribute('aria-label', 'The item to label');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submit();
    });
    if (reviewing) {
      form.querySelector('#accept-as-written').addEventListener('click', () => decide({ decision: 'accept' }));
      form.querySelector('#reject').addEventListener('click', () => decide({ decision: 'reject' }));
    } else {
      form.querySelector('#skip').addEventListener('click', skip);
      form.querySelector('#undo').addEventListener('click', undo);
    }
    const kind = form.dataset.kind;
    if (kind === 'free_text') {
      const text = form.querySelector('#text');
      text.addEventListener('input', count);
      count();
      text.focus();
    } else if (kind === 'spans') {
      setUpSpans();
      form.querySelector('#span-text').focus();
    } else {
      form.tabIndex = -1;
      form.focus();
    }
    if (form.dataset.takenBack) restore(JSON.parse(form.dataset.takenBack));
    tick();
  }

  // Puts an answer taken back into the form, to be changed and sent again.
  function restore(previous) {
    const tick = (name, value) => {
      const input = form.querySelector(`input[name="${name}"][value="${CSS.escape(String(value))}"]`);
      if (input) input.checked = true;
    };
    if ('choice' in previous) tick('choice', previous.choice);
    if ('choices' in previous) previous.choices.forEach((choice) => tick('choices', choice));
    if ('rating' in previous) tick('rating', previous.rating);
    if ('preference' in previous) tick('preference', previous.preference);
    if ('text' in previous) {
      form.querySelector('#text').value = previous.text;
      count();
    }
    if ('spans' in previous) {
      // The node counts Unicode scalar values; the text here is indexed in UTF-16 units.
      const scalars = Array.from(source);
      const unit = (at) => scalars.slice(0, at).join('').length;
      marks = previous.spans.map((span) => ({ start: unit(span.start), end: unit(span.end), label: span.label }));
      draw();
    }
  }

  function tick() {
    if (!form || reviewing) return;
    const early = Number(form.dataset.handedOut) + Number(form.dataset.minMs) - now();
    const left = Number(form.dataset.leaseUntil) - now();
    const submit = form.querySelector('#submit');
    const wait = form.querySelector('#wait');
    if (early > 0) {
      submit.setAttribute('aria-disabled', 'true');
      wait.textContent = `Accepted in ${seconds(early)} s`;
    } else {
      submit.removeAttribute('aria-disabled');
      wait.textContent = '';
    }
    form.querySelector('#lease').textContent = left > 0
      ? `Yours for ${clock(left)}`
      : 'Your time on this item is up: it may go to someone else. Submit to try, or skip.';
  }
  setInterval(tick, 250);

  function count() {
    const text = form.querySelector('#text');
    const length = Array.from(text.value).length;
    const min = Number(form.dataset.minChars);
    const max = Number(form.dataset.maxChars);
    const hint = length < min ? ` (at least ${min})` : length > max ? ` (at most ${max})` : '';
    form.querySelector('#count').textContent = `${length} characters${hint}`;
  }

  // What the form says, as the node's answer; a string says what is missing.
  function answer() {
    const data = new FormData(form);
    switch (form.dataset.kind) {
      case 'single_choice': {
        const choice = data.get('choice');
        if (choice === null) throw 'Pick an option first: press its number or click it.';
        return { choice };
      }
      case 'multiple_choice': {
        const choices = data.getAll('choices');
        const min = Number(form.dataset.minSelected);
        const max = Number(form.dataset.maxSelected);
        if (choices.length < min || choices.length > max) {
          throw `Pick ${min === max ? min : `${min} to ${max}`} options; ${choices.length} picked.`;
        }
        return { choices };
      }
      case 'free_text': {
        const text = data.get('text') || '';
        const length = Array.from(text).length;
        const min = Number(form.dataset.minChars);
        const max = Number(form.dataset.maxChars);
        if (length < min || length > max) {
          throw `Write ${min} to ${max} characters; there are ${length}.`;
        }
        return { text };
      }
      case 'rating': {
        const rating = data.get('rating');
        if (rating === null) throw 'Pick a rating first: press its number or click it.';
        return { rating: Number(rating) };
      }
      case 'pairwise': {
        const preference = data.get('preference');
        if (preference === null) throw 'Say which is better first: 1 for A, 2 for B.';
        return { preference };
      }
      case 'spans':
        // The node counts characters as Unicode scalar values; the browser counts UTF-16 units.
        return {
          spans: marks.map((mark) => ({
            start: Array.from(source.slice(0, mark.start)).length,
            end: Array.from(source.slice(0, mark.end)).length,
            label: mark.label,
          })),
        };
      default:
        throw `This screen cannot answer ${form.dataset.kind} items.`;
    }
  }

  async function submit() {
    if (busy || !form) return;
    let value;
    try {
      value = answer();
    } catch (missing) {
      say(String(missing));
      return;
    }
    if (reviewing) {
      const unchanged = JSON.stringify(value) === JSON.stringify(JSON.parse(form.dataset.takenBack));
      await decide(unchanged ? { decision: 'accept' } : { decision: 'fix', answer: value });
      return;
    }
    const early = Number(form.dataset.handedOut) + Number(form.dataset.minMs) - now();
    if (early > 0) {
      say(`Not yet: this project accepts an answer ${seconds(Number(form.dataset.minMs))} s after the item was handed out, so in ${seconds(early)} s.`);
      return;
    }
    busy = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const response = await post('/answer', { item: form.dataset.item, answer: value });
      if (!response.ok) {
        say(`Not accepted: ${await reason(response)} Your answer is still here.`);
        return;
      }
      const result = await response.json();
      say('');
      outcome.textContent = result.messages.join(' ');
      refreshProgress();
      await next();
    } catch {
      say('The network failed, so your answer may not have arrived. It is still here: submit again when you are back online.');
    } finally {
      busy = false;
      form?.removeAttribute('aria-busy');
    }
  }

  // Sends the reviewer's verdict on the judgment in the form, then shows the next one.
  async function decide(verdict) {
    if (busy || !form) return;
    busy = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const response = await post('/verdict', { judgment: Number(form.dataset.judgment), verdict });
      if (!response.ok) {
        say(`Not recorded: ${await reason(response)} The answer is still here.`);
        return;
      }
      const result = await response.json();
      say('');
      outcome.textContent = result.messages.join(' ');
      await next();
    } catch {
      say('The network failed, so your review may not have arrived. Send it again when you are back online.');
    } finally {
      busy = false;
      form?.removeAttribute('aria-busy');
    }
  }

  async function skip() {
    if (busy || !form) return;
    busy = true;
    try {
      const response = await post('/skip', { item: form.dataset.item });
      if (!response.ok) {
        say(`Not skipped: ${await reason(response)}`);
        return;
      }
      say('');
      outcome.textContent = 'Skipped. It comes back only when nothing else is left.';
      await next();
    } catch {
      say('The network failed while skipping. Try again when you are back online.');
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const response = await post('/undo');
      if (!response.ok) {
        say(`Not taken back: ${await reason(response)}`);
        return;
      }
      say('');
      work.innerHTML = await response.text();
      setUp();
      outcome.textContent = 'Taken back: your answer is in the form again. Change it and submit, or skip.';
      refreshProgress();
    } catch {
      say('The network failed while taking your answer back. Try again when you are back online.');
    } finally {
      busy = false;
    }
  }

  function pick(key) {
    const kind = form.dataset.kind;
    if (kind === 'spans') {
      const button = form.querySelector(`.span-label[data-key="${key}"]`);
      if (button) mark(button.dataset.label);
      return;
    }
    const input = form.querySelector(`input[data-key="${key}"]`);
    if (!input) return;
    input.checked = input.type === 'checkbox' ? !input.checked : true;
  }

  function step(direction) {
    const kind = form.dataset.kind;
    if (kind === 'pairwise') {
      pick(direction < 0 ? '1' : '2');
    } else if (kind === 'rating') {
      const inputs = Array.from(form.querySelectorAll('input[name="rating"]'));
      const at = inputs.findIndex((input) => input.checked);
      const to = at < 0 ? (direction < 0 ? 0 : inputs.length - 1)
        : Math.min(inputs.length - 1, Math.max(0, at + direction));
      inputs[to].checked = true;
    }
  }

  // ---- spans ----

  function setUpSpans() {
    const box = form.querySelector('#span-text');
    source = box.textContent;
    tokens = [];
    const words = /[\p{L}\p{N}\p{M}]+|[^\s\p{L}\p{N}\p{M}]/gu;
    for (let found = words.exec(source); found; found = words.exec(source)) {
      tokens.push({ start: found.index, end: found.index + found[0].length });
    }
    box.addEventListener('mouseup', fromPointer);
    box.addEventListener('touchend', () => setTimeout(fromPointer, 0));
    box.addEventListener('keydown', moveOverWords);
    labels = Array.from(form.querySelectorAll('.span-label'), (button) => button.dataset.label);
    form.querySelectorAll('.span-label').forEach((button) => {
      button.classList.add(colourOf(button.dataset.label));
      button.addEventListener('click', () => mark(button.dataset.label));
    });
    draw();
  }

  // The tokens a UTF-16 range touches, as a selection of whole tokens.
  function snap(start, end) {
    const touched = tokens.filter((token) => token.end > start && token.start < end);
    if (touched.length === 0) return null;
    return { start: touched[0].start, end: touched[touched.length - 1].end };
  }

  function fromPointer() {
    const box = form.querySelector('#span-text');
    const chosen = window.getSelection();
    if (!chosen || chosen.rangeCount === 0) return;
    const range = chosen.getRangeAt(0);
    if (!box.contains(range.startContainer) || !box.contains(range.endContainer)) return;
    const before = document.createRange();
    before.selectNodeContents(box);
    before.setEnd(range.startContainer, range.startOffset);
    const start = before.toString().length;
    const end = range.collapsed ? start + 1 : start + range.toString().length;
    selection = snap(start, end);
    const first = tokens.findIndex((token) => token.end > start);
    if (first >= 0) cursor = first;
    anchor = null;
    chosen.removeAllRanges();
    draw();
  }

  function moveOverWords(event) {
    if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    if (tokens.length === 0) return;
    event.preventDefault();
    event.stopPropagation();
    if (event.shiftKey && anchor === null) anchor = cursor;
    if (!event.shiftKey) anchor = null;
    const direction = event.key === 'ArrowLeft' ? -1 : 1;
    if (selection !== null || anchor !== null || event.shiftKey) {
      cursor = Math.min(tokens.length - 1, Math.max(0, cursor + direction));
    } else if (selection === null) {
      cursor = Math.min(tokens.length - 1, Math.max(0, cursor + (direction < 0 ? -1 : 0)));
    }
    const from = Math.min(anchor ?? cursor, cursor);
    const to = Math.max(anchor ?? cursor, cursor);
    selection = { start: tokens[from].start, end: tokens[to].end };
    draw();
  }

  function mark(label) {
    if (!selection) {
      say('Select some words first (drag over them, tap one, or use the arrow keys), then pick a label.');
      return;
    }
    const clash = marks.find((other) => other.start < selection.end && selection.start < other.end);
    if (clash) {
      say(`That overlaps “${source.slice(clash.start, clash.end)}” (${clash.label}); marks may not overlap in this project. Remove it first, or select other words.`);
      return;
    }
    say('');
    marks.push({ ...selection, label });
    marks.sort((a, b) => a.start - b.start);
    // The keyboard carries on after the mark: the next arrow press selects the word after it.
    const after = tokens.findIndex((token) => token.start >= selection.end);
    cursor = after < 0 ? tokens.length - 1 : after;
    selection = null;
    anchor = null;
    draw();
  }

  function unmark(index) {
    marks.splice(index, 1);
    draw();
  }

  function draw() {
    const box = form.querySelector('#span-text');
    box.replaceChildren();
    let at = 0;
    tokens.forEach((token, index) => {
      if (token.start > at) box.append(document.createTextNode(source.slice(at, token.start)));
      const word = document.createElement('span');
      word.textContent = source.slice(token.start, token.end);
      word.className = 'token';
      const inside = marks.find((m) => m.start <= token.start && token.end <= m.end);
      if (inside) {
        word.classList.add('marked', colourOf(inside.label));
        word.title = inside.label;
      }
      if (selection && selection.start <= token.start && token.end <= selection.end) {
        word.classList.add('selected');
      }
      if (index === cursor && document.activeElement === box) word.classList.add('cursor');
      word.addEventListener('click', () => {
        if (window.getSelection()?.isCollapsed === false) return;
        cursor = index;
        anchor = null;
        selection = { start: token.start, end: token.end };
        draw();
      });
      box.append(word);
      at = token.end;
    });
    if (at < source.length) box.append(document.createTextNode(source.slice(at)));
    const list = form.querySelector('#spans');
    list.replaceChildren();
    if (marks.length === 0) {
      const none = document.createElement('li');
      none.className = 'aside';
      none.textContent = 'Nothing marked yet.';
      list.append(none);
    }
    marks.forEach((m, index) => {
      const item = document.createElement('li');
      const words = source.slice(m.start, m.end);
      item.append(document.createTextNode(`${m.label}: “${words}” `));
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'quiet';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${m.label} “${words}”`);
      remove.addEventListener('click', () => unmark(index));
      item.append(remove);
      list.append(item);
    });
  }

  // ---- keys ----

  document.getElementById('show-keys').addEventListener('click', () => keys.showModal());

  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.altKey || event.metaKey) return;
    if (keys.open) return;
    const target = event.target;
    if (target.matches('textarea, input[type="text"]')) {
      if (event.key === 'Enter' && event.ctrlKey) {
        event.preventDefault();
        submit();
      }
      return;
    }
    if (event.ctrlKey) return;
    if (event.key === '?') {
      event.preventDefault();
      keys.showModal();
      return;
    }
    if (!reviewing && (event.key === 'u' || event.key === 'U')) {
      event.preventDefault();
      undo();
      return;
    }
    if (!form) return;
    if (reviewing && (event.key === 'a' || event.key === 'A')) {
      event.preventDefault();
      decide({ decision: 'accept' });
      return;
    }
    if (reviewing && (event.key === 'r' || event.key === 'R')) {
      event.preventDefault();
      decide({ decision: 'reject' });
      return;
    }
    if (event.key === 'Enter') {
      if (target.matches('button, a, summary')) return;
      event.preventDefault();
      submit();
    } else if (!reviewing && (event.key === 's' || event.key === 'S')) {
      event.preventDefault();
      skip();
    } else if (/^[0-9]$/.test(event.key)) {
      event.preventDefault();
      pick(event.key);
    } else if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
      if (form.dataset.kind === 'pairwise' || form.dataset.kind === 'rating') {
        event.preventDefault();
        step(event.key === 'ArrowLeft' ? -1 : 1);
      }
    } else if (event.key === 'Backspace' && form.dataset.kind === 'spans' && marks.length > 0) {
      event.preventDefault();
      unmark(marks.length - 1);
    }
  });

  next();
})();
