// SPDX-License-Identifier: MPL-2.0
//! The `vigilsink` GStreamer plugin: `vigilsink`, a sink whose consumer (a file, or the
//! application) runs on a worker thread with a bounded queue, throttled backpressure messages
//! and a bounded drain, under the vigil watchdog.
#![allow(unused_doc_comments)]

use gst::glib;

pub mod vigilsink;

pub use vigilsink::{ConsumerError, Leaky, OnConsumerPanic, VigilSink};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vigilsink::register(plugin)
}

gst::plugin_define!(
    vigilsink,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("VIGIL_PACKAGE_ORIGIN"),
    env!("BUILD_REL_DATE")
);
