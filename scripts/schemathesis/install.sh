#!/usr/bin/env bash
# Installs schemathesis (pinned with everything it pulls in, in requirements.txt) into a
# virtual environment and prints the path of its command. `caravan bench api` runs it against
# a node's own OpenAPI document.
#   scripts/schemathesis/install.sh [DIR]   (default: $CARAVAN_SCHEMATHESIS_DIR or ~/.cache/caravan/schemathesis)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${CARAVAN_SCHEMATHESIS_DIR:-$HOME/.cache/caravan/schemathesis}}"
command="$dir/bin/schemathesis"
stamp="$dir/.requirements"
if [ ! -x "$command" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
echo "$command"
