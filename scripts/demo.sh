#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# The main job: builds the plugins (release, through meson) and runs pipelines through them.
#   1. a 1280x720 test pattern is encoded by vigilsvtav1enc into Matroska, and the file is
#      written by vigilsink (its consumer on a watched worker thread);
#   2. the file is decoded back by vigildav1ddec, and every decoded frame is checked against the
#      reference decoder (dav1d's md5 of all frames) and counted;
#   3. vigilfailoversrc ingests a primary input that ends after 3 s and a backup: the output
#      keeps going from the backup (the switch is printed), is encoded and written as in 1, and
#      its timestamps are checked to be continuous across the switch.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-debian.sh
export PATH="$HOME/.cargo/bin:$PATH"

builddir=${VIGIL_BUILD_DIR:-build}
case "$builddir" in /*) ;; *) builddir="$PWD/$builddir" ;; esac
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" >/dev/null
meson compile -C "$builddir" >/dev/null
export GST_PLUGIN_PATH="$builddir/plugins"
export SVT_LOG=1

frames=${VIGIL_DEMO_FRAMES:-150}
out="$builddir/demo"
mkdir -p "$out"
mkv="$out/vigil-demo.mkv"
rm -f "$mkv"

fail() { echo "vigil demo: FAILED: $*"; exit 1; }

echo "vigil demo: 1/3 encoding $frames frames of 1280x720 test pattern: videotestsrc ! vigilsvtav1enc ! matroskamux ! vigilsink"
gst-launch-1.0 -q -m videotestsrc num-buffers="$frames" pattern=smpte \
  ! video/x-raw,width=1280,height=720,framerate=30/1 \
  ! vigilsvtav1enc preset=10 crf=32 \
  ! matroskamux ! vigilsink location="$mkv" leaky=block fsync=true >"$out/encode.log" 2>&1 \
  || { grep -iE "error|warn" "$out/encode.log" | head; fail "the encode pipeline failed (log: $out/encode.log)"; }
grep -q "GstMessageError" "$out/encode.log" && { grep -A3 GstMessageError "$out/encode.log" | head; fail "the encode pipeline posted an ERROR"; }
echo "vigil demo:     wrote $(stat -c %s "$mkv") bytes to $mkv"

echo "vigil demo: 2/3 decoding it back: filesrc ! matroskademux ! vigildav1ddec, checked against dav1d"
ours=$(python3 - "$mkv" <<'PY'
import hashlib, subprocess, sys
# Decode with vigildav1ddec to raw I420 frames on stdout, then hash them as dav1d's md5 muxer does
# (all visible planes of every frame, in order).
cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={sys.argv[1]}", "!", "matroskademux", "!",
       "vigildav1ddec", "!", "video/x-raw,format=I420", "!", "fdsink", "fd=1"]
data = subprocess.run(cmd, capture_output=True, check=True).stdout
frame = 1280 * 720 * 3 // 2
print(len(data) // frame, hashlib.md5(data).hexdigest())
PY
) || fail "vigildav1ddec could not decode the file"
decoded=${ours% *}; md5=${ours#* }
ffmpeg -v error -i "$mkv" -c:v copy -f ivf -y "$out/vigil-demo.ivf"
reference=$(dav1d -q -i "$out/vigil-demo.ivf" --muxer md5 -o - 2>/dev/null | tr -d '[:space:]')
echo "vigil demo:     vigildav1ddec decoded $decoded frames, md5 $md5"
echo "vigil demo:     dav1d (reference)           md5 $reference"
[ "$decoded" = "$frames" ] || fail "expected $frames decoded frames, got $decoded"
[ "$md5" = "$reference" ] || fail "the decoded frames differ from the reference decoder's"
echo "vigil demo:     OK: $frames frames encoded, written, decoded and identical to the reference"

echo "vigil demo: 3/3 failover: vigilfailoversrc (primary ends after 3 s, then backup) ! vigilsvtav1enc ! matroskamux ! vigilsink"
primary="$out/primary.mkv"; backup="$out/backup.mkv"; live="$out/vigil-failover.mkv"
gst-launch-1.0 -q videotestsrc num-buffers=90 pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
  ! jpegenc ! matroskamux ! filesink location="$primary" >/dev/null 2>&1 || fail "could not write the primary input"
gst-launch-1.0 -q videotestsrc num-buffers=600 pattern=smpte ! video/x-raw,width=640,height=360,framerate=30/1 \
  ! jpegenc ! matroskamux ! filesink location="$backup" >/dev/null 2>&1 || fail "could not write the backup input"
rm -f "$live"
# Seven seconds of live output, then an interrupt: -e turns it into EOS so the file is finalised.
timeout -s INT 7 gst-launch-1.0 -e -m vigilfailoversrc name=f enable-audio=false stall-timeout=1000 \
  uris="<\"file://$primary\",\"file://$backup\">" \
  video-caps=video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
  f.video ! queue ! vigilsvtav1enc preset=12 pred-structure=low-delay ! matroskamux \
  ! vigilsink location="$live" leaky=block >"$out/failover.log" 2>&1 || true
grep -o "vigil-failover-switched.*" "$out/failover.log" | sed 's/^/vigil demo:     /' | cut -c1-160
grep -q "reason=(string)eos" "$out/failover.log" || fail "no switch away from the primary when it ended (log: $out/failover.log)"
grep -q "GstMessageError" "$out/failover.log" && fail "the failover pipeline posted an ERROR (log: $out/failover.log)"
python3 - "$live" <<'PY' || fail "the failover output is not continuous"
import subprocess, sys
pts = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                      "-of", "csv=p=0", sys.argv[1]], capture_output=True, text=True, check=True).stdout.split()
pts = sorted(float(p) for p in pts if p and p != "N/A")
gaps = [b - a for a, b in zip(pts, pts[1:])]
print(f"vigil demo:     {len(pts)} frames over {pts[-1] - pts[0]:.2f} s, largest step {max(gaps) * 1000:.1f} ms")
sys.exit(0 if len(pts) > 120 and max(gaps) < 0.05 else 1)
PY
echo "vigil demo: OK: all three steps passed; files: $mkv, $live"
