#!/usr/bin/env bash
# Installs what the browser tests need: Debian's chromium and a font (when missing, with apt-get,
# which needs root), and the pinned npm packages beside this script. Never downloads a browser
# from anywhere else: playwright-core drives the system's Chromium. Prints Chromium's path.
set -euo pipefail
cd "$(dirname "$0")"
chromium="${CARAVAN_CHROMIUM:-/usr/lib/chromium/chromium}"
if [ ! -x "$chromium" ] || [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing: run 'sudo apt-get install chromium fonts-dejavu-core' (Debian), or set CARAVAN_CHROMIUM to a Chromium binary" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core >&2
fi
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ] || [ ! -d node_modules/viem ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --silent
  else
    npm install --no-audit --no-fund --silent
  fi
fi
echo "$chromium"
