// SPDX-License-Identifier: MPL-2.0
//! `vigilsink`: the element. The streaming thread only queues (or drops, or waits for room,
//! as `leaky` says); the consumer runs on the worker (see `consumer.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use vigil_core::{Phase, RunOutcome, WorkerConfig, WorkerError, WorkerHandle};

use super::consumer::{Buffering, Callback, Consumer, Counters, Item, PanicPolicy, Target};

/// Writes to a FIFO, a socket or a device are not seekable.
fn is_seekable_target(path: &std::path::Path) -> bool {
    // A file that does not exist yet is created as a regular file.
    std::fs::metadata(path).map_or(true, |m| m.is_file())
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilsink",
        gst::DebugColorFlags::empty(),
        Some("vigil sink with a watched consumer"),
    )
});

const WHAT_FILE: &str = "the file consumer";
const WHAT_APP: &str = "the application consumer";

const DEFAULT_MAX_BUFFERS: u32 = 16;
const DEFAULT_MAX_BYTES: u64 = 0;
const DEFAULT_MAX_TIME: u64 = 0;
const DEFAULT_LEAKY: Leaky = Leaky::Auto;
const DEFAULT_BACKPRESSURE_INTERVAL: u32 = 1000;
const DEFAULT_ON_CONSUMER_PANIC: OnConsumerPanic = OnConsumerPanic::Error;
const DEFAULT_WATCHDOG_TIMEOUT: u32 = 5000;
const DEFAULT_FSYNC: bool = false;
/// In lossless mode to a file, buffers smaller than this are gathered on the streaming thread
/// and queued together, up to `GATHER_BYTES` per queue entry: a hand-over per buffer costs more
/// than writing it (30000 buffers of 1920 B).
const GATHER_BELOW: u64 = 64 * 1024;
/// See `GATHER_BELOW`.
const GATHER_BYTES: usize = 256 * 1024;
/// Name of the element message announcing drops.
pub const BACKPRESSURE_MESSAGE: &str = "vigil-sink-backpressure";

/// What to do with a buffer when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilSinkLeaky")]
pub enum Leaky {
    /// Drop the incoming buffer: upstream is never held.
    #[enum_value(
        name = "Drop the incoming buffer (upstream is never held)",
        nick = "drop-new"
    )]
    DropNew = 0,
    /// Drop the oldest queued buffer.
    #[enum_value(name = "Drop the oldest queued buffer", nick = "drop-old")]
    DropOld = 1,
    /// Wait for room: nothing is dropped and the backpressure reaches upstream.
    #[enum_value(name = "Wait for room (backpressure reaches upstream)", nick = "block")]
    Block = 2,
    /// `block` when upstream is not live (lossless, like `filesink`), `drop-new` when it is
    /// (a live pipeline is never held): decided from the latency query at the first buffer.
    #[enum_value(
        name = "block when upstream is not live, drop-new when it is",
        nick = "auto"
    )]
    Auto = 3,
}

/// What a panic in a Rust consumer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilSinkOnConsumerPanic")]
pub enum OnConsumerPanic {
    /// Post an ERROR (reason panicked) and stop.
    #[enum_value(name = "Post an ERROR and stop", nick = "error")]
    Error = 0,
    /// Post a WARNING, count it, drop that sample and go on.
    #[enum_value(name = "Post a WARNING, drop the sample and go on", nick = "drop")]
    Drop = 1,
}

/// How bytes for a file are held before a `write`, as `filesink`'s `buffer-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(i32)]
#[enum_type(name = "VigilSinkBufferMode")]
pub enum BufferMode {
    /// Small buffers gathered up to 256 KiB (written whenever the queue is empty).
    #[enum_value(
        name = "Default: small buffers gathered up to 256 KiB, written when the queue is empty",
        nick = "default"
    )]
    Default = -1,
    /// Gathered up to `buffer-size`.
    #[enum_value(name = "Fully buffered, up to buffer-size", nick = "full")]
    Full = 0,
    /// Gathered up to `buffer-size`; a buffer holding a newline is written at once.
    #[enum_value(
        name = "Line buffered: a buffer holding a newline is written at once",
        nick = "line"
    )]
    Line = 1,
    /// Every buffer written as it comes.
    #[enum_value(
        name = "Unbuffered: every buffer is written as it comes",
        nick = "unbuffered"
    )]
    Unbuffered = 2,
}

const DEFAULT_BUFFER_SIZE: u32 = 64 * 1024;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    fsync: bool,
    append: bool,
    o_sync: bool,
    buffer_mode: BufferMode,
    buffer_size: u32,
    max_transient_error_timeout: i32,
    max_buffers: u32,
    max_bytes: u64,
    max_time: u64,
    leaky: Leaky,
    backpressure_interval: u32,
    on_consumer_panic: OnConsumerPanic,
    watchdog_timeout: u32,
    #[cfg(feature = "fault-injection")]
    fault_injection: String,
}

impl Settings {
    /// How the file consumer holds bytes before a write.
    fn buffering(&self) -> Buffering {
        let size = self.buffer_size as usize;
        match self.buffer_mode {
            BufferMode::Default => Buffering::DEFAULT,
            BufferMode::Full => Buffering {
                limit: size,
                line: false,
            },
            BufferMode::Line => Buffering {
                limit: size,
                line: true,
            },
            BufferMode::Unbuffered => Buffering {
                limit: 0,
                line: false,
            },
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            location: None,
            fsync: DEFAULT_FSYNC,
            append: false,
            o_sync: false,
            buffer_mode: BufferMode::Default,
            buffer_size: DEFAULT_BUFFER_SIZE,
            max_transient_error_timeout: 0,
            max_buffers: DEFAULT_MAX_BUFFERS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_time: DEFAULT_MAX_TIME,
            leaky: DEFAULT_LEAKY,
            backpressure_interval: DEFAULT_BACKPRESSURE_INTERVAL,
            on_consumer_panic: DEFAULT_ON_CONSUMER_PANIC,
            watchdog_timeout: DEFAULT_WATCHDOG_TIMEOUT,
            #[cfg(feature = "fault-injection")]
            fault_injection: String::new(),
        }
    }
}

/// Counts drops and decides when to say so: the first drop of an episode at once, then at most
/// one message per interval, and the remainder when the pressure ends (a whole interval of
/// buffers queued without a drop), at EOS and at stop. The counts of the messages add up to
/// the drops.
#[derive(Debug, Default)]
struct Backpressure {
    unreported: u64,
    last_post: Option<Instant>,
    last_drop: Option<Instant>,
    in_pressure: bool,
}

impl Backpressure {
    /// A drop: returns the count to post now, if any.
    fn on_drop(&mut self, interval: Duration) -> Option<(u64, &'static str)> {
        self.unreported += 1;
        self.last_drop = Some(Instant::now());
        let first = !self.in_pressure;
        self.in_pressure = true;
        let due = self.last_post.is_none_or(|t| t.elapsed() >= interval);
        if first || due {
            self.last_post = Some(Instant::now());
            Some((
                std::mem::take(&mut self.unreported),
                if first { "start" } else { "ongoing" },
            ))
        } else {
            None
        }
    }

    /// A buffer was queued: the pressure is over once no drop happened for an interval.
    fn on_queued(&mut self, interval: Duration) -> Option<(u64, &'static str)> {
        if !self.in_pressure || self.last_drop.is_some_and(|t| t.elapsed() < interval) {
            return None;
        }
        self.take_remainder("end")
    }

    fn take_remainder(&mut self, why: &'static str) -> Option<(u64, &'static str)> {
        self.in_pressure = false;
        (self.unreported > 0).then(|| {
            self.last_post = Some(Instant::now());
            (std::mem::take(&mut self.unreported), why)
        })
    }
}

type Worker = WorkerHandle<Consumer, ()>;

struct State {
    worker: Worker,
    what: &'static str,
    backpressure: Backpressure,
    settings: Settings,
    /// Running time of the newest queued buffer (for `max-time`).
    newest_running_time: Option<gst::ClockTime>,
    /// The policy in use (`auto` resolved at the first buffer of the run).
    leaky: Option<Leaky>,
    /// Drops already summarised in a WARNING (at an earlier EOS).
    drops_reported: u64,
    /// Small buffers for a file in lossless mode, gathered before they are queued.
    gathered: Vec<u8>,
    /// How many buffers `gathered` holds.
    gathered_buffers: u64,
}

pub struct VigilSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    counters: Mutex<Arc<Counters>>,
    callback: Mutex<Option<Arc<Mutex<Callback>>>>,
    /// Set by `unlock`: a render waiting for room returns at once.
    interrupt: Arc<AtomicBool>,
    /// The `leaky` policy in use (for `stats`): `auto` until the first buffer decides it.
    leaky_in_use: Mutex<Leaky>,
    /// Between `start` and `stop` (READY and up): the location is in use.
    file_open: AtomicBool,
    /// The consumer was abandoned (or panicked) in a run: a later run's first failure reports
    /// it as its ERROR (until NULL starts a new consumer).
    abandoned_at_end_of_run: Mutex<Option<RunOutcome>>,
    /// This run has posted its failure already.
    failure_reported_in_run: AtomicBool,
}

impl Default for VigilSink {
    fn default() -> Self {
        Self {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            counters: Mutex::new(Arc::new(Counters::default())),
            callback: Mutex::new(None),
            interrupt: Arc::new(AtomicBool::new(false)),
            leaky_in_use: Mutex::new(DEFAULT_LEAKY),
            file_open: AtomicBool::new(false),
            abandoned_at_end_of_run: Mutex::new(None),
            failure_reported_in_run: AtomicBool::new(false),
        }
    }
}

impl VigilSink {
    pub(super) fn set_consumer(&self, callback: Callback) {
        *self.callback.lock().unwrap() = Some(Arc::new(Mutex::new(callback)));
    }

    fn element(&self) -> gst::Element {
        self.obj().clone().upcast()
    }

    fn post_backpressure(&self, dropped: u64, pressure: &str, queued: usize) {
        let total = self
            .counters
            .lock()
            .unwrap()
            .dropped
            .load(Ordering::Relaxed);
        // The policy in use (`auto` resolved), as `stats` says it.
        let leaky = *self.leaky_in_use.lock().unwrap();
        let s = gst::Structure::builder(BACKPRESSURE_MESSAGE)
            .field("dropped", dropped)
            .field("total-dropped", total)
            .field("queued", queued as u32)
            .field("pressure", pressure)
            .field("leaky", leaky)
            .build();
        gst::debug!(CAT, imp = self, "backpressure: {s}");
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    fn stats(&self) -> gst::Structure {
        // From the counters only: never waits for a streaming thread holding the state.
        let c = self.counters.lock().unwrap().clone();
        let calls = c.render_calls.load(Ordering::Relaxed);
        let leaky = *self.leaky_in_use.lock().unwrap();
        gst::Structure::builder("vigil-sink-stats")
            .field("rendered", c.rendered.load(Ordering::Relaxed))
            .field("dropped", c.dropped.load(Ordering::Relaxed))
            .field("dropped-bytes", c.dropped_bytes.load(Ordering::Relaxed))
            .field("discarded", c.discarded.load(Ordering::Relaxed))
            .field("discarded-bytes", c.discarded_bytes.load(Ordering::Relaxed))
            .field("queued", c.queued_items.load(Ordering::Relaxed))
            .field("panics", c.panics.load(Ordering::Relaxed))
            .field("abandoned", c.abandoned.load(Ordering::Relaxed))
            .field("bytes-written", c.bytes_written.load(Ordering::Relaxed))
            .field("leaky", leaky)
            .field("render-max-us", c.render_max_us.load(Ordering::Relaxed))
            .field(
                "render-mean-us",
                c.render_total_us
                    .load(Ordering::Relaxed)
                    .checked_div(calls)
                    .unwrap_or(0),
            )
            .build()
    }

    /// Resolves `leaky=auto` for this run: `block` unless upstream says it is live.
    fn resolve_leaky(&self, configured: Leaky) -> Leaky {
        if configured != Leaky::Auto {
            return configured;
        }
        let pad = self.obj().static_pad("sink").unwrap();
        let mut q = gst::query::Latency::new();
        let live = pad.peer_query(&mut q) && q.result().0;
        // Only raw frames can be dropped one by one: a dropped piece of an encoded or muxed
        // stream (a live recording through a muxer) corrupts everything after it, so those
        // are never dropped, live or not.
        let raw = pad.current_caps().is_some_and(|caps| {
            caps.structure(0)
                .is_some_and(|s| s.name().ends_with("/x-raw"))
        });
        let mode = if live && raw {
            Leaky::DropNew
        } else {
            Leaky::Block
        };
        gst::debug!(
            CAT,
            imp = self,
            "leaky=auto: upstream live {live}, raw {raw}, using {mode:?}"
        );
        mode
    }

    /// Posts what a worker failure needs and gives the flow return.
    fn fail(&self, what: &str, e: WorkerError) -> gst::FlowError {
        if matches!(e, WorkerError::AlreadyFailed)
            && !self.failure_reported_in_run.swap(true, Ordering::SeqCst)
        {
            // The consumer was abandoned in an earlier run (reported then): this run cannot
            // write anything, and its first failure says why, with the watchdog details.
            let earlier = self.abandoned_at_end_of_run.lock().unwrap().clone();
            if let Some(outcome) = earlier {
                return vigil_core::report_outcome(&self.element(), what, outcome)
                    .err()
                    .unwrap_or(gst::FlowError::Error);
            }
            // Never a silent flow error.
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ["the {} is not running: an earlier failure stopped it", what]
            );
            return gst::FlowError::Error;
        }
        if let WorkerError::Failed(outcome) = &e {
            // Kept for a later run of the same consumer (see above).
            *self.abandoned_at_end_of_run.lock().unwrap() = Some(outcome.clone());
            self.failure_reported_in_run.store(true, Ordering::SeqCst);
        }
        if !matches!(e, WorkerError::Interrupted) {
            // Whatever this failure is, it is posted now: nothing more in this run.
            self.failure_reported_in_run.store(true, Ordering::SeqCst);
        }
        if let WorkerError::Failed(RunOutcome::WatchdogAbandoned(_)) = &e {
            self.counters
                .lock()
                .unwrap()
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
        }
        e.report(&self.element(), what)
    }

    fn full(&self, state: &State) -> bool {
        let c = self.counters.lock().unwrap().clone();
        let s = &state.settings;
        let queued = c.queued_items.load(Ordering::Relaxed) as usize;
        if queued >= s.max_buffers as usize {
            return true;
        }
        if s.max_bytes > 0 && queued > 0 && c.queued_bytes.load(Ordering::Relaxed) >= s.max_bytes {
            return true;
        }
        if s.max_time > 0
            && queued > 0
            && let Some(newest) = state.newest_running_time
        {
            let consumer = c.consumer_running_time.load(Ordering::Relaxed);
            if newest.nseconds().saturating_sub(consumer) >= s.max_time {
                return true;
            }
        }
        false
    }

    fn record_render_time(&self, started: Instant) {
        let us = started.elapsed().as_micros() as u64;
        let c = self.counters.lock().unwrap().clone();
        c.render_calls.fetch_add(1, Ordering::Relaxed);
        c.render_total_us.fetch_add(us, Ordering::Relaxed);
        c.render_max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn render_sample(
        &self,
        sample: gst::Sample,
        size: u64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let counters = self.counters.lock().unwrap().clone();
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let what = state.what;
        let interval = Duration::from_millis(u64::from(state.settings.backpressure_interval));
        let running_time = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .zip(sample.buffer().and_then(|b| b.pts()))
            .and_then(|(seg, pts)| seg.to_running_time(pts));
        let leaky = match state.leaky {
            Some(l) => l,
            None => {
                let l = self.resolve_leaky(state.settings.leaky);
                state.leaky = Some(l);
                *self.leaky_in_use.lock().unwrap() = l;
                l
            }
        };
        // Not with a time bound: gathered bytes carry no running time.
        let buffering = state.settings.buffering();
        let gather = matches!(leaky, Leaky::Block | Leaky::Auto)
            && what == WHAT_FILE
            && size < GATHER_BELOW
            && buffering.limit > 0
            && state.settings.max_time == 0;
        if gather {
            let limit = buffering.limit.min(GATHER_BYTES);
            let mut newline = false;
            if let Some(buffer) = sample.buffer()
                && let Ok(map) = buffer.map_readable()
            {
                if state.gathered.capacity() == 0 {
                    state.gathered.reserve_exact(limit + GATHER_BELOW as usize);
                }
                newline = buffering.line && map.contains(&b'\n');
                state.gathered.extend_from_slice(&map);
                state.gathered_buffers += 1;
            }
            if state.gathered.len() < limit && !newline {
                return Ok(gst::FlowSuccess::Ok);
            }
            let r = self.queue_gathered(state, &counters);
            drop(guard);
            return r
                .map(|_| gst::FlowSuccess::Ok)
                .map_err(|e| self.fail(what, e));
        }
        // Order: what was gathered goes first.
        if let Err(e) = self.queue_gathered(state, &counters) {
            drop(guard);
            return Err(self.fail(what, e));
        }
        let item = Item::Sample { sample, size };
        let post;
        match leaky {
            Leaky::Block | Leaky::Auto => {
                // Waits for room without polling: woken by the consumer's progress, timed,
                // interruptible (unlock, flush) and under the watchdog.
                let s = state.settings.clone();
                let c = counters.clone();
                let room = move || {
                    // The bytes counted include this buffer's own.
                    if s.max_bytes > 0
                        && c.queued_bytes.load(Ordering::Relaxed).saturating_sub(size)
                            >= s.max_bytes
                    {
                        return false;
                    }
                    if s.max_time > 0
                        && let Some(rt) = running_time
                    {
                        let consumer = c.consumer_running_time.load(Ordering::Relaxed);
                        if rt.nseconds().saturating_sub(consumer) >= s.max_time {
                            return false;
                        }
                    }
                    true
                };
                counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
                counters.queued_items.fetch_add(1, Ordering::Relaxed);
                let max = state.settings.max_buffers as usize;
                if let Err(e) = state.worker.submit_when_room(item, max, room) {
                    counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                    let _ = counters.queued_items.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |n| n.checked_sub(1),
                    );
                    drop(guard);
                    return Err(self.fail(what, e));
                }
                state.newest_running_time = running_time.or(state.newest_running_time);
                return Ok(gst::FlowSuccess::Ok);
            }
            Leaky::DropNew | Leaky::DropOld => {
                if let Err(e) = state.worker.poll_health(Phase::Streaming) {
                    drop(guard);
                    return Err(self.fail(what, e));
                }
                let mut dropped: Option<(u64, Option<gst::ClockTime>)> = None;
                let mut item = Some(item);
                if self.full(state) {
                    if leaky == Leaky::DropNew {
                        dropped = Some((size, running_time));
                        item = None;
                    } else if let Some(old) = state.worker.drop_oldest_matching(Item::droppable) {
                        counters
                            .queued_bytes
                            .fetch_sub(old.size(), Ordering::Relaxed);
                        let _ = counters.queued_items.fetch_update(
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                            |n| n.checked_sub(1),
                        );
                        let rt = match &old {
                            Item::Sample { sample, .. } => sample
                                .segment()
                                .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                                .zip(sample.buffer().and_then(|b| b.pts()))
                                .and_then(|(seg, pts)| seg.to_running_time(pts)),
                            Item::Seek(_) | Item::Bytes { .. } => None,
                        };
                        dropped = Some((old.size(), rt));
                    }
                }
                if let Some(item) = item {
                    counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
                    counters.queued_items.fetch_add(1, Ordering::Relaxed);
                    match state.worker.try_submit(item) {
                        Ok(Ok(())) => {
                            state.newest_running_time = running_time.or(state.newest_running_time);
                        }
                        Ok(Err(item)) => {
                            // The queue filled up under us: this one is dropped after all.
                            counters
                                .queued_bytes
                                .fetch_sub(item.size(), Ordering::Relaxed);
                            let _ = counters.queued_items.fetch_update(
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                                |n| n.checked_sub(1),
                            );
                            dropped = Some((size, running_time));
                        }
                        Err(e) => {
                            counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                            let _ = counters.queued_items.fetch_update(
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                                |n| n.checked_sub(1),
                            );
                            drop(guard);
                            return Err(self.fail(what, e));
                        }
                    }
                }
                if let Some((bytes, rt)) = dropped {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    counters.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
                    if let Some(rt) = rt {
                        let ns = rt.nseconds();
                        let _ = counters.first_drop_ns.compare_exchange(
                            0,
                            ns.max(1),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        counters.last_drop_ns.fetch_max(ns, Ordering::Relaxed);
                    }
                    post = state.backpressure.on_drop(interval);
                } else {
                    post = state.backpressure.on_queued(interval);
                }
            }
        }
        let queued = counters.queued_items.load(Ordering::Relaxed) as usize;
        drop(guard);
        if let Some((n, pressure)) = post {
            self.post_backpressure(n, pressure, queued);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Ends a run without EOS (PAUSED to READY, or a stop): discards what is still queued,
    /// counting it and saying so, and lets the consumer finish what it holds.
    fn end_run(&self) {
        let counters = self.counters.lock().unwrap().clone();
        let (what, discarded, outcome) = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return;
            };
            let mut discarded = state.worker.discard_queued();
            if !state.gathered.is_empty() {
                discarded.push(Item::Bytes {
                    data: std::mem::take(&mut state.gathered),
                    buffers: std::mem::take(&mut state.gathered_buffers),
                });
            }
            let outcome = state.worker.settle();
            state.leaky = None;
            state.newest_running_time = None;
            (state.what, discarded, outcome)
        };
        counters.queued_items.store(0, Ordering::Relaxed);
        counters.queued_bytes.store(0, Ordering::Relaxed);
        self.announce_discarded(&counters, &discarded);
        if outcome != RunOutcome::Completed {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            *self.abandoned_at_end_of_run.lock().unwrap() = Some(outcome.clone());
        }
        vigil_core::report_teardown(&self.element(), what, outcome);
    }

    fn announce_discarded(&self, counters: &Counters, discarded: &[Item]) {
        let n: u64 = discarded.iter().map(|i| i.buffers()).sum();
        if n == 0 {
            return;
        }
        let bytes: u64 = discarded.iter().map(|i| i.size()).sum();
        counters.discarded.fetch_add(n, Ordering::Relaxed);
        counters.discarded_bytes.fetch_add(bytes, Ordering::Relaxed);
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Write,
            ("stopped without EOS: {} queued buffer(s) ({} bytes) were discarded and not written", n, bytes),
            details: gst::Structure::builder("vigil-sink-loss")
                .field("discarded", n)
                .field("discarded-bytes", bytes)
                .build()
        );
    }

    /// Queues what was gathered (waiting for room, as lossless mode does).
    fn queue_gathered(
        &self,
        state: &mut State,
        counters: &Arc<Counters>,
    ) -> Result<(), WorkerError> {
        if state.gathered.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut state.gathered);
        let buffers = std::mem::take(&mut state.gathered_buffers);
        let size = data.len() as u64;
        let max_bytes = state.settings.max_bytes;
        let c = counters.clone();
        let room = move || {
            max_bytes == 0
                || c.queued_bytes.load(Ordering::Relaxed).saturating_sub(size) < max_bytes
        };
        counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
        counters.queued_items.fetch_add(1, Ordering::Relaxed);
        let max = state.settings.max_buffers as usize;
        let r = state
            .worker
            .submit_when_room(Item::Bytes { data, buffers }, max, room);
        if r.is_err() {
            counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            let _ = counters
                .queued_items
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        r
    }

    /// A run that dropped buffers says so before its EOS: how many, how many bytes, and the
    /// running time they span.
    fn warn_about_drops(&self) {
        let counters = self.counters.lock().unwrap().clone();
        let dropped = counters.dropped.load(Ordering::Relaxed);
        let reported = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return;
            };
            std::mem::replace(&mut state.drops_reported, dropped)
        };
        let n = dropped.saturating_sub(reported);
        if n == 0 {
            return;
        }
        let bytes = counters.dropped_bytes.load(Ordering::Relaxed);
        let first = counters.first_drop_ns.load(Ordering::Relaxed);
        let last = counters.last_drop_ns.load(Ordering::Relaxed);
        let span = if first > 0 {
            format!(
                " between running time {} and {}",
                gst::ClockTime::from_nseconds(first),
                gst::ClockTime::from_nseconds(last)
            )
        } else {
            String::new()
        };
        gst::element_imp_warning!(
            self,
            gst::ResourceError::Write,
            ("{} buffer(s) ({} bytes) were dropped because the queue was full (leaky: the consumer did not keep up with upstream){}: the output is incomplete", n, bytes, span),
            details: gst::Structure::builder("vigil-sink-loss")
                .field("dropped", n)
                .field("dropped-bytes", bytes)
                .build()
        );
    }

    /// Waits for the consumer to take everything and, for a file, to sync it.
    fn drain(&self) -> Option<(RunOutcome, &'static str)> {
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut()?;
        let what = state.what;
        let remainder = state.backpressure.take_remainder("eos");
        let queued = state.worker.queued();
        if let Some((n, p)) = remainder {
            drop(guard);
            self.post_backpressure(n, p, queued);
            guard = self.state.lock().unwrap();
        }
        let state = guard.as_mut()?;
        let counters = self.counters.lock().unwrap().clone();
        if let Err(e) = self.queue_gathered(state, &counters) {
            drop(guard);
            let _ = self.fail(what, e);
            return None;
        }
        match state.worker.drain(|()| Ok::<_, ()>(())) {
            Ok(Ok(outcome)) => {
                if outcome != RunOutcome::Completed {
                    self.counters
                        .lock()
                        .unwrap()
                        .abandoned
                        .fetch_add(1, Ordering::Relaxed);
                    // Reported by the EOS handler; kept for a later run of this consumer.
                    *self.abandoned_at_end_of_run.lock().unwrap() = Some(outcome.clone());
                    self.failure_reported_in_run.store(true, Ordering::SeqCst);
                }
                Some((outcome, what))
            }
            Ok(Err(e)) => {
                drop(guard);
                let _ = self.fail(what, e);
                None
            }
            Err(()) => None,
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VigilSink {
    const NAME: &'static str = "VigilSink";
    type Type = super::VigilSink;
    type ParentType = gst_base::BaseSink;
    type Interfaces = (gst::URIHandler,);
}

impl URIHandlerImpl for VigilSink {
    const URI_TYPE: gst::URIType = gst::URIType::Sink;

    fn protocols() -> &'static [&'static str] {
        &["file"]
    }

    fn uri(&self) -> Option<String> {
        let location = self.settings.lock().unwrap().location.clone()?;
        let path = if location.is_absolute() {
            location
        } else {
            std::env::current_dir().ok()?.join(location)
        };
        glib::filename_to_uri(&path, None)
            .ok()
            .map(|u| u.to_string())
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        if self.file_open.load(Ordering::SeqCst) {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "the URI of vigilsink cannot change while the file is open",
            ));
        }
        let (path, host) = glib::filename_from_uri(uri).map_err(|e| {
            glib::Error::new(
                gst::URIError::BadUri,
                &format!("'{uri}' is not a local file URI: {e}"),
            )
        })?;
        // A host names another machine: writing the path here would write the wrong file
        // (`filesink` refuses it too).
        if let Some(host) = host.filter(|h| !h.is_empty() && h.as_str() != "localhost") {
            return Err(glib::Error::new(
                gst::URIError::BadUri,
                &format!(
                    "'{uri}' names the host '{host}': vigilsink writes local files only (file:///path or file://localhost/path)"
                ),
            ));
        }
        self.settings.lock().unwrap().location = Some(path);
        Ok(())
    }
}

impl ObjectImpl for VigilSink {
    fn constructed(&self) {
        self.parent_constructed();
        // As filesink: writing a file is not paced by the clock unless asked (`sync=true`).
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            #[allow(unused_mut)]
            let mut props = vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("File to write to, opened and written on the worker thread; unset: the application consumes (new-sample signal, Rust callback)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("fsync")
                    .nick("fsync at EOS")
                    .blurb("Flush the file to storage at EOS, before the EOS message")
                    .default_value(DEFAULT_FSYNC)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("append")
                    .nick("Append")
                    .blurb("Append to the file instead of truncating it (as filesink); the file is then not seekable, and a flushing seek does not truncate it")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("o-sync")
                    .nick("Synchronous IO")
                    .blurb("Open the file with O_SYNC, so each write reaches storage before it returns (as filesink)")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("buffer-mode", BufferMode::Default)
                    .nick("Buffering mode")
                    .blurb("How bytes for the file are held before a write (as filesink): default gathers small buffers up to 256 KiB, full and line up to buffer-size (line writes a buffer holding a newline at once), unbuffered writes every buffer as it comes; whatever is held is written as soon as the queue is empty")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("buffer-size")
                    .nick("Buffer size")
                    .blurb("Bytes held before a write in buffer-mode full or line (as filesink); 0 = unbuffered")
                    .default_value(DEFAULT_BUFFER_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("max-transient-error-timeout")
                    .nick("Max transient error timeout")
                    .blurb("Milliseconds a write failing with a transient error (EACCES, as filesink, or EAGAIN) is retried before it is an ERROR; 0 = no retry")
                    .minimum(0)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-buffers")
                    .nick("Maximum buffers")
                    .blurb("Buffers queued for the consumer at most")
                    .minimum(1)
                    .maximum(1_000_000)
                    .default_value(DEFAULT_MAX_BUFFERS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bytes")
                    .nick("Maximum bytes")
                    .blurb("Bytes queued for the consumer at most, 0 = no byte bound")
                    .default_value(DEFAULT_MAX_BYTES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-time")
                    .nick("Maximum time")
                    .blurb("Running time queued for the consumer at most, in ns, 0 = no time bound")
                    .default_value(DEFAULT_MAX_TIME)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("leaky", DEFAULT_LEAKY)
                    .nick("Leaky")
                    .blurb("What a full queue does to a new buffer: drop it, drop the oldest, block upstream, or auto (block unless upstream is live, then drop-new; stats says which)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("backpressure-interval")
                    .nick("Backpressure interval")
                    .blurb("Milliseconds between vigil-sink-backpressure messages while drops go on (the first drop is announced at once)")
                    .minimum(1)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_BACKPRESSURE_INTERVAL)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("on-consumer-panic", DEFAULT_ON_CONSUMER_PANIC)
                    .nick("On consumer panic")
                    .blurb("What a panic in the Rust consumer does: post an ERROR, or post a WARNING and drop that sample")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("watchdog-timeout")
                    .nick("Watchdog timeout")
                    .blurb("Milliseconds the consumer may make no progress with buffers pending before it is abandoned and an ERROR is posted; also bounds the drain at EOS and the stop; 0 = never")
                    .minimum(0)
                    .maximum(u32::MAX)
                    .default_value(DEFAULT_WATCHDOG_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("rendered, dropped, dropped-bytes, discarded, discarded-bytes (queued and never written: a stop without EOS), queued, panics, abandoned, bytes-written, leaky (in use), render-max-us, render-mean-us")
                    .read_only()
                    .build(),
            ];
            #[cfg(feature = "fault-injection")]
            props.push(vigil_core::fault::param_spec());
            props
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                glib::subclass::Signal::builder("new-sample")
                    .param_types([gst::Sample::static_type()])
                    .return_type::<gst::FlowReturn>()
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" if self.file_open.load(Ordering::SeqCst) => {
                // As filesink: the file is open (READY and up); the getter keeps telling the
                // location in use.
                let asked = value.get::<Option<String>>().unwrap().unwrap_or_default();
                drop(s);
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "changing location to '{}' while the file is open is not supported: set it in NULL",
                        asked
                    )
                );
            }
            "location" => {
                s.location = value
                    .get::<Option<String>>()
                    .unwrap()
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
            }
            "fsync" => s.fsync = value.get().unwrap(),
            "append" => s.append = value.get().unwrap(),
            "o-sync" => s.o_sync = value.get().unwrap(),
            "buffer-mode" => s.buffer_mode = value.get().unwrap(),
            "buffer-size" => s.buffer_size = value.get().unwrap(),
            "max-transient-error-timeout" => s.max_transient_error_timeout = value.get().unwrap(),
            "max-buffers" => s.max_buffers = value.get().unwrap(),
            "max-bytes" => s.max_bytes = value.get().unwrap(),
            "max-time" => s.max_time = value.get().unwrap(),
            "leaky" => s.leaky = value.get().unwrap(),
            "backpressure-interval" => s.backpressure_interval = value.get().unwrap(),
            "on-consumer-panic" => s.on_consumer_panic = value.get().unwrap(),
            "watchdog-timeout" => s.watchdog_timeout = value.get().unwrap(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => {
                s.fault_injection = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s
                .location
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "fsync" => s.fsync.to_value(),
            "append" => s.append.to_value(),
            "o-sync" => s.o_sync.to_value(),
            "buffer-mode" => s.buffer_mode.to_value(),
            "buffer-size" => s.buffer_size.to_value(),
            "max-transient-error-timeout" => s.max_transient_error_timeout.to_value(),
            "max-buffers" => s.max_buffers.to_value(),
            "max-bytes" => s.max_bytes.to_value(),
            "max-time" => s.max_time.to_value(),
            "leaky" => s.leaky.to_value(),
            "backpressure-interval" => s.backpressure_interval.to_value(),
            "on-consumer-panic" => s.on_consumer_panic.to_value(),
            "watchdog-timeout" => s.watchdog_timeout.to_value(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => s.fault_injection.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for VigilSink {}

impl ElementImpl for VigilSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vigil sink",
                "Sink/File",
                "Hands buffers to a file or the application on a worker thread with a bounded queue: drops are announced, a wedged consumer is an ERROR, and shutdown never hangs",
                "vigil developers",
            )
        });
        Some(&*META)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.failure_reported_in_run.store(false, Ordering::SeqCst);
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            // The run ends here (GstBaseSink keeps the file open until NULL, and the bus of a
            // pipeline going to NULL drops what is posted then): what was queued and never
            // written is counted and announced now, and the consumer finishes what it holds,
            // bounded by the watchdog.
            self.end_run();
        }
        Ok(ret)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for VigilSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let callback = self.callback.lock().unwrap().clone();
        let (target, what) = match &settings.location {
            Some(path) => (
                Target::File {
                    path: path.clone(),
                    fsync: settings.fsync,
                    append: settings.append,
                    o_sync: settings.o_sync,
                    buffering: settings.buffering(),
                    transient: Duration::from_millis(
                        settings.max_transient_error_timeout.max(0) as u64
                    ),
                },
                WHAT_FILE,
            ),
            None => {
                let signal =
                    glib::subclass::SignalId::lookup("new-sample", Self::Type::static_type());
                let has_handler = signal.is_some_and(|id| {
                    glib::signal::signal_has_handler_pending(&*self.obj(), id, None, false)
                });
                if callback.is_none() && !has_handler {
                    return Err(gst::error_msg!(
                        gst::ResourceError::NotFound,
                        ("vigilsink has no consumer: set location, connect new-sample, or set a Rust consumer")
                    ));
                }
                (Target::App { callback }, WHAT_APP)
            }
        };
        let counters = Arc::new(Counters::default());
        *self.counters.lock().unwrap() = counters.clone();
        let mut config = WorkerConfig::new("vigil-sink", settings.watchdog_timeout);
        config.input_capacity = settings.max_buffers as usize;
        config.output_capacity = 1;
        config.interrupt = Some(self.interrupt.clone());
        #[cfg(feature = "fault-injection")]
        config
            .set_fault(&settings.fault_injection)
            .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        let policy = match settings.on_consumer_panic {
            OnConsumerPanic::Error => PanicPolicy::Fail,
            OnConsumerPanic::Drop => PanicPolicy::Drop,
        };
        let element = self.element().downgrade();
        let mut worker = Worker::spawn(config, move |_| {
            Consumer::open(target, element, counters, policy).map(|c| (c, ()))
        })
        .map_err(|e| gst::error_msg!(gst::ResourceError::Failed, ("{}", e)))?;
        // A quick failure to open is an error of the state change; an open() that blocks is
        // left to the watchdog, so the state change does not wait for it.
        let limit = Duration::from_millis(u64::from(settings.watchdog_timeout.clamp(1, 1000)) / 2);
        match worker.wait_started_within(limit) {
            Ok(_) => {}
            Err(WorkerError::Codec(e)) => {
                return Err(gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("{}", e.message)
                ));
            }
            Err(e) => {
                let _ = self.fail(what, e);
                return Err(gst::error_msg!(
                    gst::ResourceError::Failed,
                    ("{} did not start", what)
                ));
            }
        }
        self.interrupt.store(false, Ordering::SeqCst);
        self.file_open.store(true, Ordering::SeqCst);
        *self.leaky_in_use.lock().unwrap() = settings.leaky;
        *self.state.lock().unwrap() = Some(State {
            worker,
            what,
            backpressure: Backpressure::default(),
            settings,
            newest_running_time: None,
            leaky: None,
            drops_reported: 0,
            gathered: Vec::new(),
            gathered_buffers: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.file_open.store(false, Ordering::SeqCst);
        self.abandoned_at_end_of_run.lock().unwrap().take();
        let Some(mut state) = self.state.lock().unwrap().take() else {
            return Ok(());
        };
        let counters = self.counters.lock().unwrap().clone();
        let queued = counters.queued_items.load(Ordering::Relaxed) as usize;
        if let Some((n, p)) = state.backpressure.take_remainder("stop") {
            self.post_backpressure(n, p, queued);
        }
        let (outcome, mut discarded) = state.worker.shutdown_discarding();
        if !state.gathered.is_empty() {
            discarded.push(Item::Bytes {
                data: std::mem::take(&mut state.gathered),
                buffers: std::mem::take(&mut state.gathered_buffers),
            });
        }
        if outcome != RunOutcome::Completed {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        counters.queued_items.store(0, Ordering::Relaxed);
        counters.queued_bytes.store(0, Ordering::Relaxed);
        self.announce_discarded(&counters, &discarded);
        vigil_core::report_teardown(&self.element(), state.what, outcome);
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Seeking(q) = query.view_mut() {
            // Seekable in bytes for a regular file, as filesink; never for FIFOs, sockets,
            // devices or the application.
            let fmt = q.format();
            let seekable = fmt == gst::Format::Bytes && {
                let s = self.settings.lock().unwrap();
                !s.append && s.location.as_deref().is_some_and(is_seekable_target)
            };
            q.set(
                seekable,
                gst::GenericFormattedValue::new(fmt, 0),
                gst::GenericFormattedValue::new(fmt, -1),
            );
            return true;
        }
        BaseSinkImplExt::parent_query(self, query)
    }

    fn prepare(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Called before GstBaseSink prerolls or syncs. A consumer that has failed cannot take
        // this run: the buffer is refused here, before GstBaseSink waits in preroll. After an
        // ERROR a pipeline does not recover a state lost to a flushing seek, so that wait would
        // last until the application changes the state, holding the streaming thread (and an
        // application's EOS, and with it the pipeline's state lock, so a set_state from another
        // thread hangs) behind it (found by the contract test).
        let mut guard = self.state.lock().unwrap();
        if let Some(state) = guard.as_mut()
            && let Err(e) = state.worker.poll_health(vigil_core::Phase::Streaming)
        {
            let what = state.what;
            drop(guard);
            return Err(self.fail(what, e));
        }
        drop(guard);
        self.parent_prepare(buffer)
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let obj = self.obj();
        let pad = obj.sink_pad();
        let mut builder = gst::Sample::builder().buffer(buffer);
        let caps = pad.current_caps();
        if let Some(c) = caps.as_ref() {
            builder = builder.caps(c);
        }
        let segment = obj.segment();
        let sample = builder.segment(&segment).build();
        let result = self.render_sample(sample, buffer.size() as u64);
        self.record_render_time(started);
        result
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                let Some((outcome, what)) = self.drain() else {
                    // Reported already: no EOS message after a failed run.
                    return false;
                };
                // A sink has nobody downstream to finalise: a failed drain ends the run with
                // its ERROR alone. Handing the EOS to GstBaseSink would also make the
                // streaming thread wait for PLAYING in preroll, which never comes once the
                // pipeline has failed (and an application's EOS would wait behind it).
                if outcome != RunOutcome::Completed {
                    let _ = vigil_core::report_outcome(&self.element(), what, outcome);
                    return false;
                }
                self.warn_about_drops();
                return self.parent_event(event);
            }
            gst::EventView::Segment(seg) => {
                // A byte segment is a seek in the output (a muxer rewriting its headers): it is
                // queued in order with the buffers and applied on the worker.
                let segment = seg.segment();
                if segment.format() == gst::Format::Bytes {
                    let start = segment.start().value().max(0) as u64;
                    let mut guard = self.state.lock().unwrap();
                    if let Some(state) = guard.as_mut() {
                        let what = state.what;
                        let counters = self.counters.lock().unwrap().clone();
                        let r = self
                            .queue_gathered(state, &counters)
                            .and_then(|()| state.worker.submit(Item::Seek(start)));
                        if let Err(e) = r {
                            drop(guard);
                            let _ = self.fail(what, e);
                            return false;
                        }
                    }
                }
            }
            gst::EventView::FlushStop(_) => {
                let mut guard = self.state.lock().unwrap();
                if let Some(state) = guard.as_mut() {
                    let what = state.what;
                    state.newest_running_time = None;
                    let (location, append) = {
                        let s = self.settings.lock().unwrap();
                        (s.location.clone(), s.append)
                    };
                    if what == WHAT_FILE
                        && (append || !location.as_deref().is_some_and(is_seekable_target))
                    {
                        // A FIFO, a socket, a device (or a file opened to append, which a
                        // flush must not truncate): `filesink` has written every buffer it
                        // rendered before a flushing seek, so this keeps them too: what the
                        // sink accepted is written, in order, before what follows the seek.
                        drop(guard);
                        return self.parent_event(event);
                    }
                    // A regular file starts again, as `filesink` truncates it at a flushing
                    // seek (the consumer does, below); the application's queue is flushed, as
                    // `appsink`'s is. What was queued is not written or delivered.
                    state.gathered.clear();
                    state.gathered_buffers = 0;
                    let counters = self.counters.lock().unwrap().clone();
                    match state.worker.flush() {
                        Ok(outcome) => {
                            counters.queued_bytes.store(0, Ordering::Relaxed);
                            counters.queued_items.store(0, Ordering::Relaxed);
                            drop(guard);
                            if outcome != RunOutcome::Completed {
                                // Reported here; kept so that a later run of this consumer
                                // fails with the watchdog's details, not a bare flow error
                                // (found by the contract test).
                                *self.abandoned_at_end_of_run.lock().unwrap() =
                                    Some(outcome.clone());
                                self.failure_reported_in_run.store(true, Ordering::SeqCst);
                            }
                            let _ = vigil_core::report_outcome(&self.element(), what, outcome);
                        }
                        Err(e) => {
                            drop(guard);
                            let _ = self.fail(what, e);
                        }
                    }
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.store(false, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_counts_add_up_and_the_first_drop_is_immediate() {
        let mut b = Backpressure::default();
        let interval = Duration::from_millis(50);
        let mut posted = 0;
        assert_eq!(b.on_drop(interval), Some((1, "start")));
        posted += 1;
        for _ in 0..99 {
            if let Some((n, _)) = b.on_drop(interval) {
                posted += n;
            }
        }
        std::thread::sleep(interval);
        if let Some((n, why)) = b.on_drop(interval) {
            assert_eq!(why, "ongoing");
            posted += n;
        }
        b.on_drop(interval);
        assert_eq!(
            b.on_queued(interval),
            None,
            "one free slot is not the end of the pressure"
        );
        std::thread::sleep(interval);
        if let Some((n, why)) = b.on_queued(interval) {
            assert_eq!(why, "end");
            posted += n;
        }
        assert_eq!(posted, 102, "messages add up to the drops");
        assert_eq!(b.on_queued(interval), None);
    }
}
