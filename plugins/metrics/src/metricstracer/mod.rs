// SPDX-License-Identifier: MPL-2.0
//! The `vigilmetrics` tracer: hooks that count what flows through the vigil elements and what
//! they post, and an HTTP endpoint (`/metrics`) that serves it with what the elements' own
//! statistics say at the time of the scrape.

use gst::glib;
use gst::prelude::*;

mod imp;
mod server;

glib::wrapper! {
    /// The `vigilmetrics` tracer.
    pub struct MetricsTracer(ObjectSubclass<imp::MetricsTracer>)
        @extends gst::Tracer, gst::Object;
}

/// The address served when the tracer's parameters name none: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9464";

/// Registers the `vigilmetrics` tracer.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Tracer::register(Some(plugin), "vigilmetrics", MetricsTracer::static_type())
}
