// SPDX-License-Identifier: MPL-2.0
//! The `vigilmetrics` GStreamer plugin: the `vigilmetrics` tracer, which serves metrics about
//! every vigil element of the process (watchdog trips, frames in and out, the sink's
//! outcomes, the failover source's status and switches) in Prometheus' text format over HTTP.
//!
//! Turned on without changing the application:
//! `GST_TRACERS="vigilmetrics(address=127.0.0.1:9464)"`.

use gst::glib;

pub mod exposition;
pub mod metricstracer;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    metricstracer::register(plugin)
}

gst::plugin_define!(
    vigilmetrics,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("VIGIL_PACKAGE_ORIGIN"),
    env!("BUILD_REL_DATE")
);
