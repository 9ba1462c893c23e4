#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Runs the randomized contract test (tests/tests/contract.rs) for as long as asked: new seeds,
# one after another, until the time is up. Every seed is printed; a failing one is shrunk to a
# minimal sequence and can be replayed with VIGIL_CONTRACT_SEED=<seed>.
#
#   scripts/torture.sh --minutes 30 [--kind encoder|decoder|sink|failover] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=5
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --kind) export VIGIL_CONTRACT_KIND="$2"; shift 2 ;;
    --seed) export VIGIL_CONTRACT_SEED="$2"; shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--kind encoder|decoder|sink|failover] [--seed N]" >&2; exit 2 ;;
  esac
done
export VIGIL_CONTRACT_MINUTES="$minutes"
export VIGIL_CONTRACT_CASES="${VIGIL_CONTRACT_CASES:-40}"
# The whole run is bounded: the minutes asked, plus room for the last round and its shrinking.
exec timeout $(( minutes * 60 + 900 )) \
  cargo test --locked --all-features -p vigil-tests --test contract -- --nocapture
