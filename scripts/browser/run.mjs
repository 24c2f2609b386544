// End-to-end tests of the node's web pages in headless Chromium: a contributor signs in with a
// wallet (an EIP-1193 provider whose key stays in this process, outside the page), passes an
// exam, labels items of every task type with the keyboard only, is paused by failing check
// questions, keeps a typed answer when the network fails, sees the bounties and, once an epoch
// closes, the royalty its labels earned traced through the lineage, claims it on the embedded
// chain, then chooses to be paid on an anvil chain and claims there from the wallet. A requester
// posts a project in the form, imports items (a bad file first), and fixes a marked answer in the
// review queue. Each main page is saved as a
// screenshot and checked with axe-core for WCAG 2 A/AA violations.
//
// Usage: CARAVAN_ANVIL=ANVIL_BINARY node run.mjs CARAVAN_BINARY DIGITS_CSV ARTIFACTS_DIR
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createWalletClient, createPublicClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { startWorld } from './world.mjs';

const [caravan, digitsCsv, artifacts] = process.argv.slice(2);
const anvilBinary = process.env.CARAVAN_ANVIL;
if (!caravan || !digitsCsv || !artifacts || !anvilBinary) {
  console.error('usage: CARAVAN_ANVIL=ANVIL_BINARY node run.mjs CARAVAN_BINARY DIGITS_CSV ARTIFACTS_DIR (scripts/anvil/install.sh prints ANVIL_BINARY)');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const chromiumPath = process.env.CARAVAN_CHROMIUM || '/usr/lib/chromium/chromium';
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// A throwaway test key (one of the well-known development keys); it never enters the page.
const wallet = privateKeyToAccount('0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba');

const results = [];
let failed = 0;

async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push(`ok   ${name} (${Date.now() - started} ms)`);
    console.log(`ok   ${name}`);
  } catch (error) {
    failed += 1;
    results.push(`FAIL ${name}: ${error.message}`);
    console.log(`FAIL ${name}\n${error.stack}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** Runs axe-core on the page and fails on any WCAG 2 A or AA violation. */
async function accessible(page, name) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const found = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
    });
    return found.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
  });
  expect(violations.length === 0, `${name} has accessibility violations:\n  ${violations.join('\n  ')}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** The item on screen, once it has arrived. */
async function itemShown(page) {
  await page.locator('#answer').waitFor({ timeout: 10000 });
  return page.locator('#answer').getAttribute('data-item');
}

/** Waits until the minimum time per item is over (the submit button says so). */
async function acceptable(page) {
  await page.waitForFunction(() => !document.querySelector('#submit')?.hasAttribute('aria-disabled'), null, { timeout: 15000 });
}

/** Submits with Enter and waits for the next item (or the screen saying there is none). */
async function submitAndWaitForNext(page, key = 'Enter') {
  const before = await page.locator('#answer').getAttribute('data-item');
  await acceptable(page);
  await page.keyboard.press(key);
  await page.waitForFunction((previous) => {
    const form = document.querySelector('#answer');
    return (form && form.dataset.item !== previous) || document.querySelector('[data-no-item]')
      || document.querySelector('#problem')?.textContent;
  }, before, { timeout: 10000 });
  const problem = await page.locator('#problem').textContent();
  expect(!problem, `the submission was not accepted: ${problem}`);
  return page.locator('#outcome').textContent();
}

/** Base units of the 6-decimal test token as the pages write them. */
function usdc(base) {
  const fraction = String(base % 1e6).padStart(6, '0').replace(/0+$/, '');
  return `${Math.floor(base / 1e6)}${fraction ? `.${fraction}` : ''} USDC`;
}

/** A page in a phone-sized context signed in as `context` is. */
async function onPhone(browser, context) {
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    storageState: await context.storageState(),
  });
  return { phone, small: await phone.newPage() };
}

/** The requester (who posted the world's projects) signed in with their wallet in a context of their own. */
async function requesterSignedIn(browser, url) {
  const requesterWallet = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
  const desk = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await desk.exposeBinding('caravanTestWallet', async (_source, method, params) => {
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return [requesterWallet.address];
      case 'eth_chainId':
        return '0x7a69';
      case 'personal_sign':
        return requesterWallet.signMessage({ message: { raw: params[0] } });
      default:
        throw new Error(`the requester's test wallet does not do ${method}`);
    }
  });
  await desk.addInitScript(() => {
    window.ethereum = { request: ({ method, params }) => window.caravanTestWallet(method, params || []) };
  });
  const requester = await desk.newPage();
  await requester.goto(`${url}/sign-in`);
  await requester.getByRole('button', { name: 'Sign in with your wallet' }).click();
  await requester.waitForURL(`${url}/tasks`);
  return { desk, requester };
}

async function openProject(page, url, project) {
  await page.goto(`${url}/projects/${project.id}/label`);
  await itemShown(page);
}

async function main() {
  const world = await startWorld(caravan, digitsCsv, anvilBinary, wallet.address);
  const { url, projects } = world;
  // What the wallet sends goes to the anvil chain, signed here with the test key.
  const anvilChain = { ...foundry, rpcUrls: { default: { http: [world.anvilUrl] } } };
  const sender = createWalletClient({ account: wallet, chain: anvilChain, transport: http(world.anvilUrl) });
  const reader = createPublicClient({ chain: anvilChain, transport: http(world.anvilUrl) });
  console.log(`node at ${url}`);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.exposeBinding('caravanTestWallet', async (_source, method, params) => {
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return [wallet.address];
        case 'eth_chainId':
          return '0x7a69';
        case 'personal_sign':
          return wallet.signMessage({ message: { raw: params[0] } });
        case 'eth_signTypedData_v4': {
          const typed = JSON.parse(params[1]);
          const { EIP712Domain: _domain, ...types } = typed.types;
          return wallet.signTypedData({ domain: typed.domain, types, primaryType: typed.primaryType, message: typed.message });
        }
        case 'eth_sendTransaction': {
          const hash = await sender.sendTransaction({ to: params[0].to, data: params[0].data });
          await reader.waitForTransactionReceipt({ hash });
          return hash;
        }
        default:
          throw new Error(`the test wallet does not do ${method}`);
      }
    });
    await context.addInitScript(() => {
      window.ethereum = {
        isMetaMask: false,
        request: ({ method, params }) => window.caravanTestWallet(method, params || []),
      };
    });
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await check('a visitor is sent to the sign-in page, which passes the accessibility check', async () => {
      await page.goto(`${url}/tasks`);
      expect(new URL(page.url()).pathname === '/sign-in', `landed on ${page.url()}`);
      await shot(page, 'sign-in');
      await accessible(page, 'the sign-in page');
    });

    await check('signing in with the wallet opens the task board', async () => {
      await page.getByRole('button', { name: 'Sign in with your wallet' }).click();
      await page.waitForURL(`${url}/tasks`);
      const account = await page.locator('.account').getAttribute('title');
      expect(account === wallet.address, `signed in as ${account}, not ${wallet.address}`);
    });

    await check('the task board lists every open project with its pay and rules', async () => {
      const cards = page.locator('.card');
      expect(await cards.count() === Object.keys(projects).length, `${await cards.count()} cards`);
      const sentiment = cards.filter({ hasText: projects.sentiment.spec.title });
      const text = await sentiment.textContent();
      expect(text.includes('0.02 USDC'), `no bounty on the card: ${text}`);
      expect(text.includes('2 questions first, pass mark 50%'), `no exam on the card: ${text}`);
      expect(text.includes('Items left'), text);
      await shot(page, 'tasks');
      await accessible(page, 'the task board');
    });

    await check('the exam shows right or wrong after each question, then real items follow', async () => {
      await openProject(page, url, projects.sentiment);
      await shot(page, 'label-single-choice-exam');
      await accessible(page, 'the labeling screen (exam)');
      const outcomes = [];
      for (let question = 1; question <= 2; question += 1) {
        const exam = await page.locator('#answer .exam').textContent();
        expect(exam.includes(`Exam question ${question} of 2`), `exam banner: ${exam}`);
        const text = (await page.locator('#answer .field .text').first().textContent()).trim();
        const right = projects.sentiment.gold[text];
        expect(right, `no gold for ${text}`);
        expect(await page.locator('#submit').getAttribute('aria-disabled') === 'true', 'submit is not held for the minimum time');
        expect((await page.locator('#wait').textContent()).startsWith('Accepted in'), 'the wait is not shown');
        await page.keyboard.press(right === 'pos' ? '1' : '2');
        outcomes.push(await submitAndWaitForNext(page));
      }
      expect(outcomes[0].includes('Exam question 1 of 2: right'), outcomes[0]);
      expect(outcomes[1].includes('You passed the exam'), outcomes[1]);
      expect(await page.locator('#answer .exam').count() === 0, 'still in the exam after passing');
      const suggestions = await page.locator('.suggestions').textContent();
      expect(suggestions.includes('review-sentiment-v1') && suggestions.includes('82% confident'), suggestions);
      expect(await page.locator('#answer input:checked').count() === 0, 'a suggestion was pre-selected');
      await shot(page, 'label-single-choice');
      await page.keyboard.press('1');
      const outcome = await submitAndWaitForNext(page);
      expect(outcome.includes('Accepted: 0.02 USDC earned'), outcome);
    });

    await check('the keys are shown with ?', async () => {
      await page.keyboard.press('?');
      await page.locator('#keys[open]').waitFor();
      await shot(page, 'keys');
      await accessible(page, 'the keys dialog');
      await page.keyboard.press('Escape');
    });

    await check('multiple choice: digits tick options', async () => {
      await openProject(page, url, projects.topics);
      await page.keyboard.press('1');
      await page.keyboard.press('2');
      expect(await page.locator('#answer input:checked').count() === 2, 'two options not ticked');
      await shot(page, 'label-multiple-choice');
      await accessible(page, 'the multiple-choice screen');
      expect((await submitAndWaitForNext(page)).includes('Accepted'), 'not accepted');
    });

    await check('free text: the length range is shown and Ctrl+Enter submits', async () => {
      await openProject(page, url, projects.replies);
      const hint = await page.locator('label[for="text"]').textContent();
      expect(hint.includes('20 to 400 characters'), hint);
      await page.keyboard.type('I am sorry it arrived damaged: send us a photo and we will replace it.');
      await shot(page, 'label-free-text');
      await accessible(page, 'the free-text screen');
      // Written text cannot be settled by agreement: it waits for a reviewer before it is paid.
      const outcome = await submitAndWaitForNext(page, 'Control+Enter');
      expect(outcome.includes('Saved. It is paid once'), outcome);
    });

    await check('a submission the network loses keeps what was typed and says so', async () => {
      const typed = 'Open your account page and choose Addresses, then Edit.';
      await page.keyboard.type(typed);
      await acceptable(page);
      await page.route('**/label/answer', (route) => route.abort('internetdisconnected'));
      await page.keyboard.press('Control+Enter');
      await page.waitForFunction(() => document.querySelector('#problem')?.textContent);
      const problem = await page.locator('#problem').textContent();
      expect(problem.includes('network failed'), problem);
      expect(await page.locator('#text').inputValue() === typed, 'the typed answer was lost');
      await page.unroute('**/label/answer');
      await page.keyboard.press('Control+Enter');
      await page.waitForFunction(() => !document.querySelector('#problem')?.textContent
        && document.querySelector('#outcome')?.textContent.includes('Saved'));
    });

    await check('rating: arrows move over the scale', async () => {
      await openProject(page, url, projects.helpfulness);
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowLeft');
      const value = await page.locator('#answer input:checked').getAttribute('value');
      expect(value === '4', `rating ${value} after → ←`);
      await shot(page, 'label-rating');
      await accessible(page, 'the rating screen');
      expect((await submitAndWaitForNext(page)).includes('Accepted'), 'not accepted');
    });

    await check('pairwise: ← picks A', async () => {
      await openProject(page, url, projects.preference);
      await page.keyboard.press('ArrowLeft');
      expect(await page.locator('#answer input:checked').getAttribute('value') === 'a', 'A not picked');
      await shot(page, 'label-pairwise');
      await accessible(page, 'the pairwise screen');
      expect((await submitAndWaitForNext(page)).includes('Accepted'), 'not accepted');
    });

    await check('spans: words are selected and marked with the keyboard', async () => {
      await openProject(page, url, projects.entities);
      // "Ada Lovelace": the first word, stretched one word right, marked as person (1).
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('Shift+ArrowRight');
      await page.keyboard.press('1');
      // "London": the last word before the full stop, marked as place (2).
      for (let step = 0; step < 5; step += 1) await page.keyboard.press('ArrowRight');
      await page.keyboard.press('2');
      const marked = await page.locator('#spans li').allTextContents();
      expect(marked.length === 2, `marks: ${marked.join(' | ')}`);
      expect(marked[0].startsWith('person: “Ada Lovelace”'), marked[0]);
      expect(marked[1].startsWith('place: “London”'), marked[1]);
      await shot(page, 'label-spans');
      await accessible(page, 'the spans screen');
      const sent = page.waitForRequest('**/label/answer');
      const outcome = await submitAndWaitForNext(page);
      const spans = JSON.stringify((await sent).postDataJSON().answer.spans);
      const expected = JSON.stringify([
        { start: 0, end: 12, label: 'person' },
        { start: 36, end: 42, label: 'place' },
      ]);
      expect(spans === expected, `sent ${spans}, not ${expected}`);
      // Marked spans are not settled by agreement: they wait for a reviewer before they are paid.
      expect(outcome.includes('Saved. It is paid once'), outcome);
    });

    await check('images: the 8×8 digits are drawn large and answered with their digit key', async () => {
      await openProject(page, url, projects.digits);
      const picture = page.locator('#answer .picture svg');
      const box = await picture.boundingBox();
      expect(box && box.width >= 200, `the digit is drawn ${box?.width} px wide`);
      await shot(page, 'label-image');
      await accessible(page, 'the image screen');
      // Items come in import order: this is the first digit of the file.
      const digit = projects.digits.truth[0];
      expect(await page.locator(`#answer input[value="${digit}"]`).getAttribute('data-key') === digit, 'a digit is not its own key');
      await page.keyboard.press(digit);
      expect(await page.locator('#answer input:checked').getAttribute('value') === digit, 'the digit key did not pick the digit');
      expect((await submitAndWaitForNext(page)).includes('Accepted'), 'not accepted');
    });

    await check('S skips an item', async () => {
      const before = await itemShown(page);
      await page.keyboard.press('s');
      await page.waitForFunction((previous) => document.querySelector('#answer')?.dataset.item !== previous, before);
      expect((await page.locator('#outcome').textContent()).includes('Skipped'), 'no word of the skip');
    });

    await check('U takes back the latest unsettled answer, which comes back in the form to change', async () => {
      await openProject(page, url, projects.opinions);
      const first = await itemShown(page);
      await page.keyboard.press('2');
      const said = await submitAndWaitForNext(page);
      expect(said.includes('Saved'), `an answer two people must give is not settled at once: ${said}`);
      await page.waitForFunction(() => document.querySelector('#progress')?.textContent.includes('you: 1 submitted'));
      await page.keyboard.press('u');
      await page.waitForFunction((item) => document.querySelector('#answer')?.dataset.item === item, first);
      await page.waitForFunction(() => document.querySelector('#progress')?.textContent.includes('you: 0 submitted'));
      expect(await page.locator('#answer input[value="no"]').isChecked(), 'the answer taken back is not in the form');
      expect((await page.locator('#outcome').textContent()).includes('Taken back'), 'no word of the answer taken back');
      await page.keyboard.press('1');
      expect(await page.locator('#answer input[value="yes"]').isChecked(), 'the answer cannot be changed');
      await submitAndWaitForNext(page);
      await page.keyboard.press('u');
      await page.waitForFunction((item) => document.querySelector('#answer')?.dataset.item === item, first);
      expect(await page.locator('#answer input[value="yes"]').isChecked(), 'the changed answer is not the one taken back');
      await page.keyboard.press('u');
      await page.waitForFunction(() => document.querySelector('#problem')?.textContent.includes('Not taken back: there is no submission'));
    });

    await check('failing check questions pauses, with the reason shown', async () => {
      await openProject(page, url, projects.checked);
      for (let wrong = 0; wrong < 2; wrong += 1) {
        const text = (await page.locator('#answer .field .text').first().textContent()).trim();
        const right = projects.checked.gold[text];
        expect(right, `item ${text} is not a check question`);
        await page.keyboard.press(right === 'spam' ? '2' : '1');
        await submitAndWaitForNext(page);
      }
      const paused = page.locator('[data-no-item]');
      await paused.waitFor();
      const text = await paused.textContent();
      expect(text.includes('You are paused on this project'), text);
      expect(text.includes('0 of 2'), `the reason does not give the accuracy: ${text}`);
      await shot(page, 'label-paused');
      await accessible(page, 'the paused screen');
      await page.goto(`${url}/tasks?tab=in-progress`);
      const card = await page.locator('.card', { hasText: projects.checked.spec.title }).textContent();
      expect(card.includes('Paused'), `the board does not show the pause: ${card}`);
    });

    await check('on a phone the labeling screen fits the width', async () => {
      const { phone, small } = await onPhone(browser, context);
      await openProject(small, url, projects.digits);
      const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 0, `the page is ${overflow} px wider than the phone`);
      await shot(small, 'phone-label-image');
      await small.goto(`${url}/tasks`);
      await shot(small, 'phone-tasks');
      await phone.close();
    });

    await check('earnings: an accepted judgment shows as a bounty in the open epoch at once', async () => {
      await page.goto(`${url}/earnings`);
      const row = page.locator('table.figures tbody tr').first();
      const epoch = (await row.locator('th').textContent()).trim();
      expect(epoch === '1 (open)', `the first row is epoch ${epoch}, not the open epoch 1`);
      const cells = row.locator('td');
      const judgments = Number(await cells.nth(2).textContent());
      expect(judgments > 0, 'no accepted judgment counted');
      // Every project here pays 0.02 USDC (20000 base units) per accepted judgment.
      const bounties = (await cells.nth(1).textContent()).trim();
      expect(bounties === usdc(judgments * 20000), `${judgments} judgments paid ${bounties}`);
      expect((await page.locator('.royalty').count()) === 0, 'a royalty before any epoch closed');
    });

    let settled;
    await check('earnings: after the epoch closes, the royalty is traced from the model through the dataset to the labels', async () => {
      settled = await world.royaltyEpoch();
      await page.goto(`${url}/earnings`);
      const royalty = page.locator('.royalty').first();
      await royalty.waitFor();
      const trail = (await royalty.locator('.trail').first().textContent()).replace(/\s+/g, ' ').trim();
      expect(/^digit-reader → TRAINED_ON → handwritten-digits-8x8 → your \d+ accepted labels? on “Which digit is this\?”/.test(trail),
        `the royalty's path reads: ${trail}`);
      const head = await royalty.locator('.royalty-head').textContent();
      expect(/[1-9]\d*(\.\d+)? USDC from handwritten-digits-8x8/.test(head.replace(/\s+/g, ' ')), `the royalty reads: ${head}`);
      const chart = page.locator('svg.chart');
      expect((await chart.count()) === 1, 'no chart');
      expect((await chart.locator('rect.royalties title').first().textContent()).includes('Epoch 1: royalties'), 'the chart has no royalty bar for epoch 1');
      const claims = (await page.locator('.chain').first().textContent()).replace(/\s+/g, ' ');
      expect(claims.includes("Epoch 1's root is active"), `the chain does not show the active root: ${claims}`);
      await shot(page, 'earnings');
      await accessible(page, 'the earnings page');
      const { phone, small } = await onPhone(browser, context);
      await small.goto(`${url}/earnings`);
      const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 0, `the earnings page is ${overflow} px wider than the phone`);
      await shot(small, 'phone-earnings');
      await phone.close();
    });

    await check('earnings: the royalty is claimed on the embedded chain and the chain shows it claimed', async () => {
      const claimable = async () => (await page.locator('.chain tbody tr').first().locator('td').nth(0).textContent()).trim();
      const before = await claimable();
      expect(before !== '0 USDC', 'nothing claimable after the root was posted');
      await page.goto(`${url}/earnings/claims/6513010`);
      const call = (await page.locator('main').textContent()).replace(/\s+/g, ' ');
      expect(call.includes('claim(address account, address token, uint256 cumulative, bytes32 expectedRoot, bytes32[] proof)'), 'the claim page does not give the call');
      expect(call.includes(wallet.address), 'the claim page does not name the account paid');
      await shot(page, 'claim');
      await accessible(page, 'the claim page');
      await page.goto(`${url}/earnings`);
      await page.getByRole('button', { name: 'Claim on embedded' }).click();
      await page.waitForURL(/claimed=6513010/);
      const after = page.locator('.chain tbody tr').first();
      expect((await after.locator('td').nth(0).textContent()).trim() === '0 USDC', 'still claimable after claiming');
      expect((await after.locator('td').nth(1).textContent()).trim() === before, `claimed ${await after.locator('td').nth(1).textContent()}, not ${before}`);
      expect((await page.locator('.notice').textContent()).includes('Your claim was sent'), 'no word of the claim');
      expect(settled.model.startsWith('0x'), 'no model id');
    });

    await check('earnings: the payout chain is chosen on the page, and a later royalty is claimed there from the wallet', async () => {
      await page.goto(`${url}/earnings`);
      await page.getByLabel('Be paid on').selectOption({ label: 'anvil (chain id 31337)' });
      await page.getByRole('button', { name: 'Save' }).click();
      await page.waitForURL(/chosen=1/);
      expect((await page.locator('.notice').textContent()).includes('paid on anvil'), 'no word of the new payout chain');
      await openProject(page, url, projects.digits);
      await page.keyboard.press('1');
      await submitAndWaitForNext(page);
      await world.paidEpoch(['anvil']);
      await page.goto(`${url}/earnings`);
      const anvil = page.locator('.chain', { hasText: 'chain id 31337' });
      await anvil.waitFor();
      const claimable = (await anvil.locator('tbody tr td').nth(0).textContent()).trim();
      expect(claimable !== '0 USDC', 'nothing claimable on anvil');
      await anvil.getByRole('link', { name: 'Claim from your wallet' }).click();
      await page.waitForURL(/\/earnings\/claims\/31337/);
      await page.getByRole('button', { name: 'Claim from your wallet' }).click();
      await page.waitForFunction(() => document.querySelector('#claim-status')?.textContent.startsWith('Sent: 0x'), null, { timeout: 20000 });
      await shot(page, 'claim-wallet');
      await accessible(page, 'the wallet claim page');
      await page.goto(`${url}/earnings`);
      const after = page.locator('.chain', { hasText: 'chain id 31337' }).locator('tbody tr');
      expect((await after.locator('td').nth(0).textContent()).trim() === '0 USDC', 'still claimable on anvil after the wallet claimed');
      expect((await after.locator('td').nth(1).textContent()).trim() === claimable, `the chain shows ${await after.locator('td').nth(1).textContent()} claimed, not ${claimable}`);
    });

    await check('the explorer, without signing in: an epoch verified in the browser (a tampered bundle fails) and on the node, an address traced, an asset and its lineage', async () => {
      const visitor = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const anyone = await visitor.newPage();
      await anyone.goto(`${url}/explorer`);
      expect(new URL(anyone.url()).pathname === '/explorer', 'the explorer asks for a sign-in');
      await accessible(anyone, 'the explorer');
      await anyone.getByRole('link', { name: '1', exact: true }).click();
      await anyone.waitForURL(/\/explorer\/epochs\/1$/);
      // The root rebuilt in the page from the bundle's leaves, with nothing asked of the node.
      const here = anyone.locator('#verify-here-status');
      await anyone.getByRole('button', { name: 'Verify in this browser' }).click();
      await here.filter({ hasText: /^(Match|No match|The bundle)/ }).waitFor({ timeout: 30000 });
      const rebuilt = await here.textContent();
      expect(rebuilt.startsWith('Match: the root rebuilt in this browser from the bundle\'s'), rebuilt);
      // A bundle with one amount changed on its way to the page does not match.
      await anyone.route('**/explorer/epochs/1/bundle', async (route) => {
        const bundle = await (await route.fetch()).json();
        bundle.leaves[0].cumulative = (BigInt(bundle.leaves[0].cumulative) + 1n).toString();
        await route.fulfill({ json: bundle });
      });
      await anyone.getByRole('button', { name: 'Verify in this browser' }).click();
      await here.filter({ hasText: /^No match/ }).waitFor({ timeout: 30000 });
      await anyone.unroute('**/explorer/epochs/1/bundle');
      await anyone.getByRole('button', { name: 'Verify on this node' }).click();
      await anyone.waitForURL(/\/explorer\/epochs\/1\/verify$/);
      const verdict = await anyone.locator('main [role="status"]').first().textContent();
      expect(verdict.startsWith('Match: the root rebuilt from the bundle'), verdict);
      const chain = (await anyone.locator('.chain').first().textContent()).replace(/\s+/g, ' ');
      expect(/Posted\s*block \d+, transaction 0x[0-9a-f]{64}/.test(chain), `no posting transaction: ${chain}`);
      await shot(anyone, 'explorer-epoch');
      await accessible(anyone, 'an epoch page');
      await anyone.goto(`${url}/explorer`);
      await anyone.getByLabel('Look up an address').fill(wallet.address);
      await anyone.getByRole('button', { name: 'Look up' }).click();
      await anyone.waitForURL(/\/explorer\/accounts\/0x/);
      const trail = (await anyone.locator('.royalty .trail').first().textContent()).replace(/\s+/g, ' ').trim();
      expect(trail.startsWith('digit-reader → TRAINED_ON → handwritten-digits-8x8 → this address'), trail);
      await shot(anyone, 'explorer-account');
      await accessible(anyone, 'an account page');
      await anyone.locator('.royalty-head a.asset').first().click();
      await anyone.waitForURL(/\/explorer\/assets\/0x/);
      expect((await anyone.locator('h1').textContent()).startsWith('handwritten-digits-8x8'), 'not the dataset page');
      const model = anyone.locator('svg.lineage a', { hasText: 'digit-reader' });
      expect(await model.count() === 1, 'the model is not drawn as a link in the lineage');
      const listed = (await anyone.locator('.neighbours').textContent()).replace(/\s+/g, ' ');
      expect(listed.includes('digit-reader child (TRAINED_ON): sends this asset 30% of what it earns'), listed);
      await shot(anyone, 'explorer-asset');
      await accessible(anyone, 'an asset page');
      await model.focus();
      await anyone.keyboard.press('Enter');
      await anyone.waitForFunction(() => document.querySelector('h1')?.textContent.startsWith('digit-reader'));
      await visitor.close();
    });

    await check("developer: a key issued with the wallet's signature makes a paid call from the model catalogue and one with the copied curl snippet, both show in the spending, revoking it stops it, and a deposit from the wallet reaches the balance", async () => {
      await page.goto(`${url}/developer`);
      await page.getByLabel('Name').fill('shop backend');
      await page.getByRole('button', { name: 'Sign with your wallet and issue' }).click();
      await page.waitForFunction(() => document.querySelector('#key-status')?.textContent.startsWith('Issued key_'), null, { timeout: 15000 });
      const key = (await page.locator('#new-key-value').textContent()).trim();
      expect(key.startsWith('crv_'), `not a key: ${key}`);
      expect((await page.locator('.snippet').first().textContent()).includes(key), 'the snippets do not carry the new key');
      const models = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      expect(models.status === 200, `the new key was refused: ${models.status}`);
      await page.goto(`${url}/models`);
      const encoder = page.locator('.card.model', { hasText: 'all-MiniLM-L6-v2' });
      await encoder.locator('summary').click();
      await encoder.getByLabel(/^Input/).fill('The parcel arrived on time.');
      await encoder.getByLabel(/^API key/).fill(key);
      await encoder.getByRole('button', { name: 'Call all-MiniLM-L6-v2' }).click();
      const status = encoder.locator('.status');
      await status.filter({ hasText: /^(Answered|The call|The network)/ }).waitFor({ timeout: 120000 });
      const said = await status.textContent();
      expect(/^Answered; charged 0\.\d+ USDC/.test(said), said);
      expect((await encoder.locator('.answer').textContent()).includes('384 numbers'), 'no embedding shown');
      await shot(page, 'models');
      await accessible(page, 'the model catalogue');
      await page.goto(`${url}/developer`);
      // The curl snippet runs as pasted, with the key in the environment it names.
      const curl = (await page.locator('.snippet').first().textContent()).trim();
      expect(curl.startsWith(`curl ${url}/v1/embeddings`), `the snippet does not call the encoder: ${curl}`);
      const answered = JSON.parse(execFileSync('sh', ['-c', curl], { encoding: 'utf8', env: { ...process.env, CARAVAN_API_KEY: key } }));
      expect(answered.data?.[0]?.embedding?.length === 384, `the snippet's call failed: ${JSON.stringify(answered).slice(0, 300)}`);
      // Both paid calls (the catalogue's and the snippet's) are in the spending, once each.
      let spent = '';
      for (let tries = 0; tries < 20 && !/all-MiniLM-L6-v2 model 2 2 /.test(spent); tries += 1) {
        await page.goto(`${url}/developer?days=7`);
        spent = (await page.locator('section', { has: page.locator('#spend') }).innerText()).replace(/\s+/g, ' ');
      }
      expect(/all-MiniLM-L6-v2 model 2 2 0\.\d+ USDC/.test(spent), `the spending does not show the two calls: ${spent}`);
      expect(await page.locator('svg.chart rect.spend').count() === 7, 'the chart does not have a bar per day');
      const row = page.locator('tr', { hasText: 'shop backend' });
      expect(await row.count() === 1, 'the new key is not listed');
      await shot(page, 'developer');
      await accessible(page, 'the developer page');
      await row.getByRole('button', { name: /^Revoke key_/ }).click();
      await page.waitForFunction(() => document.querySelector('#key-status')?.textContent.startsWith('Revoked key_'));
      const after = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      expect(after.status === 401, `a revoked key still works: ${after.status}`);
      // Part of the royalty the wallet claimed on anvil goes back in as prepaid balance.
      const available = async () => (await page.locator('table.figures tbody tr').first().locator('td').first().textContent()).trim();
      const before = await available();
      await page.getByLabel('Amount').fill('0.1');
      await page.getByRole('button', { name: 'Deposit from your wallet' }).click();
      await page.waitForFunction(() => document.querySelector('#deposit-status')?.textContent.startsWith('Deposit sent'), null, { timeout: 20000 });
      const expected = `${(Number(before.split(' ')[0]) + 0.1).toFixed(6).replace(/0+$/, '')} USDC`;
      let now = before;
      for (let tries = 0; tries < 40 && now !== expected; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await page.reload();
        now = await available();
      }
      expect(now === expected, `the balance went from ${before} to ${now}, not ${expected}`);
    });

    await check('a requester posts a project in the form, imports items (a bad file is listed record by record), and reviews a marked answer in the queue', async () => {
      const { desk, requester } = await requesterSignedIn(browser, url);
      await requester.goto(`${url}/requests`);
      await requester.getByRole('link', { name: 'New project' }).click();
      await requester.getByLabel('Title').fill('People and places in letters');
      await requester.getByText('Marked spans of text').click();
      await requester.getByLabel('Span labels').fill('person\nplace');
      await requester.getByLabel('Bounty per accepted answer').fill('a cent');
      await requester.getByLabel('Budget, escrowed now').fill('1');
      await requester.getByRole('button', { name: 'Post the project and escrow the budget' }).click();
      const problems = (await requester.locator('.problems').textContent()).replace(/\s+/g, ' ');
      expect(problems.includes('in whole tokens: amount `a cent`'), `the bounty's problem is not said: ${problems}`);
      expect(await requester.getByLabel('Title').inputValue() === 'People and places in letters', 'the title typed was lost');
      await shot(requester, 'new-project-problems');
      await accessible(requester, 'the new-project form with problems');
      await requester.getByLabel('Bounty per accepted answer').fill('0.01');
      await requester.getByRole('button', { name: 'Post the project and escrow the budget' }).click();
      await requester.waitForURL(/\/requests\/0x[0-9a-f]{64}\?created=1/);
      expect((await requester.locator('.notice').textContent()).includes('the budget is escrowed'), 'no word of the escrow');
      const bad = '{"text": "Ada wrote to Babbage."}\n{"data": {"text": "Ada"}, "gold": {"spans": [{"start": 0, "end": 9, "label": "person"}]}}\n{"text": \n';
      await requester.getByLabel('File of items').setInputFiles({ name: 'letters.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(bad) });
      await requester.getByRole('button', { name: 'Import' }).click();
      const report = (await requester.locator('.import-report').textContent()).replace(/\s+/g, ' ');
      expect(report.includes('letters.jsonl was not imported: 2 bad records'), report);
      expect(report.includes('line 2') && report.includes('line 3'), `the bad lines are not named: ${report}`);
      await shot(requester, 'import-report');
      await accessible(requester, 'a refused import');
      const good = '{"text": "Ada wrote to Babbage from London."}\n{"text": "Mary Somerville lived in Florence."}\n';
      await requester.getByLabel('File of items').setInputFiles({ name: 'letters.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(good) });
      await requester.getByRole('button', { name: 'Import' }).click();
      await requester.waitForURL(/imported=2/);

      // The entities project holds the spans the labeller marked earlier: the requester reviews them.
      await requester.goto(`${url}/requests/${projects.entities.id}`);
      await requester.getByRole('button', { name: 'Add' }).click();
      await requester.waitForURL(/reviewer=0x/);
      await requester.getByRole('link', { name: 'Open the review queue' }).click();
      await requester.locator('#answer').waitFor({ timeout: 10000 });
      const marks = await requester.locator('#spans li').allTextContents();
      expect(marks.length === 2 && marks[0].startsWith('person: “Ada Lovelace”'), `the labeller's marks are not in the form: ${marks.join(' | ')}`);
      await shot(requester, 'review');
      await accessible(requester, 'the review queue');
      await requester.locator('#span-text').focus();
      await requester.keyboard.press('Backspace');
      await requester.keyboard.press('Enter');
      await requester.waitForFunction(() => document.querySelector('#outcome')?.textContent || document.querySelector('#problem')?.textContent, null, { timeout: 10000 });
      const outcome = await requester.locator('#outcome').textContent();
      expect(outcome.startsWith('Accepted with your fix'), `the fix was not recorded: ${outcome} ${await requester.locator('#problem').textContent()}`);
      await desk.close();
    });

    await check('a requester creates a project of every other task type in the form, each with its answers as asked', async () => {
      const { desk, requester } = await requesterSignedIn(browser, url);
      const kinds = [
        ['One option', async () => requester.getByRole('textbox', { name: /^Options/ }).fill('bug\nfeature\nquestion'),
          { type: 'single_choice', options: ['bug', 'feature', 'question'] }],
        ['Several options', async () => {
          await requester.getByRole('textbox', { name: /^Options/ }).fill('red\ngreen\nblue');
          await requester.getByLabel('Most options picked').fill('3');
        }, { type: 'multiple_choice', options: ['red', 'green', 'blue'], max_selected: 3 }],
        ['A rating on a scale', async () => {
          await requester.getByLabel('Lowest rating').fill('0');
          await requester.getByLabel('Highest rating').fill('10');
        }, { type: 'rating', min: 0, max: 10 }],
        ['Which of two is better', async () => requester.getByText('Allow “about the same”').click(),
          { type: 'pairwise', allow_tie: true }],
        ['Written text', async () => {
          await requester.getByLabel('Shortest text, in characters').fill('20');
          await requester.getByLabel('Longest text, in characters').fill('500');
        }, { type: 'free_text', min_chars: 20, max_chars: 500 }],
      ];
      for (const [label, fill, expected] of kinds) {
        await requester.goto(`${url}/requests/new`);
        await requester.getByLabel('Title').fill(`A ${expected.type} project`);
        await requester.getByText(label, { exact: true }).click();
        await fill();
        await requester.getByLabel('Bounty per accepted answer').fill('0.01');
        await requester.getByLabel('Budget, escrowed now').fill('0.05');
        await requester.getByRole('button', { name: 'Post the project and escrow the budget' }).click();
        await requester.waitForURL(/\/requests\/0x[0-9a-f]{64}\?created=1/, { timeout: 10000 });
        const id = requester.url().match(/0x[0-9a-f]{64}/)[0];
        const { spec } = await (await fetch(`${url}/v1/projects/${id}`)).json();
        for (const [key, value] of Object.entries(expected)) {
          expect(JSON.stringify(spec.schema[key]) === JSON.stringify(value), `${label}: schema.${key} is ${JSON.stringify(spec.schema[key])}, not ${JSON.stringify(value)}`);
        }
      }
      await desk.close();
    });

    await check('a requester watches a labeller answer from another browser, publishes the project from the page, and downloads its exports', async () => {
      const { desk, requester } = await requesterSignedIn(browser, url);
      await requester.getByRole('link', { name: 'Projects' }).click();
      await requester.getByRole('link', { name: projects.topics.spec.title }).click();
      const progress = (await requester.locator('main').textContent()).replace(/\s+/g, ' ');
      // The labeller's row shows the address short, as a link to the account in the explorer.
      const labellerRow = requester.locator(`table a[href="/explorer/accounts/${wallet.address}"]`);
      const shown = await labellerRow.textContent();
      const full = await labellerRow.getAttribute('title');
      expect(progress.includes('Items resolved') && shown === `${wallet.address.slice(0, 6)}…${wallet.address.slice(-4)}` && full === wallet.address, `the labeller's record is not shown: ${shown} ${full} ${progress}`);
      // The labeller answers in their own browser while the requester watches: the page shows
      // the new judgment and the labeller's row grows.
      const judgments = async () => Number((await requester.locator('main').textContent()).replace(/\s+/g, ' ').match(/Judgments ?(\d+)/)[1]);
      const before = await judgments();
      await openProject(page, url, projects.topics);
      await page.keyboard.press('3');
      expect((await submitAndWaitForNext(page)).includes('Accepted'), 'the labeller\'s answer was not accepted');
      await requester.reload();
      expect(await judgments() === before + 1, `the requester's page did not show the new judgment (${before} before)`);
      // Every resolved item stands in the confidence chart, in the tenth its label had.
      const bars = await requester.locator('#confidence-title').locator('xpath=..').locator('rect title').allTextContents();
      const charted = bars.reduce((sum, bar) => sum + Number(bar.match(/: (\d+) item/)[1]), 0);
      const resolved = Number(progress.match(/Items resolved ?(\d+) of/)[1]);
      expect(bars.length === 10 && charted >= resolved && charted > 0, `the confidence chart holds ${charted} items in ${bars.length} bars, ${resolved} were resolved before the last answer`);
      await shot(requester, 'request');
      await accessible(requester, 'a requester\'s project page');
      await requester.getByLabel('Dataset name').fill('support-ticket-topics');
      await requester.getByRole('button', { name: 'Publish' }).click();
      await requester.waitForURL(/published=0x/);
      expect((await requester.locator('.notice').textContent()).includes('Published as dataset 0x'), 'no word of the dataset');
      // The exports download as files: JSONL from its link, Label Studio JSON from the form,
      // with the tag names of the requester's Label Studio config.
      const saved = async (start) => {
        const [download] = await Promise.all([requester.waitForEvent('download'), start()]);
        return { name: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') };
      };
      await shot(requester, 'request-published');
      await accessible(requester, 'a published project\'s page with its exports');
      const jsonl = await saved(() => requester.getByRole('link', { name: 'JSONL' }).click());
      expect(jsonl.name.endsWith('.jsonl') && jsonl.text.includes('"choices"'), `the JSONL export is not a file of rows: ${jsonl.name} ${jsonl.text.slice(0, 200)}`);
      await requester.getByLabel('Answering tag').fill('topics');
      await requester.getByLabel('Labelled tag').fill('ticket');
      const studio = await saved(() => requester.getByRole('button', { name: 'Download Label Studio JSON' }).click());
      const result = JSON.parse(studio.text)[0].annotations[0].result[0];
      expect(studio.name.endsWith('.label-studio.json') && result.from_name === 'topics' && result.to_name === 'ticket', `the Label Studio export is not named as asked: ${studio.name} ${JSON.stringify(result)}`);
      await desk.close();
    });

    await check('signing out ends the session', async () => {
      await page.goto(`${url}/tasks`);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/sign-in\?signed_out=1/);
      await page.goto(`${url}/tasks`);
      expect(new URL(page.url()).pathname === '/sign-in', 'still signed in after signing out');
    });

    await check('caravan login prints a one-time link that signs a browser in without a wallet', async () => {
      const keeper = '0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356';
      const keyFile = join(world.dataDir, 'keeper.key');
      writeFileSync(keyFile, `${keeper.slice(2)}\n`, { mode: 0o600 });
      const link = execFileSync(caravan, ['login', '--key', keyFile, '--node', url], { encoding: 'utf8' }).trim();
      expect(link.startsWith(`${url}/sign-in/link?message=`), `printed ${link}`);
      const fresh = await browser.newContext();
      const tab = await fresh.newPage();
      await tab.goto(link);
      const address = privateKeyToAccount(keeper).address;
      expect((await tab.locator('main').textContent()).includes(address), 'the link page does not name the account');
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await tab.waitForURL(`${url}/tasks`);
      expect(await tab.locator('.account').getAttribute('title') === address, 'signed in as someone else');
      await tab.goto(link);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      expect((await tab.locator('main').textContent()).includes('make a new one'), 'a used link worked twice');
      await fresh.close();
    });

    await check('no script error on any page', async () => {
      expect(pageErrors.length === 0, pageErrors.join('\n'));
    });
  } finally {
    await browser.close();
    world.stop();
  }
  console.log(`\n${results.join('\n')}\nscreenshots in ${artifacts}`);
  if (failed > 0) {
    console.log(`${failed} browser checks failed`);
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
