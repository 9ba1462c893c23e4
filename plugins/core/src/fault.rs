// SPDX-License-Identifier: MPL-2.0
//! Fault injection around the real codec calls (cargo feature `fault-injection` only).
//!
//! A plan is written `KIND:PHASE[:AFTER]`: `KIND` is `wedge` (the worker blocks forever, as a
//! call stuck inside a C library would), `panic`, or `slow=MS` (each call in the phase first
//! sleeps MS milliseconds, a codec that is slow but progressing); `PHASE` is `streaming`,
//! `drain` or `flush`; `AFTER` (streaming only) lets that many inputs through first.

use std::time::Duration;

use crate::outcome::Phase;

/// What the injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Block the worker forever.
    Wedge,
    /// Panic on the worker.
    Panic,
    /// Sleep this long before each call, then go on.
    Slow(Duration),
}

/// Where and what to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The fault.
    pub kind: FaultKind,
    /// The phase whose codec calls it wraps.
    pub phase: Phase,
    /// Inputs let through before a streaming fault fires.
    pub after: u64,
}

impl FaultPlan {
    /// Parses `KIND:PHASE[:AFTER]`; the error names what was wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().split(':');
        let kind = match parts.next().unwrap_or_default() {
            "wedge" => FaultKind::Wedge,
            "panic" => FaultKind::Panic,
            k if k.starts_with("slow=") => {
                FaultKind::Slow(Duration::from_millis(k[5..].parse().map_err(|_| {
                    format!("fault '{s}': slow needs milliseconds, as slow=200")
                })?))
            }
            k => {
                return Err(format!(
                    "fault '{s}': unknown kind '{k}' (wedge, panic, slow=MS)"
                ));
            }
        };
        let phase = match parts.next() {
            Some("streaming") => Phase::Streaming,
            Some("drain") => Phase::Drain,
            Some("flush") => Phase::Flush,
            p => {
                return Err(format!(
                    "fault '{s}': unknown phase {p:?} (streaming, drain, flush)"
                ));
            }
        };
        let after = match parts.next() {
            None => 0,
            Some(n) => n
                .parse()
                .map_err(|_| format!("fault '{s}': '{n}' is not a frame count"))?,
        };
        if parts.next().is_some() {
            return Err(format!("fault '{s}': too many fields"));
        }
        Ok(Self { kind, phase, after })
    }

    /// Called by the worker before each codec call of `phase`, with the inputs taken so far.
    pub fn apply(&self, phase: Phase, frames_in: u64) {
        if phase != self.phase || (phase == Phase::Streaming && frames_in <= self.after) {
            return;
        }
        match self.kind {
            FaultKind::Wedge => loop {
                std::thread::park();
            },
            // resume_unwind skips the panic hook: an injected panic unwinds at once, without
            // printing (and symbolising) a backtrace that can take seconds on a loaded machine
            // and would make the test measure the hook, not the worker.
            FaultKind::Panic => std::panic::resume_unwind(Box::new(format!(
                "vigil fault injection: panic while {phase}"
            ))),
            FaultKind::Slow(d) => std::thread::sleep(d),
        }
    }
}

/// The name of the property every element gets in test builds.
pub const PROPERTY: &str = "fault-injection";

/// The `fault-injection` property, the same on every element.
pub fn param_spec() -> gst::glib::ParamSpec {
    use gst::prelude::*;
    gst::glib::ParamSpecString::builder(PROPERTY)
        .nick("Fault injection")
        .blurb("Test builds only: KIND:PHASE[:AFTER], KIND wedge, panic or slow=MS, PHASE streaming, drain or flush")
        .default_value(Some(""))
        .mutable_ready()
        .build()
}

impl crate::WorkerConfig {
    /// Applies the value of the `fault-injection` property (empty: no fault).
    pub fn set_fault(&mut self, plan: &str) -> Result<(), String> {
        self.fault = if plan.trim().is_empty() {
            None
        } else {
            Some(FaultPlan::parse(plan)?)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plans_and_names_bad_ones() {
        let p = FaultPlan::parse("wedge:streaming:5").unwrap();
        assert_eq!(
            (p.kind, p.phase, p.after),
            (FaultKind::Wedge, Phase::Streaming, 5)
        );
        let p = FaultPlan::parse("slow=30:drain").unwrap();
        assert_eq!(p.kind, FaultKind::Slow(Duration::from_millis(30)));
        assert!(FaultPlan::parse("melt:drain").unwrap_err().contains("melt"));
        assert!(
            FaultPlan::parse("panic:later")
                .unwrap_err()
                .contains("later")
        );
    }
}
