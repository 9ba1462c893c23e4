// SPDX-License-Identifier: MPL-2.0
//! The worker thread that owns a codec (or a sink consumer) and the watchdog that guards every
//! wait on it.
//!
//! The streaming thread never calls the codec. It hands inputs to a [`WorkerHandle`], which
//! queues them (bounded) for a dedicated, named thread; results come back over a bounded
//! queue. Every wait of the handle is timed. The worker is *idle* when there is pending work
//! (a command queued and not taken, or a command being executed) and it has made no progress
//! (taken an input, produced an output, finished a command, or called
//! [`Emitter::heartbeat`]) for the watchdog timeout; then it is abandoned: told to stop,
//! detached, and whatever it owns is leaked, because it may still be inside a blocking call.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::activity::ActivityProbe;
#[cfg(feature = "fault-injection")]
use crate::fault::FaultPlan;
use crate::outcome::{FailureReport, Phase, RunOutcome};

/// How often a waiting streaming thread re-checks the watchdog and interruption.
const WAIT_SLICE: Duration = Duration::from_millis(20);
/// The bound of [`WorkerHandle::shutdown`] when the watchdog is disabled: a state change
/// never hangs, whatever the element's settings.
pub const SHUTDOWN_FALLBACK: Duration = Duration::from_secs(10);
/// How often a worker with frames in flight polls its codec while no command arrives.
const POLL_SLICE: Duration = Duration::from_millis(2);

/// A codec or library error that is not a wedge (bad parameters, corrupt data). It becomes an
/// ordinary GStreamer error with this text; it is never a watchdog event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Which kind of GStreamer error it becomes.
    pub kind: CodecErrorKind,
    /// The text for users.
    pub message: String,
}

/// The GStreamer error a [`CodecError`] is posted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecErrorKind {
    /// The library refused the configuration (`LibraryError::Settings`).
    Settings,
    /// The library failed to initialise (`LibraryError::Init`).
    Init,
    /// Encoding failed (`StreamError::Encode`).
    Encode,
    /// Decoding failed (`StreamError::Decode`).
    Decode,
    /// The input format is not supported (`StreamError::Format`).
    Format,
    /// Reading or writing a resource failed (`ResourceError::Write`).
    Write,
    /// The storage is full or over quota (`ResourceError::NoSpaceLeft`).
    NoSpaceLeft,
    /// Opening a resource failed (`ResourceError::OpenWrite`).
    OpenWrite,
}

impl CodecError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: CodecErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Posts this error on the bus of `element` as an ERROR message.
    pub fn post(&self, element: &gst::Element) {
        let m = self.message.as_str();
        match self.kind {
            CodecErrorKind::Settings => {
                gst::element_error!(element, gst::LibraryError::Settings, ("{}", m))
            }
            CodecErrorKind::Init => {
                gst::element_error!(element, gst::LibraryError::Init, ("{}", m))
            }
            CodecErrorKind::Encode => {
                gst::element_error!(element, gst::StreamError::Encode, ("{}", m))
            }
            CodecErrorKind::Decode => {
                gst::element_error!(element, gst::StreamError::Decode, ("{}", m))
            }
            CodecErrorKind::Format => {
                gst::element_error!(element, gst::StreamError::Format, ("{}", m))
            }
            CodecErrorKind::Write => {
                gst::element_error!(element, gst::ResourceError::Write, ("{}", m))
            }
            CodecErrorKind::NoSpaceLeft => {
                gst::element_error!(element, gst::ResourceError::NoSpaceLeft, ("{}", m))
            }
            CodecErrorKind::OpenWrite => {
                gst::element_error!(element, gst::ResourceError::OpenWrite, ("{}", m))
            }
        }
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

/// Why a call on a [`WorkerHandle`] did not complete.
#[derive(Debug)]
pub enum WorkerError {
    /// The watchdog abandoned the worker or the worker panicked. Report it with
    /// [`crate::report_outcome`] (or [`WorkerError::report`]): it has not been posted yet.
    Failed(RunOutcome),
    /// The codec returned an error; report it with [`CodecError::post`].
    Codec(CodecError),
    /// The failure was already returned (and reported) by an earlier call.
    AlreadyFailed,
    /// The wait was interrupted with [`WorkerHandle::interrupt`] (flushing or unlocking).
    Interrupted,
}

impl WorkerError {
    /// Posts what has not been posted yet and gives the flow return for it.
    pub fn report(self, element: &gst::Element, what: &str) -> gst::FlowError {
        match self {
            WorkerError::Failed(outcome) => crate::report_outcome(element, what, outcome)
                .err()
                .unwrap_or(gst::FlowError::Error),
            WorkerError::Codec(e) => {
                e.post(element);
                gst::FlowError::Error
            }
            WorkerError::AlreadyFailed => gst::FlowError::Error,
            WorkerError::Interrupted => gst::FlowError::Flushing,
        }
    }
}

/// The work a worker thread does. The codec (or consumer) is created on the worker by the
/// factory given to [`WorkerHandle::spawn`] and never leaves it.
pub trait Codec: Send + 'static {
    /// What the streaming thread hands in.
    type Input: Send + 'static;
    /// What comes back.
    type Output: Send + 'static;

    /// Takes one input; may emit outputs.
    fn push(
        &mut self,
        input: Self::Input,
        out: &mut Emitter<'_, Self::Output>,
    ) -> Result<(), CodecError>;

    /// Whether outputs may appear without further input (frames in flight); while true, the
    /// worker calls [`Codec::poll`] every few milliseconds when it has nothing else to do.
    fn in_flight(&self) -> bool {
        false
    }

    /// Collects outputs that are ready, without blocking.
    fn poll(&mut self, _out: &mut Emitter<'_, Self::Output>) -> Result<(), CodecError> {
        Ok(())
    }

    /// Produces every remaining output (EOS). The codec must accept input again afterwards.
    fn drain(&mut self, out: &mut Emitter<'_, Self::Output>) -> Result<(), CodecError>;

    /// Discards everything queued inside the codec (flushing seek).
    fn flush(&mut self) -> Result<(), CodecError> {
        Ok(())
    }
}

/// The answer to a serialized event an element could not handle or hand on. While the element
/// is being stopped or flushed (its interrupt flag set), the answer is "handled": GStreamer
/// deactivates an element's source pad before its sink pad, so an event that arrives in between
/// cannot be stored on the flushing source pad, and a refusal there makes upstream's push fail
/// with a flow *error* (not "flushing"), which a source reports as an ERROR ("Internal data
/// stream error") although the pipeline was only stopping. The event is dropped instead: the
/// data behind it meets the flushing pads, and a new run sends its sticky events anew.
pub fn event_answer(handled: bool, interrupt: &AtomicBool) -> bool {
    handled || interrupt.load(Ordering::SeqCst)
}

/// Keeps an element's interrupt flag (see [`WorkerConfig::interrupt`]) in step with its state:
/// set when it leaves PAUSED, so a wait on the worker returns at once and the state change
/// cannot hang; cleared when it enters PAUSED again. Call it from `change_state` before
/// chaining up.
pub fn interrupt_on_stop(flag: &AtomicBool, transition: gst::StateChange) {
    match transition {
        gst::StateChange::PausedToReady => flag.store(true, Ordering::SeqCst),
        gst::StateChange::ReadyToPaused => flag.store(false, Ordering::SeqCst),
        _ => {}
    }
}

/// Settings of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The thread name (at most 15 bytes are visible on Linux).
    pub thread_name: String,
    /// Inputs queued before [`WorkerHandle::submit`] waits.
    pub input_capacity: usize,
    /// Outputs queued before the worker waits for the streaming thread to collect them.
    pub output_capacity: usize,
    /// No progress with work pending for this long abandons the worker; `None` disables it.
    pub watchdog_timeout: Option<Duration>,
    /// The bound of every wait of a stop (shutdown, settle) when the watchdog is disabled:
    /// a state change never hangs, whatever the element's settings. [`SHUTDOWN_FALLBACK`]
    /// unless set.
    pub shutdown_fallback: Duration,
    /// A flag shared with the element: while it is set, every wait of the handle returns
    /// [`WorkerError::Interrupted`] (flushing, unlocking, stopping). `None` gives the handle a
    /// flag of its own (see [`WorkerHandle::interrupt`]).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Faults to inject around the codec calls.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<FaultPlan>,
}

impl WorkerConfig {
    /// A configuration with the given thread name and watchdog timeout in milliseconds
    /// (0 disables the watchdog), and queues of 8 in and 64 out.
    pub fn new(thread_name: impl Into<String>, watchdog_timeout_ms: u32) -> Self {
        Self {
            thread_name: thread_name.into(),
            input_capacity: 8,
            output_capacity: 64,
            watchdog_timeout: (watchdog_timeout_ms > 0)
                .then(|| Duration::from_millis(u64::from(watchdog_timeout_ms))),
            shutdown_fallback: SHUTDOWN_FALLBACK,
            interrupt: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

enum Command<I> {
    Input(I),
    Drain(u64),
    Flush(u64),
    Shutdown,
}

enum Status<I> {
    Starting,
    Running(Option<I>),
    Failed(CodecError),
    Panicked(String),
    Exited,
}

struct Inner<C: Codec, R> {
    commands: VecDeque<Command<C::Input>>,
    outputs: VecDeque<C::Output>,
    /// The worker is executing a command (or starting): work is pending.
    busy: bool,
    /// The command being executed is an input (it may never be delivered).
    busy_with_input: bool,
    completed_seq: u64,
    last_progress: Instant,
    frames_in: u64,
    frames_out: u64,
    status: Status<R>,
    /// The worker must stop as soon as it can (shutdown or abandonment).
    stop: bool,
    /// A flush with this sequence number is queued: until it completes, outputs are
    /// discarded as they come (nobody reads them; a worker draining into a full output queue
    /// would otherwise wait for ever ahead of the flush that waits for it).
    flush_seq: u64,
}

impl<C: Codec, R> Inner<C, R> {
    /// Whether outputs are discarded (a flush is queued and not completed).
    fn discarding(&self) -> bool {
        self.flush_seq > self.completed_seq
    }

    /// Queues a command. Work that becomes pending now starts the idle clock now: time spent
    /// waiting for input (an encoder holding look-ahead) is never counted as idle.
    fn enqueue(&mut self, command: Command<C::Input>) {
        if self.commands.is_empty() && !self.busy {
            self.last_progress = Instant::now();
        }
        self.commands.push_back(command);
    }
}

struct Shared<C: Codec, R> {
    inner: Mutex<Inner<C, R>>,
    /// Signals the worker: a command, room in the output queue, stop.
    to_worker: Condvar,
    /// Signals the streaming thread: progress, an output, a status change.
    to_stream: Condvar,
    output_capacity: usize,
}

impl<C: Codec, R> Shared<C, R> {
    fn lock(&self) -> MutexGuard<'_, Inner<C, R>> {
        // A panic is caught around the codec, never while the lock is held, but a poisoned
        // lock must not turn into a second panic on the streaming thread.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hands outputs from the codec to the streaming thread, recording progress.
pub struct Emitter<'a, O> {
    target: &'a dyn EmitTarget<O>,
}

trait EmitTarget<O> {
    fn emit(&self, output: O) -> bool;
    fn heartbeat(&self);
}

impl<C: Codec, R> EmitTarget<C::Output> for Shared<C, R> {
    fn emit(&self, output: C::Output) -> bool {
        let mut g = self.lock();
        while g.outputs.len() >= self.output_capacity && !g.stop && !g.discarding() {
            g = self.to_worker.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if g.stop {
            return false;
        }
        if g.discarding() {
            // Flushed away; still progress for the watchdog.
            g.last_progress = Instant::now();
            return true;
        }
        g.outputs.push_back(output);
        g.frames_out += 1;
        g.last_progress = Instant::now();
        drop(g);
        self.to_stream.notify_all();
        true
    }

    fn heartbeat(&self) {
        self.lock().last_progress = Instant::now();
        self.to_stream.notify_all();
    }
}

impl<O> Emitter<'_, O> {
    /// Queues one output for the streaming thread (waiting for room). Returns `false` when the
    /// worker is being stopped and the output was discarded.
    pub fn emit(&mut self, output: O) -> bool {
        self.target.emit(output)
    }

    /// Records progress that produced no output (a long write that advanced, say).
    pub fn heartbeat(&mut self) {
        self.target.heartbeat()
    }
}

/// Given to the factory on the worker thread.
pub struct WorkerContext {
    probe: Mutex<Option<Box<dyn ActivityProbe>>>,
}

impl WorkerContext {
    /// Registers a second source of liveness: when the watchdog finds the worker idle, it asks
    /// the probe whether the codec's own threads advanced, and if so counts that as progress.
    pub fn set_activity_probe(&self, probe: Box<dyn ActivityProbe>) {
        *self.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }
}

/// The streaming thread's side of a worker.
pub struct WorkerHandle<C: Codec, R = ()> {
    shared: Arc<Shared<C, R>>,
    context: Arc<WorkerContext>,
    thread: Option<thread::JoinHandle<()>>,
    timeout: Option<Duration>,
    /// The bound of the waits of a stop with the watchdog disabled.
    shutdown_fallback: Duration,
    input_capacity: usize,
    next_seq: u64,
    failed: bool,
    /// The watchdog gave the worker up: its thread is detached and never joined.
    abandoned: bool,
    interrupted: Arc<AtomicBool>,
    /// The last activity sample and when it was taken.
    probe_mark: Option<(u64, Instant)>,
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<C: Codec, R: Send + 'static> WorkerHandle<C, R> {
    /// Starts the worker thread; `factory` creates the codec on it and returns it with a start
    /// report `R` (a stream header, say) that [`WorkerHandle::wait_started`] returns.
    pub fn spawn<F>(config: WorkerConfig, factory: F) -> Result<Self, CodecError>
    where
        F: FnOnce(&WorkerContext) -> Result<(C, R), CodecError> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                commands: VecDeque::with_capacity(config.input_capacity),
                outputs: VecDeque::new(),
                busy: true,
                busy_with_input: false,
                completed_seq: 0,
                last_progress: Instant::now(),
                frames_in: 0,
                frames_out: 0,
                status: Status::Starting,
                stop: false,
                flush_seq: 0,
            }),
            to_worker: Condvar::new(),
            to_stream: Condvar::new(),
            output_capacity: config.output_capacity.max(1),
        });
        let context = Arc::new(WorkerContext {
            probe: Mutex::new(None),
        });
        let worker = Worker {
            shared: shared.clone(),
            #[cfg(feature = "fault-injection")]
            fault: config.fault.clone(),
        };
        let ctx = context.clone();
        let thread = thread::Builder::new()
            .name(config.thread_name.clone())
            .spawn(move || worker.run(&ctx, factory))
            .map_err(|e| {
                CodecError::new(
                    CodecErrorKind::Init,
                    format!("could not start worker thread: {e}"),
                )
            })?;
        Ok(Self {
            shared,
            context,
            thread: Some(thread),
            timeout: config.watchdog_timeout,
            shutdown_fallback: config.shutdown_fallback,
            input_capacity: config.input_capacity.max(1),
            next_seq: 0,
            failed: false,
            abandoned: false,
            interrupted: config.interrupt.clone().unwrap_or_default(),
            probe_mark: None,
        })
    }

    /// A flag that interrupts every wait of this handle while set (see
    /// [`WorkerHandle::interrupt`]); it can be set from any thread.
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupted.clone()
    }

    /// Makes current and future waits return [`WorkerError::Interrupted`] until
    /// [`WorkerHandle::resume`] (GstBaseSink `unlock`, flush-start).
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.shared.to_stream.notify_all();
    }

    /// Ends an interruption.
    pub fn resume(&self) {
        self.interrupted.store(false, Ordering::SeqCst);
    }

    /// Waits until the factory has created the codec and returns its start report.
    pub fn wait_started(&mut self) -> Result<R, WorkerError> {
        let shared = self.shared.clone();
        let g = shared.lock();
        let mut g = self.wait(g, Phase::Streaming, |i| {
            !matches!(i.status, Status::Starting)
        })?;
        match std::mem::replace(&mut g.status, Status::Running(None)) {
            Status::Running(Some(r)) => Ok(r),
            other => {
                g.status = other;
                Err(WorkerError::AlreadyFailed)
            }
        }
    }

    /// Waits at most `limit` for the factory: `Some(report)` once the codec exists, `None` if
    /// it is still being created (a slow `open()`, say; the watchdog keeps guarding it).
    pub fn wait_started_within(&mut self, limit: Duration) -> Result<Option<R>, WorkerError> {
        let shared = self.shared.clone();
        let deadline = Instant::now() + limit;
        let mut g = shared.lock();
        loop {
            g = self.wait_once(g, Phase::Streaming)?;
            if !matches!(g.status, Status::Starting) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            g = shared
                .to_stream
                .wait_timeout(g, (deadline - now).min(WAIT_SLICE))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        self.wait_started().map(Some)
    }

    /// Checks the watchdog once without waiting: a worker with pending work and no progress
    /// for the timeout is abandoned here, as in any wait.
    pub fn poll_health(&mut self, phase: Phase) -> Result<(), WorkerError> {
        let shared = self.shared.clone();
        let g = shared.lock();
        drop(self.wait_once(g, phase)?);
        Ok(())
    }

    /// Queues one input, waiting (timed) while the queue is full.
    pub fn submit(&mut self, input: C::Input) -> Result<(), WorkerError> {
        let shared = self.shared.clone();
        let g = shared.lock();
        let cap = self.input_capacity;
        let mut g = self.wait(g, Phase::Streaming, |i| i.commands.len() < cap)?;
        g.enqueue(Command::Input(input));
        drop(g);
        self.shared.to_worker.notify_all();
        Ok(())
    }

    /// Queues one input if there is room, without waiting; gives it back when the queue is
    /// full. Checks the watchdog once (phase `streaming`), so a worker that makes no progress
    /// is caught even by a caller that never waits.
    pub fn try_submit(&mut self, input: C::Input) -> Result<Result<(), C::Input>, WorkerError> {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        self.check(&mut g, Phase::Streaming)?;
        if g.commands.len() >= self.input_capacity {
            drop(self.wait_once(g, Phase::Streaming)?);
            return Ok(Err(input));
        }
        g.enqueue(Command::Input(input));
        drop(g);
        self.shared.to_worker.notify_all();
        Ok(Ok(()))
    }

    /// Queues one input once there is room: fewer than `max_inputs` queued and `room()` true
    /// (a byte or time bound the caller keeps). The wait is woken by the worker's progress
    /// (no polling), timed, interruptible and under the watchdog.
    pub fn submit_when_room(
        &mut self,
        input: C::Input,
        max_inputs: usize,
        mut room: impl FnMut() -> bool,
    ) -> Result<(), WorkerError> {
        let shared = self.shared.clone();
        let g = shared.lock();
        let cap = max_inputs.clamp(1, self.input_capacity);
        let mut g = self.wait(g, Phase::Streaming, |i| {
            let queued = i.commands.len();
            queued < cap && (queued == 0 || room())
        })?;
        g.enqueue(Command::Input(input));
        drop(g);
        self.shared.to_worker.notify_all();
        Ok(())
    }

    /// Removes every queued input the worker has not taken yet and gives them back.
    pub fn discard_queued(&mut self) -> Vec<C::Input> {
        let mut g = self.shared.lock();
        let commands = std::mem::take(&mut g.commands);
        let mut discarded = Vec::new();
        for c in commands {
            match c {
                Command::Input(i) => discarded.push(i),
                other => g.commands.push_back(other),
            }
        }
        drop(g);
        self.shared.to_worker.notify_all();
        discarded
    }

    /// Has the worker finish what it holds (a drain whose outputs are discarded) and waits
    /// for it, ignoring interruption, bounded by the watchdog (phase `shutdown`): for a state
    /// change that must not leave a consumer working behind it.
    pub fn settle(&mut self) -> RunOutcome {
        if self.failed {
            return RunOutcome::Completed;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.shared.lock().enqueue(Command::Drain(seq));
        self.shared.to_worker.notify_all();
        let shared = self.shared.clone();
        loop {
            let g = shared.lock();
            let mut g = match self.wait(g, Phase::Shutdown, |i| {
                !i.outputs.is_empty() || i.completed_seq >= seq
            }) {
                Ok(g) => g,
                Err(WorkerError::Failed(outcome)) => return outcome,
                Err(_) => return RunOutcome::Completed,
            };
            if g.outputs.pop_front().is_some() {
                drop(g);
                self.shared.to_worker.notify_all();
                continue;
            }
            return RunOutcome::Completed;
        }
    }

    /// Removes the oldest queued input that the worker has not taken yet.
    pub fn drop_oldest(&mut self) -> Option<C::Input> {
        self.drop_oldest_matching(|_| true)
    }

    /// Removes the oldest queued input, not taken yet, for which `droppable` holds.
    pub fn drop_oldest_matching(
        &mut self,
        droppable: impl Fn(&C::Input) -> bool,
    ) -> Option<C::Input> {
        let mut g = self.shared.lock();
        let pos = g
            .commands
            .iter()
            .position(|c| matches!(c, Command::Input(i) if droppable(i)))?;
        match g.commands.remove(pos) {
            Some(Command::Input(i)) => Some(i),
            _ => None,
        }
    }

    /// Takes one output if there is one, without waiting. Reports a failure of the worker.
    pub fn try_output(&mut self) -> Result<Option<C::Output>, WorkerError> {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        if let Some(o) = g.outputs.pop_front() {
            drop(g);
            self.shared.to_worker.notify_all();
            return Ok(Some(o));
        }
        self.check(&mut g, Phase::Streaming)?;
        Ok(None)
    }

    /// Waits (timed) until the worker has taken every queued input and finished it.
    pub fn wait_idle(&mut self, phase: Phase) -> Result<(), WorkerError> {
        let shared = self.shared.clone();
        let g = shared.lock();
        drop(self.wait(g, phase, |i| i.commands.is_empty() && !i.busy)?);
        Ok(())
    }

    /// Asks the codec for every remaining output and hands each to `on_output` as it comes,
    /// under the watchdog. Returns the outcome of the drain; codec errors, interruption and
    /// errors of `on_output` come back as `Err`.
    pub fn drain<E>(
        &mut self,
        mut on_output: impl FnMut(C::Output) -> Result<(), E>,
    ) -> Result<Result<RunOutcome, WorkerError>, E> {
        if self.failed {
            return Ok(Err(WorkerError::AlreadyFailed));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.shared.lock().enqueue(Command::Drain(seq));
        self.shared.to_worker.notify_all();
        let shared = self.shared.clone();
        loop {
            let g = shared.lock();
            let r = self.wait(g, Phase::Drain, |i| {
                !i.outputs.is_empty() || i.completed_seq >= seq
            });
            let mut g = match r {
                Ok(g) => g,
                Err(WorkerError::Failed(outcome)) => return Ok(Ok(outcome)),
                Err(e) => return Ok(Err(e)),
            };
            if let Some(o) = g.outputs.pop_front() {
                drop(g);
                self.shared.to_worker.notify_all();
                on_output(o)?;
                continue;
            }
            return Ok(Ok(RunOutcome::Completed));
        }
    }

    /// Discards queued inputs and outputs and has the codec flush, under the watchdog.
    pub fn flush(&mut self) -> Result<RunOutcome, WorkerError> {
        if self.failed {
            return Err(WorkerError::AlreadyFailed);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        {
            let mut g = self.shared.lock();
            g.commands.retain(|c| !matches!(c, Command::Input(_)));
            g.outputs.clear();
            g.flush_seq = seq;
            g.enqueue(Command::Flush(seq));
        }
        self.shared.to_worker.notify_all();
        let shared = self.shared.clone();
        let g = shared.lock();
        match self.wait(g, Phase::Flush, |i| i.completed_seq >= seq) {
            Ok(mut g) => {
                g.outputs.clear();
                drop(g);
                self.shared.to_worker.notify_all();
                Ok(RunOutcome::Completed)
            }
            Err(WorkerError::Failed(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        }
    }

    /// Stops the worker: queued work is discarded, the codec is dropped on the worker, and the
    /// thread is joined, all within the watchdog timeout counted from this call (interruption
    /// is ignored here; with the watchdog disabled, within [`SHUTDOWN_FALLBACK`]). Everything
    /// until the worker has exited is pending work, the codec's teardown included, and the
    /// bound is absolute (progress does not extend it): a worker that does not finish in time
    /// is abandoned (detached, what it owns leaked) and the outcome says so with phase
    /// `shutdown`. A worker that ended by itself (a codec error, a panic) is joined.
    pub fn shutdown(self) -> RunOutcome {
        self.shutdown_discarding().0
    }

    /// [`WorkerHandle::shutdown`], giving back the inputs that were queued and never taken
    /// (so a sink can count what a stop without EOS discards).
    pub fn shutdown_discarding(mut self) -> (RunOutcome, Vec<C::Input>) {
        let discarded: Vec<C::Input> = {
            let mut g = self.shared.lock();
            let commands = std::mem::take(&mut g.commands);
            g.outputs.clear();
            g.commands.push_back(Command::Shutdown);
            g.last_progress = Instant::now();
            commands
                .into_iter()
                .filter_map(|c| match c {
                    Command::Input(i) => Some(i),
                    _ => None,
                })
                .collect()
        };
        self.shared.to_worker.notify_all();
        (self.stop_worker_thread(), discarded)
    }

    fn stop_worker_thread(&mut self) -> RunOutcome {
        if self.abandoned {
            // Detached already; it was announced when it was abandoned.
            self.thread.take();
            return RunOutcome::Completed;
        }
        let timeout = self.timeout.unwrap_or(self.shutdown_fallback);
        let started = Instant::now();
        let shared = self.shared.clone();
        let mut g = shared.lock();
        loop {
            match &g.status {
                Status::Exited | Status::Failed(_) => break,
                Status::Panicked(msg) => {
                    if self.failed {
                        // Reported when it happened.
                        break;
                    }
                    let mut report = self.report(&g, Phase::Shutdown, Duration::ZERO);
                    report.panic_message = Some(msg.clone());
                    drop(g);
                    self.failed = true;
                    self.join();
                    return RunOutcome::Panicked(report);
                }
                Status::Starting | Status::Running(_) => {}
            }
            // An absolute bound: a teardown that progresses (a codec finishing its look-ahead)
            // but takes longer than the timeout is abandoned too, so the state change returns
            // in time whatever the library does.
            let waited = started.elapsed();
            if waited >= timeout {
                // How long the stop waited: the bound is absolute, so this is what the
                // message names, not the time since the last progress.
                let report = self.report(&g, Phase::Shutdown, waited);
                self.abandon(&mut g);
                return RunOutcome::WatchdogAbandoned(report);
            }
            g = shared
                .to_stream
                .wait_timeout(
                    g,
                    WAIT_SLICE
                        .min(timeout - waited)
                        .max(Duration::from_millis(1)),
                )
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        self.join();
        RunOutcome::Completed
    }

    /// Joins a worker whose status says it has finished (it only returns from its thread
    /// function after that).
    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Counters: inputs taken and outputs produced so far.
    pub fn counters(&self) -> (u64, u64) {
        let g = self.shared.lock();
        (g.frames_in, g.frames_out)
    }

    /// Inputs queued and not yet taken by the worker.
    pub fn queued(&self) -> usize {
        self.shared
            .lock()
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Input(_)))
            .count()
    }

    fn report(&self, g: &Inner<C, R>, phase: Phase, idle: Duration) -> FailureReport {
        let queued = g
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Input(_)))
            .count() as u64;
        FailureReport {
            phase,
            idle,
            frames_in: g.frames_in,
            frames_out: g.frames_out,
            undelivered: queued + u64::from(g.busy_with_input),
            panic_message: None,
        }
    }

    /// Reads the activity probe every eighth of the timeout while work is pending; a counter
    /// that moved since the previous reading is progress at the time of this reading.
    fn sample_activity(&mut self, g: &mut Inner<C, R>, timeout: Duration) {
        let every = (timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1));
        if matches!(self.probe_mark, Some((_, at)) if at.elapsed() < every) {
            return;
        }
        let probe = self.context.probe.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sample) = probe.as_ref().and_then(|p| p.sample()) else {
            return;
        };
        drop(probe);
        let now = Instant::now();
        if matches!(self.probe_mark, Some((previous, _)) if previous != sample) {
            // The library's own threads worked since the last reading.
            g.last_progress = g.last_progress.max(now);
        }
        self.probe_mark = Some((sample, now));
    }

    /// Detaches the worker: it is told to stop, its thread is never joined and what it owns
    /// stays with it (leaked if it never returns).
    fn abandon(&mut self, g: &mut Inner<C, R>) {
        g.stop = true;
        self.failed = true;
        self.abandoned = true;
        self.shared.to_worker.notify_all();
        // Dropping the JoinHandle detaches the thread.
        self.thread.take();
    }

    /// Checks the worker's status; returns an error for a failure.
    fn check(&mut self, g: &mut Inner<C, R>, phase: Phase) -> Result<(), WorkerError> {
        if self.failed {
            return Err(WorkerError::AlreadyFailed);
        }
        match &g.status {
            Status::Panicked(msg) => {
                let mut report = self.report(g, phase, Duration::ZERO);
                report.panic_message = Some(msg.clone());
                // The thread has ended (the panic was caught and reported as its last act);
                // `shutdown` joins it.
                self.failed = true;
                Err(WorkerError::Failed(RunOutcome::Panicked(report)))
            }
            Status::Failed(e) => {
                let e = e.clone();
                self.failed = true;
                Err(WorkerError::Codec(e))
            }
            _ => Ok(()),
        }
    }

    /// The watchdog's bound in `phase`: the timeout, and for the waits of a stop also with the
    /// watchdog disabled (the fallback), so that no state change waits without a bound.
    fn bound(&self, phase: Phase) -> Option<Duration> {
        match (self.timeout, phase) {
            (Some(t), _) => Some(t),
            (None, Phase::Shutdown) => Some(self.shutdown_fallback),
            (None, _) => None,
        }
    }

    /// Evaluates the watchdog once, without waiting.
    fn wait_once<'g>(
        &mut self,
        mut g: MutexGuard<'g, Inner<C, R>>,
        phase: Phase,
    ) -> Result<MutexGuard<'g, Inner<C, R>>, WorkerError> {
        self.check(&mut g, phase)?;
        let pending = g.busy || !g.commands.is_empty() || phase == Phase::Shutdown;
        if let (Some(timeout), true) = (self.bound(phase), pending) {
            self.sample_activity(&mut g, timeout);
            let idle = g.last_progress.elapsed();
            if idle >= timeout {
                let report = self.report(&g, phase, idle);
                self.abandon(&mut g);
                return Err(WorkerError::Failed(RunOutcome::WatchdogAbandoned(report)));
            }
        }
        Ok(g)
    }

    /// The one timed wait: returns when `ready` holds, or with the failure that ended it.
    fn wait<'g>(
        &mut self,
        mut g: MutexGuard<'g, Inner<C, R>>,
        phase: Phase,
        mut ready: impl FnMut(&Inner<C, R>) -> bool,
    ) -> Result<MutexGuard<'g, Inner<C, R>>, WorkerError> {
        let shared = self.shared.clone();
        loop {
            self.check(&mut g, phase)?;
            if ready(&g) {
                return Ok(g);
            }
            if matches!(g.status, Status::Exited) && phase != Phase::Shutdown {
                self.failed = true;
                return Err(WorkerError::Codec(CodecError::new(
                    CodecErrorKind::Init,
                    "the worker thread ended unexpectedly",
                )));
            }
            if phase != Phase::Shutdown && self.interrupted.load(Ordering::SeqCst) {
                return Err(WorkerError::Interrupted);
            }
            // While stopping, everything until the worker has exited (dropping the codec
            // included) is pending work: the shutdown wait is bounded like any other.
            let pending = g.busy || !g.commands.is_empty() || phase == Phase::Shutdown;
            let mut slice = WAIT_SLICE;
            if let (Some(timeout), true) = (self.bound(phase), pending) {
                self.sample_activity(&mut g, timeout);
                let idle = g.last_progress.elapsed();
                if idle >= timeout {
                    let report = self.report(&g, phase, idle);
                    self.abandon(&mut g);
                    return Err(WorkerError::Failed(RunOutcome::WatchdogAbandoned(report)));
                }
                slice = slice.min(timeout - idle);
            }
            g = shared
                .to_stream
                .wait_timeout(g, slice.max(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl<C: Codec, R> Drop for WorkerHandle<C, R> {
    fn drop(&mut self) {
        // A handle dropped without shutdown: tell the worker to stop and detach it; never
        // block here.
        let mut g = self.shared.lock();
        g.stop = true;
        g.commands.clear();
        drop(g);
        self.shared.to_worker.notify_all();
        self.thread.take();
    }
}

struct Worker<C: Codec, R> {
    shared: Arc<Shared<C, R>>,
    #[cfg(feature = "fault-injection")]
    fault: Option<FaultPlan>,
}

impl<C: Codec, R: Send + 'static> Worker<C, R> {
    fn run<F>(self, ctx: &WorkerContext, factory: F)
    where
        F: FnOnce(&WorkerContext) -> Result<(C, R), CodecError>,
    {
        let shared = self.shared.clone();
        let created = catch_unwind(AssertUnwindSafe(|| factory(ctx)));
        let mut codec = match created {
            Ok(Ok((codec, report))) => {
                let mut g = shared.lock();
                g.status = Status::Running(Some(report));
                g.busy = false;
                g.last_progress = Instant::now();
                drop(g);
                shared.to_stream.notify_all();
                codec
            }
            Ok(Err(e)) => return self.finish(Status::Failed(e)),
            Err(p) => return self.finish(Status::Panicked(panic_text(&*p))),
        };
        let result = catch_unwind(AssertUnwindSafe(|| self.serve(&mut codec)));
        match result {
            Ok(r) => {
                // The worker returned from every codec call, so nothing is in use: even after
                // an abandonment (a call that was slow, not dead) the codec can be freed.
                // Dropping the codec may block in the library: it happens here, on the
                // worker, while the streaming thread waits for `Exited` under the watchdog.
                let dropped = catch_unwind(AssertUnwindSafe(move || drop(codec)));
                let status = match (r, dropped) {
                    (_, Err(p)) => Status::Panicked(panic_text(&*p)),
                    (Err(e), _) => Status::Failed(e),
                    (Ok(()), _) => Status::Exited,
                };
                self.finish(status)
            }
            Err(p) => {
                // The codec may be inconsistent after a panic: never run its destructor.
                std::mem::forget(codec);
                self.finish(Status::Panicked(panic_text(&*p)))
            }
        }
    }

    fn finish(&self, status: Status<R>) {
        let mut g = self.shared.lock();
        g.status = status;
        g.busy = false;
        drop(g);
        self.shared.to_stream.notify_all();
    }

    fn serve(&self, codec: &mut C) -> Result<(), CodecError> {
        let shared = &*self.shared;
        let mut emitter = Emitter { target: shared };
        loop {
            let command = {
                let mut g = shared.lock();
                loop {
                    if g.stop {
                        return Ok(());
                    }
                    if let Some(c) = g.commands.pop_front() {
                        g.busy = true;
                        g.busy_with_input = matches!(c, Command::Input(_));
                        g.last_progress = Instant::now();
                        if matches!(c, Command::Input(_)) {
                            g.frames_in += 1;
                        }
                        break c;
                    }
                    if codec.in_flight() {
                        g = shared
                            .to_worker
                            .wait_timeout(g, POLL_SLICE)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                        if g.commands.is_empty() && !g.stop {
                            drop(g);
                            codec.poll(&mut emitter)?;
                            g = shared.lock();
                        }
                    } else {
                        g = shared.to_worker.wait(g).unwrap_or_else(|e| e.into_inner());
                    }
                }
            };
            shared.to_stream.notify_all();
            let done_seq = match command {
                Command::Input(input) => {
                    #[cfg(feature = "fault-injection")]
                    self.inject(Phase::Streaming);
                    codec.push(input, &mut emitter)?;
                    None
                }
                Command::Drain(seq) => {
                    #[cfg(feature = "fault-injection")]
                    self.inject(Phase::Drain);
                    codec.drain(&mut emitter)?;
                    Some(seq)
                }
                Command::Flush(seq) => {
                    #[cfg(feature = "fault-injection")]
                    self.inject(Phase::Flush);
                    codec.flush()?;
                    Some(seq)
                }
                Command::Shutdown => {
                    // Still busy: the codec is dropped next, and that is work under the
                    // watchdog too (`finish` clears `busy` once the worker has exited).
                    shared.lock().stop = true;
                    return Ok(());
                }
            };
            let mut g = shared.lock();
            g.busy = false;
            g.busy_with_input = false;
            g.last_progress = Instant::now();
            if let Some(seq) = done_seq {
                g.completed_seq = seq;
            }
            drop(g);
            shared.to_stream.notify_all();
        }
    }

    #[cfg(feature = "fault-injection")]
    fn inject(&self, phase: Phase) {
        if let Some(plan) = &self.fault {
            let frames_in = self.shared.lock().frames_in;
            plan.apply(phase, frames_in);
        }
    }
}
