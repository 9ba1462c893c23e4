// SPDX-License-Identifier: MPL-2.0
//! The vocabulary the parts of `vigilfailoversrc` share: status, switch reasons, the events the
//! controller is told and the report it writes. A leaf module: it imports none of the others,
//! so the controller, the inputs and the outputs depend on it and never on each other in a
//! circle.

use std::collections::VecDeque;
use std::time::Duration;

use gst::glib;

/// What `vigilfailoversrc` is doing, derived from what flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilFailoverStatus")]
pub enum Status {
    /// Started, waiting for the first input to deliver data (filler on air).
    #[enum_value(name = "Starting: no input has delivered data yet", nick = "starting")]
    Starting = 0,
    /// The primary (first) input is on air and its data flows.
    #[enum_value(
        name = "Healthy: the primary input is on air and flowing",
        nick = "healthy"
    )]
    Healthy = 1,
    /// A backup input is on air and its data flows.
    #[enum_value(
        name = "Failover: a backup input is on air and flowing",
        nick = "failover"
    )]
    Failover = 2,
    /// The input on air has stopped delivering (not yet declared stalled), or the only input
    /// is down and being retried.
    #[enum_value(
        name = "Degraded: the input on air is not flowing, or the only input is being retried",
        nick = "degraded"
    )]
    Degraded = 3,
    /// Every input is down: filler on air, retries go on.
    #[enum_value(
        name = "Exhausted: no input is delivering, filler on air",
        nick = "exhausted"
    )]
    Exhausted = 4,
    /// Not running (NULL or READY).
    #[enum_value(name = "Stopped", nick = "stopped")]
    Stopped = 5,
}

impl Status {
    pub fn nick(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Failover => "failover",
            Status::Degraded => "degraded",
            Status::Exhausted => "exhausted",
            Status::Stopped => "stopped",
        }
    }
}

/// Whether backups run before they are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilFailoverStandby")]
pub enum Standby {
    /// Every input runs and is decoded all the time: a switch is instant.
    #[enum_value(name = "Warm: all inputs run, switches are instant", nick = "warm")]
    Warm = 0,
    /// Only the input on air (and higher-priority inputs being retried) run; a backup is
    /// started when it is needed and goes on air once it delivers data.
    #[enum_value(name = "Cold: backups are started when needed", nick = "cold")]
    Cold = 1,
}

/// Why the input on air changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The input on air posted an ERROR.
    Error,
    /// The input on air delivered no data for `stall-timeout`.
    Stall,
    /// The input on air ended.
    Eos,
    /// The input on air could not be started.
    StartFailure,
    /// A higher-priority input has been healthy for `failback-delay`.
    Failback,
    /// `switch-to`.
    Manual,
    /// An input added while running went on air.
    Added,
    /// The input on air was removed.
    Removed,
    /// The first input on air after the start.
    Initial,
    /// An input went on air after a time with none (exhausted or degraded).
    Recovered,
    /// The input on air showed a black picture for `black-timeout`.
    Black,
    /// The input on air showed an unchanged picture for `freeze-timeout`.
    Frozen,
    /// The input on air had silent audio for `silence-timeout`.
    Silence,
    /// At the start, a higher-priority input delivered after a lower one went on air first.
    Preferred,
}

impl SwitchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchReason::Error => "error",
            SwitchReason::Stall => "stall",
            SwitchReason::Eos => "eos",
            SwitchReason::StartFailure => "start-failure",
            SwitchReason::Failback => "failback",
            SwitchReason::Manual => "manual",
            SwitchReason::Added => "added",
            SwitchReason::Removed => "removed",
            SwitchReason::Initial => "initial",
            SwitchReason::Recovered => "recovered",
            SwitchReason::Black => "black",
            SwitchReason::Frozen => "frozen",
            SwitchReason::Silence => "silence",
            SwitchReason::Preferred => "preferred",
        }
    }
}

/// What the controller is told.
pub(crate) enum Event {
    /// An input failed (bus ERROR or EOS, failed start).
    Failed {
        id: u64,
        generation: u64,
        reason: SwitchReason,
        text: String,
    },
    /// The configured inputs or the settings changed.
    Reconfigure,
    /// `switch-to`.
    SwitchTo(u64),
    /// Stop everything and end.
    Shutdown,
}

/// The thresholds of the judgement (the element's properties).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rules {
    /// A stream that has flowed and then delivers nothing for this long has stalled.
    pub stall_timeout: Duration,
    /// An input that delivers nothing for this long after its start has failed to start.
    pub start_timeout: Duration,
    /// How recent the newest picture must be to count as flowing (output-based floor).
    pub flow_window: Duration,
    /// Black picture for this long: impaired (`None`: not checked).
    pub black_timeout: Option<Duration>,
    /// Unchanged picture for this long: impaired (`None`: not checked).
    pub freeze_timeout: Option<Duration>,
    /// Silent audio for this long: impaired (`None`: not checked).
    pub silence_timeout: Option<Duration>,
    /// How long a failed or impaired input must be clean before it counts again.
    pub clear_time: Duration,
    /// The output carries audio.
    pub audio_output: bool,
}

/// The settings the controller reads each tick.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// `None`: never fail back.
    pub failback_delay: Option<Duration>,
    /// `None`: never post an ERROR.
    pub exhausted_timeout: Option<Duration>,
    pub standby: Standby,
    /// The health judgement's thresholds.
    pub rules: Rules,
    /// Content measurement thresholds (8-bit luma level, dBFS).
    pub black_threshold: u32,
    pub silence_threshold: i32,
}

/// One switch, for `statistics`.
#[derive(Debug, Clone)]
pub(crate) struct SwitchRecord {
    pub from: String,
    pub to: String,
    pub reason: SwitchReason,
    pub wallclock_ms: u64,
}

/// One input as reported in `statistics`.
#[derive(Debug, Clone)]
pub(crate) struct InputReport {
    pub name: String,
    pub state: &'static str,
    pub on_air: bool,
    pub retries: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_data_ms_ago: i64,
    pub buffers: u64,
    /// How long its picture has been black, unchanged, its audio silent.
    pub black_ms: u64,
    pub frozen_ms: u64,
    pub silent_ms: u64,
    /// Its own frame interval (0: not measured yet).
    pub frame_interval_ms: u64,
    pub has_video: bool,
    pub has_audio: bool,
}

/// What the element reports, written by the controller.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub status: Status,
    /// Why the status is not `healthy` or `failover` (empty when it is).
    pub detail: String,
    pub active_input: Option<String>,
    pub switches: u64,
    pub history: VecDeque<SwitchRecord>,
    pub inputs: Vec<InputReport>,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            status: Status::Stopped,
            detail: String::new(),
            active_input: None,
            switches: 0,
            history: VecDeque::new(),
            inputs: Vec::new(),
        }
    }
}
