// SPDX-License-Identifier: MPL-2.0
//! The `vigilfailover` GStreamer plugin: `vigilfailoversrc`, a source bin that fails over
//! between ingest sources, retries the failed ones, and derives its status from the data that
//! flows, never from what was started.
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

pub mod failoversrc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    failoversrc::register(plugin)
}

gst::plugin_define!(
    vigilfailover,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("VIGIL_PACKAGE_ORIGIN"),
    env!("BUILD_REL_DATE")
);
