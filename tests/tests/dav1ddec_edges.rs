// SPDX-License-Identifier: MPL-2.0
//! `vigildav1ddec` at the edges (issue 10): timestamps when upstream has none, empty input
//! buffers, and one failure giving one ERROR.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use vigil_tests::*;

/// 20 frames of AV1 at 160x120 (SVT-AV1) as a Matroska file and as a raw OBU stream.
fn streams(dir: &Path) -> (PathBuf, PathBuf) {
    let mkv = dir.join("s.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,format=I420,width=160,height=120,framerate=25/1 \
             ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux ! filesink location={}",
            mkv.display()
        ),
        Duration::from_secs(60),
    );
    assert!(log.errors.is_empty(), "{}", log.error_text());
    let obu = dir.join("s.obu");
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mkv)
            .args(["-c", "copy", "-f", "obu", "-y"])
            .arg(&obu),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg: {err}");
    (mkv, obu)
}

fn decode_pts(desc: &str) -> (Vec<Option<gst::ClockTime>>, RunLog) {
    let p = pipeline(desc);
    let sink = appsink(&p, "out");
    let pts = Arc::new(Mutex::new(Vec::new()));
    let p2 = pts.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                p2.lock()
                    .unwrap()
                    .push(sample.buffer().and_then(|b| b.pts()));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    let v = pts.lock().unwrap().clone();
    (v, log)
}

#[test]
fn frames_without_upstream_timestamps_are_stamped_from_the_frame_rate_or_not_at_all() {
    init();
    let dir = scratch("dav1d-edges-ts");
    let (_, obu) = streams(&dir);
    // A frame rate in the caps (av1parse drops one given upstream: capssetter adds it after):
    // each frame one frame period after the previous, from the segment start.
    let (pts, log) = decode_pts(&format!(
        "filesrc location={} ! av1parse ! capssetter caps=video/x-av1,framerate=25/1 ! vigildav1ddec ! appsink name=out sync=false",
        obu.display()
    ));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert_eq!(pts.len(), 20);
    for (i, p) in pts.iter().enumerate() {
        assert_eq!(
            *p,
            Some(gst::ClockTime::from_mseconds(40 * i as u64)),
            "frame {i}: {pts:?}"
        );
    }
    // No frame rate anywhere: never the same made-up PTS on every frame.
    let (pts, log) = decode_pts(&format!(
        "filesrc location={} ! av1parse ! vigildav1ddec ! appsink name=out sync=false",
        obu.display()
    ));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert_eq!(pts.len(), 20);
    let stamped: Vec<_> = pts.iter().flatten().collect();
    assert!(
        stamped.windows(2).all(|w| w[1] > w[0]),
        "timestamps that are there increase: {pts:?}"
    );
}

#[test]
fn empty_input_buffers_are_skipped_without_a_warning() {
    init();
    let dir = scratch("dav1d-edges-empty");
    let (mkv, _) = streams(&dir);
    // Read the temporal units, then push them with an empty buffer between each.
    let p = pipeline(&format!(
        "filesrc location={} ! matroskademux ! av1parse ! appsink name=out sync=false",
        mkv.display()
    ));
    let sink = appsink(&p, "out");
    p.set_state(gst::State::Playing).unwrap();
    let mut tus = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().unwrap().map_readable().unwrap().to_vec();
        tus.push(b);
    }
    stop_within(&p, Duration::from_secs(2));
    assert_eq!(tus.len(), 20);
    let mut payloads = Vec::new();
    for tu in tus {
        payloads.push(Vec::new());
        payloads.push(tu);
    }
    let p = pipeline(
        "appsrc name=src format=time caps=video/x-av1,stream-format=obu-stream,alignment=tu,width=160,height=120,framerate=25/1 \
         ! vigildav1ddec ! fakesink name=sink",
    );
    let count = Arc::new(Mutex::new(0u32));
    let c = count.clone();
    p.by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            *c.lock().unwrap() += 1;
            gst::PadProbeReturn::Ok
        });
    push_timed(
        appsrc(&p, "src"),
        payloads,
        gst::ClockTime::from_mseconds(20),
    );
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(
        log.warnings.is_empty(),
        "no WARNING for empty buffers: {:?}",
        log.warnings
    );
    assert_eq!(*count.lock().unwrap(), 20, "every frame decoded");
}

#[test]
fn a_corrupt_stream_with_max_errors_0_posts_exactly_one_error() {
    init();
    let dir = scratch("dav1d-edges-one-error");
    let (mkv, _) = streams(&dir);
    let mut data = std::fs::read(&mkv).unwrap();
    // Flip bits all over the payload (past the headers).
    let len = data.len();
    for i in (len / 3..len).step_by(37) {
        data[i] ^= 0x5a;
    }
    let bad = dir.join("bad.mkv");
    std::fs::write(&bad, &data).unwrap();
    for round in 0..4 {
        let log = run_to_end(
            &format!(
                "filesrc location={} ! matroskademux ! av1parse ! vigildav1ddec max-errors=0 ! fakesink",
                bad.display()
            ),
            Duration::from_secs(30),
        );
        let ours: Vec<_> = log
            .errors
            .iter()
            .filter(|e| e.source.contains("vigildav1ddec"))
            .collect();
        assert!(
            ours.len() <= 1,
            "round {round}: one failure, one ERROR from the decoder: {}",
            log.error_text()
        );
        assert!(
            !log.errors
                .iter()
                .any(|e| e.text.contains("does not accept")),
            "round {round}: no negotiation ERROR during the teardown: {}",
            log.error_text()
        );
    }
}
