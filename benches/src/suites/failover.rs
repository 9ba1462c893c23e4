// SPDX-License-Identifier: MPL-2.0
//! Failover: time from a failure of the primary input to the first backup frame at the output,
//! `vigilfailoversrc` (warm and cold standby) against gst-plugins-rs `fallbacksrc` on the same
//! scenarios: the primary errors mid-stream, stalls mid-stream, is silent from the start, or
//! ends (EOS).
//!
//! The primary is a live `videotestsrc` (white) in a bin the harness controls; a pad probe in
//! it injects the failure. The backup is a red Matroska file with a moving ball. A probe at the output reads
//! the luma of each frame to tell primary, backup and filler apart.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::context::Ctx;
use crate::gstrun::{launch, run_to_eos};
use crate::report::{Comparison, Distribution, Item, Metric, Section, Target};
use crate::runner::{Case, Run, interleave};

/// Stall detection of both elements (`stall-timeout`, `timeout`).
const TIMEOUT_MS: u64 = 1000;
/// How long the primary is on air before the failure.
const ON_AIR_BEFORE_FAILURE: Duration = Duration::from_millis(1500);
const CAPS: &str = "video/x-raw,format=I420,width=320,height=240,framerate=30/1";

const PASS: u8 = 0;
const DROP: u8 = 1;
const FREEZE: u8 = 2;
const BLACK: u8 = 3;

/// What happens to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// An ERROR from the source mid-stream, then nothing.
    Error,
    /// Buffers stop mid-stream, the source stays up.
    Stall,
    /// The source starts and never sends a buffer.
    Silent,
    /// The source ends (EOS) mid-stream.
    Eos,
    /// The source goes on sending, but the same picture (a frozen encoder or camera).
    Frozen,
    /// The source goes on sending, but black pictures.
    Black,
}

impl Scenario {
    fn title(self) -> &'static str {
        match self {
            Scenario::Error => "primary errors mid-stream",
            Scenario::Stall => "primary stalls mid-stream",
            Scenario::Silent => "primary connects and is silent from the start",
            Scenario::Eos => "primary ends (EOS) mid-stream",
            Scenario::Frozen => "primary's picture freezes mid-stream",
            Scenario::Black => "primary's picture turns black mid-stream",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Scenario::Error => "fo-error",
            Scenario::Stall => "fo-stall",
            Scenario::Silent => "fo-silent",
            Scenario::Eos => "fo-eos",
            Scenario::Frozen => "fo-frozen",
            Scenario::Black => "fo-black",
        }
    }

    /// Whether `fallbacksrc` has a detection for it (it judges only the flow of buffers).
    fn peer_detects(self) -> bool {
        !matches!(self, Scenario::Frozen | Scenario::Black)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Vigil { cold: bool },
    Fallback,
}

enum Frame {
    Primary,
    Backup,
    Other,
}

fn classify(y: u8) -> Frame {
    match y {
        200..=255 => Frame::Primary,
        60..=110 => Frame::Backup,
        _ => Frame::Other,
    }
}

/// The backup: a red MJPEG Matroska file with a white ball moving around its centre (so it
/// is neither frozen nor black), long enough for any run, made once.
pub fn backup_file(ctx: &Ctx) -> Result<std::path::PathBuf, String> {
    let path = ctx.work.join("failover-backup-red-ball-60s.mkv");
    if !path.is_file() {
        let tmp = path.with_extension("tmp.mkv");
        let p = launch(&format!(
            "videotestsrc pattern=ball background-color=0xffff0000 num-buffers=1800 ! {CAPS} \
             ! jpegenc \
             ! matroskamux streamable=true ! filesink location={}",
            tmp.display()
        ))?;
        run_to_eos(&p, Duration::from_secs(300))?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// The primary: `videotestsrc is-live=true pattern=white ! capsfilter ! identity` in a bin;
/// a probe writes a frame counter into its bottom rows (so the picture is not frozen) and
/// reads the mode switch: pass, drop every buffer, repeat the last picture, or send black
/// pictures (each with the timestamps of the buffer it replaces).
fn primary(start: u8) -> Result<(gst::Element, gst::Element, Arc<AtomicU8>), String> {
    let bin = gst::parse::bin_from_description(
        &format!(
            "videotestsrc name=primary is-live=true pattern=white ! capsfilter caps={CAPS} \
             ! identity name=clock"
        ),
        true,
    )
    .map_err(|e| format!("primary: {e}"))?;
    let src = bin.by_name("primary").ok_or("primary: no source")?;
    let mode = Arc::new(AtomicU8::new(start));
    let m = mode.clone();
    let last: Mutex<Option<gst::Buffer>> = Mutex::new(None);
    let counter = std::sync::atomic::AtomicU64::new(0);
    bin.by_name("clock")
        .and_then(|c| c.static_pad("src"))
        .ok_or("primary: no overlay pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let mode = m.load(Ordering::SeqCst);
            if mode == DROP {
                return gst::PadProbeReturn::Drop;
            }
            let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            match mode {
                FREEZE | BLACK => {
                    let mut last = last.lock().unwrap();
                    let Some(held) = last.as_ref() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let mut copy = held.copy_deep().unwrap_or_else(|_| held.clone());
                    {
                        let c = copy.make_mut();
                        c.set_pts(buffer.pts());
                        c.set_dts(buffer.dts());
                        c.set_duration(buffer.duration());
                        if mode == BLACK
                            && let Ok(mut map) = c.map_writable()
                        {
                            // I420 320x240: the luma plane, then both chroma planes.
                            let luma = 320 * 240;
                            let split = luma.min(map.len());
                            let (y, uv) = map.split_at_mut(split);
                            y.fill(16);
                            uv.fill(128);
                        }
                    }
                    if mode == BLACK {
                        *last = Some(copy.clone());
                    }
                    *buffer = copy;
                }
                _ => {
                    // A moving stripe: the bottom 16 luma rows take the frame counter.
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let b = buffer.make_mut();
                    if let Ok(mut map) = b.map_writable() {
                        let luma = 320 * 240;
                        if map.len() >= luma {
                            map[luma - 320 * 16..luma].fill(40 + (n % 150) as u8);
                        }
                    }
                    *last.lock().unwrap() = Some(buffer.clone());
                }
            }
            gst::PadProbeReturn::Ok
        });
    Ok((bin.upcast(), src, mode))
}

/// One run: milliseconds from the failure to the first backup frame at the output.
fn run_once(ctx: &Ctx, who: Contender, scenario: Scenario) -> Result<Run, String> {
    let backup = format!("file://{}", backup_file(ctx)?.display());
    let start_mode = if scenario == Scenario::Silent {
        DROP
    } else {
        PASS
    };
    let (bin, src, mode) = primary(start_mode)?;
    let p = match who {
        Contender::Vigil { cold } => {
            let p = launch(&format!(
                "vigilfailoversrc name=f enable-audio=false video-caps={CAPS} \
                 stall-timeout={TIMEOUT_MS} failback-delay=-1 retry-backoff-min=60000 \
                 retry-backoff-max=60000 standby={} freeze-timeout={TIMEOUT_MS} \
                 black-timeout={TIMEOUT_MS} \
                 f.video ! fakesink name=out sync=false",
                if cold { "cold" } else { "warm" }
            ))?;
            let f = p.by_name("f").ok_or("no f")?;
            if !f.emit_by_name::<bool>("add-source", &[&bin]) {
                return Err("add-source refused the primary".into());
            }
            if !f.emit_by_name::<bool>("add-uri", &[&backup]) {
                return Err("add-uri refused the backup".into());
            }
            p
        }
        Contender::Fallback => {
            let p = launch(&format!(
                "fallbacksrc name=f enable-audio=false timeout={} restart-timeout=60000000000 \
                 immediate-fallback=true fallback-uri={backup} f.video_0 ! fakesink name=out \
                 sync=false",
                TIMEOUT_MS * 1_000_000
            ))?;
            p.by_name("f").ok_or("no f")?.set_property("source", &bin);
            p
        }
    };
    let failed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let first_primary: Arc<Mutex<Option<Instant>>> = Arc::default();
    let backup_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (fa, fp, ba) = (failed_at.clone(), first_primary.clone(), backup_at.clone());
    p.by_name("out")
        .and_then(|o| o.static_pad("sink"))
        .ok_or("no output sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let now = Instant::now();
            let y = info
                .buffer()
                .and_then(|b| {
                    b.map_readable()
                        .ok()
                        .map(|m| m.first().copied().unwrap_or(0))
                })
                .unwrap_or(0);
            match classify(y) {
                Frame::Primary => {
                    fp.lock().unwrap().get_or_insert(now);
                }
                Frame::Backup if fa.lock().unwrap().is_some() => {
                    ba.lock().unwrap().get_or_insert(now);
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
    let bus = p.bus().ok_or("no bus")?;
    let result = (|| {
        if scenario == Scenario::Silent {
            *failed_at.lock().unwrap() = Some(Instant::now());
        }
        p.set_state(gst::State::Playing)
            .map_err(|_| "the pipeline refused to go to PLAYING".to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(10),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            ) {
                return Err(match msg.view() {
                    gst::MessageView::Error(e) => format!("ERROR on the bus: {}", e.error()),
                    _ => "the output ended (EOS) instead of switching".to_string(),
                });
            }
            let now = Instant::now();
            if now > deadline {
                return Err("no backup frame within 20 s".into());
            }
            if let Some(at) = *backup_at.lock().unwrap() {
                let failed = failed_at
                    .lock()
                    .unwrap()
                    .ok_or("backup before the failure")?;
                return Ok(at.duration_since(failed).as_secs_f64() * 1000.0);
            }
            let on_air = first_primary
                .lock()
                .unwrap()
                .is_some_and(|t| now.duration_since(t) >= ON_AIR_BEFORE_FAILURE);
            if on_air && failed_at.lock().unwrap().is_none() {
                *failed_at.lock().unwrap() = Some(Instant::now());
                match scenario {
                    Scenario::Error => {
                        mode.store(DROP, Ordering::SeqCst);
                        let _ = src.post_message(
                            gst::message::Error::builder(
                                gst::StreamError::Failed,
                                "injected failure (benchmark)",
                            )
                            .src(&src)
                            .build(),
                        );
                    }
                    Scenario::Stall => mode.store(DROP, Ordering::SeqCst),
                    Scenario::Eos => {
                        src.send_event(gst::event::Eos::new());
                    }
                    Scenario::Frozen => mode.store(FREEZE, Ordering::SeqCst),
                    Scenario::Black => mode.store(BLACK, Ordering::SeqCst),
                    Scenario::Silent => {}
                }
            }
        }
    })();
    crate::gstrun::stop_bounded(&p, Duration::from_secs(10))?;
    let ms = result?;
    let mut run = Run::timed(ms / 1000.0);
    run.values.insert("ms".into(), ms);
    Ok(run)
}

/// Two live 30 fps VP8 streams over RTSP on loopback, at `/a` and `/b` (gst-rtsp-server in
/// this process, so its cost is not in the measured processes; 1.22 never finished preparing
/// an MJPEG media here).
pub struct LiveServer {
    _server: gst_rtsp_server::RTSPServer,
    main_loop: gst::glib::MainLoop,
    pub base: String,
}

impl LiveServer {
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        use gst_rtsp_server::prelude::*;
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let mounts = server
            .mount_points()
            .ok_or("RTSP server without mount points")?;
        for (path, pattern) in [("/a", "smpte"), ("/b", "ball")] {
            let factory = gst_rtsp_server::RTSPMediaFactory::new();
            factory.set_launch(&format!(
                "( videotestsrc is-live=true pattern={pattern} \
                   ! video/x-raw,width={width},height={height},framerate=30/1 \
                   ! vp8enc deadline=1 cpu-used=16 threads=2 target-bitrate=2000000 \
                   ! rtpvp8pay name=pay0 pt=96 )"
            ));
            factory.set_shared(true);
            mounts.add_factory(path, factory);
        }
        let ctx = gst::glib::MainContext::new();
        server
            .attach(Some(&ctx))
            .map_err(|e| format!("the RTSP server does not bind: {e}"))?;
        let main_loop = gst::glib::MainLoop::new(Some(&ctx), false);
        let ml = main_loop.clone();
        std::thread::spawn(move || {
            let _ = ctx.with_thread_default(|| ml.run());
        });
        let base = format!("rtsp://127.0.0.1:{}", server.bound_port());
        Ok(Self {
            _server: server,
            main_loop,
            base,
        })
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.main_loop.quit();
    }
}

const CPU_VIGIL_WARM: &str = "vigilfailoversrc standby=warm";
const CPU_VIGIL_COLD: &str = "vigilfailoversrc standby=cold";
const CPU_FALLBACK: &str = "fallbacksrc (gst-plugins-rs)";

/// CPU of one channel: two live 720p30 inputs (RTSP, VP8) into each element, whole
/// `gst-launch-1.0` processes stopped with Ctrl-C after a fixed time.
fn cpu_comparison(ctx: &Ctx, fallback: bool) -> Result<Comparison, String> {
    let server = LiveServer::start(1280, 720)?;
    let (a, b) = (format!("{}/a", server.base), format!("{}/b", server.base));
    let secs = if ctx.quick() { 4 } else { 20 };
    let run_for = Duration::from_secs(secs);
    let caps = "video/x-raw,width=1280,height=720,framerate=30/1";
    let vigil = |standby: &str| {
        format!(
            "vigilfailoversrc name=f enable-audio=false standby={standby} uris=<\"{a}\",\"{b}\"> \
             video-caps={caps} f.video ! fakesink name=out sync=true"
        )
    };
    let (warm, cold) = (vigil("warm"), vigil("cold"));
    let peer = format!(
        "fallbacksrc name=f enable-audio=false uri={a} fallback-uri={b} f.video_0 ! fakesink name=out sync=true"
    );
    // Before the timed runs: each pipeline, in this process, delivers live frames.
    let mut checked = vec![&warm, &cold];
    if fallback {
        checked.push(&peer);
    }
    for desc in checked {
        let p = launch(desc)?;
        let sink = p.by_name("out").ok_or("no sink named out")?;
        let frames = Arc::new(AtomicU8::new(0)); // saturates at 255
        let f = frames.clone();
        sink.static_pad("sink").ok_or("no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                let _ = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1));
                gst::PadProbeReturn::Ok
            },
        );
        p.set_state(gst::State::Playing)
            .map_err(|_| format!("`{desc}` refused to go to PLAYING"))?;
        std::thread::sleep(Duration::from_secs(5));
        let status = p
            .by_name("f")
            .map(|f| f.property_value("status"))
            .and_then(|v| gst::glib::EnumValue::from_value(&v).map(|(_, e)| e.nick().to_string()))
            .unwrap_or_default();
        let error = p
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
        let _ = p.set_state(gst::State::Null);
        let n = frames.load(Ordering::SeqCst);
        if let Some(e) = error {
            return Err(format!("`{desc}`: ERROR {e:?}"));
        }
        if n < 45 {
            return Err(format!(
                "`{desc}` delivered {n} frames in 5 s (expected about 150)"
            ));
        }
        if status != "healthy" && status != "running" {
            return Err(format!(
                "`{desc}`: status {status} after 5 s: its input is not on air"
            ));
        }
    }
    let mut cases = Vec::new();
    if fallback {
        cases.push(Case::new(CPU_FALLBACK, |_| {
            ctx.gst_process_for(&peer, "fo-cpu-fallbacksrc", run_for)
        }));
    }
    cases.push(Case::new(CPU_VIGIL_WARM, |_| {
        ctx.gst_process_for(&warm, "fo-cpu-warm", run_for)
    }));
    cases.push(Case::new(CPU_VIGIL_COLD, |_| {
        ctx.gst_process_for(&cold, "fo-cpu-cold", run_for)
    }));
    let title = format!("CPU of one channel: two live 1280x720 30 fps inputs, {secs} s");
    let results = interleave(&title, cases, ctx.rounds);
    drop(server);
    Ok(Comparison {
        id: "fo-cpu".into(),
        title,
        metric: Metric::Fps { frames: secs * 30 },
        reference: 0,
        results,
        sizes: false,
        notes: vec![format!(
            "Two live RTSP streams on loopback (1280x720, 30 fps, VP8; the server runs in the \
             harness process, so its cost is not counted), the first as primary, the second as \
             backup: `gst-launch-1.0 -q fallbacksrc uri=A fallback-uri=B ! fakesink sync=true` \
             against `vigilfailoversrc uris=<A,B> standby=warm|cold video-caps={caps}`, each a \
             whole process stopped with Ctrl-C after {secs} s; the CPU time (user + system, \
             every thread) is the figure, the speed column only says the run lasted its time. \
             `standby=warm` decodes both inputs all the time (switches are instant and the \
             backup is watched); `standby=cold` decodes only the input on air."
        )],
    })
}

/// The failover section and its targets, or `None` (with a note in the report) when the
/// element is missing.
pub fn run(ctx: &mut Ctx) -> Result<Option<(Section, Vec<Target>)>, String> {
    if !ctx.has_elements(&["vigilfailoversrc"]) {
        ctx.skipped.push(
            "Failover: `vigilfailoversrc` is not built in this tree, so there is nothing to \
             measure against `fallbacksrc`."
                .into(),
        );
        return Ok(None);
    }
    let fallback = ctx.fallbacksrc.is_some() && ctx.has_elements(&["fallbacksrc"]);
    let scenarios: &[Scenario] = if ctx.quick() {
        &[Scenario::Silent, Scenario::Stall, Scenario::Frozen]
    } else {
        &[
            Scenario::Silent,
            Scenario::Error,
            Scenario::Stall,
            Scenario::Eos,
            Scenario::Frozen,
            Scenario::Black,
        ]
    };
    backup_file(ctx)?;
    let ctx: &Ctx = ctx;
    let mut items = vec![Item::Text(format!(
        "A live white `videotestsrc` (320x240, 30 fps, a counter in its bottom rows) is the \
         primary, in a bin whose pad probe injects the failure; a red Matroska (MJPEG) \
         file with a moving ball is the backup. Each run waits until the primary has been on air for {} ms at the \
         output, injects the failure, and measures the wall-clock time until the first red \
         frame reaches the output sink (`sync=false`); with a silent primary the time runs \
         from the change to PLAYING. Stall, freeze and black detection are {TIMEOUT_MS} ms \
         (`vigilfailoversrc stall-timeout`, `freeze-timeout`, `black-timeout`; `fallbacksrc \
         timeout`, with `immediate-fallback=true` so that it too may show the backup while the \
         primary has not started); retries and failback are pushed out of the window. These runs are in the \
         harness process (the point is a latency seen at the output pad). Lower is better.",
        ON_AIR_BEFORE_FAILURE.as_millis()
    ))];
    let mut targets = Vec::new();
    for &scenario in scenarios {
        let mut cases = Vec::new();
        let with_peer = fallback && scenario.peer_detects();
        if with_peer {
            cases.push(Case::new(CPU_FALLBACK, move |_| {
                run_once(ctx, Contender::Fallback, scenario)
            }));
        }
        cases.push(Case::new(CPU_VIGIL_WARM, move |_| {
            run_once(ctx, Contender::Vigil { cold: false }, scenario)
        }));
        cases.push(Case::new(CPU_VIGIL_COLD, move |_| {
            run_once(ctx, Contender::Vigil { cold: true }, scenario)
        }));
        let results = interleave(scenario.title(), cases, ctx.rounds);
        let mut notes = vec![];
        if fallback && !scenario.peer_detects() {
            notes.push(
                "`fallbacksrc` has no such detection (it watches only whether buffers flow): \
                 it keeps the frozen or black picture on air, so it is not in this table."
                    .into(),
            );
        }
        if scenario == Scenario::Silent {
            targets.push(Target {
                label: format!("failover start: {CPU_VIGIL_WARM}, PLAYING to first backup frame with a silent primary <= 100 ms"),
                comparison: scenario.id().into(),
                case: CPU_VIGIL_WARM.into(),
                vs: String::new(),
                min_ratio: 0.0,
                cpu_at_most: false,
                at_most: Some(("ms".into(), 100.0)),
            });
            notes.push(
                "`standby=cold` starts only the primary, so with a silent primary it waits for \
                 the primary's `start-timeout` (default 5000 ms) before it starts the backup."
                    .into(),
            );
        }
        items.push(Item::Distribution(Distribution {
            id: scenario.id().into(),
            title: format!("Failure to first backup frame: {}", scenario.title()),
            columns: vec![("ms".into(), "ms".into())],
            ratio_key: "ms".into(),
            reference: 0,
            results,
            notes,
        }));
    }
    match cpu_comparison(ctx, fallback) {
        Ok(c) => {
            if fallback {
                for (case, max) in [(CPU_VIGIL_COLD, 1.0), (CPU_VIGIL_WARM, 1.6)] {
                    targets.push(Target {
                        label: format!("failover CPU, two live 720p30 inputs: {case} <= {max}x the CPU of {CPU_FALLBACK}"),
                        comparison: c.id.clone(),
                        case: case.into(),
                        vs: CPU_FALLBACK.into(),
                        min_ratio: max,
                        cpu_at_most: true,
                        at_most: None,
                    });
                }
            }
            items.push(Item::Comparison(c));
        }
        Err(e) => items.push(Item::Text(format!("CPU per channel: not measured: {e}"))),
    }
    if !fallback {
        items.push(Item::Text(
            "gst-plugins-rs `fallbacksrc` was not available in this run (see \"Not measured\"): \
             only vigilfailoversrc was measured."
                .into(),
        ));
    }
    Ok(Some((
        Section {
            title: "Failover".into(),
            items,
        },
        targets,
    )))
}
