// SPDX-License-Identifier: MPL-2.0
//! Failover: time from a failure of the primary source to the first backup frame at the output,
//! `vigilfailoversrc` against gst-plugins-rs `fallbacksrc` where the scenario applies.

use crate::context::Ctx;
use crate::report::Section;

/// The failover section, or `None` (with a note in the report) when the element is missing.
pub fn run(ctx: &mut Ctx) -> Option<Section> {
    if !ctx.has_elements(&["vigilfailoversrc"]) {
        ctx.skipped.push(
            "Failover: `vigilfailoversrc` does not exist yet in this tree (plugins/failover is \
             being written), so there is nothing to measure against `fallbacksrc`."
                .into(),
        );
        return None;
    }
    ctx.skipped.push(
        "Failover: `vigilfailoversrc` is present but its benchmark is not written yet.".into(),
    );
    None
}
