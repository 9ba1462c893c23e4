// SPDX-License-Identifier: MPL-2.0
//! Sink: how long the streaming thread stays in the sink per buffer when the consumer is slow
//! (`vigilsink` under each `leaky` policy against `appsink` with the same consumer in its
//! `new-sample` callback; in this process, since the streaming thread's time is the point), and
//! copies to a file against `filesink` (whole processes, checked byte for byte).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use crate::context::Ctx;
use crate::gstrun::{launch, run_to_eos_then, time_between_buffers};
use crate::report::{Comparison, Distribution, Item, Metric, Section};
use crate::runner::{Case, Run, interleave};
use crate::stats::percentile;
use crate::tools::file_size;

/// What the slow consumer spends on every sample.
const CONSUMER: Duration = Duration::from_millis(2);
const SMALL: u64 = 64 * 1024;
const BIG: u64 = 1024 * 1024;

fn slow_consumer_run(ctx: &Ctx, sink: &str, buffers: u64) -> Result<Run, String> {
    let p = launch(&format!(
        "fakesrc num-buffers={buffers} sizetype=fixed sizemax={SMALL} filltype=nothing \
         ! {sink} name=sink sync=false"
    ))?;
    let element = p.by_name("sink").ok_or("no sink")?;
    let consumed = Arc::new(Mutex::new(0u64));
    let c = consumed.clone();
    if sink.starts_with("appsink") {
        element.connect("new-sample", false, move |args| {
            let appsink = args[0].get::<gst::Element>().ok()?;
            let _ = appsink.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]);
            std::thread::sleep(CONSUMER);
            *c.lock().unwrap() += 1;
            Some(gst::FlowReturn::Ok.to_value())
        });
    } else {
        element.connect("new-sample", false, move |_| {
            std::thread::sleep(CONSUMER);
            *c.lock().unwrap() += 1;
            Some(gst::FlowReturn::Ok.to_value())
        });
    }
    let gaps = time_between_buffers(&p, "sink")?;
    let stats: Arc<Mutex<Option<gst::Structure>>> = Arc::default();
    let s = stats.clone();
    let secs = run_to_eos_then(&p, ctx.timeout(), |p| {
        if let Some(sink) = p.by_name("sink")
            && sink.has_property("stats")
        {
            *s.lock().unwrap() = Some(sink.property::<gst::Structure>("stats"));
        }
    })?;
    let gaps = gaps.lock().unwrap().clone();
    let mut run = Run::timed(secs);
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        if let Some(v) = percentile(&gaps, q) {
            run.values.insert(key.into(), v);
        }
    }
    run.values
        .insert("consumed".into(), *consumed.lock().unwrap() as f64);
    if let Some(st) = stats.lock().unwrap().as_ref() {
        for key in ["render-mean-us", "render-max-us", "dropped"] {
            if let Ok(v) = st.get::<u64>(key) {
                run.values.insert(key.into(), v as f64);
            }
        }
    } else {
        run.values.insert("dropped".into(), 0.0);
    }
    Ok(run)
}

/// A file of `size` pseudo-random bytes in the work folder (made once).
fn source_file(ctx: &Ctx, size: u64) -> Result<PathBuf, String> {
    let path = ctx.work.join(format!("sink-in-{size}.bin"));
    if file_size(&path) == size {
        return Ok(path);
    }
    let mut data = Vec::with_capacity(size as usize);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while (data.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size as usize);
    std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Copies `input` to a file through `sink` in blocks of `block` bytes, as a whole
/// `gst-launch-1.0` process, and checks the copy is identical, byte for byte.
fn copy_run(ctx: &Ctx, sink: &str, input: &Path, block: u64) -> Result<Run, String> {
    let out = ctx.work.join("sink-out.bin");
    let _ = std::fs::remove_file(&out);
    let mut run = ctx.gst_process(
        &format!(
            "filesrc location={} blocksize={block} ! {sink} location={}",
            input.display(),
            out.display()
        ),
        "sink-copy",
        None,
    )?;
    let same = std::fs::read(input).map_err(|e| e.to_string())?
        == std::fs::read(&out).map_err(|e| format!("{sink} wrote no file: {e}"))?;
    let size = file_size(&out);
    let _ = std::fs::remove_file(&out);
    if !same {
        return Err(format!(
            "{sink}: the copy differs from its input ({size} of {} bytes)",
            file_size(input)
        ));
    }
    run.bytes = Some(size);
    Ok(run)
}

/// The sink section (no targets: the issue sets none for the sink).
pub fn run(ctx: &mut Ctx) -> Result<Section, String> {
    let small = if ctx.quick() { 200 } else { 1000 };
    let ctx: &Ctx = ctx;
    let cases = vec![
        Case::new("appsink, consumer in new-sample", |_| {
            slow_consumer_run(ctx, "appsink emit-signals=true max-buffers=16", small)
        }),
        Case::new("vigilsink leaky=drop-new", |_| {
            slow_consumer_run(ctx, "vigilsink leaky=drop-new", small)
        }),
        Case::new("vigilsink leaky=drop-old", |_| {
            slow_consumer_run(ctx, "vigilsink leaky=drop-old", small)
        }),
        Case::new("vigilsink leaky=block", |_| {
            slow_consumer_run(ctx, "vigilsink leaky=block", small)
        }),
    ];
    let title = format!(
        "Streaming-thread time per buffer, consumer taking {} ms per sample ({small} buffers of {} KiB from fakesrc)",
        CONSUMER.as_millis(),
        SMALL / 1024
    );
    let results = interleave("sink render", cases, ctx.rounds);
    let render = Distribution {
        id: "sink-render".into(),
        title,
        columns: vec![
            ("p50".into(), "p50 us".into()),
            ("p90".into(), "p90 us".into()),
            ("p99".into(), "p99 us".into()),
            ("max".into(), "max us".into()),
            ("render-mean-us".into(), "stats render-mean-us".into()),
            ("render-max-us".into(), "stats render-max-us".into()),
            ("consumed".into(), "samples consumed".into()),
            ("dropped".into(), "dropped".into()),
        ],
        ratio_key: "p50".into(),
        reference: 0,
        results,
        notes: vec![
            "Per buffer: the time between two buffers arriving at the sink pad (a pad probe); \
             the source costs next to nothing, so this is the time the streaming thread spent \
             in the sink. Percentiles are taken per round; the table shows the median over \
             rounds with min-max. `stats render-*` are vigilsink's own `stats` property (the \
             time in its `render`). appsink runs the same consumer in its `new-sample` callback, \
             on the streaming thread, as applications commonly do. Lower is better; \
             drop policies keep the streaming thread free by dropping (see the counts), \
             `leaky=block` passes the backpressure upstream by design."
                .into(),
        ],
    };
    let big_size: u64 = if ctx.quick() { 32 << 20 } else { 200 << 20 };
    let big_in = source_file(ctx, big_size)?;
    let big_ref = &big_in;
    let file_cases = vec![
        Case::new("filesink", |_| copy_run(ctx, "filesink", big_ref, BIG)),
        Case::new("vigilsink (defaults)", |_| {
            copy_run(ctx, "vigilsink", big_ref, BIG)
        }),
    ];
    let title = format!(
        "Copy of a {} MiB file in 1 MiB blocks (filesrc ! SINK, page cache)",
        big_size >> 20
    );
    let results = interleave("sink file", file_cases, ctx.rounds);
    let file = Comparison {
        id: "sink-file".into(),
        title,
        metric: Metric::Throughput { bytes: big_size },
        reference: 0,
        results,
        sizes: false,
        notes: vec![
            "Each run is a whole `gst-launch-1.0 -q filesrc location=IN blocksize=1048576 ! \
             SINK location=OUT` process; the harness checks the copy is identical to its input, \
             byte for byte. vigilsink at its defaults (`leaky=auto`: lossless for a non-live \
             upstream, as filesink)."
                .into(),
        ],
    };
    let small_n: u64 = if ctx.quick() { 3000 } else { 30000 };
    let small_in = source_file(ctx, small_n * 1920)?;
    let small_ref = &small_in;
    let small_cases = vec![
        Case::new("filesink", move |_| {
            copy_run(ctx, "filesink", small_ref, 1920)
        }),
        Case::new("vigilsink (defaults)", move |_| {
            copy_run(ctx, "vigilsink", small_ref, 1920)
        }),
    ];
    let results = interleave("sink small", small_cases, ctx.rounds);
    let small = Comparison {
        id: "sink-small".into(),
        title: format!("Small buffers: {small_n} buffers of 1920 B to a file (page cache)"),
        metric: Metric::Throughput {
            bytes: small_n * 1920,
        },
        reference: 0,
        results,
        sizes: false,
        notes: vec![
            "`filesrc blocksize=1920 ! SINK`, whole processes, defaults on both sides; the copy \
             is checked byte for byte."
                .into(),
        ],
    };
    Ok(Section {
        title: "Sink".into(),
        items: vec![
            Item::Distribution(render),
            Item::Comparison(file),
            Item::Comparison(small),
        ],
    })
}
