// SPDX-License-Identifier: MPL-2.0
//! `vigilfailoversrc`: the element. Properties, action signals, pads and state changes; the
//! inputs, the controller and the output threads live in the sibling modules.
//!
//! The bin's `video` and `audio` pads are its own (not ghost pads): the output threads push on
//! them directly, so the bin controls every timestamp and every flow return. The inputs run in
//! pipelines of their own (see `input.rs`): none of their messages reach the application's
//! bus; the element reports through `status`, `active-input`, `statistics` and its own
//! element messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::controller::Controller;
use super::fault::{FaultThread, Faults, run_guarded};
use super::input::{InputSpec, RunConfig, Source};
use super::output::{AUDIO_TICK, Output, OutputThread, PadFormat, audio_sample_bytes, make_filler};
use super::types::{Event, Report, Rules, Standby, Status, Timing};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilfailoversrc",
        gst::DebugColorFlags::empty(),
        Some("vigil failover source"),
    )
});

const DEFAULT_VIDEO_CAPS: &str =
    "video/x-raw,format=I420,width=1280,height=720,framerate=30/1,pixel-aspect-ratio=1/1";
const DEFAULT_AUDIO_CAPS: &str =
    "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";
const DEFAULT_ENABLE_AUDIO: bool = true;
const DEFAULT_STALL_TIMEOUT: u32 = 3000;
const DEFAULT_STANDBY: Standby = Standby::Warm;
const DEFAULT_RETRY_BACKOFF_MIN: u32 = 1000;
const DEFAULT_RETRY_BACKOFF_MAX: u32 = 30000;
const DEFAULT_FAILBACK_DELAY: i64 = 10000;
const DEFAULT_EXHAUSTED_TIMEOUT: i64 = -1;
const DEFAULT_FILL_GAPS: bool = true;
const DEFAULT_START_TIMEOUT: u32 = 5000;
const DEFAULT_BLACK_TIMEOUT: u32 = 0;
const DEFAULT_BLACK_THRESHOLD: u32 = 32;
const DEFAULT_FREEZE_TIMEOUT: u32 = 0;
const DEFAULT_SILENCE_TIMEOUT: u32 = 0;
const DEFAULT_SILENCE_THRESHOLD: i32 = -50;
const DEFAULT_CLEAR_TIME: u32 = 1000;
/// How long a stop waits for the controller (which itself bounds each input's teardown).
const CONTROLLER_JOIN_LIMIT: Duration = Duration::from_secs(8);

#[derive(Debug, Clone)]
struct Settings {
    video_caps: gst::Caps,
    audio_caps: gst::Caps,
    enable_audio: bool,
    stall_timeout: u32,
    standby: Standby,
    retry_backoff_min: u32,
    retry_backoff_max: u32,
    failback_delay: i64,
    exhausted_timeout: i64,
    fill_gaps: bool,
    start_timeout: u32,
    black_timeout: u32,
    black_threshold: u32,
    freeze_timeout: u32,
    silence_timeout: u32,
    silence_threshold: i32,
    clear_time: u32,
    #[cfg(feature = "fault-injection")]
    fault_injection: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            video_caps: DEFAULT_VIDEO_CAPS.parse().expect("default video caps"),
            audio_caps: DEFAULT_AUDIO_CAPS.parse().expect("default audio caps"),
            enable_audio: DEFAULT_ENABLE_AUDIO,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            standby: DEFAULT_STANDBY,
            retry_backoff_min: DEFAULT_RETRY_BACKOFF_MIN,
            retry_backoff_max: DEFAULT_RETRY_BACKOFF_MAX,
            failback_delay: DEFAULT_FAILBACK_DELAY,
            exhausted_timeout: DEFAULT_EXHAUSTED_TIMEOUT,
            fill_gaps: DEFAULT_FILL_GAPS,
            start_timeout: DEFAULT_START_TIMEOUT,
            black_timeout: DEFAULT_BLACK_TIMEOUT,
            black_threshold: DEFAULT_BLACK_THRESHOLD,
            freeze_timeout: DEFAULT_FREEZE_TIMEOUT,
            silence_timeout: DEFAULT_SILENCE_TIMEOUT,
            silence_threshold: DEFAULT_SILENCE_THRESHOLD,
            clear_time: DEFAULT_CLEAR_TIME,
            #[cfg(feature = "fault-injection")]
            fault_injection: String::new(),
        }
    }
}

/// The configured inputs, in priority order.
#[derive(Default)]
struct Inputs {
    specs: Vec<InputSpec>,
    next_id: u64,
}

impl Inputs {
    fn add(&mut self, name: String, source: Source) -> bool {
        if self.specs.iter().any(|s| s.name == name) {
            return false;
        }
        self.next_id += 1;
        self.specs.push(InputSpec {
            id: self.next_id,
            name,
            source,
        });
        true
    }
}

/// Threads and formats of a running element (READY to PAUSED until PAUSED to READY).
struct State {
    events: Sender<Event>,
    controller: JoinHandle<()>,
    output: Arc<Output>,
    output_threads: Vec<JoinHandle<()>>,
    video: PadFormat,
    audio: Option<PadFormat>,
}

pub struct FailoverSrc {
    settings: Mutex<Settings>,
    inputs: Mutex<Inputs>,
    state: Mutex<Option<State>>,
    report: Arc<Mutex<Report>>,
    /// The output frame period in ns (for the controller's notion of "flowing").
    frame_period_ns: AtomicU64,
    video_pad: gst::Pad,
    audio_pad: gst::Pad,
    /// Inputs refused while the element had no bus (set through `uris` before it was in a
    /// pipeline, as gst-launch-1.0 does): their WARNINGs are posted when it starts.
    refused: Mutex<Vec<String>>,
}

/// Completes `caps` with `defaults` for the fields it leaves open and fixates it.
fn complete_caps(caps: &gst::Caps, defaults: &str, media: &str) -> Result<gst::Caps, String> {
    let defaults: gst::Structure = defaults.parse().expect("default caps structure");
    let s = caps
        .structure(0)
        .ok_or_else(|| format!("the {media} caps are empty"))?;
    if s.name() != defaults.name() {
        return Err(format!(
            "the {media} caps must be {}, not {}",
            defaults.name(),
            s.name()
        ));
    }
    let mut s = s.to_owned();
    for (field, value) in defaults.iter() {
        if !s.has_field(field) {
            s.set_value(field, value.clone());
        }
    }
    let mut out = gst::Caps::builder_full().structure(s).build();
    out.fixate();
    Ok(out)
}

impl FailoverSrc {
    pub(super) fn input_specs(&self) -> Vec<InputSpec> {
        self.inputs.lock().unwrap().specs.clone()
    }

    pub(super) fn timing(&self) -> Timing {
        let s = self.settings.lock().unwrap();
        let ms = |v: u32| Duration::from_millis(v as u64);
        let frame = Duration::from_nanos(self.frame_period_ns.load(Ordering::Relaxed));
        // Never shorter than three output frames: a stall-timeout below the frame interval
        // would fail every healthy input between two of its frames.
        let stall = ms(s.stall_timeout.max(1)).max(frame * 3);
        Timing {
            backoff_min: ms(s.retry_backoff_min),
            backoff_max: ms(s.retry_backoff_max.max(s.retry_backoff_min)),
            failback_delay: (s.failback_delay >= 0)
                .then(|| Duration::from_millis(s.failback_delay as u64)),
            exhausted_timeout: (s.exhausted_timeout >= 0)
                .then(|| Duration::from_millis(s.exhausted_timeout as u64)),
            standby: s.standby,
            rules: Rules {
                stall_timeout: stall,
                start_timeout: ms(s.start_timeout.max(1)),
                flow_window: (frame * 4).max(Duration::from_millis(200)).min(stall),
                black_timeout: (s.black_timeout > 0).then(|| ms(s.black_timeout)),
                freeze_timeout: (s.freeze_timeout > 0).then(|| ms(s.freeze_timeout)),
                silence_timeout: (s.silence_timeout > 0).then(|| ms(s.silence_timeout)),
                clear_time: ms(s.clear_time),
                audio_output: s.enable_audio,
            },
            black_threshold: s.black_threshold,
            silence_threshold: s.silence_threshold,
        }
    }

    fn reconfigure(&self) {
        if let Some(state) = self.state.lock().unwrap().as_ref() {
            let _ = state.events.send(Event::Reconfigure);
        }
    }

    /// Whether `uri` is a URI whose protocol has a source element here; the reason if not.
    fn check_uri(uri: &str) -> Result<(), String> {
        let protocol = uri.split_once("://").map(|(p, _)| p).unwrap_or_default();
        let valid = protocol
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && protocol
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(format!("'{uri}' is not a URI (protocol://location)"));
        }
        // The registry's own answer: is there a source element for it?
        if gst::Element::make_from_uri(gst::URIType::Src, uri, None).is_err() {
            return Err(format!(
                "'{uri}': no source element handles the protocol '{protocol}' (is its plugin installed?)"
            ));
        }
        Ok(())
    }

    /// Whether `element` can be an input: a source (no sink pad, some source pad or template)
    /// that no other bin holds; the reason if not (`identity` and `fakesink` were accepted and
    /// sat in `starting` for ever, an element of another pipeline failed only at its start).
    fn check_source(element: &gst::Element) -> Result<(), String> {
        let name = element.name();
        if let Some(parent) = element.parent() {
            return Err(format!(
                "'{name}' is already in '{}': an input must be an element of its own",
                parent.name()
            ));
        }
        let templates = element.pad_template_list();
        let sink = !element.sink_pads().is_empty()
            || templates
                .iter()
                .any(|t| t.direction() == gst::PadDirection::Sink);
        let src = !element.src_pads().is_empty()
            || templates
                .iter()
                .any(|t| t.direction() == gst::PadDirection::Src);
        if sink || !src {
            return Err(format!(
                "'{name}' is not a source element (an input needs source pads and no sink pad)"
            ));
        }
        Ok(())
    }

    /// The WARNING for a refused input; without a bus yet (`uris` set before the element is
    /// in a pipeline, as gst-launch-1.0 does) it is posted when the element starts.
    fn warn_refused(&self, why: String) {
        if self.obj().parent().is_none() {
            self.refused.lock().unwrap().push(why);
        } else {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::NotFound,
                ("input refused: {}", why)
            );
        }
    }

    /// Adds a URI input if it is usable; otherwise a WARNING says why and nothing is added.
    fn add_uri(&self, uri: String) -> bool {
        if let Err(why) = Self::check_uri(&uri) {
            self.warn_refused(why);
            return false;
        }
        self.add_input(uri.clone(), Source::Uri(uri))
    }

    fn add_input(&self, name: String, source: Source) -> bool {
        let added = self.inputs.lock().unwrap().add(name.clone(), source);
        gst::debug!(CAT, imp = self, "add input {name}: {added}");
        if added {
            self.reconfigure();
        }
        added
    }

    fn remove_input(&self, name: &str) -> bool {
        let removed = {
            let mut inputs = self.inputs.lock().unwrap();
            let n = inputs.specs.len();
            inputs.specs.retain(|s| s.name != name);
            inputs.specs.len() != n
        };
        gst::debug!(CAT, imp = self, "remove input {name}: {removed}");
        if removed {
            self.reconfigure();
        }
        removed
    }

    fn switch_to(&self, name: &str) -> bool {
        let id = self
            .inputs
            .lock()
            .unwrap()
            .specs
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.id);
        match (id, self.state.lock().unwrap().as_ref()) {
            (Some(id), Some(state)) => state.events.send(Event::SwitchTo(id)).is_ok(),
            _ => false,
        }
    }

    fn set_uris(&self, uris: Vec<String>) {
        {
            let mut inputs = self.inputs.lock().unwrap();
            let old = std::mem::take(&mut inputs.specs);
            let mut seen = std::collections::HashSet::new();
            for uri in uris {
                if !seen.insert(uri.clone()) {
                    continue;
                }
                if let Err(why) = Self::check_uri(&uri) {
                    self.warn_refused(why);
                    continue;
                }
                if let Some(spec) = old
                    .iter()
                    .find(|s| matches!(&s.source, Source::Uri(u) if *u == uri))
                {
                    inputs.specs.push(spec.clone());
                } else {
                    inputs.add(uri.clone(), Source::Uri(uri));
                }
            }
            // Application source elements keep their place after the URIs.
            for spec in old {
                if matches!(spec.source, Source::Element(_)) {
                    inputs.specs.push(spec);
                }
            }
        }
        self.reconfigure();
    }

    fn statistics(&self) -> gst::Structure {
        let r = self.report.lock().unwrap().clone();
        let output = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.output.clone());
        let count = |f: fn(&Output) -> &AtomicU64| {
            output
                .as_ref()
                .map(|o| f(o).load(Ordering::Relaxed))
                .unwrap_or(0)
        };
        let inputs = gst::Array::new(r.inputs.iter().enumerate().map(|(i, input)| {
            gst::Structure::builder("input")
                .field("name", &input.name)
                .field("priority", i as u32)
                .field("state", input.state)
                .field("on-air", input.on_air)
                .field("retries", input.retries)
                .field("failures", input.failures)
                .field("last-error", input.last_error.clone().unwrap_or_default())
                .field("last-data-ms-ago", input.last_data_ms_ago)
                .field("buffers", input.buffers)
                .field("has-video", input.has_video)
                .field("has-audio", input.has_audio)
                .field("frame-interval-ms", input.frame_interval_ms)
                .field("black-ms", input.black_ms)
                .field("frozen-ms", input.frozen_ms)
                .field("silent-ms", input.silent_ms)
                .build()
                .to_send_value()
        }));
        let history = gst::Array::new(r.history.iter().map(|s| {
            gst::Structure::builder("switch")
                .field("from", &s.from)
                .field("to", &s.to)
                .field("reason", s.reason.as_str())
                .field("wallclock-ms", s.wallclock_ms)
                .build()
                .to_send_value()
        }));
        gst::Structure::builder("vigil-failover-statistics")
            .field("status", r.status.nick())
            .field("status-detail", r.detail)
            .field("active-input", r.active_input.unwrap_or_default())
            .field("switches", r.switches)
            .field("frames", count(|o| &o.frames))
            .field("filler-frames", count(|o| &o.filler_frames))
            .field("repeated-frames", count(|o| &o.repeated_frames))
            .field("audio-buffers", count(|o| &o.audio_buffers))
            .field("late-skipped-frames", count(|o| &o.late_skipped_frames))
            .field(
                "late-skipped-audio-ms",
                count(|o| &o.late_skipped_audio_ns) / 1_000_000,
            )
            .field("inputs", inputs)
            .field("switch-history", history)
            .build()
    }

    fn set_status(&self, status: Status) {
        let changed = {
            let mut r = self.report.lock().unwrap();
            let changed = r.status != status;
            r.status = status;
            if status == Status::Stopped {
                r.active_input = None;
                r.inputs.clear();
            }
            changed
        };
        if changed {
            let obj = self.obj();
            obj.notify("status");
            obj.notify("active-input");
            let s = gst::Structure::builder(super::STATUS_MESSAGE)
                .field("status", status.nick())
                .field("active-input", "")
                .build();
            let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
        }
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        for why in std::mem::take(&mut *self.refused.lock().unwrap()) {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::NotFound,
                ("input refused: {}", why)
            );
        }
        let settings = self.settings.lock().unwrap().clone();
        let settings_error = |e: String| gst::error_msg!(gst::CoreError::Negotiation, ["{}", e]);
        let video_caps = complete_caps(&settings.video_caps, DEFAULT_VIDEO_CAPS, "video")
            .map_err(settings_error)?;
        // Bad caps are refused here, naming `video-caps` (they failed later as a link error
        // between internal elements), and a range or list is not silently fixated.
        if !settings.video_caps.is_fixed() {
            return Err(settings_error(format!(
                "video-caps must be fixed (one value per field, no range or list): {}",
                settings.video_caps
            )));
        }
        let info = gst_video::VideoInfo::from_caps(&video_caps).map_err(|_| {
            settings_error(format!(
                "video-caps is not a raw video format GStreamer can use: {video_caps}"
            ))
        })?;
        if info.width() == 0 || info.height() == 0 {
            return Err(settings_error(format!(
                "video-caps needs a width and a height above 0: {video_caps}"
            )));
        }
        // Caps the output could not be converted to would fail every input at run time (each
        // one blamed, for ever) instead of failing here, naming the property.
        let par = info.par();
        if par.numer() <= 0 || par.denom() <= 0 {
            return Err(settings_error(format!(
                "video-caps needs a positive pixel-aspect-ratio, not {par}: {video_caps}"
            )));
        }
        if info.interlace_mode() != gst_video::VideoInterlaceMode::Progressive {
            return Err(settings_error(format!(
                "video-caps must be progressive (the inputs are deinterlaced to it), not interlace-mode={}: {video_caps}",
                info.interlace_mode()
            )));
        }
        let vs = video_caps.structure(0).unwrap();
        let fps = vs
            .get::<gst::Fraction>("framerate")
            .map_err(|_| settings_error("video-caps needs a fixed framerate".into()))?;
        if fps.numer() <= 0 || fps.denom() <= 0 {
            return Err(settings_error(format!(
                "video-caps needs a positive framerate, not {fps}"
            )));
        }
        let filler = make_filler(&video_caps, 0)
            .map_err(|e| gst::error_msg!(gst::CoreError::Negotiation, ["{}", e]))?;
        let video = PadFormat {
            caps: video_caps.clone(),
            filler,
            rate: (fps.numer() as u64, fps.denom() as u64),
            bpf: 0,
        };
        self.frame_period_ns
            .store(video.period().nseconds(), Ordering::Relaxed);

        let audio = if settings.enable_audio {
            let caps = complete_caps(&settings.audio_caps, DEFAULT_AUDIO_CAPS, "audio")
                .map_err(settings_error)?;
            if !settings.audio_caps.is_fixed() {
                return Err(settings_error(format!(
                    "audio-caps must be fixed (one value per field, no range or list): {}",
                    settings.audio_caps
                )));
            }
            let s = caps.structure(0).unwrap();
            let (Ok(rate), Ok(channels)) = (s.get::<i32>("rate"), s.get::<i32>("channels")) else {
                return Err(settings_error(format!(
                    "audio-caps needs a rate and a number of channels: {caps}"
                )));
            };
            if rate <= 0 || channels <= 0 {
                return Err(settings_error(format!(
                    "audio-caps needs a positive rate and number of channels: {caps}"
                )));
            }
            let (rate, channels) = (rate as u64, channels as usize);
            let format = s.get::<&str>("format").unwrap_or("S16LE");
            let bytes = audio_sample_bytes(format)
                .ok_or_else(|| settings_error(format!("unsupported audio format {format}")))?;
            if s.get::<&str>("layout").unwrap_or("interleaved") != "interleaved" {
                return Err(settings_error("audio-caps must be interleaved".into()));
            }
            let samples = (rate * AUDIO_TICK.mseconds() / 1000).max(1) as u32;
            let filler = make_filler(&caps, samples)
                .map_err(|e| gst::error_msg!(gst::CoreError::Negotiation, ["{}", e]))?;
            Some(PadFormat {
                caps,
                filler,
                rate: (rate, 1),
                bpf: bytes * channels,
            })
        } else {
            None
        };
        // About 250 ms of audio queued per input at most, whole frames.
        let audio_cap = audio
            .as_ref()
            .map(|a| (a.rate.0 as usize / 4).max(1) * a.bpf)
            .unwrap_or(0);

        #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
        let mut faults = Faults::default();
        #[cfg(feature = "fault-injection")]
        if !settings.fault_injection.trim().is_empty() {
            let plan = super::fault::ThreadFault::parse(&settings.fault_injection)
                .map_err(|e| gst::error_msg!(gst::CoreError::Failed, ["{}", e]))?;
            faults.plan = Some(Arc::new(plan));
        }
        let output = Arc::new(Output::default());
        let (tx, rx) = channel();
        let run_config = RunConfig {
            owner: self.obj().name().to_string(),
            video_caps: video_caps.clone(),
            audio_caps: audio.as_ref().map(|a| a.caps.clone()),
            events: tx.clone(),
            faults: faults.clone(),
        };
        *self.report.lock().unwrap() = Report {
            status: Status::Stopped,
            ..Report::default()
        };
        let controller = Controller::new(
            &self.obj(),
            rx,
            run_config,
            output.clone(),
            self.report.clone(),
            audio_cap,
        );
        let controller = std::thread::Builder::new()
            .name("vigil-fo-ctl".into())
            .spawn({
                let element = self.obj().downgrade();
                move || run_guarded(element, FaultThread::Controller, || controller.run())
            })
            .map_err(|e| gst::error_msg!(gst::CoreError::Thread, ["{}", e]))?;

        let mut output_threads = Vec::new();
        let mut pads = vec![(self.video_pad.clone(), video.clone())];
        if let Some(a) = &audio {
            pads.push((self.audio_pad.clone(), a.clone()));
        }
        for (pad, format) in pads {
            let t = OutputThread {
                element: self.obj().downgrade(),
                pad: pad.clone(),
                output: output.clone(),
                format,
                fill_gaps: settings.fill_gaps,
                faults: faults.clone(),
            };
            output_threads.push(
                std::thread::Builder::new()
                    .name(format!("vigil-fo-{}", pad.name()))
                    .spawn({
                        let element = self.obj().downgrade();
                        move || run_guarded(element, FaultThread::Output, || t.run())
                    })
                    .map_err(|e| gst::error_msg!(gst::CoreError::Thread, ["{}", e]))?,
            );
        }
        *self.state.lock().unwrap() = Some(State {
            events: tx,
            controller,
            output,
            output_threads,
            video,
            audio,
        });
        self.set_status(Status::Starting);
        Ok(())
    }

    fn stop(&self) {
        let Some(state) = self.state.lock().unwrap().take() else {
            return;
        };
        state.output.stop();
        // A stop called from one of the element's own threads (an application that sets the
        // pipeline to NULL from `notify::status`, a `vigil-failover-switched` sync handler, or
        // a pad probe on the output) cannot wait for that thread: it is told to stop and ends
        // when the callback returns.
        let me = std::thread::current().id();
        let end = Instant::now() + CONTROLLER_JOIN_LIMIT;
        for t in state.output_threads {
            if t.thread().id() == me {
                continue;
            }
            // Output threads end at their next clock wait or push; both are released by the
            // stop.
            if !super::join_within(t, end.saturating_duration_since(Instant::now())) {
                gst::element_imp_warning!(
                    self,
                    gst::CoreError::StateChange,
                    ("An output thread did not stop within {CONTROLLER_JOIN_LIMIT:?}; it was left behind")
                );
            }
        }
        let _ = state.events.send(Event::Shutdown);
        if state.controller.thread().id() != me
            && !super::join_within(state.controller, CONTROLLER_JOIN_LIMIT)
        {
            gst::element_imp_warning!(
                self,
                gst::CoreError::StateChange,
                ("The failover controller did not stop within {CONTROLLER_JOIN_LIMIT:?}")
            );
        }
        self.set_status(Status::Stopped);
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Latency(q) => {
                let state = self.state.lock().unwrap();
                let Some(state) = state.as_ref() else {
                    return false;
                };
                let period = if pad == &self.video_pad {
                    state.video.period()
                } else {
                    AUDIO_TICK
                };
                gst::debug!(CAT, obj = pad, "latency: live, min {period}");
                q.set(true, period, gst::ClockTime::NONE);
                true
            }
            QueryViewMut::Caps(q) => {
                let caps = {
                    let state = self.state.lock().unwrap();
                    match state.as_ref() {
                        Some(s) if pad == &self.video_pad => s.video.caps.clone(),
                        Some(s) => s
                            .audio
                            .as_ref()
                            .map(|a| a.caps.clone())
                            .unwrap_or_else(|| pad.pad_template_caps()),
                        None => pad.pad_template_caps(),
                    }
                };
                let caps = match q.filter() {
                    Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FailoverSrc {
    const NAME: &'static str = "VigilFailoverSrc";
    type Type = super::FailoverSrc;
    type ParentType = gst::Bin;

    fn with_class(klass: &Self::Class) -> Self {
        let pad = |name: &str| {
            gst::Pad::builder_from_template(&klass.pad_template(name).expect("pad template"))
                .query_function(|pad, parent, query| {
                    FailoverSrc::catch_panic_pad_function(
                        parent,
                        || false,
                        |imp| imp.src_query(pad, query),
                    )
                })
                .build()
        };
        Self {
            settings: Mutex::new(Settings::default()),
            inputs: Mutex::new(Inputs::default()),
            state: Mutex::new(None),
            report: Arc::new(Mutex::new(Report::default())),
            frame_period_ns: AtomicU64::new(33_333_333),
            video_pad: pad("video"),
            audio_pad: pad("audio"),
            refused: Mutex::new(Vec::new()),
        }
    }
}

/// Properties read only when the element starts (see `set_property`).
const START_ONLY: &[&str] = &["video-caps", "audio-caps", "enable-audio", "fill-gaps"];

impl ObjectImpl for FailoverSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
            let mut props = vec![
                gst::ParamSpecArray::builder("uris")
                    .nick("URIs")
                    .blurb("Input URIs in priority order, primary first (each opened with uridecodebin); setting it while running adds and removes inputs")
                    .element_spec(&glib::ParamSpecString::builder("uri").build())
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Caps>("video-caps")
                    .nick("Video caps")
                    .blurb("Output video format; fields left open are completed from format=I420, width=1280, height=720, framerate=30/1, pixel-aspect-ratio=1/1")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Caps>("audio-caps")
                    .nick("Audio caps")
                    .blurb("Output audio format; fields left open are completed from format=S16LE, layout=interleaved, rate=48000, channels=2")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("enable-audio")
                    .nick("Enable audio")
                    .blurb("Output audio on the audio pad (silence while no input has audio); when off the audio pad pushes nothing")
                    .default_value(DEFAULT_ENABLE_AUDIO)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stall-timeout")
                    .nick("Stall timeout")
                    .blurb("Milliseconds without a buffer after which an input (running, or just started) has failed")
                    .minimum(10)
                    .maximum(600_000)
                    .default_value(DEFAULT_STALL_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("start-timeout")
                    .nick("Start timeout")
                    .blurb("Milliseconds an input may take to deliver its first data after it starts (or restarts) before that is a start failure; stall-timeout applies to gaps once it has flowed")
                    .minimum(10)
                    .maximum(600_000)
                    .default_value(DEFAULT_START_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("black-timeout")
                    .nick("Black timeout")
                    .blurb("Milliseconds of black picture (every sample below black-threshold) after which an input fails with reason black; 0 = not checked")
                    .maximum(600_000)
                    .default_value(DEFAULT_BLACK_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("black-threshold")
                    .nick("Black threshold")
                    .blurb("Luma level (8-bit scale) below which a sample is black; a picture is black when every sample is")
                    .maximum(255)
                    .default_value(DEFAULT_BLACK_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("freeze-timeout")
                    .nick("Freeze timeout")
                    .blurb("Milliseconds of unchanged picture after which an input fails with reason frozen; 0 = not checked")
                    .maximum(600_000)
                    .default_value(DEFAULT_FREEZE_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("silence-timeout")
                    .nick("Silence timeout")
                    .blurb("Milliseconds of audio below silence-threshold after which an input fails with reason silence (with enable-audio); 0 = not checked")
                    .maximum(600_000)
                    .default_value(DEFAULT_SILENCE_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecInt::builder("silence-threshold")
                    .nick("Silence threshold")
                    .blurb("Audio level in dBFS (RMS) below which audio is silent")
                    .minimum(-150)
                    .maximum(0)
                    .default_value(DEFAULT_SILENCE_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("clear-time")
                    .nick("Clear time")
                    .blurb("Milliseconds a failed input must deliver clean data (flowing, not black, frozen or silent) before it counts as healthy again")
                    .maximum(600_000)
                    .default_value(DEFAULT_CLEAR_TIME)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("standby", DEFAULT_STANDBY)
                    .nick("Standby")
                    .blurb("warm: every input runs and switches are instant; cold: backups start when needed")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("retry-backoff-min")
                    .nick("Minimum retry backoff")
                    .blurb("Milliseconds before the first retry of a failed input; doubled at each further failure")
                    .minimum(10)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_RETRY_BACKOFF_MIN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("retry-backoff-max")
                    .nick("Maximum retry backoff")
                    .blurb("Milliseconds between retries at most; an input healthy this long has its backoff reset")
                    .minimum(10)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_RETRY_BACKOFF_MAX)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecInt64::builder("failback-delay")
                    .nick("Failback delay")
                    .blurb("Milliseconds a higher-priority input must have been healthy before it replaces the input on air; 0 = at once, -1 = never")
                    .minimum(-1)
                    .maximum(i64::MAX / 1_000_000)
                    .default_value(DEFAULT_FAILBACK_DELAY)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecInt64::builder("exhausted-timeout")
                    .nick("Exhausted timeout")
                    .blurb("Milliseconds with no input on air after which an ERROR is posted; -1 = never (filler and retries go on)")
                    .minimum(-1)
                    .maximum(i64::MAX / 1_000_000)
                    .default_value(DEFAULT_EXHAUSTED_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("fill-gaps")
                    .nick("Fill gaps")
                    .blurb("While no input is on air, output black video and silent audio (on) or GAP events (off)")
                    .default_value(DEFAULT_FILL_GAPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("status", Status::Stopped)
                    .nick("Status")
                    .blurb("What the element is doing, from the data that flows (notified on change)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-input")
                    .nick("Active input")
                    .blurb("The input on air (URI or source element name), none while the filler is on air")
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("statistics")
                    .nick("Statistics")
                    .blurb("status, active-input, switches, frames, filler-frames, repeated-frames, audio-buffers, late-skipped-frames, late-skipped-audio-ms, inputs (name, priority, state, on-air, retries, failures, last-error, last-data-ms-ago, buffers), switch-history (last 20: from, to, reason, wallclock-ms)")
                    .read_only()
                    .build(),
            ];
            #[cfg(feature = "fault-injection")]
            props.push(
                glib::ParamSpecString::builder("fault-injection")
                    .nick("Fault injection")
                    .blurb("Test builds only: KIND:THREAD[:AFTER], KIND wedge, panic or slow=MS, THREAD input, controller or output")
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
            );
            props
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            let this = |args: &[glib::Value]| {
                args[0]
                    .get::<super::FailoverSrc>()
                    .expect("signal emitted on the element")
            };
            // The string argument, or a refusal (FALSE and a WARNING) for NULL: a class
            // handler of a signal with a return value must return one, whatever it is given.
            let text_arg =
                move |args: &[glib::Value], signal: &str| -> Result<String, glib::Value> {
                    match args[1].get::<Option<String>>() {
                        Ok(Some(s)) => Ok(s),
                        _ => {
                            this(args)
                                .imp()
                                .warn_refused(format!("{signal} was given NULL, not a string"));
                            Err(false.to_value())
                        }
                    }
                };
            vec![
                glib::subclass::Signal::builder("add-uri")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(move |args| {
                        let uri = match text_arg(args, "add-uri") {
                            Ok(u) => u,
                            Err(refused) => return Some(refused),
                        };
                        Some(this(args).imp().add_uri(uri).to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("remove-uri")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(move |args| {
                        let uri = match text_arg(args, "remove-uri") {
                            Ok(u) => u,
                            Err(refused) => return Some(refused),
                        };
                        Some(this(args).imp().remove_input(&uri).to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("add-source")
                    .param_types([gst::Element::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(move |args| {
                        let obj = this(args);
                        let imp = obj.imp();
                        let Ok(Some(element)) = args[1].get::<Option<gst::Element>>() else {
                            imp.warn_refused("add-source was given NULL, not an element".into());
                            return Some(false.to_value());
                        };
                        if let Err(why) = FailoverSrc::check_source(&element) {
                            imp.warn_refused(why);
                            return Some(false.to_value());
                        }
                        let name = element.name().to_string();
                        Some(imp.add_input(name, Source::Element(element)).to_value())
                    })
                    .build(),
                glib::subclass::Signal::builder("switch-to")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(move |args| {
                        let name = match text_arg(args, "switch-to") {
                            Ok(n) => n,
                            Err(refused) => return Some(refused),
                        };
                        Some(this(args).imp().switch_to(&name).to_value())
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        // What the output is built from applies at the start only: a change while running
        // would read back a value that is not in effect. Refused with a WARNING instead.
        let name = pspec.name();
        if START_ONLY.contains(&name) && self.state.lock().unwrap().is_some() {
            gst::element_imp_warning!(
                self,
                gst::CoreError::StateChange,
                (
                    "property '{}' cannot change while the element runs (it applies when it starts): it keeps its value; set it in the READY or NULL state",
                    name
                )
            );
            return;
        }
        if name == "enable-audio"
            && !value.get::<bool>().unwrap_or(true)
            && self.audio_pad.peer().is_some()
        {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Pad,
                ("enable-audio=false refused: the audio pad is linked (unlink it first); audio stays enabled")
            );
            return;
        }
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "uris" => {
                drop(s);
                let uris: Vec<String> = value
                    .get::<gst::Array>()
                    .map(|a| a.iter().filter_map(|v| v.get::<String>().ok()).collect())
                    .unwrap_or_default();
                self.set_uris(uris);
            }
            "video-caps" => {
                s.video_caps = value
                    .get::<Option<gst::Caps>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_VIDEO_CAPS.parse().unwrap())
            }
            "audio-caps" => {
                s.audio_caps = value
                    .get::<Option<gst::Caps>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_AUDIO_CAPS.parse().unwrap())
            }
            "enable-audio" => {
                s.enable_audio = value.get().unwrap();
                let enabled = s.enable_audio;
                drop(s);
                // The pads match the configuration: no audio pad without audio, so a recipe
                // that links one fails at link time instead of waiting for ever.
                let obj = self.obj();
                let present = self.audio_pad.parent().is_some();
                if enabled && !present {
                    let _ = obj.add_pad(&self.audio_pad);
                } else if !enabled && present {
                    let _ = obj.remove_pad(&self.audio_pad);
                }
            }
            "stall-timeout" => s.stall_timeout = value.get().unwrap(),
            "start-timeout" => s.start_timeout = value.get().unwrap(),
            "black-timeout" => s.black_timeout = value.get().unwrap(),
            "black-threshold" => s.black_threshold = value.get().unwrap(),
            "freeze-timeout" => s.freeze_timeout = value.get().unwrap(),
            "silence-timeout" => s.silence_timeout = value.get().unwrap(),
            "silence-threshold" => s.silence_threshold = value.get().unwrap(),
            "clear-time" => s.clear_time = value.get().unwrap(),
            "standby" => s.standby = value.get().unwrap(),
            "retry-backoff-min" => s.retry_backoff_min = value.get().unwrap(),
            "retry-backoff-max" => s.retry_backoff_max = value.get().unwrap(),
            "failback-delay" => s.failback_delay = value.get().unwrap(),
            "exhausted-timeout" => s.exhausted_timeout = value.get().unwrap(),
            "fill-gaps" => s.fill_gaps = value.get().unwrap(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => {
                s.fault_injection = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "uris" => {
                gst::Array::new(self.inputs.lock().unwrap().specs.iter().filter_map(|spec| {
                    match &spec.source {
                        Source::Uri(u) => Some(u.clone()),
                        Source::Element(_) => None,
                    }
                }))
                .to_value()
            }
            "video-caps" => s.video_caps.to_value(),
            "audio-caps" => s.audio_caps.to_value(),
            "enable-audio" => s.enable_audio.to_value(),
            "stall-timeout" => s.stall_timeout.to_value(),
            "start-timeout" => s.start_timeout.to_value(),
            "black-timeout" => s.black_timeout.to_value(),
            "black-threshold" => s.black_threshold.to_value(),
            "freeze-timeout" => s.freeze_timeout.to_value(),
            "silence-timeout" => s.silence_timeout.to_value(),
            "silence-threshold" => s.silence_threshold.to_value(),
            "clear-time" => s.clear_time.to_value(),
            "standby" => s.standby.to_value(),
            "retry-backoff-min" => s.retry_backoff_min.to_value(),
            "retry-backoff-max" => s.retry_backoff_max.to_value(),
            "failback-delay" => s.failback_delay.to_value(),
            "exhausted-timeout" => s.exhausted_timeout.to_value(),
            "fill-gaps" => s.fill_gaps.to_value(),
            #[cfg(feature = "fault-injection")]
            "fault-injection" => s.fault_injection.to_value(),
            "status" => self.report.lock().unwrap().status.to_value(),
            "active-input" => self.report.lock().unwrap().active_input.to_value(),
            "statistics" => {
                drop(s);
                self.statistics().to_value()
            }
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_element_flags(gst::ElementFlags::SOURCE);
        obj.add_pad(&self.video_pad).expect("add the video pad");
        obj.add_pad(&self.audio_pad).expect("add the audio pad");
    }
}

impl GstObjectImpl for FailoverSrc {}

impl ElementImpl for FailoverSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vigil failover source",
                "Source/Video/Audio/Bin",
                "Ingests from an ordered list of inputs and outputs one continuous live stream: fails over when the input on air errors, ends, stalls or never sends data, retries failed inputs, and reports its status from the data that flows",
                "vigil developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "video",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_empty_simple("video/x-raw"),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "audio",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_empty_simple("audio/x-raw"),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn send_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            // The inputs are not children: end the output ourselves, the way a live source
            // handles an application's EOS.
            gst::debug!(CAT, imp = self, "EOS requested");
            return match self.state.lock().unwrap().as_ref() {
                Some(s) => {
                    s.output.end_of_stream();
                    true
                }
                None => false,
            };
        }
        self.parent_send_event(event)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        match transition {
            gst::StateChange::ReadyToPaused => {
                if let Err(e) = self.start() {
                    self.post_error_message(e);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToPlaying => {
                if let Some(s) = self.state.lock().unwrap().as_ref() {
                    s.output.set_playing(true);
                }
            }
            gst::StateChange::PlayingToPaused => {
                if let Some(s) = self.state.lock().unwrap().as_ref() {
                    s.output.set_playing(false);
                }
            }
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady
            || (transition == gst::StateChange::ReadyToPaused && result.is_err())
        {
            self.stop();
        }
        let result = result?;
        Ok(match transition {
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused => {
                gst::StateChangeSuccess::NoPreroll
            }
            _ => result,
        })
    }
}

impl BinImpl for FailoverSrc {}
