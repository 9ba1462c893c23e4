// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc` properties set while it runs, through the registry with the real SVT-AV1:
//! a rate change takes effect at the next frame (a new stream that opens with a key frame and a
//! sequence header, timestamps going on, everything decodable by the `dav1d` tool); any other
//! property is refused with a WARNING naming it, and its getter keeps the value in use.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use vigil_tests::*;

const FPS: u64 = 30;
const FRAMES: u64 = 240;
const SWITCH_AT: u64 = 120;

/// Runs `FRAMES` frames through the encoder set up by `props`; `change` is called on the
/// encoder from the streaming thread just before frame `SWITCH_AT` enters it. Returns the
/// packets and the bus messages.
fn run_with_change(
    props: &str,
    change: impl Fn(&gst::Element) + Send + Sync + 'static,
) -> (Vec<gst::Buffer>, RunLog, gst::Element) {
    init();
    let p = pipeline(&format!(
        "videotestsrc num-buffers={FRAMES} pattern=snow ! video/x-raw,format=I420,width=320,height=240,framerate={FPS}/1 \
         ! vigilsvtav1enc name=enc {props} ! appsink name=sink sync=false"
    ));
    let enc = p.by_name("enc").unwrap();
    let seen = Arc::new(Mutex::new(0u64));
    let e = enc.clone();
    enc.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let mut n = seen.lock().unwrap();
            if *n == SWITCH_AT {
                change(&e);
            }
            *n += 1;
            gst::PadProbeReturn::Ok
        });
    let out = collect_buffers(&p);
    let log = run(&p, Duration::from_secs(120), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(5));
    let packets = std::mem::take(&mut *out.lock().unwrap());
    (packets, log, enc)
}

fn decodes_with_dav1d(packets: &[gst::Buffer], name: &str) -> usize {
    let dir = scratch(name);
    let obu = dir.join("stream.obu");
    let mut bytes = Vec::new();
    for b in packets {
        bytes.extend_from_slice(&b.map_readable().unwrap());
    }
    std::fs::write(&obu, bytes).unwrap();
    let y4m = dir.join("decoded.y4m");
    let (ok, _, err) = run_tool(
        Command::new("dav1d")
            .args(["--demuxer", "section5", "-q", "-i"])
            .arg(&obu)
            .arg("-o")
            .arg(&y4m),
        Duration::from_secs(60),
    );
    assert!(ok, "dav1d could not decode the stream: {err}");
    read_y4m(&y4m).frames.len()
}

#[test]
fn bitrate_change_while_playing_takes_effect_at_the_next_frame() {
    let (packets, log, enc) = run_with_change(
        "preset=12 rate-control=cbr pred-structure=low-delay target-bitrate=2000",
        |e| e.set_property("target-bitrate", 200u32),
    );
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(log.eos.is_some(), "the run ends in EOS");
    assert!(
        log.warnings.is_empty(),
        "a rate change is no warning: {:?}",
        log.warnings
    );
    assert_eq!(enc.property::<u32>("target-bitrate"), 200);
    assert_eq!(packets.len() as u64, FRAMES, "every frame is encoded");

    // Timestamps go on across the change, one frame after the other.
    for (k, b) in packets.iter().enumerate() {
        let expected = gst::ClockTime::SECOND.mul_div_floor(k as u64, FPS).unwrap();
        let pts = b.pts().expect("timestamp");
        assert!(
            pts.nseconds().abs_diff(expected.nseconds()) <= 1,
            "packet {k}: pts {pts}, expected {expected}"
        );
    }
    // The new stream starts at the switch with a key frame and a sequence header.
    let at = &packets[SWITCH_AT as usize];
    assert!(
        !at.flags().contains(gst::BufferFlags::DELTA_UNIT),
        "the frame at the change is a key frame"
    );
    assert!(
        obu_types(&at.map_readable().unwrap()).contains(&1),
        "the frame at the change carries a sequence header"
    );

    // Bytes per second: the second half (after a settling second) falls with the target.
    let rate = |from: u64, to: u64| -> f64 {
        let bytes: usize = packets[from as usize..to as usize]
            .iter()
            .map(|b| b.size())
            .sum();
        bytes as f64 * 8.0 / 1000.0 / ((to - from) as f64 / FPS as f64)
    };
    let before = rate(FPS, SWITCH_AT);
    let after = rate(SWITCH_AT + FPS, FRAMES);
    // The same content encoded at 200 kbit/s from the start: what the second half should cost
    // (noise at 200 kbit/s is beyond what the encoder's quantiser range can reach).
    let (reference, _, _) = run_with_change(
        "preset=12 rate-control=cbr pred-structure=low-delay target-bitrate=200",
        |_| {},
    );
    let reference_rate = {
        let bytes: usize = reference[(SWITCH_AT + FPS) as usize..]
            .iter()
            .map(|b| b.size())
            .sum();
        bytes as f64 * 8.0 / 1000.0 / ((FRAMES - SWITCH_AT - FPS) as f64 / FPS as f64)
    };
    eprintln!(
        "kbit/s at 2000: {before:.0}; after the change to 200: {after:.0}; 200 from the start: {reference_rate:.0}"
    );
    assert!(
        before > 1500.0,
        "the first half is encoded at about 2000 kbit/s: {before:.0}"
    );
    assert!(
        (after - reference_rate).abs() < reference_rate * 0.25,
        "after the change the stream costs what a 200 kbit/s encode does: {after:.0} against {reference_rate:.0} kbit/s"
    );
    assert_eq!(
        decodes_with_dav1d(&packets, "svtav1enc-live-rate"),
        FRAMES as usize,
        "dav1d decodes every frame across the change"
    );
}

#[test]
fn crf_change_while_playing_recreates_the_encoder() {
    let (packets, log, enc) = run_with_change("preset=12 crf=20", |e| e.set_property("crf", 55u32));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(log.eos.is_some());
    assert_eq!(enc.property::<u32>("crf"), 55);
    assert_eq!(packets.len() as u64, FRAMES, "every frame is encoded");
    let keys: Vec<usize> = packets
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.flags().contains(gst::BufferFlags::DELTA_UNIT))
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.contains(&(SWITCH_AT as usize)),
        "a key frame opens the new stream at the change: key frames at {keys:?}"
    );
    let pts: Vec<_> = packets.iter().map(|b| b.pts().unwrap()).collect();
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "timestamps go on in order"
    );
    let size = |r: std::ops::Range<usize>| packets[r].iter().map(|b| b.size()).sum::<usize>();
    let (before, after) = (size(30..120), size(150..240));
    assert!(
        after * 2 < before,
        "crf 55 spends far fewer bytes than crf 20: {before} then {after}"
    );
    assert_eq!(
        decodes_with_dav1d(&packets, "svtav1enc-live-crf"),
        FRAMES as usize
    );
}

#[test]
fn other_properties_while_playing_are_refused_with_a_warning_and_keep_their_value() {
    let (packets, log, enc) = run_with_change("preset=12", |e| {
        e.set_property("preset", 4u32);
        e.set_property("keyframe-max-dist", 10i32);
    });
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(log.eos.is_some());
    assert_eq!(packets.len() as u64, FRAMES);
    for name in ["'preset'", "'keyframe-max-dist'"] {
        assert!(
            log.warnings.iter().any(|w| w.text.contains(name)),
            "a WARNING names {name}: {:?}",
            log.warnings
        );
    }
    assert_eq!(
        enc.property::<u32>("preset"),
        12,
        "the getter returns the preset in use"
    );
    assert_eq!(enc.property::<i32>("keyframe-max-dist"), -2);
    assert!(
        packets[SWITCH_AT as usize]
            .flags()
            .contains(gst::BufferFlags::DELTA_UNIT),
        "the stream goes on unchanged (no new stream at the refused change)"
    );
    // In READY the same property is taken.
    enc.set_property("preset", 4u32);
    assert_eq!(enc.property::<u32>("preset"), 4);
}
