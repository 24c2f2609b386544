#!/usr/bin/env bash
# Installs the pinned Solidity compiler (npm solc, see package.json) beside this script and
# compiles contracts/src into contracts/artifacts. `build.sh --check` compiles and fails if the
# committed artifacts differ (CI runs it).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/solc ]; then
  npm install --no-audit --no-fund --silent
fi
node compile.js "$@"
