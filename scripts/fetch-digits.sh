#!/usr/bin/env bash
# Fetches the 8x8 handwritten digits the demo labels: 1,797 images with their true digit, the
# test set of the UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin, C. Kaynak,
# 1998; CC BY 4.0), as shipped inside scikit-learn's wheel. Nothing is committed: the wheel is
# downloaded from PyPI into a temporary directory and only the data file is kept.
#
# Usage: scripts/fetch-digits.sh [DIR]   (default: $CARAVAN_DIGITS_DIR or ~/.cache/caravan/digits)
set -euo pipefail
dest="${1:-${CARAVAN_DIGITS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caravan/digits}}"
if [ -f "$dest/digits.csv" ]; then
  echo "digits already at $dest/digits.csv"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading scikit-learn's wheel from PyPI for its digits data ..."
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "scikit-learn==1.9.1" -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import glob, gzip, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "scikit_learn-*.whl"))[0]
dest = sys.argv[2]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    data = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
    about = z.read("sklearn/datasets/descr/digits.rst")
with open(os.path.join(dest, "ABOUT.rst"), "wb") as f:
    f.write(about)
partial = os.path.join(dest, "digits.csv.partial")
with open(partial, "wb") as f:
    f.write(data)
os.replace(partial, os.path.join(dest, "digits.csv"))
print(f"digits saved to {dest}/digits.csv")
PY
