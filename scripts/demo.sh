#!/usr/bin/env bash
# The demo: ./scripts/demo.sh   (PORT=8081 ./scripts/demo.sh for another port)
# Installs only what the demo needs (scripts/setup.sh --demo: the wasm32 target, wasm-bindgen-cli
# at Cargo.lock's version, node), builds the wasm package into www/pkg (cargo + wasm-bindgen, as
# wasm-pack would), meta-trains the page's default bundle natively (scripts/default-bundle.sh, so
# a first visit shows recommendations at once), and serves the page on
# http://127.0.0.1:$PORT/ (default 8080). Open it in a browser with WebGPU; add ?engine=cpu or
# ?engine=gpu to force an engine (default: auto).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
export PATH

./scripts/setup.sh --demo

echo "==> building the wasm package (release) into www/pkg"
cargo build --quiet --release --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir www/pkg target/wasm32-unknown-unknown/release/metarec.wasm

./scripts/default-bundle.sh

export PORT="${PORT:-8080}"
echo "==> serving the repository root on 127.0.0.1:$PORT (Ctrl+C to stop)"
exec node scripts/serve.mjs
