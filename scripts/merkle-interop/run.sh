#!/usr/bin/env bash
# Installs OpenZeppelin's Merkle tree library (pinned) beside this script and checks a bundle with it.
# Usage: scripts/merkle-interop/run.sh BUNDLE.json
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/@openzeppelin/merkle-tree" ]; then
  npm install --prefix "$here" --no-audit --no-fund --silent >/dev/null
fi
node "$here/check-bundle.js" "$1"
