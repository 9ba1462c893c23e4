// SPDX-License-Identifier: MPL-2.0
//! Segments the codec elements did not drain for (found by a hostile run): a segment seek
//! whose SEGMENT_DONE left the last frames inside the element (gapless looping loses them),
//! and a non-flushing seek whose new SEGMENT overtook the frames the element held (old frames
//! then came after it, below its start, and were clipped downstream). Both elements now push
//! what they hold before such an event, as GstVideoEncoder and GstVideoDecoder drain.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const SECOND: u64 = 1_000_000_000;

/// What reached the sink, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Buffer(u64),
    Segment { start: u64 },
    FlushStop,
    SegmentDone,
}

fn record(p: &gst::Pipeline) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    p.by_name("s")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::EVENT_DOWNSTREAM
                | gst::PadProbeType::EVENT_FLUSH,
            move |_, info| {
                let item = match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => {
                        Some(Seen::Buffer(b.pts().map_or(u64::MAX, |t| t.nseconds())))
                    }
                    Some(gst::PadProbeData::Event(e)) => match e.view() {
                        gst::EventView::Segment(seg) => Some(Seen::Segment {
                            start: seg
                                .segment()
                                .downcast_ref::<gst::ClockTime>()
                                .and_then(|s| s.start())
                                .map_or(0, |t| t.nseconds()),
                        }),
                        gst::EventView::FlushStop(_) => Some(Seen::FlushStop),
                        gst::EventView::SegmentDone(_) => Some(Seen::SegmentDone),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(item) = item {
                    s.lock().unwrap().push(item);
                }
                gst::PadProbeReturn::Ok
            },
        );
    seen
}

/// Waits until `done` holds for what the sink saw (at most `limit`); false at the limit.
fn wait_for(seen: &Arc<Mutex<Vec<Seen>>>, limit: Duration, done: impl Fn(&[Seen]) -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done(&seen.lock().unwrap()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What came after the last flush.
fn after_flush(seen: &[Seen]) -> Vec<Seen> {
    let from = seen
        .iter()
        .rposition(|s| *s == Seen::FlushStop)
        .map_or(0, |i| i + 1);
    seen[from..].to_vec()
}

fn buffers(seen: &[Seen]) -> Vec<u64> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Buffer(pts) => Some(*pts),
            _ => None,
        })
        .collect()
}

/// A segment seek [2 s, 3 s) from PAUSED: all 30 frames of the segment come out, the last
/// one before the SEGMENT_DONE, none of them held back.
fn segment_seek_delivers_every_frame(desc: &str, what: &str) {
    let p = pipeline(desc);
    let seen = record(&p);
    p.set_state(gst::State::Paused).unwrap();
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(20));
    assert!(r.is_ok(), "{what}: no preroll");
    p.seek(
        1.0,
        gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT | gst::SeekFlags::ACCURATE,
        gst::SeekType::Set,
        gst::ClockTime::from_seconds(2),
        gst::SeekType::Set,
        gst::ClockTime::from_seconds(3),
    )
    .expect("segment seek");
    p.set_state(gst::State::Playing).unwrap();
    let done = wait_for(&seen, Duration::from_secs(30), |s| {
        after_flush(s).contains(&Seen::SegmentDone)
    });
    let after = after_flush(&seen.lock().unwrap());
    stop_within(&p, Duration::from_secs(10));
    assert!(done, "{what}: no SEGMENT_DONE reached the sink: {after:?}");
    let done_at = after.iter().position(|s| *s == Seen::SegmentDone).unwrap();
    let before_done: Vec<u64> = buffers(&after[..done_at])
        .into_iter()
        .filter(|&t| (2 * SECOND..3 * SECOND).contains(&t))
        .collect();
    assert_eq!(
        before_done.len(),
        30,
        "{what}: frames of [2 s, 3 s) before SEGMENT_DONE: {before_done:?}"
    );
}

/// A non-flushing seek to `to` while PLAYING: every buffer after the new segment is inside it
/// (the frames held before it came out before it), and the new segment's frames all come.
fn non_flushing_seek_keeps_old_frames_before_the_new_segment(desc: &str, to: u64, what: &str) {
    let p = pipeline(desc);
    let seen = record(&p);
    p.set_state(gst::State::Playing).unwrap();
    assert!(
        wait_for(&seen, Duration::from_secs(20), |s| buffers(s).len() >= 10),
        "{what}: no output"
    );
    p.seek(
        1.0,
        gst::SeekFlags::ACCURATE,
        gst::SeekType::Set,
        gst::ClockTime::from_nseconds(to),
        gst::SeekType::Set,
        gst::ClockTime::from_nseconds(to + SECOND),
    )
    .expect("non-flushing seek");
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(10));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{what}: {}",
        log.error_text()
    );
    let seen = seen.lock().unwrap().clone();
    let new_segment = seen
        .iter()
        .rposition(|s| matches!(s, Seen::Segment { start } if *start == to))
        .unwrap_or_else(|| panic!("{what}: no segment from {to}: {seen:?}"));
    let after = buffers(&seen[new_segment..]);
    assert!(
        after.iter().all(|&t| t >= to && t < to + SECOND),
        "{what}: buffers outside the new segment after it: {after:?}"
    );
    assert_eq!(
        after.len(),
        30,
        "{what}: frames after the new segment: {after:?}"
    );
}

const RAW: &str =
    "videotestsrc pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1";

#[test]
fn encoder_segment_seek_delivers_every_frame_before_segment_done() {
    init();
    segment_seek_delivers_every_frame(
        &format!("{RAW} ! vigilsvtav1enc preset=12 ! fakesink name=s sync=false"),
        "vigilsvtav1enc",
    );
}

#[test]
fn encoder_non_flushing_seek_pushes_held_frames_before_the_new_segment() {
    init();
    non_flushing_seek_keeps_old_frames_before_the_new_segment(
        &format!("{RAW} ! vigilsvtav1enc preset=12 ! fakesink name=s sync=true"),
        2 * SECOND,
        "vigilsvtav1enc",
    );
}

/// 10 s of AV1 in Matroska, a key frame every second.
fn av1_mkv(dir: &Path) -> PathBuf {
    let out = dir.join("ten-seconds.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc num-buffers=300 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
             ! vigilsvtav1enc preset=12 keyframe-max-dist=30 ! av1parse ! matroskamux ! filesink location={}",
            out.display()
        ),
        Duration::from_secs(120),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    out
}

#[test]
fn decoder_segment_seek_and_non_flushing_seek() {
    init();
    let mkv = av1_mkv(&scratch("codec-segments"));
    let head = format!(
        "filesrc location={} ! matroskademux ! av1parse ! vigildav1ddec",
        mkv.display()
    );
    segment_seek_delivers_every_frame(
        &format!("{head} ! fakesink name=s sync=false"),
        "vigildav1ddec",
    );
    non_flushing_seek_keeps_old_frames_before_the_new_segment(
        &format!("{head} ! fakesink name=s sync=true"),
        5 * SECOND,
        "vigildav1ddec",
    );
}
