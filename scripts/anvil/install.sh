#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node) and cast (its command-line wallet), pinned in
# package.json, beside this script from npm and prints anvil's path; both are linked in
# node_modules/.bin. The JSON-RPC chain tests start anvil on a free loopback port; the README's
# walkthrough uses both.
set -euo pipefail
cd "$(dirname "$0")"
binary="node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
if [ ! -x "$binary" ] || [ ! -x node_modules/@foundry-rs/cast-linux-amd64/bin/cast ]; then
  npm install --no-audit --no-fund --silent
fi
echo "$(pwd)/$binary"
