// Rebuilds the settlement root of a caravan epoch bundle with OpenZeppelin's StandardMerkleTree
// and checks every proof with it: the third-party check that caravan's trees are the ones the
// Solidity MerkleProof library and the JavaScript tooling expect.
// Usage: node check-bundle.js BUNDLE.json
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const path = process.argv[2];
if (!path) {
  console.error("usage: node check-bundle.js BUNDLE.json (write one with `caravan epoch show N --out FILE`)");
  process.exit(2);
}
const bundle = JSON.parse(fs.readFileSync(path, "utf8"));
const values = bundle.leaves.map((leaf) => [leaf.account, leaf.token, leaf.cumulative]);
const tree = StandardMerkleTree.of(values, ["address", "address", "uint256"]);
if (tree.root !== bundle.root) {
  console.error(`root mismatch: OpenZeppelin builds ${tree.root}, the bundle states ${bundle.root}`);
  process.exit(1);
}
let checked = 0;
for (const [index, value] of tree.entries()) {
  if (!StandardMerkleTree.verify(tree.root, ["address", "address", "uint256"], value, tree.getProof(index))) {
    console.error(`proof of leaf ${index} (${value[0]}) does not verify`);
    process.exit(1);
  }
  checked += 1;
}
console.log(`OpenZeppelin StandardMerkleTree rebuilds root ${tree.root} of epoch ${bundle.epoch} from ${values.length} leaves; ${checked} proofs verify`);
