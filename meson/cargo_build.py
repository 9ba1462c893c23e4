#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Builds the vigil plugin crates with cargo (release) and copies the plugin libraries into
meson's build directory, where meson installs them from."""
import argparse
import os
import shutil
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--cargo", required=True)
ap.add_argument("--source-root", required=True)
ap.add_argument("--target-dir", required=True)
ap.add_argument("--out-dir", required=True)
ap.add_argument("--libs", nargs="+", required=True)
ap.add_argument("cargo_args", nargs=argparse.REMAINDER)
a = ap.parse_args()
extra = [x for x in a.cargo_args if x != "--"]

cmd = [a.cargo, "build", "--release", "--locked",
       "--manifest-path", os.path.join(a.source_root, "Cargo.toml"),
       "--target-dir", a.target_dir] + extra
print("vigil:", " ".join(cmd), flush=True)
r = subprocess.run(cmd)
if r.returncode != 0:
    sys.exit(r.returncode)
for lib in a.libs:
    src = os.path.join(a.target_dir, "release", lib)
    if not os.path.exists(src):
        sys.exit(f"vigil: cargo did not produce {src}")
    shutil.copy2(src, os.path.join(a.out_dir, lib))
