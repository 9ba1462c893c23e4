#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Builds the Debian package gstreamer1.0-vigil_<version>_<arch>.deb: the release plugins in
# /usr/lib/<multiarch>/gstreamer-1.0, the documentation, an MPL-2.0 copyright file and the
# runtime dependencies found by dpkg-shlibdeps. The files come from a `meson install --destdir`
# staging tree (prefix /usr); the package is made with dpkg-dev's tools (dpkg-shlibdeps,
# dpkg-gencontrol, dpkg-deb) and checked with lintian, which must report no error.
#
#   ./scripts/package-deb.sh [--out DIR] [--build-dir DIR] [--cargo-target-dir DIR] [--no-lintian]
#
# Defaults: the package goes to build/deb/, meson configures build/deb/meson (prefix /usr) and
# cargo reuses build/cargo, the main build's target directory, so nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/setup-debian.sh
export PATH="$HOME/.cargo/bin:$PATH"

out=build/deb
builddir=
cargo_target=$root/build/cargo
lintian=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --build-dir) builddir=$2; shift 2 ;;
    --cargo-target-dir) cargo_target=$2; shift 2 ;;
    --no-lintian) lintian=0; shift ;;
    *) echo "usage: $0 [--out DIR] [--build-dir DIR] [--cargo-target-dir DIR] [--no-lintian]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
builddir=${builddir:-$out/meson}
case "$cargo_target" in /*) ;; *) cargo_target="$root/$cargo_target" ;; esac

package=gstreamer1.0-vigil
version=$(sed -n "s/^project('vigil', version: '\([^']*\)'.*/\1/p" meson.build)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -n "$version" ] || { echo "package-deb: no version in meson.build" >&2; exit 1; }

echo "package-deb: meson build (prefix /usr) in $builddir, cargo target $cargo_target"
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" --prefix=/usr --libdir="lib/$multiarch" --buildtype=release \
    -Dsvtav1=enabled -Ddav1d=enabled -Dsink=enabled -Dfailover=enabled -Dtests=disabled \
    -Dcargo_target_dir="$cargo_target" >/dev/null
fi
meson compile -C "$builddir" >/dev/null

work=$out/work
rm -rf "$work"
stage=$work/stage
meson install -C "$builddir" --destdir "$stage" --no-rebuild >/dev/null
plugindir=usr/lib/$multiarch/gstreamer-1.0
ls "$stage/$plugindir"/libgstvigil*.so >/dev/null

# The package tree: the staged plugins (stripped, as dh_strip does), the documentation.
pkg=$work/$package
doc=$pkg/usr/share/doc/$package
mkdir -p "$pkg/$plugindir" "$doc/docs" "$pkg/DEBIAN"
for so in "$stage/$plugindir"/*.so; do
  install -m 0644 "$so" "$pkg/$plugindir/"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/$plugindir/$(basename "$so")"
done
install -m 0644 README.md "$doc/README.md"
for page in docs/*.md; do install -m 0644 "$page" "$doc/docs/"; done
install -m 0644 docs/benchmarks.png "$doc/docs/"

# Debian metadata for dpkg-shlibdeps and dpkg-gencontrol (a native package).
maintainer=${VIGIL_DEB_MAINTAINER:-vigil developers <vigil@packages.debian.net>}
date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
deb=$work/debian
mkdir -p "$deb"
cat >"$deb/control" <<EOF
Source: vigil
Section: libs
Priority: optional
Maintainer: $maintainer
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: $package
Architecture: any
Multi-Arch: same
Depends: \${shlibs:Depends}
Recommends: gstreamer1.0-plugins-base, gstreamer1.0-plugins-good
Description: GStreamer plugins that turn failure into an explicit signal
 vigil is a set of GStreamer plugins, written in Rust, for live and file
 video pipelines that must never lie about their outcome: vigilsvtav1enc
 (AV1 encoder on SVT-AV1), vigildav1ddec (AV1 decoder on dav1d), vigilsink
 (a sink whose consumer runs on a watched worker thread) and
 vigilfailoversrc (a source bin that fails over between ingest sources),
 and the vigilmetrics tracer, which serves their metrics to Prometheus.
 A wedged or panicked codec or consumer is reported as an ERROR message,
 never a hang or a clean end of stream over truncated output.
EOF
cat >"$deb/changelog" <<EOF
vigil ($version) unstable; urgency=medium

  * Package built from the vigil sources by scripts/package-deb.sh.

 -- $maintainer  $date
EOF
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vigil
Comment: The plugins link Rust crates statically (gstreamer-rs, glib-rs and
 their dependencies: MIT or Apache-2.0); see Cargo.lock in the sources.

Files: *
Copyright: 2025-2026 vigil developers
License: MPL-2.0
 This Source Code Form is subject to the terms of the Mozilla Public
 License, v. 2.0. If a copy of the MPL was not distributed with this
 file, You can obtain one at https://mozilla.org/MPL/2.0/.
 .
 On Debian systems, the full text of the Mozilla Public License 2.0 can be
 found in the file '/usr/share/common-licenses/MPL-2.0'.
EOF
gzip -9n -c "$deb/changelog" >"$doc/changelog.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

(
  cd "$work"
  dpkg-shlibdeps -T"debian/substvars" "$package/$plugindir"/*.so
  dpkg-gencontrol -p"$package" -P"$package" -T"debian/substvars" -v"$version"
)
(cd "$pkg" && find usr -type f -printf '%P\n' | sort | sed 's|^|usr/|' | xargs md5sum >DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/md5sums"
file=$out/${package}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$file" >/dev/null
echo "package-deb: $file"
dpkg-deb -f "$file" Package Version Architecture Depends

if [ "$lintian" = 1 ]; then
  echo "package-deb: lintian"
  lintian --fail-on error --tag-display-limit 0 "$file"
  echo "package-deb: lintian reports no error"
fi
