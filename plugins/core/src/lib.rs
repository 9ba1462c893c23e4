// SPDX-License-Identifier: MPL-2.0
//! vigil-core: the worker thread, the idle watchdog, run outcomes and their bus reporting,
//! shared by every vigil element (no element lives here).
//!
//! The contract (see `docs/design.md`):
//! 1. the streaming thread never calls the codec or consumer: a named worker thread owns it
//!    ([`WorkerHandle::spawn`]);
//! 2. every wait on the worker is timed; the worker is idle when work is pending and it has
//!    made no progress for the watchdog timeout;
//! 3. an idle worker is abandoned and what it owns is leaked;
//! 4. a worker panic is caught and is a failure;
//! 5. [`RunOutcome`] is mapped to the bus in one place ([`report_outcome`],
//!    [`conclude_drain`], [`report_teardown`]).

pub mod activity;
pub mod av1;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod outcome;
mod threads;
mod worker;

pub use activity::{ActivityProbe, ThreadCpuProbe};
pub use outcome::{
    FailureReport, Phase, RunOutcome, WATCHDOG_DETAILS, conclude_drain, forward_eos_after_failure,
    report_outcome, report_teardown,
};
pub use threads::join_within;
pub use worker::{
    Codec, CodecError, CodecErrorKind, Emitter, SHUTDOWN_FALLBACK, WorkerConfig, WorkerContext,
    WorkerError, WorkerHandle, event_answer, interrupt_on_stop,
};

#[cfg(test)]
mod tests;
