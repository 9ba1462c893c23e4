#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Builds the Debian package with scripts/package-deb.sh (lintian must report no error), then
# proves it: extracted into a scratch root (never installed), GStreamer loads every plugin from
# that root's /usr/lib/<multiarch>/gstreamer-1.0 (GST_PLUGIN_SYSTEM_PATH pointed into it) and
# runs a pipeline through them; every library the plugins need comes from a package the .deb
# declares in Depends (checked independently of dpkg-shlibdeps, with readelf and dpkg -S).
# Usage: check_package.sh SOURCE_ROOT BUILD_DIR ELEMENT...
set -euo pipefail
src=$1; build=$2; shift 2
out="$build/deb"
"$src/scripts/package-deb.sh" --out "$out" --cargo-target-dir "$build/cargo"
deb=$(ls "$out"/gstreamer1.0-vigil_*_"$(dpkg-architecture -qDEB_HOST_ARCH)".deb)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dir="$root/usr/lib/$multiarch/gstreamer-1.0"
[ -f "$root/usr/share/doc/gstreamer1.0-vigil/copyright" ] || { echo "no copyright file"; exit 1; }
grep -q "License: MPL-2.0" "$root/usr/share/doc/gstreamer1.0-vigil/copyright" || { echo "copyright does not say MPL-2.0"; exit 1; }
[ -f "$root/usr/share/doc/gstreamer1.0-vigil/docs/install.md" ] || { echo "docs/install.md is not in the package"; exit 1; }

export GST_REGISTRY="$root/registry.bin" GST_PLUGIN_PATH=
export GST_PLUGIN_SYSTEM_PATH_1_0="$dir:/usr/lib/$multiarch/gstreamer-1.0"
for element in "$@"; do
  out=$(gst-inspect-1.0 "$element") || { echo "gst-inspect-1.0 $element failed with the package's plugins"; exit 1; }
  echo "$out" | grep -q "Filename *$dir/" || { echo "$element was not loaded from the package ($dir)"; echo "$out" | grep Filename; exit 1; }
  if echo "$out" | grep -q fault-injection; then echo "the packaged $element has a fault-injection property"; exit 1; fi
  echo "package: $element loads from $dir"
done
out=$(gst-inspect-1.0 vigilmetrics) || { echo "the vigilmetrics plugin does not load from the package"; exit 1; }
echo "$out" | grep -q "Filename *$dir/libgstvigilmetrics.so" || { echo "vigilmetrics was not loaded from the package"; exit 1; }
echo "package: the vigilmetrics tracer plugin loads from $dir"
gst-launch-1.0 -q videotestsrc num-buffers=10 ! video/x-raw,width=160,height=120 \
  ! vigilsvtav1enc preset=12 ! vigildav1ddec ! fakesink || { echo "a pipeline through the packaged plugins failed"; exit 1; }
echo "package: videotestsrc ! vigilsvtav1enc ! vigildav1ddec ran from the package's plugins"

depends=$(dpkg-deb -f "$deb" Depends)
echo "package: Depends: $depends"
for lib in $(readelf -d "$dir"/*.so | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u); do
  # (no early exit in these pipes: with pipefail, a writer cut short is a SIGPIPE failure)
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !p { p = $NF } END { print p }')
  [ -n "$path" ] || { echo "$lib (needed by a plugin) is not on this system"; exit 1; }
  owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | sed -n '1s/:.*//p') || true
  [ -n "$owner" ] || owner=$(dpkg -S "$path" | sed -n '1s/:.*//p')
  case ", $depends" in
    *", $owner "*|*", $owner,"*|*", $owner") echo "package: $lib from $owner: declared" ;;
    *) echo "$lib comes from $owner, which the package does not depend on ($depends)"; exit 1 ;;
  esac
done
for needed in libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 libsvtav1enc1 libdav1d6; do
  case "$depends" in *"$needed "*) ;; *) echo "Depends lacks $needed"; exit 1 ;; esac
done
echo "package: OK ($deb)"
