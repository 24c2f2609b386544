#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node, pinned in package.json) beside this script from npm and
# prints the binary's path. The JSON-RPC chain tests start it on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")"
binary="node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
if [ ! -x "$binary" ]; then
  npm install --no-audit --no-fund --silent
fi
echo "$(pwd)/$binary"
