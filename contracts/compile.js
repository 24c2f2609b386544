// Compiles contracts/src/*.sol with the pinned solcjs from package.json and writes one artifact per
// contract to contracts/artifacts/<Name>.json (ABI, creation and runtime bytecode, settings).
// With --check, compiles and compares with the committed artifacts instead, exiting 1 on any
// difference (CI runs this).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const EVM_VERSION = 'paris';
const OPTIMIZER_RUNS = 1000000;
const here = __dirname;
const sourceDir = path.join(here, 'src');
const artifactDir = path.join(here, 'artifacts');
const check = process.argv.includes('--check');

const sources = {};
for (const file of fs.readdirSync(sourceDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(sourceDir, file), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const message of output.errors || []) {
  console.error(message.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}

let differences = 0;
fs.mkdirSync(artifactDir, { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, compiled] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      source: `contracts/src/${file}`,
      compiler: { version: solc.version(), evmVersion: EVM_VERSION, optimizerRuns: OPTIMIZER_RUNS },
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    };
    const text = `${JSON.stringify(artifact, null, 2)}\n`;
    const target = path.join(artifactDir, `${name}.json`);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
      if (committed !== text) {
        console.error(`${path.relative(process.cwd(), target)} differs from a fresh compile; run contracts/build.sh and commit`);
        differences += 1;
      }
    } else {
      fs.writeFileSync(target, text);
      console.log(`wrote ${path.relative(process.cwd(), target)} (${compiled.evm.deployedBytecode.object.length / 2} bytes deployed)`);
    }
  }
}
process.exit(differences > 0 ? 1 : 0);
