// SPDX-License-Identifier: MPL-2.0
//! `vigilsink`: a sink whose consumer runs on a watched worker thread.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod consumer;
mod imp;

pub use consumer::ConsumerError;
pub use imp::{Leaky, OnConsumerPanic};

glib::wrapper! {
    /// The `vigilsink` element.
    pub struct VigilSink(ObjectSubclass<imp::VigilSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

impl VigilSink {
    /// Sets the application consumer: `callback` is called on the sink's worker thread with
    /// every sample, in order. It may take as long as it needs (the queue and the `leaky`
    /// policy absorb it) but must make progress within `watchdog-timeout`. Returning an error
    /// posts an ERROR naming it; a panic is handled as `on-consumer-panic` says. Takes effect
    /// at the next READY to PAUSED change.
    pub fn set_consumer<F>(&self, callback: F)
    where
        F: FnMut(&gst::Sample) -> Result<(), ConsumerError> + Send + 'static,
    {
        self.imp().set_consumer(Box::new(callback));
    }
}

/// Registers `vigilsink`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        Leaky::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        OnConsumerPanic::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "vigilsink",
        gst::Rank::NONE,
        VigilSink::static_type(),
    )
}
