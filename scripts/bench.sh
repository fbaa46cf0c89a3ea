#!/usr/bin/env bash
# The benchmark command: ./scripts/bench.sh
# Installs what is missing (scripts/setup.sh: Rust targets and tools, Chromium, lavapipe, the npm
# packages in package-lock.json including TensorFlow.js), builds the wasm package (release) and
# the native CLI (release), then runs scripts/bench.mjs: the browser benchmarks in headless
# Chromium (metarec vs TensorFlow.js, adaptation latency vs catalog size) and the native ones.
# Results: out/bench/results.json, out/bench/tables.md (BENCHMARKS.md-ready), out/bench/latency.svg.
# Exits non-zero if the TF.js step is not equivalent to metarec's. Not part of scripts/test.sh:
# it reports timings and asserts none of them. Settings: see the environment in scripts/bench.mjs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
export PATH

start=$SECONDS
echo "==> setup"
./scripts/setup.sh
echo "==> build: wasm package (release) and the native CLI (release)"
wasm-pack build --release --target web --out-dir www/pkg -- --features bench
cargo build --release --features cli
echo "==> benchmarks"
node scripts/bench.mjs
echo "bench: done in $((SECONDS - start)) s"
