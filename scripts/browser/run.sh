#!/usr/bin/env bash
# The browser suite: installs what it needs (install.sh, and anvil), builds caravan, and runs
# run.mjs, which starts a node over a fresh store with a project of every task type (settling on
# the embedded chain and on anvil) and drives its pages in headless Chromium. Screenshots of each main page go to ARTIFACTS_DIR
# [default: browser-artifacts under the build directory].
#
# Usage: scripts/browser/run.sh [ARTIFACTS_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/caravan-ci-target}"
artifacts="${1:-$CARGO_TARGET_DIR/browser-artifacts}"
export CARAVAN_CHROMIUM="$("$here/install.sh")"
export CARAVAN_ANVIL="$("$root/scripts/anvil/install.sh")"
export CARAVAN_MODELS_DIR="${CARAVAN_MODELS_DIR:-${HOME:-/tmp}/.cache/caravan/models}"
"$root/scripts/models/install.sh" "$CARAVAN_MODELS_DIR" > /dev/null
digits_dir="${CARAVAN_DIGITS_DIR:-${HOME:-/tmp}/.cache/caravan/digits}"
"$root/scripts/fetch-digits.sh" "$digits_dir" > /dev/null
profile="${CARAVAN_BROWSER_PROFILE:-release}"
(cd "$root" && cargo build --quiet --profile "$profile" -p caravan)
dir_of_profile="$profile"
[ "$profile" = dev ] && dir_of_profile=debug
node "$here/run.mjs" "$CARGO_TARGET_DIR/$dir_of_profile/caravan" "$digits_dir/digits.csv" "$artifacts"
