// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc` answers the allocation query: upstream gets a video buffer pool for the
//! input caps (so it refills the same frame memory) and `VideoMeta` (so planes with strides and
//! offsets of their own reach the encoder without a copy, and are encoded as they are).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const W: u32 = 320;
const H: u32 = 240;

/// Waits (bounded) until the pad has caps: the element has taken them and can answer the
/// allocation query.
fn wait_for_caps(pad: &gst::Pad, limit: Duration) -> gst::Caps {
    let start = Instant::now();
    loop {
        if let Some(caps) = pad.current_caps() {
            return caps;
        }
        assert!(
            start.elapsed() < limit,
            "the encoder had no caps after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn allocation_query_is_answered_with_a_video_pool_for_the_input_caps() {
    init();
    let caps_str =
        format!("video/x-raw,format=I420,width={W},height={H},framerate=25/1,colorimetry=bt709");
    let p = pipeline(&format!(
        "appsrc name=src format=time caps={caps_str} ! vigilsvtav1enc name=enc preset=12 \
         ! fakesink sync=false"
    ));
    let src = appsrc(&p, "src");
    let enc = p.by_name("enc").unwrap();
    p.set_state(gst::State::Playing).expect("PLAYING");
    let info = gst_video::VideoInfo::from_caps(&caps_str.parse::<gst::Caps>().unwrap()).unwrap();
    let mut frame = gst::Buffer::from_mut_slice(vec![128u8; info.size()]);
    frame.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    src.push_buffer(frame).expect("the first frame is taken");
    let sinkpad = enc.static_pad("sink").unwrap();
    let incaps = wait_for_caps(&sinkpad, Duration::from_secs(10));

    let mut q = gst::query::Allocation::new(Some(&incaps), true);
    let start = Instant::now();
    assert!(
        src.static_pad("src").unwrap().peer_query(&mut q),
        "the encoder did not answer the allocation query"
    );
    assert!(start.elapsed() < Duration::from_secs(2));

    let pools: Vec<_> = q.allocation_pools().collect();
    assert_eq!(pools.len(), 1, "one pool proposed");
    let (pool, size, min, max) = pools[0].clone();
    let pool = pool.expect("a pool, not only sizes");
    assert!(
        pool.is::<gst_video::VideoBufferPool>(),
        "a video buffer pool, got {}",
        pool.type_()
    );
    assert_eq!(
        size as usize,
        info.size(),
        "the pool's buffers hold one frame"
    );
    assert!(min >= 1, "the pool keeps buffers ready (min {min})");
    assert_eq!(max, 0, "the pool does not bound upstream (max {max})");
    let config = pool.config();
    let (pool_caps, pool_size, _, _) = config.params().expect("pool parameters");
    assert_eq!(
        pool_caps.as_ref(),
        Some(&incaps),
        "the pool is for the input caps"
    );
    assert_eq!(pool_size, size);
    assert!(
        q.find_allocation_meta::<gst_video::VideoMeta>().is_some(),
        "VideoMeta is accepted: the encoder maps frames with their own strides and offsets"
    );

    // The pool works as proposed: a buffer from it is a frame for these caps.
    pool.set_active(true).expect("the pool activates");
    let buf = pool
        .acquire_buffer(None)
        .expect("a buffer from the proposed pool");
    assert!(buf.size() >= info.size());
    drop(buf);
    pool.set_active(false).expect("the pool deactivates");

    let _ = src.end_of_stream();
    stop_within(&p, Duration::from_secs(5));
}

/// Y4M rows are packed (a 326-pixel row is 326 bytes, its chroma rows 163), while GStreamer's
/// default I420 layout pads rows to 4 bytes: with `VideoMeta` accepted, `y4mdec` hands over its
/// frames as they are, strides in the meta, and the encoder must read them with those strides.
/// The stream is the one `SvtAv1EncApp` makes from the same file, packet for packet.
#[test]
fn strided_frames_from_y4mdec_encode_like_svtav1encapp() {
    init();
    if gst::ElementFactory::find("y4mdec").is_none() || !have_tool("SvtAv1EncApp") {
        eprintln!("skipped: y4mdec or SvtAv1EncApp missing");
        return;
    }
    let dir = scratch("allocation-strided");
    let input = dir.join("in.y4m");
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=326x182:rate=25",
            ])
            .args(["-frames:v", "20", "-pix_fmt", "yuv420p", "-y"])
            .arg(&input),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg could not write the test input: {err}");

    let ivf = dir.join("app.ivf");
    let (ok, _, err) = run_tool(
        Command::new("SvtAv1EncApp")
            .arg("-i")
            .arg(&input)
            .arg("-b")
            .arg(&ivf)
            .args(["--preset", "12", "--crf", "35"])
            // y4mdec says colorimetry=bt601 (limited range), which the element passes on
            .args([
                "--color-primaries",
                "6",
                "--transfer-characteristics",
                "6",
                "--matrix-coefficients",
                "6",
                "--color-range",
                "0",
            ]),
        Duration::from_secs(120),
    );
    assert!(ok, "SvtAv1EncApp failed: {err}");
    let reference = read_ivf(&ivf);

    let p = pipeline(&format!(
        "filesrc location={} ! y4mdec ! vigilsvtav1enc name=enc preset=12 crf=35 \
         ! appsink name=sink sync=false",
        input.display()
    ));
    // What reaches the encoder: the strides of each frame's VideoMeta.
    let strides = Arc::new(Mutex::new(Vec::new()));
    let s = strides.clone();
    p.by_name("enc")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                let meta = buf.meta::<gst_video::VideoMeta>();
                s.lock()
                    .unwrap()
                    .push(meta.map(|m| m.stride()[..3].to_vec()));
            }
            gst::PadProbeReturn::Ok
        });
    let out = collect_buffers(&p);
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(2));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    assert!(log.eos.is_some(), "no EOS: {log:?}");

    let strides = strides.lock().unwrap();
    assert_eq!(strides.len(), 20);
    for s in strides.iter() {
        assert_eq!(
            s.as_deref(),
            Some(&[326, 163, 163][..]),
            "y4mdec's packed rows reach the encoder as they are, described by a VideoMeta"
        );
    }
    let ours = out.lock().unwrap();
    assert_eq!(ours.len(), reference.len(), "packet count");
    for (n, (a, b)) in ours.iter().zip(&reference).enumerate() {
        let a = a.map_readable().unwrap();
        assert!(
            a.as_slice() == b.as_slice(),
            "packet {n} differs from SvtAv1EncApp"
        );
    }
}
