// SPDX-License-Identifier: MPL-2.0
//! Faults injected into `vigilfailoversrc`'s own threads (its input, controller and output
//! threads): a panicking controller or output thread is one ERROR with the `vigil-watchdog`
//! details, never a silent stop; a wedged thread never hangs the state change to NULL, which
//! leaves it behind with a WARNING naming it.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

/// A streamable MJPEG Matroska file of 20 s, made once per process.
fn input_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch("failover-faults").join("input.mkv");
        let log = run_to_end(
            &format!(
                "videotestsrc num-buffers=600 ! video/x-raw,width=160,height=120,framerate=30/1 \
                 ! jpegenc ! matroskamux streamable=true ! filesink location={}",
                path.display()
            ),
            Duration::from_secs(60),
        );
        assert!(log.eos.is_some(), "input file: {}", log.error_text());
        path
    })
    .clone()
}

/// One test at a time: the bin's threads are timed against a busy machine.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn failover_pipeline(plan: &str) -> gst::Pipeline {
    pipeline(&format!(
        "vigilfailoversrc name=f enable-audio=false fault-injection={plan} \
           video-caps=video/x-raw,width=160,height=120,framerate=30/1 \
           uris=<\"file://{}\"> ! fakesink",
        input_file().display()
    ))
}

/// Sets the pipeline to READY (the bin stops its threads there) on another thread, fails the
/// test if that takes longer than `limit`, and returns the WARNING texts the stop posted (at
/// READY the bus still delivers them), then sets it to NULL.
fn stop_to_ready_within(p: &gst::Pipeline, limit: Duration) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let q = p.clone();
    std::thread::spawn(move || {
        let _ = tx.send(q.set_state(gst::State::Ready).is_ok());
    });
    match rx.recv_timeout(limit) {
        Ok(ok) => assert!(ok, "the change to READY failed"),
        Err(_) => panic!("the change to READY took longer than {limit:?}"),
    }
    let warnings = warnings_left(p);
    stop_within(p, Duration::from_secs(2));
    warnings
}

/// WARNING texts left on the bus.
fn warnings_left(p: &gst::Pipeline) -> Vec<String> {
    let bus = p.bus().unwrap();
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

fn assert_panic_is_one_error(plan: &str, thread: &str) {
    let _serial = serial();
    let p = failover_pipeline(plan);
    let log = run(&p, Duration::from_secs(20), Duration::from_millis(500));
    let stop = stop_within(&p, Duration::from_secs(2));
    assert!(!log.timed_out, "no ERROR within 20 s");
    let details = log.watchdog_errors();
    assert_eq!(details.len(), 1, "one watchdog ERROR: {}", log.error_text());
    assert!(log.errors[0].details.is_some(), "{}", log.error_text());
    let d = details[0];
    assert_eq!(d.get::<&str>("reason").unwrap(), "panicked");
    assert_eq!(d.get::<&str>("phase").unwrap(), "streaming");
    assert_eq!(d.get::<&str>("thread").unwrap(), thread);
    assert!(
        log.errors[0].text.contains("truncated"),
        "{}",
        log.errors[0].text
    );
    assert!(log.errors[0].source.contains('f'), "{}", log.error_text());
    assert!(stop < Duration::from_secs(2));
}

#[test]
fn output_thread_panic_is_one_watchdog_error() {
    assert_panic_is_one_error("panic:output:15", "output");
}

#[test]
fn controller_thread_panic_is_one_watchdog_error() {
    assert_panic_is_one_error("panic:controller:10", "controller");
}

#[test]
fn wedged_output_thread_is_left_behind_with_a_warning_and_the_stop_is_bounded() {
    let _serial = serial();
    let p = failover_pipeline("wedge:output:15");
    let log = run(&p, Duration::from_secs(2), Duration::ZERO);
    assert!(log.errors.is_empty(), "{}", log.error_text());
    let start = Instant::now();
    let warnings = stop_to_ready_within(&p, Duration::from_secs(12));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("output thread did not stop")),
        "{warnings:?} after {:?}",
        start.elapsed()
    );
}

#[test]
fn wedged_input_thread_is_left_behind_with_a_warning_and_the_stop_is_bounded() {
    let _serial = serial();
    let p = failover_pipeline("wedge:input");
    let log = run(&p, Duration::from_secs(2), Duration::ZERO);
    assert!(log.errors.is_empty(), "{}", log.error_text());
    // The wedged input never started, so the bin never reported itself healthy.
    let f = p.by_name("f").unwrap();
    let stats = f.property::<gst::Structure>("statistics");
    let status = stats.get::<String>("status").unwrap();
    assert_ne!(status, "healthy", "{stats}");
    let warnings = stop_to_ready_within(&p, Duration::from_secs(12));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("did not stop") && w.contains("Input")),
        "{warnings:?}"
    );
}

#[test]
fn a_bad_plan_fails_the_start_with_a_clear_error() {
    let _serial = serial();
    let p = failover_pipeline("melt:output");
    let log = run(&p, Duration::from_secs(10), Duration::from_millis(300));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        log.errors
            .iter()
            .any(|e| e.debug.contains("melt") || e.text.contains("melt")),
        "{}",
        log.error_text()
    );
}
