// SPDX-License-Identifier: MPL-2.0
//! Version, commit and release date for the plugin metadata, and its origin: where the build
//! came from (`VIGIL_PACKAGE_ORIGIN` at build time, for example a distribution's package
//! page), or GStreamer's "Unknown package origin" when nobody says.
fn main() {
    gst_plugin_version_helper::info();
    println!("cargo:rerun-if-env-changed=VIGIL_PACKAGE_ORIGIN");
    let origin = std::env::var("VIGIL_PACKAGE_ORIGIN")
        .ok()
        .filter(|o| !o.trim().is_empty())
        .unwrap_or_else(|| "Unknown package origin".to_string());
    println!("cargo:rustc-env=VIGIL_PACKAGE_ORIGIN={origin}");
}
