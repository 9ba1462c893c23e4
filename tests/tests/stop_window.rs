// SPDX-License-Identifier: MPL-2.0
//! Events that reach a codec element while it is being stopped.
//!
//! When an element leaves PAUSED, GStreamer deactivates its source pad before its sink pad. An
//! event that reaches the sink pad in between cannot be handed on (the source pad is flushing):
//! if the element refuses it, upstream's push fails with a flow *error* (not "flushing"), and a
//! source reports that as an ERROR ("Internal data stream error") although the pipeline was only
//! stopping. The contract test hit this window once in CI: a stop while the encoder was still
//! starting, the first segment event arriving between the two deactivations.
//!
//! These tests hold the element's source pad in its deactivation (its stream lock, which the
//! deactivation takes) so the window stays open, send a segment event into the sink pad, and
//! require it not to be refused; the stop then completes, with no ERROR on the bus.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

fn flushing(pad: &gst::Pad) -> bool {
    pad.pad_flags().contains(gst::PadFlags::FLUSHING)
}

fn event_in_the_stop_window_is_not_refused(desc: &str) {
    init();
    let p = pipeline(desc);
    let el = p.by_name("el").expect("element named el");
    let src = el.static_pad("src").unwrap();
    let sink = el.static_pad("sink").unwrap();
    // Running, with data through the element (the encoder holds frames by now).
    let out = p.by_name("out").unwrap().static_pad("sink").unwrap();
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    out.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let _ = tx.try_send(());
        gst::PadProbeReturn::Ok
    });
    p.set_state(gst::State::Playing).unwrap();
    rx.recv_timeout(Duration::from_secs(20))
        .expect("no buffer came out of the element");

    // Keep the source pad's deactivation waiting, and stop from another thread.
    let lock = src.stream_lock();
    let stopper = {
        let p = p.clone();
        std::thread::spawn(move || p.set_state(gst::State::Null))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flushing(&src) {
        assert!(
            Instant::now() < deadline,
            "the source pad never went flushing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the streaming thread run into the flushing source pad and pause.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !flushing(&sink),
        "the sink pad went flushing before the source pad finished: no window to test"
    );
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    let accepted = sink.send_event(gst::event::Segment::new(&segment));
    drop(lock);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(stopper.join());
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the stop did not complete once the source pad was released")
        .expect("set_state thread")
        .expect("set_state(NULL) failed");
    let bus = p.bus().unwrap();
    let mut errors = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = m.view() {
            errors.push(format!(
                "{}: {}",
                m.src().map(|s| s.path_string()).unwrap_or_default(),
                e.error()
            ));
        }
    }
    assert!(
        accepted,
        "a segment event sent while the element was stopping was refused: upstream's push would fail with a flow error"
    );
    assert!(errors.is_empty(), "ERROR while stopping: {errors:?}");
}

#[test]
fn encoder_accepts_an_event_between_its_pads_deactivations() {
    event_in_the_stop_window_is_not_refused(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=192,height=128,framerate=30/1 \
         ! vigilsvtav1enc name=el preset=12 ! fakesink name=out",
    );
}

#[test]
fn decoder_accepts_an_event_between_its_pads_deactivations() {
    event_in_the_stop_window_is_not_refused(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=192,height=128,framerate=30/1 \
         ! vigilsvtav1enc preset=12 pred-structure=low-delay ! vigildav1ddec name=el ! fakesink name=out",
    );
}
