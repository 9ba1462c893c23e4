// SPDX-License-Identifier: MPL-2.0
//! Fault injection into the bin's own threads (cargo feature `fault-injection` only; without
//! it, [`Faults`] is empty and [`Faults::at`] compiles to nothing).
//!
//! A plan is written `KIND:THREAD[:AFTER]`: `KIND` is `wedge`, `panic` or `slow=MS`, as for the
//! codec elements; `THREAD` is `input` (each input's actor thread, before it handles a command),
//! `controller` (before each controller round) or `output` (before each output period);
//! `AFTER` lets that many rounds through first.

#[cfg(feature = "fault-injection")]
use vigil_core::fault::FaultKind;

/// The bin's threads a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultThread {
    /// An input's actor thread (it starts and stops the input's pipeline).
    Input,
    /// The controller thread (health, switching, status).
    Controller,
    /// An output thread (one per pad).
    Output,
}

impl FaultThread {
    /// The name used in plans and in the `thread` field of the ERROR details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Controller => "controller",
            Self::Output => "output",
        }
    }
}

/// A parsed plan.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ThreadFault {
    kind: FaultKind,
    thread: FaultThread,
    after: u64,
}

#[cfg(feature = "fault-injection")]
impl ThreadFault {
    /// Parses `KIND:THREAD[:AFTER]`; the error names what was wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let fields: Vec<&str> = s.trim().split(':').collect();
        if !(2..=3).contains(&fields.len()) {
            return Err(format!("fault '{s}': expected KIND:THREAD[:AFTER]"));
        }
        let kind = match fields[0] {
            "wedge" => FaultKind::Wedge,
            "panic" => FaultKind::Panic,
            k if k.starts_with("slow=") => {
                FaultKind::Slow(std::time::Duration::from_millis(k[5..].parse().map_err(
                    |_| format!("fault '{s}': slow needs milliseconds, as slow=200"),
                )?))
            }
            k => {
                return Err(format!(
                    "fault '{s}': unknown kind '{k}' (wedge, panic, slow=MS)"
                ));
            }
        };
        let thread = match fields[1] {
            "input" => FaultThread::Input,
            "controller" => FaultThread::Controller,
            "output" => FaultThread::Output,
            t => {
                return Err(format!(
                    "fault '{s}': unknown thread '{t}' (input, controller, output)"
                ));
            }
        };
        let after = match fields.get(2) {
            None => 0,
            Some(n) => n
                .parse()
                .map_err(|_| format!("fault '{s}': '{n}' is not a count"))?,
        };
        Ok(Self {
            kind,
            thread,
            after,
        })
    }
}

/// The fault plan a running bin hands to its threads.
#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    #[cfg(feature = "fault-injection")]
    pub plan: Option<std::sync::Arc<ThreadFault>>,
}

impl Faults {
    /// Called by `thread` at each fault point, with the rounds it has done so far.
    #[inline]
    pub fn at(&self, thread: FaultThread, rounds: u64) {
        #[cfg(feature = "fault-injection")]
        if let Some(p) = &self.plan
            && p.thread == thread
            && rounds >= p.after
        {
            match p.kind {
                FaultKind::Wedge => loop {
                    std::thread::park();
                },
                // No panic hook: the injected panic unwinds at once (see vigil-core).
                FaultKind::Panic => std::panic::resume_unwind(Box::new(format!(
                    "vigil fault injection: panic in the {} thread",
                    thread.as_str()
                ))),
                FaultKind::Slow(d) => std::thread::sleep(d),
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = (thread, rounds);
    }
}

/// Runs a thread body of the bin; a panic is caught and reported as the ERROR every vigil
/// element posts for a panicked worker (`vigil-watchdog`, `reason=panicked`,
/// `phase=streaming`, plus `thread`): the bin's output is no longer trustworthy.
pub(super) fn run_guarded(
    element: gst::glib::WeakRef<super::FailoverSrc>,
    thread: FaultThread,
    body: impl FnOnce(),
) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_ok() {
        return;
    }
    let Some(el) = element.upgrade() else {
        return;
    };
    let details = gst::Structure::builder(vigil_core::WATCHDOG_DETAILS)
        .field("reason", "panicked")
        .field("phase", "streaming")
        .field("thread", thread.as_str())
        .build();
    gst::element_error!(
        el,
        gst::StreamError::Failed,
        (
            "The failover {} thread panicked; the output is truncated",
            thread.as_str()
        ),
        details: details
    );
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn parses_plans_and_names_bad_ones() {
        let p = ThreadFault::parse("wedge:output:5").unwrap();
        assert_eq!(
            (p.kind, p.thread, p.after),
            (FaultKind::Wedge, FaultThread::Output, 5)
        );
        assert_eq!(
            ThreadFault::parse("panic:controller").unwrap().thread,
            FaultThread::Controller
        );
        assert!(
            ThreadFault::parse("panic:drain")
                .unwrap_err()
                .contains("drain")
        );
        assert!(
            ThreadFault::parse("melt:input")
                .unwrap_err()
                .contains("melt")
        );
        assert!(
            ThreadFault::parse("wedge:input:x")
                .unwrap_err()
                .contains("'x'")
        );
    }
}
