#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# The main job: builds the plugins (release, through meson) and runs a pipeline through them:
# a test pattern encoded by vigilsvtav1enc into Matroska, then decoded back with the reference
# decoder (dav1d) and checked frame by frame count.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-debian.sh
export PATH="$HOME/.cargo/bin:$PATH"

builddir=${VIGIL_BUILD_DIR:-build}
case "$builddir" in /*) ;; *) builddir="$PWD/$builddir" ;; esac
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" >/dev/null
meson compile -C "$builddir" >/dev/null
export GST_PLUGIN_PATH="$builddir"

frames=${VIGIL_DEMO_FRAMES:-150}
out="$builddir/demo"
mkdir -p "$out"
mkv="$out/vigil-demo.mkv"
rm -f "$mkv"

echo "vigil demo: encoding $frames frames of 1280x720 test pattern with vigilsvtav1enc into $mkv"
gst-launch-1.0 -q -m videotestsrc num-buffers="$frames" pattern=smpte \
  ! video/x-raw,width=1280,height=720,framerate=30/1 \
  ! vigilsvtav1enc preset=10 crf=32 \
  ! matroskamux ! filesink location="$mkv" 2>"$out/encode.log" >"$out/bus.log" \
  || { echo "vigil demo: the encode failed"; grep -i error "$out/bus.log" "$out/encode.log" | head; exit 1; }
if grep -q "ERROR" "$out/bus.log"; then
  echo "vigil demo: the pipeline posted an ERROR:"; grep -A3 ERROR "$out/bus.log" | head; exit 1
fi

echo "vigil demo: decoding it back with the reference decoder (ffmpeg demux + dav1d)"
ffmpeg -v error -i "$mkv" -c:v copy -f ivf -y "$out/vigil-demo.ivf"
decoded=$(dav1d -i "$out/vigil-demo.ivf" -o /dev/null 2>&1 | grep -o "Decoded [0-9]*/[0-9]* frames" | tail -1)
echo "vigil demo: dav1d says: $decoded"
if [ "$decoded" != "Decoded $frames/$frames frames" ]; then
  echo "vigil demo: FAILED: expected $frames decoded frames"; exit 1
fi
size=$(stat -c %s "$mkv")
echo "vigil demo: OK: $frames frames, $size bytes, file: $mkv"
