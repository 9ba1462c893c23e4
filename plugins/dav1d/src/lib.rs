// SPDX-License-Identifier: MPL-2.0
//! The `vigildav1d` GStreamer plugin: `vigildav1ddec`, an AV1 decoder on libdav1d whose
//! decoding runs on a worker thread under the vigil watchdog.
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

pub mod dav1ddec;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    dav1ddec::register(plugin)
}

gst::plugin_define!(
    vigildav1d,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("VIGIL_PACKAGE_ORIGIN"),
    env!("BUILD_REL_DATE")
);
