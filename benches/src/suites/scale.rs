// SPDX-License-Identifier: MPL-2.0
//! Scale: how many real-time 720p30 channels this machine sustains, each a failover source
//! with a live input, an AV1 encoder and a file sink: vigil's chain (`vigilfailoversrc ->
//! vigilsvtav1enc preset=12 low delay -> vigilsink`) against the same chain built from peers
//! (`fallbacksrc -> av1enc` libaom realtime -> `filesink`). Every channel is checked for
//! dropped and late frames. Measured in the harness process: the channels run side by side
//! and each one's frames are counted and timed at its sink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::context::Ctx;
use crate::gstrun::launch;
use crate::report::{Item, Section};
use crate::stats::percentile;

const SOURCE: &str = "videotestsrc is-live=true pattern=ball \
    ! capsfilter caps=video/x-raw,format=I420,width=1280,height=720,framerate=30/1";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    Vigil,
    Peers,
}

impl Chain {
    fn name(self) -> &'static str {
        match self {
            Chain::Vigil => {
                "vigilfailoversrc -> vigilsvtav1enc preset=12 low delay CBR 2000 -> vigilsink"
            }
            Chain::Peers => "fallbacksrc -> av1enc realtime cpu-used=10 quantizer 30 -> filesink",
        }
    }

    fn pipeline(self, out: &std::path::Path) -> String {
        match self {
            Chain::Vigil => format!(
                "vigilfailoversrc name=f enable-audio=false \
                 video-caps=video/x-raw,width=1280,height=720,framerate=30/1 \
                 f.video ! vigilsvtav1enc preset=12 pred-structure=low-delay rate-control=cbr \
                 target-bitrate=2000 ! vigilsink name=out location={}",
                out.display()
            ),
            Chain::Peers => format!(
                "fallbacksrc name=f enable-audio=false f.video_0 ! av1enc \
                 usage-profile=realtime cpu-used=10 end-usage=q min-quantizer=30 \
                 max-quantizer=30 threads=0 row-mt=true ! filesink name=out location={}",
                out.display()
            ),
        }
    }
}

/// What one channel did in the measured window.
struct ChannelResult {
    frames: usize,
    late_p99_ms: f64,
}

/// Runs `n` channels of `chain` side by side: `warmup`, then `window` measured.
fn run_channels(
    ctx: &Ctx,
    chain: Chain,
    n: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Vec<ChannelResult>, String> {
    let mut pipelines = Vec::new();
    let mut arrivals = Vec::new();
    for i in 0..n {
        let out = ctx.work.join(format!("scale-{i}.bin"));
        let p = launch(&chain.pipeline(&out))?;
        let src =
            gst::parse::bin_from_description(SOURCE, true).map_err(|e| format!("source: {e}"))?;
        let f = p.by_name("f").ok_or("no failover element")?;
        match chain {
            Chain::Vigil => {
                if !f.emit_by_name::<bool>("add-source", &[&src]) {
                    return Err("add-source refused the live source".into());
                }
            }
            Chain::Peers => f.set_property("source", &src),
        }
        // (arrival, lateness): lateness is the arrival's running time minus the buffer's.
        let seen: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
        let s = seen.clone();
        let weak = p.downgrade();
        p.by_name("out")
            .and_then(|o| o.static_pad("sink"))
            .ok_or("no sink pad")?
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let now = Instant::now();
                let late = (|| {
                    let p = weak.upgrade()?;
                    let clock = p.clock()?;
                    let running = clock.time().checked_sub(p.base_time()?)?;
                    let seg = pad.sticky_event::<gst::event::Segment>(0)?;
                    let seg = seg.segment().downcast_ref::<gst::ClockTime>()?.clone();
                    let pts = info.buffer()?.pts()?;
                    let rt = seg.to_running_time(pts)?;
                    Some((running.nseconds() as f64 - rt.nseconds() as f64) / 1e6)
                })()
                .unwrap_or(f64::NAN);
                s.lock().unwrap().push((now, late));
                gst::PadProbeReturn::Ok
            });
        pipelines.push(p);
        arrivals.push(seen);
    }
    for p in &pipelines {
        p.set_state(gst::State::Playing)
            .map_err(|_| "a channel refused to go to PLAYING".to_string())?;
    }
    std::thread::sleep(warmup);
    let from = Instant::now();
    std::thread::sleep(window);
    let to = Instant::now();
    let mut errors = Vec::new();
    for p in &pipelines {
        if let Some(m) = p
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            && let gst::MessageView::Error(e) = m.view()
        {
            errors.push(e.error().to_string());
        }
    }
    for p in &pipelines {
        crate::gstrun::stop_bounded(p, Duration::from_secs(10))
            .map_err(|e| format!("{}: {e}", chain.name()))?;
    }
    for i in 0..n {
        let _ = std::fs::remove_file(ctx.work.join(format!("scale-{i}.bin")));
    }
    if let Some(e) = errors.first() {
        return Err(format!("ERROR in a channel: {e}"));
    }
    Ok(arrivals
        .iter()
        .map(|a| {
            let a = a.lock().unwrap();
            let inside: Vec<&(Instant, f64)> =
                a.iter().filter(|(t, _)| *t >= from && *t < to).collect();
            let late: Vec<f64> = inside
                .iter()
                .map(|(_, l)| *l)
                .filter(|l| l.is_finite())
                .collect();
            ChannelResult {
                frames: inside.len(),
                late_p99_ms: percentile(&late, 0.99).unwrap_or(f64::NAN),
            }
        })
        .collect())
}

/// The scale section.
pub fn run(ctx: &mut Ctx) -> Result<Section, String> {
    let ctx: &Ctx = ctx;
    let (warmup, window, max_n) = if ctx.quick() {
        (Duration::from_secs(2), Duration::from_secs(3), 1)
    } else {
        (Duration::from_secs(4), Duration::from_secs(10), 8)
    };
    let expected = 30.0 * window.as_secs_f64();
    let mut chains = vec![Chain::Vigil];
    if ctx.has_elements(&["fallbacksrc", "av1enc"]) {
        chains.push(Chain::Peers);
    }
    let mut md = format!(
        "Each channel: a live `videotestsrc` 1280x720 at 30 fps (moving ball) as the failover \
         source's input, encoded to AV1 at 2000 kbit/s CBR and written to a file; the channels \
         run side by side in the harness process. After {} s of warm-up, {} s are measured: a \
         channel keeps up when every one of its frames of the window arrives at its sink \
         (at least 97 % of {expected:.0}) and its 99th-percentile lateness (running time at \
         arrival minus the buffer's running time) stays under 1 s. The channel count grows \
         until one channel does not keep up (at most {max_n}). libaom 3.6 aborts the process \
         (an assertion in `rc_pick_q_and_bounds_no_stats_cbr`) in realtime CBR here, so the \
         peers' `av1enc` runs with its quantizer fixed at 30 (`end-usage=q`), as in the \
         encoder section.\n\n\
         | chain | channels | frames per channel in the window (min-max) | lateness p99, ms (worst channel) | keeps up |\n\
         |---|---:|---:|---:|---|\n",
        warmup.as_secs(),
        window.as_secs()
    );
    let mut summary = Vec::new();
    for chain in chains {
        let mut sustained = 0;
        for n in 1..=max_n {
            eprintln!("  [scale] {}: {n} channel(s)", chain.name());
            match run_channels(ctx, chain, n, warmup, window) {
                Ok(res) => {
                    let min = res.iter().map(|r| r.frames).min().unwrap_or(0);
                    let max = res.iter().map(|r| r.frames).max().unwrap_or(0);
                    let late = res.iter().map(|r| r.late_p99_ms).fold(f64::NAN, f64::max);
                    let ok = min as f64 >= 0.97 * expected && late < 1000.0;
                    md.push_str(&format!(
                        "| {} | {n} | {min}-{max} | {late:.0} | {} |\n",
                        chain.name(),
                        if ok { "yes" } else { "**no**" }
                    ));
                    if !ok {
                        break;
                    }
                    sustained = n;
                }
                Err(e) => {
                    md.push_str(&format!(
                        "| {} | {n} | failed: {} | - | **no** |\n",
                        chain.name(),
                        e.replace('|', "/")
                    ));
                    break;
                }
            }
        }
        summary.push(if sustained == max_n {
            format!("{}: at least {sustained} (the most tried)", chain.name())
        } else {
            format!("{}: {sustained}", chain.name())
        });
    }
    md.push_str(&format!(
        "\nReal-time 720p30 channels this machine sustains: {}.\n",
        summary.join("; ")
    ));
    Ok(Section {
        title: "Scale".into(),
        items: vec![Item::Text(md)],
    })
}
