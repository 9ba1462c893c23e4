// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc` under repeated state changes and several instances at once. A test binary of
//! its own: it counts the threads and the heap of the whole process, which other tests running
//! beside it would disturb.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const FPS: i32 = 25;

#[test]
fn two_hundred_state_cycles_and_four_encoders_at_once() {
    init();
    let p = pipeline(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=128,framerate={FPS}/1 ! vigilsvtav1enc name=enc preset=13 ! fakesink"
    ));
    // Each cycle stops with frames inside the encoder (random access holds dozens).
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t2 = taken.clone();
    p.by_name("enc")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            t2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let cycle = |p: &gst::Pipeline| {
        taken.store(0, std::sync::atomic::Ordering::SeqCst);
        p.set_state(gst::State::Playing).unwrap();
        let t = Instant::now();
        while taken.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "no frame reached the encoder"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        stop_within(p, Duration::from_secs(2));
    };
    for _ in 0..20 {
        cycle(&p);
    }
    let (heap0, rss0, threads0) = (heap_in_use(), rss_kib(), thread_count());
    for _ in 0..180 {
        cycle(&p);
    }
    // Joined threads may take a moment to be gone from /proc.
    let deadline = Instant::now() + Duration::from_secs(2);
    while thread_count() > threads0 + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (heap1, rss1, threads1) = (heap_in_use(), rss_kib(), thread_count());
    assert!(
        threads1 <= threads0 + 2,
        "threads leak: {threads0} -> {threads1}"
    );
    // The heap in use must stay flat (8 MiB of slack over 180 cycles: under 50 KiB a cycle).
    // The resident size is printed only: glibc's per-thread arenas keep freed memory, and
    // every cycle starts SVT-AV1's thread pool anew.
    println!("heap {heap0} -> {heap1} bytes, resident {rss0} -> {rss1} KiB");
    assert!(
        heap1 < heap0 + 8 * 1024 * 1024,
        "heap grows: {heap0} -> {heap1} bytes over 180 cycles"
    );

    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let p = pipeline(&format!(
                    "videotestsrc num-buffers=60 pattern={i} ! video/x-raw,width=320,height=240,framerate={FPS}/1 ! vigilsvtav1enc preset=12 ! fakesink name=sink"
                ));
                let log = run(&p, Duration::from_secs(60), Duration::from_millis(100));
                stop_within(&p, Duration::from_secs(2));
                log
            })
        })
        .collect();
    for h in handles {
        let log = h.join().unwrap();
        assert!(
            log.errors.is_empty() && log.eos.is_some(),
            "{}",
            log.error_text()
        );
    }
}
