#!/usr/bin/env bash
# Builds the npm package `metarec` into pkg/: the wasm-bindgen classes (wasm-pack, release,
# --target web, without the `bench` feature), the hand-written entry point js/index.js and
# its types js/index.d.ts, the licences; then scripts/package.mjs writes its package.json
# (exports, types, keywords, ...). `cd pkg && npm pack` makes the tarball
# (tests/e2e/package.mjs installs that into a fresh folder and uses it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wasm-pack build --release --target web --out-dir pkg
node scripts/package.mjs pkg
