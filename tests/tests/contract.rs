// SPDX-License-Identifier: MPL-2.0
//! The randomized contract test: drives each vigil element through random sequences of what
//! applications do (state changes to any state at any moment, EOS, flushing seeks, caps and
//! property changes, empty and one-frame streams, live and non-live sources, injected wedges
//! and panics) and checks the watchdog contract after every step:
//!
//! - every `set_state` returns within `watchdog-timeout` plus a margin;
//! - a run ends in a clean EOS with every frame delivered, or in an ERROR (a `vigil-watchdog`
//!   one when a fault was injected); never an ERROR after EOS, never a clean EOS after a fault
//!   that lost frames, never an ERROR (or a watchdog WARNING) in a run without a fault;
//! - a finite run told to end does end (EOS or ERROR), it never goes silent;
//! - the threads are back to the baseline after NULL, except after an announced abandonment;
//! - `vigilfailoversrc` never says `healthy` or `failover` while its output is filler or a
//!   repeated frame.
//!
//! Sequences come from `proptest-state-machine` and a failing one is shrunk to a minimal one.
//! The test prints its seed; `VIGIL_CONTRACT_SEED=<seed>` replays it. `VIGIL_CONTRACT_CASES`
//! sets the number of sequences per element (CI runs a bounded number), and
//! `VIGIL_CONTRACT_MINUTES` runs new seeds until the time is up (`scripts/torture.sh`).
//! `VIGIL_CONTRACT_TRACE=1` prints every sequence that passed (with `--nocapture`), to find
//! which one a seed ran before a failure.
//!
//! A test binary of its own: it counts the threads of the whole process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use vigil_tests::*;

/// The element under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Encoder,
    Decoder,
    Sink,
    Failover,
}

/// A state to go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Null,
    Ready,
    Paused,
    Playing,
}

impl Target {
    fn state(self) -> gst::State {
        match self {
            Target::Null => gst::State::Null,
            Target::Ready => gst::State::Ready,
            Target::Paused => gst::State::Paused,
            Target::Playing => gst::State::Playing,
        }
    }
}

/// How a case is set up (chosen once per sequence).
#[derive(Clone, Debug)]
struct Setup {
    kind: Kind,
    /// Frames of the source: `None` is endless (live for the encoder and the sink).
    frames: Option<u32>,
    /// `fault-injection` of the element (empty: none).
    fault: String,
    watchdog_ms: u32,
}

impl Setup {
    /// Whether the fault can make the run fail (a `slow` fault below the timeout cannot).
    fn harmful_fault(&self) -> bool {
        self.fault.starts_with("wedge") || self.fault.starts_with("panic")
    }
}

/// One step of an application.
#[derive(Clone, Debug)]
enum Op {
    SetState(Target, u64),
    Eos(u64),
    Seek(u64, u64),
    CapsChange(usize, u64),
    Property(usize, u64),
    Wait(u64),
}

const SIZES: [(u32, u32); 3] = [(160, 120), (320, 240), (192, 128)];

fn properties(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Encoder => &[
            ("target-bitrate", "500"),
            // A rate change while running drains and recreates the encoder.
            ("crf", "20"),
            ("preset", "13"),
        ],
        Kind::Decoder => &[
            ("max-errors", "-1"),
            ("max-errors", "5"),
            ("apply-grain", "false"),
        ],
        Kind::Sink => &[
            ("max-buffers", "4"),
            ("max-buffers", "64"),
            ("sync", "true"),
        ],
        Kind::Failover => &[("stall-timeout", "1500"), ("failback-delay", "0")],
    }
}

/// The reference model: the setup and the state the application last asked for.
#[derive(Clone, Debug)]
struct Model {
    setup: Setup,
    target: Target,
}

struct Contract;

fn kind_strategy() -> BoxedStrategy<Kind> {
    match std::env::var("VIGIL_CONTRACT_KIND").ok().as_deref() {
        Some("encoder") => Just(Kind::Encoder).boxed(),
        Some("decoder") => Just(Kind::Decoder).boxed(),
        Some("sink") => Just(Kind::Sink).boxed(),
        Some("failover") => Just(Kind::Failover).boxed(),
        _ => prop_oneof![
            Just(Kind::Encoder),
            Just(Kind::Decoder),
            Just(Kind::Sink),
            Just(Kind::Failover)
        ]
        .boxed(),
    }
}

fn fault_strategy(kind: Kind) -> BoxedStrategy<String> {
    if kind == Kind::Failover {
        // The failover bin has no worker of this kind to wedge.
        return Just(String::new()).boxed();
    }
    prop_oneof![
        4 => Just(String::new()),
        1 => (prop_oneof![Just("wedge"), Just("panic"), Just("slow=30")],
              prop_oneof![Just("streaming"), Just("drain"), Just("flush")],
              0u32..4)
            .prop_map(|(k, p, n)| if p == "streaming" { format!("{k}:{p}:{n}") } else { format!("{k}:{p}") }),
    ]
    .boxed()
}

impl ReferenceStateMachine for Contract {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        kind_strategy()
            .prop_flat_map(|kind| {
                let frames = match kind {
                    Kind::Failover => Just(None).boxed(),
                    Kind::Decoder => {
                        prop_oneof![Just(Some(1)), Just(Some(5)), Just(Some(40))].boxed()
                    }
                    _ => prop_oneof![
                        Just(Some(0)),
                        Just(Some(1)),
                        Just(Some(5)),
                        Just(Some(40)),
                        Just(None)
                    ]
                    .boxed(),
                };
                (Just(kind), frames, fault_strategy(kind))
            })
            .prop_map(|(kind, frames, fault)| Model {
                setup: Setup {
                    kind,
                    frames,
                    fault,
                    watchdog_ms: 1000,
                },
                target: Target::Null,
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let dwell = prop_oneof![Just(0u64), 0u64..20, 0u64..200];
        let target = prop_oneof![
            1 => Just(Target::Null),
            1 => Just(Target::Ready),
            1 => Just(Target::Paused),
            2 => Just(Target::Playing)
        ];
        let caps_ok = matches!(state.setup.kind, Kind::Encoder | Kind::Sink);
        let nprops = properties(state.setup.kind).len();
        prop_oneof![
            6 => (target, dwell.clone()).prop_map(|(t, d)| Op::SetState(t, d)),
            2 => dwell.clone().prop_map(Op::Eos),
            2 => (0u64..1500, dwell.clone()).prop_map(|(p, d)| Op::Seek(p, d)),
            (if caps_ok { 2 } else { 0 }) => (0..SIZES.len(), dwell.clone()).prop_map(|(i, d)| Op::CapsChange(i, d)),
            1 => (0..nprops, dwell.clone()).prop_map(|(i, d)| Op::Property(i, d)),
            2 => (0u64..600).prop_map(Op::Wait),
        ]
        .boxed()
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        if let Op::SetState(t, _) = op {
            state.target = *t;
        }
        state
    }
}

/// Counts what passes the element (reset by a flush) and when the failover output last showed
/// a fresh picture.
#[derive(Default)]
struct Flow {
    buffers_in: AtomicU64,
    buffers_out: AtomicU64,
    /// Bytes into the sink since the run started (not reset by a flush: a file keeps them).
    bytes_in: AtomicU64,
    flushes: AtomicU64,
    /// Failover output: when the last frame that was neither black nor a repeat was seen.
    fresh_at: Mutex<Option<Instant>>,
    last_hash: Mutex<u64>,
}

/// A message of the run, in bus order.
#[derive(Debug, Clone)]
enum Event {
    Error {
        text: String,
        watchdog: bool,
        /// The `phase` of a watchdog ERROR.
        phase: Option<String>,
    },
    Eos,
    WatchdogWarning,
    Loss,
}

/// The system under test: one pipeline with one vigil element.
struct Sut {
    setup: Setup,
    /// What the bus received, taken by `read_bus`.
    messages: Arc<Mutex<Vec<gst::Message>>>,
    pipeline: gst::Pipeline,
    element: gst::Element,
    flow: Arc<Flow>,
    output: Option<PathBuf>,
    /// What the current run (since READY -> PAUSED, or since its last flush) put on the bus.
    run: Vec<Event>,
    /// Whether the run saw a flush (seek): completeness is then counted from it.
    run_flushed: bool,
    /// A finite run was told to end (EOS sent, or a finite source started).
    state: gst::State,
    baseline_threads: usize,
    /// An abandonment (or a leaked panicked codec) was announced since the last NULL.
    announced: bool,
    /// The run (before its last flush) already failed with a watchdog ERROR.
    failed_earlier: bool,
    /// Size of the sink's file when the run started.
    file_base: u64,
    playing_since: Option<Instant>,
    /// An ERROR was posted since the last state change. GStreamer's bins then refuse to
    /// recover a lost state (`bin_handle_async_start`: "we had an error"): after a flushing
    /// seek the pipeline stays in PAUSED, its streaming thread waits in preroll and an EOS
    /// sent to it blocks until the application changes the state, as it must after an ERROR.
    errored: bool,
    /// Caps for the capsfilter, applied by its streaming thread at the next buffer.
    pending_caps: Arc<Mutex<Option<gst::Caps>>>,
    log: Vec<String>,
}

fn inputs() -> &'static (PathBuf, [PathBuf; 3], [PathBuf; 2]) {
    static INPUTS: OnceLock<(PathBuf, [PathBuf; 3], [PathBuf; 2])> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = scratch("contract-inputs");
        let av1 = |n: u32| {
            let path = dir.join(format!("av1-{n}.mkv"));
            let log = run_to_end(
                &format!(
                    "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
                     ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux ! filesink location={}",
                    path.display()
                ),
                Duration::from_secs(60),
            );
            assert!(log.errors.is_empty() && log.eos.is_some(), "{}", log.error_text());
            // IVF, read with ivfparse: static pads, so the pipeline can be played again after
            // NULL (the delayed links of a launch line to a demuxer's pads are made once).
            let ivf = path.with_extension("ivf");
            let (ok, _, err) = run_tool(
                std::process::Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&path)
                    .args(["-c", "copy", "-y"])
                    .arg(&ivf),
                Duration::from_secs(60),
            );
            assert!(ok, "ffmpeg remux: {err}");
            ivf
        };
        let raw = |name: &str, secs: u32| {
            let path = dir.join(format!("{name}.mkv"));
            let log = run_to_end(
                &format!(
                    "videotestsrc num-buffers={} pattern=ball ! video/x-raw,format=I420,width=160,height=120,framerate=15/1 \
                     ! matroskamux ! filesink location={}",
                    secs * 15,
                    path.display()
                ),
                Duration::from_secs(60),
            );
            assert!(log.errors.is_empty() && log.eos.is_some(), "{}", log.error_text());
            path
        };
        (
            dir.clone(),
            [av1(1), av1(5), av1(40)],
            [raw("primary", 2), raw("backup", 5)],
        )
    })
}

/// FNV-1a of every 7th byte of the first plane: a cheap picture identity.
fn picture_hash(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in data.iter().step_by(7) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn build(setup: &Setup) -> Sut {
    let (dir, av1, raw) = inputs();
    let wd = setup.watchdog_ms;
    let fault = fault_property(&setup.fault);
    let (w, h) = SIZES[1];
    let frames = setup
        .frames
        .map(|n| format!("num-buffers={n}"))
        .unwrap_or_else(|| "is-live=true".into());
    static CASE: AtomicU64 = AtomicU64::new(0);
    let case = CASE.fetch_add(1, Ordering::SeqCst);
    let mut output = None;
    let desc = match setup.kind {
        Kind::Encoder => format!(
            "videotestsrc {frames} pattern=ball ! capsfilter name=caps caps=video/x-raw,format=I420,width={w},height={h},framerate=30/1 \
             ! vigilsvtav1enc name=el preset=12 watchdog-timeout={wd} {fault} ! fakesink name=out sync=false"
        ),
        Kind::Decoder => {
            let file = match setup.frames {
                Some(1) => &av1[0],
                Some(5) => &av1[1],
                _ => &av1[2],
            };
            format!(
                "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=el watchdog-timeout={wd} {fault} \
                 ! fakesink name=out sync=false",
                file.display()
            )
        }
        Kind::Sink => {
            let path = dir.join(format!("sink-{}-{case}.raw", std::process::id()));
            output = Some(path.clone());
            format!(
                "videotestsrc {frames} ! capsfilter name=caps caps=video/x-raw,format=I420,width={w},height={h},framerate=30/1 \
                 ! vigilsink name=el location={} watchdog-timeout={wd} {fault}",
                path.display()
            )
        }
        Kind::Failover => "vigilfailoversrc name=el stall-timeout=1000 retry-backoff-min=200 \
             video-caps=video/x-raw,format=I420,width=160,height=120,framerate=15/1 \
             el.video ! fakesink name=out sync=false el.audio ! fakesink sync=false"
            .to_string(),
    };
    let pipeline = pipeline(&desc);
    let element = pipeline.by_name("el").expect("element");
    // Every message as it is posted: a pipeline going to NULL drops what is pending on its
    // bus, and a teardown WARNING posted on the way (PAUSED -> READY -> NULL in one call) is
    // still an announcement (an application sees it with a sync handler, or by going to READY
    // first).
    let messages: Arc<Mutex<Vec<gst::Message>>> = Arc::default();
    let m = messages.clone();
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        m.lock().unwrap().push(msg.clone());
        gst::BusSyncReply::Drop
    });
    if setup.kind == Kind::Failover {
        let uris = gst::Array::new(
            raw.iter()
                .map(|p| format!("file://{}", p.display()).to_send_value()),
        );
        element.set_property("uris", uris);
    }
    let flow = Arc::new(Flow::default());
    let sinkpad = element.static_pad("sink");
    if let Some(pad) = &sinkpad {
        let f = flow.clone();
        let encoder = setup.kind == Kind::Encoder;
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH,
            move |pad, info| {
                match &info.data {
                    // The encoder clips its input to the segment, as GstVideoEncoder does: a
                    // frame wholly outside it is not owed an output (a seek right after
                    // PLAYING can reach videotestsrc after it started, which then sends
                    // frames from 0 under a segment from the seek position).
                    Some(gst::PadProbeData::Buffer(b)) if encoder && !in_segment(pad, b) => {}
                    Some(gst::PadProbeData::Buffer(b)) => {
                        f.buffers_in.fetch_add(1, Ordering::SeqCst);
                        f.bytes_in.fetch_add(b.size() as u64, Ordering::SeqCst);
                    }
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::FlushStop => {
                        f.buffers_in.store(0, Ordering::SeqCst);
                        f.flushes.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    if let Some(out) = pipeline.by_name("out") {
        let pad = out.static_pad("sink").unwrap();
        let f = flow.clone();
        let failover = setup.kind == Kind::Failover;
        pad.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => {
                        f.buffers_out.fetch_add(1, Ordering::SeqCst);
                        if failover && let Ok(map) = b.map_readable() {
                            let luma = &map[..(160 * 120).min(map.len())];
                            let black = luma.iter().step_by(13).all(|&y| y <= 20);
                            let hash = picture_hash(luma);
                            let mut last = f.last_hash.lock().unwrap();
                            if !black && hash != *last {
                                *f.fresh_at.lock().unwrap() = Some(Instant::now());
                            }
                            *last = hash;
                        }
                    }
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::FlushStop => {
                        f.buffers_out.store(0, Ordering::SeqCst);
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    // Caps changes are applied from the streaming thread, between two buffers: a capsfilter
    // whose caps change while the source negotiates through it answers the source's caps
    // query with nothing (old caps on the way down, new ones on the way back), and the source
    // fails with not-negotiated. That is GStreamer's own race (`identity` in place of the
    // element does it too), not a behaviour of the element under test.
    let pending_caps: Arc<Mutex<Option<gst::Caps>>> = Arc::default();
    if let Some(cf) = pipeline.by_name("caps") {
        let pending = pending_caps.clone();
        let filter = cf.clone();
        cf.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if let Some(caps) = pending.lock().unwrap().take() {
                    filter.set_property("caps", caps);
                }
                gst::PadProbeReturn::Ok
            });
    }
    Sut {
        setup: setup.clone(),
        pending_caps,
        messages,
        pipeline,
        element,
        flow,
        output,
        run: Vec::new(),
        run_flushed: false,
        state: gst::State::Null,
        baseline_threads: thread_count(),
        announced: false,
        failed_earlier: false,
        file_base: 0,
        playing_since: None,
        errored: false,
        log: Vec::new(),
    }
}

/// Whether `b` overlaps the segment on `pad` (a buffer without a timestamp counts as inside).
fn in_segment(pad: &gst::Pad, b: &gst::Buffer) -> bool {
    let Some(pts) = b.pts() else { return true };
    let Some(seg) = pad.sticky_event::<gst::event::Segment>(0) else {
        return true;
    };
    let Some(seg) = seg.segment().downcast_ref::<gst::ClockTime>() else {
        return true;
    };
    // Checked: a live source's timestamp after a seek can be near the end of the range (the
    // plain add overflowed in a torture run).
    let end = b.duration().and_then(|d| pts.checked_add(d)).unwrap_or(pts);
    seg.clip(pts, end).is_some()
}

impl Sut {
    fn stop_limit(&self) -> Duration {
        match self.setup.kind {
            // Inputs, controller and output threads are joined one after another.
            Kind::Failover => Duration::from_secs(4),
            _ => Duration::from_millis(u64::from(self.setup.watchdog_ms) + 1500),
        }
    }

    fn violation(&self, what: String) -> ! {
        panic!(
            "CONTRACT VIOLATION ({:?}, frames {:?}, fault '{}'): {what}\nsteps:\n  {}",
            self.setup.kind,
            self.setup.frames,
            self.setup.fault,
            self.log.join("\n  ")
        );
    }

    /// Reads the bus; returns whether anything announced an abandonment.
    fn read_bus(&mut self) {
        let messages: Vec<gst::Message> = std::mem::take(&mut *self.messages.lock().unwrap());
        for msg in messages {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    self.errored = true;
                    let watchdog = e
                        .details()
                        .is_some_and(|d| d.name() == vigil_core_details());
                    let phase = e.details().and_then(|d| d.get::<String>("phase").ok());
                    self.run.push(Event::Error {
                        phase,
                        text: format!(
                            "{}: {} ({:?})",
                            msg.src().map(|s| s.path_string()).unwrap_or_default(),
                            e.error(),
                            e.debug()
                        ),
                        watchdog,
                    });
                }
                gst::MessageView::Warning(w) => {
                    let watchdog = w
                        .details()
                        .is_some_and(|d| d.name() == vigil_core_details());
                    if watchdog {
                        self.run.push(Event::WatchdogWarning);
                    } else {
                        // A warning that announces lost data counts as announced loss.
                        self.run.push(Event::Loss);
                    }
                }
                gst::MessageView::Eos(_) => self.run.push(Event::Eos),
                gst::MessageView::Element(e)
                    if e.structure()
                        .is_some_and(|s| s.name().starts_with("vigil-sink-backpressure")) =>
                {
                    self.run.push(Event::Loss);
                }
                _ => {}
            }
        }
    }

    fn abandoned(&self) -> bool {
        self.run.iter().any(|e| {
            matches!(
                e,
                Event::WatchdogWarning | Event::Error { watchdog: true, .. }
            )
        })
    }

    /// Checks the run so far against the contract.
    fn check_run(&mut self) {
        self.read_bus();
        let errors: Vec<&String> = self
            .run
            .iter()
            .filter_map(|e| match e {
                Event::Error { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        let harmful = self.setup.harmful_fault();
        if !harmful {
            if let Some(e) = errors.first() {
                self.violation(format!("ERROR in a run without a fault: {e}"));
            }
            if self.run.iter().any(|e| matches!(e, Event::WatchdogWarning)) {
                self.violation("watchdog WARNING in a run without a fault".into());
            }
        }
        // The first ERROR of a faulty run is the watchdog's, never a generic one first (after
        // it, and after a flush that followed it, generic flow errors are expected).
        if self
            .run
            .iter()
            .any(|e| matches!(e, Event::Error { watchdog: true, .. }))
        {
            self.failed_earlier = true;
        }
        if harmful
            && !self.failed_earlier
            && let Some(Event::Error { text, watchdog, .. }) =
                self.run.iter().find(|e| matches!(e, Event::Error { .. }))
            && !watchdog
        {
            self.violation(format!(
                "the first ERROR of a faulty run is not a watchdog ERROR: {text}"
            ));
        }
        // Never an ERROR after a clean EOS in the same run.
        if let Some(eos) = self.run.iter().position(|e| matches!(e, Event::Eos)) {
            let error_before = self.run[..eos]
                .iter()
                .any(|e| matches!(e, Event::Error { .. }));
            // A flush's own failure belongs to the seek that followed the EOS (a seek right
            // after an EOS can see the EOS message arrive after it was issued).
            if let Some(Event::Error { text, .. }) = self.run[eos..].iter().find(
                |e| matches!(e, Event::Error { phase, .. } if phase.as_deref() != Some("flush")),
            ) && !error_before
            {
                self.violation(format!("ERROR after a clean EOS: {text}"));
            }
            if !error_before {
                self.check_complete();
            }
        }
    }

    /// A clean EOS: every frame delivered (or the loss announced, for the sink).
    fn check_complete(&mut self) {
        let loss_announced = self.run.iter().any(|e| matches!(e, Event::Loss));
        let flow = &self.flow;
        match self.setup.kind {
            Kind::Encoder | Kind::Decoder => {
                let (i, o) = (
                    flow.buffers_in.load(Ordering::SeqCst),
                    flow.buffers_out.load(Ordering::SeqCst),
                );
                if i != o {
                    self.violation(format!(
                        "clean EOS with {i} frames in and {o} out since the last flush"
                    ));
                }
            }
            Kind::Sink => {
                if self.run_flushed || loss_announced {
                    return;
                }
                let path = self.output.as_ref().unwrap();
                let want = flow.bytes_in.load(Ordering::SeqCst);
                // The file stays open from READY to NULL: a run after READY -> PAUSED appends.
                let got = std::fs::metadata(path)
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .saturating_sub(self.file_base);
                if got != want {
                    self.violation(format!(
                        "clean EOS with {want} bytes into the sink and {got} on disk, no loss announced"
                    ));
                }
            }
            Kind::Failover => {}
        }
    }

    /// The failover bin never says healthy/failover while its output is filler or a repeat.
    fn check_failover_status(&mut self) {
        if self.setup.kind != Kind::Failover || self.state != gst::State::Playing {
            return;
        }
        let Some(since) = self.playing_since else {
            return;
        };
        let status = enum_nick(&self.element.property_value("status"));
        if !(status == "healthy" || status == "failover") {
            return;
        }
        let stall = Duration::from_millis(1500 + 600);
        if since.elapsed() < stall {
            return;
        }
        let fresh = *self.flow.fresh_at.lock().unwrap();
        let stale_for = fresh
            .map(|t| t.elapsed())
            .unwrap_or_else(|| since.elapsed());
        if stale_for > stall {
            self.violation(format!(
                "status {status} while the output showed no fresh picture for {stale_for:?}"
            ));
        }
    }

    /// Starts a new run record (after the element left PAUSED for READY, or a flush).
    fn new_run(&mut self, flushed: bool) {
        // An abandonment announced in the part that ends stays announced until NULL.
        self.announced |= self.abandoned();
        self.run.clear();
        if !flushed {
            self.failed_earlier = false;
        }
        self.run_flushed = flushed;
        if !flushed {
            self.flow.bytes_in.store(0, Ordering::SeqCst);
            self.flow.buffers_in.store(0, Ordering::SeqCst);
            self.flow.buffers_out.store(0, Ordering::SeqCst);
        }
    }

    /// Runs `f` on the pipeline from another thread; a call that does not return within the
    /// stop limit is a violation (an application thread would hang there), except after an
    /// ERROR posted since the last state change (`None`): GStreamer then waits for the
    /// application to change the state.
    fn bounded_unless_failed<T: Send + 'static>(
        &mut self,
        what: &str,
        f: impl FnOnce(&gst::Pipeline) -> T + Send + 'static,
    ) -> Option<T> {
        let limit = self.stop_limit();
        let p = self.pipeline.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f(&p));
        });
        match rx.recv_timeout(limit) {
            Ok(r) => Some(r),
            Err(_) => {
                self.read_bus();
                if self.errored {
                    self.log.push(format!("  -> {what} blocked after an ERROR"));
                    None
                } else {
                    self.violation(format!("{what} did not return within {limit:?}: it hung"))
                }
            }
        }
    }

    /// Sends EOS to the pipeline, as applications do when they stop a recording. GStreamer's
    /// sources wait for their streaming thread, which a sink blocks in preroll: in 1.22 an EOS
    /// sent to a PAUSED pipeline blocks the caller until PLAYING (`videotestsrc ! fakesink`
    /// does it), so it is sent only in PLAYING. A send that blocks is a violation unless the
    /// run has failed (a pipeline that posted an ERROR during its preroll never reaches
    /// PLAYING; the application then stops it, which releases the call).
    fn send_eos(&mut self) {
        // PLAYING and staying there: a change to PAUSED still in progress (current PLAYING,
        // pending PAUSED) blocks the send the same way (seed 13972066592404187993: PLAYING,
        // PAUSED, EOS at once, on a sink).
        let (_, current, pending) = self.pipeline.state(gst::ClockTime::ZERO);
        if current != gst::State::Playing || pending != gst::State::VoidPending {
            return;
        }
        let limit = self.stop_limit();
        let p = self.pipeline.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(p.send_event(gst::event::Eos::new()));
        });
        if rx.recv_timeout(limit).is_err() {
            self.read_bus();
            if !self.errored && !self.run.iter().any(|e| matches!(e, Event::Error { .. })) {
                self.violation(format!(
                    "sending EOS in PLAYING did not return within {limit:?}, and no ERROR explains it"
                ));
            }
        }
    }

    fn set_state(&mut self, target: gst::State) {
        if target >= gst::State::Paused && self.state <= gst::State::Ready {
            // A run starts: the sink's file is created anew from NULL, kept from READY.
            self.file_base = match self.state {
                gst::State::Null => 0,
                _ => self
                    .output
                    .as_ref()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .unwrap_or(0),
            };
        }
        // Errors posted so far belong to the state before; a state change starts anew.
        self.read_bus();
        self.errored = false;
        let limit = self.stop_limit();
        let p = self.pipeline.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(p.set_state(target));
        });
        let result = match rx.recv_timeout(limit) {
            Ok(r) => r,
            Err(_) => self.violation(format!(
                "set_state({target:?}) did not return within {limit:?}: a state change hung"
            )),
        };
        let took = start.elapsed();
        let before = self.state;
        if result.is_err() && target > before {
            // A refused upward change must come with its ERROR: checked with the run.
            self.log
                .push(format!("  -> {target:?} refused after {took:?}"));
        }
        // Leaving PAUSED ends the run: check it, then start a new record.
        if target <= gst::State::Ready && before >= gst::State::Paused {
            self.check_run();
            // Sticky until the next NULL: a run that left a worker behind may end at READY.
            self.announced |= self.abandoned();
            self.new_run(false);
            if target == gst::State::Null {
                let announced = std::mem::take(&mut self.announced);
                self.check_threads(announced);
            }
        }
        self.state = if result.is_ok() {
            target
        } else {
            before.min(target)
        };
        if target == gst::State::Playing && result.is_ok() {
            if self.playing_since.is_none() {
                self.playing_since = Some(Instant::now());
            }
        } else {
            self.playing_since = None;
        }
    }

    fn check_threads(&mut self, announced: bool) {
        if announced {
            // An announced abandonment may leave its threads behind.
            self.baseline_threads = thread_count();
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let limit = self.baseline_threads + 4;
        while thread_count() > limit && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let now = thread_count();
        if now > limit {
            self.violation(format!(
                "threads after NULL: {now}, baseline {} (no abandonment was announced)",
                self.baseline_threads
            ));
        }
    }

    fn dwell(&mut self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        loop {
            self.check_failover_status();
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
        self.check_run();
    }

    /// Ends the sequence: a fresh run from NULL to PLAYING, told to end, must end (EOS or
    /// ERROR) in bounded time; then NULL with the threads back.
    fn finish(mut self) {
        self.set_state(gst::State::Null);
        if self.setup.kind == Kind::Failover {
            return;
        }
        self.log
            .push("finish: PLAYING, then EOS, then wait for the end".into());
        self.set_state(gst::State::Playing);
        // Wait for PLAYING (prerolled), then tell the run to end.
        let _ = self.pipeline.state(gst::ClockTime::from_seconds(3));
        self.send_eos();
        let deadline =
            Instant::now() + Duration::from_millis(u64::from(self.setup.watchdog_ms) * 2 + 8000);
        loop {
            self.check_run();
            if self
                .run
                .iter()
                .any(|e| matches!(e, Event::Eos | Event::Error { .. }))
            {
                break;
            }
            if Instant::now() >= deadline {
                self.violation("a run told to end neither ended nor failed".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let a late second message show up before the final check.
        std::thread::sleep(Duration::from_millis(100));
        self.check_run();
        self.set_state(gst::State::Null);
        if let Some(p) = &self.output {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn vigil_core_details() -> &'static str {
    "vigil-watchdog"
}

fn enum_nick(v: &gst::glib::Value) -> String {
    gst::glib::EnumValue::from_value(v)
        .map(|(_, e)| e.nick().to_string())
        .unwrap_or_default()
}

impl StateMachineTest for Contract {
    type SystemUnderTest = Sut;
    type Reference = Contract;

    fn init_test(model: &Model) -> Sut {
        let mut sut = build(&model.setup);
        sut.log.push(format!("setup {:?}", model.setup));
        sut
    }

    fn apply(mut sut: Sut, _model: &Model, op: Op) -> Sut {
        sut.log.push(format!("{op:?}"));
        match op {
            Op::SetState(t, d) => {
                sut.set_state(t.state());
                sut.dwell(d);
            }
            Op::Eos(d) => {
                // Only in PLAYING (see `send_eos`); below PAUSED there is a second reason:
                // GStreamer 1.22 keeps an EOS sent to a stopped live source pending, and a
                // live pipeline whose first EOS is then handled slowly (by any element:
                // `identity` with a 200 ms probe does it) stays in PAUSED for ever.
                sut.send_eos();
                sut.dwell(d);
            }
            Op::Seek(pos, d) => {
                if sut.state >= gst::State::Paused {
                    // The flush starts the data of the run anew; what the flush itself posts
                    // (a wedged flush) belongs to the new part.
                    sut.check_run();
                    let (before, flushed_before) = (sut.run.clone(), sut.run_flushed);
                    sut.new_run(true);
                    // After an ERROR the pipeline waits for the application to change its
                    // state (see `Sut::errored`): a seek blocked then is not a hang of ours.
                    let flushed = sut
                        .bounded_unless_failed("a flushing seek", move |p| {
                            p.seek_simple(
                                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                                gst::ClockTime::from_mseconds(pos),
                            )
                            .is_ok()
                        })
                        .unwrap_or(true);
                    if !flushed {
                        // Refused (a source that cannot seek): no flush happened, the run goes
                        // on as it was (a later EOS re-posted by the pipeline belongs to it).
                        sut.read_bus();
                        let after = std::mem::replace(&mut sut.run, before);
                        sut.run.extend(after);
                        sut.run_flushed = flushed_before;
                    }
                }
                sut.dwell(d);
            }
            Op::CapsChange(i, d) => {
                if let Some(cf) = sut.pipeline.by_name("caps") {
                    let (w, h) = SIZES[i];
                    let caps: gst::Caps =
                        format!("video/x-raw,format=I420,width={w},height={h},framerate=30/1")
                            .parse()
                            .unwrap();
                    if sut.state >= gst::State::Paused {
                        *sut.pending_caps.lock().unwrap() = Some(caps);
                    } else {
                        sut.pending_caps.lock().unwrap().take();
                        cf.set_property("caps", caps);
                    }
                }
                sut.dwell(d);
            }
            Op::Property(i, d) => {
                let (name, value) = properties(sut.setup.kind)[i];
                sut.element.set_property_from_str(name, value);
                sut.dwell(d);
            }
            Op::Wait(ms) => sut.dwell(ms),
        }
        sut
    }

    fn check_invariants(sut: &Sut, _model: &Model) {
        let _ = sut;
    }

    fn teardown(sut: Sut, _model: Model) {
        if std::env::var_os("VIGIL_CONTRACT_TRACE").is_some() {
            eprintln!(
                "vigil contract: sequence passed:\n  {}",
                sut.log.join("\n  ")
            );
        }
        sut.finish();
    }
}

fn seed() -> u64 {
    std::env::var("VIGIL_CONTRACT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

fn run_seed(seed: u64, cases: u32) {
    println!(
        "vigil contract test: seed {seed} ({cases} sequences); replay with VIGIL_CONTRACT_SEED={seed}"
    );
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        max_shrink_time: 180_000,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(config.clone(), rng);
    let strategy = Contract::sequential_strategy(1..14);
    let result = runner.run(&strategy, |(initial, transitions, seen)| {
        Contract::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    if let Err(e) = result {
        panic!(
            "vigil contract test failed with seed {seed} (replay with VIGIL_CONTRACT_SEED={seed}): {e}"
        );
    }
}

#[test]
fn random_sequences_keep_the_watchdog_contract() {
    init();
    let cases = std::env::var("VIGIL_CONTRACT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let minutes: Option<u64> = std::env::var("VIGIL_CONTRACT_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok());
    inputs();
    match minutes {
        None => run_seed(seed(), cases),
        Some(m) => {
            let end = Instant::now() + Duration::from_secs(m * 60);
            let mut s = seed();
            let mut rounds = 0;
            while Instant::now() < end {
                run_seed(s, cases);
                rounds += 1;
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
            }
            println!(
                "vigil contract test: {rounds} rounds of {cases} sequences in {m} minutes, no violation"
            );
        }
    }
}
