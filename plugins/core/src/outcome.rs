// SPDX-License-Identifier: MPL-2.0
//! Outcomes of a worker run and the one place that maps them to bus messages and flow returns.
//!
//! Every vigil element reports worker failures through [`report_outcome`] (while streaming),
//! [`conclude_drain`] (at EOS) and [`report_teardown`] (when a state change stops a worker), so
//! the ERROR text, the `vigil-watchdog` details structure and the flow return are the same
//! everywhere.

use std::fmt;
use std::time::Duration;

/// Name of the details structure attached to watchdog ERROR and WARNING messages.
pub const WATCHDOG_DETAILS: &str = "vigil-watchdog";

/// What the worker was asked to do when the failure was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Taking input or producing output in the normal flow of buffers (start-up included).
    Streaming,
    /// Draining the remaining output at EOS (or before a caps change).
    Drain,
    /// Discarding queued work for a flushing seek.
    Flush,
    /// Stopping the worker because the element leaves PAUSED.
    Shutdown,
}

impl Phase {
    /// The value of the `phase` field in the details structure.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Streaming => "streaming",
            Phase::Drain => "drain",
            Phase::Flush => "flush",
            Phase::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts of a failed run, carried into the details structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    /// What the worker was doing.
    pub phase: Phase,
    /// How long the worker had made no progress when it was given up (zero for a panic).
    pub idle: Duration,
    /// Inputs the worker had taken.
    pub frames_in: u64,
    /// Outputs the worker had produced.
    pub frames_out: u64,
    /// Inputs handed to the worker and never delivered (queued, or the one it was on).
    pub undelivered: u64,
    /// The panic payload, for a panic.
    pub panic_message: Option<String>,
}

/// How a worker run ended. It cannot be dropped unnoticed: hand it to [`report_outcome`],
/// [`conclude_drain`] or [`report_teardown`].
#[must_use = "a run outcome must be reported: a failed run that is ignored becomes a false EOS"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The worker did everything it was asked.
    Completed,
    /// The watchdog saw pending work and no progress for `watchdog-timeout`; the worker and
    /// everything it owns were abandoned (leaked).
    WatchdogAbandoned(FailureReport),
    /// The worker panicked; what it owned was leaked.
    Panicked(FailureReport),
}

impl RunOutcome {
    /// The failure facts, `None` for [`RunOutcome::Completed`].
    pub fn failure(&self) -> Option<&FailureReport> {
        match self {
            RunOutcome::Completed => None,
            RunOutcome::WatchdogAbandoned(r) | RunOutcome::Panicked(r) => Some(r),
        }
    }

    /// The `reason` field of the details structure.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            RunOutcome::Completed => None,
            RunOutcome::WatchdogAbandoned(_) => Some("abandoned"),
            RunOutcome::Panicked(_) => Some("panicked"),
        }
    }

    /// A sentence for users: what happened, in which phase.
    pub fn describe(&self, what: &str) -> Option<String> {
        match self {
            RunOutcome::Completed => None,
            // A stop's bound is absolute: the worker may still have been working (an encoder
            // finishing its look-ahead), so this does not say it made no progress.
            RunOutcome::WatchdogAbandoned(r) if r.phase == Phase::Shutdown => Some(format!(
                "{what} did not finish stopping within {} ms (shutdown); it was abandoned with {} input(s) undelivered and is left to end on its own in the background",
                r.idle.as_millis(),
                r.undelivered
            )),
            RunOutcome::WatchdogAbandoned(r) => Some(format!(
                "{what} made no progress for {} ms with work pending ({}); it was abandoned with {} input(s) undelivered",
                r.idle.as_millis(),
                r.phase,
                r.undelivered
            )),
            RunOutcome::Panicked(r) => Some(format!(
                "{what} panicked ({}): {}; {} input(s) undelivered",
                r.phase,
                r.panic_message.as_deref().unwrap_or("no message"),
                r.undelivered
            )),
        }
    }

    /// The `vigil-watchdog` details structure, `None` for [`RunOutcome::Completed`].
    pub fn details(&self) -> Option<gst::Structure> {
        let r = self.failure()?;
        let mut s = gst::Structure::builder(WATCHDOG_DETAILS)
            .field("reason", self.reason().unwrap_or_default())
            .field("phase", r.phase.as_str())
            .field(
                "idle-ms",
                u64::try_from(r.idle.as_millis()).unwrap_or(u64::MAX),
            )
            .field("frames-in", r.frames_in)
            .field("frames-out", r.frames_out)
            .field("undelivered", r.undelivered)
            .build();
        if let Some(m) = &r.panic_message {
            s.set("panic-message", m.as_str());
        }
        Some(s)
    }
}

fn post_watchdog_message(
    element: &gst::Element,
    outcome: &RunOutcome,
    what: &str,
    error: bool,
) -> bool {
    let (Some(text), Some(details)) = (outcome.describe(what), outcome.details()) else {
        return false;
    };
    if error {
        gst::element_error!(
            element,
            gst::StreamError::Failed,
            ("{}; the output is truncated", text),
            ["{:?}", outcome],
            details: details
        );
    } else {
        gst::element_warning!(
            element,
            gst::StreamError::Failed,
            ("{} while stopping", text),
            ["{:?}", outcome],
            details: details
        );
    }
    true
}

/// Maps the outcome of work done while streaming: `Completed` is `Ok`; a failure posts one
/// ERROR with the `vigil-watchdog` details and gives `FlowError::Error`.
///
/// `what` names the worker in the message ("the SVT-AV1 encoder", "the file consumer").
pub fn report_outcome(
    element: &gst::Element,
    what: &str,
    outcome: RunOutcome,
) -> Result<(), gst::FlowError> {
    if post_watchdog_message(element, &outcome, what, true) {
        Err(gst::FlowError::Error)
    } else {
        Ok(())
    }
}

/// Maps the outcome of a drain at EOS. A clean drain forwards the EOS. A failure posts the
/// ERROR first; the EOS is then forwarded while the element is PLAYING, so downstream muxers
/// can finalise even a truncated file. Before PLAYING (the drain of a pipeline that is still
/// prerolling) it is not: the ERROR fails the pipeline's pending state change, the pipeline
/// never reaches PLAYING, and the EOS would wait in a downstream sink's preroll for ever (with
/// it the streaming thread, and an application's own EOS that waits for that thread). The
/// result says whether the drain was clean.
pub fn conclude_drain(
    element: &gst::Element,
    what: &str,
    outcome: RunOutcome,
    forward_eos: impl FnOnce() -> bool,
) -> Result<(), gst::FlowError> {
    use gst::prelude::*;
    let failed = outcome != RunOutcome::Completed;
    let result = report_outcome(element, what, outcome);
    if !failed || element.current_state() == gst::State::Playing {
        forward_eos();
    }
    result
}

/// Hands on an EOS that follows a failure this run already reported: only in PLAYING, where
/// muxers downstream still finalise what they have. Below PLAYING the failed pipeline never
/// prerolls, and an EOS that prerolled a sink would complete the state change the ERROR
/// failed: `gst-launch-1.0` then waits for ever, and a streaming thread waits in preroll.
/// Returns what `forward_eos` returned, or false.
pub fn forward_eos_after_failure(
    element: &gst::Element,
    forward_eos: impl FnOnce() -> bool,
) -> bool {
    use gst::prelude::*;
    if element.current_state() == gst::State::Playing {
        forward_eos()
    } else {
        false
    }
}

/// Maps the outcome of stopping a worker during a state change: a failure is a WARNING (the
/// run was being torn down anyway), never an ERROR. Returns whether anything was posted.
pub fn report_teardown(element: &gst::Element, what: &str, outcome: RunOutcome) -> bool {
    post_watchdog_message(element, &outcome, what, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_carry_reason_phase_and_counts() {
        gst::init().unwrap();
        let outcome = RunOutcome::WatchdogAbandoned(FailureReport {
            phase: Phase::Drain,
            idle: Duration::from_millis(1500),
            frames_in: 10,
            frames_out: 4,
            undelivered: 6,
            panic_message: None,
        });
        let s = outcome.details().unwrap();
        assert_eq!(s.name(), WATCHDOG_DETAILS);
        assert_eq!(s.get::<&str>("reason").unwrap(), "abandoned");
        assert_eq!(s.get::<&str>("phase").unwrap(), "drain");
        assert_eq!(s.get::<u64>("idle-ms").unwrap(), 1500);
        assert_eq!(s.get::<u64>("frames-in").unwrap(), 10);
        assert_eq!(s.get::<u64>("frames-out").unwrap(), 4);
        assert_eq!(s.get::<u64>("undelivered").unwrap(), 6);
        assert!(RunOutcome::Completed.details().is_none());
    }
}
