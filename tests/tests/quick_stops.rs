// SPDX-License-Identifier: MPL-2.0
//! Stopping at any moment and empty runs, for the encoder, the decoder and the sink (the
//! watchdog contract on every path, issue 9):
//! - PLAYING then NULL after 1, 10 or 100 ms returns within `watchdog-timeout` + 1 s, posts no
//!   ERROR, and leaves the thread count flat over 50 cycles;
//! - EOS before any buffer (with and without caps), after one buffer, and while the worker is
//!   still starting ends in a clean EOS within 2 s, with no ERROR.
//!
//! A test binary of its own: it counts the threads of the whole process, so its tests run one
//! at a time.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const WATCHDOG_MS: u64 = 2000;
const CYCLES: usize = 50;
const DWELLS_MS: [u64; 3] = [1, 10, 100];
/// "Promptly": well under the codecs' default `watchdog-timeout` (10 s), which an empty or short
/// run must not wait for; the slack above the start-up of a 1080p encoder is for a loaded CI
/// machine.
const PROMPT: Duration = Duration::from_secs(4);

/// One test at a time: they count the process's threads.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Matroska file of 120 AV1 frames (320x240), made once with the encoder.
fn av1_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch("quick-stops-input").join("input.mkv");
        let log = run_to_end(
            &format!(
                "videotestsrc num-buffers=120 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
                 ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux ! filesink location={}",
                path.display()
            ),
            Duration::from_secs(120),
        );
        assert!(
            log.errors.is_empty() && log.eos.is_some(),
            "making the AV1 input: {}",
            log.error_text()
        );
        path
    })
    .clone()
}

/// Collects ERROR messages from the bus without blocking.
fn drain_errors(p: &gst::Pipeline, errors: &mut Vec<String>) {
    let bus = p.bus().expect("bus");
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            errors.push(format!(
                "{}: {} ({:?})",
                msg.src().map(|s| s.path_string()).unwrap_or_default(),
                e.error(),
                e.debug()
            ));
        }
    }
}

/// Plays `desc` and stops it 1, 10 or 100 ms later, `CYCLES` times, each time with a new
/// pipeline; asserts every stop is bounded, no ERROR is posted, and the threads stay flat.
fn quick_stops(desc: &str) {
    let _serial = serial();
    init();
    let limit = Duration::from_millis(WATCHDOG_MS) + Duration::from_secs(1);
    let mut errors = Vec::new();
    let mut cycle = |i: usize| {
        let p = pipeline(desc);
        p.set_state(gst::State::Playing)
            .unwrap_or_else(|e| panic!("{desc}: PLAYING failed: {e}"));
        std::thread::sleep(Duration::from_millis(DWELLS_MS[i % DWELLS_MS.len()]));
        let took = stop_within(&p, limit);
        drain_errors(&p, &mut errors);
        took
    };
    // Warm up GStreamer's own thread pools before the baseline.
    for i in 0..3 {
        cycle(i);
    }
    let threads0 = thread_count();
    let mut slowest = Duration::ZERO;
    for i in 0..CYCLES {
        slowest = slowest.max(cycle(i));
    }
    // Stopped workers are joined: give GStreamer's pooled streaming threads a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while thread_count() > threads0 + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let threads1 = thread_count();
    println!("{desc}: threads {threads0} -> {threads1}, slowest stop {slowest:?}");
    assert!(
        errors.is_empty(),
        "{desc}: ERROR on a quick stop: {errors:#?}"
    );
    assert!(
        threads1 <= threads0 + 2,
        "{desc}: threads leak over {CYCLES} quick stops: {threads0} -> {threads1}"
    );
}

#[test]
fn encoder_stopped_at_any_moment_returns_and_leaks_nothing() {
    quick_stops(&format!(
        "videotestsrc ! video/x-raw,width=320,height=240 ! vigilsvtav1enc preset=12 watchdog-timeout={WATCHDOG_MS} ! fakesink"
    ));
}

#[test]
fn live_low_delay_encoder_stopped_at_any_moment_returns_and_leaks_nothing() {
    quick_stops(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! vigilsvtav1enc preset=12 \
         pred-structure=low-delay watchdog-timeout={WATCHDOG_MS} ! fakesink"
    ));
}

#[test]
fn decoder_stopped_at_any_moment_returns_and_leaks_nothing() {
    // The input is made by an encode: never while another test counts threads.
    let input = {
        let _serial = serial();
        av1_file()
    };
    quick_stops(&format!(
        "filesrc location={} ! matroskademux ! av1parse ! vigildav1ddec watchdog-timeout={WATCHDOG_MS} ! fakesink",
        input.display()
    ));
}

#[test]
fn sink_stopped_at_any_moment_returns_and_leaks_nothing() {
    let out = scratch("quick-stops-sink").join("sink.raw");
    quick_stops(&format!(
        "videotestsrc ! video/x-raw,width=320,height=240 ! vigilsink location={} watchdog-timeout={WATCHDOG_MS}",
        out.display()
    ));
}

/// Runs `desc` to its end and asserts a clean EOS within [`PROMPT`] and no ERROR.
fn assert_clean_eos(desc: &str) {
    let log = run_to_end(desc, Duration::from_secs(10));
    assert!(log.errors.is_empty(), "{desc}: {}", log.error_text());
    let eos = log.eos.unwrap_or_else(|| panic!("{desc}: no EOS"));
    assert!(eos < PROMPT, "{desc}: EOS after {eos:?}, not promptly");
}

/// Pushes `buffers` into the appsrc `src` of `desc` (caps as the launch line sets them), then
/// EOS at once; asserts a clean EOS within [`PROMPT`] and no ERROR.
fn assert_clean_eos_from_appsrc(desc: &str, buffers: Vec<gst::Buffer>) {
    let p = pipeline(desc);
    let src = appsrc(&p, "src");
    let bus = p.bus().unwrap();
    let start = Instant::now();
    p.set_state(gst::State::Playing).unwrap();
    for b in buffers {
        let _ = src.push_buffer(b);
    }
    src.end_of_stream().unwrap();
    let mut errors = Vec::new();
    let mut eos = None;
    while start.elapsed() < Duration::from_secs(10) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                eos = Some(start.elapsed());
                break;
            }
            gst::MessageView::Error(e) => errors.push(format!("{} ({:?})", e.error(), e.debug())),
            _ => {}
        }
    }
    drain_errors(&p, &mut errors);
    stop_within(&p, Duration::from_secs(2));
    assert!(errors.is_empty(), "{desc}: {errors:#?}");
    let eos = eos.unwrap_or_else(|| panic!("{desc}: no EOS"));
    assert!(eos < PROMPT, "{desc}: EOS after {eos:?}, not promptly");
}

fn raw_frame(width: usize, height: usize) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(vec![128u8; width * height * 3 / 2]);
    b.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    b
}

#[test]
fn encoder_empty_and_short_runs_end_in_a_clean_eos() {
    let _serial = serial();
    let enc = "vigilsvtav1enc preset=12";
    let caps = "video/x-raw,format=I420,width=320,height=240,framerate=30/1";
    // EOS before any buffer, with caps.
    assert_clean_eos(&format!(
        "videotestsrc num-buffers=0 ! {caps} ! {enc} ! fakesink"
    ));
    // EOS before any buffer and before caps.
    assert_clean_eos_from_appsrc(
        &format!("appsrc name=src format=time ! {enc} ! fakesink"),
        vec![],
    );
    // EOS after one buffer.
    assert_clean_eos(&format!(
        "videotestsrc num-buffers=1 ! {caps} ! {enc} ! fakesink"
    ));
    // EOS while the worker is still starting (a large frame and a slow preset: the codec is
    // still initialising when EOS arrives; 720p keeps its start well inside the bound on a
    // loaded two-core machine, where 1080p preset 4 took 2.4 s once).
    assert_clean_eos_from_appsrc(
        "appsrc name=src format=time caps=video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
         ! vigilsvtav1enc preset=6 ! fakesink",
        vec![],
    );
    assert_clean_eos_from_appsrc(
        "appsrc name=src format=time caps=video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 \
         ! vigilsvtav1enc preset=12 ! fakesink",
        vec![raw_frame(1920, 1080)],
    );
}

#[test]
fn decoder_empty_and_short_runs_end_in_a_clean_eos() {
    let _serial = serial();
    let input = av1_file();
    // EOS before any buffer, with caps.
    assert_clean_eos_from_appsrc(
        "appsrc name=src format=time caps=video/x-av1,stream-format=obu-stream,alignment=tu \
         ! vigildav1ddec ! fakesink",
        vec![],
    );
    // EOS before any buffer and before caps.
    assert_clean_eos_from_appsrc(
        "appsrc name=src format=time ! vigildav1ddec ! fakesink",
        vec![],
    );
    // EOS after one buffer (the first temporal unit of a real stream).
    assert_clean_eos(&format!(
        "filesrc location={} ! matroskademux ! av1parse ! identity eos-after=2 ! vigildav1ddec ! fakesink",
        input.display()
    ));
    // An empty file.
    let empty = scratch("quick-stops-empty").join("empty.obu");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_eos(&format!(
        "filesrc location={} ! video/x-av1,stream-format=obu-stream,alignment=tu ! vigildav1ddec ! fakesink",
        empty.display()
    ));
}

#[test]
fn sink_empty_and_short_runs_end_in_a_clean_eos() {
    let _serial = serial();
    let dir = scratch("quick-stops-sink-empty");
    for (n, name) in [(0, "empty"), (1, "one")] {
        let out = dir.join(format!("{name}.raw"));
        assert_clean_eos(&format!(
            "videotestsrc num-buffers={n} ! video/x-raw,format=I420,width=64,height=64 ! vigilsink location={}",
            out.display()
        ));
        assert_eq!(
            std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
            n * 64 * 64 * 3 / 2,
            "{name}: bytes on disk"
        );
    }
    assert_clean_eos_from_appsrc(
        &format!(
            "appsrc name=src format=time ! vigilsink location={}",
            dir.join("nocaps.raw").display()
        ),
        vec![],
    );
}
