// SPDX-License-Identifier: MPL-2.0
//! The output of `vigilfailoversrc`: one clocked thread per pad that pushes exactly one video
//! frame per frame period (and one audio chunk per [`AUDIO_TICK`]), stamped with the running
//! time at which it is pushed, whatever the inputs do. The frame comes from the input on air
//! when it has one, is the input's previous frame held when it has none yet, and is filler
//! (black, silence) when no input is on air. Timestamps are therefore continuous and strictly
//! increasing across every switch: consecutive video buffers are exactly one frame apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use super::fault::FaultThread;
use super::input::InputShared;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilfailoveroutput",
        gst::DebugColorFlags::empty(),
        Some("vigil failover source: output"),
    )
});

/// Duration of one audio output buffer.
pub(super) const AUDIO_TICK: gst::ClockTime = gst::ClockTime::from_mseconds(20);
/// Audio an input must have queued before it is played after a switch or an underrun.
const AUDIO_PRIME_TICKS: usize = 2;
/// How far behind the clock an output may fall before it skips ahead to the clock: a
/// downstream slower than real time for good. A shorter delay (the thread held up for a
/// moment on a loaded machine, a sink that blocked once) is caught up by pushing the late
/// buffers at once, so the timestamps stay one period apart: continuity comes first.
const LATE_MAX: gst::ClockTime = gst::ClockTime::from_seconds(2);
/// Audio kept queued at most for the output, beyond which the oldest is dropped.
const AUDIO_MAX_TICKS: usize = 6;

#[derive(Default)]
struct Gate {
    playing: bool,
    stop: bool,
    /// The clock wait in progress, unscheduled on pause and stop.
    waits: Vec<gst::ClockId>,
}

/// State shared by the controller, the element and the output threads.
#[derive(Default)]
pub(super) struct Output {
    on_air: Mutex<Option<Arc<InputShared>>>,
    gate: Mutex<Gate>,
    cond: Condvar,
    last_running_time: AtomicU64,
    /// Video frames pushed.
    pub frames: AtomicU64,
    /// Of which filler (black) or gap events.
    pub filler_frames: AtomicU64,
    /// Video frames the input on air did not deliver in time, so its previous one was repeated.
    pub repeated_frames: AtomicU64,
    /// Audio buffers pushed.
    pub audio_buffers: AtomicU64,
    /// Video frame periods skipped because downstream took longer than a period (the output
    /// jumps to the clock rather than fall behind it for ever).
    pub late_skipped_frames: AtomicU64,
    /// The same for audio, in nanoseconds of audio not produced.
    pub late_skipped_audio_ns: AtomicU64,
    /// When a WARNING about a slow downstream was last posted.
    late_warned_at: Mutex<Option<std::time::Instant>>,
    /// Set by an EOS sent to the element: each output pushes EOS once and then nothing.
    eos: std::sync::atomic::AtomicBool,
    /// Switches the output has applied (a DISCONT flag marks the first buffer after each).
    switches: AtomicU64,
}

impl Output {
    /// Puts `input` on air (or the filler, with `None`). Frames the new input queued while
    /// it waited are dropped but its newest, so the switch adds no latency.
    pub fn set_on_air(&self, input: Option<Arc<InputShared>>) {
        if let Some(i) = &input {
            let mut d = i.data.lock().unwrap();
            let n = d.video.len();
            if n > 1 {
                d.video.drain(..n - 1);
            }
        }
        *self.on_air.lock().unwrap() = input;
        self.switches.fetch_add(1, Ordering::SeqCst);
    }

    fn on_air(&self) -> Option<Arc<InputShared>> {
        self.on_air.lock().unwrap().clone()
    }

    /// Running time of the newest video frame pushed, in ns.
    pub fn last_running_time(&self) -> u64 {
        self.last_running_time.load(Ordering::SeqCst)
    }

    pub fn set_playing(&self, playing: bool) {
        let mut g = self.gate.lock().unwrap();
        g.playing = playing;
        if !playing {
            for w in g.waits.drain(..) {
                w.unschedule();
            }
        }
        self.cond.notify_all();
    }

    /// Ends the stream: the output threads push EOS at their next period.
    pub fn end_of_stream(&self) {
        self.eos.store(true, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        let mut g = self.gate.lock().unwrap();
        g.stop = true;
        g.playing = false;
        for w in g.waits.drain(..) {
            w.unschedule();
        }
        self.cond.notify_all();
    }

    /// Blocks until PLAYING; false once stopping.
    fn wait_playing(&self) -> bool {
        let mut g = self.gate.lock().unwrap();
        while !g.playing && !g.stop {
            g = self.cond.wait(g).unwrap();
        }
        !g.stop
    }

    /// Waits on the clock until `time`; false if paused or stopped meanwhile.
    fn wait_until(&self, clock: &gst::Clock, time: gst::ClockTime) -> bool {
        let id: gst::ClockId = clock.new_single_shot_id(time).into();
        {
            let mut g = self.gate.lock().unwrap();
            if !g.playing || g.stop {
                return false;
            }
            g.waits.push(id.clone());
        }
        let (r, _) = id.wait();
        let mut g = self.gate.lock().unwrap();
        g.waits.retain(|w| w != &id);
        !matches!(r, Err(gst::ClockError::Unscheduled)) && g.playing && !g.stop
    }
}

/// The fixed output format of one pad.
#[derive(Clone)]
pub(super) struct PadFormat {
    pub caps: gst::Caps,
    /// Video: one frame (black). Audio: one tick of silence.
    pub filler: gst::Buffer,
    /// Video: frame rate. Audio: (rate, 1).
    pub rate: (u64, u64),
    /// Audio bytes per frame (sample times channels); 0 for video.
    pub bpf: usize,
}

impl PadFormat {
    /// Video frame duration, or the audio tick.
    pub fn period(&self) -> gst::ClockTime {
        if self.bpf == 0 {
            gst::ClockTime::SECOND
                .mul_div_floor(self.rate.1, self.rate.0)
                .unwrap_or(gst::ClockTime::from_mseconds(40))
        } else {
            AUDIO_TICK
        }
    }
}

/// What an output thread needs.
pub(super) struct OutputThread {
    pub element: glib::WeakRef<super::FailoverSrc>,
    pub pad: gst::Pad,
    pub output: Arc<Output>,
    pub format: PadFormat,
    pub fill_gaps: bool,
    /// Faults to inject (test builds only).
    pub faults: super::fault::Faults,
}

enum Pushed {
    Go,
    Flushing,
    /// Downstream returned EOS: the pad is told EOS once, and the clock goes on (a flush
    /// starts it again).
    DownstreamEos,
    Fatal(gst::FlowError),
}

impl OutputThread {
    fn push(&self, item: Result<gst::Buffer, gst::Event>) -> Pushed {
        let _lock = self.pad.stream_lock();
        let r = match item {
            Ok(buffer) => self.pad.push(buffer),
            Err(event) => {
                self.pad.push_event(event);
                Ok(gst::FlowSuccess::Ok)
            }
        };
        match r {
            Ok(_) | Err(gst::FlowError::NotLinked) => Pushed::Go,
            Err(gst::FlowError::Flushing) => Pushed::Flushing,
            // Downstream wants no more data (it reached its end): not a failure, as for any
            // GStreamer source.
            Err(gst::FlowError::Eos) => Pushed::DownstreamEos,
            Err(e) => Pushed::Fatal(e),
        }
    }

    /// Audio samples in one output buffer.
    fn samples_per_tick(&self) -> u64 {
        (self.format.rate.0 * AUDIO_TICK.mseconds() / 1000).max(1)
    }

    fn send_sticky(&self) {
        let _lock = self.pad.stream_lock();
        let id = format!("{}/{}", self.pad.name(), glib::random_int());
        self.pad.push_event(
            gst::event::StreamStart::builder(&id)
                .group_id(gst::GroupId::next())
                .build(),
        );
        self.pad
            .push_event(gst::event::Caps::new(&self.format.caps));
        self.pad
            .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
    }

    /// The thread body: until the element stops.
    pub fn run(self) {
        let video = self.format.bpf == 0;
        let mut sticky_sent = false;
        let mut downstream_eos = false;
        // Running time of the first buffer since the last (re)start of the clocked loop, and
        // how many periods (video frames, audio samples) have been pushed since.
        let mut origin: Option<gst::ClockTime> = None;
        let mut count: u64 = 0;
        let mut next_pts: Option<gst::ClockTime> = None;
        let mut held: Option<(u64, gst::Buffer)> = None;
        let mut primed: Option<u64> = None;
        let mut seen_switches = u64::MAX;
        let mut eos_sent = false;
        let mut rounds = 0;
        loop {
            self.faults.at(FaultThread::Output, rounds);
            rounds += 1;
            if !self.output.wait_playing() {
                break;
            }
            let Some((clock, base)) = self
                .element
                .upgrade()
                .and_then(|el| Some((el.clock()?, el.base_time()?)))
            else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let start = *origin.get_or_insert_with(|| {
                count = 0;
                let now = clock.time().saturating_sub(base);
                next_pts.map_or(now, |n| n.max(now))
            });
            let (mut pts, mut next) = self.times(start, count);
            if !self.output.wait_until(&clock, base + pts) {
                origin = None;
                continue;
            }
            // A downstream slower than the period (a push that takes longer than a frame): the
            // output would fall further behind the clock with every buffer, each one late (a
            // synchronising sink drops them, a muxer records a stream that lags ever more).
            // It is a live source: it jumps to the period the clock is in, counts what it
            // skipped and says so.
            let mut skipped_now = false;
            let now = clock.time().saturating_sub(base);
            if now >= pts + LATE_MAX {
                let elapsed = now - start;
                let now_count = if video {
                    elapsed
                        .nseconds()
                        .mul_div_floor(
                            self.format.rate.0,
                            gst::ClockTime::SECOND.nseconds() * self.format.rate.1,
                        )
                        .unwrap_or(count)
                } else {
                    elapsed
                        .nseconds()
                        .mul_div_floor(self.format.rate.0, gst::ClockTime::SECOND.nseconds())
                        .unwrap_or(count)
                };
                if now_count > count {
                    let skipped = now_count - count;
                    count = now_count;
                    (pts, next) = self.times(start, count);
                    skipped_now = true;
                    self.late_skip(video, skipped, now.saturating_sub(pts));
                }
            }
            if !sticky_sent {
                self.send_sticky();
                sticky_sent = true;
            }
            if self.output.eos.load(Ordering::SeqCst) {
                if !eos_sent {
                    let _ = self.push(Err(gst::event::Eos::new()));
                    eos_sent = true;
                }
                continue;
            }
            let switches = self.output.switches.load(Ordering::SeqCst);
            let discont = switches != seen_switches || skipped_now;
            seen_switches = switches;
            let duration = next - pts;
            let item = if video {
                self.video_item(pts, duration, count, discont, &mut held)
            } else {
                let samples = self.samples_per_tick() as usize;
                self.audio_item(pts, duration, samples, discont, &mut primed)
            };
            match self.push(item) {
                Pushed::Go => {}
                Pushed::Flushing => {
                    std::thread::sleep(Duration::from_millis(10));
                    origin = None;
                    sticky_sent = false;
                    downstream_eos = false;
                    continue;
                }
                Pushed::DownstreamEos => {
                    if !downstream_eos {
                        downstream_eos = true;
                        gst::debug!(CAT, "downstream of {} is at its end", self.pad.name());
                        let _lock = self.pad.stream_lock();
                        self.pad.push_event(gst::event::Eos::new());
                    }
                }
                Pushed::Fatal(e) => {
                    if let Some(el) = self.element.upgrade() {
                        gst::element_error!(
                            el,
                            gst::StreamError::Failed,
                            ("Downstream refused the {} output: {e:?}", self.pad.name())
                        );
                    }
                    break;
                }
            }
            next_pts = Some(next);
            if video {
                count += 1;
                self.output
                    .last_running_time
                    .store(pts.nseconds(), Ordering::SeqCst);
            } else {
                count += self.samples_per_tick();
            }
        }
        gst::debug!(CAT, "{} output thread ends", self.pad.name());
    }

    /// The timestamps of period `count` from `start`: (pts, next pts).
    fn times(&self, start: gst::ClockTime, count: u64) -> (gst::ClockTime, gst::ClockTime) {
        if self.format.bpf == 0 {
            let at = |n: u64| {
                start
                    + gst::ClockTime::SECOND
                        .mul_div_floor(n * self.format.rate.1, self.format.rate.0)
                        .unwrap_or_default()
            };
            (at(count), at(count + 1))
        } else {
            let at = |n: u64| {
                start
                    + gst::ClockTime::SECOND
                        .mul_div_floor(n, self.format.rate.0)
                        .unwrap_or_default()
            };
            (at(count), at(count + self.samples_per_tick()))
        }
    }

    /// Counts periods skipped for a slow downstream and says so (a WARNING at most every
    /// 10 s, naming the pad, how far behind the output was and what was skipped so far).
    fn late_skip(&self, video: bool, skipped: u64, behind: gst::ClockTime) {
        let total = if video {
            self.output
                .late_skipped_frames
                .fetch_add(skipped, Ordering::Relaxed)
                + skipped
        } else {
            let ns = gst::ClockTime::SECOND
                .nseconds()
                .mul_div_floor(skipped, self.format.rate.0)
                .unwrap_or(0);
            self.output
                .late_skipped_audio_ns
                .fetch_add(ns, Ordering::Relaxed)
                + ns
        };
        gst::debug!(
            CAT,
            "{} output: {skipped} period(s) skipped, {behind} behind",
            self.pad.name()
        );
        let now = std::time::Instant::now();
        {
            let mut last = self.output.late_warned_at.lock().unwrap();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(10)) {
                return;
            }
            *last = Some(now);
        }
        let so_far = if video {
            format!("{total} frame(s) skipped so far (statistics late-skipped-frames)")
        } else {
            format!(
                "{} ms of audio skipped so far (statistics late-skipped-audio-ms)",
                total / 1_000_000
            )
        };
        if let Some(el) = self.element.upgrade() {
            gst::element_warning!(
                el,
                gst::CoreError::Clock,
                (
                    "the {} output fell behind the clock: downstream takes longer than a period to take a buffer; it skipped ahead to stay live, {}",
                    self.pad.name(),
                    so_far
                )
            );
        }
    }

    fn stamp(
        &self,
        buffer: &gst::Buffer,
        pts: gst::ClockTime,
        duration: gst::ClockTime,
        offset: u64,
        discont: bool,
    ) -> gst::Buffer {
        let mut b = buffer.copy();
        {
            let b = b.get_mut().expect("a fresh copy is writable");
            b.set_pts(pts);
            b.set_dts(None);
            b.set_duration(duration);
            b.set_offset(offset);
            b.set_offset_end(offset + 1);
            b.unset_flags(gst::BufferFlags::DISCONT | gst::BufferFlags::GAP);
            if discont {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        b
    }

    fn video_item(
        &self,
        pts: gst::ClockTime,
        duration: gst::ClockTime,
        count: u64,
        discont: bool,
        held: &mut Option<(u64, gst::Buffer)>,
    ) -> Result<gst::Buffer, gst::Event> {
        self.output.frames.fetch_add(1, Ordering::Relaxed);
        self.output
            .last_running_time
            .store(pts.nseconds(), Ordering::SeqCst);
        let frame = self.output.on_air().and_then(|input| {
            let fresh = {
                let mut d = input.data.lock().unwrap();
                let f = d.video.pop_front();
                while d.video.len() > 2 {
                    d.video.pop_front();
                }
                f
            };
            match fresh {
                Some(f) => {
                    *held = Some((input.id, f.clone()));
                    Some(f)
                }
                None => {
                    let f = held
                        .as_ref()
                        .filter(|(id, _)| *id == input.id)
                        .map(|(_, f)| f.clone());
                    if f.is_some() {
                        self.output.repeated_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    f
                }
            }
        });
        match frame {
            Some(f) => Ok(self.stamp(&f, pts, duration, count, discont)),
            None => {
                self.output.filler_frames.fetch_add(1, Ordering::Relaxed);
                if self.fill_gaps {
                    Ok(self.stamp(&self.format.filler, pts, duration, count, discont))
                } else {
                    Err(gst::event::Gap::builder(pts).duration(duration).build())
                }
            }
        }
    }

    fn audio_item(
        &self,
        pts: gst::ClockTime,
        duration: gst::ClockTime,
        samples: usize,
        discont: bool,
        primed: &mut Option<u64>,
    ) -> Result<gst::Buffer, gst::Event> {
        self.output.audio_buffers.fetch_add(1, Ordering::Relaxed);
        let bpf = self.format.bpf;
        let need = samples * bpf;
        let tick_bytes =
            (self.format.rate.0 as usize * AUDIO_TICK.mseconds() as usize / 1000) * bpf;
        let mut out: Vec<u8> = Vec::with_capacity(need);
        let mut from_input = false;
        if let Some(input) = self.output.on_air() {
            let mut d = input.data.lock().unwrap();
            let excess = d.audio.len().saturating_sub(AUDIO_MAX_TICKS * tick_bytes);
            let excess = excess.div_ceil(bpf) * bpf;
            let excess = excess.min(d.audio.len());
            d.audio.drain(..excess);
            if *primed != Some(input.id) && d.audio.len() >= AUDIO_PRIME_TICKS * tick_bytes {
                *primed = Some(input.id);
            }
            if *primed == Some(input.id) {
                let take = need.min(d.audio.len() / bpf * bpf);
                out.extend(d.audio.drain(..take));
                from_input = take > 0;
                if take < need {
                    // Underrun: play silence until enough is queued again.
                    *primed = None;
                }
            }
        } else {
            *primed = None;
        }
        if !from_input && !self.fill_gaps {
            return Err(gst::event::Gap::builder(pts).duration(duration).build());
        }
        if out.len() < need {
            let silence = self.format.filler.map_readable().expect("filler readable");
            let pattern = &silence.as_slice()[..bpf.min(silence.size())];
            while out.len() < need {
                out.extend_from_slice(pattern);
            }
        }
        let mut b = gst::Buffer::from_mut_slice(out);
        {
            let b = b.get_mut().unwrap();
            b.set_pts(pts);
            b.set_duration(duration);
            if discont {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        Ok(b)
    }
}

/// Makes the filler of a fixed format: one black video frame (`videotestsrc pattern=black`)
/// or `samples` of silence (`audiotestsrc wave=silence`), so any format the converters can
/// produce has a correct filler.
pub(super) fn make_filler(caps: &gst::Caps, samples: u32) -> Result<gst::Buffer, String> {
    let video = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("video/"));
    let pipeline = gst::Pipeline::new();
    let src = if video {
        gst::ElementFactory::make("videotestsrc")
            .property_from_str("pattern", "black")
            .property("num-buffers", 1i32)
            .build()
    } else {
        gst::ElementFactory::make("audiotestsrc")
            .property_from_str("wave", "silence")
            .property("num-buffers", 1i32)
            .property("samplesperbuffer", samples as i32)
            .build()
    }
    .map_err(|e| e.to_string())?;
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|e| e.to_string())?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline
        .add_many([&src, &filter, sink.upcast_ref()])
        .map_err(|e| e.to_string())?;
    gst::Element::link_many([&src, &filter, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    let result = pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            sink.try_pull_sample(gst::ClockTime::from_seconds(5))
                .and_then(|s| s.buffer_owned())
                .ok_or_else(|| "no filler buffer was produced".to_string())
        });
    let _ = pipeline.set_state(gst::State::Null);
    result.map_err(|e| format!("cannot make the filler for {caps}: {e}"))
}

/// Bytes per sample of an audio format name (S16LE, F32LE, U8, S24_32BE, ...).
pub(super) fn audio_sample_bytes(format: &str) -> Option<usize> {
    let f = format.trim_end_matches("LE").trim_end_matches("BE");
    Some(match f {
        "S8" | "U8" => 1,
        "S16" | "U16" => 2,
        "S24" | "U24" | "S20" | "U20" | "S18" | "U18" => 3,
        "S24_32" | "U24_32" | "S32" | "U32" | "F32" => 4,
        "F64" => 8,
        _ => return None,
    })
}
