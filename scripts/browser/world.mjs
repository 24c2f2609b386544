// The world the browser tests work in: a fresh store with one open project of every task type
// (and one whose check questions pause whoever fails them), built with caravan's own commands,
// settling on the embedded chain and on an anvil chain, then `caravan serve` over it on a free
// loopback port.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The embedded chain's development token, registered as a 6-decimal USDC. */
export const TOKEN = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
/** The account that posts and funds the projects. */
export const REQUESTER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
/** The developer of the model trained on the digits. */
const DEVELOPER = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';
/** The node that served the model's calls. */
const SERVING_NODE = '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65';

const base = {
  overlap: { min: 1, max: 1, confidence: 0.5 },
  token: TOKEN,
  bounty: '20000',
  budget: '10000000',
  gold_rate: 0,
  skill_bar: 0,
  gold_grace: 5,
  min_seconds_per_item: 1,
  daily_cap: 500,
  deadline_ms: 1893456000000,
  lease_seconds: 600,
  order: 'import_order',
  method: 'mv',
};

const reviews = [
  ['Battery lasts two days, love it', 'pos'],
  ['Stopped charging after a week', 'neg'],
  ['Exactly as described, fast delivery', 'pos'],
  ['The screen cracked on the first day', 'neg'],
  ['Comfortable and quiet, would buy again', 'pos'],
  ['Support never answered my emails', 'neg'],
];

/** The projects, by the key the tests use; `items` are JSONL records; `gold` keyed by text. */
function projects(digitsCsv) {
  const digits = readFileSync(digitsCsv, 'utf8').trim().split('\n').slice(0, 6)
    .map((line) => line.split(',').map(Number));
  return {
    sentiment: {
      spec: {
        ...base,
        title: 'Sentiment of product reviews',
        instructions: 'Read the review. Choose pos if the writer is happy with the product, neg if not.',
        schema: { type: 'single_choice', options: ['pos', 'neg'] },
        exam: { questions: 2, pass_mark: 500000 },
        min_seconds_per_item: 2,
      },
      items: reviews.map(([text, gold], index) => (index < 3
        ? { data: { text }, gold: { choice: gold } }
        : { data: { text }, predictions: [{ model: 'review-sentiment-v1', answer: { choice: gold }, score: 0.82 }] })),
      gold: Object.fromEntries(reviews.map(([text, gold]) => [text, gold])),
    },
    topics: {
      spec: {
        ...base,
        title: 'Topics of support tickets',
        instructions: 'Tick every topic the ticket is about (one to three).',
        schema: { type: 'multiple_choice', options: ['billing', 'delivery', 'quality', 'account'], min_selected: 1, max_selected: 3 },
      },
      items: [
        { text: 'I was charged twice and the parcel never arrived' },
        { text: 'Cannot log in since the password reset' },
      ],
    },
    replies: {
      spec: {
        ...base,
        title: 'Write a friendly reply',
        instructions: 'Write the reply a helpful support agent would send.',
        schema: { type: 'free_text', min_chars: 20, max_chars: 400 },
      },
      items: [
        { prompt: 'My order arrived damaged. What can I do?' },
        { prompt: 'How do I change my delivery address?' },
      ],
    },
    helpfulness: {
      spec: {
        ...base,
        title: 'How helpful is this answer?',
        instructions: 'Rate from 1 (useless) to 5 (exactly what was asked).',
        schema: { type: 'rating', min: 1, max: 5 },
      },
      items: [
        { question: 'How long does shipping take?', answer: 'Three to five working days within the EU.' },
        { question: 'Can I pay by invoice?', answer: 'Yes.' },
      ],
    },
    preference: {
      spec: {
        ...base,
        title: 'Which answer is better?',
        instructions: 'Compare the two answers to the question and pick the more helpful one.',
        schema: { type: 'pairwise', allow_tie: true },
      },
      items: [
        { prompt: 'Explain what a refund is.', a: 'Money returned to you for a purchase you sent back or that went wrong.', b: 'A refund.' },
        { prompt: 'Is the store open on Sundays?', a: 'No.', b: 'Yes, from 10:00 to 16:00.' },
      ],
    },
    entities: {
      spec: {
        ...base,
        title: 'Mark people and places',
        instructions: 'Mark every person and every place named in the sentence.',
        schema: { type: 'spans', labels: ['person', 'place'], text_field: 'text' },
      },
      items: [
        { text: 'Ada Lovelace met Charles Babbage in London.' },
        { text: 'Grace Hopper worked in Arlington for years.' },
      ],
    },
    digits: {
      spec: {
        ...base,
        title: 'Which digit is this?',
        instructions: 'Each picture is a handwritten digit scanned at 8 by 8 pixels. Pick the digit you see.',
        schema: { type: 'single_choice', options: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] },
      },
      items: digits.map((row) => ({ pixels: row.slice(0, 64) })),
      truth: digits.map((row) => String(row[64])),
    },
    opinions: {
      spec: {
        ...base,
        title: 'Would you recommend it?',
        instructions: 'Answer yes if the writer would recommend the product, no if not.',
        schema: { type: 'single_choice', options: ['yes', 'no'] },
        overlap: { min: 2, max: 2, confidence: 0.5 },
      },
      items: [
        { text: 'I have bought three more for my family.' },
        { text: 'It works, but I would not buy it again.' },
      ],
    },
    checked: {
      spec: {
        ...base,
        title: 'Spam or not (checked)',
        instructions: 'Choose spam for unwanted advertising, ham for a real message.',
        schema: { type: 'single_choice', options: ['spam', 'ham'] },
        gold_rate: 1000000,
        skill_bar: 800000,
        gold_grace: 2,
      },
      items: [
        { data: { text: 'WIN A FREE CRUISE, click now' }, gold: { choice: 'spam' } },
        { data: { text: 'Lunch at noon tomorrow?' }, gold: { choice: 'ham' } },
        { data: { text: 'Cheap pills, no prescription' }, gold: { choice: 'spam' } },
        { data: { text: 'The meeting notes are attached' }, gold: { choice: 'ham' } },
        { data: { text: 'Your parcel is ready for pickup' } },
      ],
      gold: {
        'WIN A FREE CRUISE, click now': 'spam',
        'Lunch at noon tomorrow?': 'ham',
        'Cheap pills, no prescription': 'spam',
        'The meeting notes are attached': 'ham',
      },
    },
  };
}

/** anvil's first development key: the node signs with it on the anvil chain. */
const CHAIN_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

/**
 * The environment without a database URL, so the store is the data directory's own SQLite,
 * and with the node's signer key for the anvil chain.
 */
function embedded() {
  const env = { ...process.env, CARAVAN_BROWSER_CHAIN_KEY: CHAIN_KEY };
  delete env.CARAVAN_DATABASE_URL;
  return env;
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts anvil on a free loopback port and waits until it answers. */
async function startAnvil(binary) {
  const port = await freePort();
  const child = spawn(binary, ['--port', String(port), '--silent'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let tries = 0; tries < 100; tries += 1) {
    try {
      const answer = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (answer.ok) return { url, stop: () => child.kill('SIGTERM') };
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`anvil did not answer on ${url}`);
}

function run(caravan, dataDir, args) {
  try {
    return execFileSync(caravan, ['--data-dir', dataDir, ...args], {
      encoding: 'utf8',
      env: embedded(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    throw new Error(`caravan ${args.join(' ')} failed:\n${error.stderr || error.message}`);
  }
}

/**
 * Builds the store (with `caller` holding a prepaid balance for paid calls) and starts the
 * node. Returns the node's URL, the projects with their ids,
 * a function that closes an epoch in which the digits labelled here earn a royalty, and one
 * that stops the node.
 */
export async function startWorld(caravan, digitsCsv, anvilBinary, caller) {
  const dataDir = mkdtempSync(join(tmpdir(), 'caravan-browser-'));
  const anvil = await startAnvil(anvilBinary);
  run(caravan, dataDir, ['chain', 'add', 'anvil', '--url', anvil.url, '--chain-id', '31337', '--key-env', 'CARAVAN_BROWSER_CHAIN_KEY']);
  run(caravan, dataDir, ['token', 'register', '--address', TOKEN, '--symbol', 'USDC', '--decimals', '6']);
  run(caravan, dataDir, ['deposit', '--payer', REQUESTER, '--token', TOKEN, '--amount', '1000']);
  const worldProjects = projects(digitsCsv);
  for (const [key, project] of Object.entries(worldProjects)) {
    const specFile = join(dataDir, `${key}.json`);
    writeFileSync(specFile, JSON.stringify(project.spec));
    const created = run(caravan, dataDir, ['task', 'create', '--requester', REQUESTER, '--spec', specFile]);
    project.id = created.trim().replace(/^project /, '');
    const itemsFile = join(dataDir, `${key}.jsonl`);
    writeFileSync(itemsFile, project.items.map((item) => JSON.stringify(item)).join('\n') + '\n');
    run(caravan, dataDir, ['task', 'import', project.id, '--requester', REQUESTER, itemsFile]);
  }
  // A real model to call from the pages: the sentence encoder scripts/models/install.sh
  // installs, paid per call and per token read; and a prepaid balance for the caller to pay with.
  run(caravan, dataDir, ['model', 'embedder', '--developer', DEVELOPER, '--token', TOKEN, '--price', '0.001', '--token-price', '0.1']);
  run(caravan, dataDir, ['deposit', '--payer', caller, '--token', TOKEN, '--amount', '5']);
  let node = await serve(caravan, dataDir, '127.0.0.1:0');
  const world = {
    url: node.url,
    anvilUrl: anvil.url,
    projects: worldProjects,
    dataDir,
    stop: () => {
      node.process.kill('SIGTERM');
      anvil.stop();
    },
    /**
     * Makes the digits a dataset and registers a model trained on it, with the node stopped
     * meanwhile (the command line and the node do not share a store); then a paid epoch.
     */
    async royaltyEpoch() {
      await node.stopped();
      const published = run(caravan, dataDir, ['task', 'publish', worldProjects.digits.id, '--requester', REQUESTER, '--name', 'handwritten-digits-8x8']);
      const dataset = published.match(/0x[0-9a-f]{64}/)[0];
      const manifest = join(dataDir, 'digit-reader.json');
      writeFileSync(manifest, JSON.stringify({
        kind: 'model',
        name: 'digit-reader',
        owner: DEVELOPER,
        content: `0x${'d1'.repeat(32)}`,
        licence: { type: 'commercial', token: TOKEN, price_per_call: '10000', derivative_royalty: 0 },
        parents: [{ parent: dataset, kind: 'TRAINED_ON', share: 300000 }],
        roles: [{ role: 'developer', share: 1000000, members: [{ account: DEVELOPER, weight: 1 }] }],
      }));
      this.model = run(caravan, dataDir, ['asset', 'register', '--manifest', manifest]).match(/0x[0-9a-f]{64}/)[0];
      await this.paidEpoch([]);
      return { dataset, model: this.model };
    },
    /**
     * Stops the node, records 100 more paid calls to the model, closes the epoch, posts its
     * root on the home chain and on each of `chains`, and serves again on the same address.
     */
    async paidEpoch(chains) {
      await node.stopped();
      run(caravan, dataDir, ['usage', 'record', '--asset', this.model, '--payer', REQUESTER, '--node', SERVING_NODE, '--calls', '100']);
      run(caravan, dataDir, ['epoch', 'close']);
      run(caravan, dataDir, ['epoch', 'post']);
      for (const chain of chains) run(caravan, dataDir, ['epoch', 'post', '--chain', chain]);
      node = await serve(caravan, dataDir, new URL(node.url).host);
    },
  };
  return world;
}

/** Runs `caravan serve` on `listen` and waits until it names its address. */
async function serve(caravan, dataDir, listen) {
  const child = spawn(caravan, ['--data-dir', dataDir, 'serve', '--listen', listen], {
    env: embedded(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`caravan serve exited with ${code} before listening`)));
    lines.once('line', (line) => {
      const found = line.match(/http:\/\/[0-9.:]+/);
      if (found) resolve(found[0]);
      else reject(new Error(`caravan serve printed no address: ${line}`));
    });
  });
  lines.on('line', () => {});
  return {
    url,
    process: child,
    stopped: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
