// SPDX-License-Identifier: MPL-2.0
//! One input of `vigilfailoversrc`: its source (a URI or an application element), the data it
//! delivers, and the actor thread that owns its pipeline.
//!
//! Each input runs in a `GstPipeline` of its own, with its own clock wait (the appsinks sync,
//! so a file plays in real time) and its own bus, whose sync handler turns ERROR and EOS into
//! controller events and drops every message: nothing an input posts reaches the application
//! pipeline as such. Start, stop, restart and removal of an input are commands to its actor
//! thread, applied one after another, so they never race. Every start has a generation number;
//! data and bus messages of an older generation are ignored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;

use super::content::{self, ContentTrack, PictureStats};
use super::fault::FaultThread;
use super::types::{Event, SwitchReason};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilfailoverinput",
        gst::DebugColorFlags::empty(),
        Some("vigil failover source: inputs"),
    )
});

/// Video frames an input may hold for the output (older ones are dropped).
const VIDEO_QUEUE: usize = 4;

/// Where an input's data comes from.
#[derive(Clone, Debug)]
pub(super) enum Source {
    /// A URI, opened with `uridecodebin`.
    Uri(String),
    /// An application's source element, decoded with `decodebin`; it is moved from one run's
    /// pipeline to the next.
    Element(gst::Element),
}

/// A configured input.
#[derive(Clone, Debug)]
pub(super) struct InputSpec {
    /// Unique for the element's lifetime: a re-added URI is a new input.
    pub id: u64,
    /// The URI, or the element's name.
    pub name: String,
    pub source: Source,
}

/// Input frame intervals kept to measure an input's cadence.
const INTERVALS: usize = 8;

/// Data an input delivered, read by the output threads and the controller.
#[derive(Default)]
pub(super) struct InputData {
    /// When the newest buffer (either stream) of the current generation arrived.
    pub last_data: Option<Instant>,
    /// When the newest picture arrived (at the output rate, after `videorate`).
    pub last_video: Option<Instant>,
    /// When the newest audio arrived (after `audiorate`, which fills gaps with silence).
    pub last_audio: Option<Instant>,
    /// When the newest audio of the input itself arrived (before `audiorate`): a stream
    /// that ended while the others go on sends GAP events, which `audiorate` turns into
    /// silence; that silence is not the input's audio flowing.
    pub last_audio_in: Option<Instant>,
    /// When the newest picture of the input's own cadence arrived (before `videorate`), and
    /// its recent intervals.
    last_video_in: Option<Instant>,
    intervals: VecDeque<Duration>,
    /// The streams it has (linked).
    pub has_video: bool,
    pub has_audio: bool,
    /// Black, frozen and silent times.
    pub content: ContentTrack,
    /// Video frames not yet taken by the output.
    pub video: VecDeque<gst::Buffer>,
    /// Audio bytes (in the output format) not yet taken by the output.
    pub audio: VecDeque<u8>,
    /// Buffers received in the current generation.
    pub buffers: u64,
}

impl InputData {
    /// The input's own frame interval: the longest of its recent ones.
    pub fn frame_interval(&self) -> Option<Duration> {
        self.intervals.iter().max().copied()
    }
}

/// The thresholds of the content measurements, set by the controller from the properties.
#[derive(Default)]
pub(super) struct ContentSettings {
    /// Luma below which a sample is black (8-bit scale).
    pub black_threshold: AtomicU32,
    /// Level below which audio is silent, in dBFS.
    pub silence_db: AtomicI32,
}

/// The part of an input that its pipeline's streaming threads, the controller and the output
/// threads share.
pub(super) struct InputShared {
    pub id: u64,
    pub name: String,
    generation: AtomicU64,
    pub data: Mutex<InputData>,
    /// Audio bytes kept at most (about 250 ms).
    audio_cap: usize,
    /// The audio output format (for the level measurement).
    audio_format: Option<String>,
    pub settings: ContentSettings,
}

impl InputShared {
    pub fn new(id: u64, name: String, audio_cap: usize, audio_format: Option<String>) -> Self {
        Self {
            id,
            name,
            generation: AtomicU64::new(0),
            data: Mutex::new(InputData::default()),
            audio_cap,
            audio_format,
            settings: ContentSettings::default(),
        }
    }

    /// Starts a new generation: data from older pipelines is ignored from now on.
    pub fn begin(&self, generation: u64) {
        self.generation.store(generation, Ordering::SeqCst);
        *self.data.lock().unwrap() = InputData::default();
    }

    fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    fn set_stream(&self, generation: u64, video: bool) {
        if !self.current(generation) {
            return;
        }
        let mut d = self.data.lock().unwrap();
        if video {
            d.has_video = true;
        } else {
            d.has_audio = true;
        }
    }

    /// A picture of the input's own cadence (before `videorate`).
    fn video_in(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        let now = Instant::now();
        let mut d = self.data.lock().unwrap();
        if let Some(last) = d.last_video_in.replace(now) {
            d.intervals.push_back(now.saturating_duration_since(last));
            while d.intervals.len() > INTERVALS {
                d.intervals.pop_front();
            }
        }
    }

    /// Audio of the input itself (before `audiorate`).
    fn audio_in(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        self.data.lock().unwrap().last_audio_in = Some(Instant::now());
    }

    fn push_video(&self, generation: u64, buffer: gst::Buffer, stats: Option<PictureStats>) {
        if !self.current(generation) {
            return;
        }
        let now = Instant::now();
        let threshold = self.settings.black_threshold.load(Ordering::Relaxed);
        let mut d = self.data.lock().unwrap();
        d.last_data = Some(now);
        d.last_video = Some(now);
        d.buffers += 1;
        d.content
            .picture(now, stats, u8::try_from(threshold).unwrap_or(u8::MAX));
        d.video.push_back(buffer);
        while d.video.len() > VIDEO_QUEUE {
            d.video.pop_front();
        }
    }

    fn push_audio(&self, generation: u64, buffer: &gst::BufferRef) {
        if !self.current(generation) {
            return;
        }
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let level = self
            .audio_format
            .as_deref()
            .and_then(|f| content::audio_level_db(map.as_slice(), f));
        let silence = f64::from(self.settings.silence_db.load(Ordering::Relaxed));
        let now = Instant::now();
        let mut d = self.data.lock().unwrap();
        d.last_data = Some(now);
        d.last_audio = Some(now);
        d.buffers += 1;
        d.content.audio(now, level, silence);
        d.audio.extend(map.as_slice());
        let excess = d.audio.len().saturating_sub(self.audio_cap);
        d.audio.drain(..excess);
    }
}

/// Measures a picture for the content checks: the luma of YUV and grey formats, the brightest
/// of R, G and B otherwise; `None` for formats deeper than 8 bits.
fn measure_picture(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<PictureStats> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let finfo = info.format_info();
    let comps: &[u8] = if finfo.is_yuv() || finfo.is_gray() {
        &[0]
    } else {
        &[0, 1, 2]
    };
    let mut result: Option<PictureStats> = None;
    for &c in comps {
        if finfo.depth()[c as usize] != 8 {
            return None;
        }
        let data = frame.comp_data(u32::from(c)).ok()?;
        let s = content::picture_stats(
            data,
            frame.comp_width(u32::from(c)) as usize,
            frame.comp_height(u32::from(c)) as usize,
            frame.comp_stride(u32::from(c)) as usize,
            frame.comp_pstride(u32::from(c)) as usize,
        )?;
        result = Some(match result {
            None => s,
            Some(r) => PictureStats {
                max_luma: r.max_luma.max(s.max_luma),
                hash: r.hash.rotate_left(7) ^ s.hash,
            },
        });
    }
    result
}

/// What every run of an input needs to build its pipeline.
#[derive(Clone)]
pub(super) struct RunConfig {
    /// The element's name, for naming the input pipelines.
    pub owner: String,
    pub video_caps: gst::Caps,
    /// `None` when audio is disabled.
    pub audio_caps: Option<gst::Caps>,
    pub events: Sender<Event>,
    /// Faults to inject (test builds only).
    pub faults: super::fault::Faults,
}

enum Command {
    Start(u64),
    Stop,
    Shutdown,
}

/// The handle the controller holds on an input's actor thread.
pub(super) struct InputActor {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    pub shared: Arc<InputShared>,
}

impl InputActor {
    pub fn spawn(spec: InputSpec, shared: Arc<InputShared>, config: RunConfig) -> Self {
        let (tx, rx) = channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vigil-fo-in{}", spec.id))
            .spawn(move || {
                let name = spec.name.clone();
                // An input whose thread panics delivers nothing more: the controller judges
                // it by its data, as any dead input, and fails over.
                let body = std::panic::AssertUnwindSafe(|| actor_loop(spec, sh, config, rx));
                if std::panic::catch_unwind(body).is_err() {
                    gst::error!(CAT, "input {name}: its thread panicked");
                }
            })
            .expect("spawn an input thread");
        Self {
            tx,
            thread: Some(thread),
            shared,
        }
    }

    /// (Re)starts the input as `generation` (the caller has called `shared.begin`).
    pub fn start(&self, generation: u64) {
        let _ = self.tx.send(Command::Start(generation));
    }

    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }

    /// Asks the thread to tear its pipeline down and end.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Joins the thread if it has ended within `limit`; otherwise leaves it (detached) and
    /// returns false: a teardown that hangs must not hang the element.
    pub fn join_within(mut self, limit: Duration) -> bool {
        self.thread
            .take()
            .is_none_or(|t| super::join_within(t, limit))
    }
}

/// One run of an input: its pipeline and what must be undone when it ends.
struct Run {
    pipeline: gst::Pipeline,
    element: Option<(gst::Element, Option<glib::SignalHandlerId>)>,
}

fn actor_loop(spec: InputSpec, shared: Arc<InputShared>, config: RunConfig, rx: Receiver<Command>) {
    let mut run: Option<Run> = None;
    let mut rounds = 0;
    loop {
        let cmd = rx.recv().unwrap_or(Command::Shutdown);
        if let Some(r) = run.take() {
            teardown(r);
        }
        config.faults.at(FaultThread::Input, rounds);
        rounds += 1;
        match cmd {
            Command::Start(generation) => {
                gst::debug!(
                    CAT,
                    "input {} starting (generation {generation})",
                    spec.name
                );
                match start(&spec, &shared, &config, generation) {
                    Ok(r) => run = Some(r),
                    Err((r, text)) => {
                        if let Some(r) = r {
                            teardown(r);
                        }
                        let _ = config.events.send(Event::Failed {
                            id: spec.id,
                            generation,
                            reason: SwitchReason::StartFailure,
                            text,
                        });
                    }
                }
            }
            Command::Stop => {}
            Command::Shutdown => break,
        }
    }
    gst::debug!(CAT, "input {} thread ends", spec.name);
}

fn teardown(run: Run) {
    let _ = run.pipeline.set_state(gst::State::Null);
    if let Some(bus) = run.pipeline.bus() {
        bus.unset_sync_handler();
    }
    if let Some((element, handler)) = run.element {
        if let Some(h) = handler {
            element.disconnect(h);
        }
        let _ = run.pipeline.remove(&element);
        let _ = element.set_state(gst::State::Null);
    }
}

type StartError = (Option<Run>, String);

fn start(
    spec: &InputSpec,
    shared: &Arc<InputShared>,
    config: &RunConfig,
    generation: u64,
) -> Result<Run, StartError> {
    let pipeline = gst::Pipeline::with_name(&format!(
        "{}-input{}-run{}",
        config.owner, spec.id, generation
    ));
    let linker = Arc::new(Linker {
        pipeline: pipeline.downgrade(),
        shared: shared.clone(),
        config: config.clone(),
        generation,
        id: spec.id,
        video: AtomicBool::new(false),
        audio: AtomicBool::new(false),
    });

    // Everything the input posts stays here: ERROR and EOS become controller events.
    let events = config.events.clone();
    let id = spec.id;
    let name = spec.name.clone();
    pipeline
        .bus()
        .expect("pipeline bus")
        .set_sync_handler(move |_, msg| {
            use gst::MessageView;
            let failure = match msg.view() {
                MessageView::Error(e) => Some((
                    SwitchReason::Error,
                    format!(
                        "{}: {}{}",
                        msg.src().map(|s| s.name().to_string()).unwrap_or_default(),
                        e.error(),
                        e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                    ),
                )),
                MessageView::Eos(_) => Some((SwitchReason::Eos, "end of stream".to_string())),
                MessageView::Warning(w) => {
                    gst::debug!(CAT, "input {name}: warning {}", w.error());
                    None
                }
                _ => None,
            };
            if let Some((reason, text)) = failure {
                let _ = events.send(Event::Failed {
                    id,
                    generation,
                    reason,
                    text,
                });
            }
            gst::BusSyncReply::Drop
        });

    // The clock and base time are fixed before anything is added. The sinks are added while
    // the pipeline goes to PLAYING, and `gst_bin_add` gives each the pipeline's clock and base
    // time as they are then: left to the pipeline, a sink could start without a clock (it
    // renders at once) until the pipeline reaches PLAYING and picks its base time, and then
    // wait for as long as the media it rendered early: a gap of hundreds of ms after the
    // first frames, judged a stall. With the base time set now, the first frames are a little
    // late (the start of the decoder) and the input runs in real time from its first frame.
    let clock = gst::SystemClock::obtain();
    pipeline.use_clock(Some(&clock));
    let _ = pipeline.set_clock(Some(&clock));
    pipeline.set_start_time(gst::ClockTime::NONE);
    pipeline.set_base_time(clock.time());

    let mut run = Run {
        pipeline: pipeline.clone(),
        element: None,
    };
    match &spec.source {
        Source::Uri(uri) => {
            let dec = gst::ElementFactory::make("uridecodebin")
                .property("uri", uri)
                .build()
                .map_err(|e| (None, format!("cannot create uridecodebin: {e}")))?;
            let l = linker.clone();
            dec.connect_pad_added(move |_, pad| l.link(pad));
            let l = linker.clone();
            dec.connect_no_more_pads(move |_| l.check_streams());
            pipeline
                .add(&dec)
                .map_err(|e| (None, format!("cannot add uridecodebin: {e}")))?;
        }
        Source::Element(element) => {
            if element.parent().is_some() {
                return Err((None, format!("{} already has a parent", element.name())));
            }
            pipeline
                .add(element)
                .map_err(|e| (None, format!("cannot add {}: {e}", element.name())))?;
            let l = linker.clone();
            let handler = element.connect_pad_added(move |_, pad| l.decode(pad));
            run.element = Some((element.clone(), Some(handler)));
            for pad in element.src_pads() {
                linker.decode(&pad);
            }
        }
    }
    match pipeline.set_state(gst::State::Playing) {
        Ok(_) => Ok(run),
        Err(_) => Err((
            Some(run),
            format!("{}: the input pipeline failed to start", spec.name),
        )),
    }
}

/// Links the pads an input's decoder exposes to the normalising chains and the appsinks.
struct Linker {
    pipeline: glib::WeakRef<gst::Pipeline>,
    shared: Arc<InputShared>,
    config: RunConfig,
    generation: u64,
    id: u64,
    video: AtomicBool,
    audio: AtomicBool,
}

impl Linker {
    /// A pad of an application source element: decode it (`decodebin` passes raw through).
    fn decode(self: &Arc<Self>, pad: &gst::Pad) {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let Ok(dec) = gst::ElementFactory::make("decodebin").build() else {
            self.fail("cannot create decodebin");
            return;
        };
        let l = self.clone();
        dec.connect_pad_added(move |_, pad| l.link(pad));
        let l = self.clone();
        dec.connect_no_more_pads(move |_| l.check_streams());
        if pipeline.add(&dec).is_err()
            || pad.link(&dec.static_pad("sink").unwrap()).is_err()
            || dec.sync_state_with_parent().is_err()
        {
            self.fail("cannot decode the source element's output");
        }
    }

    fn fail(&self, text: &str) {
        let _ = self.config.events.send(Event::Failed {
            id: self.id,
            generation: self.generation,
            reason: SwitchReason::StartFailure,
            text: text.to_string(),
        });
    }

    fn check_streams(&self) {
        if !self.video.load(Ordering::SeqCst) && !self.audio.load(Ordering::SeqCst) {
            self.fail("the input has no usable audio or video stream");
        }
    }

    fn link(&self, pad: &gst::Pad) {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let media = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let r = if media.starts_with("video/") && !self.video.swap(true, Ordering::SeqCst) {
            self.chain(&pipeline, pad, true)
        } else if media.starts_with("audio/")
            && self.config.audio_caps.is_some()
            && !self.audio.swap(true, Ordering::SeqCst)
        {
            self.chain(&pipeline, pad, false)
        } else {
            // A stream the output does not carry: consume it so the decoder does not stop on
            // not-linked.
            self.discard(&pipeline, pad)
        };
        if let Err(e) = r {
            self.fail(&format!("cannot link the {media} stream: {e}"));
        }
    }

    fn discard(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), glib::BoolError> {
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()?;
        pipeline.add(&sink)?;
        sink.sync_state_with_parent()?;
        pad.link(&sink.static_pad("sink").unwrap())
            .map_err(|e| glib::bool_error!("{e:?}"))?;
        Ok(())
    }

    fn chain(
        &self,
        pipeline: &gst::Pipeline,
        pad: &gst::Pad,
        video: bool,
    ) -> Result<(), glib::BoolError> {
        let names: &[&str] = if video {
            &["queue", "videoconvert", "videoscale", "videorate"]
        } else {
            &["queue", "audioconvert", "audioresample", "audiorate"]
        };
        let mut elements = Vec::new();
        for n in names {
            elements.push(gst::ElementFactory::make(n).build()?);
        }
        let caps = if video {
            self.config.video_caps.clone()
        } else {
            self.config.audio_caps.clone().expect("audio enabled")
        };
        elements.push(
            gst::ElementFactory::make("capsfilter")
                .property("caps", &caps)
                .build()?,
        );
        let shared = self.shared.clone();
        let generation = self.generation;
        shared.set_stream(generation, video);
        let callbacks = if video {
            let mut info: Option<(gst::Caps, gst_video::VideoInfo)> = None;
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    if let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) {
                        if info.as_ref().is_none_or(|(c, _)| c != caps) {
                            info = gst_video::VideoInfo::from_caps(caps)
                                .ok()
                                .map(|i| (caps.to_owned(), i));
                        }
                        let stats = info.as_ref().and_then(|(_, i)| measure_picture(&buffer, i));
                        shared.push_video(generation, buffer, stats);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build()
        } else {
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    if let Some(buffer) = sample.buffer() {
                        shared.push_audio(generation, buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build()
        };
        let sink = gst_app::AppSink::builder()
            .sync(true)
            .max_buffers(2)
            .callbacks(callbacks)
            .build();
        // No preroll: a sink added while the pipeline goes to PLAYING must not make it lose
        // its state (and wait in PAUSED for a preroll that may never complete). The sinks
        // still sync, so a file plays in real time.
        sink.set_property("async", false);
        // Late frames are still data: the input is alive even when it runs late.
        sink.set_property("max-lateness", -1i64);
        sink.set_property("qos", false);
        elements.push(sink.upcast());
        // The input's own data, before `videorate` repeats or drops pictures and before
        // `audiorate` fills gaps with silence: its cadence, and whether each stream flows.
        let shared = self.shared.clone();
        let generation = self.generation;
        elements[3]
            .static_pad("sink")
            .expect("videorate/audiorate sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if video {
                    shared.video_in(generation);
                } else {
                    shared.audio_in(generation);
                }
                gst::PadProbeReturn::Ok
            });
        pipeline.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        for e in elements.iter().rev() {
            e.sync_state_with_parent()?;
        }
        pad.link(&elements[0].static_pad("sink").unwrap())
            .map_err(|e| glib::bool_error!("{e:?}"))?;
        Ok(())
    }
}
