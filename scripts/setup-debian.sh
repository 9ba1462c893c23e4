#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Installs what building and testing vigil needs on Debian 12, skipping what is already there:
# the GStreamer, SVT-AV1 and dav1d development packages, the reference tools the tests compare
# against (SvtAv1EncApp, dav1d, ffmpeg), the font the benchmark chart is drawn with (DejaVu),
# PyGObject, meson, the Debian packaging tools (dpkg-dev, lintian), Prometheus (its promtool
# checks the metrics format, its server scrapes the tracer in a test), and a Rust toolchain if
# none is found.
set -euo pipefail

packages=(
  build-essential pkg-config clang libclang-dev meson ninja-build curl ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  libdav1d-dev libsvtav1enc-dev libgstrtspserver-1.0-dev
  svt-av1 dav1d ffmpeg fonts-dejavu-core
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  dpkg-dev lintian prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "vigil setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "vigil setup: Debian packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "vigil setup: installing a Rust toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
