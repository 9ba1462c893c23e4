// SPDX-License-Identifier: MPL-2.0
//! The controller of `vigilfailoversrc`: one thread that owns every input's lifecycle
//! decisions, judges health from the data each input delivers, retries failed inputs with
//! exponential backoff, chooses the input on air, and reports status and switches.
//!
//! It wakes on every event (an input's ERROR or EOS, a configuration change, a manual switch)
//! and at least every [`TICK`], so a stall is seen within one tick of `stall-timeout`.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::fault::FaultThread;
use super::input::{InputActor, InputShared, InputSpec, RunConfig};
use super::output::Output;

/// The controller's period when nothing happens.
pub(super) const TICK: Duration = Duration::from_millis(20);
/// Switches kept in `statistics`.
const SWITCH_HISTORY: usize = 20;
/// How long the controller waits for an input thread to end at shutdown before leaving it.
const INPUT_JOIN_LIMIT: Duration = Duration::from_secs(5);

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
        }
    }
}

/// What the controller is told.
pub(super) enum Event {
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

/// The settings the controller reads each tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub stall_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// `None`: never fail back.
    pub failback_delay: Option<Duration>,
    /// `None`: never post an ERROR.
    pub exhausted_timeout: Option<Duration>,
    pub standby: Standby,
    /// How recent the newest buffer must be for the input on air to count as flowing.
    pub flow_window: Duration,
}

/// One switch, for `statistics`.
#[derive(Debug, Clone)]
pub(super) struct SwitchRecord {
    pub from: String,
    pub to: String,
    pub reason: SwitchReason,
    pub wallclock_ms: u64,
}

/// One input as reported in `statistics`.
#[derive(Debug, Clone)]
pub(super) struct InputReport {
    pub name: String,
    pub state: &'static str,
    pub on_air: bool,
    pub retries: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_data_ms_ago: i64,
    pub buffers: u64,
}

/// What the element reports, written by the controller.
#[derive(Debug, Clone)]
pub(super) struct Report {
    pub status: Status,
    pub active_input: Option<String>,
    pub switches: u64,
    pub history: VecDeque<SwitchRecord>,
    pub inputs: Vec<InputReport>,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            status: Status::Stopped,
            active_input: None,
            switches: 0,
            history: VecDeque::new(),
            inputs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not running (cold standby, or waiting to be started).
    Idle,
    /// Started at `since`; healthy while its data is recent.
    Running { since: Instant },
    /// Failed; retried at `until`.
    Backoff { until: Instant },
}

struct InputCtl {
    spec: InputSpec,
    actor: InputActor,
    generation: u64,
    phase: Phase,
    /// Failures since it was last healthy for `retry-backoff-max`.
    consecutive_failures: u32,
    failures: u64,
    retries: u64,
    last_error: Option<String>,
    healthy_since: Option<Instant>,
    added_while_running: bool,
    ever_on_air: bool,
    ever_failed: bool,
}

impl InputCtl {
    fn shared(&self) -> &Arc<InputShared> {
        &self.actor.shared
    }

    /// Data arrived within `stall` (of the current run).
    fn healthy(&self, now: Instant, stall: Duration) -> bool {
        matches!(self.phase, Phase::Running { .. })
            && self
                .shared()
                .last_data()
                .is_some_and(|t| now.saturating_duration_since(t) < stall)
    }

    fn state_name(&self, now: Instant, t: &Timing) -> &'static str {
        match self.phase {
            Phase::Idle => "idle",
            Phase::Backoff { .. } => "retrying",
            Phase::Running { .. } => match self.shared().last_data() {
                None => "starting",
                Some(d) if now.saturating_duration_since(d) < t.flow_window => "active",
                Some(_) => "stalling",
            },
        }
    }
}

/// The controller thread's state.
pub(super) struct Controller {
    element: glib::WeakRef<super::FailoverSrc>,
    events: Receiver<Event>,
    run_config: RunConfig,
    output: Arc<Output>,
    report: Arc<Mutex<Report>>,
    inputs: Vec<InputCtl>,
    retiring: Vec<InputActor>,
    on_air: Option<u64>,
    /// Set when the input on air failed or was removed, until the next switch is announced.
    lost: Option<(String, SwitchReason)>,
    manual: Option<u64>,
    anything_on_air: bool,
    off_air_since: Option<Instant>,
    exhausted_error_posted: bool,
    next_generation: u64,
    audio_cap: usize,
    /// The first configuration has been applied: inputs added from now on were added while
    /// running.
    configured: bool,
}

impl Controller {
    pub fn new(
        element: &super::FailoverSrc,
        events: Receiver<Event>,
        run_config: RunConfig,
        output: Arc<Output>,
        report: Arc<Mutex<Report>>,
        audio_cap: usize,
    ) -> Self {
        Self {
            element: element.downgrade(),
            events,
            run_config,
            output,
            report,
            inputs: Vec::new(),
            retiring: Vec::new(),
            on_air: None,
            lost: None,
            manual: None,
            anything_on_air: false,
            off_air_since: Some(Instant::now()),
            exhausted_error_posted: false,
            next_generation: 1,
            audio_cap,
            configured: false,
        }
    }

    /// The thread body: runs until `Shutdown` (or the element is gone), then stops every
    /// input and joins their threads (bounded).
    pub fn run(mut self) {
        self.reconcile();
        self.configured = true;
        let mut rounds = 0;
        loop {
            self.run_config.faults.at(FaultThread::Controller, rounds);
            rounds += 1;
            let first = match self.events.recv_timeout(TICK) {
                Ok(e) => Some(e),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Event::Shutdown),
            };
            let mut shutdown = false;
            let pending: Vec<Event> = first.into_iter().chain(self.events.try_iter()).collect();
            for ev in pending {
                match ev {
                    Event::Shutdown => shutdown = true,
                    Event::Reconfigure => self.reconcile(),
                    Event::SwitchTo(id) => self.manual = Some(id),
                    Event::Failed {
                        id,
                        generation,
                        reason,
                        text,
                    } => self.on_failed(id, generation, reason, text),
                }
            }
            if shutdown || self.element.upgrade().is_none() {
                break;
            }
            self.tick();
        }
        self.shutdown();
    }

    fn timing(&self) -> Option<Timing> {
        let el = self.element.upgrade()?;
        Some(el.imp().timing())
    }

    fn shutdown(&mut self) {
        self.output.set_on_air(None);
        let mut actors: Vec<InputActor> = self.inputs.drain(..).map(|i| i.actor).collect();
        actors.append(&mut self.retiring);
        for a in &actors {
            a.shutdown();
        }
        let end = Instant::now() + INPUT_JOIN_LIMIT;
        for a in actors {
            let name = a.shared.name.clone();
            let left = end.saturating_duration_since(Instant::now());
            if !a.join_within(left)
                && let Some(el) = self.element.upgrade()
            {
                gst::element_warning!(
                    el,
                    gst::ResourceError::Close,
                    ("Input {name} did not stop within {INPUT_JOIN_LIMIT:?}: its thread is left behind")
                );
            }
        }
    }

    /// Brings the input list in line with the configured one: new inputs are created (and
    /// started by the next tick), removed ones are shut down, the order follows the
    /// configuration (it is the priority).
    fn reconcile(&mut self) {
        let Some(el) = self.element.upgrade() else {
            return;
        };
        let specs = el.imp().input_specs();
        let mut old: Vec<InputCtl> = std::mem::take(&mut self.inputs);
        for spec in specs {
            if let Some(pos) = old.iter().position(|i| i.spec.id == spec.id) {
                self.inputs.push(old.remove(pos));
            } else {
                let shared = Arc::new(InputShared::new(spec.id, spec.name.clone(), self.audio_cap));
                let actor = InputActor::spawn(spec.clone(), shared, self.run_config.clone());
                self.inputs.push(InputCtl {
                    spec,
                    actor,
                    generation: 0,
                    phase: Phase::Idle,
                    consecutive_failures: 0,
                    failures: 0,
                    retries: 0,
                    last_error: None,
                    healthy_since: None,
                    added_while_running: self.configured,
                    ever_on_air: false,
                    ever_failed: false,
                });
            }
        }
        for removed in old {
            gst::debug!(super::input::CAT, "input {} removed", removed.spec.name);
            if self.on_air == Some(removed.spec.id) {
                self.on_air = None;
                self.output.set_on_air(None);
                self.lost = Some((removed.spec.name.clone(), SwitchReason::Removed));
            }
            if self.manual == Some(removed.spec.id) {
                self.manual = None;
            }
            removed.actor.shutdown();
            self.retiring.push(removed.actor);
        }
        // Threads of removed inputs that have ended are joined here, so none is left behind.
        let (done, pending): (Vec<_>, Vec<_>) =
            self.retiring.drain(..).partition(|a| a.is_finished());
        self.retiring = pending;
        for a in done {
            a.join_within(Duration::ZERO);
        }
    }

    fn on_failed(&mut self, id: u64, generation: u64, reason: SwitchReason, text: String) {
        let Some(idx) = self.inputs.iter().position(|i| i.spec.id == id) else {
            return;
        };
        let input = &self.inputs[idx];
        if input.generation != generation || !matches!(input.phase, Phase::Running { .. }) {
            return;
        }
        let Some(t) = self.timing() else {
            return;
        };
        self.fail(idx, reason, text, &t);
    }

    /// An input failed: stop it, schedule its retry, and take it off air.
    fn fail(&mut self, idx: usize, reason: SwitchReason, text: String, t: &Timing) {
        let now = Instant::now();
        let input = &mut self.inputs[idx];
        gst::info!(
            super::input::CAT,
            "input {} failed ({}): {text}",
            input.spec.name,
            reason.as_str()
        );
        let exp = input.consecutive_failures.min(16);
        let backoff = t
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(t.backoff_max)
            .max(t.backoff_min.min(t.backoff_max));
        input.consecutive_failures += 1;
        input.failures += 1;
        input.ever_failed = true;
        input.last_error = Some(format!("{}: {text}", reason.as_str()));
        input.healthy_since = None;
        input.phase = Phase::Backoff {
            until: now + backoff,
        };
        // A new generation: whatever the old pipeline still delivers is ignored.
        input.generation = self.next_generation;
        self.next_generation += 1;
        input.shared().begin(input.generation);
        input.actor.stop();
        if self.on_air == Some(input.spec.id) {
            self.on_air = None;
            self.output.set_on_air(None);
            self.lost = Some((input.spec.name.clone(), reason));
        }
        if self.manual == Some(input.spec.id) {
            self.manual = None;
        }
    }

    fn start(&mut self, idx: usize, now: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let input = &mut self.inputs[idx];
        if input.ever_failed {
            input.retries += 1;
        }
        input.generation = generation;
        input.phase = Phase::Running { since: now };
        input.healthy_since = None;
        input.shared().begin(generation);
        input.actor.start(generation);
    }

    fn stop(&mut self, idx: usize) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let input = &mut self.inputs[idx];
        input.generation = generation;
        input.phase = Phase::Idle;
        input.healthy_since = None;
        input.shared().begin(generation);
        input.actor.stop();
    }

    fn index_of(&self, id: Option<u64>) -> Option<usize> {
        id.and_then(|id| self.inputs.iter().position(|i| i.spec.id == id))
    }

    fn tick(&mut self) {
        let Some(t) = self.timing() else {
            return;
        };
        let now = Instant::now();

        // Health from data: a run that delivered nothing, or nothing lately, has failed.
        for idx in 0..self.inputs.len() {
            let input = &mut self.inputs[idx];
            let Phase::Running { since } = input.phase else {
                continue;
            };
            match input.shared().last_data() {
                None if now.saturating_duration_since(since) >= t.stall_timeout => {
                    let text = format!(
                        "no data within {} ms of the start",
                        t.stall_timeout.as_millis()
                    );
                    self.fail(idx, SwitchReason::Stall, text, &t);
                }
                Some(d) if now.saturating_duration_since(d) >= t.stall_timeout => {
                    let text = format!("no data for {} ms", t.stall_timeout.as_millis());
                    self.fail(idx, SwitchReason::Stall, text, &t);
                }
                Some(_) => {
                    let hs = *input.healthy_since.get_or_insert(now);
                    if now.saturating_duration_since(hs) >= t.backoff_max {
                        input.consecutive_failures = 0;
                    }
                }
                None => {}
            }
        }

        // Retries whose time has come.
        for input in &mut self.inputs {
            if let Phase::Backoff { until } = input.phase
                && now >= until
            {
                input.phase = Phase::Idle;
            }
        }

        // Which inputs run.
        let on_air_idx = self.index_of(self.on_air);
        let first_available = self
            .inputs
            .iter()
            .position(|i| !matches!(i.phase, Phase::Backoff { .. }));
        for idx in 0..self.inputs.len() {
            let wanted = match t.standby {
                Standby::Warm => true,
                Standby::Cold => match on_air_idx {
                    Some(a) => idx <= a || self.manual == Some(self.inputs[idx].spec.id),
                    None => Some(idx) == first_available,
                },
            };
            match (self.inputs[idx].phase, wanted) {
                (Phase::Idle, true) => self.start(idx, now),
                (Phase::Running { .. }, false) => self.stop(idx),
                _ => {}
            }
        }

        self.select(now, &t);
        self.update_report(now, &t);
    }

    /// Chooses the input on air.
    fn select(&mut self, now: Instant, t: &Timing) {
        let healthy: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| self.inputs[i].healthy(now, t.stall_timeout))
            .collect();
        let manual_idx = self.index_of(self.manual).filter(|i| healthy.contains(i));
        let best = manual_idx.or_else(|| healthy.first().copied());
        let target = match (self.index_of(self.on_air), best) {
            (_, None) => None,
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => {
                if manual_idx == Some(b) {
                    Some((b, SwitchReason::Manual))
                } else if self.manual == self.on_air && self.manual.is_some() {
                    // The manually chosen input stays on air while it is healthy.
                    None
                } else if b < a
                    && t.failback_delay.is_some_and(|d| {
                        self.inputs[b]
                            .healthy_since
                            .is_some_and(|hs| now.saturating_duration_since(hs) >= d)
                    })
                {
                    Some((b, SwitchReason::Failback))
                } else {
                    None
                }
            }
            (None, Some(b)) => {
                // At the start, wait for a higher-priority input still starting (it has up to
                // stall-timeout to deliver), so the primary is preferred.
                let waiting = !self.anything_on_air
                    && manual_idx.is_none()
                    && self.inputs[..b].iter().any(|i| {
                        !i.ever_failed
                            && matches!(i.phase, Phase::Running { since }
                                if now.saturating_duration_since(since) < t.stall_timeout)
                    });
                if waiting {
                    None
                } else if let Some((_, reason)) = &self.lost {
                    Some((b, *reason))
                } else if manual_idx == Some(b) {
                    Some((b, SwitchReason::Manual))
                } else if self.inputs[b].added_while_running && !self.inputs[b].ever_on_air {
                    Some((b, SwitchReason::Added))
                } else if !self.anything_on_air {
                    Some((b, SwitchReason::Initial))
                } else {
                    Some((b, SwitchReason::Recovered))
                }
            }
        };
        if let Some((b, reason)) = target {
            let from = match self.index_of(self.on_air) {
                Some(a) => self.inputs[a].spec.name.clone(),
                None => self.lost.take().map(|(name, _)| name).unwrap_or_default(),
            };
            self.lost = None;
            let input = &mut self.inputs[b];
            input.ever_on_air = true;
            self.anything_on_air = true;
            self.on_air = Some(input.spec.id);
            self.off_air_since = None;
            self.exhausted_error_posted = false;
            self.output.set_on_air(Some(input.shared().clone()));
            let to = input.spec.name.clone();
            self.announce(from, to, reason);
        } else if self.on_air.is_none()
            && let Some((from, reason)) = self.lost.take()
        {
            // Off air with nothing to take over: the filler is on air.
            self.off_air_since.get_or_insert(now);
            self.announce(from, String::new(), reason);
        }

        if self.on_air.is_none() {
            let since = *self.off_air_since.get_or_insert(now);
            if let Some(limit) = t.exhausted_timeout
                && !self.exhausted_error_posted
                && self.anything_or_all_failed()
                && now.saturating_duration_since(since) >= limit
            {
                self.exhausted_error_posted = true;
                if let Some(el) = self.element.upgrade() {
                    gst::element_error!(
                        el,
                        gst::ResourceError::NotFound,
                        ("No input has delivered data for {} ms (exhausted-timeout)", limit.as_millis()),
                        ["{} inputs, all failing; the filler was on air", self.inputs.len()],
                        details: gst::Structure::builder("vigil-failover-exhausted")
                            .field("inputs", self.inputs.len() as u32)
                            .field("off-air-ms", now.saturating_duration_since(since).as_millis() as u64)
                            .build()
                    );
                }
            }
        }
    }

    /// Whether the element is past its start: something was on air, or every input failed.
    fn anything_or_all_failed(&self) -> bool {
        self.anything_on_air || self.inputs.iter().all(|i| i.ever_failed)
    }

    fn announce(&mut self, from: String, to: String, reason: SwitchReason) {
        gst::info!(
            super::input::CAT,
            "switch from '{from}' to '{to}' ({})",
            reason.as_str()
        );
        {
            let mut r = self.report.lock().unwrap();
            r.switches += 1;
            r.history.push_back(SwitchRecord {
                from: from.clone(),
                to: to.clone(),
                reason,
                wallclock_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            });
            while r.history.len() > SWITCH_HISTORY {
                r.history.pop_front();
            }
        }
        if let Some(el) = self.element.upgrade() {
            let s = gst::Structure::builder(super::SWITCHED_MESSAGE)
                .field("from", from)
                .field("to", to)
                .field("reason", reason.as_str())
                .field("running-time", self.output.last_running_time())
                .build();
            let _ = el.post_message(gst::message::Element::builder(s).src(&el).build());
        }
    }

    fn status(&self, now: Instant, t: &Timing) -> Status {
        match self.index_of(self.on_air) {
            Some(a) => {
                let flowing = self.inputs[a]
                    .shared()
                    .last_data()
                    .is_some_and(|d| now.saturating_duration_since(d) < t.flow_window);
                match (flowing, a) {
                    (false, _) => Status::Degraded,
                    (true, 0) => Status::Healthy,
                    (true, _) => Status::Failover,
                }
            }
            None if !self.anything_or_all_failed() && !self.inputs.is_empty() => Status::Starting,
            None if self.inputs.len() == 1 => Status::Degraded,
            None => Status::Exhausted,
        }
    }

    fn update_report(&mut self, now: Instant, t: &Timing) {
        let status = self.status(now, t);
        let active = self
            .index_of(self.on_air)
            .map(|a| self.inputs[a].spec.name.clone());
        let inputs = self
            .inputs
            .iter()
            .map(|i| {
                let state = i.state_name(now, t);
                let d = i.shared().data.lock().unwrap();
                InputReport {
                    name: i.spec.name.clone(),
                    state,
                    on_air: self.on_air == Some(i.spec.id),
                    retries: i.retries,
                    failures: i.failures,
                    last_error: i.last_error.clone(),
                    last_data_ms_ago: d
                        .last_data
                        .map(|l| now.saturating_duration_since(l).as_millis() as i64)
                        .unwrap_or(-1),
                    buffers: d.buffers,
                }
            })
            .collect();
        let (status_changed, active_changed) = {
            let mut r = self.report.lock().unwrap();
            r.inputs = inputs;
            let s = r.status != status;
            let a = r.active_input != active;
            r.status = status;
            r.active_input = active.clone();
            (s, a)
        };
        let Some(el) = self.element.upgrade() else {
            return;
        };
        if active_changed {
            el.notify("active-input");
        }
        if status_changed {
            gst::info!(super::input::CAT, obj = el, "status {}", status.nick());
            el.notify("status");
            let s = gst::Structure::builder(super::STATUS_MESSAGE)
                .field("status", status.nick())
                .field("active-input", active.unwrap_or_default())
                .build();
            let _ = el.post_message(gst::message::Element::builder(s).src(&el).build());
        }
    }
}
