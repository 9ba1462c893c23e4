// SPDX-License-Identifier: MPL-2.0
//! `vigilsink` as a drop-in for `filesink` (issue 11): seekable like it (muxers that seek back
//! write the same bytes), lossless by default when not live, `sync=false`, honest about what a
//! stop discards and what drops lost, write errors mapped like it, a `file://` URI handler.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gst::prelude::*;
use vigil_tests::*;

/// Runs `head ! SINK` twice, once into `filesink` and once into `vigilsink`, and returns both
/// files.
fn both(dir: &Path, name: &str, head: &str) -> (PathBuf, PathBuf, RunLog) {
    let a = dir.join(format!("{name}.filesink"));
    let b = dir.join(format!("{name}.vigilsink"));
    let log = run_to_end(
        &format!("{head} ! filesink location={}", a.display()),
        Duration::from_secs(60),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{name} filesink: {}",
        log.error_text()
    );
    let log = run_to_end(
        &format!("{head} ! vigilsink location={}", b.display()),
        Duration::from_secs(60),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{name} vigilsink: {}",
        log.error_text()
    );
    (a, b, log)
}

fn ffprobe_duration(path: &Path) -> Option<f64> {
    let (ok, out, _) = run_tool(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(path),
        Duration::from_secs(30),
    );
    if !ok {
        return None;
    }
    out.trim().parse().ok()
}

#[test]
fn muxers_that_seek_back_write_the_same_bytes_as_filesink() {
    init();
    let dir = scratch("sink-muxers");
    let video =
        "videotestsrc num-buffers=60 ! video/x-raw,format=I420,width=160,height=120,framerate=30/1";
    let audio = "audiotestsrc num-buffers=100 ! audio/x-raw,format=S16LE,rate=48000,channels=2";
    let cases = [
        ("avi", format!("{video} ! avimux")),
        ("wav", format!("{audio} ! wavenc")),
        ("flac", format!("{audio} ! flacenc")),
        (
            "mp4",
            format!("{video} ! vigilsvtav1enc preset=12 ! av1parse ! mp4mux"),
        ),
        (
            "mkv",
            format!("{video} ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux"),
        ),
    ];
    for (name, head) in cases {
        let (a, b, log) = both(&dir, name, &head);
        assert!(log.warnings.is_empty(), "{name}: {:?}", log.warnings);
        let (fa, fb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(fa.len(), fb.len(), "{name}: sizes differ");
        let diffs: Vec<usize> = (0..fa.len()).filter(|&i| fa[i] != fb[i]).collect();
        if name == "mkv" {
            // Only the random segment and track UIDs and the writing date may differ.
            for d in &diffs {
                let at = &fb[d.saturating_sub(24)..*d];
                assert!(
                    at.windows(2)
                        .any(|w| w == [0x73, 0xa4] || w == [0x73, 0xc5] || w == [0x44, 0x61]),
                    "{name}: byte {d} differs outside the UIDs and the date"
                );
            }
        } else if name == "mp4" {
            // The creation and modification times of mvhd, tkhd and mdhd (4 bytes each).
            assert!(
                diffs.len() <= 12,
                "{name}: {} bytes differ, beyond the dates ({diffs:?})",
                diffs.len()
            );
            for d in &diffs {
                let at = &fb[d.saturating_sub(32)..*d];
                assert!(
                    at.windows(4)
                        .any(|w| w == b"mvhd" || w == b"tkhd" || w == b"mdhd"),
                    "{name}: byte {d} differs outside a date field"
                );
            }
        } else {
            assert!(diffs.is_empty(), "{name}: {} bytes differ", diffs.len());
        }
        if have_tool("ffprobe") {
            let (da, db) = (ffprobe_duration(&a), ffprobe_duration(&b));
            assert!(
                db.is_some_and(|d| d > 0.0),
                "{name}: ffprobe finds no duration in {}",
                b.display()
            );
            assert_eq!(da, db, "{name}: durations differ");
        }
    }
    // The Matroska file has its index (Cues) and duration: the muxer could seek back.
    let mkv = std::fs::read(dir.join("mkv.vigilsink")).unwrap();
    let cues = [0x1c, 0x53, 0xbb, 0x6b];
    assert!(
        mkv.windows(4).any(|w| w == cues),
        "the Matroska file has no Cues"
    );
}

#[test]
fn seeking_query_answers_like_filesink() {
    init();
    let dir = scratch("sink-seeking");
    let file = dir.join("regular.bin");
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (location, want) in [(Some(&file), true), (Some(&fifo), false), (None, false)] {
        let sink = gst::ElementFactory::make("vigilsink").build().unwrap();
        if let Some(l) = location {
            sink.set_property("location", l.display().to_string());
        }
        let pad = sink.static_pad("sink").unwrap();
        let mut q = gst::query::Seeking::new(gst::Format::Bytes);
        assert!(pad.query(&mut q));
        assert_eq!(q.result().0, want, "{location:?}");
        let mut q = gst::query::Seeking::new(gst::Format::Time);
        assert!(pad.query(&mut q));
        assert!(!q.result().0, "time is never seekable");
    }
}

#[test]
fn defaults_are_lossless_when_not_live_and_never_hold_a_live_pipeline() {
    init();
    let dir = scratch("sink-lossless");
    let sink = gst::ElementFactory::make("vigilsink").build().unwrap();
    assert!(
        !sink.property::<bool>("sync"),
        "sync defaults to false, as filesink"
    );
    // 20 MB through a queue of 16: every byte arrives, nothing dropped.
    let input = dir.join("input.bin");
    let data: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    let out = dir.join("copy.bin");
    let p = pipeline(&format!(
        "filesrc location={} blocksize=65536 ! vigilsink name=s location={}",
        input.display(),
        out.display()
    ));
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(200));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    let stats = p.by_name("s").unwrap().property::<gst::Structure>("stats");
    stop_within(&p, Duration::from_secs(2));
    assert_eq!(std::fs::read(&out).unwrap(), data, "the copy differs");
    assert_eq!(stats.get::<u64>("dropped").unwrap(), 0);
    assert_eq!(
        stats.get::<u64>("bytes-written").unwrap(),
        data.len() as u64
    );
    let leaky = stats
        .get::<gst::glib::Value>("leaky")
        .map(|v| enum_nick(&v))
        .unwrap_or_default();
    assert_eq!(
        leaky, "block",
        "auto resolves to block when upstream is not live"
    );
    // 30000 small buffers: all written.
    let out = dir.join("small.raw");
    let log = run_to_end(
        &format!(
            "audiotestsrc num-buffers=30000 samplesperbuffer=480 ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! vigilsink location={}",
            out.display()
        ),
        Duration::from_secs(60),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 30000 * 1920);
    // A live upstream: auto drops instead of holding it.
    let p = pipeline(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! vigilsink name=s location={}",
        dir.join("live.raw").display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    // `auto` resolves at the first buffer.
    let stats = stats_when(&p.by_name("s").unwrap(), |s| {
        s.get::<u64>("rendered").unwrap_or(0) > 0
    });
    stop_within(&p, Duration::from_secs(2));
    let leaky = stats
        .get::<gst::glib::Value>("leaky")
        .map(|v| enum_nick(&v))
        .unwrap_or_default();
    assert_eq!(
        leaky, "drop-new",
        "auto resolves to drop-new when upstream is live"
    );
}

/// Waits (at most 10 s) until the sink's `stats` satisfy `ready`; returns the last ones.
fn stats_when(sink: &gst::Element, ready: impl Fn(&gst::Structure) -> bool) -> gst::Structure {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = sink.property::<gst::Structure>("stats");
        if ready(&stats) || std::time::Instant::now() >= end {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn enum_nick(v: &gst::glib::Value) -> String {
    gst::glib::EnumValue::from_value(v)
        .map(|(_, e)| e.nick().to_string())
        .unwrap_or_default()
}

#[test]
fn a_run_that_dropped_data_warns_before_its_eos() {
    init();
    let dir = scratch("sink-lossy");
    let out = dir.join("lossy.raw");
    // A consumer slower than its input, told to drop: the run must say what it lost.
    let p = pipeline(&format!(
        "videotestsrc num-buffers=60 ! video/x-raw,format=I420,width=160,height=120 ! vigilsink name=s leaky=drop-new max-buffers=2 fault-injection=slow=20:streaming location={}",
        out.display()
    ));
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(200));
    let stats = p.by_name("s").unwrap().property::<gst::Structure>("stats");
    stop_within(&p, Duration::from_secs(2));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    let eos = log.eos.expect("EOS");
    let dropped = stats.get::<u64>("dropped").unwrap();
    assert!(dropped > 0, "the slow consumer dropped nothing: {stats}");
    let loss = log
        .warnings
        .iter()
        .find(|w| {
            w.details
                .as_ref()
                .is_some_and(|d| d.name() == "vigil-sink-loss")
        })
        .unwrap_or_else(|| panic!("no loss WARNING: {:?}", log.warnings));
    assert!(loss.at <= eos, "the loss WARNING comes before the EOS");
    assert_eq!(
        loss.details
            .as_ref()
            .unwrap()
            .get::<u64>("dropped")
            .unwrap(),
        dropped
    );
    assert!(loss.text.contains("dropped"), "{}", loss.text);
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        (60 - dropped) * 160 * 120 * 3 / 2,
        "bytes on disk are what was not dropped"
    );
}

#[test]
fn a_stop_without_eos_counts_and_announces_what_it_discards() {
    init();
    let dir = scratch("sink-discard");
    let out = dir.join("stopped.raw");
    let p = pipeline(&format!(
        "videotestsrc ! video/x-raw,format=I420,width=160,height=120 ! vigilsink name=s leaky=block max-buffers=8 fault-injection=slow=30:streaming location={}",
        out.display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    let sink = p.by_name("s").unwrap();
    // Until the queue is full (the consumer takes 30 ms an item).
    stats_when(&sink, |s| s.get::<u64>("queued").unwrap_or(0) >= 8);
    // To READY first: the bus of a pipeline going to NULL drops what is pending.
    p.set_state(gst::State::Ready).unwrap();
    let stats = sink.property::<gst::Structure>("stats");
    let discarded = stats.get::<u64>("discarded").unwrap();
    assert!(discarded > 0, "a full queue was discarded: {stats}");
    assert_eq!(
        stats.get::<u64>("discarded-bytes").unwrap(),
        discarded * 160 * 120 * 3 / 2
    );
    let written = stats.get::<u64>("bytes-written").unwrap();
    assert_eq!(
        written,
        std::fs::metadata(&out).unwrap().len(),
        "bytes-written = bytes on disk"
    );
    assert_eq!(
        stats.get::<u64>("rendered").unwrap() * 160 * 120 * 3 / 2,
        written,
        "every rendered buffer is on disk"
    );
    let bus = p.bus().unwrap();
    let mut warned = false;
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Warning(w) = m.view()
            && w.details().is_some_and(|d| d.name() == "vigil-sink-loss")
        {
            assert!(
                w.error()
                    .to_string()
                    .contains(&format!("{discarded} queued")),
                "{}",
                w.error()
            );
            warned = true;
        }
    }
    assert!(warned, "no WARNING for the discarded buffers");
    stop_within(&p, Duration::from_secs(2));
}

#[test]
fn location_cannot_change_while_open_and_the_getter_tells_the_truth() {
    init();
    let dir = scratch("sink-location");
    let first = dir.join("first.raw");
    let p = pipeline(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=64,height=64 ! vigilsink name=s location={}",
        first.display()
    ));
    let sink = p.by_name("s").unwrap();
    p.set_state(gst::State::Ready).unwrap();
    sink.set_property("location", dir.join("second.raw").display().to_string());
    assert_eq!(
        sink.property::<String>("location"),
        first.display().to_string()
    );
    let bus = p.bus().unwrap();
    let warning = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(2),
        &[gst::MessageType::Warning],
    );
    assert!(
        warning.is_some_and(|m| matches!(m.view(), gst::MessageView::Warning(w) if w.error().to_string().contains("location"))),
        "a WARNING names the refused change"
    );
    stop_within(&p, Duration::from_secs(2));
    // In NULL it is accepted, and the next run writes the new file.
    let second = dir.join("second.raw");
    sink.set_property("location", second.display().to_string());
    let log = run(&p, Duration::from_secs(10), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(2));
    assert!(
        log.eos.is_some() && log.errors.is_empty(),
        "{}",
        log.error_text()
    );
    assert_eq!(
        std::fs::metadata(&second).unwrap().len(),
        5 * 64 * 64 * 3 / 2
    );
}

#[test]
fn a_full_disk_is_no_space_left_and_says_what_was_not_written() {
    init();
    let log = run_to_end(
        "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=64,height=64 ! vigilsink location=/dev/full",
        Duration::from_secs(10),
    );
    assert!(log.eos.is_none(), "no clean EOS over a failed write");
    let e = log.errors.first().expect("an ERROR");
    assert!(e.text.contains("no space left"), "{}", e.text);
    assert!(e.text.contains("not written"), "{}", e.text);
    assert!(
        e.debug.contains("vigilsink") || e.source.contains("vigilsink"),
        "{e:?}"
    );
    // The GError is RESOURCE NO_SPACE_LEFT, as filesink's.
    let p = pipeline(
        "videotestsrc num-buffers=5 ! video/x-raw,format=I420,width=64,height=64 ! vigilsink location=/dev/full",
    );
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an ERROR");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    assert!(
        err.error().matches(gst::ResourceError::NoSpaceLeft),
        "{:?}",
        err.error()
    );
    stop_within(&p, Duration::from_secs(2));
}

#[test]
fn file_uris_are_handled() {
    init();
    let dir = scratch("sink-uri");
    let sink = gst::ElementFactory::make("vigilsink").build().unwrap();
    let handler = sink
        .dynamic_cast_ref::<gst::URIHandler>()
        .expect("a URI handler");
    assert_eq!(handler.protocols(), vec!["file"]);
    let path = dir.join("from uri.raw");
    let uri = gst::glib::filename_to_uri(&path, None).unwrap();
    handler.set_uri(&uri).unwrap();
    assert_eq!(
        sink.property::<String>("location"),
        path.display().to_string()
    );
    assert_eq!(handler.uri().as_deref(), Some(uri.as_str()));
    assert!(handler.set_uri("http://example.com/x").is_err());
    // Another machine's file is refused (filesink refuses it too), localhost is this one.
    let e = handler
        .set_uri(&format!("file://fileserver.example{}", path.display()))
        .unwrap_err();
    assert!(e.message().contains("fileserver.example"), "{e}");
    assert_eq!(
        sink.property::<String>("location"),
        path.display().to_string(),
        "a refused URI leaves the location alone"
    );
    handler
        .set_uri(&format!("file://localhost{}", dir.join("x.raw").display()))
        .unwrap();
    assert_eq!(
        sink.property::<String>("location"),
        dir.join("x.raw").display().to_string()
    );
}

/// A consumer that wedges while a run ends (PAUSED -> READY) is abandoned with a WARNING; the
/// next run cannot write, and its first ERROR says so with the watchdog details (never a bare
/// "internal data stream error" from upstream).
#[test]
fn a_consumer_abandoned_when_a_run_ends_is_the_next_runs_error() {
    init();
    let dir = scratch("sink-abandoned-run");
    let p = pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=64,height=64 ! vigilsink name=s watchdog-timeout=500 fault-injection=wedge:drain location={}",
        dir.join("x.raw").display()
    ));
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<gst::Message>::new()));
    let m = messages.clone();
    p.bus().unwrap().set_sync_handler(move |_, msg| {
        m.lock().unwrap().push(msg.clone());
        gst::BusSyncReply::Drop
    });
    p.set_state(gst::State::Paused).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    p.set_state(gst::State::Ready).unwrap();
    let warned = messages.lock().unwrap().iter().any(|m| {
        matches!(m.view(), gst::MessageView::Warning(w)
            if w.details().is_some_and(|d| d.name() == "vigil-watchdog"))
    });
    assert!(warned, "the abandonment at the end of the run is a WARNING");
    messages.lock().unwrap().clear();
    p.set_state(gst::State::Playing).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let first_error = loop {
        let first = messages
            .lock()
            .unwrap()
            .iter()
            .find_map(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.details().map(|d| d.name().to_string())),
                _ => None,
            });
        if first.is_some() || std::time::Instant::now() >= end {
            break first;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop_within(&p, Duration::from_secs(2));
    assert_eq!(
        first_error,
        Some(Some("vigil-watchdog".to_string())),
        "the next run's first ERROR carries the watchdog details"
    );
}

/// Runs `videotestsrc ! tee` into `filesink` at `a` and `vigilsink` at `b` (one `tee`
/// without queues, so both take the same buffers: a queue would drop its own content at the
/// flush), the source paced at 5 ms a frame and the consumer slowed by fault injection to 25 ms
/// an item, so that it is behind (and the queue never full) when a flushing seek comes 400 ms
/// after PLAYING. Returns what was queued in the sink at the seek.
fn flushing_seek_into_both(a: &Path, b: &Path) -> u64 {
    let p = pipeline(&format!(
        "videotestsrc num-buffers=150 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! identity sleep-time=5000 ! tee name=t \
         t. ! filesink sync=false async=false location={} \
         t. ! vigilsink name=v sync=false async=false location={} max-buffers=1000 max-bytes=0 {}",
        a.display(),
        b.display(),
        fault_property("slow=25:streaming")
    ));
    p.set_state(gst::State::Playing).unwrap();
    // The seek comes once the consumer is behind (items queued), and at least 400 ms in.
    std::thread::sleep(Duration::from_millis(400));
    let queued_at_seek = stats_when(&p.by_name("v").unwrap(), |s| {
        s.get::<u64>("queued").unwrap_or(0) > 0
    })
    .get::<u64>("queued")
    .unwrap();
    p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_mseconds(1000))
        .expect("flushing seek");
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(100));
    stop_within(&p, Duration::from_secs(5));
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert!(
        queued_at_seek > 0,
        "the consumer was not behind at the seek"
    );
    queued_at_seek
}

/// A flushing seek while the consumer is behind writes what `filesink` writes: a regular
/// file starts again (`filesink` truncates it at FLUSH_STOP), a FIFO gets every buffer the
/// sink accepted before the seek (found by a hostile run: 4.4 MB of 12 MB into a FIFO lost
/// without a word behind a slow reader).
#[test]
fn a_flushing_seek_writes_what_filesink_writes() {
    init();
    let dir = scratch("sink-flush");
    // Regular files.
    let (a, b) = (dir.join("filesink.raw"), dir.join("vigilsink.raw"));
    let queued = flushing_seek_into_both(&a, &b);
    let (fa, fb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!fa.is_empty(), "filesink wrote nothing");
    assert!(
        fa == fb,
        "regular file: after a flushing seek vigilsink wrote {} bytes, filesink {} ({queued} queued at the seek)",
        fb.len(),
        fa.len(),
    );
    // FIFOs, each drained by a reader.
    let (a, b) = (dir.join("filesink.fifo"), dir.join("vigilsink.fifo"));
    let readers: Vec<_> = [&a, &b]
        .into_iter()
        .map(|f| {
            let (ok, _, err) = run_tool(Command::new("mkfifo").arg(f), Duration::from_secs(5));
            assert!(ok, "mkfifo: {err}");
            let f = f.clone();
            std::thread::spawn(move || std::fs::read(&f).unwrap())
        })
        .collect();
    let queued = flushing_seek_into_both(&a, &b);
    let mut got = readers.into_iter().map(|r| r.join().unwrap());
    let (fa, fb) = (got.next().unwrap(), got.next().unwrap());
    assert!(
        fa.len() >= 60 * 115_200,
        "filesink wrote {} bytes",
        fa.len()
    );
    assert!(
        fa == fb,
        "FIFO: after a flushing seek vigilsink wrote {} bytes, filesink {} ({queued} queued at the seek)",
        fb.len(),
        fa.len(),
    );
}

/// `append` and `o-sync` as `filesink` has them: two runs with `append=true` leave both runs'
/// bytes, as `filesink append=true` does; `o-sync` writes the same bytes; an appended file is
/// not seekable (writes go to its end).
#[test]
fn append_and_o_sync_as_filesink() {
    init();
    let dir = scratch("sink-append");
    let head = "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=I420,width=64,height=48,framerate=30/1";
    let mut files = Vec::new();
    for sink in ["filesink", "vigilsink"] {
        let path = dir.join(format!("{sink}.raw"));
        std::fs::write(&path, b"before").unwrap();
        for _ in 0..2 {
            let log = run_to_end(
                &format!("{head} ! {sink} append=true location={}", path.display()),
                Duration::from_secs(30),
            );
            assert!(
                log.errors.is_empty() && log.eos.is_some(),
                "{sink}: {}",
                log.error_text()
            );
        }
        files.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(
        files[0].len(),
        6 + 2 * 10 * 4608,
        "filesink appended both runs"
    );
    assert!(
        files[0] == files[1],
        "vigilsink append=true differs from filesink"
    );

    let synced = dir.join("o-sync.raw");
    let log = run_to_end(
        &format!(
            "{head} ! vigilsink o-sync=true location={}",
            synced.display()
        ),
        Duration::from_secs(30),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert_eq!(std::fs::read(&synced).unwrap(), files[0][6..6 + 10 * 4608]);

    let sink = gst::ElementFactory::make("vigilsink")
        .property("location", dir.join("x.raw").to_str().unwrap())
        .property("append", true)
        .build()
        .unwrap();
    let mut q = gst::query::Seeking::new(gst::Format::Bytes);
    assert!(sink.static_pad("sink").unwrap().query(&mut q));
    assert!(!q.result().0, "an appended file is not seekable");
}

/// `filesink`'s buffering properties: a launch line written for `filesink` with
/// `buffer-mode`, `buffer-size` or `max-transient-error-timeout` runs with `vigilsink` in its
/// place and writes the same bytes; and the modes mean what they say while the stream runs:
/// `unbuffered` and `line` put each line on disk as it comes (a slow producer, no EOS yet),
/// `full` holds bytes up to `buffer-size`.
#[test]
fn buffer_modes_as_filesink() {
    init();
    let dir = scratch("sink-buffer-modes");
    let head = "audiotestsrc num-buffers=300 samplesperbuffer=100 ! audio/x-raw,format=S16LE,rate=8000,channels=1";
    for props in [
        "buffer-mode=unbuffered",
        "buffer-mode=full buffer-size=1000",
        "buffer-mode=line buffer-size=100000",
        "buffer-mode=default max-transient-error-timeout=200",
        "buffer-mode=full buffer-size=0",
    ] {
        let name = props.replace([' ', '='], "_");
        let a = dir.join(format!("{name}.filesink"));
        let b = dir.join(format!("{name}.vigilsink"));
        // The same line with the properties, for both elements.
        for (sink, path) in [("filesink", &a), ("vigilsink", &b)] {
            let log = run_to_end(
                &format!("{head} ! {sink} {props} location={}", path.display()),
                Duration::from_secs(60),
            );
            assert!(
                log.errors.is_empty() && log.eos.is_some(),
                "{sink} {props}: {}",
                log.error_text()
            );
        }
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{props}: the same bytes as filesink"
        );
        assert_eq!(std::fs::metadata(&b).unwrap().len(), 300 * 200, "{props}");
    }

    // A slow producer of text lines (not live, so nothing is dropped), no EOS yet.
    let size_after_lines = |props: &str, lines: usize| -> u64 {
        let out = dir.join(format!("lines-{}.txt", props.replace([' ', '='], "_")));
        let p = pipeline(&format!(
            "appsrc name=src format=bytes ! vigilsink {props} location={}",
            out.display()
        ));
        let src = appsrc(&p, "src");
        p.set_state(gst::State::Playing).unwrap();
        for i in 0..lines {
            src.push_buffer(gst::Buffer::from_slice(format!("line {i}\n").into_bytes()))
                .unwrap();
        }
        // Written within a moment (the worker writes what it holds when its queue is empty).
        let end = std::time::Instant::now() + Duration::from_secs(3);
        let mut len = 0;
        while std::time::Instant::now() < end {
            len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            if len >= (lines * 7) as u64 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        src.end_of_stream().unwrap();
        let bus = p.bus().unwrap();
        let eos = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(
            matches!(
                eos.as_ref().map(|m| m.view()),
                Some(gst::MessageView::Eos(_))
            ),
            "{props}: {eos:?}"
        );
        stop_within(&p, Duration::from_secs(2));
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            (lines * 7) as u64,
            "{props}: everything written at EOS"
        );
        len
    };
    for props in ["buffer-mode=unbuffered", "buffer-mode=line"] {
        assert_eq!(
            size_after_lines(props, 5),
            5 * 7,
            "{props}: every line on disk before EOS"
        );
    }
}

/// `append=true` behind a byte source (whose opening segment starts at byte 0, as `filesrc`
/// and `fdsrc` send) appends, as `filesink` does (it was refused as a seek back).
#[test]
fn append_behind_a_byte_source_appends() {
    init();
    let dir = scratch("sink-append-bytes");
    let input = dir.join("in.txt");
    std::fs::write(&input, b"world\n").unwrap();
    for sink in ["filesink", "vigilsink"] {
        let out = dir.join(format!("out-{sink}.txt"));
        std::fs::write(&out, b"hello\n").unwrap();
        let log = run_to_end(
            &format!(
                "filesrc location={} ! {sink} append=true location={}",
                input.display(),
                out.display()
            ),
            Duration::from_secs(20),
        );
        assert!(
            log.errors.is_empty() && log.eos.is_some(),
            "{sink}: {}",
            log.error_text()
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"hello\nworld\n", "{sink}");
    }
}

/// A live recording through a muxer is never dropped from by default: `auto` drops only raw
/// frames of a live upstream (a dropped piece of a muxed stream corrupts the file). Every frame
/// is in the file.
#[test]
fn a_live_muxed_recording_is_lossless_by_default() {
    init();
    let dir = scratch("sink-live-muxed");
    let out = dir.join("live.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc is-live=true num-buffers=60 ! video/x-raw,width=160,height=128,framerate=30/1 \
             ! vigilsvtav1enc preset=12 ! av1parse ! matroskamux ! vigilsink name=s location={}",
            out.display()
        ),
        Duration::from_secs(60),
    );
    assert!(
        log.errors.is_empty() && log.eos.is_some(),
        "{}",
        log.error_text()
    );
    assert!(
        log.warnings.is_empty(),
        "{:?}",
        log.warnings.iter().map(|w| &w.text).collect::<Vec<_>>()
    );
    let (ok, frames, err) = run_tool(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&out),
        Duration::from_secs(30),
    );
    assert!(ok && err.trim().is_empty(), "ffprobe: {err}");
    assert_eq!(frames.trim(), "60", "every frame recorded");
}
