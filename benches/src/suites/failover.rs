// SPDX-License-Identifier: MPL-2.0
//! Failover: time from a failure of the primary input to the first backup frame at the output,
//! `vigilfailoversrc` (warm and cold standby) against gst-plugins-rs `fallbacksrc` on the same
//! scenarios: the primary errors mid-stream, stalls mid-stream, is silent from the start, or
//! ends (EOS).
//!
//! The primary is a live `videotestsrc` (white) in a bin the harness controls; a pad probe in
//! it injects the failure. The backup is a solid red Matroska file. A probe at the output reads
//! the luma of each frame to tell primary, backup and filler apart.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::context::Ctx;
use crate::gstrun::{launch, run_to_eos};
use crate::report::{Distribution, Item, Section};
use crate::runner::{Case, Run, interleave};

/// Stall detection of both elements (`stall-timeout`, `timeout`).
const TIMEOUT_MS: u64 = 1000;
/// How long the primary is on air before the failure.
const ON_AIR_BEFORE_FAILURE: Duration = Duration::from_millis(1500);
const CAPS: &str = "video/x-raw,format=I420,width=320,height=240,framerate=30/1";

const PASS: u8 = 0;
const DROP: u8 = 1;

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
}

impl Scenario {
    fn title(self) -> &'static str {
        match self {
            Scenario::Error => "primary errors mid-stream",
            Scenario::Stall => "primary stalls mid-stream",
            Scenario::Silent => "primary connects and is silent from the start",
            Scenario::Eos => "primary ends (EOS) mid-stream",
        }
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

/// The backup: a solid red MJPEG Matroska file long enough for any run, made once.
fn backup_file(ctx: &Ctx) -> Result<std::path::PathBuf, String> {
    let path = ctx.work.join("failover-backup-red-60s.mkv");
    if !path.is_file() {
        let tmp = path.with_extension("tmp.mkv");
        let p = launch(&format!(
            "videotestsrc pattern=red num-buffers=1800 ! {CAPS} ! jpegenc \
             ! matroskamux streamable=true ! filesink location={}",
            tmp.display()
        ))?;
        run_to_eos(&p, Duration::from_secs(300))?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// The primary: `videotestsrc is-live=true pattern=white ! capsfilter` in a bin, and the mode
/// switch its probe reads.
fn primary(start: u8) -> Result<(gst::Element, gst::Element, Arc<AtomicU8>), String> {
    let bin = gst::parse::bin_from_description(
        &format!("videotestsrc name=primary is-live=true pattern=white ! capsfilter caps={CAPS}"),
        true,
    )
    .map_err(|e| format!("primary: {e}"))?;
    let src = bin.by_name("primary").ok_or("primary: no source")?;
    let mode = Arc::new(AtomicU8::new(start));
    let m = mode.clone();
    src.static_pad("src").ok_or("primary: no pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            if m.load(Ordering::SeqCst) == DROP {
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        },
    );
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
                 retry-backoff-max=60000 standby={} \
                 f.video ! fakesink name=out sync=false \
                 f.audio ! fakesink sync=false async=false",
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
                 fallback-uri={backup} f.video ! fakesink name=out sync=false",
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
                    Scenario::Silent => {}
                }
            }
        }
    })();
    let _ = p.set_state(gst::State::Null);
    let ms = result?;
    let mut run = Run::timed(ms / 1000.0);
    run.values.insert("ms".into(), ms);
    Ok(run)
}

/// The failover section, or `None` (with a note in the report) when the element is missing.
pub fn run(ctx: &mut Ctx) -> Result<Option<Section>, String> {
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
        &[Scenario::Error, Scenario::Stall]
    } else {
        &[
            Scenario::Error,
            Scenario::Stall,
            Scenario::Silent,
            Scenario::Eos,
        ]
    };
    backup_file(ctx)?;
    let ctx: &Ctx = ctx;
    let mut items = vec![Item::Text(format!(
        "A live white `videotestsrc` (320x240, 30 fps) is the primary, in a bin whose pad probe \
         injects the failure; a solid red Matroska (MJPEG) file is the backup. Each run waits \
         until the primary has been on air for {} ms at the output, injects the failure, and \
         measures the wall-clock time until the first red frame reaches the output sink \
         (`sync=false`). Stall detection is {TIMEOUT_MS} ms on both sides \
         (`vigilfailoversrc stall-timeout`, `fallbacksrc timeout`); retries and failback are \
         pushed out of the window. Lower is better.",
        ON_AIR_BEFORE_FAILURE.as_millis()
    ))];
    for &scenario in scenarios {
        let mut cases = Vec::new();
        if fallback {
            cases.push(Case::new("fallbacksrc (gst-plugins-rs)", move |_| {
                run_once(ctx, Contender::Fallback, scenario)
            }));
        }
        cases.push(Case::new("vigilfailoversrc standby=warm", move |_| {
            run_once(ctx, Contender::Vigil { cold: false }, scenario)
        }));
        cases.push(Case::new("vigilfailoversrc standby=cold", move |_| {
            run_once(ctx, Contender::Vigil { cold: true }, scenario)
        }));
        let results = interleave(scenario.title(), cases, ctx.rounds);
        items.push(Item::Distribution(Distribution {
            title: format!("Failure to first backup frame: {}", scenario.title()),
            columns: vec![("ms".into(), "ms".into())],
            ratio_key: "ms".into(),
            reference: 0,
            results,
            notes: vec![],
        }));
    }
    if !fallback {
        items.push(Item::Text(
            "gst-plugins-rs `fallbacksrc` was not available in this run (see \"Not measured\"): \
             only vigilfailoversrc was measured."
                .into(),
        ));
    }
    Ok(Some(Section {
        title: "Failover".into(),
        items,
    }))
}
