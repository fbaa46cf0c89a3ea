#!/usr/bin/env bash
# The page's default bundle: ./scripts/default-bundle.sh
# Meta-trains, natively on the CPU engine (deterministic), the policy a first visit to the page
# would otherwise meta-train in the browser (the synthetic world of seed 0: 2,000 items, 1,000
# users; 60 iterations of first-order MAML, 8 users each, person step size 0.01, as
# www/foryou.js's defaults), and writes www/default.bundle and www/default.json (the world it was
# trained on, which the Simulate view regenerates). The page serves it on a first visit, so
# recommendations show at once; a URL with training settings (?items=…&iterations=…) still
# meta-trains in the page. Both files are build outputs (git-ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SEED=0 ITEMS=2000 USERS=1000 ITERATIONS=60
echo "==> default bundle: meta-training natively (synthetic world seed $SEED, $ITERATIONS iterations)"
cargo run --quiet --release --features cli -- train --data "synthetic:$SEED" --seed "$SEED" --stages meta \
    --algorithm fomaml --param-lr 0.01 --iterations "$ITERATIONS" --users-per-iteration 8 \
    --engine cpu --out www/default.bundle
cat >www/default.json <<JSON
{"bundle": "default.bundle", "world": {"items": $ITEMS, "users": $USERS, "seed": $SEED}, "iterations": $ITERATIONS, "algorithm": "fomaml"}
JSON
echo "wrote www/default.bundle and www/default.json"
