// SPDX-License-Identifier: MPL-2.0
//! Figures of a running pipeline, measured in the harness process because the point is the
//! duration of one call or the time between two buffers: how long `set_state(NULL)` takes right
//! after PLAYING (each vigil element against the element it replaces), how many threads one
//! encoder instance adds, and how long the output of a live low-delay encode stalls when its
//! bitrate is changed while it runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::context::Ctx;
use crate::gstrun::launch;
use crate::inputs;
use crate::report::{Distribution, Item, Section};
use crate::runner::{Case, Run, interleave};
use crate::stats::percentile;

const LIVE_720P: &str = "videotestsrc is-live=true pattern=ball \
    ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1";

/// Sets `desc` to PLAYING, waits `after`, and gives the milliseconds `set_state(NULL)` took.
fn stop_ms(desc: &str, after: Duration) -> Result<f64, String> {
    let p = launch(desc)?;
    p.set_state(gst::State::Playing)
        .map_err(|_| format!("`{desc}` refused to go to PLAYING"))?;
    std::thread::sleep(after);
    crate::gstrun::stop_bounded(&p, STOP_BOUND)
        .map_err(|e| format!("`{desc}`, {} ms after PLAYING: {e}", after.as_millis()))
}

/// How long a change to NULL may take before it counts as hung.
const STOP_BOUND: Duration = Duration::from_secs(10);

fn stop_run(desc: &str) -> Result<Run, String> {
    let mut run = Run::default();
    for (key, after) in [
        ("at once", Duration::ZERO),
        ("after 1 ms", Duration::from_millis(1)),
        ("after 500 ms", Duration::from_millis(500)),
    ] {
        let ms = stop_ms(desc, after)?;
        run.values.insert(key.into(), ms);
        run.secs += ms / 1000.0;
    }
    Ok(run)
}

fn stop_table(ctx: &Ctx, title: &str, id: &str, cases: Vec<(String, String)>) -> Item {
    let runs: Vec<Case<'_>> = cases
        .iter()
        .map(|(name, desc)| Case::new(name.clone(), move |_| stop_run(desc)))
        .collect();
    let results = interleave(title, runs, ctx.rounds);
    Item::Distribution(Distribution {
        id: id.into(),
        title: title.into(),
        columns: vec![
            ("at once".into(), "NULL at once, ms".into()),
            ("after 1 ms".into(), "NULL 1 ms after PLAYING, ms".into()),
            (
                "after 500 ms".into(),
                "NULL 500 ms after PLAYING, ms".into(),
            ),
        ],
        ratio_key: "after 500 ms".into(),
        reference: 0,
        results,
        notes: vec![],
    })
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads `n` instances of `encoder` add to the process once each has put out a buffer.
fn threads_run(encoder: &str, n: usize) -> Result<Run, String> {
    let before = threads();
    let mut pipelines = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..n {
        let p = launch(&format!(
            "{LIVE_720P} ! {encoder} ! fakesink name=out sync=false"
        ))?;
        let seen = Arc::new(Mutex::new(false));
        let s = seen.clone();
        p.by_name("out")
            .and_then(|o| o.static_pad("sink"))
            .ok_or("no sink")?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                *s.lock().unwrap() = true;
                gst::PadProbeReturn::Ok
            });
        p.set_state(gst::State::Playing)
            .map_err(|_| format!("{encoder} refused to go to PLAYING"))?;
        pipelines.push(p);
        counts.push(seen);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !counts.iter().all(|c| *c.lock().unwrap()) {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let during = threads();
    for p in &pipelines {
        let _ = p.set_state(gst::State::Null);
    }
    drop(pipelines);
    std::thread::sleep(Duration::from_millis(300));
    let after = threads();
    if !counts.iter().all(|c| *c.lock().unwrap()) {
        return Err(format!("{encoder}: no output within 30 s"));
    }
    let mut run = Run::default();
    run.values.insert(
        "per instance".into(),
        during.saturating_sub(before) as f64 / n as f64,
    );
    run.values.insert(
        "left after NULL".into(),
        after.saturating_sub(before) as f64,
    );
    Ok(run)
}

/// A live low-delay 720p encode at `target-bitrate=2000`; after 3 s the bitrate is set to
/// 1000 while it runs. Gives the longest gap between output buffers before the change and in
/// the second after it, in ms.
fn bitrate_change_run(ctx: &Ctx) -> Result<Run, String> {
    let p = launch(&format!(
        "{LIVE_720P} ! vigilsvtav1enc name=enc preset=12 pred-structure=low-delay \
         rate-control=cbr target-bitrate=2000 ! fakesink name=out sync=false"
    ))?;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let a = arrivals.clone();
    p.by_name("out")
        .and_then(|o| o.static_pad("sink"))
        .ok_or("no sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            a.lock().unwrap().push(Instant::now());
            gst::PadProbeReturn::Ok
        });
    let bus = p.bus().ok_or("no bus")?;
    p.set_state(gst::State::Playing)
        .map_err(|_| "the live encode refused to go to PLAYING".to_string())?;
    std::thread::sleep(Duration::from_secs(3));
    let changed = Instant::now();
    p.by_name("enc")
        .ok_or("no encoder")?
        .set_property("target-bitrate", 1000u32);
    std::thread::sleep(Duration::from_secs(2));
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    let _ = p.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(format!("ERROR during the live bitrate change: {e:?}"));
    }
    let t = arrivals.lock().unwrap().clone();
    let gaps = |from: Instant, to: Instant| -> Vec<f64> {
        t.windows(2)
            .filter(|w| w[1] >= from && w[1] < to)
            .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1000.0)
            .collect()
    };
    let before = gaps(changed - Duration::from_secs(2), changed);
    let after = gaps(changed, changed + Duration::from_secs(1));
    if before.len() < 30 || after.len() < 15 {
        return Err(format!(
            "too few output buffers around the change ({} before, {} after)",
            before.len(),
            after.len()
        ));
    }
    let _ = ctx;
    let mut run = Run::default();
    run.values
        .insert("gap before".into(), percentile(&before, 1.0).unwrap_or(0.0));
    run.values
        .insert("gap after".into(), percentile(&after, 1.0).unwrap_or(0.0));
    run.values.insert("frames after".into(), after.len() as f64);
    Ok(run)
}

/// The section.
pub fn run(ctx: &mut Ctx) -> Result<Section, String> {
    let ivf = inputs::av1_ivf(&ctx.work, 1280, 720, 60)?;
    let out = ctx.work.join("stop-sink.bin");
    let ctx: &Ctx = ctx;
    let mut items = vec![Item::Text(
        "Measured in the harness process: the figure is the duration of one call \
         (`set_state(NULL)`) or the time between buffers at a pad, which a whole-process \
         timing cannot isolate. Each pipeline goes to PLAYING, then to NULL at once, 1 ms later \
         or 500 ms later; the time `set_state(NULL)` takes is given in ms (lower is better). \
         A stop with a wedged codec or consumer is bounded by `watchdog-timeout` (the tests \
         check it for every element with fault injection, which release builds do not have)."
            .into(),
    )];
    let mut enc = vec![(
        "vigilsvtav1enc preset=12".to_string(),
        format!("{LIVE_720P} ! vigilsvtav1enc preset=12 ! fakesink"),
    )];
    if ctx.has_elements(&["av1enc"]) {
        enc.push((
            "av1enc usage-profile=realtime cpu-used=10".into(),
            format!("{LIVE_720P} ! av1enc usage-profile=realtime cpu-used=10 ! fakesink"),
        ));
    }
    items.push(stop_table(
        ctx,
        "Stop latency: encoder, live 720p30",
        "stop-enc",
        enc,
    ));
    let dec_desc = |d: &str| {
        format!(
            "filesrc location={} ! ivfparse ! av1parse ! {d} ! fakesink sync=true",
            ivf.display()
        )
    };
    let mut dec = vec![("vigildav1ddec".to_string(), dec_desc("vigildav1ddec"))];
    if ctx.has_elements(&["dav1ddec"]) {
        dec.push(("dav1ddec (gst-plugins-rs)".into(), dec_desc("dav1ddec")));
    }
    items.push(stop_table(
        ctx,
        "Stop latency: decoder, 720p file played in real time",
        "stop-dec",
        dec,
    ));
    let sink_desc = |s: &str| format!("{LIVE_720P} ! {s} location={}", out.display());
    items.push(stop_table(
        ctx,
        "Stop latency: sink, live 720p30 raw video to a file",
        "stop-sink",
        vec![
            ("filesink".into(), sink_desc("filesink")),
            ("vigilsink".into(), sink_desc("vigilsink")),
        ],
    ));
    if ctx.has_elements(&["vigilfailoversrc"]) {
        let file = crate::suites::failover::backup_file(ctx)?;
        let uri = format!("file://{}", file.display());
        {
            let mut fo = Vec::new();
            if ctx.has_elements(&["fallbacksrc"]) {
                fo.push((
                    "fallbacksrc (gst-plugins-rs)".into(),
                    format!("fallbacksrc enable-audio=false uri={uri} ! fakesink"),
                ));
            }
            fo.push((
                "vigilfailoversrc".into(),
                format!("vigilfailoversrc enable-audio=false uris=<\"{uri}\"> ! fakesink"),
            ));
            items.push(stop_table(
                ctx,
                "Stop latency: failover source, one file input",
                "stop-fo",
                fo,
            ));
        }
    }

    let mut thread_cases = vec![
        Case::new("vigilsvtav1enc preset=12, 1 instance", |_| {
            threads_run("vigilsvtav1enc preset=12", 1)
        }),
        Case::new("vigilsvtav1enc preset=12, 3 instances", |_| {
            threads_run("vigilsvtav1enc preset=12", 3)
        }),
    ];
    if ctx.has_elements(&["av1enc"]) {
        thread_cases.push(Case::new("av1enc realtime cpu-used=10, 1 instance", |_| {
            threads_run("av1enc usage-profile=realtime cpu-used=10 threads=0", 1)
        }));
    }
    let results = interleave("encoder threads", thread_cases, ctx.rounds.min(3));
    items.push(Item::Distribution(Distribution {
        id: "enc-threads".into(),
        title: "Threads per encoder instance (live 720p30 input)".into(),
        columns: vec![
            ("per instance".into(), "threads added per instance".into()),
            ("left after NULL".into(), "threads left after NULL".into()),
        ],
        ratio_key: "per instance".into(),
        reference: 0,
        results,
        notes: vec![
            "Threads of the harness process while the encoders run, minus those before, over \
             the number of instances (the source and sink threads of each pipeline included); \
             and what is left 300 ms after every pipeline went to NULL. SVT-AV1 sizes its \
             thread pools from the logical processors it may use (`threads=0`: all)."
                .into(),
        ],
    }));

    let results = interleave(
        "bitrate change",
        vec![Case::new(
            "vigilsvtav1enc low delay, CBR 2000 -> 1000 kbit/s",
            |_| bitrate_change_run(ctx),
        )],
        ctx.rounds.min(3),
    );
    items.push(Item::Distribution(Distribution {
        id: "enc-bitrate-change".into(),
        title: "Live bitrate change: output gaps, 720p30 low delay, preset 12".into(),
        columns: vec![
            (
                "gap before".into(),
                "longest gap in the 2 s before, ms".into(),
            ),
            (
                "gap after".into(),
                "longest gap in the 1 s after, ms".into(),
            ),
            ("frames after".into(), "buffers in the 1 s after".into()),
        ],
        ratio_key: "gap after".into(),
        reference: 0,
        results,
        notes: vec![
            "`target-bitrate` is set while the encoder runs (a property SVT-AV1 1.4 cannot \
             change in a running encoder: the element drains and restarts it, starting with a \
             key frame). The stall is the longest gap between output buffers in the second \
             after the change, against the longest in the two seconds before."
                .into(),
        ],
    }));
    Ok(Section {
        title: "Stop latency, encoder threads, live bitrate change".into(),
        items,
    })
}
