// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc`: the element. It negotiates, keeps timestamps, and hands frames to the
//! SVT-AV1 encoder that lives on a watched worker thread (see `encoder.rs`).

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
use vigil_core::av1::SequenceHeader;
use vigil_core::{CodecErrorKind, WorkerConfig, WorkerError, WorkerHandle};

use super::encoder::{self, EncInput, EncOutput, EncoderSetup, StreamHeader, SvtEncoder};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilsvtav1enc",
        gst::DebugColorFlags::empty(),
        Some("vigil SVT-AV1 encoder"),
    )
});

/// What the worker is called in messages.
const WHAT: &str = "the SVT-AV1 encoder";

/// Frames queued for the worker, beyond the one it is encoding.
const INPUT_QUEUE: usize = 4;
/// Buffers the pool proposed to upstream keeps ready: every frame the element can hold at once
/// (the worker's queue, the frame in the encoder) and the one upstream fills meanwhile.
const POOL_MIN_BUFFERS: u32 = INPUT_QUEUE as u32 + 2;

const DEFAULT_PRESET: u32 = 10;
const DEFAULT_RATE_CONTROL: RateControl = RateControl::Crf;
const DEFAULT_CRF: u32 = 35;
const DEFAULT_QP: u32 = 35;
const DEFAULT_TARGET_BITRATE: u32 = 7000;
const DEFAULT_MAX_BITRATE: u32 = 0;
const DEFAULT_KEYFRAME_MAX_DIST: i32 = -2;
const DEFAULT_PRED_STRUCTURE: PredStructure = PredStructure::RandomAccess;
const DEFAULT_LOOKAHEAD: i32 = -1;
const DEFAULT_SCENE_CHANGE_DETECTION: bool = false;
const DEFAULT_FILM_GRAIN: u32 = 0;
const DEFAULT_TILE_COLUMNS: u32 = 0;
const DEFAULT_TILE_ROWS: u32 = 0;
const DEFAULT_THREADS: u32 = 0;
/// Progress is also read from the CPU time of SVT's own threads, so a slow preset at 4K that
/// works for minutes between packets is not idle; 10 s without either is a wedge.
const DEFAULT_WATCHDOG_TIMEOUT: u32 = 10_000;

/// SVT-AV1 rate control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilSvtAv1EncRateControl")]
pub enum RateControl {
    /// Constant rate factor (`--rc 0 --crf N`).
    #[enum_value(name = "Constant rate factor (quality, property crf)", nick = "crf")]
    Crf = 0,
    /// Constant quantiser (`--rc 0 --aq-mode 0 --qp N`).
    #[enum_value(name = "Constant quantiser (property qp)", nick = "cqp")]
    Cqp = 1,
    /// Variable bitrate (`--rc 1 --tbr N`).
    #[enum_value(name = "Variable bitrate (property target-bitrate)", nick = "vbr")]
    Vbr = 2,
    /// Constant bitrate (`--rc 2 --tbr N`), low-delay only.
    #[enum_value(
        name = "Constant bitrate (property target-bitrate; needs pred-structure=low-delay)",
        nick = "cbr"
    )]
    Cbr = 3,
}

/// SVT-AV1 prediction structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "VigilSvtAv1EncPredStructure")]
pub enum PredStructure {
    /// Hierarchical random access (`--pred-struct 2`): best compression, dozens of frames of
    /// delay.
    #[enum_value(
        name = "Random access (hierarchical, long delay)",
        nick = "random-access"
    )]
    RandomAccess = 2,
    /// Low delay (`--pred-struct 1`): for live, few frames of delay.
    #[enum_value(name = "Low delay (for live)", nick = "low-delay")]
    LowDelay = 1,
}

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    preset: u32,
    rate_control: RateControl,
    crf: u32,
    qp: u32,
    target_bitrate: u32,
    max_bitrate: u32,
    keyframe_max_dist: i32,
    pred_structure: PredStructure,
    lookahead: i32,
    scene_change_detection: bool,
    film_grain: u32,
    tile_columns: u32,
    tile_rows: u32,
    threads: u32,
    parameters_string: String,
    watchdog_timeout: u32,
    #[cfg(feature = "fault-injection")]
    fault_injection: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            preset: DEFAULT_PRESET,
            rate_control: DEFAULT_RATE_CONTROL,
            crf: DEFAULT_CRF,
            qp: DEFAULT_QP,
            target_bitrate: DEFAULT_TARGET_BITRATE,
            max_bitrate: DEFAULT_MAX_BITRATE,
            keyframe_max_dist: DEFAULT_KEYFRAME_MAX_DIST,
            pred_structure: DEFAULT_PRED_STRUCTURE,
            lookahead: DEFAULT_LOOKAHEAD,
            scene_change_detection: DEFAULT_SCENE_CHANGE_DETECTION,
            film_grain: DEFAULT_FILM_GRAIN,
            tile_columns: DEFAULT_TILE_COLUMNS,
            tile_rows: DEFAULT_TILE_ROWS,
            threads: DEFAULT_THREADS,
            parameters_string: String::new(),
            watchdog_timeout: DEFAULT_WATCHDOG_TIMEOUT,
            #[cfg(feature = "fault-injection")]
            fault_injection: String::new(),
        }
    }
}

impl Settings {
    /// SVT 1.4 forces key frames with random access and CRF or CQP only.
    /// Whether forced key frames are honoured with what is finally configured (the
    /// `parameters-string` may change the rate control or the prediction structure).
    fn can_force_key_frames(&self) -> bool {
        self.parameters(Vec::new())
            .map(|p| force_key_frames_allowed(&p))
            .unwrap_or(false)
    }

    /// Rate properties the user set that the rate control in use ignores, each with a
    /// sentence that says so (a `parameters-string` that sets the rate control itself is
    /// taken as the user's own choice and not second-guessed).
    fn ineffective(&self, explicit: &std::collections::BTreeSet<String>) -> Vec<String> {
        let params_rc = split_parameters_string(&self.parameters_string)
            .map(|p| p.iter().any(|(k, _)| k == "rc" || k == "rate-control"))
            .unwrap_or(false);
        if params_rc {
            return Vec::new();
        }
        let rc = self.rate_control;
        let nick = |r: RateControl| {
            glib::EnumValue::from_value(&r.to_value())
                .map(|(_, v)| v.nick().to_owned())
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        let used_by = [
            (
                "target-bitrate",
                self.target_bitrate,
                matches!(rc, RateControl::Vbr | RateControl::Cbr),
                "rate-control=vbr or cbr",
            ),
            ("crf", self.crf, rc == RateControl::Crf, "rate-control=crf"),
            ("qp", self.qp, rc == RateControl::Cqp, "rate-control=cqp"),
        ];
        for (name, value, used, by) in used_by {
            if explicit.contains(name) && !used {
                out.push(format!(
                    "{name}={value} has no effect with rate-control={}: it is used by {by} (set rate-control as well)",
                    nick(rc)
                ));
            }
        }
        out
    }

    /// Refuses what SVT 1.4 cannot do, with a sentence that says why.
    fn validate(&self) -> Result<(), String> {
        if self.rate_control == RateControl::Cbr && self.pred_structure != PredStructure::LowDelay {
            return Err(
                "rate-control=cbr needs pred-structure=low-delay in SVT-AV1 1.4".to_owned(),
            );
        }
        if self.max_bitrate > 0 && self.rate_control != RateControl::Crf {
            return Err(
                "max-bitrate caps a CRF encode only; use target-bitrate with vbr or cbr".to_owned(),
            );
        }
        // AV1 (Annex A.3): at most 16 tile columns and 128 tiles; the properties are log2.
        if self.tile_columns > 4 {
            return Err(format!(
                "tile-columns={} asks for {} tile columns; AV1 allows at most 16 (tile-columns <= 4)",
                self.tile_columns,
                1u64 << self.tile_columns.min(63)
            ));
        }
        if self.tile_columns + self.tile_rows > 7 {
            return Err(format!(
                "tile-columns={} tile-rows={} asks for {} tiles; AV1 allows at most 128 (tile-columns + tile-rows <= 7)",
                self.tile_columns,
                self.tile_rows,
                1u64 << (self.tile_columns + self.tile_rows).min(63)
            ));
        }
        parse_parameters_string(&self.parameters_string).map(|_| ())
    }

    /// The SvtAv1EncApp options these settings stand for, in the order they are applied:
    /// the properties, then `colour` (from the caps), then the `parameters-string`.
    fn parameters(&self, colour: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| p.push((k.to_owned(), v));
        set("preset", self.preset.to_string());
        match self.rate_control {
            RateControl::Crf => {
                set("rc", "0".into());
                set("crf", self.crf.to_string());
                if self.max_bitrate > 0 {
                    set("mbr", self.max_bitrate.to_string());
                }
            }
            RateControl::Cqp => {
                set("rc", "0".into());
                set("aq-mode", "0".into());
                set("qp", self.qp.to_string());
            }
            RateControl::Vbr => {
                set("rc", "1".into());
                set("tbr", self.target_bitrate.to_string());
            }
            RateControl::Cbr => {
                set("rc", "2".into());
                set("tbr", self.target_bitrate.to_string());
            }
        }
        set("keyint", self.keyframe_max_dist.to_string());
        set("pred-struct", (self.pred_structure as u32).to_string());
        if self.lookahead >= 0 {
            set("lookahead", self.lookahead.to_string());
        }
        set("scd", u32::from(self.scene_change_detection).to_string());
        set("film-grain", self.film_grain.to_string());
        set("tile-columns", self.tile_columns.to_string());
        set("tile-rows", self.tile_rows.to_string());
        set("lp", self.threads.to_string());
        p.extend(colour);
        p.extend(parse_parameters_string(&self.parameters_string)?);
        Ok(p)
    }
}

/// SvtAv1EncApp options the element owns: what it derives from the caps or from its own
/// mechanics. A `parameters-string` that sets one would contradict the caps (a bitstream of
/// another size, depth or rate than `codec_data` says), or crash the library (a height larger
/// than the frames handed in), so it is refused, with the reason.
const OWNED_KEYS: &[(&str, &str)] = &[
    ("width", "the frame width comes from the input caps"),
    ("w", "the frame width comes from the input caps"),
    ("height", "the frame height comes from the input caps"),
    ("h", "the frame height comes from the input caps"),
    (
        "forced-max-frame-width",
        "the frame width comes from the input caps",
    ),
    (
        "forced-max-frame-height",
        "the frame height comes from the input caps",
    ),
    (
        "input-depth",
        "the bit depth comes from the input format (I420: 8, I420_10LE: 10)",
    ),
    (
        "color-format",
        "the colour format comes from the input caps (4:2:0)",
    ),
    ("fps", "the frame rate comes from the input caps"),
    ("fps-num", "the frame rate comes from the input caps"),
    ("fps-denom", "the frame rate comes from the input caps"),
    (
        "color-primaries",
        "the colour description comes from the caps' colorimetry",
    ),
    (
        "transfer-characteristics",
        "the colour description comes from the caps' colorimetry",
    ),
    (
        "matrix-coefficients",
        "the colour description comes from the caps' colorimetry",
    ),
    (
        "color-range",
        "the colour range comes from the caps' colorimetry",
    ),
    (
        "resize-mode",
        "the coded frame size must stay the size of the caps",
    ),
    (
        "resize-denom",
        "the coded frame size must stay the size of the caps",
    ),
    (
        "resize-kf-denom",
        "the coded frame size must stay the size of the caps",
    ),
    ("frames", "the stream ends with the element's EOS"),
    ("n", "the stream ends with the element's EOS"),
    ("skip", "every input frame is encoded"),
    ("input", "frames come from the pipeline"),
    ("i", "frames come from the pipeline"),
    ("output", "packets go to the pipeline"),
    ("b", "packets go to the pipeline"),
    ("recon", "the element has no reconstruction output"),
    ("o", "the element has no reconstruction output"),
    ("pass", "multi-pass encoding needs the whole input first"),
    ("passes", "multi-pass encoding needs the whole input first"),
    ("stats", "multi-pass encoding needs the whole input first"),
];

/// Splits `key=value` pairs separated by `:` (as SvtAv1EncApp `--svtav1-params`) or spaces,
/// refusing the keys the element owns.
fn parse_parameters_string(s: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = split_parameters_string(s)?;
    for (k, _) in &pairs {
        let bare = k.trim_start_matches('-');
        if let Some((_, why)) = OWNED_KEYS.iter().find(|(o, _)| *o == bare) {
            return Err(format!(
                "parameters-string: '{k}' cannot be set: the element owns it ({why})"
            ));
        }
    }
    Ok(pairs)
}

/// Whether SVT-AV1 1.4 honours forced key frames with these final options (the properties,
/// then the `parameters-string`, the last value of a key winning): only CRF/CQP
/// (`rc=0`) with random access (`pred-struct=2`).
fn force_key_frames_allowed(parameters: &[(String, String)]) -> bool {
    let last = |key: &str| {
        parameters
            .iter()
            .rev()
            .find(|(k, _)| k.trim_start_matches('-') == key)
            .map(|(_, v)| v.as_str())
    };
    last("rc").is_none_or(|v| v == "0") && last("pred-struct").is_none_or(|v| v == "2")
}

fn split_parameters_string(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split([':', ' ', '\n'])
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("parameters-string: '{item}' is not a key=value pair"))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(format!(
                    "parameters-string: '{item}' has an empty key or value"
                ));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Frames SVT-AV1 1.4 holds before it returns the first packet, for the latency query.
///
/// Measured against the library (and checked by the tests): low delay holds 2 frames; random
/// access holds two mini-GOPs when the look-ahead is automatic or at least a mini-GOP long,
/// one mini-GOP otherwise (three with VBR's automatic look-ahead), never more than a GOP, plus
/// 4 frames of pipeline. The mini-GOP is
/// `2^hierarchical-levels`: 32 frames by default, 16 with VBR and with preset 13 above 640x480.
fn encoder_delay_frames(settings: &Settings, parameters: &[(String, String)], pixels: u64) -> u64 {
    let last = |key: &str| {
        parameters
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    if last("pred-struct") == Some(1) {
        return 2;
    }
    let preset = last("preset").unwrap_or(i64::from(settings.preset));
    let default_levels = if last("rc") == Some(1) || (preset >= 13 && pixels > 640 * 480) {
        4
    } else {
        5
    };
    let levels = last("hierarchical-levels")
        .unwrap_or(default_levels)
        .clamp(0, 5) as u32;
    let mini_gop = 1u64 << levels;
    let vbr = last("rc") == Some(1);
    let window = match last("lookahead") {
        Some(l) if l >= 0 && (l as u64) < mini_gop => mini_gop,
        // VBR's automatic look-ahead reaches one mini-GOP further.
        None | Some(-1) if vbr => 3 * mini_gop,
        _ => 2 * mini_gop,
    };
    // keyint -2 (about five seconds) and -1 (no key frames) never cut the window short.
    let gop = match last("keyint") {
        Some(k) if k > 0 => k as u64,
        _ => u64::MAX,
    };
    window.min(gop) + 4
}

fn fixated(mut caps: gst::Caps) -> gst::Caps {
    caps.fixate();
    caps
}

type Worker = WorkerHandle<SvtEncoder, StreamHeader>;

/// An encoder started for a set of input caps, kept from `fixate_caps` until `set_caps`.
struct Prepared {
    incaps: gst::Caps,
    outcaps: gst::Caps,
    worker: Worker,
    delay_frames: u64,
    /// The settings the encoder was configured with.
    settings: Settings,
}

/// Why an encoder could not be prepared.
enum PrepareError {
    /// For the caller to post.
    Post(gst::ErrorMessage),
    /// Posted already (a wedge or panic while starting, with the watchdog's details).
    Reported,
}

impl From<gst::ErrorMessage> for PrepareError {
    fn from(m: gst::ErrorMessage) -> Self {
        Self::Post(m)
    }
}

impl PrepareError {
    /// The message still to post, if any.
    fn into_message(self) -> Option<gst::ErrorMessage> {
        match self {
            Self::Post(m) => Some(m),
            Self::Reported => None,
        }
    }
}

struct State {
    info: Option<gst_video::VideoInfo>,
    incaps: Option<gst::Caps>,
    outcaps: Option<gst::Caps>,
    worker: Option<Worker>,
    prepared: Option<Prepared>,
    /// The next index handed to SVT as `pts`.
    next_index: i64,
    /// Timestamps of frames inside the encoder, by index.
    timestamps: BTreeMap<i64, (Option<gst::ClockTime>, Option<gst::ClockTime>)>,
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// Running times at which a key frame was requested (None: the next frame).
    key_requests: Vec<Option<gst::ClockTime>>,
    delay_frames: u64,
    warned_force_key: bool,
    /// Rate properties that have no effect were announced (once a run).
    warned_ineffective: bool,
    /// Input caps the encoder could not be started for (the error was posted once).
    failed_caps: Option<gst::Caps>,
    /// The settings of the running encoder (None: no encoder yet, every property applies at
    /// the next start).
    active: Option<Settings>,
    /// A rate property changed while the encoder runs: drain and recreate it before the next
    /// frame.
    reconfigure: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            info: None,
            incaps: None,
            outcaps: None,
            worker: None,
            prepared: None,
            next_index: 0,
            timestamps: BTreeMap::new(),
            segment: gst::FormattedSegment::new(),
            key_requests: Vec::new(),
            delay_frames: 0,
            warned_force_key: false,
            warned_ineffective: false,
            failed_caps: None,
            active: None,
            reconfigure: false,
        }
    }
}

#[derive(Default)]
pub struct VigilSvtAv1Enc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Set while flushing or stopping: every wait on the worker returns at once.
    interrupt: Arc<AtomicBool>,
    /// Bumped (under the state lock) each time the element stops: a worker the streaming
    /// thread borrowed from an earlier run is shut down when it comes back, never stored
    /// into (or leaked by) a later one.
    generation: std::sync::atomic::AtomicU64,
    /// The properties the application set (for the warning about rate properties that the
    /// rate control in use ignores).
    explicit: Mutex<std::collections::BTreeSet<String>>,
}

impl VigilSvtAv1Enc {
    fn element(&self) -> gst::Element {
        self.obj().clone().upcast()
    }

    fn post_error(&self, e: WorkerError) -> gst::FlowError {
        e.report(&self.element(), WHAT)
    }

    /// Says once a run which rate properties the application set that the rate control in
    /// use ignores (a user used to `svtav1enc`, where a target bitrate alone means VBR, would
    /// otherwise get a CRF encode without a word).
    fn warn_ineffective(&self, settings: &Settings) {
        let texts = settings.ineffective(&self.explicit.lock().unwrap());
        if texts.is_empty()
            || std::mem::replace(&mut self.state.lock().unwrap().warned_ineffective, true)
        {
            return;
        }
        let text = texts.join("; ");
        gst::warning!(CAT, imp = self, "{text}");
        gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", text));
    }

    /// Starts an encoder for `incaps` and builds the output caps from its sequence header.
    fn prepare(&self, incaps: &gst::Caps) -> Result<Prepared, PrepareError> {
        let info = gst_video::VideoInfo::from_caps(incaps).map_err(|_| {
            gst::error_msg!(
                gst::CoreError::Negotiation,
                ("input caps {} do not describe raw video", incaps)
            )
        })?;
        if !matches!(info.format(), VideoFormat::I420 | VideoFormat::I42010le) {
            return Err(gst::error_msg!(
                gst::StreamError::Format,
                (
                    "format {} is not supported (I420 and I420_10LE are)",
                    info.format()
                )
            )
            .into());
        }
        let (w, h) = (info.width(), info.height());
        if !(encoder::MIN_SIZE..=encoder::MAX_WIDTH).contains(&w)
            || !(encoder::MIN_SIZE..=encoder::MAX_HEIGHT).contains(&h)
        {
            return Err(gst::error_msg!(
                gst::StreamError::Format,
                (
                    "frame size {}x{} is outside what SVT-AV1 accepts ({}x{} to {}x{})",
                    w,
                    h,
                    encoder::MIN_SIZE,
                    encoder::MIN_SIZE,
                    encoder::MAX_WIDTH,
                    encoder::MAX_HEIGHT
                )
            )
            .into());
        }
        if w % 2 != 0 || h % 2 != 0 {
            return Err(gst::error_msg!(
                gst::StreamError::Format,
                (
                    "frame size {}x{}: SVT-AV1 needs an even width and height for 4:2:0; scale or crop to an even size (videoscale, videocrop)",
                    w,
                    h
                )
            ).into());
        }
        if info.is_interlaced() {
            return Err(gst::error_msg!(
                gst::StreamError::Format,
                ("interlaced input is not supported: deinterlace first")
            )
            .into());
        }
        let settings = self.settings.lock().unwrap().clone();
        settings
            .validate()
            .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        self.warn_ineffective(&settings);
        // Colorimetry of the caps goes into the sequence header (the parameters-string, applied
        // after it, may override it).
        let colorimetry = info.colorimetry();
        let (primaries, transfer, matrix) = (
            colorimetry.primaries().to_iso(),
            colorimetry.transfer().to_iso(),
            colorimetry.matrix().to_iso(),
        );
        let mut colour = Vec::new();
        if primaries != 2 || transfer != 2 || matrix != 2 {
            colour.push(("color-primaries".to_owned(), primaries.to_string()));
            colour.push(("transfer-characteristics".to_owned(), transfer.to_string()));
            colour.push(("matrix-coefficients".to_owned(), matrix.to_string()));
        }
        let full = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
        colour.push(("color-range".to_owned(), u32::from(full).to_string()));
        let parameters = settings
            .parameters(colour)
            .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        let fps = info.fps();
        let setup = EncoderSetup {
            width: w,
            height: h,
            format: info.format(),
            fps: (
                u32::try_from(fps.numer()).unwrap_or(0),
                u32::try_from(fps.denom()).unwrap_or(0),
            ),
            parameters: parameters.clone(),
            force_key_frames: force_key_frames_allowed(&parameters),
        };
        // A name of its own per encoder (at most 15 characters): the threads SVT-AV1 creates
        // from the worker inherit it, which is how the watchdog's activity probe tells this
        // encoder's threads from every other thread of the process.
        static WORKERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "vigil-svt{}",
            WORKERS.fetch_add(1, Ordering::Relaxed) % 100_000
        );
        let mut config = WorkerConfig::new(name, settings.watchdog_timeout);
        config.input_capacity = INPUT_QUEUE;
        config.interrupt = Some(self.interrupt.clone());
        #[cfg(feature = "fault-injection")]
        config
            .set_fault(&settings.fault_injection)
            .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        gst::debug!(
            CAT,
            imp = self,
            "starting SVT-AV1 for {w}x{h} {:?}: {parameters:?}",
            info.format()
        );
        let mut worker = Worker::spawn(config, move |ctx| SvtEncoder::create(setup, ctx))
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        let header = match worker.wait_started() {
            Ok(h) => h,
            Err(WorkerError::Codec(e)) => {
                let kind = match e.kind {
                    CodecErrorKind::Settings => gst::LibraryError::Settings,
                    _ => gst::LibraryError::Init,
                };
                return Err(gst::error_msg!(kind, ("{}", e.message)).into());
            }
            Err(WorkerError::Interrupted) => {
                // The element is being stopped while the codec starts: not a failure. The
                // worker is stopped under its bound; the caller posts nothing while stopping.
                self.stop_worker(worker);
                return Err(gst::error_msg!(
                    gst::CoreError::StateChange,
                    ("the element was stopped while the SVT-AV1 encoder was starting")
                )
                .into());
            }
            Err(e) => {
                // A wedge or panic while starting: one ERROR, with the watchdog details, and
                // no second one from the caller.
                let _ = self.post_error(e);
                return Err(PrepareError::Reported);
            }
        };
        let outcaps = self
            .output_caps(&info, &header)
            .map_err(|m| gst::error_msg!(gst::LibraryError::Init, ("{}", m)))?;
        Ok(Prepared {
            incaps: incaps.clone(),
            outcaps,
            worker,
            delay_frames: encoder_delay_frames(&settings, &parameters, u64::from(w) * u64::from(h)),
            settings,
        })
    }

    fn output_caps(
        &self,
        info: &gst_video::VideoInfo,
        header: &StreamHeader,
    ) -> Result<gst::Caps, String> {
        let (sh, obu) = SequenceHeader::find(&header.obus)
            .map_err(|e| format!("SVT-AV1 returned an unreadable stream header: {e}"))?
            .ok_or("SVT-AV1 returned a stream header without a sequence header")?;
        let av1c = sh.av1c(&header.obus[obu.start..obu.end]);
        let mut b = gst::Caps::builder("video/x-av1")
            .field("stream-format", "obu-stream")
            .field("alignment", "tu")
            .field("profile", sh.profile_name())
            .field("width", info.width() as i32)
            .field("height", info.height() as i32)
            .field("framerate", info.fps())
            .field("pixel-aspect-ratio", info.par())
            .field("chroma-format", "4:2:0")
            .field("bit-depth-luma", u32::from(sh.bit_depth))
            .field("bit-depth-chroma", u32::from(sh.bit_depth))
            .field("codec_data", gst::Buffer::from_mut_slice(av1c));
        if let Some(level) = sh.level_string() {
            b = b.field("level", level);
            b = b.field("tier", if sh.tier == 0 { "main" } else { "high" });
        }
        let colorimetry = info.colorimetry();
        if colorimetry.primaries() != gst_video::VideoColorPrimaries::Unknown
            || colorimetry.matrix() != gst_video::VideoColorMatrix::Unknown
        {
            b = b.field("colorimetry", colorimetry.to_string());
        }
        Ok(b.build())
    }

    /// Timestamps and flags for one packet from the encoder.
    fn finish_packet(&self, state: &mut State, out: EncOutput) -> gst::Buffer {
        let (pts, duration) = state.timestamps.remove(&out.index).unwrap_or((None, None));
        let mut buffer = out.buffer;
        {
            let b = buffer.get_mut().expect("fresh buffer");
            b.set_pts(pts);
            b.set_dts(pts);
            b.set_duration(duration);
            if out.key {
                b.unset_flags(gst::BufferFlags::DELTA_UNIT);
            } else {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        gst::trace!(
            CAT,
            imp = self,
            "packet for frame {} pts {:?} key {}",
            out.index,
            pts,
            out.key
        );
        buffer
    }

    /// Drains the encoder, pushing every packet downstream; returns how the drain ended.
    fn drain(&self) -> Result<vigil_core::RunOutcome, gst::FlowError> {
        let Some((mut worker, generation)) = self.lend_worker() else {
            return Ok(vigil_core::RunOutcome::Completed);
        };
        let srcpad = self.obj().src_pad().clone();
        let result = worker.drain(|out| {
            let buffer = {
                let mut state = self.state.lock().unwrap();
                self.finish_packet(&mut state, out)
            };
            srcpad.push(buffer).map(|_| ())
        });
        self.return_worker(worker, generation);
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(self.post_error(e)),
            Err(flow) => Err(flow),
        }
    }

    /// Pushes out every frame the encoder holds, mid-stream, and stops it (SVT-AV1 takes no
    /// picture after its end of stream). With `restart`, the next frame starts a new encoder
    /// for the same caps (a key frame and a sequence header); without, new caps will. False
    /// when the run failed (reported) or downstream refused the data.
    fn drain_held(&self, restart: bool) -> bool {
        match self.drain() {
            Ok(outcome) => {
                if vigil_core::report_outcome(&self.element(), WHAT, outcome).is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
        let old = {
            let mut state = self.state.lock().unwrap();
            state.reconfigure |= restart;
            state.worker.take()
        };
        if let Some(w) = old {
            self.stop_worker(w);
        }
        true
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

    /// Applies a rate change made while running: everything the encoder holds goes out (a
    /// drain under the watchdog), then an encoder with the new settings starts; the new
    /// stream opens with a key frame and a sequence header, timestamps go on, and the caps
    /// are sent again only if they changed.
    fn reconfigure_now(&self) -> Result<(), gst::FlowError> {
        let Some(incaps) = self.state.lock().unwrap().incaps.clone() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let outcome = self.drain()?;
        vigil_core::report_outcome(&self.element(), WHAT, outcome)?;
        if let Some(old) = self.state.lock().unwrap().worker.take() {
            self.stop_worker(old);
        }
        let prepared = match self.prepare(&incaps) {
            Ok(p) => p,
            Err(msg) => {
                if self.interrupt.load(Ordering::SeqCst) {
                    // Stopped or flushed meanwhile: the change applies at the next frame.
                    self.state.lock().unwrap().reconfigure = true;
                    return Err(gst::FlowError::Flushing);
                }
                self.state.lock().unwrap().failed_caps = Some(incaps);
                if let PrepareError::Post(msg) = msg {
                    self.post_error_message(msg);
                }
                return Err(gst::FlowError::Error);
            }
        };
        let mut state = self.state.lock().unwrap();
        let new_caps =
            (state.outcaps.as_ref() != Some(&prepared.outcaps)).then(|| prepared.outcaps.clone());
        let latency_changed = state.delay_frames != prepared.delay_frames;
        state.delay_frames = prepared.delay_frames;
        state.outcaps = Some(prepared.outcaps);
        state.active = Some(prepared.settings);
        let old = state.worker.replace(prepared.worker);
        drop(state);
        if let Some(old) = old {
            self.stop_worker(old);
        }
        gst::info!(
            CAT,
            imp = self,
            "encoder recreated with the new rate settings in {:?}",
            started.elapsed()
        );
        if let Some(caps) = new_caps {
            self.obj()
                .src_pad()
                .push_event(gst::event::Caps::new(&caps));
        }
        if latency_changed {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        Ok(())
    }

    /// Whether the buffer at `running_time` answers a pending key-frame request.
    fn take_key_request(state: &mut State, running_time: Option<gst::ClockTime>) -> bool {
        let before = state.key_requests.len();
        state.key_requests.retain(|req| match (req, running_time) {
            (None, _) => false,
            (Some(r), Some(rt)) => rt < *r,
            (Some(_), None) => false,
        });
        state.key_requests.len() != before
    }
}

#[glib::object_subclass]
impl ObjectSubclass for VigilSvtAv1Enc {
    const NAME: &'static str = "VigilSvtAv1Enc";
    type Type = super::VigilSvtAv1Enc;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for VigilSvtAv1Enc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            #[allow(unused_mut)]
            let mut props = vec![
                glib::ParamSpecUInt::builder("preset")
                    .nick("Preset")
                    .blurb("Speed preset: 0 is slowest and best, 13 fastest (SvtAv1EncApp --preset)")
                    .minimum(0)
                    .maximum(13)
                    .default_value(DEFAULT_PRESET)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("rate-control", DEFAULT_RATE_CONTROL)
                    .nick("Rate control")
                    .blurb("Rate control mode (cbr needs pred-structure=low-delay)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("crf")
                    .nick("CRF")
                    .blurb("Constant rate factor for rate-control=crf: lower is better quality (--crf)")
                    .minimum(1)
                    .maximum(63)
                    .default_value(DEFAULT_CRF)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("qp")
                    .nick("QP")
                    .blurb("Quantiser for rate-control=cqp (--qp with --aq-mode 0)")
                    .minimum(1)
                    .maximum(63)
                    .default_value(DEFAULT_QP)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("target-bitrate")
                    .nick("Target bitrate")
                    .blurb("Target bitrate in kbit/s for rate-control=vbr and cbr (--tbr)")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(DEFAULT_TARGET_BITRATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-bitrate")
                    .nick("Maximum bitrate")
                    .blurb("Cap in kbit/s for a CRF encode, 0 = no cap (--mbr)")
                    .minimum(0)
                    .maximum(100_000)
                    .default_value(DEFAULT_MAX_BITRATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecInt::builder("keyframe-max-dist")
                    .nick("Maximum key frame distance")
                    .blurb("GOP length in frames as SvtAv1EncApp --keyint: -2 = about 5 seconds, -1 = only the first frame")
                    .minimum(-2)
                    .maximum(i32::MAX)
                    .default_value(DEFAULT_KEYFRAME_MAX_DIST)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("pred-structure", DEFAULT_PRED_STRUCTURE)
                    .nick("Prediction structure")
                    .blurb("Random access (best compression, long delay) or low delay (live)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("lookahead")
                    .nick("Look-ahead")
                    .blurb("Look-ahead in frames, -1 = chosen by SVT-AV1 (--lookahead)")
                    .minimum(-1)
                    .maximum(120)
                    .default_value(DEFAULT_LOOKAHEAD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("scene-change-detection")
                    .nick("Scene change detection")
                    .blurb("Insert key frames at scene changes (--scd)")
                    .default_value(DEFAULT_SCENE_CHANGE_DETECTION)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("film-grain")
                    .nick("Film grain")
                    .blurb("Film grain synthesis denoising level, 0 = off (--film-grain)")
                    .minimum(0)
                    .maximum(50)
                    .default_value(DEFAULT_FILM_GRAIN)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-columns")
                    .nick("Tile columns")
                    .blurb("log2 of the number of tile columns (--tile-columns)")
                    .minimum(0)
                    .maximum(4)
                    .default_value(DEFAULT_TILE_COLUMNS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-rows")
                    .nick("Tile rows")
                    .blurb("log2 of the number of tile rows (--tile-rows)")
                    .minimum(0)
                    .maximum(6)
                    .default_value(DEFAULT_TILE_ROWS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Logical processors SVT-AV1 may use, 0 = all (--lp)")
                    .minimum(0)
                    .maximum(1024)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("parameters-string")
                    .nick("Parameters string")
                    .blurb("SVT-AV1 key=value pairs separated by ':' (as --svtav1-params), applied last; a key SVT-AV1 refuses is an error")
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("watchdog-timeout")
                    .nick("Watchdog timeout")
                    .blurb("Milliseconds the encoder may make no progress (no packet and no CPU time in SVT-AV1's threads) with work pending before it is abandoned and an ERROR is posted, 0 = never")
                    .minimum(0)
                    .maximum(u32::MAX)
                    .default_value(DEFAULT_WATCHDOG_TIMEOUT)
                    .mutable_ready()
                    .build(),
            ];
            #[cfg(feature = "fault-injection")]
            props.push(vigil_core::fault::param_spec());
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.explicit
            .lock()
            .unwrap()
            .insert(pspec.name().to_string());
        let running = {
            let state = self.state.lock().unwrap();
            state
                .active
                .clone()
                .or_else(|| state.prepared.as_ref().map(|p| p.settings.clone()))
        };
        let mut s = self.settings.lock().unwrap();
        if let Some(in_use) = running {
            // An encoder runs: SVT-AV1 1.4 cannot change anything in flight. The rate
            // properties take effect at the next frame by draining the encoder and starting
            // a new one; every other property is refused, with a WARNING, and keeps its value.
            let mut wanted = s.clone();
            apply_setting(&mut wanted, pspec.name(), value);
            if wanted == *s {
                return;
            }
            let refusal = if !LIVE_PROPERTIES.contains(&pspec.name()) {
                Some(format!(
                    "property '{}' cannot change while the encoder runs (only {} can): it keeps {}; set it in the READY or NULL state",
                    pspec.name(),
                    LIVE_PROPERTIES.join(", "),
                    self.property_value(&s, pspec.name())
                        .serialize()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                ))
            } else {
                wanted.validate().err().map(|why| {
                    format!(
                        "property '{}' was not changed while the encoder runs: {why}",
                        pspec.name()
                    )
                })
            };
            if let Some(text) = refusal {
                drop(s);
                gst::warning!(CAT, imp = self, "{text}");
                gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", text));
                return;
            }
            let changes_stream = wanted.parameters(Vec::new()) != in_use.parameters(Vec::new());
            *s = wanted;
            drop(s);
            if changes_stream {
                gst::info!(
                    CAT,
                    imp = self,
                    "'{}' changed while running: the encoder is recreated at the next frame",
                    pspec.name()
                );
                self.state.lock().unwrap().reconfigure = true;
            } else {
                // No effect on the configured stream (a bitrate in CRF mode): kept for later,
                // and said.
                let mut state = self.state.lock().unwrap();
                let ineffective = state.active.as_mut().map(|active| {
                    apply_setting(active, pspec.name(), value);
                    active.ineffective(&std::iter::once(pspec.name().to_string()).collect())
                });
                drop(state);
                if let Some(text) = ineffective.filter(|t| !t.is_empty()).map(|t| t.join("; ")) {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", text));
                }
            }
            return;
        }
        apply_setting(&mut s, pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        self.property_value(&s, pspec.name())
    }
}

/// Properties a running encoder takes (by draining and starting a new one).
const LIVE_PROPERTIES: &[&str] = &["target-bitrate", "max-bitrate", "crf", "qp"];

fn apply_setting(s: &mut Settings, name: &str, value: &glib::Value) {
    {
        match name {
            "preset" => s.preset = value.get().unwrap(),
            "rate-control" => s.rate_control = value.get().unwrap(),
            "crf" => s.crf = value.get().unwrap(),
            "qp" => s.qp = value.get().unwrap(),
            "target-bitrate" => s.target_bitrate = value.get().unwrap(),
            "max-bitrate" => s.max_bitrate = value.get().unwrap(),
            "keyframe-max-dist" => s.keyframe_max_dist = value.get().unwrap(),
            "pred-structure" => s.pred_structure = value.get().unwrap(),
            "lookahead" => s.lookahead = value.get().unwrap(),
            "scene-change-detection" => s.scene_change_detection = value.get().unwrap(),
            "film-grain" => s.film_grain = value.get().unwrap(),
            "tile-columns" => s.tile_columns = value.get().unwrap(),
            "tile-rows" => s.tile_rows = value.get().unwrap(),
            "threads" => s.threads = value.get().unwrap(),
            "parameters-string" => {
                s.parameters_string = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "watchdog-timeout" => s.watchdog_timeout = value.get().unwrap(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => {
                s.fault_injection = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl VigilSvtAv1Enc {
    fn property_value(&self, s: &Settings, name: &str) -> glib::Value {
        match name {
            "preset" => s.preset.to_value(),
            "rate-control" => s.rate_control.to_value(),
            "crf" => s.crf.to_value(),
            "qp" => s.qp.to_value(),
            "target-bitrate" => s.target_bitrate.to_value(),
            "max-bitrate" => s.max_bitrate.to_value(),
            "keyframe-max-dist" => s.keyframe_max_dist.to_value(),
            "pred-structure" => s.pred_structure.to_value(),
            "lookahead" => s.lookahead.to_value(),
            "scene-change-detection" => s.scene_change_detection.to_value(),
            "film-grain" => s.film_grain.to_value(),
            "tile-columns" => s.tile_columns.to_value(),
            "tile-rows" => s.tile_rows.to_value(),
            "threads" => s.threads.to_value(),
            "parameters-string" => s.parameters_string.to_value(),
            "watchdog-timeout" => s.watchdog_timeout.to_value(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => s.fault_injection.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for VigilSvtAv1Enc {}

impl ElementImpl for VigilSvtAv1Enc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vigil SVT-AV1 encoder",
                "Codec/Encoder/Video",
                "AV1 encoder on SVT-AV1 whose encoding runs on a watched worker thread: a wedged or panicked encoder is an ERROR, never a hang or a clean EOS over truncated output",
                "vigil developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst_video::VideoCapsBuilder::new()
                .format_list([VideoFormat::I420, VideoFormat::I42010le])
                .width_range(encoder::MIN_SIZE as i32..=encoder::MAX_WIDTH as i32)
                .height_range(encoder::MIN_SIZE as i32..=encoder::MAX_HEIGHT as i32)
                .build();
            let src = gst::Caps::builder("video/x-av1")
                .field("stream-format", "obu-stream")
                .field("alignment", "tu")
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
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

impl BaseTransformImpl for VigilSvtAv1Enc {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.interrupt.store(false, Ordering::SeqCst);
        let settings = self.settings.lock().unwrap().clone();
        settings
            .validate()
            .map_err(|m| gst::error_msg!(gst::LibraryError::Settings, ("{}", m)))?;
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let mut state = {
            let mut guard = self.state.lock().unwrap();
            self.generation.fetch_add(1, Ordering::SeqCst);
            std::mem::take(&mut *guard)
        };
        if let Some(p) = state.prepared.take() {
            self.stop_worker(p.worker);
        }
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
            let out = out.get_mut().unwrap();
            for s in caps.iter() {
                // 8-bit first: it is what most sources produce and what users expect.
                let mut outs = if direction == gst::PadDirection::Sink {
                    vec![
                        gst::Structure::builder("video/x-av1")
                            .field("stream-format", "obu-stream")
                            .field("alignment", "tu")
                            .build(),
                    ]
                } else {
                    ["I420", "I420_10LE"]
                        .into_iter()
                        .map(|f| {
                            gst::Structure::builder("video/x-raw")
                                .field("format", f)
                                .build()
                        })
                        .collect()
                };
                for n in &mut outs {
                    for f in ["width", "height", "framerate", "pixel-aspect-ratio"] {
                        if let Ok(v) = s.value(f) {
                            n.set_value(f, v.clone());
                        }
                    }
                }
                for n in outs {
                    out.append_structure(n);
                }
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
        if direction != gst::PadDirection::Sink || !caps.is_fixed() {
            return fixated(othercaps);
        }
        {
            let state = self.state.lock().unwrap();
            if state.incaps.as_ref() == Some(caps)
                && state.worker.is_some()
                && let Some(c) = &state.outcaps
            {
                return c.clone();
            }
            if let Some(p) = &state.prepared
                && &p.incaps == caps
            {
                return p.outcaps.clone();
            }
            if state.failed_caps.as_ref() == Some(caps) {
                return fixated(othercaps);
            }
        }
        match self.prepare(caps) {
            Ok(prepared) => {
                let out = prepared.outcaps.clone();
                let old = self.state.lock().unwrap().prepared.replace(prepared);
                if let Some(old) = old {
                    self.stop_worker(old.worker);
                }
                let fixed = othercaps.intersect(&out);
                if fixed.is_empty() {
                    out
                } else {
                    fixated(fixed)
                }
            }
            Err(e) => {
                // Stopping (or flushing) while the codec starts is not a failure to report.
                if !self.interrupt.load(Ordering::SeqCst) {
                    self.state.lock().unwrap().failed_caps = Some(caps.clone());
                    if let PrepareError::Post(msg) = e {
                        self.post_error_message(msg);
                    }
                }
                fixated(othercaps)
            }
        }
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let mut state = self.state.lock().unwrap();
        if state.incaps.as_ref() == Some(incaps) && state.worker.is_some() {
            return Ok(());
        }
        let prepared = match state.prepared.take() {
            Some(p) if &p.incaps == incaps => p,
            other => {
                // No encoder prepared for these caps (a preparation interrupted by a flush, or
                // one for other caps): prepare it now.
                let refused = state.failed_caps.as_ref() == Some(incaps);
                drop(state);
                if let Some(p) = other {
                    self.stop_worker(p.worker);
                }
                // Caps already refused (and reported) are not tried again: one failure, one
                // ERROR.
                let prepared = if refused {
                    Err(None)
                } else {
                    self.prepare(incaps).map_err(PrepareError::into_message)
                };
                match prepared {
                    Ok(p) => {
                        state = self.state.lock().unwrap();
                        p
                    }
                    Err(Some(_)) if self.interrupt.load(Ordering::SeqCst) => {
                        // A stop or a flush interrupted the preparation: not a failure of
                        // these caps. Refusing them would be a not-negotiated ERROR from
                        // upstream while the pipeline is only stopping; they are accepted and
                        // the encoder starts at the next frame (data during the stop is
                        // refused as flushing).
                        let mut state = self.state.lock().unwrap();
                        if let Some(old) = state.worker.take() {
                            drop(state);
                            self.stop_worker(old);
                            state = self.state.lock().unwrap();
                        }
                        state.info = gst_video::VideoInfo::from_caps(incaps).ok();
                        state.incaps = Some(incaps.clone());
                        state.outcaps = Some(outcaps.clone());
                        state.reconfigure = true;
                        return Ok(());
                    }
                    Err(msg) => {
                        if let Some(msg) = msg {
                            self.state.lock().unwrap().failed_caps = Some(incaps.clone());
                            self.post_error_message(msg);
                        }
                        return Err(gst::loggable_error!(
                            CAT,
                            "the SVT-AV1 encoder could not be configured for {}",
                            incaps
                        ));
                    }
                }
            }
        };
        let old = state.worker.replace(prepared.worker);
        state.active = Some(prepared.settings);
        state.info = gst_video::VideoInfo::from_caps(incaps).ok();
        state.incaps = Some(incaps.clone());
        state.outcaps = Some(outcaps.clone());
        let latency_changed = state.delay_frames != prepared.delay_frames;
        state.delay_frames = prepared.delay_frames;
        drop(state);
        if let Some(old) = old {
            self.stop_worker(old);
        }
        if latency_changed {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        Ok(())
    }

    /// Upstream gets a video buffer pool for the input caps, so it fills the same frame memory
    /// again rather than a fresh, page-faulted allocation per frame, and `VideoMeta`: the
    /// worker maps each frame with `VideoFrameRef` and hands SVT-AV1 the planes' own pointers
    /// and strides, so padded or offset planes are read as they are, without a copy upstream.
    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        let (caps, need_pool) = query.get_owned();
        let Some(caps) = caps else {
            return Err(gst::loggable_error!(CAT, "allocation query without caps"));
        };
        let info = gst_video::VideoInfo::from_caps(&caps)
            .map_err(|_| gst::loggable_error!(CAT, "allocation query with caps {caps}"))?;
        if query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_none()
        {
            query.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        if query.allocation_pools().next().is_some() {
            return Ok(());
        }
        let size = info.size() as u32;
        // No upper bound: the worker's bounded queue already holds upstream back, and a bounded
        // pool would add a second wait, inside upstream, that no watchdog sees.
        let pool = gst_video::VideoBufferPool::new();
        let mut config = pool.config();
        config.set_params(Some(&caps), size, POOL_MIN_BUFFERS, 0);
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
        pool.set_config(config)
            .map_err(|e| gst::loggable_error!(CAT, "video buffer pool for {caps}: {e}"))?;
        gst::debug!(
            CAT,
            imp = self,
            "proposing a pool of {size}-byte buffers (min {POOL_MIN_BUFFERS}, need-pool {need_pool})"
        );
        query.add_allocation_pool(Some(&pool), size, POOL_MIN_BUFFERS, 0);
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            {
                let sinkpad = self.obj().sink_pad().clone();
                let mut upstream = gst::query::Latency::new();
                if !sinkpad.peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                let (frames, fps) = {
                    let state = self.state.lock().unwrap();
                    let fps = state.info.as_ref().map(|i| i.fps());
                    (state.delay_frames, fps)
                };
                let ours = match fps {
                    Some(f) if f.numer() > 0 => gst::ClockTime::SECOND
                        .mul_div_ceil(frames * f.denom() as u64, f.numer() as u64)
                        .unwrap_or(gst::ClockTime::ZERO),
                    _ => gst::ClockTime::ZERO,
                };
                gst::debug!(CAT, imp = self, "latency: {frames} frames = {ours}");
                q.set(live, min + ours, max.map(|m| m + ours));
                return true;
            }
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::Eos(_) => {
                let element = self.element();
                if self.state.lock().unwrap().failed_caps.is_some() {
                    // The encoder could not start for these caps (reported).
                    return vigil_core::forward_eos_after_failure(&element, || {
                        self.parent_sink_event(event)
                    });
                }
                let outcome = match self.drain() {
                    Ok(o) => o,
                    Err(_) => {
                        // Reported already (or downstream refused the data): EOS goes on in
                        // PLAYING so muxers can finalise.
                        return vigil_core::forward_eos_after_failure(&element, || {
                            self.parent_sink_event(event)
                        });
                    }
                };
                let ok = vigil_core::conclude_drain(&element, WHAT, outcome, || {
                    self.parent_sink_event(event)
                });
                return ok.is_ok();
            }
            EventView::Caps(c) => {
                let changed = {
                    let state = self.state.lock().unwrap();
                    state.worker.is_some() && state.incaps.as_ref() != Some(&c.caps_owned())
                };
                // Caps change mid-stream: everything the old encoder holds goes out first.
                if changed && !self.drain_held(false) {
                    return vigil_core::event_answer(false, &self.interrupt);
                }
            }
            // A new segment without a flush (a non-flushing seek) or the end of a segment (a
            // segment seek, gapless looping): the frames the encoder holds belong before it, so
            // they go out first, as GstVideoEncoder drains; otherwise they would follow the new
            // segment with old timestamps (clipped downstream), or wait for frames that do not
            // come.
            EventView::Segment(_) | EventView::SegmentDone(_) => {
                let holds = {
                    let state = self.state.lock().unwrap();
                    state.worker.is_some() && !state.timestamps.is_empty()
                };
                if holds && !self.drain_held(true) {
                    return vigil_core::event_answer(false, &self.interrupt);
                }
            }
            _ => {}
        }
        match event.view() {
            EventView::Segment(s) => {
                if let Ok(seg) = s.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().unwrap().segment = seg;
                }
            }
            EventView::FlushStart(_) => self.interrupt.store(true, Ordering::SeqCst),
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
                    self.state.lock().unwrap().timestamps.clear();
                }
            }
            EventView::CustomDownstream(_) => {
                if let Ok(fku) = gst_video::DownstreamForceKeyUnitEvent::parse(&event) {
                    self.state
                        .lock()
                        .unwrap()
                        .key_requests
                        .push(fku.running_time);
                }
            }
            _ => {}
        }
        let handled = self.parent_sink_event(event);
        vigil_core::event_answer(handled, &self.interrupt)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let Ok(fku) = gst_video::UpstreamForceKeyUnitEvent::parse(&event) {
            gst::debug!(
                CAT,
                imp = self,
                "key unit requested at {:?}",
                fku.running_time
            );
            self.state
                .lock()
                .unwrap()
                .key_requests
                .push(fku.running_time);
            return true;
        }
        self.parent_src_event(event)
    }

    fn submit_input_buffer(
        &self,
        _is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let pending = std::mem::take(&mut self.state.lock().unwrap().reconfigure);
        if pending {
            self.reconfigure_now()?;
        }
        let can_force = self.settings.lock().unwrap().can_force_key_frames();
        let (mut worker, generation, input) = {
            let mut state = self.state.lock().unwrap();
            let Some(info) = state.info.clone() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["no caps before the first buffer"]
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            // Input is clipped to the segment, as GstVideoEncoder does: a frame wholly outside
            // it is not encoded (after an accurate seek the source starts at the frame that
            // contains the target), one that starts before it is stamped at the segment start,
            // so the key frame that opens the stream after a seek is inside the segment and
            // no downstream element clips it away.
            let (pts, duration) = match inbuf.pts() {
                Some(pts) => {
                    let stop = inbuf.duration().and_then(|d| pts.checked_add(d));
                    match state.segment.clip(pts, stop) {
                        None => {
                            gst::debug!(CAT, imp = self, "frame at {pts} outside the segment");
                            return Ok(gst::FlowSuccess::Ok);
                        }
                        Some((start, stop)) => {
                            let start = start.unwrap_or(pts);
                            let duration = match stop {
                                Some(stop) if stop >= start => Some(stop - start),
                                _ => inbuf.duration(),
                            };
                            (Some(start), duration)
                        }
                    }
                }
                None => (None, inbuf.duration()),
            };
            let Some(worker) = state.worker.take() else {
                return Err(self.no_worker());
            };
            let generation = self.generation.load(Ordering::SeqCst);
            let index = state.next_index;
            state.next_index += 1;
            state.timestamps.insert(index, (pts, duration));
            let rt = state.segment.to_running_time(pts);
            let mut force_key = Self::take_key_request(&mut state, rt);
            if force_key && !can_force {
                if !state.warned_force_key {
                    state.warned_force_key = true;
                    drop(state);
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Encode,
                        [
                            "a key frame was requested, but SVT-AV1 1.4 forces key frames only with rate-control crf or cqp: the request is ignored"
                        ]
                    );
                }
                force_key = false;
            }
            (
                worker,
                generation,
                EncInput {
                    buffer: inbuf,
                    info,
                    index,
                    force_key,
                },
            )
        };
        let result = worker.submit(input);
        self.return_worker(worker, generation);
        match result {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(e) => Err(self.post_error(e)),
        }
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let mut state = self.state.lock().unwrap();
        let Some(worker) = state.worker.as_mut() else {
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        match worker.try_output() {
            Ok(Some(out)) => {
                let buffer = self.finish_packet(&mut state, out);
                Ok(GenerateOutputSuccess::Buffer(buffer))
            }
            Ok(None) => Ok(GenerateOutputSuccess::NoOutput),
            Err(e) => {
                drop(state);
                Err(self.post_error(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_string_splits_pairs_and_names_bad_items() {
        let p = parse_parameters_string("enable-overlays=1:tune=0").unwrap();
        assert_eq!(
            p,
            vec![
                ("enable-overlays".into(), "1".into()),
                ("tune".into(), "0".into())
            ]
        );
        let e = parse_parameters_string("enable-overlays").unwrap_err();
        assert!(e.contains("enable-overlays"), "{e}");
    }

    #[test]
    fn impossible_combinations_are_refused_with_a_reason() {
        let s = Settings {
            rate_control: RateControl::Cbr,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("low-delay"));
        let s = Settings {
            rate_control: RateControl::Vbr,
            max_bitrate: 1000,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("max-bitrate"));
    }
}
