// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc` across flushing seeks, through the registry with the real SVT-AV1: what it
//! delivers after a seek (from PAUSED and while PLAYING) is a stream of its own that starts with
//! a key frame and a sequence header inside the segment, decodes with the `dav1d` tool, and
//! every decoded frame matches the source frame at its timestamp.

use std::process::Command;
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const W: usize = 320;
const H: usize = 240;
const FPS: u64 = 30;
/// Inside frame 60 (2.000 s to 2.033 s): the first frame after the seek starts before the
/// segment, which is where an encoder that does not clip its input to the segment goes wrong.
const TARGET_MS: u64 = 2010;
const FRAMES: u64 = 120;
const FRAME_SIZE: usize = W * H * 3 / 2;

/// A raw I420 file of distinct frames (ffmpeg's testsrc2, a moving pattern and a counter).
fn source(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("source.i420");
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={W}x{H}:rate={FPS}"))
            .args(["-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuv420p"])
            .args(["-f", "rawvideo", "-y"])
            .arg(&path),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg could not write the source: {err}");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), FRAME_SIZE * FRAMES as usize);
    (path, data)
}

fn psnr_luma(a: &[u8], b: &[u8]) -> f64 {
    let mse = a[..W * H]
        .iter()
        .zip(&b[..W * H])
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum::<f64>()
        / (W * H) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// The frames of a Y4M file written by the dav1d tool.
fn y4m_frames(path: &std::path::Path) -> Vec<Vec<u8>> {
    let y = read_y4m(path);
    assert_eq!((y.width as usize, y.height as usize), (W, H));
    y.frames
}

/// Seeks to `target` (from PAUSED, or while PLAYING after a few packets), collects what the
/// encoder delivers after the seek, and checks it as a stream of its own.
fn seek_and_check(from_playing: bool, props: &str) {
    init();
    if !have_tool("dav1d") || !have_tool("ffmpeg") {
        panic!("the dav1d and ffmpeg tools are needed (scripts/setup-debian.sh installs them)");
    }
    let dir = scratch(&format!("svtav1enc-seek-{from_playing}-{}", props.len()));
    let (path, source) = source(&dir);
    let p = pipeline(&format!(
        "filesrc location={} ! rawvideoparse width={W} height={H} format=i420 framerate={FPS}/1 \
         ! vigilsvtav1enc preset=12 {props} ! appsink name=sink sync=false max-buffers=4",
        path.display()
    ));
    let sink = appsink(&p, "sink");
    let target = gst::ClockTime::from_mseconds(TARGET_MS);
    if from_playing {
        p.set_state(gst::State::Playing).unwrap();
        // A few packets of the first run, then the seek while the encoder holds frames.
        for _ in 0..3 {
            sink.try_pull_sample(gst::ClockTime::from_seconds(20))
                .expect("packets before the seek");
        }
    } else {
        p.set_state(gst::State::Paused).unwrap();
        let (r, _, _) = p.state(gst::ClockTime::from_seconds(20));
        assert!(r.is_ok(), "preroll: {r:?}");
    }
    p.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, target)
        .expect("the seek is accepted");
    if !from_playing {
        let (r, _, _) = p.state(gst::ClockTime::from_seconds(20));
        assert!(r.is_ok(), "preroll after the seek: {r:?}");
        p.set_state(gst::State::Playing).unwrap();
    }
    let bus = p.bus().unwrap();
    let mut out: Vec<gst::Buffer> = Vec::new();
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(60), "the run did not end");
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
            // Only what belongs to the segment of the seek (a packet of the first run may be
            // pulled before the flush reached the sink).
            let seg = s
                .segment()
                .and_then(|seg| seg.downcast_ref::<gst::ClockTime>().map(|s| s.start()));
            if seg == Some(Some(target)) {
                out.push(s.buffer_owned().unwrap());
            }
            continue;
        }
        if sink.is_eos() {
            break;
        }
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("ERROR: {m:?}");
        }
    }
    stop_within(&p, Duration::from_secs(5));

    assert!(!out.is_empty(), "nothing delivered after the seek");
    let first = &out[0];
    assert!(
        !first.flags().contains(gst::BufferFlags::DELTA_UNIT),
        "the first packet after the seek is a key frame"
    );
    let obus = {
        let map = first.map_readable().unwrap();
        obu_types(&map)
    };
    assert!(
        obus.contains(&1),
        "the first packet after the seek carries a sequence header (OBU types {obus:?})"
    );
    for b in &out {
        let pts = b.pts().expect("every packet has a timestamp");
        assert!(pts >= target, "a packet before the segment start: {pts}");
    }
    // The source frames from the seek target on, every one of them.
    let first_index = target.nseconds() * FPS / 1_000_000_000;
    assert_eq!(
        out.len() as u64,
        FRAMES - first_index,
        "every frame from the one shown at the seek target on"
    );

    // Decoded by the reference decoder, every frame matches its source frame.
    let obu = dir.join(format!("after-seek-{from_playing}.obu"));
    let mut bytes = Vec::new();
    for b in &out {
        bytes.extend_from_slice(&b.map_readable().unwrap());
    }
    std::fs::write(&obu, bytes).unwrap();
    let y4m = dir.join(format!("after-seek-{from_playing}.y4m"));
    let (ok, _, err) = run_tool(
        Command::new("dav1d")
            .args(["--demuxer", "section5", "-q", "-i"])
            .arg(&obu)
            .arg("-o")
            .arg(&y4m),
        Duration::from_secs(60),
    );
    assert!(
        ok,
        "dav1d could not decode the stream after the seek: {err}"
    );
    let decoded = y4m_frames(&y4m);
    assert_eq!(decoded.len(), out.len(), "dav1d decodes every packet");
    for (k, (frame, b)) in decoded.iter().zip(&out).enumerate() {
        let pts = b.pts().unwrap();
        // The frame of the source shown at this timestamp (the first one may have been
        // clipped to the segment start).
        let index = if k == 0 {
            first_index
        } else {
            (pts.nseconds() * FPS + 500_000_000) / 1_000_000_000
        };
        let src = &source[index as usize * FRAME_SIZE..(index as usize + 1) * FRAME_SIZE];
        let psnr = psnr_luma(frame, src);
        assert!(
            psnr >= 30.0,
            "decoded frame {k} (pts {pts}) against source frame {index}: PSNR {psnr:.1} dB"
        );
    }
}

#[test]
fn seek_from_paused_delivers_a_decodable_stream_inside_the_segment() {
    seek_and_check(false, "");
}

#[test]
fn seek_while_playing_delivers_a_decodable_stream_inside_the_segment() {
    seek_and_check(true, "");
}

#[test]
fn seek_while_playing_low_delay() {
    seek_and_check(true, "pred-structure=low-delay");
}
