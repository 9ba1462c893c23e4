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

/// Writes TUs as an IVF file (what the `dav1d` tool reads).
fn write_ivf(path: &Path, tus: &[Vec<u8>], (w, h): (u16, u16), fps: u32) {
    let mut d = Vec::new();
    d.extend_from_slice(b"DKIF");
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&32u16.to_le_bytes());
    d.extend_from_slice(b"AV01");
    d.extend_from_slice(&w.to_le_bytes());
    d.extend_from_slice(&h.to_le_bytes());
    d.extend_from_slice(&fps.to_le_bytes());
    d.extend_from_slice(&1u32.to_le_bytes());
    d.extend_from_slice(&(tus.len() as u32).to_le_bytes());
    d.extend_from_slice(&0u32.to_le_bytes());
    for (k, tu) in tus.iter().enumerate() {
        d.extend_from_slice(&(tu.len() as u32).to_le_bytes());
        d.extend_from_slice(&(k as u64).to_le_bytes());
        d.extend_from_slice(tu);
    }
    std::fs::write(path, d).unwrap();
}

/// Frames the `dav1d` tool decodes from `ivf` with `threads` threads and as deep a frame
/// pipeline ("Decoded 29/30 frames ...").
fn dav1d_tool_frames(ivf: &Path, threads: u32) -> usize {
    let (_, _, err) = run_tool(
        Command::new("dav1d")
            .arg("-i")
            .arg(ivf)
            .args(["--threads", &threads.to_string()])
            .args(["--framedelay", &threads.to_string()])
            .args(["--muxer", "null", "-o", "/dev/null"]),
        Duration::from_secs(60),
    );
    let line = err
        .lines()
        .rev()
        .find(|l| l.contains("Decoded"))
        .unwrap_or_else(|| panic!("no count from dav1d: {err}"));
    let n = line.split_whitespace().nth(1).unwrap();
    n.split('/').next().unwrap().parse().unwrap()
}

/// Frames the element decodes from `tus` pushed through appsrc.
fn element_frames(tus: Vec<Vec<u8>>, props: &str) -> (usize, RunLog) {
    let p = pipeline(&format!(
        "appsrc name=src format=time caps=video/x-av1,stream-format=obu-stream,alignment=tu \
         ! vigildav1ddec name=dec {props} ! fakesink name=sink sync=false signal-handoffs=true"
    ));
    let count = Arc::new(Mutex::new(0usize));
    let c = count.clone();
    p.by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            *c.lock().unwrap() += 1;
            None
        });
    push_timed(appsrc(&p, "src"), tus, gst::ClockTime::SECOND / 30);
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    let n = *count.lock().unwrap();
    (n, log)
}

#[test]
fn good_frames_behind_a_truncated_temporal_unit_are_all_delivered_as_dav1d_does() {
    init();
    let dir = scratch("dav1ddec-truncated");
    let mkv = dir.join("s.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
             ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux ! filesink location={}",
            mkv.display()
        ),
        Duration::from_secs(60),
    );
    assert!(log.errors.is_empty(), "{}", log.error_text());
    let ivf = dir.join("s.ivf");
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mkv)
            .args(["-c", "copy", "-y"])
            .arg(&ivf),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg: {err}");
    let tus = read_ivf(&ivf);
    assert_eq!(tus.len(), 30);
    for cut in [29usize, 15] {
        let mut damaged = tus.clone();
        let half = damaged[cut].len() / 2;
        damaged[cut].truncate(half);
        let path = dir.join(format!("cut-{cut}.ivf"));
        write_ivf(&path, &damaged, (320, 240), 30);
        for threads in [0u32, 1, 2, 4] {
            let reference = dav1d_tool_frames(&path, threads);
            let (ours, log) = element_frames(
                damaged.clone(),
                &format!("n-threads={threads} max-frame-delay={threads} max-errors=-1"),
            );
            eprintln!("TU {cut} cut, {threads} threads: dav1d {reference}, element {ours}");
            assert!(log.errors.is_empty(), "{}", log.error_text());
            assert!(log.eos.is_some(), "the run ends in EOS");
            assert_eq!(
                ours, reference,
                "TU {cut} cut in half, {threads} threads: frames delivered against dav1d's"
            );
        }
    }
}

#[test]
fn garbage_with_max_errors_minus_1_ends_in_one_error_and_nothing_after_it() {
    init();
    // Pseudo-random bytes, each buffer a different "temporal unit".
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<Vec<u8>> = (0..30)
        .map(|_| {
            (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    for round in 0..3 {
        let (n, log) = element_frames(garbage.clone(), "max-errors=-1");
        assert_eq!(n, 0, "nothing decodes from garbage");
        let ours: Vec<_> = log
            .errors
            .iter()
            .filter(|e| e.source.contains("dec"))
            .collect();
        assert_eq!(
            ours.len(),
            1,
            "round {round}: one ERROR at the end: {}",
            log.error_text()
        );
        let error_at = ours[0].at;
        let late: Vec<_> = log
            .warnings
            .iter()
            .filter(|w| w.source.contains("dec") && w.at > error_at)
            .collect();
        assert!(
            late.is_empty(),
            "round {round}: no WARNING after the final ERROR: {late:?}"
        );
        assert!(
            !log.warnings.is_empty(),
            "each undecodable unit is a WARNING before the end"
        );
    }
}
