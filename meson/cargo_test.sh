#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# meson test `cargo-test`: runs `cargo test ARGS...` with every test binary run to its end
# (--no-fail-fast), and on a failure ends its output with a digest of what failed (the failing
# tests, their panic messages, crashed binaries), so the last lines meson shows name the cause
# instead of the codecs' log.
set -uo pipefail
cargo=$1
shift
log=$(mktemp "${TMPDIR:-/tmp}/vigil-cargo-test.XXXXXX")
trap 'rm -f "$log"' EXIT
"$cargo" test --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "=== vigil cargo-test: FAILED (exit $status); what failed:"
    grep -E -A12 "^---- .* stdout ----$|panicked at" "$log" | grep -v "^Svt\[" | head -200
    grep -E "^test .* FAILED$|^test result: FAILED|didn't exit successfully|^error: test failed" "$log"
fi
exit "$status"
