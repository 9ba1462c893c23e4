// SPDX-License-Identifier: MPL-2.0
//! `vigilsink` with Rust consumers (the callback API of the wrapper type, registered
//! statically): slow consumers under each `leaky` policy, panics, and a consumer that never
//! returns. Every test is bounded in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstvigilsink::{ConsumerError, VigilSink};

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstvigilsink::plugin_register_static().unwrap();
    });
}

/// A pipeline of `frames` small buffers at `fps` (live, so the consumer's pace matters) into
/// a vigilsink configured by `props`, whose consumer is `consumer`.
fn pipeline(
    frames: u32,
    fps: u32,
    props: &str,
    consumer: impl FnMut(&gst::Sample) -> Result<(), ConsumerError> + Send + 'static,
) -> (gst::Pipeline, VigilSink) {
    init();
    let p = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=64,height=48,framerate={fps}/1 \
         ! vigilsink name=sink sync=false {props}"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p.by_name("sink").unwrap().downcast::<VigilSink>().unwrap();
    sink.set_consumer(consumer);
    (p, sink)
}

#[derive(Default, Debug)]
struct Bus {
    errors: Vec<(String, Option<gst::Structure>, Duration)>,
    warnings: Vec<String>,
    backpressure: Vec<(gst::Structure, Instant)>,
    eos: Option<Duration>,
}

fn run(p: &gst::Pipeline, deadline: Duration) -> Bus {
    let bus = p.bus().unwrap();
    let start = Instant::now();
    let got = Arc::new(Mutex::new(Bus::default()));
    let g = got.clone();
    // A sync handler stamps each message when it is posted, not when it is read.
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
            && s.name() == "vigil-sink-backpressure"
        {
            g.lock()
                .unwrap()
                .backpressure
                .push((s.to_owned(), Instant::now()));
        }
        gst::BusSyncReply::Pass
    });
    p.set_state(gst::State::Playing).unwrap();
    let mut settle: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let end = settle.unwrap_or(start + deadline).min(start + deadline);
        if now >= end {
            break;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds((end - now).as_nanos() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                got.lock().unwrap().eos = Some(start.elapsed());
                break;
            }
            // Sources follow a flow error with their generic ERROR: only the sink's count.
            gst::MessageView::Error(e) if msg.src().is_some_and(|s| s.name() == "sink") => {
                got.lock().unwrap().errors.push((
                    e.error().to_string(),
                    e.details().map(|d| d.to_owned()),
                    start.elapsed(),
                ));
                settle.get_or_insert(Instant::now() + Duration::from_millis(500));
            }
            gst::MessageView::Error(_) => {
                settle.get_or_insert(Instant::now() + Duration::from_millis(500));
            }
            gst::MessageView::Warning(w) => {
                got.lock().unwrap().warnings.push(w.error().to_string())
            }
            _ => {}
        }
    }
    bus.unset_sync_handler();
    std::mem::take(&mut *got.lock().unwrap())
}

fn stop_within(p: &gst::Pipeline, limit: Duration) {
    let p = p.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = p.set_state(gst::State::Null);
        let _ = tx.send(());
    });
    rx.recv_timeout(limit)
        .expect("the pipeline reaches NULL in time");
}

fn stat(sink: &VigilSink, field: &str) -> u64 {
    sink.property::<gst::Structure>("stats")
        .get::<u64>(field)
        .unwrap()
}

#[test]
fn slow_consumer_with_drop_new_never_holds_upstream_and_reports_every_drop() {
    // 100 buffers/s, a consumer taking 100 ms: ten times slower than the stream.
    let delivered = Arc::new(AtomicU64::new(0));
    let d = delivered.clone();
    let (p, sink) = pipeline(
        200,
        100,
        "max-buffers=4 backpressure-interval=300",
        move |_| {
            std::thread::sleep(Duration::from_millis(100));
            d.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    );
    let bus = run(&p, Duration::from_secs(30));
    let dropped = stat(&sink, "dropped");
    let rendered = stat(&sink, "rendered");
    let render_max = stat(&sink, "render-max-us");
    stop_within(&p, Duration::from_secs(2));
    assert!(bus.errors.is_empty(), "{:?}", bus.errors);
    assert!(bus.eos.is_some());
    assert_eq!(
        dropped + rendered,
        200,
        "every buffer is delivered or counted as dropped"
    );
    assert_eq!(rendered, delivered.load(Ordering::SeqCst));
    assert!(
        dropped > 100,
        "a consumer 10x too slow loses most buffers: {dropped}"
    );
    // The streaming thread only queues: a generous bound (scheduling on a loaded machine
    // included), still half of one consumer call, which a held upstream would show.
    assert!(render_max < 50_000, "render took up to {render_max} us");
    let reported: u64 = bus
        .backpressure
        .iter()
        .map(|(s, _)| s.get::<u64>("dropped").unwrap())
        .sum();
    assert_eq!(reported, dropped, "the messages add up to the drops");
    let first = &bus.backpressure[0].0;
    assert_eq!(first.get::<&str>("pressure").unwrap(), "start");
    assert_eq!(
        first.get::<u64>("dropped").unwrap(),
        1,
        "the first drop is announced at once"
    );
    let ongoing: Vec<Instant> = bus
        .backpressure
        .iter()
        .filter(|(s, _)| s.get::<&str>("pressure").unwrap() == "ongoing")
        .map(|(_, t)| *t)
        .collect();
    assert!(
        !ongoing.is_empty(),
        "drops went on for longer than the interval"
    );
    let mut previous = bus.backpressure[0].1;
    for t in ongoing {
        assert!(
            t.duration_since(previous) >= Duration::from_millis(250),
            "throttle: {:?}",
            t.duration_since(previous)
        );
        previous = t;
    }
    assert_eq!(
        bus.backpressure
            .last()
            .unwrap()
            .0
            .get::<&str>("pressure")
            .unwrap(),
        "eos",
        "the remainder comes at EOS"
    );
}

#[test]
fn block_mode_drops_nothing_and_holds_upstream() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let d = delivered.clone();
    let (p, sink) = pipeline(30, 100, "leaky=block max-buffers=2", move |s| {
        std::thread::sleep(Duration::from_millis(20));
        d.lock().unwrap().push(s.buffer().unwrap().pts().unwrap());
        Ok(())
    });
    let bus = run(&p, Duration::from_secs(30));
    let dropped = stat(&sink, "dropped");
    let render_max = stat(&sink, "render-max-us");
    stop_within(&p, Duration::from_secs(2));
    assert!(
        bus.errors.is_empty() && bus.eos.is_some(),
        "{:?}",
        bus.errors
    );
    assert_eq!(dropped, 0);
    let pts = delivered.lock().unwrap().clone();
    assert_eq!(
        pts.len(),
        30,
        "every buffer reaches the consumer before EOS"
    );
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        render_max >= 10_000,
        "render waited for room ({render_max} us): upstream was held"
    );
    assert!(bus.backpressure.is_empty());
}

#[test]
fn consumer_panic_is_an_error_by_default() {
    let n = Arc::new(AtomicU64::new(0));
    let (p, _sink) = pipeline(50, 100, "watchdog-timeout=3000", move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 5 {
            panic!("consumer bug");
        }
        Ok(())
    });
    let bus = run(&p, Duration::from_secs(20));
    stop_within(&p, Duration::from_secs(2));
    assert!(bus.eos.is_none(), "no EOS after a consumer panic");
    assert_eq!(bus.errors.len(), 1, "{:?}", bus.errors);
    let d = bus.errors[0].1.as_ref().expect("watchdog details");
    assert_eq!(d.get::<&str>("reason").unwrap(), "panicked");
    assert!(
        bus.errors[0].0.contains("consumer bug"),
        "{}",
        bus.errors[0].0
    );
}

#[test]
fn consumer_panic_with_drop_warns_counts_and_goes_on() {
    let n = Arc::new(AtomicU64::new(0));
    let (p, sink) = pipeline(40, 100, "leaky=block on-consumer-panic=drop", move |_| {
        if n.fetch_add(1, Ordering::SeqCst) % 10 == 3 {
            panic!("consumer bug");
        }
        Ok(())
    });
    let bus = run(&p, Duration::from_secs(20));
    let (panics, rendered) = (stat(&sink, "panics"), stat(&sink, "rendered"));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        bus.errors.is_empty() && bus.eos.is_some(),
        "{:?}",
        bus.errors
    );
    assert_eq!(panics, 4);
    assert_eq!(rendered, 36);
    assert_eq!(
        bus.warnings.len(),
        4,
        "one WARNING per panic: {:?}",
        bus.warnings
    );
}

#[test]
fn consumer_error_is_an_error_naming_it() {
    let (p, _sink) = pipeline(20, 100, "leaky=block", |_| {
        Err(ConsumerError("disk quota exceeded".into()))
    });
    let bus = run(&p, Duration::from_secs(20));
    stop_within(&p, Duration::from_secs(2));
    assert_eq!(bus.errors.len(), 1, "{:?}", bus.errors);
    assert!(
        bus.errors[0].0.contains("disk quota exceeded"),
        "{}",
        bus.errors[0].0
    );
}

#[test]
fn callback_that_never_returns_gives_an_error_at_eos_and_stops() {
    let (p, sink) = pipeline(20, 100, "watchdog-timeout=1000", |_| {
        loop {
            std::thread::park();
        }
    });
    let bus = run(&p, Duration::from_secs(20));
    let t = Instant::now();
    stop_within(&p, Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(bus.errors.len(), 1, "{:?}", bus.errors);
    let (text, details, at) = &bus.errors[0];
    // The EOS message, if any, comes after the ERROR (so muxers upstream could finalise).
    assert!(
        bus.eos.is_none_or(|eos| eos >= *at),
        "an EOS message went out ahead of the ERROR"
    );
    let d = details.as_ref().unwrap();
    assert_eq!(d.get::<&str>("reason").unwrap(), "abandoned");
    let undelivered = d.get::<u64>("undelivered").unwrap();
    assert!(undelivered > 0 && text.contains("undelivered"), "{text}");
    // 20 buffers at 100/s, then the timeout, plus a margin.
    assert!(
        *at < Duration::from_millis(200 + 1000 + 1000),
        "ERROR after {at:?}"
    );
    assert_eq!(stat(&sink, "abandoned"), 1);
}

#[test]
fn sync_true_and_false_both_deliver_everything() {
    for sync in [true, false] {
        let n = Arc::new(AtomicU64::new(0));
        let n2 = n.clone();
        init();
        let p = gst::parse::launch(&format!(
            "videotestsrc is-live=true num-buffers=15 ! video/x-raw,width=64,height=48,framerate=30/1 \
             ! vigilsink name=sink sync={sync} leaky=block"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = p.by_name("sink").unwrap().downcast::<VigilSink>().unwrap();
        sink.set_consumer(move |_| {
            n2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let bus = run(&p, Duration::from_secs(20));
        stop_within(&p, Duration::from_secs(2));
        assert!(
            bus.errors.is_empty() && bus.eos.is_some(),
            "sync={sync}: {:?}",
            bus.errors
        );
        assert_eq!(n.load(Ordering::SeqCst), 15, "sync={sync}");
        if sync {
            // 15 frames at 30/s against the clock take about half a second.
            assert!(
                bus.eos.unwrap() >= Duration::from_millis(400),
                "sync=true follows the clock"
            );
        }
    }
}

#[test]
fn byte_bound_limits_the_queue() {
    // 64x48 I420 is 4608 bytes: a 10000-byte bound holds two buffers, whatever max-buffers says.
    let (p, sink) = pipeline(60, 200, "max-buffers=100 max-bytes=10000", |_| {
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    });
    let bus = run(&p, Duration::from_secs(30));
    let (dropped, rendered) = (stat(&sink, "dropped"), stat(&sink, "rendered"));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        bus.errors.is_empty() && bus.eos.is_some(),
        "{:?}",
        bus.errors
    );
    assert_eq!(dropped + rendered, 60);
    assert!(
        dropped >= 40,
        "the byte bound, not max-buffers, made room run out: {dropped} dropped"
    );
}

#[test]
fn flushing_seek_empties_the_queue() {
    init();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let p = gst::parse::launch(
        "videotestsrc num-buffers=400 ! video/x-raw,width=64,height=48,framerate=100/1 \
         ! vigilsink name=sink sync=false leaky=block max-buffers=50",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p.by_name("sink").unwrap().downcast::<VigilSink>().unwrap();
    sink.set_consumer(move |s| {
        std::thread::sleep(Duration::from_millis(10));
        s2.lock().unwrap().push(s.buffer().unwrap().pts().unwrap());
        Ok(())
    });
    p.set_state(gst::State::Playing).unwrap();
    // Let the queue fill with early frames, then seek far ahead.
    let t = Instant::now();
    while stat(&sink, "queued") < 40 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the queue never filled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let target = gst::ClockTime::from_seconds(3);
    p.seek_simple(gst::SeekFlags::FLUSH, target).unwrap();
    let bus = run(&p, Duration::from_secs(30));
    stop_within(&p, Duration::from_secs(2));
    assert!(bus.errors.is_empty(), "{:?}", bus.errors);
    let seen = seen.lock().unwrap().clone();
    let after = seen
        .iter()
        .position(|&t| t >= target)
        .expect("frames after the seek");
    let before_seek = after;
    assert!(
        before_seek < 40,
        "queued frames from before the seek were flushed, not delivered: {before_seek} delivered before"
    );
    assert!(
        seen[after..].iter().all(|&t| t >= target),
        "nothing stale after the seek"
    );
}
