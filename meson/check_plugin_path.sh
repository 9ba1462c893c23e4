#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Checks the directory the README points GST_PLUGIN_PATH at (build/plugins): it holds exactly one
# copy of each plugin library and nothing else GStreamer would scan, gst-inspect-1.0 loads each
# plugin from there, and the plugin metadata carries no placeholder origin.
# Usage: check_plugin_path.sh DIR LIB...
set -euo pipefail
dir=$1; shift
found=$(cd "$dir" && find . -name '*.so*' | sed 's|^\./||' | sort)
expected=$(printf '%s\n' "$@" | sort)
if [ "$found" != "$expected" ]; then
  echo "$dir holds:"; echo "$found"; echo "expected exactly:"; echo "$expected"; exit 1
fi
registry=$(mktemp -d)
trap 'rm -rf "$registry"' EXIT
export GST_REGISTRY="$registry/registry.bin" GST_PLUGIN_PATH="$dir"
for lib in "$@"; do
  plugin=${lib#libgst}; plugin=${plugin%.so}
  out=$(gst-inspect-1.0 "$plugin" 2>"$registry/err") || { cat "$registry/err"; echo "gst-inspect-1.0 $plugin failed"; exit 1; }
  file=$(echo "$out" | sed -n 's/^ *Filename *//p')
  [ "$file" = "$dir/$lib" ] || { echo "$plugin was loaded from '$file', not $dir/$lib"; exit 1; }
  origin=$(echo "$out" | sed -n 's/^ *Origin URL *//p')
  case "$origin" in
    *example.invalid*|"") echo "$plugin has the origin '$origin'"; exit 1 ;;
  esac
  echo "$plugin: loaded from $file (origin: $origin)"
done
