#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Every test: installs what is missing, checks formatting, lints and docs, builds the plugins
# with meson (release), and runs the suite through `meson test` (the unit tests, the
# integration tests that load the plugins through the registry, the installed-plugin inspection
# and the demo). Fails loudly on the first problem; every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-debian.sh
export PATH="$HOME/.cargo/bin:$PATH"

step() { echo; echo "=== vigil test: $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
timeout 1200 cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" timeout 900 cargo doc --workspace --no-deps --locked -q

builddir=${VIGIL_BUILD_DIR:-build}
step "meson setup and compile ($builddir)"
[ -f "$builddir/build.ninja" ] || meson setup "$builddir"
timeout 1800 meson compile -C "$builddir"

step "meson test"
timeout 3600 meson test -C "$builddir" --print-errorlogs --num-processes 1
echo
echo "=== vigil test: all passed"
