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

use super::consumer::{Callback, Consumer, Counters, Item, PanicPolicy, Target};

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
const DEFAULT_LEAKY: Leaky = Leaky::DropNew;
const DEFAULT_BACKPRESSURE_INTERVAL: u32 = 1000;
const DEFAULT_ON_CONSUMER_PANIC: OnConsumerPanic = OnConsumerPanic::Error;
const DEFAULT_WATCHDOG_TIMEOUT: u32 = 5000;
const DEFAULT_FSYNC: bool = false;
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

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    fsync: bool,
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            location: None,
            fsync: DEFAULT_FSYNC,
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
}

pub struct VigilSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    counters: Mutex<Arc<Counters>>,
    callback: Mutex<Option<Arc<Mutex<Callback>>>>,
    /// Set by `unlock`: a render waiting for room returns at once.
    interrupt: Arc<AtomicBool>,
}

impl Default for VigilSink {
    fn default() -> Self {
        Self {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            counters: Mutex::new(Arc::new(Counters::default())),
            callback: Mutex::new(None),
            interrupt: Arc::new(AtomicBool::new(false)),
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
        let leaky = self.settings.lock().unwrap().leaky;
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
        let c = self.counters.lock().unwrap().clone();
        let queued = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.worker.queued())
            .unwrap_or(0);
        let calls = c.render_calls.load(Ordering::Relaxed);
        gst::Structure::builder("vigil-sink-stats")
            .field("rendered", c.rendered.load(Ordering::Relaxed))
            .field("dropped", c.dropped.load(Ordering::Relaxed))
            .field("queued", queued as u64)
            .field("panics", c.panics.load(Ordering::Relaxed))
            .field("abandoned", c.abandoned.load(Ordering::Relaxed))
            .field("bytes-written", c.bytes_written.load(Ordering::Relaxed))
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

    /// Posts what a worker failure needs and gives the flow return.
    fn fail(&self, what: &str, e: WorkerError) -> gst::FlowError {
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
        let queued = state.worker.queued();
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
        let post;
        match state.settings.leaky {
            Leaky::Block => {
                drop(guard);
                return self.render_blocking(Item { sample, size }, running_time);
            }
            Leaky::DropNew | Leaky::DropOld => {
                if let Err(e) = state.worker.poll_health(Phase::Streaming) {
                    drop(guard);
                    return Err(self.fail(what, e));
                }
                let mut dropped_one = false;
                if self.full(state) {
                    if state.settings.leaky == Leaky::DropNew {
                        dropped_one = true;
                    } else if let Some(old) = state.worker.drop_oldest() {
                        counters.queued_bytes.fetch_sub(old.size, Ordering::Relaxed);
                        dropped_one = true;
                    }
                }
                let take_new = !(dropped_one && state.settings.leaky == Leaky::DropNew);
                if take_new {
                    counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
                    match state.worker.try_submit(Item { sample, size }) {
                        Ok(Ok(())) => {
                            state.newest_running_time = running_time.or(state.newest_running_time);
                        }
                        Ok(Err(item)) => {
                            // The queue filled up under us: this one is dropped after all.
                            counters
                                .queued_bytes
                                .fetch_sub(item.size, Ordering::Relaxed);
                            dropped_one = true;
                        }
                        Err(e) => {
                            counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                            drop(guard);
                            return Err(self.fail(what, e));
                        }
                    }
                }
                if dropped_one {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    post = state.backpressure.on_drop(interval);
                } else {
                    post = state.backpressure.on_queued(interval);
                }
            }
        }
        let queued = guard.as_ref().map(|s| s.worker.queued()).unwrap_or(0);
        drop(guard);
        if let Some((n, pressure)) = post {
            self.post_backpressure(n, pressure, queued);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// `leaky=block`: waits for room (count, bytes and time bounds), interruptibly and under
    /// the watchdog; nothing is dropped and upstream is held meanwhile.
    fn render_blocking(
        &self,
        item: Item,
        running_time: Option<gst::ClockTime>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let counters = self.counters.lock().unwrap().clone();
        loop {
            if self.interrupt.load(Ordering::SeqCst) {
                return Err(gst::FlowError::Flushing);
            }
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let what = state.what;
            if !self.full(state) {
                let size = item.size;
                counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
                if let Err(e) = state.worker.submit(item) {
                    counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                    drop(guard);
                    return Err(self.fail(what, e));
                }
                state.newest_running_time = running_time.or(state.newest_running_time);
                return Ok(gst::FlowSuccess::Ok);
            }
            if let Err(e) = state.worker.poll_health(Phase::Streaming) {
                drop(guard);
                return Err(self.fail(what, e));
            }
            drop(guard);
            std::thread::sleep(Duration::from_millis(2));
        }
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
        match state.worker.drain(|()| Ok::<_, ()>(())) {
            Ok(Ok(outcome)) => {
                if outcome != RunOutcome::Completed {
                    self.counters
                        .lock()
                        .unwrap()
                        .abandoned
                        .fetch_add(1, Ordering::Relaxed);
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
}

impl ObjectImpl for VigilSink {
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
                    .blurb("What a full queue does to a new buffer: drop it, drop the oldest, or block upstream")
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
                    .blurb("rendered, dropped, queued, panics, abandoned, bytes-written, render-max-us, render-mean-us")
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
            "location" => {
                s.location = value
                    .get::<Option<String>>()
                    .unwrap()
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
            }
            "fsync" => s.fsync = value.get().unwrap(),
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
        *self.state.lock().unwrap() = Some(State {
            worker,
            what,
            backpressure: Backpressure::default(),
            settings,
            newest_running_time: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let Some(mut state) = self.state.lock().unwrap().take() else {
            return Ok(());
        };
        let queued = state.worker.queued();
        if let Some((n, p)) = state.backpressure.take_remainder("stop") {
            self.post_backpressure(n, p, queued);
        }
        let outcome = state.worker.shutdown();
        if outcome != RunOutcome::Completed {
            self.counters
                .lock()
                .unwrap()
                .abandoned
                .fetch_add(1, Ordering::Relaxed);
        }
        vigil_core::report_teardown(&self.element(), state.what, outcome);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let obj = self.obj();
        let pad = obj.static_pad("sink").unwrap();
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
                return self.parent_event(event);
            }
            gst::EventView::FlushStop(_) => {
                let mut guard = self.state.lock().unwrap();
                if let Some(state) = guard.as_mut() {
                    let what = state.what;
                    state.newest_running_time = None;
                    let counters = self.counters.lock().unwrap().clone();
                    match state.worker.flush() {
                        Ok(outcome) => {
                            counters.queued_bytes.store(0, Ordering::Relaxed);
                            drop(guard);
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
