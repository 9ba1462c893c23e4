// SPDX-License-Identifier: MPL-2.0
//! Unit tests of the worker and watchdog with a small test codec that doubles numbers, holds
//! a configurable look-ahead, and can wedge, panic or crawl in any phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Misbehave {
    None,
    Wedge,
    Panic,
    Crawl(Duration),
}

struct Doubler {
    held: Vec<u32>,
    lookahead: usize,
    streaming: Misbehave,
    drain: Misbehave,
    flush: Misbehave,
    teardown: Misbehave,
    dropped: Arc<AtomicU64>,
}

fn act(m: Misbehave) {
    match m {
        Misbehave::None => {}
        Misbehave::Wedge => loop {
            std::thread::park();
        },
        Misbehave::Panic => panic!("test codec panics"),
        Misbehave::Crawl(d) => std::thread::sleep(d),
    }
}

impl Drop for Doubler {
    fn drop(&mut self) {
        act(self.teardown);
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Codec for Doubler {
    type Input = u32;
    type Output = u32;

    fn push(&mut self, input: u32, out: &mut Emitter<'_, u32>) -> Result<(), CodecError> {
        act(self.streaming);
        if input == 999 {
            return Err(CodecError::new(
                CodecErrorKind::Encode,
                "999 is not encodable",
            ));
        }
        self.held.push(input);
        if self.held.len() > self.lookahead {
            out.emit(self.held.remove(0) * 2);
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Emitter<'_, u32>) -> Result<(), CodecError> {
        for v in std::mem::take(&mut self.held) {
            act(self.drain);
            out.emit(v * 2);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CodecError> {
        act(self.flush);
        self.held.clear();
        Ok(())
    }
}

struct Setup {
    lookahead: usize,
    streaming: Misbehave,
    drain: Misbehave,
    flush: Misbehave,
    teardown: Misbehave,
    timeout_ms: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            lookahead: 3,
            streaming: Misbehave::None,
            drain: Misbehave::None,
            flush: Misbehave::None,
            teardown: Misbehave::None,
            timeout_ms: 300,
        }
    }
}

fn spawn(s: Setup) -> (WorkerHandle<Doubler, &'static str>, Arc<AtomicU64>) {
    let dropped = Arc::new(AtomicU64::new(0));
    let d = dropped.clone();
    let mut cfg = WorkerConfig::new("vigil-test", s.timeout_ms);
    cfg.input_capacity = 2;
    // With the watchdog disabled (timeout 0), a stop is bounded by this instead of 10 s.
    cfg.shutdown_fallback = Duration::from_millis(400);
    let mut h = WorkerHandle::spawn(cfg, move |_| {
        Ok((
            Doubler {
                held: Vec::new(),
                lookahead: s.lookahead,
                streaming: s.streaming,
                drain: s.drain,
                flush: s.flush,
                teardown: s.teardown,
                dropped: d,
            },
            "started",
        ))
    })
    .unwrap();
    assert_eq!(h.wait_started().unwrap(), "started");
    (h, dropped)
}

fn collect(h: &mut WorkerHandle<Doubler, &'static str>, out: &mut Vec<u32>) {
    while let Some(v) = h.try_output().unwrap() {
        out.push(v);
    }
}

fn expect_failed(e: WorkerError) -> RunOutcome {
    match e {
        WorkerError::Failed(o) => o,
        other => panic!("expected a watchdog failure, got {other:?}"),
    }
}

#[test]
fn clean_run_delivers_every_output_in_order_and_frees_the_codec() {
    let (mut h, dropped) = spawn(Setup::default());
    let mut out = Vec::new();
    for i in 0..20 {
        h.submit(i).unwrap();
        collect(&mut h, &mut out);
    }
    let outcome = h
        .drain(|v| {
            out.push(v);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(h.counters(), (20, 20));
    assert_eq!(h.shutdown(), RunOutcome::Completed);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "codec dropped exactly once"
    );
}

#[test]
fn lookahead_held_while_waiting_for_input_is_not_idle() {
    let (mut h, _) = spawn(Setup {
        lookahead: 10,
        ..Default::default()
    });
    for i in 0..5 {
        h.submit(i).unwrap();
    }
    // Longer than the timeout with frames held and no input pending.
    std::thread::sleep(Duration::from_millis(700));
    h.wait_idle(Phase::Streaming).unwrap();
    assert!(h.try_output().unwrap().is_none());
    let mut out = Vec::new();
    let outcome = h
        .drain(|v| {
            out.push(v);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(out.len(), 5);
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

/// Panics print (and may symbolise a backtrace), which can take long on a loaded machine:
/// they get a generous timeout, wedges a short one.
fn timeout_for(m: Misbehave) -> u32 {
    if m == Misbehave::Panic { 3000 } else { 300 }
}

fn wedge_or_panic_while_streaming(m: Misbehave, reason: &str) {
    let (mut h, dropped) = spawn(Setup {
        streaming: m,
        timeout_ms: timeout_for(m),
        ..Default::default()
    });
    let t = Instant::now();
    let mut err = None;
    for i in 0..10 {
        if let Err(e) = h.submit(i) {
            err = Some(e);
            break;
        }
    }
    let outcome = expect_failed(err.expect("a wedged or panicked worker must fail submit"));
    assert_eq!(outcome.reason(), Some(reason));
    assert_eq!(outcome.failure().unwrap().phase, Phase::Streaming);
    assert!(t.elapsed() < Duration::from_millis(u64::from(timeout_for(m)) + 500));
    // The failure is reported once; later calls say it was already reported.
    assert!(matches!(h.submit(1), Err(WorkerError::AlreadyFailed)));
    let t = Instant::now();
    assert_eq!(h.shutdown(), RunOutcome::Completed);
    assert!(t.elapsed() < Duration::from_millis(100));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "a failed codec is leaked, not freed"
    );
}

#[test]
fn wedge_while_streaming_is_abandoned_within_the_timeout() {
    wedge_or_panic_while_streaming(Misbehave::Wedge, "abandoned");
}

#[test]
fn panic_while_streaming_is_a_failure() {
    wedge_or_panic_while_streaming(Misbehave::Panic, "panicked");
}

fn wedge_or_panic_at_drain(m: Misbehave, reason: &str) {
    let (mut h, dropped) = spawn(Setup {
        drain: m,
        timeout_ms: timeout_for(m),
        ..Default::default()
    });
    for i in 0..6 {
        h.submit(i).unwrap();
    }
    let t = Instant::now();
    let outcome = h.drain(|_| Ok::<_, ()>(())).unwrap().unwrap();
    assert_eq!(outcome.reason(), Some(reason));
    let f = outcome.failure().unwrap();
    assert_eq!(f.phase, Phase::Drain);
    assert_eq!(f.frames_in, 6);
    assert!(t.elapsed() < Duration::from_millis(u64::from(timeout_for(m)) + 500));
    if reason == "abandoned" {
        assert!(f.idle >= Duration::from_millis(300));
    }
    assert_eq!(h.shutdown(), RunOutcome::Completed);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
}

#[test]
fn wedge_at_drain_is_abandoned() {
    wedge_or_panic_at_drain(Misbehave::Wedge, "abandoned");
}

#[test]
fn panic_at_drain_is_a_failure() {
    wedge_or_panic_at_drain(Misbehave::Panic, "panicked");
}

fn wedge_or_panic_at_flush(m: Misbehave, reason: &str) {
    let (mut h, _) = spawn(Setup {
        flush: m,
        timeout_ms: timeout_for(m),
        ..Default::default()
    });
    h.submit(1).unwrap();
    let outcome = h.flush().unwrap();
    assert_eq!(outcome.reason(), Some(reason));
    assert_eq!(outcome.failure().unwrap().phase, Phase::Flush);
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[test]
fn wedge_at_flush_is_abandoned() {
    wedge_or_panic_at_flush(Misbehave::Wedge, "abandoned");
}

#[test]
fn panic_at_flush_is_a_failure() {
    wedge_or_panic_at_flush(Misbehave::Panic, "panicked");
}

#[test]
fn slow_but_progressing_codec_does_not_trip() {
    // Each input takes 60 % of the timeout; the whole run takes many timeouts.
    let (mut h, _) = spawn(Setup {
        streaming: Misbehave::Crawl(Duration::from_millis(180)),
        drain: Misbehave::Crawl(Duration::from_millis(180)),
        ..Default::default()
    });
    let mut out = Vec::new();
    for i in 0..8 {
        h.submit(i).unwrap();
        collect(&mut h, &mut out);
    }
    let outcome = h
        .drain(|v| {
            out.push(v);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(out.len(), 8);
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[test]
fn flush_discards_held_and_queued_work() {
    let (mut h, _) = spawn(Setup::default());
    for i in 0..3 {
        h.submit(i).unwrap();
    }
    assert_eq!(h.flush().unwrap(), RunOutcome::Completed);
    let mut out = Vec::new();
    let outcome = h
        .drain(|v| {
            out.push(v);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert!(
        out.is_empty(),
        "nothing from before the flush may come out: {out:?}"
    );
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[test]
fn codec_error_is_an_ordinary_error_not_a_watchdog_event() {
    let (mut h, _) = spawn(Setup::default());
    h.submit(999).unwrap();
    let e = h.wait_idle(Phase::Streaming).unwrap_err();
    match e {
        WorkerError::Codec(c) => assert!(c.message.contains("999")),
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[test]
fn shutdown_of_a_wedged_worker_returns_within_the_timeout() {
    let (mut h, _) = spawn(Setup {
        streaming: Misbehave::Wedge,
        ..Default::default()
    });
    h.submit(1).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let outcome = h.shutdown();
    assert_eq!(outcome.reason(), Some("abandoned"));
    assert_eq!(outcome.failure().unwrap().phase, Phase::Shutdown);
    assert!(t.elapsed() < Duration::from_millis(300 + 300));
}

/// With the watchdog disabled, the waits of a stop are still bounded (by the fallback): a
/// settle (a sink's PAUSED to READY) and a shutdown of a wedged worker both return, abandoned
/// with phase `shutdown`; found by a user's `watchdog-timeout=0` on a FIFO nobody reads.
#[test]
fn stops_are_bounded_with_the_watchdog_disabled() {
    for settle_first in [true, false] {
        let (mut h, _) = spawn(Setup {
            streaming: Misbehave::Wedge,
            timeout_ms: 0,
            ..Default::default()
        });
        h.submit(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        let outcome = if settle_first {
            h.settle()
        } else {
            h.shutdown()
        };
        assert_eq!(
            outcome.reason(),
            Some("abandoned"),
            "settle first: {settle_first}"
        );
        assert_eq!(outcome.failure().unwrap().phase, Phase::Shutdown);
        assert!(t.elapsed() >= Duration::from_millis(400 - 60));
        assert!(t.elapsed() < Duration::from_millis(400 + 400));
    }
}

/// A codec whose teardown (its destructor, a library's deinit) blocks: the shutdown is still
/// bounded, and says so with phase `shutdown`.
#[test]
fn shutdown_whose_teardown_wedges_is_abandoned_within_the_timeout() {
    for idle_first in [false, true] {
        let (mut h, dropped) = spawn(Setup {
            teardown: Misbehave::Wedge,
            ..Default::default()
        });
        if !idle_first {
            h.submit(1).unwrap();
            h.wait_idle(Phase::Streaming).unwrap();
        }
        let t = Instant::now();
        let outcome = h.shutdown();
        assert_eq!(outcome.reason(), Some("abandoned"));
        assert_eq!(outcome.failure().unwrap().phase, Phase::Shutdown);
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_millis(300 + 300));
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
    }
}

/// A teardown that progresses but takes longer than the timeout is abandoned at the timeout:
/// the bound of a stop is absolute.
#[test]
fn shutdown_bound_is_absolute_even_while_the_teardown_progresses() {
    let (h, _) = spawn(Setup {
        teardown: Misbehave::Crawl(Duration::from_millis(900)),
        ..Default::default()
    });
    let t = Instant::now();
    let outcome = h.shutdown();
    assert_eq!(outcome.reason(), Some("abandoned"));
    assert!(t.elapsed() < Duration::from_millis(300 + 300));
}

/// A clean stop joins the worker: no thread of it is left behind, also after a codec error
/// and after a panic.
#[test]
fn completed_shutdown_leaves_no_thread_behind() {
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == name)
            .count()
    }
    let name = "vigil-join-test";
    for case in 0..3 {
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        // A generous timeout: a panic runs the panic hook (a backtrace, slow on a loaded
        // machine), which must not turn into an abandonment here.
        let cfg = WorkerConfig::new(name, 10_000);
        let mut h: WorkerHandle<Doubler, ()> = WorkerHandle::spawn(cfg, move |_| {
            Ok((
                Doubler {
                    held: Vec::new(),
                    lookahead: 0,
                    streaming: if case == 2 {
                        Misbehave::Panic
                    } else {
                        Misbehave::None
                    },
                    drain: Misbehave::None,
                    flush: Misbehave::None,
                    teardown: Misbehave::Crawl(Duration::from_millis(50)),
                    dropped: d,
                },
                (),
            ))
        })
        .unwrap();
        h.wait_started().unwrap();
        match case {
            0 => h.submit(1).unwrap(),
            1 => {
                h.submit(999).unwrap();
                assert!(matches!(
                    h.wait_idle(Phase::Streaming),
                    Err(WorkerError::Codec(_))
                ));
            }
            _ => {
                h.submit(1).unwrap();
                let e = h.wait_idle(Phase::Streaming).unwrap_err();
                assert_eq!(expect_failed(e).reason(), Some("panicked"));
            }
        }
        assert_eq!(h.shutdown(), RunOutcome::Completed, "case {case}");
        assert_eq!(
            threads_named(name),
            0,
            "case {case}: the worker thread is left"
        );
        if case < 2 {
            assert_eq!(dropped.load(Ordering::SeqCst), 1, "case {case}");
        }
    }
}

#[test]
fn interrupt_unblocks_a_full_queue_wait() {
    let (mut h, _) = spawn(Setup {
        streaming: Misbehave::Crawl(Duration::from_millis(200)),
        timeout_ms: 0,
        ..Default::default()
    });
    let flag = h.interrupt_flag();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let t = Instant::now();
    let mut result = Ok(());
    for i in 0..10 {
        result = h.submit(i);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(WorkerError::Interrupted)));
    assert!(t.elapsed() < Duration::from_millis(1000));
    h.resume();
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[test]
fn factory_panic_and_error_are_reported() {
    let cfg = WorkerConfig::new("vigil-test", timeout_for(Misbehave::Panic));
    let mut h = WorkerHandle::<Doubler, ()>::spawn(cfg.clone(), |_| panic!("init panics")).unwrap();
    let outcome = expect_failed(h.wait_started().unwrap_err());
    assert_eq!(outcome.reason(), Some("panicked"));
    assert_eq!(h.shutdown(), RunOutcome::Completed);

    let mut h = WorkerHandle::<Doubler, ()>::spawn(cfg.clone(), |_| {
        Err(CodecError::new(
            CodecErrorKind::Settings,
            "preset 99 is out of range",
        ))
    })
    .unwrap();
    assert!(matches!(h.wait_started(), Err(WorkerError::Codec(_))));
    assert_eq!(h.shutdown(), RunOutcome::Completed);

    let mut h = WorkerHandle::<Doubler, ()>::spawn(cfg, |_| {
        loop {
            std::thread::park();
        }
    })
    .unwrap();
    let outcome = expect_failed(h.wait_started().unwrap_err());
    assert_eq!(outcome.reason(), Some("abandoned"));
}

#[test]
fn activity_probe_keeps_a_busy_library_alive() {
    struct Counter(Arc<AtomicU64>);
    impl ActivityProbe for Counter {
        fn sample(&self) -> Option<u64> {
            Some(self.0.load(Ordering::SeqCst))
        }
    }
    let ticks = Arc::new(AtomicU64::new(0));
    let t2 = ticks.clone();
    let dropped = Arc::new(AtomicU64::new(0));
    let mut cfg = WorkerConfig::new("vigil-test", 200);
    cfg.input_capacity = 1;
    let d = dropped.clone();
    let mut h = WorkerHandle::spawn(cfg, move |ctx| {
        ctx.set_activity_probe(Box::new(Counter(t2)));
        Ok((
            Doubler {
                held: Vec::new(),
                lookahead: 0,
                streaming: Misbehave::Crawl(Duration::from_millis(700)),
                drain: Misbehave::None,
                flush: Misbehave::None,
                teardown: Misbehave::None,
                dropped: d,
            },
            (),
        ))
    })
    .unwrap();
    h.wait_started().unwrap();
    // "Library threads" keep working while each push takes 3.5x the timeout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let busy = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            ticks.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    for i in 0..3 {
        h.submit(i).unwrap();
    }
    h.wait_idle(Phase::Streaming).unwrap();
    stop.store(true, Ordering::SeqCst);
    busy.join().unwrap();
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

#[cfg(feature = "fault-injection")]
#[test]
fn fault_plan_wedges_the_real_worker_loop() {
    let mut cfg = WorkerConfig::new("vigil-test", 200);
    cfg.fault = Some(fault::FaultPlan::parse("wedge:drain").unwrap());
    let dropped = Arc::new(AtomicU64::new(0));
    let d = dropped.clone();
    let mut h = WorkerHandle::spawn(cfg, move |_| {
        Ok((
            Doubler {
                held: Vec::new(),
                lookahead: 1,
                streaming: Misbehave::None,
                drain: Misbehave::None,
                flush: Misbehave::None,
                teardown: Misbehave::None,
                dropped: d,
            },
            (),
        ))
    })
    .unwrap();
    h.wait_started().unwrap();
    h.submit(1).unwrap();
    let outcome = h.drain(|_| Ok::<_, ()>(())).unwrap().unwrap();
    assert_eq!(outcome.reason(), Some("abandoned"));
    assert_eq!(outcome.failure().unwrap().phase, Phase::Drain);
}

#[test]
fn try_submit_never_waits_and_still_catches_a_wedge() {
    let (mut h, _) = spawn(Setup {
        streaming: Misbehave::Wedge,
        ..Default::default()
    });
    let t = Instant::now();
    let mut refused = 0;
    let mut failure = None;
    while t.elapsed() < Duration::from_secs(2) {
        match h.try_submit(1) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => refused += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(refused > 0, "a full queue gives the input back");
    let outcome = expect_failed(failure.expect("the wedge is caught without waiting"));
    let f = outcome.failure().unwrap();
    assert_eq!(outcome.reason(), Some("abandoned"));
    // Two queued and the one the worker is stuck on.
    assert_eq!(f.undelivered, 3);
    assert!(t.elapsed() < Duration::from_millis(300 + 200));
}

#[test]
fn drop_oldest_removes_the_head_of_the_queue() {
    let (mut h, _) = spawn(Setup {
        streaming: Misbehave::Crawl(Duration::from_millis(100)),
        timeout_ms: 0,
        ..Default::default()
    });
    h.submit(1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    h.submit(2).unwrap();
    h.submit(3).unwrap();
    assert_eq!(h.drop_oldest(), Some(2));
    assert_eq!(h.queued(), 1);
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}

/// A flush while the worker drains into a full output queue that nobody reads (the streaming
/// thread stopped collecting: a seek interrupted its drain) completes at once: what the worker
/// still emits is flushed away instead of waiting for room ahead of the flush (it waited until
/// the watchdog abandoned it: a false ERROR on a clean seek).
#[test]
fn flush_completes_while_the_worker_drains_into_a_full_queue() {
    let (mut h, _) = spawn(Setup {
        lookahead: 1000,
        timeout_ms: 500,
        ..Default::default()
    });
    for i in 0..200 {
        h.submit(i).unwrap();
    }
    // The streaming thread takes one output of the drain, then stops reading.
    let mut taken = 0;
    let r = h.drain(|_| {
        taken += 1;
        Err::<(), _>("the streaming thread stopped reading")
    });
    assert!(r.is_err(), "the drain ended early");
    let t = Instant::now();
    assert_eq!(h.flush().unwrap(), RunOutcome::Completed);
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "flush took {:?}",
        t.elapsed()
    );
    // Nothing from before the flush comes out afterwards, and the worker goes on.
    let mut out = Vec::new();
    collect(&mut h, &mut out);
    assert!(out.is_empty(), "{out:?}");
    h.submit(7).unwrap();
    let mut after = Vec::new();
    let outcome = h
        .drain(|v| {
            after.push(v);
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(after, vec![14]);
    assert_eq!(h.shutdown(), RunOutcome::Completed);
}
