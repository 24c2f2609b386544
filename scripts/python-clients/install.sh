#!/usr/bin/env bash
# Installs the official `openai` Python client and LangChain's OpenAI integration (pinned in
# requirements.txt) into a virtual environment and prints its python's path. The gateway's
# client tests run check.py with it.
#   scripts/python-clients/install.sh [DIR]   (default: $CARAVAN_PYTHON_CLIENTS or ~/.cache/caravan/python-clients)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${CARAVAN_PYTHON_CLIENTS:-$HOME/.cache/caravan/python-clients}}"
python="$dir/bin/python"
stamp="$dir/.requirements"
if [ ! -x "$python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  python3 -m venv "$dir"
  "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
echo "$python"
