// SPDX-License-Identifier: MPL-2.0
//! The gst-plugins-rs elements the vigil elements are compared with (`dav1ddec`, `fallbacksrc`),
//! built from crates.io into a throwaway project under `target/bench-peers`, with a target
//! directory of its own. They are never dependencies of the plugins or of this harness.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tools::run_timed;

/// A gst-plugins-rs plugin crate.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub krate: &'static str,
    pub version_req: &'static str,
    pub lib_file: &'static str,
    pub element: &'static str,
}

/// `dav1ddec`: 0.11 is the last series that builds against Debian 12's libdav1d 1.0.
pub const DAV1DDEC: Peer = Peer {
    krate: "gst-plugin-dav1d",
    version_req: "0.11",
    lib_file: "libgstdav1d.so",
    element: "dav1ddec",
};

/// `fallbacksrc`, `fallbackswitch`: 0.15 is the newest series; it builds against GStreamer
/// 1.22 with a resolve that respects rustc 1.92 (edition 2024 and `rust-version` below).
pub const FALLBACKSRC: Peer = Peer {
    krate: "gst-plugin-fallbackswitch",
    version_req: "0.15",
    lib_file: "libgstfallbackswitch.so",
    element: "fallbacksrc",
};

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The version of `krate` a `Cargo.lock` resolved.
fn locked_version(lock: &str, krate: &str) -> Option<String> {
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let len = lock[start..].find('"')?;
    Some(lock[start..start + len].to_string())
}

/// The folder holding the built plugin of `peer` (to scan into the registry) and the version
/// built. Builds it when `build` is true and it is not there yet.
pub fn ensure(root: &Path, peer: Peer, build: bool) -> Result<(PathBuf, String), String> {
    let lib_dir = root.join(format!("lib-{}-{}", peer.krate, peer.version_req));
    let version_file = lib_dir.join("VERSION");
    if lib_dir.join(peer.lib_file).is_file() {
        let v = std::fs::read_to_string(&version_file).unwrap_or_default();
        return Ok((lib_dir, v.trim().to_string()));
    }
    if !build {
        return Err(format!(
            "{} {} is not built under {} (the full mode, or --build-peers, builds it)",
            peer.krate,
            peer.version_req,
            root.display()
        ));
    }
    eprintln!(
        "vigil benches: building {} {} (once)",
        peer.krate, peer.version_req
    );
    let io = |e: std::io::Error| e.to_string();
    let fetch = root.join(format!("fetch-{}", peer.krate));
    std::fs::create_dir_all(&fetch).map_err(io)?;
    std::fs::write(
        fetch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"vigil-bench-peer-fetch\"\nversion = \"0.0.0\"\nedition = \"2024\"\nrust-version = \"1.92\"\npublish = false\n\n\
             [lib]\npath = \"lib.rs\"\n\n[dependencies]\n{} = \"{}\"\n\n[workspace]\n",
            peer.krate, peer.version_req
        ),
    )
    .map_err(io)?;
    std::fs::write(fetch.join("lib.rs"), "").map_err(io)?;
    run_timed(
        Command::new("cargo")
            .arg("fetch")
            .arg("--manifest-path")
            .arg(fetch.join("Cargo.toml")),
        &root.join(format!("fetch-{}.log", peer.krate)),
        Duration::from_secs(600),
    )?;
    let lock = std::fs::read_to_string(fetch.join("Cargo.lock")).map_err(io)?;
    let version = locked_version(&lock, peer.krate)
        .ok_or_else(|| format!("{} is not in the fetched Cargo.lock", peer.krate))?;
    let dir_name = format!("{}-{version}", peer.krate);
    let registry_src = cargo_home().join("registry").join("src");
    let source = std::fs::read_dir(&registry_src)
        .map_err(|e| format!("{}: {e}", registry_src.display()))?
        .flatten()
        .map(|index| index.path().join(&dir_name))
        .find(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            format!(
                "the source of {dir_name} is not in {}",
                registry_src.display()
            )
        })?;
    let src = root.join(format!("src-{dir_name}"));
    let _ = std::fs::remove_dir_all(&src);
    copy_dir(&source, &src).map_err(io)?;
    let manifest = src.join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).map_err(io)?;
    toml.push_str("\n[workspace]\n");
    std::fs::write(&manifest, toml).map_err(io)?;
    std::fs::write(src.join("Cargo.lock"), lock).map_err(io)?;
    let target = root.join("target");
    run_timed(
        Command::new("cargo")
            .args(["build", "--release", "--lib", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target),
        &root.join(format!("build-{}.log", peer.krate)),
        Duration::from_secs(1800),
    )?;
    std::fs::create_dir_all(&lib_dir).map_err(io)?;
    std::fs::copy(
        target.join("release").join(peer.lib_file),
        lib_dir.join(peer.lib_file),
    )
    .map_err(io)?;
    std::fs::write(&version_file, &version).map_err(io)?;
    Ok((lib_dir, version))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_locked_version() {
        let lock =
            "[[package]]\nname = \"gst-plugin-dav1d\"\nversion = \"0.11.1\"\nsource = \"x\"\n";
        assert_eq!(
            super::locked_version(lock, "gst-plugin-dav1d").as_deref(),
            Some("0.11.1")
        );
        assert_eq!(super::locked_version(lock, "dav1d"), None);
    }
}
