#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Installs the built plugins into a staging directory (meson install --destdir) and checks that
# gst-inspect-1.0 loads each element from there, documents it, and prints no warning.
set -euo pipefail
builddir=$1; plugindir=$2; shift 2
stage="$builddir/staging"
rm -rf "$stage"
meson install -C "$builddir" --destdir "$stage" --no-rebuild >/dev/null
prefix=$(meson introspect "$builddir" --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
dir="$stage$prefix/$plugindir"
ls "$dir"/libgstvigil*.so >/dev/null
export GST_REGISTRY="$builddir/staging-registry.bin"
for element in "$@"; do
  out=$(GST_PLUGIN_PATH="$dir" gst-inspect-1.0 "$element" 2>"$builddir/inspect-$element.err")
  if [ -s "$builddir/inspect-$element.err" ]; then
    echo "gst-inspect-1.0 $element printed warnings:"; cat "$builddir/inspect-$element.err"; exit 1
  fi
  echo "$out" | grep -q "Filename.*$dir" || { echo "$element was not loaded from $dir"; echo "$out" | head; exit 1; }
  echo "$out" | grep -q "Element Properties" || { echo "$element shows no properties"; exit 1; }
  if echo "$out" | grep -q "fault-injection"; then echo "the installed $element has a fault-injection property"; exit 1; fi
  echo "installed $element: OK ($dir)"
done
