// SPDX-License-Identifier: MPL-2.0
//! `vigildav1ddec` through real pipelines, the real libdav1d and the reference tools, with the
//! plugin loaded from its shared library: frame-exact against `dav1d --muxer md5` for streams
//! from several encoders, corrupt and mutated input, fault injection, seeking, inspection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use vigil_tests::*;

const FPS: i32 = 25;

/// One decoded frame as it left the element.
#[derive(Debug, Clone)]
struct Frame {
    pts: Option<gst::ClockTime>,
    duration: Option<gst::ClockTime>,
    format: gst_video::VideoFormat,
    width: u32,
    height: u32,
    /// The visible samples, row by row, Y then U then V (as dav1d's md5 muxer hashes them).
    visible: Vec<u8>,
}

/// The visible bytes of each plane of `buffer`, row by row.
fn visible_bytes(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Vec<u8> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .expect("a mappable video frame");
    let mut out = Vec::new();
    for p in 0..info.n_planes() {
        let data = frame.plane_data(p).unwrap();
        let stride = frame.plane_stride()[p as usize] as usize;
        let comp = p as u8;
        let row = info.comp_width(comp) as usize * info.comp_pstride(comp) as usize;
        for r in 0..info.comp_height(comp) as usize {
            out.extend_from_slice(&data[r * stride..r * stride + row]);
        }
    }
    out
}

/// An appsink named `sink` in `p` that keeps every frame.
fn collect_frames(p: &gst::Pipeline) -> Arc<Mutex<Vec<Frame>>> {
    let sink = appsink(p, "sink");
    let frames = Arc::new(Mutex::new(Vec::new()));
    let f = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                let buffer = sample.buffer().unwrap();
                assert_eq!(
                    buffer.size(),
                    info.size(),
                    "buffer size does not match its caps"
                );
                f.lock().unwrap().push(Frame {
                    pts: buffer.pts(),
                    duration: buffer.duration(),
                    format: info.format(),
                    width: info.width(),
                    height: info.height(),
                    visible: visible_bytes(buffer, &info),
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    frames
}

/// Decodes an IVF file with `vigildav1ddec {props}`; returns the frames and the bus log.
fn decode_ivf(path: &Path, props: &str) -> (Vec<Frame>, RunLog) {
    let p = pipeline(&format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=dec {props} \
         ! appsink name=sink sync=false",
        path.display()
    ));
    let frames = collect_frames(&p);
    let log = run(&p, Duration::from_secs(120), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (frames, log)
}

fn md5_of(dir: &Path, bytes: &[u8]) -> String {
    let path = dir.join("visible.raw");
    std::fs::write(&path, bytes).unwrap();
    let (ok, out, err) = run_tool(Command::new("md5sum").arg(&path), Duration::from_secs(30));
    assert!(ok, "md5sum failed: {err}");
    out.split_whitespace().next().unwrap().to_owned()
}

/// The reference: `dav1d --filmgrain 1 --muxer md5` over every frame's visible planes.
fn dav1d_md5(path: &Path) -> String {
    dav1d_md5_with(path, &["--filmgrain", "1"])
}

/// `dav1d --muxer md5` with other options.
fn dav1d_md5_with(path: &Path, options: &[&str]) -> String {
    let (ok, out, err) = run_tool(
        Command::new("dav1d")
            .arg("-i")
            .arg(path)
            .args(options)
            .args(["--muxer", "md5", "-o", "-"]),
        Duration::from_secs(120),
    );
    assert!(ok, "dav1d failed on {}: {err}", path.display());
    out.trim().to_owned()
}

fn dav1d_frame_count(path: &Path) -> usize {
    let (ok, _, err) = run_tool(
        Command::new("dav1d")
            .arg("-i")
            .arg(path)
            .args(["--muxer", "null", "-o", "/dev/null"]),
        Duration::from_secs(120),
    );
    assert!(ok, "dav1d failed: {err}");
    // "Decoded 30/30 frames (100.0%) ..."
    let line = err.lines().rev().find(|l| l.contains("Decoded")).unwrap();
    let n = line.split_whitespace().nth(1).unwrap();
    n.split('/').next().unwrap().parse().unwrap()
}

/// Decodes `ivf` with the element and compares the md5 of every frame's visible planes with
/// dav1d's; returns the frames.
fn assert_matches_dav1d(dir: &Path, ivf: &Path, what: &str) -> Vec<Frame> {
    let (frames, log) = decode_ivf(ivf, "");
    assert!(log.errors.is_empty(), "{what}: {}", log.error_text());
    assert!(log.eos.is_some(), "{what}: no EOS");
    assert_eq!(
        frames.len(),
        dav1d_frame_count(ivf),
        "{what}: frame count differs from dav1d"
    );
    let all: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.visible.iter().copied())
        .collect();
    let ours = md5_of(dir, &all);
    let reference = dav1d_md5(ivf);
    assert_eq!(ours, reference, "{what}: md5 differs from dav1d");
    println!(
        "{what}: {} frames {:?} {}x{}, md5 {ours} = dav1d",
        frames.len(),
        frames[0].format,
        frames[0].width,
        frames[0].height
    );
    // PTS and duration on every frame, increasing.
    for w in frames.windows(2) {
        assert!(w[0].pts.is_some() && w[0].duration.is_some(), "{what}");
        assert!(w[1].pts > w[0].pts, "{what}: PTS not increasing");
    }
    frames
}

/// Encodes `frames` of videotestsrc with a gst encoder chain into an IVF file (through
/// Matroska and an ffmpeg stream copy).
fn gst_encode_ivf(
    dir: &Path,
    name: &str,
    source_caps: &str,
    encoder: &str,
    frames: u32,
) -> PathBuf {
    let mkv = dir.join(format!("{name}.mkv"));
    let p = pipeline(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! {source_caps},framerate={FPS}/1 \
         ! {encoder} ! av1parse ! matroskamux ! filesink location={}",
        mkv.display()
    ));
    let log = run(&p, Duration::from_secs(240), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(2));
    assert!(log.errors.is_empty(), "{name}: {}", log.error_text());
    let ivf = dir.join(format!("{name}.ivf"));
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mkv)
            .args(["-c", "copy", "-y"])
            .arg(&ivf),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg remux of {name}: {err}");
    ivf
}

/// Encodes testsrc2 with ffmpeg (`filter` ends in the pixel format) into an IVF file.
fn ffmpeg_encode_ivf(dir: &Path, name: &str, filter: &str, frames: u32, codec: &[&str]) -> PathBuf {
    let ivf = dir.join(format!("{name}.ivf"));
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", filter, "-frames:v"])
            .arg(frames.to_string())
            .args(codec)
            .arg("-y")
            .arg(&ivf),
        Duration::from_secs(240),
    );
    assert!(ok, "ffmpeg {name}: {err}");
    ivf
}

fn has_ffmpeg_encoder(name: &str) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(name))
        .unwrap_or(false)
}

#[test]
fn frames_match_dav1d_for_vigilsvtav1enc_streams() {
    init();
    let dir = scratch("dav1d-md5-svt");
    let raw = "video/x-raw,width=320,height=240";
    let eight = gst_encode_ivf(&dir, "svt8", raw, "vigilsvtav1enc preset=12", 30);
    let frames = assert_matches_dav1d(&dir, &eight, "vigilsvtav1enc 8-bit");
    assert_eq!(frames[0].format, gst_video::VideoFormat::I420);
    let ten = gst_encode_ivf(
        &dir,
        "svt10",
        "video/x-raw,format=I420_10LE,width=320,height=240",
        "vigilsvtav1enc preset=12",
        30,
    );
    let frames = assert_matches_dav1d(&dir, &ten, "vigilsvtav1enc 10-bit");
    assert_eq!(frames[0].format, gst_video::VideoFormat::I42010le);
}

#[test]
fn film_grain_is_applied_as_dav1d_does() {
    init();
    let dir = scratch("dav1d-md5-grain");
    let ivf = gst_encode_ivf(
        &dir,
        "grain",
        "video/x-raw,width=320,height=240",
        "vigilsvtav1enc preset=12 film-grain=20",
        20,
    );
    let with_grain = assert_matches_dav1d(&dir, &ivf, "vigilsvtav1enc film-grain=20");
    // The grain is really there: without it the pixels differ.
    let (plain, log) = decode_ivf(&ivf, "apply-grain=false");
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert_eq!(plain.len(), with_grain.len());
    assert!(
        plain
            .iter()
            .zip(&with_grain)
            .any(|(a, b)| a.visible != b.visible),
        "apply-grain=false gives the same pixels: the stream has no grain"
    );
}

#[test]
fn frames_match_dav1d_for_libaom_streams() {
    init();
    let dir = scratch("dav1d-md5-aom");
    let av1enc = gst_encode_ivf(
        &dir,
        "av1enc",
        "video/x-raw,width=160,height=120",
        "av1enc cpu-used=8 target-bitrate=300",
        10,
    );
    assert_matches_dav1d(&dir, &av1enc, "gst av1enc");
    let aom = |pix: &str, size: &str| {
        format!("testsrc2=size=176x96:rate={FPS},scale={size},format={pix}")
    };
    let cases: [(&str, String, &[&str], gst_video::VideoFormat); 6] = [
        (
            "aom-odd",
            aom("yuv420p", "177:99"),
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
            gst_video::VideoFormat::I420,
        ),
        (
            "aom-444",
            aom("yuv444p", "176:96"),
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
            gst_video::VideoFormat::Y444,
        ),
        (
            "aom-gray-odd",
            aom("gray", "97:65"),
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
            gst_video::VideoFormat::Gray8,
        ),
        (
            "aom-422-10",
            aom("yuv422p10le", "176:96"),
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
            gst_video::VideoFormat::I42210le,
        ),
        (
            "aom-444-12",
            aom("yuv444p12le", "96:64"),
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
            gst_video::VideoFormat::Y44412le,
        ),
        (
            "aom-tiles",
            format!("testsrc2=size=640x360:rate={FPS},format=yuv420p10le"),
            &[
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-tiles",
                "4x2",
                "-row-mt",
                "1",
            ],
            gst_video::VideoFormat::I42010le,
        ),
    ];
    for (name, filter, codec, format) in cases {
        let ivf = ffmpeg_encode_ivf(&dir, name, &filter, 8, codec);
        let frames = assert_matches_dav1d(&dir, &ivf, name);
        assert_eq!(frames[0].format, format, "{name}");
    }
}

#[test]
fn frames_match_dav1d_for_rav1e_streams() {
    init();
    if !has_ffmpeg_encoder("librav1e") {
        println!("SKIPPED: ffmpeg has no librav1e encoder");
        return;
    }
    let dir = scratch("dav1d-md5-rav1e");
    for (name, pix) in [("rav1e8", "yuv420p"), ("rav1e10", "yuv420p10le")] {
        let filter = format!("testsrc2=size=176x96:rate={FPS},format={pix}");
        let ivf = ffmpeg_encode_ivf(
            &dir,
            name,
            &filter,
            10,
            &["-c:v", "librav1e", "-speed", "10"],
        );
        assert_matches_dav1d(&dir, &ivf, name);
    }
}

/// Concatenates IVF files into one, renumbering the frame timestamps.
fn concat_ivf(parts: &[PathBuf], out: &Path) {
    let mut data = Vec::new();
    let mut index = 0u64;
    for (n, part) in parts.iter().enumerate() {
        let d = std::fs::read(part).unwrap();
        let header_len = u16::from_le_bytes([d[6], d[7]]) as usize;
        if n == 0 {
            data.extend_from_slice(&d[..header_len]);
        }
        let mut p = header_len;
        while p + 12 <= d.len() {
            let size = u32::from_le_bytes(d[p..p + 4].try_into().unwrap()) as usize;
            data.extend_from_slice(&d[p..p + 4]);
            data.extend_from_slice(&index.to_le_bytes());
            data.extend_from_slice(&d[p + 12..p + 12 + size]);
            index += 1;
            p += 12 + size;
        }
    }
    std::fs::write(out, data).unwrap();
}

#[test]
fn resolution_change_mid_stream_gets_new_caps_before_its_first_frame() {
    init();
    let dir = scratch("dav1d-reschange");
    let a = gst_encode_ivf(
        &dir,
        "a",
        "video/x-raw,width=320,height=240",
        "vigilsvtav1enc preset=12",
        12,
    );
    let b = gst_encode_ivf(
        &dir,
        "b",
        "video/x-raw,format=I420_10LE,width=176,height=144",
        "vigilsvtav1enc preset=12",
        12,
    );
    let both = dir.join("both.ivf");
    concat_ivf(&[a, b], &both);
    let frames = assert_matches_dav1d(&dir, &both, "320x240 8-bit then 176x144 10-bit");
    assert_eq!(frames.len(), 24);
    for (i, f) in frames.iter().enumerate() {
        let expected = if i < 12 {
            (gst_video::VideoFormat::I420, 320, 240)
        } else {
            (gst_video::VideoFormat::I42010le, 176, 144)
        };
        assert_eq!((f.format, f.width, f.height), expected, "frame {i}");
    }
}

/// Runs TUs through appsrc into the decoder; returns the bus log and frames decoded.
fn decode_buffers(
    tus: Vec<Vec<u8>>,
    props: &str,
    caps: &str,
    deadline: Duration,
) -> (RunLog, usize) {
    let p = pipeline(&format!(
        "appsrc name=src format=time caps={caps} ! vigildav1ddec name=dec {props} \
         ! fakesink name=sink sync=false signal-handoffs=true"
    ));
    let count = Arc::new(Mutex::new(0usize));
    let c = count.clone();
    p.by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            *c.lock().unwrap() += 1;
            None
        });
    let src = appsrc(&p, "src");
    let dur = gst::ClockTime::SECOND / FPS as u64;
    push_timed(src, tus, dur);
    let log = run(&p, deadline, Duration::from_millis(300));
    stop_within(&p, Duration::from_secs(2));
    let n = *count.lock().unwrap();
    (log, n)
}

const AV1_CAPS: &str = "video/x-av1,stream-format=obu-stream,alignment=tu";

fn decoder_errors(log: &RunLog) -> Vec<&BusProblem> {
    log.errors
        .iter()
        .filter(|e| e.source.contains("dec"))
        .collect()
}

fn small_stream(dir: &Path, frames: u32) -> Vec<Vec<u8>> {
    let filter = format!("testsrc2=size=96x64:rate={FPS},format=yuv420p");
    let ivf = ffmpeg_encode_ivf(
        dir,
        "small",
        &filter,
        frames,
        &["-c:v", "libaom-av1", "-cpu-used", "8", "-g", "5"],
    );
    read_ivf(&ivf)
}

/// Asserts WARNINGs for the first `max_errors` undecodable frames, then exactly one ERROR
/// from the decoder, without a hang.
fn assert_warnings_then_one_error(log: &RunLog, max_errors: usize, what: &str) {
    assert!(!log.timed_out, "{what}: hung");
    let errors = decoder_errors(log);
    assert_eq!(
        errors.len(),
        1,
        "{what}: one decoder ERROR: {}",
        log.error_text()
    );
    assert!(
        errors[0].text.contains("could not be decoded"),
        "{what}: {}",
        errors[0].text
    );
    let warnings = log
        .warnings
        .iter()
        .filter(|w| w.source.contains("dec"))
        .count();
    assert_eq!(
        warnings, max_errors,
        "{what}: one WARNING per tolerated error"
    );
}

#[test]
fn corrupt_input_gives_warnings_then_one_clear_error() {
    init();
    let dir = scratch("dav1d-corrupt");
    let tus = small_stream(&dir, 20);
    // Clean, for reference.
    let (log, n) = decode_buffers(tus.clone(), "", AV1_CAPS, Duration::from_secs(30));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert_eq!(n, 20);

    // Truncated: every temporal unit after the first is cut in half.
    let truncated: Vec<Vec<u8>> = tus
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == 0 {
                t.clone()
            } else {
                t[..t.len() / 2].to_vec()
            }
        })
        .collect();
    let (log, _) = decode_buffers(truncated, "max-errors=3", AV1_CAPS, Duration::from_secs(30));
    assert_warnings_then_one_error(&log, 3, "truncated");

    // Garbage from the start.
    let mut seed = 0x1234_5678u64;
    let garbage: Vec<Vec<u8>> = (0..30)
        .map(|_| (0..500).map(|_| (lcg(&mut seed) >> 24) as u8).collect())
        .collect();
    let (log, n) = decode_buffers(garbage, "max-errors=2", AV1_CAPS, Duration::from_secs(30));
    assert_eq!(n, 0);
    // Garbage either fails to parse (WARNINGs, then the ERROR) or parses as nothing at all
    // (then EOS finds that no frame was decoded): one clear ERROR in either case.
    assert!(!log.timed_out, "garbage: hung");
    assert_eq!(decoder_errors(&log).len(), 1, "{}", log.error_text());

    // Bit flips in every temporal unit after the first key frame's header.
    let flipped: Vec<Vec<u8>> = tus
        .iter()
        .map(|t| {
            let mut t = t.clone();
            let n = t.len();
            for k in (n / 4..n).step_by(7) {
                t[k] ^= 0x5a;
            }
            t
        })
        .collect();
    let (log, _) = decode_buffers(flipped, "max-errors=1", AV1_CAPS, Duration::from_secs(30));
    assert!(!log.timed_out, "bit flips: hung");
    assert!(decoder_errors(&log).len() <= 1, "{}", log.error_text());

    // Wrong caps: an Annex B stream is refused at negotiation, with an ERROR, not a hang.
    let (log, n) = decode_buffers(
        tus,
        "",
        "video/x-av1,stream-format=annexb,alignment=tu",
        Duration::from_secs(30),
    );
    assert!(
        !log.timed_out && !log.errors.is_empty(),
        "wrong caps: {log:?}"
    );
    assert_eq!(n, 0);
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state
}

#[test]
fn two_hundred_mutated_streams_never_crash_or_hang() {
    init();
    let dir = scratch("dav1d-mutate");
    let tus = small_stream(&dir, 12);
    let mut seed = 42u64;
    let start = Instant::now();
    let (mut eos, mut errors) = (0, 0);
    for round in 0..200 {
        let mut stream = tus.clone();
        for _ in 0..1 + lcg(&mut seed) % 4 {
            let i = (lcg(&mut seed) % stream.len() as u64) as usize;
            let r = lcg(&mut seed);
            let t = &mut stream[i];
            if t.is_empty() {
                continue;
            }
            let at = (r >> 8) as usize % t.len();
            match r % 6 {
                0 => t[at] ^= 1 << ((r >> 40) % 8),
                1 => t.truncate(at),
                2 => t[at..]
                    .iter_mut()
                    .for_each(|b| *b = (lcg(&mut seed) >> 32) as u8),
                3 => {
                    let dup = t.clone();
                    stream.insert(i, dup);
                }
                4 => {
                    stream.remove(i);
                    if stream.is_empty() {
                        stream.push(vec![0x12, 0x00]);
                    }
                }
                _ => t.splice(at..at, [0xff, 0x00, 0x80, 0x7f]).for_each(drop),
            }
        }
        let (log, _) = decode_buffers(stream, "max-errors=2", AV1_CAPS, Duration::from_secs(20));
        assert!(!log.timed_out, "round {round}: hung");
        assert!(
            decoder_errors(&log).len() <= 1,
            "round {round}: {}",
            log.error_text()
        );
        assert!(
            log.watchdog_errors().is_empty(),
            "round {round}: watchdog tripped"
        );
        if log.eos.is_some() {
            eos += 1;
        } else {
            errors += 1;
        }
    }
    println!(
        "200 mutated streams in {:?}: {eos} ended in EOS, {errors} in an ERROR",
        start.elapsed()
    );
}

fn fault_stream() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = scratch("dav1d-fault-stream");
        let filter = format!("testsrc2=size=160x128:rate={FPS},format=yuv420p");
        ffmpeg_encode_ivf(
            &dir,
            "fault",
            &filter,
            60,
            &["-c:v", "libaom-av1", "-cpu-used", "8"],
        )
    })
    .clone()
}

fn run_fault(fault: &str, timeout_ms: u32) -> FaultRun {
    let ivf = fault_stream();
    let fault = fault_property(fault);
    let desc = format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=dec \
         watchdog-timeout={timeout_ms} {fault} ! fakesink",
        ivf.display()
    );
    run_fault_pipeline(&desc)
}

#[test]
fn wedge_while_streaming_posts_one_error_and_stops() {
    init();
    let r = run_fault("wedge:streaming:10", 1000);
    assert_one_watchdog_error(
        &r,
        "dec",
        "abandoned",
        "streaming",
        Duration::from_millis(1000 + 3000),
    );
    // Upstream sends EOS after the flow error (so muxers can finalise); it comes after the
    // ERROR, never instead of it.
    if let Some(eos) = r.log.eos {
        assert!(eos >= r.log.errors[0].at);
    }
}

#[test]
fn wedge_at_drain_posts_one_error_before_eos() {
    init();
    let r = run_fault("wedge:drain", 1000);
    assert_one_watchdog_error(
        &r,
        "dec",
        "abandoned",
        "drain",
        Duration::from_millis(1000 + 3000),
    );
}

#[test]
fn panic_while_streaming_posts_one_error_and_stops() {
    init();
    let r = run_fault("panic:streaming:5", 3000);
    assert_one_watchdog_error(
        &r,
        "dec",
        "panicked",
        "streaming",
        Duration::from_millis(3000 + 1500),
    );
}

#[test]
fn panic_at_drain_posts_one_error() {
    init();
    let r = run_fault("panic:drain", 3000);
    assert_one_watchdog_error(
        &r,
        "dec",
        "panicked",
        "drain",
        Duration::from_millis(3000 + 1500),
    );
}

#[test]
fn clean_run_ends_in_eos_without_error() {
    init();
    let r = run_fault("", 1000);
    assert!(r.log.errors.is_empty(), "{}", r.log.error_text());
    assert!(r.log.warnings.is_empty(), "{:?}", r.log.warnings);
    assert!(r.log.eos.is_some());
}

#[test]
fn slow_but_progressing_decoder_does_not_trip() {
    init();
    // Every frame takes 25 % of the timeout; the run takes several timeouts.
    let r = run_fault("slow=200:streaming", 800);
    assert!(r.log.errors.is_empty(), "{}", r.log.error_text());
    assert!(r.log.eos.is_some());
}

fn frame_hash(f: &Frame) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    f.visible.hash(&mut h);
    h.finish()
}

/// Decodes `path` through `demux`, seeks (flushing, to the key frame before `target`) once
/// prerolled, and returns the frames after the seek.
fn decode_after_seek(path: &Path, demux: &str, target: gst::ClockTime) -> Vec<Frame> {
    let p = pipeline(&format!(
        "filesrc location={} ! {demux} ! vigildav1ddec ! appsink name=sink sync=false",
        path.display()
    ));
    let frames = collect_frames(&p);
    p.set_state(gst::State::Paused).unwrap();
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(10));
    assert!(r.is_ok(), "preroll failed");
    frames.lock().unwrap().clear();
    p.seek_simple(
        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
        target,
    )
    .expect("seek");
    frames.lock().unwrap().clear();
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(log.eos.is_some());
    std::mem::take(&mut *frames.lock().unwrap())
}

#[test]
fn flushing_seek_in_matroska_and_mp4_gives_the_right_frames() {
    init();
    let dir = scratch("dav1d-seek");
    for (mux, demux, ext) in [
        ("matroskamux", "matroskademux", "mkv"),
        ("mp4mux", "qtdemux", "mp4"),
    ] {
        let file = dir.join(format!("seek.{ext}"));
        let p = pipeline(&format!(
            "videotestsrc num-buffers=75 pattern=ball ! video/x-raw,width=320,height=240,framerate={FPS}/1 \
             ! vigilsvtav1enc preset=12 keyframe-max-dist=10 ! av1parse ! {mux} ! filesink location={}",
            file.display()
        ));
        let log = run(&p, Duration::from_secs(120), Duration::from_millis(100));
        stop_within(&p, Duration::from_secs(2));
        assert!(log.errors.is_empty(), "{}", log.error_text());

        let straight = pipeline(&format!(
            "filesrc location={} ! {demux} ! vigildav1ddec ! appsink name=sink sync=false",
            file.display()
        ));
        let all = collect_frames(&straight);
        let log = run(
            &straight,
            Duration::from_secs(60),
            Duration::from_millis(100),
        );
        stop_within(&straight, Duration::from_secs(2));
        assert!(log.eos.is_some(), "{}", log.error_text());
        let all = std::mem::take(&mut *all.lock().unwrap());
        assert_eq!(all.len(), 75, "{ext}: straight decode");

        let target = gst::ClockTime::from_mseconds(1500);
        let after = decode_after_seek(&file, demux, target);
        assert!(!after.is_empty(), "{ext}: no frame after the seek");
        let first = after[0].pts.unwrap();
        assert!(
            first <= target,
            "{ext}: the seek started after the target ({first})"
        );
        assert!(
            first > gst::ClockTime::ZERO,
            "{ext}: the seek restarted from the beginning"
        );
        // Every frame after the seek is the straight-decode frame at the same PTS, and they
        // run to the end without a gap: no stale frame from before the seek.
        let start = all.iter().position(|f| f.pts == Some(first)).unwrap();
        assert_eq!(
            after.len(),
            all.len() - start,
            "{ext}: frames after the seek"
        );
        for (a, b) in after.iter().zip(&all[start..]) {
            assert_eq!(a.pts, b.pts, "{ext}");
            assert_eq!(frame_hash(a), frame_hash(b), "{ext}: pixels at {:?}", a.pts);
        }
        println!(
            "{ext}: seek to {target} restarted at {first}, {} frames identical to a straight decode",
            after.len()
        );
    }
}

#[test]
fn latency_query_reports_the_frame_delay() {
    init();
    let ivf = fault_stream();
    let frame = gst::ClockTime::SECOND / FPS as u64;
    for (props, frames) in [("n-threads=1", 1u64), ("n-threads=4 max-frame-delay=3", 3)] {
        let p = pipeline(&format!(
            "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=dec {props} ! fakesink",
            ivf.display()
        ));
        p.set_state(gst::State::Paused).unwrap();
        let (r, _, _) = p.state(gst::ClockTime::from_seconds(10));
        assert!(r.is_ok());
        let dec = p.by_name("dec").unwrap();
        let mut q = gst::query::Latency::new();
        assert!(dec.static_pad("src").unwrap().query(&mut q));
        let (_, min, _) = q.result();
        assert_eq!(min, frame * frames, "{props}");
        stop_within(&p, Duration::from_secs(2));
    }
}

#[test]
fn every_property_is_documented_and_inspect_is_clean() {
    assert_documented(
        "vigildav1ddec",
        &[
            "n-threads",
            "max-frame-delay",
            "apply-grain",
            "operating-point",
            "all-layers",
            "inloop-filters",
            "max-errors",
            "watchdog-timeout",
            "fault-injection",
        ],
        &[],
    );
}

#[test]
fn wedge_at_flush_posts_one_error_and_stops() {
    init();
    let ivf = fault_stream();
    let mkv = scratch("dav1d-fault-flush").join("fault.mkv");
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&ivf)
            .args(["-c", "copy", "-y"])
            .arg(&mkv),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    let p = pipeline(&format!(
        "filesrc location={} ! matroskademux ! vigildav1ddec name=dec watchdog-timeout=1000 \
         fault-injection=wedge:flush ! fakesink",
        mkv.display()
    ));
    p.set_state(gst::State::Paused).unwrap();
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(10));
    assert!(r.is_ok(), "preroll failed");
    let t = Instant::now();
    let _ = p.seek_simple(
        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
        gst::ClockTime::from_seconds(1),
    );
    let seek_took = t.elapsed();
    assert!(
        seek_took < Duration::from_millis(1000 + 3000),
        "the flushing seek took {seek_took:?}"
    );
    let log = run(&p, Duration::from_secs(10), Duration::from_millis(500));
    let stop = stop_within(&p, Duration::from_secs(2));
    let r = FaultRun { log, stop };
    assert_one_watchdog_error(&r, "dec", "abandoned", "flush", Duration::from_secs(10));
}

#[test]
fn stopping_a_wedged_decoder_returns_within_the_timeout() {
    init();
    let ivf = fault_stream();
    let p = pipeline(&format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec watchdog-timeout=1000 \
         fault-injection=wedge:streaming:3 ! fakesink",
        ivf.display()
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
}

fn md5_of_frames(dir: &Path, frames: &[Frame]) -> String {
    let all: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.visible.iter().copied())
        .collect();
    md5_of(dir, &all)
}

#[test]
fn grain_and_inloop_filter_switches_match_dav1d_options() {
    init();
    let dir = scratch("dav1d-switches");
    let ivf = gst_encode_ivf(
        &dir,
        "grain",
        "video/x-raw,width=320,height=240",
        "vigilsvtav1enc preset=12 film-grain=15",
        12,
    );
    for (props, options) in [
        ("apply-grain=false", &["--filmgrain", "0"][..]),
        (
            "inloop-filters=0",
            &["--filmgrain", "1", "--inloopfilters", "none"][..],
        ),
        (
            "inloop-filters=deblock+restoration apply-grain=false",
            &["--filmgrain", "0", "--inloopfilters", "nocdef"][..],
        ),
    ] {
        let (frames, log) = decode_ivf(&ivf, props);
        assert!(log.errors.is_empty(), "{props}: {}", log.error_text());
        assert_eq!(frames.len(), 12, "{props}");
        let ours = md5_of_frames(&dir, &frames);
        assert_eq!(
            ours,
            dav1d_md5_with(&ivf, options),
            "{props} vs dav1d {options:?}"
        );
        assert_ne!(ours, dav1d_md5(&ivf), "{props} changes nothing");
        println!("{props}: md5 {ours} = dav1d {options:?}");
    }
}

/// Decodes `ivf` with `between` placed after the decoder (and videoconvert to Y444 after it);
/// returns the frames and, per decoded buffer, (has a VideoMeta, number of memories).
fn decode_with_probe(ivf: &Path, between: &str) -> (Vec<Frame>, Vec<(bool, usize)>) {
    let p = pipeline(&format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=dec {between} \
         ! videoconvert ! video/x-raw,format=Y444 ! appsink name=sink sync=false",
        ivf.display()
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    p.by_name("dec")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                s2.lock()
                    .unwrap()
                    .push((b.meta::<gst_video::VideoMeta>().is_some(), b.n_memory()));
            }
            gst::PadProbeReturn::Ok
        });
    let frames = collect_frames(&p);
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    let seen = seen.lock().unwrap().clone();
    (frames, seen)
}

#[test]
fn zero_copy_with_a_videometa_downstream_and_the_copy_path_give_identical_pixels() {
    init();
    let dir = scratch("dav1d-zero-copy");
    for (name, caps) in [
        ("zc8", "video/x-raw,format=I420,width=176,height=144"),
        ("zc10", "video/x-raw,format=I420_10LE,width=176,height=144"),
    ] {
        let ivf = gst_encode_ivf(&dir, name, caps, "vigilsvtav1enc preset=12", 20);
        // videoconvert proposes GstVideoMeta: the decoder wraps libdav1d's planes.
        let (zero_copy, zc_buffers) = decode_with_probe(&ivf, "");
        // identity drop-allocation=true hides it: the decoder copies.
        let (copied, copy_buffers) = decode_with_probe(&ivf, "! identity drop-allocation=true");
        assert_eq!(zc_buffers.len(), 20, "{name}");
        assert!(
            zc_buffers.iter().all(|&(meta, mems)| meta && mems == 3),
            "{name}: zero copy was not taken (VideoMeta, one memory per plane): {zc_buffers:?}"
        );
        assert!(
            copy_buffers.iter().all(|&(meta, mems)| !meta && mems == 1),
            "{name}: the copy path must give plain buffers: {copy_buffers:?}"
        );
        assert_eq!(zero_copy.len(), copied.len());
        for (i, (a, b)) in zero_copy.iter().zip(&copied).enumerate() {
            assert_eq!(a.pts, b.pts, "{name}: frame {i} pts");
            assert!(
                a.visible == b.visible,
                "{name}: frame {i} differs between zero copy and copy"
            );
        }
    }
}

#[test]
fn hdr_metadata_of_the_bitstream_goes_into_the_caps() {
    init();
    let dir = scratch("dav1d-hdr");
    let ivf = gst_encode_ivf(
        &dir,
        "hdr",
        "video/x-raw,format=I420_10LE,width=176,height=144,colorimetry=bt2100-pq",
        "vigilsvtav1enc preset=12 parameters-string=\"enable-hdr=1:mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)R(0.6800,0.3200)WP(0.3127,0.3290)L(1000.0,0.0050):content-light=1000,400\"",
        5,
    );
    let p = pipeline(&format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec ! appsink name=sink sync=false",
        ivf.display()
    ));
    let sink = appsink(&p, "sink");
    p.set_state(gst::State::Playing).unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(20))
        .expect("a decoded frame");
    stop_within(&p, Duration::from_secs(2));
    let caps = sample.caps().unwrap();
    let m = gst_video::VideoMasteringDisplayInfo::from_caps(caps)
        .unwrap_or_else(|_| panic!("no mastering display in {caps}"));
    let red = m.display_primaries()[0];
    let green = m.display_primaries()[1];
    assert_eq!((red.x, red.y), (34_000, 16_000), "red primary in 1/50000");
    assert_eq!((green.x, green.y), (13_250, 34_500), "green primary");
    assert_eq!(m.max_display_mastering_luminance(), 1000 * 10_000);
    assert_eq!(m.min_display_mastering_luminance(), 50);
    let l = gst_video::VideoContentLightLevel::from_caps(caps)
        .unwrap_or_else(|_| panic!("no content light level in {caps}"));
    assert_eq!(
        (
            l.max_content_light_level(),
            l.max_frame_average_light_level()
        ),
        (1000, 400)
    );
}

#[test]
fn live_upstream_gets_one_frame_of_decoder_delay() {
    init();
    // Live capture, low-delay encoder, decoder with several threads and max-frame-delay=-1.
    let p = pipeline(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=128,framerate={FPS}/1 \
         ! vigilsvtav1enc name=enc preset=13 pred-structure=low-delay \
         ! vigildav1ddec name=dec n-threads=4 ! fakesink"
    ));
    p.set_state(gst::State::Playing).unwrap();
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(10));
    assert!(r.is_ok());
    let min_at = |name: &str| {
        let mut q = gst::query::Latency::new();
        assert!(
            p.by_name(name)
                .unwrap()
                .static_pad("src")
                .unwrap()
                .query(&mut q)
        );
        let (live, min, _) = q.result();
        assert!(live, "{name}: upstream is live");
        min
    };
    let (enc, dec) = (min_at("enc"), min_at("dec"));
    stop_within(&p, Duration::from_secs(2));
    assert_eq!(
        dec - enc,
        gst::ClockTime::SECOND / FPS as u64,
        "one frame of decoder delay when live"
    );
}

#[test]
fn planes_in_the_default_layout_are_wrapped_without_a_copy_or_a_meta() {
    init();
    let dir = scratch("dav1d-default-layout");
    // At 1920 wide libdav1d's strides are GStreamer's default ones.
    let ivf = gst_encode_ivf(
        &dir,
        "wide",
        "video/x-raw,format=I420,width=1920,height=1080",
        "vigilsvtav1enc preset=13",
        4,
    );
    let p = pipeline(&format!(
        "filesrc location={} ! ivfparse ! av1parse ! vigildav1ddec name=dec ! fakesink",
        ivf.display()
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    p.by_name("dec")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                s2.lock()
                    .unwrap()
                    .push((b.meta::<gst_video::VideoMeta>().is_some(), b.n_memory()));
            }
            gst::PadProbeReturn::Ok
        });
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|&(meta, mems)| !meta && mems == 3),
        "libdav1d's planes wrapped as they are: {seen:?}"
    );
    // And the pixels read through the default layout are dav1d's.
    assert_matches_dav1d(&dir, &ivf, "1920x1080 wrapped in the default layout");
}
