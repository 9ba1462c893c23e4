// SPDX-License-Identifier: MPL-2.0
//! Sink: how long the streaming thread stays in the sink per buffer when the consumer is slow
//! (`vigilsink` under each `leaky` policy against `appsink` with the same consumer in its
//! `new-sample` callback), and throughput to a file against `filesink`.

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

fn file_run(ctx: &Ctx, sink: &str, buffers: u64) -> Result<Run, String> {
    file_run_sized(ctx, sink, buffers, BIG)
}

fn file_run_sized(ctx: &Ctx, sink: &str, buffers: u64, size_each: u64) -> Result<Run, String> {
    let out = ctx.work.join("sink-out.bin");
    let _ = std::fs::remove_file(&out);
    let p = launch(&format!(
        "fakesrc num-buffers={buffers} sizetype=fixed sizemax={size_each} filltype=nothing \
         ! {sink} location={} sync=false",
        out.display()
    ))?;
    let secs = run_to_eos_then(&p, ctx.timeout(), |_| ())?;
    let size = file_size(&out);
    let _ = std::fs::remove_file(&out);
    if size != buffers * size_each {
        return Err(format!(
            "{sink} wrote {size} bytes, expected {}",
            buffers * size_each
        ));
    }
    Ok(Run {
        secs,
        bytes: Some(size),
        ..Run::default()
    })
}

/// The sink section (no targets: the issue sets none for the sink).
pub fn run(ctx: &mut Ctx) -> Result<Section, String> {
    let (small, big) = if ctx.quick() { (200, 64) } else { (1000, 512) };
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
    let file_cases = vec![
        Case::new("filesink", |_| file_run(ctx, "filesink", big)),
        Case::new("vigilsink leaky=block", |_| {
            file_run(ctx, "vigilsink leaky=block", big)
        }),
    ];
    let title = format!("Throughput to a file ({big} buffers of 1 MiB, page cache)");
    let results = interleave("sink file", file_cases, ctx.rounds);
    let file = Comparison {
        id: "sink-file".into(),
        title,
        metric: Metric::Throughput { bytes: big * BIG },
        reference: 0,
        results,
        sizes: false,
        notes: vec![
            "`leaky=block` so that vigilsink drops nothing, as filesink; the harness checks the \
             file holds every byte."
                .into(),
        ],
    };
    let small_n: u64 = if ctx.quick() { 3000 } else { 30000 };
    let small_cases = vec![
        Case::new("filesink", move |_| {
            file_run_sized(ctx, "filesink", small_n, 1920)
        }),
        Case::new("vigilsink (defaults: leaky=auto, lossless)", move |_| {
            file_run_sized(ctx, "vigilsink", small_n, 1920)
        }),
    ];
    let results = interleave("sink small", small_cases, ctx.rounds);
    let small = Comparison {
        id: "sink-small".into(),
        title: format!("Throughput to a file ({small_n} buffers of 1920 B, page cache)"),
        metric: Metric::Throughput {
            bytes: small_n * 1920,
        },
        reference: 0,
        results,
        sizes: false,
        notes: vec![
            "Defaults on both sides: vigilsink's `leaky=auto` blocks for a non-live upstream \
             (lossless, as filesink); the harness checks the file holds every byte."
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
