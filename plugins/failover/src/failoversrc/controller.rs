// SPDX-License-Identifier: MPL-2.0
//! The controller of `vigilfailoversrc`: one thread that owns every input's lifecycle
//! decisions, judges health from the data each input delivers, retries failed inputs with
//! exponential backoff, chooses the input on air, and reports status and switches.
//!
//! It wakes on every event (an input's ERROR or EOS, a configuration change, a manual switch)
//! and at least every [`TICK`], so a stall is seen within one tick of `stall-timeout`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::fault::FaultThread;
use super::health::{InputHealth, Judgement, Seen};
use super::input::{InputActor, InputShared, InputSpec, RunConfig};
use super::output::Output;
use super::types::{
    Event, InputReport, Report, Standby, Status, SwitchReason, SwitchRecord, Timing,
};

/// The controller's period when nothing happens.
pub(super) const TICK: Duration = Duration::from_millis(20);
/// Switches kept in `statistics`.
const SWITCH_HISTORY: usize = 20;
/// How long the controller waits for an input thread to end at shutdown before leaving it.
const INPUT_JOIN_LIMIT: Duration = Duration::from_secs(5);

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
    health: InputHealth,
    judgement: Judgement,
}

impl InputCtl {
    fn shared(&self) -> &Arc<InputShared> {
        &self.actor.shared
    }

    /// It may go on air: running, every stream flowing, content clean.
    fn eligible(&self) -> bool {
        matches!(self.phase, Phase::Running { .. }) && self.judgement == Judgement::Flowing
    }

    /// What it delivered in its current run, for the judgement.
    fn seen(&self, now: Instant) -> Seen {
        let since = match self.phase {
            Phase::Running { since } => since,
            _ => now,
        };
        let age = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let d = self.shared().data.lock().unwrap();
        Seen {
            has_video: d.has_video,
            has_audio: d.has_audio,
            video_age: age(d.last_video),
            // The input's own audio: silence `audiorate` made of GAP events is not flowing.
            audio_age: age(d.last_audio_in),
            frame_interval: d.frame_interval(),
            running_for: now.saturating_duration_since(since),
            black_for: d.content.black_for(now),
            frozen_for: d.content.frozen_for(now),
            silent_for: d.content.silent_for(now),
        }
    }

    fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Idle => "idle",
            Phase::Backoff { .. } => "retrying",
            Phase::Running { .. } => match &self.judgement {
                Judgement::Starting => "starting",
                Judgement::Flowing => "active",
                Judgement::Gap | Judgement::Failed { .. } => "stalling",
                j => j.name(),
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
    /// The input the output was last given (`on_air` as of the end of the last tick).
    published: Option<u64>,
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
            published: None,
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
                let audio_format = self
                    .run_config
                    .audio_caps
                    .as_ref()
                    .and_then(|c| c.structure(0))
                    .and_then(|s| s.get::<String>("format").ok());
                let shared = Arc::new(InputShared::new(
                    spec.id,
                    spec.name.clone(),
                    self.audio_cap,
                    audio_format,
                ));
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
                    health: InputHealth::default(),
                    judgement: Judgement::Starting,
                });
            }
        }
        for removed in old {
            gst::debug!(super::input::CAT, "input {} removed", removed.spec.name);
            if self.on_air == Some(removed.spec.id) {
                self.on_air = None;
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
        input.health.failed();
        input.judgement = Judgement::Starting;
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
        // Judged anew from this run's data: a judgement left from an earlier run (flowing,
        // say) must not put an input that has delivered nothing yet on air.
        input.judgement = Judgement::Starting;
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
        input.judgement = Judgement::Starting;
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

        // Health from data and content, per input (see `health`).
        for idx in 0..self.inputs.len() {
            let input = &mut self.inputs[idx];
            let settings = &input.shared().settings;
            settings
                .black_threshold
                .store(t.black_threshold, Ordering::Relaxed);
            settings
                .silence_db
                .store(t.silence_threshold, Ordering::Relaxed);
            if !matches!(input.phase, Phase::Running { .. }) {
                continue;
            }
            let seen = input.seen(now);
            let judgement = input.health.judge(&seen, &t.rules, now);
            let was_impaired = matches!(input.judgement, Judgement::Impaired { .. });
            input.judgement = judgement.clone();
            match judgement {
                Judgement::Failed { reason, text } => self.fail(idx, reason, text, &t),
                Judgement::Impaired { reason, text } => {
                    input.healthy_since = None;
                    if !was_impaired {
                        gst::info!(
                            super::input::CAT,
                            "input {} impaired ({}): {text}",
                            input.spec.name,
                            reason.as_str()
                        );
                        input.failures += 1;
                        input.ever_failed = true;
                        input.last_error = Some(format!("{}: {text}", reason.as_str()));
                    }
                    if self.on_air == Some(input.spec.id) {
                        // Off air, but kept running and watched: it counts again once clean
                        // for clear-time.
                        let name = input.spec.name.clone();
                        self.on_air = None;
                        self.lost = Some((name, reason));
                        if self.manual == Some(self.inputs[idx].spec.id) {
                            self.manual = None;
                        }
                    }
                }
                Judgement::Flowing => {
                    let hs = *input.healthy_since.get_or_insert(now);
                    if now.saturating_duration_since(hs) >= t.backoff_max {
                        input.consecutive_failures = 0;
                    }
                }
                Judgement::Gap => {}
                _ => input.healthy_since = None,
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
        // In cold standby, an input on air that runs but may not stay there (black, frozen,
        // silent, clearing, no video) keeps running and watched; the next available input
        // after it starts, so that there is something to switch to.
        let not_good = |i: &InputCtl| {
            matches!(
                i.judgement,
                Judgement::Impaired { .. } | Judgement::Clearing | Judgement::NoVideo
            )
        };
        let standby_for_on_air = on_air_idx.and_then(|a| {
            not_good(&self.inputs[a])
                .then(|| {
                    (a + 1..self.inputs.len())
                        .find(|&i| !matches!(self.inputs[i].phase, Phase::Backoff { .. }))
                })
                .flatten()
        });
        // Nothing on air (the one that was is impaired, failed or gone): the first available
        // input that is not impaired runs, and the impaired ones before it stay watched.
        let first_good = self.inputs.iter().position(|i| match i.phase {
            Phase::Backoff { .. } => false,
            Phase::Running { .. } => !not_good(i),
            Phase::Idle => true,
        });
        for idx in 0..self.inputs.len() {
            let wanted = match t.standby {
                Standby::Warm => true,
                Standby::Cold => match on_air_idx {
                    Some(a) => {
                        idx <= a
                            || Some(idx) == standby_for_on_air
                            || self.manual == Some(self.inputs[idx].spec.id)
                    }
                    None => match first_good {
                        // An input already starting keeps going (a retry of a higher one that
                        // comes due must not cut a backup's start: nothing is on air, and
                        // whichever flows first goes on air).
                        Some(g) => {
                            idx <= g || matches!(self.inputs[idx].phase, Phase::Running { .. })
                        }
                        // Every input that runs is impaired: they all stay running and
                        // watched (stopping one would make it look good again, restart it
                        // at the next tick, and churn).
                        None => {
                            Some(idx) == first_available
                                || matches!(self.inputs[idx].phase, Phase::Running { .. })
                        }
                    },
                },
            };
            match (self.inputs[idx].phase, wanted) {
                (Phase::Idle, true) => self.start(idx, now),
                (Phase::Running { .. }, false) => self.stop(idx),
                _ => {}
            }
        }

        self.select(now, &t);
        self.update_report(now);
    }

    /// Chooses the input on air.
    /// With nothing on air and no input flowing: the first running input whose newest picture
    /// is only late (`Gap`: a warm backup whose decoder paused for a moment as the input on air
    /// failed). It goes on air rather than the filler, so the output repeats its last picture
    /// instead of cutting to black, and the status says `degraded` ("its newest picture is
    /// late") until its pictures flow again, or it stalls and the filler follows.
    fn late_stand_in(&self) -> Option<usize> {
        if self.on_air.is_some() {
            return None;
        }
        self.inputs
            .iter()
            .position(|i| matches!(i.phase, Phase::Running { .. }) && i.judgement == Judgement::Gap)
    }

    fn select(&mut self, now: Instant, t: &Timing) {
        let eligible: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| self.inputs[i].eligible())
            .collect();
        let manual_idx = self.index_of(self.manual).filter(|i| eligible.contains(i));
        let best = manual_idx
            .or_else(|| eligible.first().copied())
            .or_else(|| self.late_stand_in());
        let target = match (self.index_of(self.on_air), best) {
            (_, None) => None,
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => {
                if manual_idx == Some(b) {
                    Some((b, SwitchReason::Manual))
                } else if self.manual == self.on_air && self.manual.is_some() {
                    // The manually chosen input stays on air while it is healthy.
                    None
                } else if b < a && !self.inputs[b].ever_on_air && !self.inputs[b].ever_failed {
                    // At the start the best input that flowed went on air at once; a
                    // higher-priority one that delivers later (in its first start) takes
                    // over as soon as it flows.
                    Some((b, SwitchReason::Preferred))
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
                if let Some((_, reason)) = &self.lost {
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
            let to = input.spec.name.clone();
            self.announce(from, to, reason);
        } else if self.on_air.is_none()
            && let Some((from, reason)) = self.lost.take()
        {
            // Off air with nothing to take over: the filler is on air.
            self.off_air_since.get_or_insert(now);
            self.announce(from, String::new(), reason);
        }

        // The output follows the choice once, here: an input taken off air earlier in this
        // tick is replaced in the same step, so the output never shows a filler frame between
        // two inputs (until then it holds the old input's last picture).
        if self.published != self.on_air {
            let shared = self
                .index_of(self.on_air)
                .map(|i| self.inputs[i].shared().clone());
            self.output.set_on_air(shared);
            self.published = self.on_air;
        }

        if self.on_air.is_none() {
            let since = *self.off_air_since.get_or_insert(now);
            // Counted from the start (or from the moment the last input went off air),
            // whether or not the inputs have failed yet: inputs that are still starting after
            // `exhausted-timeout` are no input on air (a hostile run saw the ERROR wait for
            // the inputs' start-timeout, or never come in cold standby).
            let off_air = now.saturating_duration_since(since);
            if let Some(limit) = t.exhausted_timeout
                && !self.exhausted_error_posted
                && off_air >= limit
            {
                self.exhausted_error_posted = true;
                if let Some(el) = self.element.upgrade() {
                    gst::element_error!(
                        el,
                        gst::ResourceError::NotFound,
                        ("No input has been on air for {} ms (exhausted-timeout is {} ms)", off_air.as_millis(), limit.as_millis()),
                        ["{} inputs, none delivering; the filler was on air", self.inputs.len()],
                        details: gst::Structure::builder("vigil-failover-exhausted")
                            .field("inputs", self.inputs.len() as u32)
                            .field("off-air-ms", off_air.as_millis() as u64)
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

    /// The status, and why when it is not `healthy` or `failover`.
    fn status(&self) -> (Status, String) {
        if let Some(a) = self.index_of(self.on_air) {
            let input = &self.inputs[a];
            return match &input.judgement {
                Judgement::Flowing if a == 0 => (Status::Healthy, String::new()),
                Judgement::Flowing => (Status::Failover, String::new()),
                Judgement::Gap => (
                    Status::Degraded,
                    format!("{}: its newest picture is late", input.spec.name),
                ),
                j => (
                    Status::Degraded,
                    format!("{}: {}", input.spec.name, j.name()),
                ),
            };
        }
        // Filler on air: why.
        let delivering = self.inputs.iter().find_map(|i| match &i.judgement {
            _ if !matches!(i.phase, Phase::Running { .. }) => None,
            Judgement::NoVideo => Some(format!(
                "{} has no video stream: filler on air",
                i.spec.name
            )),
            Judgement::Impaired { text, .. } => {
                Some(format!("{}: {text}: filler on air", i.spec.name))
            }
            Judgement::Clearing => Some(format!(
                "{} is clean again for less than clear-time: filler on air",
                i.spec.name
            )),
            _ => None,
        });
        if let Some(why) = delivering {
            return (Status::Degraded, why);
        }
        if !self.anything_or_all_failed() && !self.inputs.is_empty() {
            return (
                Status::Starting,
                "no input has delivered data yet: filler on air".into(),
            );
        }
        let why = if self.inputs.is_empty() {
            "no input is configured: filler on air".to_string()
        } else {
            "no input is delivering: filler on air".to_string()
        };
        if self.inputs.len() == 1 {
            (Status::Degraded, why)
        } else {
            (Status::Exhausted, why)
        }
    }

    fn update_report(&mut self, now: Instant) {
        let (status, detail) = self.status();
        let active = self
            .index_of(self.on_air)
            .map(|a| self.inputs[a].spec.name.clone());
        let ms = |d: Duration| d.as_millis() as u64;
        let inputs = self
            .inputs
            .iter()
            .map(|i| {
                let state = i.state_name();
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
                    black_ms: ms(d.content.black_for(now)),
                    frozen_ms: ms(d.content.frozen_for(now)),
                    silent_ms: ms(d.content.silent_for(now)),
                    frame_interval_ms: d.frame_interval().map(ms).unwrap_or(0),
                    has_video: d.has_video,
                    has_audio: d.has_audio,
                }
            })
            .collect();
        let (status_changed, active_changed) = {
            let mut r = self.report.lock().unwrap();
            r.inputs = inputs;
            r.detail = detail.clone();
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
                .field("detail", detail)
                .build();
            let _ = el.post_message(gst::message::Element::builder(s).src(&el).build());
        }
    }
}
