#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Side-by-side benchmarks (work in progress): `--quick` for a few minutes, `--full` for the
# report in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo run --release --locked -q -p vigil-benches -- "$@"
