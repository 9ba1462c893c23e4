// SPDX-License-Identifier: MPL-2.0
//! `vigildav1ddec`: the element. It negotiates, keeps timestamps, counts undecodable frames,
//! and hands the stream to libdav1d, which lives on a watched worker thread (see `decoder.rs`).
//!
//! The output caps always describe the frame pushed next: each decoded frame carries its format
//! and size from libdav1d, and a frame that differs from the current caps is preceded by new
//! caps (`update_src_caps`). Colorimetry and chroma siting come from the input caps, or else
//! from the sequence header in force when the frame's input was submitted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::VideoFormat;
use vigil_core::av1::{self, SequenceHeader};
use vigil_core::{RunOutcome, WorkerConfig, WorkerError, WorkerHandle};

use super::decoder::{self, Dav1dDecoder, DecInput, DecOutput, DecodedFrame, DecoderSetup};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigildav1ddec",
        gst::DebugColorFlags::empty(),
        Some("vigil dav1d AV1 decoder"),
    )
});

/// What the worker is called in messages.
const WHAT: &str = "the dav1d decoder";

const DEFAULT_N_THREADS: u32 = 0;
const DEFAULT_MAX_FRAME_DELAY: i32 = -1;
const DEFAULT_APPLY_GRAIN: bool = true;
const DEFAULT_OPERATING_POINT: u32 = 0;
const DEFAULT_ALL_LAYERS: bool = false;
const DEFAULT_MAX_ERRORS: i32 = 10;
/// libdav1d makes progress frame by frame; its frame threads' CPU time also counts, so 10 s
/// without either is a wedge even for 8K.
const DEFAULT_WATCHDOG_TIMEOUT: u32 = 10_000;
/// libdav1d's largest thread count and frame delay (`DAV1D_MAX_THREADS`, `DAV1D_MAX_FRAME_DELAY`).
const MAX_THREADS: u32 = 256;

/// Raw formats, in the order they are offered.
const FORMATS: [VideoFormat; 11] = [
    VideoFormat::I420,
    VideoFormat::I42010le,
    VideoFormat::I42012le,
    VideoFormat::Y42b,
    VideoFormat::I42210le,
    VideoFormat::I42212le,
    VideoFormat::Y444,
    VideoFormat::Y44410le,
    VideoFormat::Y44412le,
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
];

/// libdav1d's in-loop filters (`Dav1dInloopFilterType`).
#[glib::flags(name = "VigilDav1dDecInloopFilters")]
pub enum InloopFilters {
    /// The deblocking filter.
    #[flags_value(name = "Deblocking filter", nick = "deblock")]
    DEBLOCK = 0b001,
    /// The constrained directional enhancement filter.
    #[flags_value(name = "Constrained directional enhancement filter", nick = "cdef")]
    CDEF = 0b010,
    /// Loop restoration (Wiener and self-guided filters).
    #[flags_value(name = "Loop restoration", nick = "restoration")]
    RESTORATION = 0b100,
}

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    n_threads: u32,
    max_frame_delay: i32,
    apply_grain: bool,
    operating_point: u32,
    all_layers: bool,
    inloop_filters: InloopFilters,
    max_errors: i32,
    watchdog_timeout: u32,
    #[cfg(feature = "fault-injection")]
    fault_injection: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            n_threads: DEFAULT_N_THREADS,
            max_frame_delay: DEFAULT_MAX_FRAME_DELAY,
            apply_grain: DEFAULT_APPLY_GRAIN,
            operating_point: DEFAULT_OPERATING_POINT,
            all_layers: DEFAULT_ALL_LAYERS,
            inloop_filters: InloopFilters::all(),
            max_errors: DEFAULT_MAX_ERRORS,
            watchdog_timeout: DEFAULT_WATCHDOG_TIMEOUT,
            #[cfg(feature = "fault-injection")]
            fault_injection: String::new(),
        }
    }
}

impl Settings {
    /// The libdav1d settings; `live` resolves `max-frame-delay=-1` (1 frame when live).
    fn setup(&self, live: bool, zero_copy: Arc<AtomicBool>) -> DecoderSetup {
        let max_frame_delay = match self.max_frame_delay {
            -1 if live => 1,
            d if d > 0 => d as u32,
            _ => 0,
        };
        DecoderSetup {
            n_threads: self.n_threads,
            max_frame_delay,
            apply_grain: self.apply_grain,
            operating_point: self.operating_point,
            all_layers: self.all_layers,
            inloop_filters: self.inloop_filters.bits(),
            zero_copy,
        }
    }
}

type Worker = WorkerHandle<Dav1dDecoder, ()>;

/// What the input caps say about the video.
#[derive(Debug, Clone, Default)]
struct InputInfo {
    fps: Option<gst::Fraction>,
    par: Option<gst::Fraction>,
    colorimetry: Option<gst_video::VideoColorimetry>,
    chroma_site: Option<gst_video::VideoChromaSite>,
    width: Option<i32>,
    height: Option<i32>,
    /// The configuration OBUs of `codec_data` (`av1C` without its 4-byte header).
    config_obus: Option<Vec<u8>>,
    /// HDR metadata fields the input caps carry (they win over the bitstream's).
    mastering_display: Option<String>,
    content_light: Option<String>,
}

impl InputInfo {
    fn from_caps(caps: &gst::Caps) -> Self {
        let Some(s) = caps.structure(0) else {
            return Self::default();
        };
        let config_obus = s
            .get::<gst::Buffer>("codec_data")
            .ok()
            .and_then(|b| {
                let map = b.map_readable().ok()?;
                // An `av1C` record (marker and version 1), or bare OBUs as some muxers write.
                let skip = if map.first() == Some(&0x81) { 4 } else { 0 };
                (map.len() > skip).then(|| map[skip..].to_vec())
            })
            .filter(|obus| av1::parse_obus(obus).is_ok());
        Self {
            fps: s
                .get::<gst::Fraction>("framerate")
                .ok()
                .filter(|f| f.numer() > 0 && f.denom() > 0),
            par: s.get::<gst::Fraction>("pixel-aspect-ratio").ok(),
            colorimetry: s
                .get::<&str>("colorimetry")
                .ok()
                .and_then(|c| c.parse().ok()),
            chroma_site: s
                .get::<&str>("chroma-site")
                .ok()
                .and_then(|c| c.parse().ok()),
            width: s.get::<i32>("width").ok(),
            height: s.get::<i32>("height").ok(),
            config_obus,
            mastering_display: s.get::<String>("mastering-display-info").ok(),
            content_light: s.get::<String>("content-light-level").ok(),
        }
    }

    fn frame_duration(&self) -> Option<gst::ClockTime> {
        let f = self.fps?;
        gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64)
    }
}

struct State {
    worker: Option<Worker>,
    input: InputInfo,
    /// Sequence headers by the first input index they apply to.
    sequence_headers: BTreeMap<i64, SequenceHeader>,
    /// The last sequence header OBU seen, re-sent to libdav1d after a flush.
    last_sequence_obu: Option<Vec<u8>>,
    /// libdav1d lost its sequence header (flush, start): send one before the next data.
    need_header: bool,
    /// What the source caps describe now.
    out_info: Option<gst_video::VideoInfo>,
    /// HDR metadata read from the bitstream so far.
    hdr: av1::HdrMetadata,
    /// The HDR metadata the source caps carry now.
    out_hdr: av1::HdrMetadata,
    next_index: i64,
    /// Undecodable frames since the last decoded one.
    consecutive_errors: u32,
    inputs: u64,
    frames_out: u64,
    /// End of the last output frame, for frames without a PTS (the segment start before the
    /// first one).
    next_pts: Option<gst::ClockTime>,
    last_duration: Option<gst::ClockTime>,
    /// Frames libdav1d holds before the first picture (for the latency query).
    frame_delay: u64,
    /// The ERROR for too many undecodable frames was posted.
    failed: bool,
    /// Input went to libdav1d since the last drain or flush: it may hold frames.
    holds_input: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            worker: None,
            input: InputInfo::default(),
            sequence_headers: BTreeMap::new(),
            last_sequence_obu: None,
            need_header: true,
            out_info: None,
            hdr: av1::HdrMetadata::default(),
            out_hdr: av1::HdrMetadata::default(),
            next_index: 0,
            consecutive_errors: 0,
            holds_input: false,
            inputs: 0,
            frames_out: 0,
            next_pts: None,
            last_duration: None,
            frame_delay: 0,
            failed: false,
        }
    }
}

#[derive(Default)]
pub struct VigilDav1dDec {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Set while flushing or stopping: every wait on the worker returns at once.
    interrupt: Arc<AtomicBool>,
    /// Bumped (under the state lock) each time the element stops: a worker the streaming
    /// thread borrowed from an earlier run is shut down when it comes back, never stored
    /// into (or leaked by) a later one.
    generation: std::sync::atomic::AtomicU64,
    /// Downstream takes `GstVideoMeta` (decided at allocation): the worker wraps pictures
    /// instead of copying them.
    zero_copy: Arc<AtomicBool>,
}

/// The raw video info for a decoded frame: its format and size, the input caps' rate and
/// aspect, and the colorimetry of the caps or else of the bitstream.
fn frame_info(
    frame: &DecodedFrame,
    input: &InputInfo,
    sh: Option<&SequenceHeader>,
) -> Result<gst_video::VideoInfo, glib::BoolError> {
    let mut b = gst_video::VideoInfo::builder(frame.format, frame.width, frame.height);
    if let Some(fps) = input.fps {
        b = b.fps(fps);
    }
    if let Some(par) = input.par {
        b = b.par(par);
    }
    let gray = matches!(frame.format, VideoFormat::Gray8 | VideoFormat::Gray16Le);
    let colorimetry = input.colorimetry.or_else(|| {
        let sh = sh?;
        let range = if sh.full_range {
            gst_video::VideoColorRange::Range0_255
        } else {
            gst_video::VideoColorRange::Range16_235
        };
        let (cp, tc, mc) = sh.color_description?;
        Some(gst_video::VideoColorimetry::new(
            range,
            gst_video::VideoColorMatrix::from_iso(u32::from(mc)),
            gst_video::VideoTransferFunction::from_iso(u32::from(tc)),
            gst_video::VideoColorPrimaries::from_iso(u32::from(cp)),
        ))
    });
    if let (Some(c), false) = (colorimetry, gray) {
        b = b.colorimetry(&c);
    }
    let chroma_site = input
        .chroma_site
        .or_else(|| match sh?.chroma_sample_position {
            1 => Some(gst_video::VideoChromaSite::H_COSITED),
            2 => Some(gst_video::VideoChromaSite::COSITED),
            _ => None,
        });
    let subsampled = matches!(
        frame.format,
        VideoFormat::I420 | VideoFormat::I42010le | VideoFormat::I42012le
    );
    if let (Some(site), true) = (chroma_site, subsampled) {
        b = b.chroma_site(site);
    }
    b.build()
}

impl VigilDav1dDec {
    fn element(&self) -> gst::Element {
        self.obj().clone().upcast()
    }

    fn post_error(&self, e: WorkerError) -> gst::FlowError {
        e.report(&self.element(), WHAT)
    }

    /// Whether upstream is live (for `max-frame-delay=-1`).
    fn upstream_is_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut q) && q.result().0
    }

    /// Starts libdav1d on its worker; the error has been posted when this fails.
    fn start_worker(&self) -> Result<(Worker, u64), gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let setup = settings.setup(self.upstream_is_live(), self.zero_copy.clone());
        let mut config = WorkerConfig::new("vigil-dav1d", settings.watchdog_timeout);
        config.input_capacity = 4;
        config.output_capacity = 16;
        config.interrupt = Some(self.interrupt.clone());
        #[cfg(feature = "fault-injection")]
        if let Err(m) = config.set_fault(&settings.fault_injection) {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", m));
            return Err(gst::FlowError::Error);
        }
        gst::debug!(CAT, imp = self, "starting libdav1d: {setup:?}");
        let delay = decoder::frame_delay(&setup);
        let mut worker = match Worker::spawn(config, move |ctx| Dav1dDecoder::open(&setup, ctx)) {
            Ok(w) => w,
            Err(e) => {
                gst::element_imp_error!(self, gst::LibraryError::Init, ("{}", e));
                return Err(gst::FlowError::Error);
            }
        };
        match worker.wait_started() {
            Ok(()) => Ok((worker, delay)),
            Err(e) => Err(self.post_error(e)),
        }
    }

    /// Takes the worker out of the state for a wait that must not hold the state lock, with
    /// the generation of the run it belongs to (give it back with `return_worker`).
    fn lend_worker(&self) -> Option<(Worker, u64)> {
        let mut state = self.state.lock().unwrap();
        let worker = state.worker.take()?;
        Some((worker, self.generation.load(Ordering::SeqCst)))
    }

    /// Gives back a worker taken with `lend_worker` (or by the streaming thread). If the
    /// element stopped in the meantime (its `stop` found no worker to stop), the worker is
    /// shut down here, under its bound, so it is neither leaked nor carried into the next run.
    fn return_worker(&self, worker: Worker, generation: u64) {
        let mut state = self.state.lock().unwrap();
        if self.generation.load(Ordering::SeqCst) == generation && state.worker.is_none() {
            state.worker = Some(worker);
            return;
        }
        drop(state);
        self.stop_worker(worker);
    }

    /// The flow return for data that arrives with no worker: flushing while the element is
    /// being stopped or flushed; otherwise an ERROR that says so (never a silent error).
    fn no_worker(&self) -> gst::FlowError {
        if self.interrupt.load(Ordering::SeqCst) {
            return gst::FlowError::Flushing;
        }
        gst::element_imp_error!(
            self,
            gst::CoreError::Failed,
            ["{} is not running (an earlier failure stopped it)", WHAT]
        );
        gst::FlowError::Error
    }

    fn stop_worker(&self, worker: Worker) {
        let outcome = worker.shutdown();
        vigil_core::report_teardown(&self.element(), WHAT, outcome);
    }

    /// Counts one undecodable frame: a WARNING while within `max-errors`, then one ERROR.
    fn count_error(&self, message: &str) -> Result<(), gst::FlowError> {
        let max_errors = self.settings.lock().unwrap().max_errors;
        let (count, already_failed) = {
            let mut state = self.state.lock().unwrap();
            state.consecutive_errors += 1;
            let failed = state.failed;
            if max_errors >= 0 && i64::from(state.consecutive_errors) > i64::from(max_errors) {
                state.failed = true;
            }
            (state.consecutive_errors, failed)
        };
        if already_failed {
            // One failure, one ERROR: nothing more is posted after it.
            return Err(gst::FlowError::Error);
        }
        if self.interrupt.load(Ordering::SeqCst) {
            // Stopping or flushing: what libdav1d reports while it is torn down is not news.
            return Ok(());
        }
        if max_errors >= 0 && i64::from(count) > i64::from(max_errors) {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                (
                    "{} consecutive frames could not be decoded (max-errors is {}): the stream is corrupt",
                    count,
                    max_errors
                ),
                ["last error: {}", message]
            );
            return Err(gst::FlowError::Error);
        }
        gst::element_imp_warning!(
            self,
            gst::StreamError::Decode,
            (
                "a frame could not be decoded ({} in a row, max-errors is {})",
                count,
                max_errors
            ),
            ["{}", message]
        );
        Ok(())
    }

    /// Turns a decoded frame into the buffer to push: new caps first if its format, size or
    /// colorimetry differ from the current ones, then timestamps.
    fn finish_frame(&self, frame: DecodedFrame) -> Result<gst::Buffer, gst::FlowError> {
        let (info, caps_changed, sh_duration) = {
            let mut state = self.state.lock().unwrap();
            state.consecutive_errors = 0;
            let sh = state
                .sequence_headers
                .range(..=frame.index.max(0))
                .next_back()
                .map(|(_, sh)| sh.clone());
            // Older sequence headers can no longer be needed: outputs come in input order.
            if let Some((&first, _)) = state.sequence_headers.range(..=frame.index).next_back() {
                state.sequence_headers = state.sequence_headers.split_off(&first);
            }
            let info = frame_info(&frame, &state.input, sh.as_ref()).map_err(|e| {
                gst::error!(CAT, imp = self, "no video info for the frame: {e}");
                gst::FlowError::NotNegotiated
            })?;
            let changed = state.out_info.as_ref() != Some(&info) || state.out_hdr != state.hdr;
            let sh_duration = sh
                .as_ref()
                .and_then(|sh| sh.frame_duration)
                .and_then(|(n, d)| gst::ClockTime::SECOND.mul_div_floor(n, d));
            (info, changed, sh_duration)
        };
        if caps_changed {
            let mut caps = info.to_caps().map_err(|_| gst::FlowError::NotNegotiated)?;
            let hdr = {
                let state = self.state.lock().unwrap();
                add_hdr_to_caps(caps.make_mut(), &state.input, &state.hdr);
                state.hdr
            };
            gst::debug!(CAT, imp = self, "output caps for the next frame: {caps}");
            if self.obj().update_src_caps(&caps).is_err() {
                // While stopping or flushing, or after the run already failed, a refused
                // caps change is the teardown, not a new failure: nothing is posted.
                if self.interrupt.load(Ordering::SeqCst) {
                    return Err(gst::FlowError::Flushing);
                }
                if self.state.lock().unwrap().failed {
                    return Err(gst::FlowError::Error);
                }
                self.state.lock().unwrap().failed = true;
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("downstream does not accept the decoded format {}", caps)
                );
                return Err(gst::FlowError::NotNegotiated);
            }
            let mut state = self.state.lock().unwrap();
            state.out_info = Some(info.clone());
            state.out_hdr = hdr;
        }
        let mut state = self.state.lock().unwrap();
        // Timestamps: upstream's when the frame has one; otherwise the end of the previous
        // frame, the first one at the segment start, each lasting one frame of the caps'
        // frame rate (or the duration upstream gave). With neither a timestamp nor a known
        // duration a frame gets no PTS (never a made-up 0 repeated on every frame).
        let duration = (frame.duration > 0)
            .then(|| gst::ClockTime::from_nseconds(frame.duration))
            .or_else(|| state.input.frame_duration())
            .or(sh_duration)
            .or(state.last_duration);
        let pts = frame
            .pts
            .map(gst::ClockTime::from_nseconds)
            .or(state.next_pts);
        state.next_pts = pts.zip(duration).map(|(p, d)| p + d);
        state.last_duration = duration;
        state.frames_out += 1;
        drop(state);
        let mut buffer = frame.buffer;
        if !self.zero_copy.load(Ordering::Relaxed)
            && buffer.meta::<gst_video::VideoMeta>().is_some()
        {
            // Wrapped before downstream said it cannot take a VideoMeta: copy it into the
            // default layout here (reading pixels only, no call into libdav1d).
            buffer = to_default_layout(buffer, &info)?;
        }
        {
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(duration);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame of input {} at {:?}",
            frame.index,
            pts
        );
        Ok(buffer)
    }

    /// Drains libdav1d, pushing every frame downstream; returns how the drain ended.
    fn drain(&self) -> Result<RunOutcome, gst::FlowError> {
        let Some((mut worker, generation)) = self.lend_worker() else {
            return Ok(RunOutcome::Completed);
        };
        let srcpad = self.obj().src_pad().clone();
        let result = worker.drain(|out| match out {
            DecOutput::Frame(frame) => {
                let buffer = self.finish_frame(frame)?;
                srcpad.push(buffer).map(|_| ())
            }
            DecOutput::Error(message) => self.count_error(&message),
        });
        self.return_worker(worker, generation);
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(self.post_error(e)),
            Err(flow) => Err(flow),
        }
    }

    /// Pushes out every frame libdav1d holds, mid-stream (decoding goes on after it). False
    /// when the run failed (reported) or downstream refused the data.
    fn drain_held(&self) -> bool {
        match self.drain() {
            Ok(outcome) => {
                self.state.lock().unwrap().holds_input = false;
                vigil_core::report_outcome(&self.element(), WHAT, outcome).is_ok()
            }
            Err(_) => false,
        }
    }

    /// Records a sequence header in `data` (if any): for caps, and to prime libdav1d again
    /// after a flush. Returns whether the data carries one.
    fn note_sequence_header(state: &mut State, data: &[u8], index: i64) -> bool {
        let hdr = av1::HdrMetadata::scan(data);
        if hdr.content_light.is_some() {
            state.hdr.content_light = hdr.content_light;
        }
        if hdr.mastering_display.is_some() {
            state.hdr.mastering_display = hdr.mastering_display;
        }
        let Ok(Some((sh, obu))) = SequenceHeader::find(data) else {
            return false;
        };
        let current = state.sequence_headers.values().next_back();
        if current != Some(&sh) {
            state.sequence_headers.insert(index, sh);
        }
        state.last_sequence_obu = Some(data[obu.start..obu.end].to_vec());
        true
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VigilDav1dDec {
    const NAME: &'static str = "VigilDav1dDec";
    type Type = super::VigilDav1dDec;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for VigilDav1dDec {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = vec![
                glib::ParamSpecUInt::builder("n-threads")
                    .nick("Threads")
                    .blurb("Threads libdav1d decodes with, 0 = one per logical processor")
                    .minimum(0)
                    .maximum(MAX_THREADS)
                    .default_value(DEFAULT_N_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("max-frame-delay")
                    .nick("Maximum frame delay")
                    .blurb("Frames decoded in parallel (and held before output): -1 = automatic (1 when upstream is live, else chosen by libdav1d), 0 = chosen by libdav1d from the thread count")
                    .minimum(-1)
                    .maximum(MAX_THREADS as i32)
                    .default_value(DEFAULT_MAX_FRAME_DELAY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("apply-grain")
                    .nick("Apply film grain")
                    .blurb("Synthesise the film grain the stream signals (as libdav1d does by default)")
                    .default_value(DEFAULT_APPLY_GRAIN)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("operating-point")
                    .nick("Operating point")
                    .blurb("Operating point of a scalable stream to decode")
                    .minimum(0)
                    .maximum(31)
                    .default_value(DEFAULT_OPERATING_POINT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("all-layers")
                    .nick("All layers")
                    .blurb("Output every spatial layer of a scalable stream, not only the highest (several frames per temporal unit)")
                    .default_value(DEFAULT_ALL_LAYERS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFlags::builder("inloop-filters")
                    .nick("In-loop filters")
                    .blurb("In-loop filters libdav1d applies; leaving one out is faster but gives pixels that differ from the stream's intent (and drift until the next key frame)")
                    .default_value(InloopFilters::all())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("max-errors")
                    .nick("Maximum errors")
                    .blurb("Consecutive undecodable frames tolerated, each posting a WARNING; one more is an ERROR. -1 = tolerate all")
                    .minimum(-1)
                    .maximum(i32::MAX)
                    .default_value(DEFAULT_MAX_ERRORS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("watchdog-timeout")
                    .nick("Watchdog timeout")
                    .blurb("Milliseconds libdav1d may make no progress (no frame and no CPU time in its threads) with work pending before it is abandoned and an ERROR is posted, 0 = never")
                    .minimum(0)
                    .maximum(u32::MAX)
                    .default_value(DEFAULT_WATCHDOG_TIMEOUT)
                    .mutable_ready()
                    .build(),
            ];
            #[cfg(feature = "fault-injection")]
            props.push(vigil_core::fault::param_spec());
            props.shrink_to_fit();
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "n-threads" => s.n_threads = value.get().unwrap(),
            "max-frame-delay" => s.max_frame_delay = value.get().unwrap(),
            "apply-grain" => s.apply_grain = value.get().unwrap(),
            "operating-point" => s.operating_point = value.get().unwrap(),
            "all-layers" => s.all_layers = value.get().unwrap(),
            "inloop-filters" => s.inloop_filters = value.get().unwrap(),
            "max-errors" => s.max_errors = value.get().unwrap(),
            "watchdog-timeout" => s.watchdog_timeout = value.get().unwrap(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => {
                s.fault_injection = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "n-threads" => s.n_threads.to_value(),
            "max-frame-delay" => s.max_frame_delay.to_value(),
            "apply-grain" => s.apply_grain.to_value(),
            "operating-point" => s.operating_point.to_value(),
            "all-layers" => s.all_layers.to_value(),
            "inloop-filters" => s.inloop_filters.to_value(),
            "max-errors" => s.max_errors.to_value(),
            "watchdog-timeout" => s.watchdog_timeout.to_value(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => s.fault_injection.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for VigilDav1dDec {}

fn sink_template_caps() -> gst::Caps {
    gst::Caps::builder("video/x-av1")
        .field("stream-format", "obu-stream")
        .field("alignment", gst::List::new(["tu", "frame"]))
        .build()
}

fn src_template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

impl ElementImpl for VigilDav1dDec {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vigil dav1d AV1 decoder",
                "Codec/Decoder/Video",
                "AV1 decoder on libdav1d whose decoding runs on a watched worker thread: a wedged or panicked decoder is an ERROR, never a hang or a clean EOS over truncated output",
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
                    &sink_template_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src_template_caps(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        vigil_core::interrupt_on_stop(&self.interrupt, transition);
        self.parent_change_state(transition)
    }
}

/// Puts HDR metadata into the source caps: the input caps' when they carry it, otherwise what
/// the bitstream's metadata OBUs say (converted from AV1's fixed point to GStreamer's units).
fn add_hdr_to_caps(caps: &mut gst::CapsRef, input: &InputInfo, hdr: &av1::HdrMetadata) {
    if let Some(m) = &input.mastering_display {
        caps.set("mastering-display-info", m.as_str());
    } else if let Some(m) = hdr.mastering_display {
        // AV1: chromaticities 0.16 fixed point, luminance 24.8 (max) and 18.14 (min) cd/m²;
        // GStreamer: chromaticities in 1/50000, luminance in 1/10000 cd/m².
        let chroma = |v: u16| ((u64::from(v) * 50_000 + 32_768) / 65_536) as u16;
        let xy = |(x, y): (u16, u16)| gst_video::VideoMasteringDisplayInfoCoordinate {
            x: chroma(x),
            y: chroma(y),
        };
        gst_video::VideoMasteringDisplayInfo::new(
            [xy(m.primaries[0]), xy(m.primaries[1]), xy(m.primaries[2])],
            xy(m.white_point),
            ((u64::from(m.luminance_max) * 10_000 + 128) / 256) as u32,
            ((u64::from(m.luminance_min) * 10_000 + 8_192) / 16_384) as u32,
        )
        .add_to_caps(caps);
    }
    if let Some(l) = &input.content_light {
        caps.set("content-light-level", l.as_str());
    } else if let Some((cll, fall)) = hdr.content_light {
        gst_video::VideoContentLightLevel::new(cll, fall).add_to_caps(caps);
    }
}

/// Copies a buffer described by a `GstVideoMeta` into one of the default layout of `info`.
fn to_default_layout(
    buffer: gst::Buffer,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, gst::FlowError> {
    let src = gst_video::VideoFrame::from_buffer_readable(buffer, info)
        .map_err(|_| gst::FlowError::Error)?;
    let out = gst::Buffer::with_size(info.size()).map_err(|_| gst::FlowError::Error)?;
    let mut dst = gst_video::VideoFrame::from_buffer_writable(out, info)
        .map_err(|_| gst::FlowError::Error)?;
    src.copy(&mut dst).map_err(|_| gst::FlowError::Error)?;
    Ok(dst.into_buffer())
}

impl BaseTransformImpl for VigilDav1dDec {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.store(false, Ordering::SeqCst);
        #[cfg(feature = "fault-injection")]
        {
            let fault = self.settings.lock().unwrap().fault_injection.clone();
            WorkerConfig::new("check", 0)
                .set_fault(&fault)
                .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        }
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let mut state = {
            let mut guard = self.state.lock().unwrap();
            self.generation.fetch_add(1, Ordering::SeqCst);
            std::mem::take(&mut *guard)
        };
        if let Some(w) = state.worker.take() {
            self.stop_worker(w);
        }
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let mut out = gst::Caps::new_empty();
        {
            for s in caps.iter() {
                let mut n = if direction == gst::PadDirection::Sink {
                    src_template_caps().structure(0).unwrap().to_owned()
                } else {
                    sink_template_caps().structure(0).unwrap().to_owned()
                };
                for f in ["framerate", "pixel-aspect-ratio"] {
                    if let Ok(v) = s.value(f) {
                        n.set_value(f, v.clone());
                    }
                }
                out.merge_structure(n);
            }
        }
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        let mut fallback = othercaps.clone();
        fallback.fixate();
        if direction != gst::PadDirection::Sink {
            return fallback;
        }
        // The caps of the frames already out stay until a frame of another format comes.
        let current = self.state.lock().unwrap().out_info.clone();
        if let Some(info) = current
            && let Ok(c) = info.to_caps()
            && othercaps.can_intersect(&c)
        {
            return c;
        }
        // Before the first frame: the best guess from the sequence header in codec_data and
        // the caps fields; the first frame corrects it if needed.
        let input = InputInfo::from_caps(caps);
        let sh = input
            .config_obus
            .as_deref()
            .and_then(|obus| SequenceHeader::find(obus).ok().flatten())
            .map(|(sh, _)| sh);
        let s = caps.structure(0);
        let depth = sh
            .as_ref()
            .map(|sh| u32::from(sh.bit_depth))
            .or_else(|| s.and_then(|s| s.get::<u32>("bit-depth-luma").ok()))
            .unwrap_or(8);
        let chroma = match &sh {
            Some(sh) if sh.monochrome => "4:0:0",
            Some(sh) if !sh.subsampling_x => "4:4:4",
            Some(sh) if !sh.subsampling_y => "4:2:2",
            Some(_) => "4:2:0",
            None => s
                .and_then(|s| s.get::<&str>("chroma-format").ok())
                .unwrap_or("4:2:0"),
        };
        let layout = match chroma {
            "4:0:0" => dav1d::PixelLayout::I400,
            "4:4:4" => dav1d::PixelLayout::I444,
            "4:2:2" => dav1d::PixelLayout::I422,
            _ => dav1d::PixelLayout::I420,
        };
        let Some(format) = decoder::video_format(layout, depth as usize) else {
            return fallback;
        };
        let (w, h) = match (&sh, input.width, input.height) {
            (_, Some(w), Some(h)) if w > 0 && h > 0 => (w as u32, h as u32),
            (Some(sh), _, _) => (sh.max_width, sh.max_height),
            _ => return fallback,
        };
        let guess = DecodedFrame {
            buffer: gst::Buffer::new(),
            format,
            width: w,
            height: h,
            pts: None,
            duration: 0,
            index: 0,
        };
        match frame_info(&guess, &input, sh.as_ref()).and_then(|i| i.to_caps()) {
            Ok(c) => {
                let fixed = othercaps.intersect(&c);
                if fixed.is_empty() {
                    fallback
                } else {
                    let mut fixed = fixed;
                    fixed.fixate();
                    fixed
                }
            }
            Err(_) => fallback,
        }
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "caps {incaps} -> {outcaps}");
        let input = InputInfo::from_caps(incaps);
        let mut state = self.state.lock().unwrap();
        if let Some(obus) = &input.config_obus {
            let index = state.next_index;
            if Self::note_sequence_header(&mut state, obus, index) {
                state.need_header = true;
            }
        }
        state.input = input;
        if state.out_info.is_none() {
            state.out_info = gst_video::VideoInfo::from_caps(outcaps).ok();
        }
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let zero_copy = query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_some();
        gst::debug!(
            CAT,
            imp = self,
            "downstream takes GstVideoMeta: {zero_copy} (zero copy)"
        );
        self.zero_copy.store(zero_copy, Ordering::Relaxed);
        self.parent_decide_allocation(query)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let mut upstream = gst::query::Latency::new();
            if !self.obj().sink_pad().peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let (frames, duration) = {
                let state = self.state.lock().unwrap();
                let frames = if state.worker.is_some() {
                    state.frame_delay
                } else {
                    decoder::frame_delay(&self.settings.lock().unwrap().setup(live, Arc::default()))
                };
                let duration = state
                    .input
                    .frame_duration()
                    .or(state.last_duration)
                    .unwrap_or(gst::ClockTime::ZERO);
                (frames, duration)
            };
            let ours = duration * frames;
            gst::debug!(CAT, imp = self, "latency: {frames} frames = {ours}");
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Eos(_) => {
                if self.state.lock().unwrap().failed {
                    // The run failed (reported): EOS goes on in PLAYING only.
                    let element = self.element();
                    return vigil_core::forward_eos_after_failure(&element, || {
                        self.parent_sink_event(event)
                    });
                }
                let outcome = match self.drain() {
                    Ok(o) => o,
                    // Reported already (or downstream refused the data): EOS goes on in
                    // PLAYING so muxers can finalise.
                    Err(_) => {
                        let element = self.element();
                        return vigil_core::forward_eos_after_failure(&element, || {
                            self.parent_sink_event(event)
                        });
                    }
                };
                let (inputs, frames_out, failed) = {
                    let state = self.state.lock().unwrap();
                    (state.inputs, state.frames_out, state.failed)
                };
                let element = self.element();
                let decoded_nothing =
                    outcome == RunOutcome::Completed && inputs > 0 && frames_out == 0 && !failed;
                if decoded_nothing {
                    self.state.lock().unwrap().failed = true;
                }
                let ok = vigil_core::conclude_drain(&element, WHAT, outcome, || {
                    if decoded_nothing {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Decode,
                            (
                                "no frame could be decoded from the {} input buffers: the stream is not valid AV1",
                                inputs
                            )
                        );
                    }
                    self.parent_sink_event(event)
                });
                return ok.is_ok() && !decoded_nothing;
            }
            EventView::FlushStart(_) => self.interrupt.store(true, Ordering::SeqCst),
            // A new segment without a flush (a non-flushing seek) or the end of a segment (a
            // segment seek, gapless looping): the frames libdav1d holds belong before it, so
            // they go out first, as GstVideoDecoder drains; otherwise they would follow the new
            // segment with old timestamps (clipped downstream), or wait for data that does not
            // come.
            EventView::Segment(_) | EventView::SegmentDone(_) => {
                let holds = self.state.lock().unwrap().holds_input;
                if holds && !self.drain_held() {
                    return vigil_core::event_answer(false, &self.interrupt);
                }
            }
            _ => {}
        }
        match event.view() {
            EventView::Segment(seg) => {
                if let Ok(seg) = seg.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().unwrap().next_pts =
                        seg.start().or(Some(gst::ClockTime::ZERO));
                }
            }
            EventView::FlushStop(_) => {
                self.interrupt.store(false, Ordering::SeqCst);
                let worker = self.lend_worker();
                if let Some((mut w, generation)) = worker {
                    match w.flush() {
                        Ok(outcome) => {
                            let _ = vigil_core::report_outcome(&self.element(), WHAT, outcome);
                        }
                        Err(e) => {
                            let _ = self.post_error(e);
                        }
                    }
                    self.return_worker(w, generation);
                }
                let mut state = self.state.lock().unwrap();
                state.need_header = true;
                state.consecutive_errors = 0;
                state.next_pts = None;
                state.holds_input = false;
            }
            _ => {}
        }
        let handled = self.parent_sink_event(event);
        vigil_core::event_answer(handled, &self.interrupt)
    }

    fn submit_input_buffer(
        &self,
        _is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.state.lock().unwrap().failed {
            return Err(gst::FlowError::Error);
        }
        if inbuf.size() == 0 {
            // An empty buffer (a gap, a muxer's placeholder) is not a frame, and not an error.
            gst::trace!(CAT, imp = self, "skipping an empty input buffer");
            return Ok(gst::FlowSuccess::Ok);
        }
        if self.state.lock().unwrap().worker.is_none() {
            let (worker, delay) = self.start_worker()?;
            let mut state = self.state.lock().unwrap();
            state.worker = Some(worker);
            state.frame_delay = delay;
            drop(state);
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        let (mut worker, generation, header, input) = {
            let mut state = self.state.lock().unwrap();
            let Some(worker) = state.worker.take() else {
                return Err(self.no_worker());
            };
            let generation = self.generation.load(Ordering::SeqCst);
            let index = state.next_index;
            state.next_index += 1;
            state.inputs += 1;
            state.holds_input = true;
            let carries_header = match inbuf.map_readable() {
                Ok(map) => Self::note_sequence_header(&mut state, &map, index),
                Err(_) => false,
            };
            let header = if state.need_header && !carries_header {
                state.last_sequence_obu.clone()
            } else {
                None
            };
            state.need_header = false;
            let input = DecInput::Data {
                pts: inbuf.pts().map(|t| t.nseconds()),
                duration: inbuf.duration().map(|t| t.nseconds()),
                buffer: inbuf,
                index,
            };
            (worker, generation, header, input)
        };
        let mut result = Ok(());
        if let Some(obus) = header {
            gst::debug!(CAT, imp = self, "priming libdav1d with the sequence header");
            result = worker.submit(DecInput::Header(obus));
        }
        if result.is_ok() {
            result = worker.submit(input);
        }
        self.return_worker(worker, generation);
        match result {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(e) => Err(self.post_error(e)),
        }
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        loop {
            let out = {
                let mut state = self.state.lock().unwrap();
                let Some(worker) = state.worker.as_mut() else {
                    return Ok(GenerateOutputSuccess::NoOutput);
                };
                worker.try_output()
            };
            match out {
                Ok(Some(DecOutput::Frame(frame))) => {
                    return self.finish_frame(frame).map(GenerateOutputSuccess::Buffer);
                }
                Ok(Some(DecOutput::Error(message))) => self.count_error(&message)?,
                Ok(None) => return Ok(GenerateOutputSuccess::NoOutput),
                Err(e) => return Err(self.post_error(e)),
            }
        }
    }
}
