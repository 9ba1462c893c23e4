// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc`: AV1 encoder on SVT-AV1, with the encoder on a watched worker thread.

use gst::glib;
use gst::prelude::*;

mod encoder;
mod imp;

pub use imp::{PredStructure, RateControl};

glib::wrapper! {
    /// The `vigilsvtav1enc` element.
    pub struct VigilSvtAv1Enc(ObjectSubclass<imp::VigilSvtAv1Enc>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers `vigilsvtav1enc` (rank none: picked by name, never by autoplugging over the
/// encoders users already rely on).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        RateControl::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        PredStructure::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "vigilsvtav1enc",
        gst::Rank::NONE,
        VigilSvtAv1Enc::static_type(),
    )
}
