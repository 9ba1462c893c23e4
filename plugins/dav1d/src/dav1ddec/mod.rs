// SPDX-License-Identifier: MPL-2.0
//! `vigildav1ddec`: AV1 decoder on libdav1d, with the decoder on a watched worker thread.

use gst::glib;
use gst::prelude::*;

mod decoder;
mod imp;

pub use imp::InloopFilters;

glib::wrapper! {
    /// The `vigildav1ddec` element.
    pub struct VigilDav1dDec(ObjectSubclass<imp::VigilDav1dDec>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers `vigildav1ddec` (rank none: picked by name, never by autoplugging over the
/// decoders users already rely on).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    InloopFilters::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "vigildav1ddec",
        gst::Rank::NONE,
        VigilDav1dDec::static_type(),
    )
}
