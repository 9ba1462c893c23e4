// SPDX-License-Identifier: MPL-2.0
//! `vigilsink` through the registry: its file output against `filesink`, consumers that never
//! make progress (a FIFO nobody reads, an `open()` that blocks), the Python consumer, and
//! `gst-inspect-1.0`.

use std::process::Command;
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

#[test]
fn location_output_is_byte_identical_to_filesink() {
    init();
    let dir = scratch("sink-identical");
    let (a, b) = (dir.join("filesink.mkv"), dir.join("vigilsink.mkv"));
    let p = pipeline(&format!(
        "videotestsrc num-buffers=120 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! matroskamux streamable=true ! tee name=t \
         t. ! queue ! filesink location={} \
         t. ! queue ! vigilsink location={} leaky=block fsync=true",
        a.display(),
        b.display()
    ));
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    let (fa, fb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        fa.len() > 100_000,
        "a real file was written ({} bytes)",
        fa.len()
    );
    assert!(
        fa == fb,
        "vigilsink wrote {} bytes, filesink {}: they differ",
        fb.len(),
        fa.len()
    );
}

fn mkfifo(path: &std::path::Path) {
    let (ok, _, err) = run_tool(Command::new("mkfifo").arg(path), Duration::from_secs(5));
    assert!(ok, "mkfifo: {err}");
}

fn assert_wedge_reported(log: &RunLog, timeout: Duration) {
    assert!(!log.timed_out, "the run hung: {log:?}");
    let ours: Vec<_> = log
        .errors
        .iter()
        .filter(|e| e.source.contains("vigilsink"))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one ERROR from the sink: {}",
        log.error_text()
    );
    let d = ours[0].details.as_ref().expect("watchdog details");
    assert_eq!(d.get::<&str>("reason").unwrap(), "abandoned");
    assert!(ours[0].text.contains("undelivered"), "{}", ours[0].text);
    assert!(
        log.eos.is_none_or(|eos| eos >= ours[0].at),
        "EOS message ahead of the ERROR"
    );
    assert!(
        ours[0].at < timeout + Duration::from_millis(1500),
        "ERROR after {:?}",
        ours[0].at
    );
}

#[test]
fn a_fifo_nobody_reads_gives_an_error_within_the_timeout_and_stops() {
    init();
    let dir = scratch("sink-fifo");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    // A reader that opens the FIFO and never reads: writes block once the pipe is full.
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || {
        let f = std::fs::File::open(&f2).unwrap();
        std::thread::sleep(Duration::from_secs(8));
        drop(f);
    });
    let p = pipeline(&format!(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vigilsink location={} watchdog-timeout=1000",
        fifo.display()
    ));
    let log = run(&p, Duration::from_secs(20), Duration::from_millis(300));
    let t = Instant::now();
    stop_within(&p, Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_wedge_reported(&log, Duration::from_millis(1000));
    reader.join().unwrap();
}

#[test]
fn an_open_that_blocks_gives_an_error_within_the_timeout_and_stops() {
    init();
    let dir = scratch("sink-open");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    // No reader at all: open(O_WRONLY) blocks. The state change must not wait for it.
    let p = pipeline(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48,framerate=30/1 \
         ! vigilsink location={} watchdog-timeout=1000",
        fifo.display()
    ));
    let log = run(&p, Duration::from_secs(20), Duration::from_millis(300));
    let t = Instant::now();
    stop_within(&p, Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_wedge_reported(&log, Duration::from_millis(1000));
    // Release the leaked open() so the thread can end with the test process.
    let _ = std::fs::File::open(&fifo);
}

#[test]
fn stopping_with_a_wedged_consumer_returns_within_the_timeout() {
    init();
    let dir = scratch("sink-stop");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let p = pipeline(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 \
         ! vigilsink location={} watchdog-timeout=1000",
        fifo.display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    stop_within(&p, Duration::from_secs(3));
    // Bounded by the watchdog (1 s), plus the joins and the rest of the teardown.
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(1000 + 1000),
        "stop took {took:?}"
    );
    let _ = std::fs::File::open(&fifo);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    init();
    let log = run_to_end(
        "videotestsrc num-buffers=5 ! vigilsink location=/nonexistent-dir/out.raw",
        Duration::from_secs(10),
    );
    assert!(
        log.error_text().contains("/nonexistent-dir/out.raw"),
        "{}",
        log.error_text()
    );
}

#[test]
fn no_consumer_at_all_is_a_clear_error() {
    init();
    let log = run_to_end(
        "videotestsrc num-buffers=5 ! vigilsink",
        Duration::from_secs(10),
    );
    assert!(
        log.error_text().contains("no consumer"),
        "{}",
        log.error_text()
    );
}

#[test]
fn python_consumer_through_new_sample() {
    init();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/new_sample.py");
    let (ok, out, err) = run_tool(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .arg("30")
            .env("GST_PLUGIN_PATH", plugin_dir()),
        Duration::from_secs(60),
    );
    assert!(ok, "the Python consumer failed: {out}\n{err}");
    assert!(
        out.contains("samples=30 ") && out.contains("rendered=30"),
        "{out}"
    );
    assert!(out.contains("off_streaming_thread=True"), "{out}");
}

#[test]
fn inspect_is_clean_and_every_property_documented() {
    assert_documented(
        "vigilsink",
        &[
            "location",
            "fsync",
            "append",
            "o-sync",
            "buffer-mode",
            "buffer-size",
            "max-transient-error-timeout",
            "max-buffers",
            "max-bytes",
            "max-time",
            "leaky",
            "backpressure-interval",
            "on-consumer-panic",
            "watchdog-timeout",
            "stats",
        ],
        &["new-sample"],
    );
}

#[test]
fn after_a_wedged_flush_seeks_eos_and_null_never_hang() {
    init();
    let dir = scratch("vigilsink-wedged-flush");
    let out = dir.join("out.raw");
    let p = pipeline(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! vigilsink name=el location={} watchdog-timeout=1000 {}",
        out.display(),
        fault_property("wedge:flush")
    ));
    p.set_state(gst::State::Playing).unwrap();
    let seek = |p: &gst::Pipeline, ms: u64| {
        let p = p.clone();
        std::thread::spawn(move || {
            let _ = p.seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_mseconds(ms),
            );
        });
        std::thread::sleep(Duration::from_millis(300));
    };
    // The first flush wedges: the consumer is abandoned (an ERROR). The pipeline then never
    // recovers the state the next seek loses, and its new buffers must not make the sink wait
    // in preroll for ever.
    seek(&p, 100);
    std::thread::sleep(Duration::from_millis(1500));
    seek(&p, 200);
    let q = p.clone();
    std::thread::spawn(move || {
        let _ = q.send_event(gst::event::Eos::new());
    });
    std::thread::sleep(Duration::from_millis(100));
    let took = stop_within(&p, Duration::from_secs(3));
    eprintln!("NULL after the wedged flush, two seeks and an EOS: {took:?}");
}

/// A FIFO whose reader is slow but steady (64 KB/s) is slow, not wedged: a clean EOS with every
/// byte, no ERROR (a hostile run found it abandoned: a 256 KiB `write()` to the pipe was one
/// call of several seconds with no progress counted).
#[test]
fn a_slow_but_steady_reader_is_not_a_wedge() {
    use std::io::Read;
    init();
    let dir = scratch("sink-slow-reader");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(&f2).unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) => panic!("read: {e}"),
            }
            std::thread::sleep(Duration::from_millis(125));
        }
    });
    // 150 buffers of 2048 bytes: 307200 bytes, about 5 s at 64 KB/s.
    let p = pipeline(&format!(
        "audiotestsrc num-buffers=150 ! audio/x-raw,format=S16LE,channels=1,rate=48000 \
         ! vigilsink location={} watchdog-timeout=2000",
        fifo.display()
    ));
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(3));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert_eq!(reader.join().unwrap(), 150 * 2048);
}

/// With the watchdog disabled (`watchdog-timeout=0`), a stop is still bounded (10 s): a FIFO
/// nobody opens holds the consumer in `open()` for ever, and PLAYING to READY used to wait for
/// it without end.
#[test]
fn a_stop_is_bounded_with_the_watchdog_disabled() {
    init();
    let dir = scratch("sink-no-watchdog");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let p = pipeline(&format!(
        "audiotestsrc is-live=true ! vigilsink location={} watchdog-timeout=0",
        fifo.display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let q = p.clone();
    std::thread::spawn(move || {
        let _ = q.set_state(gst::State::Ready);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(14)).is_ok(),
        "PLAYING to READY still waiting after {:?}",
        t.elapsed()
    );
    eprintln!("READY with the watchdog disabled after {:?}", t.elapsed());
    stop_within(&p, Duration::from_secs(2));
    // Release the leaked open() so the thread can end with the test process.
    let _ = std::fs::File::open(&fifo);
}
