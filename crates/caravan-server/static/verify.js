// caravan's in-page epoch check (Apache-2.0, part of caravan; no third-party code).
// It downloads the epoch's bundle and rebuilds its settlement root here, in the browser, from the
// bundle's leaves alone: each leaf hashed as OpenZeppelin's StandardMerkleTree hashes
// (address account, address token, uint256 cumulative), leaves sorted by hash, pairs hashed in
// sorted order. The node is not asked to vouch for anything: a match means the published root
// commits to exactly these leaves. (The node's own check also replays how the money moved.)
(() => {
  // Keccak-256 (the original padding Ethereum uses), 64-bit lanes as pairs of 32-bit words.
  const ROUND_CONSTANTS = [
    [0x00000001, 0x00000000], [0x00008082, 0x00000000], [0x0000808a, 0x80000000], [0x80008000, 0x80000000],
    [0x0000808b, 0x00000000], [0x80000001, 0x00000000], [0x80008081, 0x80000000], [0x00008009, 0x80000000],
    [0x0000008a, 0x00000000], [0x00000088, 0x00000000], [0x80008009, 0x00000000], [0x8000000a, 0x00000000],
    [0x8000808b, 0x00000000], [0x0000008b, 0x80000000], [0x00008089, 0x80000000], [0x00008003, 0x80000000],
    [0x00008002, 0x80000000], [0x00000080, 0x80000000], [0x0000800a, 0x00000000], [0x8000000a, 0x80000000],
    [0x80008081, 0x80000000], [0x00008080, 0x80000000], [0x80000001, 0x00000000], [0x80008008, 0x80000000],
  ];
  // Rotation of lane x + 5y.
  const ROTATIONS = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];

  const permute = (state) => {
    const c = new Uint32Array(10);
    const b = new Uint32Array(50);
    for (const [low, high] of ROUND_CONSTANTS) {
      for (let x = 0; x < 5; x += 1) {
        c[2 * x] = state[2 * x] ^ state[2 * x + 10] ^ state[2 * x + 20] ^ state[2 * x + 30] ^ state[2 * x + 40];
        c[2 * x + 1] = state[2 * x + 1] ^ state[2 * x + 11] ^ state[2 * x + 21] ^ state[2 * x + 31] ^ state[2 * x + 41];
      }
      for (let x = 0; x < 5; x += 1) {
        const before = (x + 4) % 5;
        const after = (x + 1) % 5;
        const dLow = c[2 * before] ^ ((c[2 * after] << 1) | (c[2 * after + 1] >>> 31));
        const dHigh = c[2 * before + 1] ^ ((c[2 * after + 1] << 1) | (c[2 * after] >>> 31));
        for (let y = 0; y < 25; y += 5) {
          state[2 * (x + y)] ^= dLow;
          state[2 * (x + y) + 1] ^= dHigh;
        }
      }
      for (let x = 0; x < 5; x += 1) {
        for (let y = 0; y < 5; y += 1) {
          const lane = x + 5 * y;
          const low = state[2 * lane];
          const high = state[2 * lane + 1];
          const r = ROTATIONS[lane];
          const target = y + 5 * ((2 * x + 3 * y) % 5);
          let rotatedLow = low;
          let rotatedHigh = high;
          if (r >= 32) {
            rotatedLow = high;
            rotatedHigh = low;
          }
          const n = r % 32;
          if (n !== 0) {
            const l = rotatedLow;
            const h = rotatedHigh;
            rotatedLow = (l << n) | (h >>> (32 - n));
            rotatedHigh = (h << n) | (l >>> (32 - n));
          }
          b[2 * target] = rotatedLow;
          b[2 * target + 1] = rotatedHigh;
        }
      }
      for (let y = 0; y < 25; y += 5) {
        for (let x = 0; x < 5; x += 1) {
          const here = 2 * (x + y);
          const next = 2 * (((x + 1) % 5) + y);
          const nextButOne = 2 * (((x + 2) % 5) + y);
          state[here] = b[here] ^ (~b[next] & b[nextButOne]);
          state[here + 1] = b[here + 1] ^ (~b[next + 1] & b[nextButOne + 1]);
        }
      }
      state[0] ^= low;
      state[1] ^= high;
    }
  };

  const RATE = 136;
  const keccak256 = (bytes) => {
    const state = new Uint32Array(50);
    const padded = new Uint8Array(Math.floor(bytes.length / RATE) * RATE + RATE);
    padded.set(bytes);
    padded[bytes.length] ^= 0x01;
    padded[padded.length - 1] ^= 0x80;
    const words = new DataView(padded.buffer);
    for (let block = 0; block < padded.length; block += RATE) {
      for (let i = 0; i < RATE / 4; i += 1) {
        state[i] ^= words.getUint32(block + 4 * i, true);
      }
      permute(state);
    }
    const out = new Uint8Array(32);
    const view = new DataView(out.buffer);
    for (let i = 0; i < 8; i += 1) view.setUint32(4 * i, state[i], true);
    return out;
  };

  const hexBytes = (hex, length) => {
    const digits = hex.replace(/^0x/, '');
    if (!/^[0-9a-fA-F]*$/.test(digits) || digits.length > 2 * length) throw new Error(`not ${length} bytes of hex: ${hex}`);
    const bytes = new Uint8Array(length);
    const padded = digits.padStart(2 * length, '0');
    for (let i = 0; i < length; i += 1) bytes[i] = parseInt(padded.slice(2 * i, 2 * i + 2), 16);
    return bytes;
  };
  const toHex = (bytes) => `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  const compare = (a, b) => {
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
    return 0;
  };

  // keccak256(keccak256(abi.encode(account, token, cumulative))), as OpenZeppelin hashes a leaf.
  const leafHash = (leaf) => {
    const encoded = new Uint8Array(96);
    encoded.set(hexBytes(leaf.account, 20), 12);
    encoded.set(hexBytes(leaf.token, 20), 44);
    encoded.set(hexBytes(BigInt(leaf.cumulative).toString(16), 32), 64);
    return keccak256(keccak256(encoded));
  };

  const root = (hashes) => {
    if (hashes.length === 0) return new Uint8Array(32);
    hashes.sort(compare);
    const size = 2 * hashes.length - 1;
    const nodes = new Array(size);
    hashes.forEach((hash, rank) => { nodes[size - 1 - rank] = hash; });
    const joined = new Uint8Array(64);
    for (let i = hashes.length - 2; i >= 0; i -= 1) {
      const [low, high] = compare(nodes[2 * i + 1], nodes[2 * i + 2]) <= 0
        ? [nodes[2 * i + 1], nodes[2 * i + 2]] : [nodes[2 * i + 2], nodes[2 * i + 1]];
      joined.set(low, 0);
      joined.set(high, 32);
      nodes[i] = keccak256(joined);
    }
    return nodes[0];
  };

  const form = document.getElementById('verify-here');
  if (!form) return;
  const status = document.getElementById('verify-here-status');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const published = form.dataset.root.toLowerCase();
    status.className = 'status';
    status.textContent = 'Downloading the bundle…';
    let bundle;
    try {
      const response = await fetch(form.dataset.bundle);
      if (!response.ok) throw new Error(`the node answered ${response.status}`);
      bundle = await response.json();
    } catch (error) {
      status.textContent = `The bundle could not be read: ${error.message}`;
      return;
    }
    status.textContent = `Hashing ${bundle.leaves.length} leaves…`;
    // Let the page draw the line above before the work starts.
    await new Promise((resolve) => setTimeout(resolve, 0));
    let rebuilt;
    try {
      rebuilt = toHex(root(bundle.leaves.map(leafHash)));
    } catch (error) {
      status.className = 'problem';
      status.textContent = `The bundle's leaves are malformed: ${error.message}`;
      return;
    }
    const stated = String(bundle.root).toLowerCase();
    if (rebuilt === published && stated === published) {
      status.className = 'outcome';
      status.textContent = `Match: the root rebuilt in this browser from the bundle's ${bundle.leaves.length} leaves is ${rebuilt}, the root published for this epoch.`;
    } else {
      status.className = 'problem';
      status.textContent = `No match: the root rebuilt in this browser from the bundle's ${bundle.leaves.length} leaves is ${rebuilt}, but ${stated === published ? 'the epoch' : 'the bundle'} states ${stated === published ? published : stated}. Verify on this node to find which leaf or payout differs.`;
    }
  });
})();
