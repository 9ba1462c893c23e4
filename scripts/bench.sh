#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Side-by-side benchmarks of every vigil element against the reference tools and peer elements.
#   scripts/bench.sh --quick [--out DIR]   smoke run on small inputs, a few minutes (CI)
#   scripts/bench.sh --full                the report: docs/benchmarks.md and docs/benchmarks.png
# The harness builds the plugins (cargo build --release) and loads them from target/release;
# `--help` lists the other options.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# SVT-AV1 prints its configuration at info level for every encoder it creates.
export SVT_LOG="${SVT_LOG:-2}"
exec cargo run --release --locked -q -p vigil-benches -- "$@"
