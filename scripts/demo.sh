#!/usr/bin/env bash
# The demo: ./scripts/demo.sh   (PORT=8081 ./scripts/demo.sh for another port)
# Installs what is missing (scripts/setup.sh), builds the wasm package into www/pkg, and serves the
# page on http://127.0.0.1:$PORT/ (default 8080). Open it in a browser with WebGPU; add
# ?engine=cpu or ?engine=gpu to force an engine (default: auto).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
export PATH

./scripts/setup.sh

echo "==> building the wasm package (release) into www/pkg"
wasm-pack build --release --target web --out-dir www/pkg

export PORT="${PORT:-8080}"
echo "==> serving the repository root on 127.0.0.1:$PORT (Ctrl+C to stop)"
exec node scripts/serve.mjs
