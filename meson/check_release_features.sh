#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Builds the whole workspace in release the way a user would (`cargo build --release
# --workspace`, which also builds the test crate) and checks that no plugin it produces has a
# fault-injection surface: the test crate must not switch the feature on for release artefacts.
# Usage: check_release_features.sh SOURCE_ROOT TARGET_DIR ELEMENT...
set -euo pipefail
src=$1; target=$2; shift 2
cargo build --release --workspace --locked --quiet --manifest-path "$src/Cargo.toml" --target-dir "$target"
plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
cp "$target"/release/libgstvigil*.so "$plugins"/
export GST_REGISTRY="$plugins/registry.bin" GST_PLUGIN_PATH="$plugins"
for element in "$@"; do
  out=$(gst-inspect-1.0 "$element") || { echo "gst-inspect-1.0 $element failed"; exit 1; }
  echo "$out" | grep -q "Filename *$plugins/" || { echo "$element was not loaded from the release build"; exit 1; }
  if echo "$out" | grep -q "fault-injection"; then
    echo "$element from cargo build --release --workspace has a fault-injection property"; exit 1
  fi
  echo "$element (cargo build --release --workspace): no fault-injection property"
done
