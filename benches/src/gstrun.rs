// SPDX-License-Identifier: MPL-2.0
//! Running a GStreamer pipeline in this process and timing it from PLAYING to EOS, plus the
//! probes the benchmarks put on sinks: counting buffers and timing the streaming thread between
//! buffers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Parses a `gst-launch-1.0` description into a pipeline.
pub fn launch(desc: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(desc)
        .map_err(|e| format!("cannot build `{desc}`: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| format!("`{desc}` is not a pipeline"))
}

/// Sets `pipeline` to PLAYING and waits for EOS; returns the seconds from the state change to
/// EOS. The pipeline is set to NULL in every case; an ERROR message or the timeout is an error.
pub fn run_to_eos(pipeline: &gst::Pipeline, timeout: Duration) -> Result<f64, String> {
    run_to_eos_then(pipeline, timeout, |_| ())
}

/// As [`run_to_eos`], and calls `at_eos` with the pipeline after EOS, before it is stopped.
pub fn run_to_eos_then(
    pipeline: &gst::Pipeline,
    timeout: Duration,
    at_eos: impl FnOnce(&gst::Pipeline),
) -> Result<f64, String> {
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let started = Instant::now();
    let mut at_eos = Some(at_eos);
    let mut result = || {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| "the pipeline refused to go to PLAYING".to_string())?;
        loop {
            let left = timeout
                .checked_sub(started.elapsed())
                .ok_or_else(|| format!("no EOS within {} s", timeout.as_secs()))?;
            let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) else {
                return Err(format!("no EOS within {} s", timeout.as_secs()));
            };
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    let secs = started.elapsed().as_secs_f64();
                    if let Some(f) = at_eos.take() {
                        f(pipeline);
                    }
                    return Ok(secs);
                }
                gst::MessageView::Error(e) => {
                    return Err(format!(
                        "{}: {}",
                        e.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        e.error()
                    ));
                }
                _ => {}
            }
        }
    };
    let result = result();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn sink_pad(pipeline: &gst::Pipeline, element: &str) -> Result<gst::Pad, String> {
    pipeline
        .by_name(element)
        .ok_or_else(|| format!("no element named {element}"))?
        .static_pad("sink")
        .ok_or_else(|| format!("{element} has no sink pad"))
}

/// Counts the buffers reaching `element`.
pub fn count_buffers(pipeline: &gst::Pipeline, element: &str) -> Result<Arc<AtomicU64>, String> {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    sink_pad(pipeline, element)?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    Ok(count)
}

/// Records, for every buffer after the first reaching `element`, the microseconds since the
/// previous one arrived: with a source that costs nothing, that is the time the streaming thread
/// spent in the sink (its `render` and the base class around it).
pub fn time_between_buffers(
    pipeline: &gst::Pipeline,
    element: &str,
) -> Result<Arc<Mutex<Vec<f64>>>, String> {
    let gaps = Arc::new(Mutex::new(Vec::new()));
    let g = gaps.clone();
    let last: Mutex<Option<Instant>> = Mutex::new(None);
    sink_pad(pipeline, element)?.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let now = Instant::now();
        if let Some(prev) = last.lock().unwrap().replace(now) {
            g.lock()
                .unwrap()
                .push(now.duration_since(prev).as_secs_f64() * 1e6);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(gaps)
}

/// Sets `pipeline` to NULL on a thread of its own and waits at most `bound`; gives the
/// milliseconds the change took. An element that deadlocks in its change to NULL (seen with
/// `fallbacksrc` right after PLAYING) is reported, and its pipeline left behind, instead of
/// hanging the run.
pub fn stop_bounded(pipeline: &gst::Pipeline, bound: Duration) -> Result<f64, String> {
    let p = pipeline.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let ok = p.set_state(gst::State::Null).is_ok();
        let _ = tx.send((ok, t.elapsed().as_secs_f64() * 1000.0));
    });
    match rx.recv_timeout(bound) {
        Ok((true, ms)) => Ok(ms),
        Ok((false, _)) => Err("the pipeline refused to go to NULL".into()),
        Err(_) => Err(format!(
            "set_state(NULL) did not return within {} s (deadlock; the pipeline was left behind)",
            bound.as_secs()
        )),
    }
}
