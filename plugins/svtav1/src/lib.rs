// SPDX-License-Identifier: MPL-2.0
//! The `vigilsvtav1` GStreamer plugin: `vigilsvtav1enc`, an AV1 encoder on SVT-AV1 whose
//! encoding runs on a worker thread under the vigil watchdog.
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

pub mod svtav1enc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    svtav1enc::register(plugin)
}

gst::plugin_define!(
    vigilsvtav1,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("VIGIL_PACKAGE_ORIGIN"),
    env!("BUILD_REL_DATE")
);
