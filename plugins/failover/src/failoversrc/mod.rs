// SPDX-License-Identifier: MPL-2.0
//! `vigilfailoversrc`: a source bin that ingests from an ordered list of inputs and outputs one
//! continuous live stream, switching to the best input that is delivering data.
//!
//! The element (`imp.rs`) owns the properties, pads and signals; each input runs in a pipeline
//! of its own with its own bus (`input.rs`), a controller thread decides which input is on air
//! (`controller.rs`), and clocked output threads push one frame per frame period (`output.rs`).

use gst::glib;
use gst::prelude::*;

mod content;
mod controller;
mod fault;
mod health;
mod imp;
mod input;
mod output;
mod types;

pub use types::{Standby, Status, SwitchReason};

use vigil_core::join_within;

/// Name of the element message posted on every switch.
pub const SWITCHED_MESSAGE: &str = "vigil-failover-switched";
/// Name of the element message posted when `status` changes.
pub const STATUS_MESSAGE: &str = "vigil-failover-status";

glib::wrapper! {
    /// The `vigilfailoversrc` element.
    pub struct FailoverSrc(ObjectSubclass<imp::FailoverSrc>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

/// Registers `vigilfailoversrc`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        Status::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Standby::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "vigilfailoversrc",
        gst::Rank::NONE,
        FailoverSrc::static_type(),
    )
}
