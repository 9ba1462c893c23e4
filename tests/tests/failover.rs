// SPDX-License-Identifier: MPL-2.0
//! `vigilfailoversrc` through the registry, with real sources on loopback: `file://` inputs
//! generated here, an HTTP server in the test that serves a real file and can stall, stay
//! silent or cut the connection, a missing file and an unknown URI scheme. Every input is a
//! solid colour, so each output frame says where it came from (its first luma byte: white,
//! red, blue, or black filler), and every test checks that the output timestamps are exactly
//! one frame apart from start to end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

const FPS: u64 = 30;
const STALL_MS: u64 = 700;
/// Output frame period in ns (30/1).
const PERIOD: u64 = 1_000_000_000 / FPS;

/// Which input an output frame came from, by its first luma byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    White,
    Red,
    Blue,
    Black,
    Other(u8),
}

fn colour(y: u8) -> Colour {
    match y {
        225..=255 => Colour::White,
        70..=95 => Colour::Red,
        30..=50 => Colour::Blue,
        0..=24 => Colour::Black,
        v => Colour::Other(v),
    }
}

/// A solid-colour, streamable Matroska file (MJPEG, 160x120, 30 fps) of `secs` seconds,
/// made once per process and colour.
fn media(pattern: &str, secs: u32) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| scratch("failover-media"));
    let path = dir.join(format!("{pattern}-{secs}.mkv"));
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    if !path.exists() {
        let p = pipeline(&format!(
            "videotestsrc pattern={pattern} num-buffers={} \
             ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc \
             ! matroskamux streamable=true ! filesink location={}",
            secs * 30,
            path.display()
        ));
        let log = run(&p, Duration::from_secs(30), Duration::ZERO);
        stop_within(&p, Duration::from_secs(5));
        assert!(log.eos.is_some(), "media: {}", log.error_text());
    }
    path
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// How the test HTTP server answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Http {
    /// The whole file, at about twice real time.
    Serve,
    /// The first bytes, then nothing, with the connection held open.
    StallAfter(usize),
    /// Accept and read the request, then send nothing.
    Silent,
    /// Announce the full length, send the first bytes, then close.
    CutAfter(usize),
}

/// An HTTP server on 127.0.0.1 serving one file, whose behaviour the test changes at will.
struct HttpServer {
    uri: String,
    mode: Arc<Mutex<Http>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    fn start(file: &Path, mode: Http, secs: u32) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let data = Arc::new(std::fs::read(file).unwrap());
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        let rate = (data.len() / secs as usize * 2).max(1);
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (m, s, d) = (m.clone(), s.clone(), data.clone());
                        std::thread::spawn(move || serve(conn, &m, &s, &d, rate));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            uri: format!("http://127.0.0.1:{port}/media.mkv"),
            mode,
            stop,
        }
    }

    fn set(&self, mode: Http) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(mut conn: TcpStream, mode: &Mutex<Http>, stop: &AtomicBool, data: &[u8], rate: usize) {
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut req = [0u8; 4096];
    let _ = conn.read(&mut req);
    let m = *mode.lock().unwrap();
    let hold = |stop: &AtomicBool| {
        let end = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if m == Http::Silent {
        hold(stop);
        return;
    }
    let header = match m {
        Http::CutAfter(_) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: video/x-matroska\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        ),
        _ => "HTTP/1.1 200 OK\r\nContent-Type: video/x-matroska\r\nConnection: close\r\n\r\n"
            .to_string(),
    };
    if conn.write_all(header.as_bytes()).is_err() {
        return;
    }
    let limit = match m {
        Http::StallAfter(n) | Http::CutAfter(n) => n.min(data.len()),
        _ => data.len(),
    };
    let chunk = (rate / 50).max(512);
    let mut sent = 0;
    while sent < limit && !stop.load(Ordering::SeqCst) {
        let n = chunk.min(limit - sent);
        if conn.write_all(&data[sent..sent + n]).is_err() {
            return;
        }
        sent += n;
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Http::StallAfter(_) = m {
        hold(stop);
    }
}

/// The tests run one at a time: their timings (a stall-timeout of a few hundred ms) hold on
/// a loaded two-core machine only when they do not compete with each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `vigilfailoversrc ! fakesink` with the output frames recorded.
struct Rig {
    p: gst::Pipeline,
    f: gst::Element,
    /// (pts, first luma byte) of each output video buffer.
    frames: Arc<Mutex<Vec<(u64, u8)>>>,
    start: Instant,
    /// (time, structure) of every vigil-failover-switched message.
    switches: Vec<(Duration, gst::Structure)>,
    /// (time, status) of every status change, from the notify signal.
    statuses: Arc<Mutex<Vec<(Duration, String)>>>,
    errors: Vec<String>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.p.set_state(gst::State::Null);
    }
}

/// An input of a test rig: a URI, or an application source element.
enum In {
    Uri(String),
    Element(gst::Element),
}

impl Rig {
    fn new(uris: &[&str], props: &str) -> Self {
        let inputs = uris.iter().map(|u| In::Uri(u.to_string())).collect();
        Self::build(inputs, props, false)
    }

    /// With `enable-audio=true` and the audio pad linked to a fakesink too.
    fn with_audio(inputs: Vec<In>, props: &str) -> Self {
        Self::build(inputs, props, true)
    }

    fn build(inputs: Vec<In>, props: &str, audio: bool) -> Self {
        init();
        let p = if audio {
            pipeline(&format!(
                "vigilfailoversrc name=f enable-audio=true \
                 video-caps=video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
                 stall-timeout={STALL_MS} retry-backoff-min=200 retry-backoff-max=1000 {props} \
                 f.video ! fakesink name=out sync=false f.audio ! fakesink sync=false"
            ))
        } else {
            pipeline(&format!(
                "vigilfailoversrc name=f enable-audio=false \
                 video-caps=video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
                 stall-timeout={STALL_MS} retry-backoff-min=200 retry-backoff-max=1000 {props} \
                 ! fakesink name=out sync=false"
            ))
        };
        let f = p.by_name("f").unwrap();
        for input in inputs {
            match input {
                In::Uri(u) => assert!(f.emit_by_name::<bool>("add-uri", &[&u]), "add-uri {u}"),
                In::Element(e) => {
                    assert!(f.emit_by_name::<bool>("add-source", &[&e]), "add-source")
                }
            }
        }
        let frames = Arc::new(Mutex::new(Vec::new()));
        let fr = frames.clone();
        p.by_name("out")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer() {
                    let y = b.map_readable().map(|m| m[0]).unwrap_or(0);
                    fr.lock()
                        .unwrap()
                        .push((b.pts().map(|t| t.nseconds()).unwrap_or(0), y));
                }
                gst::PadProbeReturn::Ok
            });
        let start = Instant::now();
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let st = statuses.clone();
        f.connect_notify(Some("status"), move |f, _| {
            st.lock().unwrap().push((start.elapsed(), status_nick(f)));
        });
        p.set_state(gst::State::Playing).unwrap();
        Self {
            p,
            f,
            frames,
            start,
            switches: Vec::new(),
            statuses,
            errors: Vec::new(),
        }
    }

    fn status(&self) -> String {
        self.statistics().get::<String>("status").unwrap()
    }

    fn statistics(&self) -> gst::Structure {
        self.f.property::<gst::Structure>("statistics")
    }

    /// Pumps the bus for up to `limit`, calling `check` every 20 ms; returns as soon as
    /// `until` holds (true) or at the limit (false).
    fn pump(
        &mut self,
        limit: Duration,
        mut check: impl FnMut(&Rig),
        until: impl Fn(&Rig) -> bool,
    ) -> bool {
        let bus = self.p.bus().unwrap();
        let end = Instant::now() + limit;
        while Instant::now() < end {
            while let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) {
                match msg.view() {
                    gst::MessageView::Element(e) => {
                        let s = e.structure().unwrap();
                        if s.name() == "vigil-failover-switched" {
                            self.switches.push((self.start.elapsed(), s.to_owned()));
                        }
                    }
                    gst::MessageView::Error(e) => self.errors.push(format!(
                        "{}: {} {:?}",
                        msg.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default(),
                        e.error(),
                        e.debug()
                    )),
                    _ => {}
                }
                if Instant::now() >= end {
                    break;
                }
            }
            check(self);
            if until(self) {
                return true;
            }
        }
        false
    }

    fn wait(&mut self, limit: Duration, until: impl Fn(&Rig) -> bool) -> bool {
        self.pump(limit, |_| {}, until)
    }

    fn switched_to(&self, to: &str) -> Option<&(Duration, gst::Structure)> {
        self.switched_to_since(to, 0)
    }

    /// The first switch to `to` among the switches from the `since`-th on (the backup may have
    /// been on air at the start, before the primary delivered).
    fn switched_to_since(&self, to: &str, since: usize) -> Option<&(Duration, gst::Structure)> {
        self.switches
            .iter()
            .skip(since)
            .find(|(_, s)| s.get::<&str>("to").unwrap() == to)
    }

    /// Stops the pipeline (bounded) and checks the whole output timeline.
    fn finish(&self) -> Vec<(u64, u8)> {
        stop_within(&self.p, Duration::from_secs(8));
        assert!(
            self.errors.is_empty(),
            "ERROR on the bus: {:?}",
            self.errors
        );
        let frames = self.frames.lock().unwrap().clone();
        assert_continuous(&frames);
        frames
    }
}

/// The nick of the `status` property.
fn status_nick(f: &gst::Element) -> String {
    let v = f.property_value("status");
    gst::glib::EnumValue::from_value(&v)
        .map(|(_, e)| e.nick().to_string())
        .unwrap_or_default()
}

/// Output timestamps strictly increasing, exactly one frame apart (to the nanosecond rounding
/// of 1/30 s).
fn assert_continuous(frames: &[(u64, u8)]) {
    assert!(frames.len() > 10, "only {} output frames", frames.len());
    for w in frames.windows(2) {
        let d = w[1].0 as i64 - w[0].0 as i64;
        assert!(
            d > 0 && (d - PERIOD as i64).abs() <= 1,
            "output pts {} then {}: step {d} ns, not one frame",
            w[0].0,
            w[1].0
        );
    }
}

/// The colours of the output in order, with repeats collapsed.
fn runs(frames: &[(u64, u8)]) -> Vec<Colour> {
    let mut out: Vec<Colour> = Vec::new();
    for (_, y) in frames {
        let c = colour(*y);
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out
}

fn reason(s: &gst::Structure) -> String {
    s.get::<String>("reason").unwrap()
}

#[test]
fn file_inputs_primary_on_air_and_healthy() {
    let _serial = serial();
    let white = file_uri(&media("white", 20));
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(&[&white, &red], "");
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"));
    rig.wait(Duration::from_secs(1), |_| false);
    let stats = rig.statistics();
    assert_eq!(stats.get::<String>("active-input").unwrap(), white);
    assert_eq!(
        rig.f.property::<Option<String>>("active-input").as_deref(),
        Some(white.as_str())
    );
    // The first input that flows goes on air at once (`initial`); both are local files, so the
    // backup may flow first, and then the primary takes over as soon as it flows (`preferred`).
    let (_, first) = &rig.switches[0];
    assert_eq!(reason(first), "initial", "{:?}", rig.switches);
    if first.get::<&str>("to").unwrap() == red {
        let (_, second) = &rig.switches[1];
        assert_eq!(
            second.get::<&str>("to").unwrap(),
            white,
            "{:?}",
            rig.switches
        );
        assert_eq!(reason(second), "preferred", "{:?}", rig.switches);
    }
    let frames = rig.finish();
    let r = runs(&frames);
    let w = r
        .iter()
        .position(|c| *c == Colour::White)
        .unwrap_or_else(|| panic!("the primary never on air: {r:?}"));
    assert!(
        !r[w..].contains(&Colour::Red),
        "the backup never on air once the primary is: {r:?}"
    );
}

#[test]
fn primary_error_mid_stream_switches_to_warm_backup_within_a_frame() {
    let _serial = serial();
    let white = media("white", 20);
    let size = std::fs::metadata(&white).unwrap().len() as usize;
    // The server announces the whole file and cuts the connection a third of the way in.
    let http = HttpServer::start(&white, Http::CutAfter(size / 3), 20);
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(&[&http.uri, &red], "failback-delay=-1");
    assert!(
        rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    let n = rig.switches.len();
    assert!(
        rig.wait(Duration::from_secs(12), |r| r
            .switched_to_since(&red, n)
            .is_some()),
        "no switch to the backup: {:?}",
        rig.statistics()
    );
    let why = reason(&rig.switched_to_since(&red, n).unwrap().1);
    assert!(why == "error" || why == "eos", "reason {why}");
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "failover"),
        "{:?}",
        rig.statistics()
    );
    let frames = rig.finish();
    // Warm standby: the backup follows the primary directly, no filler frame between.
    let r = runs(&frames);
    let w = r
        .iter()
        .rposition(|c| *c == Colour::White)
        .expect("primary frames");
    assert_eq!(
        r.get(w + 1),
        Some(&Colour::Red),
        "white then red directly: {r:?}; switches {:?}; statuses {:?}",
        rig.switches,
        rig.statuses.lock().unwrap()
    );
}

#[test]
fn primary_stall_switches_after_stall_timeout_and_is_never_healthy_meanwhile() {
    let _serial = serial();
    let white = media("white", 20);
    let size = std::fs::metadata(&white).unwrap().len() as usize;
    let http = HttpServer::start(&white, Http::StallAfter(size / 4), 20);
    let blue = file_uri(&media("blue", 20));
    let mut rig = Rig::new(&[&http.uri, &blue], "failback-delay=-1");
    assert!(rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"));
    let n = rig.switches.len();
    // While it runs, sample: whenever the status says healthy, the primary delivered data
    // within the flow window (200 ms), plus the sampling period.
    let mut last_primary_data: Option<Instant> = None;
    let switched = rig.pump(
        Duration::from_secs(14),
        |r| {
            let stats = r.statistics();
            let inputs = stats.get::<gst::Array>("inputs").unwrap();
            let primary = inputs[0].get::<gst::Structure>().unwrap();
            let ago = primary.get::<i64>("last-data-ms-ago").unwrap();
            if ago >= 0 {
                last_primary_data = Some(Instant::now() - Duration::from_millis(ago as u64));
            }
            if stats.get::<String>("status").unwrap() == "healthy" {
                assert!(
                    (0..=260).contains(&ago),
                    "status healthy with the primary's last data {ago} ms ago"
                );
            }
        },
        |r| r.switched_to_since(&blue, n).is_some(),
    );
    assert!(switched, "no switch: {:?}", rig.statistics());
    let seen = Instant::now();
    let (_, s) = rig.switched_to_since(&blue, n).unwrap().clone();
    assert_eq!(reason(&s), "stall");
    let silence = seen - last_primary_data.expect("the primary delivered data");
    assert!(
        silence >= Duration::from_millis(STALL_MS - 30)
            && silence <= Duration::from_millis(STALL_MS + 300),
        "switched {silence:?} after the primary's last data (stall-timeout {STALL_MS} ms)"
    );
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "failover"),
        "{:?}",
        rig.statistics()
    );
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(r.ends_with(&[Colour::Blue]), "{r:?}");
}

#[test]
fn primary_silent_at_start_backup_used_and_status_says_failover() {
    let _serial = serial();
    let white = media("white", 20);
    let http = HttpServer::start(&white, Http::Silent, 20);
    let red = file_uri(&media("red", 20));
    // The primary accepts the connection and never answers: the backup goes on air as soon as
    // it flows, without waiting for the primary's start-timeout.
    // A start-timeout far above the file's start-up: the backup on air well before it shows
    // that the output did not wait for the primary, however slow the machine is (the time to
    // the first backup frame itself is a figure of the benchmark).
    const START_MS: u64 = 4000;
    let mut rig = Rig::new(
        &[&http.uri, &red],
        &format!("failback-delay=-1 start-timeout={START_MS}"),
    );
    assert!(rig.wait(Duration::from_secs(5), |r| r.switched_to(&red).is_some()));
    let (at, s) = rig.switched_to(&red).unwrap().clone();
    eprintln!("backup on air {at:?} after PLAYING");
    assert!(
        at < Duration::from_millis(START_MS / 2),
        "backup on air at {at:?}: it flows at once, the output should not wait for the primary"
    );
    assert_eq!(reason(&s), "initial", "{s}");
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "failover"),
        "{:?}",
        rig.statistics()
    );
    // The primary fails at its start-timeout, as a start failure.
    assert!(
        rig.wait(Duration::from_millis(START_MS + 2000), |r| {
            let stats = r.statistics();
            let inputs = stats.get::<gst::Array>("inputs").unwrap();
            let primary = inputs[0].get::<gst::Structure>().unwrap();
            primary
                .get::<String>("last-error")
                .unwrap()
                .contains("start-failure")
        }),
        "{:?}",
        rig.statistics()
    );
    let statuses = rig.statuses.lock().unwrap().clone();
    assert!(
        !statuses.iter().any(|(_, s)| s == "healthy"),
        "healthy without the primary's data: {statuses:?}"
    );
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(!r.contains(&Colour::White), "{r:?}");
}

#[test]
fn failback_after_failback_delay_not_before() {
    let _serial = serial();
    let white = media("white", 20);
    let http = HttpServer::start(&white, Http::Silent, 20);
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(
        &[&http.uri, &red],
        &format!("failback-delay=1500 start-timeout={STALL_MS}"),
    );
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "failover"));
    // The primary has failed its start (a primary that delivers later in its first start
    // takes over at once, as `preferred`): from now on it comes back by failback.
    assert!(
        rig.wait(Duration::from_secs(5), |r| input_stats(r, 0)
            .get::<u64>("failures")
            .unwrap()
            >= 1),
        "{:?}",
        rig.statistics()
    );
    http.set(Http::Serve);
    // The primary comes back on a retry; note when it first delivers data again: between
    // the last poll that saw it inactive and the first that sees it active (polls from this
    // thread can be late on a loaded machine; the two bounds keep the check exact either way).
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let mut not_yet: u64 = now_ms();
    let mut back: Option<u64> = None;
    let done = rig.pump(
        Duration::from_secs(10),
        |r| {
            let stats = r.statistics();
            let inputs = stats.get::<gst::Array>("inputs").unwrap();
            let p = inputs[0].get::<gst::Structure>().unwrap();
            if back.is_none() {
                if p.get::<String>("state").unwrap() == "active" {
                    back = Some(now_ms());
                } else {
                    not_yet = now_ms();
                }
            }
        },
        |r| r.switched_to(&http.uri).is_some(),
    );
    assert!(done, "no failback: {:?}", rig.statistics());
    let back = back.expect("primary active again");
    let s = &rig.switched_to(&http.uri).unwrap().1;
    assert_eq!(reason(s), "failback");
    // When the switch happened, by the element's own clock (the switch history).
    let switched_at = switch_wallclock_ms(&rig, "failback");
    // Not before failback-delay (1500 ms; one 20 ms controller tick of resolution), and not
    // much after it.
    assert!(
        switched_at + 20 >= not_yet + 1500,
        "failback {} ms after the primary was last seen inactive (failback-delay 1500 ms)",
        switched_at.saturating_sub(not_yet)
    );
    assert!(
        switched_at <= back + 2500,
        "failback {} ms after the primary was seen active (failback-delay 1500 ms)",
        switched_at.saturating_sub(back)
    );
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(r.ends_with(&[Colour::Red, Colour::White]), "{r:?}");
}

#[test]
fn all_inputs_down_exhausted_with_continuous_filler_then_recovery() {
    let _serial = serial();
    let dir = scratch("failover-exhausted");
    let missing = file_uri(&dir.join("missing.mkv"));
    // A protocol without a source element is refused when added (failover_config.rs); a
    // second input that fails at run time takes its place here.
    let unknown = file_uri(&dir.join("also-missing.mkv"));
    let mut rig = Rig::new(&[&missing, &unknown], "");
    assert!(
        !rig.f
            .emit_by_name::<bool>("add-uri", &[&"vigilnosuchscheme://nowhere/x"]),
        "an unknown protocol is refused"
    );
    assert!(
        rig.wait(Duration::from_secs(5), |r| r.status() == "exhausted"),
        "{:?}",
        rig.statistics()
    );
    rig.wait(Duration::from_secs(1), |_| false);
    assert_eq!(rig.status(), "exhausted");
    let stats = rig.statistics();
    let inputs = stats.get::<gst::Array>("inputs").unwrap();
    for i in inputs.iter() {
        let i = i.get::<gst::Structure>().unwrap();
        assert!(!i.get::<String>("last-error").unwrap().is_empty(), "{i}");
    }
    assert!(stats.get::<u64>("filler-frames").unwrap() > 20, "{stats}");
    // An input added now brings the output back.
    let blue = file_uri(&media("blue", 20));
    assert!(rig.f.emit_by_name::<bool>("add-uri", &[&blue]));
    assert!(
        !rig.f.emit_by_name::<bool>("add-uri", &[&blue]),
        "an input is never registered twice"
    );
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "failover"));
    assert_eq!(reason(&rig.switched_to(&blue).unwrap().1), "added");
    rig.wait(Duration::from_millis(300), |_| false);
    let frames = rig.finish();
    let r = runs(&frames);
    assert_eq!(r.first(), Some(&Colour::Black), "{r:?}");
    assert_eq!(r.last(), Some(&Colour::Blue), "{r:?}");
}

#[test]
fn inputs_added_and_removed_while_running_including_the_active_one() {
    let _serial = serial();
    let white = file_uri(&media("white", 20));
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(&[&white], "failback-delay=0");
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"));
    assert!(rig.f.emit_by_name::<bool>("add-uri", &[&red]));
    // Remove the input on air once the added one runs and flows (a warm backup).
    assert!(
        rig.wait(Duration::from_secs(5), |r| {
            let stats = r.statistics();
            let inputs = stats.get::<gst::Array>("inputs").unwrap();
            inputs.len() == 2
                && inputs[1]
                    .get::<gst::Structure>()
                    .unwrap()
                    .get::<String>("state")
                    .is_ok_and(|h| h == "active")
        }),
        "the added input never flowed: {:?}",
        rig.statistics()
    );
    assert!(rig.f.emit_by_name::<bool>("remove-uri", &[&white]));
    assert!(!rig.f.emit_by_name::<bool>("remove-uri", &[&white]));
    assert!(rig.wait(Duration::from_secs(3), |r| r.switched_to(&red).is_some()));
    assert_eq!(
        reason(&rig.switched_to(&red).unwrap().1),
        "removed",
        "{:?} {:?}",
        rig.switches,
        rig.statistics()
    );
    rig.wait(Duration::from_millis(300), |_| false);
    // The backup is now the only (so the first, primary) input.
    assert_eq!(rig.status(), "healthy");
    let stats = rig.statistics();
    assert_eq!(
        stats.get::<gst::Array>("inputs").unwrap().len(),
        1,
        "{stats}"
    );
    let frames = rig.finish();
    let r = runs(&frames);
    let w = r.iter().position(|c| *c == Colour::White).unwrap();
    assert_eq!(r.get(w + 1), Some(&Colour::Red), "{r:?}");
}

#[test]
fn manual_switch_to_holds_the_chosen_input() {
    let _serial = serial();
    let white = file_uri(&media("white", 20));
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(&[&white, &red], "failback-delay=0");
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"));
    // Switches from here on (the backup may have gone on air first at the start).
    let n = rig.switches.len();
    assert!(rig.f.emit_by_name::<bool>("switch-to", &[&red]));
    assert!(!rig.f.emit_by_name::<bool>("switch-to", &[&"file:///nope"]));
    assert!(rig.wait(Duration::from_secs(3), |r| {
        r.switched_to_since(&red, n).is_some()
    }));
    assert_eq!(reason(&rig.switched_to_since(&red, n).unwrap().1), "manual");
    rig.wait(Duration::from_secs(1), |_| false);
    assert!(
        !rig.switches.iter().any(|(_, s)| reason(s) == "failback"),
        "no failback while the manual choice is healthy: {:?}",
        rig.switches
    );
    rig.finish();
}

#[test]
fn single_input_degraded_while_retried_then_recovers() {
    let _serial = serial();
    // A 3 s file: it ends, the retries find a silent server, then the server comes back.
    let white = media("white", 3);
    let http = HttpServer::start(&white, Http::Serve, 3);
    let mut rig = Rig::new(&[&http.uri], "");
    assert!(rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"));
    http.set(Http::Silent);
    assert!(
        rig.wait(Duration::from_secs(8), |r| r.status() == "degraded"
            && r.f.property::<Option<String>>("active-input").is_none()),
        "{:?}",
        rig.statistics()
    );
    rig.wait(Duration::from_secs(1), |_| false);
    assert_eq!(rig.status(), "degraded");
    let retries = rig.statistics().get::<gst::Array>("inputs").unwrap()[0]
        .get::<gst::Structure>()
        .unwrap()
        .get::<u64>("retries")
        .unwrap();
    assert!(retries >= 1, "retried while degraded");
    http.set(Http::Serve);
    assert!(
        rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    assert_eq!(
        rig.statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s == "exhausted")
            .count(),
        0
    );
    rig.wait(Duration::from_millis(300), |_| false);
    let stats = rig.statistics();
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(
        r.ends_with(&[Colour::Black, Colour::White]),
        "{r:?} {:?} {stats:?}",
        &frames[frames.len().saturating_sub(5)..]
    );
}

#[test]
fn rapid_add_remove_and_state_changes_never_deadlock_duplicate_or_leak_threads() {
    let _serial = serial();
    init();
    let white = file_uri(&media("white", 20));
    // Warm up GStreamer's own thread pools once, so the baseline is stable.
    {
        let rig = Rig::new(&[&white], "");
        std::thread::sleep(Duration::from_millis(500));
        rig.finish();
    }
    std::thread::sleep(Duration::from_millis(300));
    let baseline = thread_count();
    let p = pipeline(
        "vigilfailoversrc name=f enable-audio=false \
         video-caps=video/x-raw,width=64,height=48,framerate=30/1 \
         stall-timeout=300 retry-backoff-min=10 ! fakesink sync=false",
    );
    let f = p.by_name("f").unwrap();
    let start = Instant::now();
    for i in 0..100 {
        let added = f.emit_by_name::<bool>("add-uri", &[&white]);
        assert!(
            !f.emit_by_name::<bool>("add-uri", &[&white]),
            "the same input registered twice"
        );
        if i % 10 == 0 {
            p.set_state(gst::State::Playing).unwrap();
        }
        if i % 3 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(added || i > 0);
        assert!(f.emit_by_name::<bool>("remove-uri", &[&white]));
        if i % 10 == 5 {
            stop_within(&p, Duration::from_secs(8));
        }
        let n = f
            .property::<gst::Structure>("statistics")
            .get::<gst::Array>("inputs")
            .unwrap()
            .len();
        assert!(n <= 1, "{n} inputs reported for one URI");
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    stop_within(&p, Duration::from_secs(8));
    drop(f);
    drop(p);
    let end = Instant::now() + Duration::from_secs(5);
    while thread_count() > baseline + 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        thread_count() <= baseline + 2,
        "threads: {} before, {} after",
        baseline,
        thread_count()
    );
}

#[test]
fn encoder_pipeline_keeps_running_across_a_failover_and_writes_a_playable_file() {
    let _serial = serial();
    init();
    let dir = scratch("failover-encode");
    let out = dir.join("out.mkv");
    let white = media("white", 2);
    let red = file_uri(&media("red", 20));
    let p = pipeline(&format!(
        "vigilfailoversrc name=f enable-audio=false \
         video-caps=video/x-raw,width=160,height=120,framerate=30/1 \
         stall-timeout={STALL_MS} failback-delay=-1 \
         ! videoconvert ! vigilsvtav1enc preset=12 ! matroskamux ! filesink location={}",
        out.display()
    ));
    let f = p.by_name("f").unwrap();
    f.emit_by_name::<bool>("add-uri", &[&file_uri(&white)]);
    f.emit_by_name::<bool>("add-uri", &[&red]);
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let mut switched = false;
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) {
            match msg.view() {
                gst::MessageView::Error(e) => panic!("ERROR: {} {:?}", e.error(), e.debug()),
                gst::MessageView::Element(e)
                    if e.structure().unwrap().get::<&str>("to").ok() == Some(red.as_str()) =>
                {
                    switched = true
                }
                _ => {}
            }
        }
    }
    assert!(switched, "the 2 s primary ended and the backup took over");
    p.send_event(gst::event::Eos::new());
    let log = run(&p, Duration::from_secs(10), Duration::ZERO);
    stop_within(&p, Duration::from_secs(5));
    assert!(
        log.eos.is_some() && log.errors.is_empty(),
        "{}",
        log.error_text()
    );
    // The file plays back: every frame decodes.
    let check = pipeline(&format!(
        "filesrc location={} ! matroskademux ! av1parse ! fakesink name=s",
        out.display()
    ));
    let n = Arc::new(Mutex::new(0u32));
    let n2 = n.clone();
    check
        .by_name("s")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            *n2.lock().unwrap() += 1;
            gst::PadProbeReturn::Ok
        });
    let log = run(&check, Duration::from_secs(20), Duration::ZERO);
    stop_within(&check, Duration::from_secs(5));
    assert!(log.eos.is_some(), "{}", log.error_text());
    let frames = *n.lock().unwrap();
    assert!(frames >= 120, "{frames} frames in the file for about 5 s");
}

#[test]
fn inspect_is_clean() {
    init();
    let (ok, out, err) = run_tool(
        Command::new("gst-inspect-1.0")
            .arg("vigilfailoversrc")
            .env("GST_PLUGIN_PATH", plugin_dir()),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    assert!(!err.contains("WARN") && !err.contains("CRITICAL"), "{err}");
    for prop in [
        "uris",
        "video-caps",
        "audio-caps",
        "stall-timeout",
        "standby",
        "retry-backoff-min",
        "retry-backoff-max",
        "failback-delay",
        "exhausted-timeout",
        "fill-gaps",
        "status",
        "active-input",
        "statistics",
        "add-uri",
        "remove-uri",
        "switch-to",
        "add-source",
    ] {
        assert!(out.contains(prop), "gst-inspect lacks {prop}");
    }
}

#[test]
fn cold_standby_starts_the_backup_only_when_needed() {
    let _serial = serial();
    let white = file_uri(&media("white", 2));
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::new(&[&white, &red], "standby=cold failback-delay=-1");
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"));
    let stats = rig.statistics();
    let backup = stats.get::<gst::Array>("inputs").unwrap()[1]
        .get::<gst::Structure>()
        .unwrap();
    assert_eq!(backup.get::<String>("state").unwrap(), "idle", "{backup}");
    assert_eq!(backup.get::<u64>("buffers").unwrap(), 0);
    assert!(rig.wait(Duration::from_secs(6), |r| r.switched_to(&red).is_some()));
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "failover"),
        "{:?}",
        rig.statistics()
    );
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(r.ends_with(&[Colour::Red]), "{r:?}");
}

#[test]
fn exhausted_timeout_posts_an_error_naming_it() {
    let _serial = serial();
    init();
    let dir = scratch("failover-exhausted-timeout");
    let missing = file_uri(&dir.join("missing.mkv"));
    let p = pipeline(&format!(
        "vigilfailoversrc uris=\"<{missing}>\" enable-audio=false \
         video-caps=video/x-raw,width=64,height=48,framerate=30/1 stall-timeout={STALL_MS} \
         retry-backoff-min=100 exhausted-timeout=800 ! fakesink sync=false"
    ));
    let log = run(&p, Duration::from_secs(10), Duration::from_millis(200));
    stop_within(&p, Duration::from_secs(8));
    assert_eq!(log.errors.len(), 1, "{}", log.error_text());
    let e = &log.errors[0];
    assert!(e.text.contains("exhausted-timeout"), "{}", e.text);
    assert!(e.at >= Duration::from_millis(800), "{:?}", e.at);
    assert_eq!(
        e.details.as_ref().map(|d| d.name().to_string()).as_deref(),
        Some("vigil-failover-exhausted")
    );
}

/// `exhausted-timeout` counts from the start, also while the inputs are still starting (they
/// fail only at their `start-timeout`, 5 s): a hostile run saw the ERROR come at the inputs'
/// start-timeout instead, and in cold standby not at all. Its text names the time off air.
#[test]
fn exhausted_timeout_counts_while_the_inputs_are_still_starting() {
    let _serial = serial();
    init();
    let white = media("white", 20);
    for standby in ["warm", "cold"] {
        let a = HttpServer::start(&white, Http::Silent, 20);
        let b = HttpServer::start(&white, Http::Silent, 20);
        let p = pipeline(&format!(
            "vigilfailoversrc uris=\"<{},{}>\" enable-audio=false standby={standby} \
             video-caps=video/x-raw,width=64,height=48,framerate=30/1 \
             exhausted-timeout=800 ! fakesink sync=false",
            a.uri, b.uri
        ));
        let log = run(&p, Duration::from_secs(10), Duration::from_millis(200));
        stop_within(&p, Duration::from_secs(8));
        assert_eq!(log.errors.len(), 1, "{standby}: {}", log.error_text());
        let e = &log.errors[0];
        assert!(e.text.contains("exhausted-timeout"), "{}", e.text);
        assert!(
            e.at >= Duration::from_millis(800) && e.at < Duration::from_millis(800 + 1500),
            "{standby}: ERROR at {:?}, exhausted-timeout 800 ms, start-timeout 5000 ms",
            e.at
        );
    }
}

#[test]
fn audio_output_is_continuous_and_carries_the_input_audio() {
    let _serial = serial();
    init();
    let dir = scratch("failover-audio");
    let path = dir.join("tone.mkv");
    let make = pipeline(&format!(
        "matroskamux name=m streamable=true ! filesink location={} \
         videotestsrc num-buffers=90 pattern=white ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! m. \
         audiotestsrc num-buffers=150 samplesperbuffer=960 volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! m.",
        path.display()
    ));
    let log = run(&make, Duration::from_secs(30), Duration::ZERO);
    stop_within(&make, Duration::from_secs(5));
    assert!(log.eos.is_some(), "{}", log.error_text());
    let p = pipeline(&format!(
        "vigilfailoversrc name=f uris=\"<{}>\" stall-timeout={STALL_MS} \
         video-caps=video/x-raw,width=160,height=120,framerate=30/1 \
         f.video ! fakesink sync=false f.audio ! fakesink name=a sync=false",
        file_uri(&path)
    ));
    let audio = Arc::new(Mutex::new(Vec::<(u64, u64, bool)>::new()));
    let a2 = audio.clone();
    p.by_name("a")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let b = info.buffer().unwrap();
            let m = b.map_readable().unwrap();
            let loud = m
                .chunks(2)
                .any(|s| i16::from_le_bytes([s[0], s[1]]).abs() > 1000);
            a2.lock().unwrap().push((
                b.pts().unwrap().nseconds(),
                b.duration().unwrap().nseconds(),
                loud,
            ));
            gst::PadProbeReturn::Ok
        });
    p.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    stop_within(&p, Duration::from_secs(8));
    let audio = audio.lock().unwrap().clone();
    assert!(audio.len() > 100, "{} audio buffers in 4 s", audio.len());
    for w in audio.windows(2) {
        assert_eq!(w[0].0 + w[0].1, w[1].0, "audio timestamps contiguous");
    }
    let loud = audio.iter().filter(|a| a.2).count();
    assert!(
        loud > 50,
        "the input's tone reached the output ({loud} buffers)"
    );
    assert!(
        audio.iter().any(|a| !a.2),
        "silence after the 3 s input ended"
    );
}

#[test]
fn python_example_prints_status_changes_and_switches() {
    let _serial = serial();
    init();
    let white = file_uri(&media("white", 2));
    let red = file_uri(&media("red", 20));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/failover_status.py");
    let (ok, out, err) = run_tool(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .args([
                "--seconds",
                "8",
                "--stall-timeout",
                "400",
                "--failback-delay",
                "-1",
            ])
            .arg(&white)
            .arg(&red)
            .env("GST_PLUGIN_PATH", plugin_dir()),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    let a = pos("status starting");
    // The primary goes on air first, or right after the backup (the first input that flows
    // goes on air at once; the primary takes over as soon as it flows).
    let initial = format!("switch from='' to='{white}' reason=initial");
    let b = if out.contains(&initial) {
        pos(&initial)
    } else {
        pos(&format!(
            "switch from='{red}' to='{white}' reason=preferred"
        ))
    };
    let c = pos(&format!("status healthy active={white}"));
    let d = pos(&format!("switch from='{white}' to='{red}' reason=eos"));
    let e = pos(&format!("status failover active={red}"));
    assert!(a < b && b < c && c < d && d < e, "{out}");
    assert!(
        out.contains("statistics vigil-failover-statistics"),
        "{out}"
    );
}

/// A real RTSP server on loopback (gst-rtsp-server) serving a live white pattern at `/live`,
/// which the test can take down (clients kicked, mount removed) and bring back.
struct RtspServer {
    server: gst_rtsp_server::RTSPServer,
    factory: gst_rtsp_server::RTSPMediaFactory,
    main_loop: gst::glib::MainLoop,
    uri: String,
}

impl RtspServer {
    fn start() -> Self {
        use gst_rtsp_server::prelude::*;
        init();
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(
            "( videotestsrc is-live=true pattern=white ! video/x-raw,width=160,height=120,framerate=30/1 \
               ! vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96 )",
        );
        factory.set_shared(true);
        server
            .mount_points()
            .unwrap()
            .add_factory("/live", factory.clone());
        let ctx = gst::glib::MainContext::new();
        server.attach(Some(&ctx)).expect("the RTSP server binds");
        let main_loop = gst::glib::MainLoop::new(Some(&ctx), false);
        let ml = main_loop.clone();
        std::thread::spawn(move || {
            ctx.with_thread_default(|| ml.run()).unwrap();
        });
        let uri = format!("rtsp://127.0.0.1:{}/live", server.bound_port());
        Self {
            server,
            factory,
            main_loop,
            uri,
        }
    }

    /// The server goes away: no new session, and every client is disconnected.
    fn stop(&self) {
        use gst_rtsp_server::prelude::*;
        self.server.mount_points().unwrap().remove_factory("/live");
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
    }

    /// The server is back.
    fn restart(&self) {
        use gst_rtsp_server::prelude::*;
        self.server
            .mount_points()
            .unwrap()
            .add_factory("/live", self.factory.clone());
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
        self.main_loop.quit();
    }
}

#[test]
fn rtsp_primary_stops_and_restarts_failover_then_failback() {
    let _serial = serial();
    let rtsp = RtspServer::start();
    let red = file_uri(&media("red", 40));
    // The first frame comes after rtspsrc's 2 s of jitter buffer latency: the stall timeout
    // must allow for it.
    let mut rig = Rig::new(&[&rtsp.uri, &red], "stall-timeout=3000 failback-delay=1000");
    assert!(
        rig.wait(Duration::from_secs(12), |r| r.status() == "healthy"
            && r.f.property::<Option<String>>("active-input").as_deref()
                == Some(rtsp.uri.as_str())),
        "the RTSP primary never went on air: {:?}",
        rig.statistics()
    );
    let n = rig.switches.len();
    let stopped = Instant::now();
    rtsp.stop();
    assert!(
        rig.wait(Duration::from_secs(8), |r| r
            .switched_to_since(&red, n)
            .is_some()),
        "no failover when the RTSP server stopped: {:?}",
        rig.statistics()
    );
    // rtspsrc's jitter buffer (2 s by default) still delivers what it holds after the server
    // stops; the stall is counted from the last frame delivered.
    let detection = stopped.elapsed();
    assert!(
        detection < Duration::from_millis(2000 + 3000 + 1500),
        "failover {detection:?} after the server stopped"
    );
    assert_eq!(rig.status(), "failover");
    rtsp.restart();
    assert!(
        rig.wait(Duration::from_secs(20), |r| r.switches.iter().any(
            |(_, s)| s.get::<&str>("to").unwrap() == rtsp.uri && reason(s) == "failback"
        )),
        "no failback when the RTSP server came back: {:?}",
        rig.statistics()
    );
    assert!(rig.wait(Duration::from_secs(3), |r| r.status() == "healthy"));
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(
        r.windows(3)
            .any(|w| w == [Colour::White, Colour::Red, Colour::White]),
        "white (RTSP), red (backup), white again: {r:?}"
    );
}

/// A Matroska file made by `desc` (a launch line ending in a muxer named `m`), once per name.
fn made(name: &str, desc: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| scratch("failover-health-media"));
    let path = dir.join(format!("{name}.mkv"));
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    if !path.exists() {
        let p = pipeline(&format!("{desc} m. ! filesink location={}", path.display()));
        let log = run(&p, Duration::from_secs(30), Duration::ZERO);
        stop_within(&p, Duration::from_secs(5));
        assert!(log.eos.is_some(), "{name}: {}", log.error_text());
    }
    path
}

/// 10 s of black picture and digitally silent audio.
fn black_and_silent() -> PathBuf {
    made(
        "black-silent",
        "matroskamux name=m streamable=true \
         videotestsrc pattern=black num-buffers=300 ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! m. \
         audiotestsrc wave=silence num-buffers=500 samplesperbuffer=960 ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! m.",
    )
}

/// 10 s of audio only (a tone).
fn audio_only() -> PathBuf {
    made(
        "audio-only",
        "matroskamux name=m streamable=true \
         audiotestsrc num-buffers=500 samplesperbuffer=960 ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! m.",
    )
}

/// 10 s of white at one frame per second.
fn one_fps() -> PathBuf {
    made(
        "white-1fps",
        "matroskamux name=m streamable=true \
         videotestsrc pattern=white num-buffers=10 ! video/x-raw,width=160,height=120,framerate=1/1 ! jpegenc ! m.",
    )
}

/// When the first switch for `reason` happened, by the element's own clock (wall-clock ms in
/// its switch history): free of this thread's polling delay.
fn switch_wallclock_ms(rig: &Rig, reason: &str) -> u64 {
    let stats = rig.statistics();
    stats
        .get::<gst::Array>("switch-history")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .filter(|h| h.get::<String>("reason").unwrap() == reason)
        .map(|h| h.get::<u64>("wallclock-ms").unwrap())
        .next()
        .unwrap_or_else(|| panic!("no {reason} switch in the switch history: {stats}"))
}

/// The primary's `statistics` entry.
fn input_stats(rig: &Rig, index: usize) -> gst::Structure {
    let stats = rig.statistics();
    let inputs = stats.get::<gst::Array>("inputs").unwrap();
    inputs[index].get::<gst::Structure>().unwrap()
}

/// Statuses that claim live content, from `at` on.
fn healthy_since(rig: &Rig, at: Duration) -> Vec<(Duration, String)> {
    rig.statuses
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, s)| *t >= at && (s == "healthy" || s == "failover"))
        .cloned()
        .collect()
}

#[test]
fn live_input_whose_video_dies_while_audio_flows_fails_over_with_reason_stall() {
    let _serial = serial();
    init();
    // A live camera-like source: white video and a tone; its video stops after 2 s while its
    // audio goes on.
    let src = gst::Bin::with_name("camera");
    let video = gst::parse::bin_from_description(
        "videotestsrc is-live=true pattern=white ! video/x-raw,width=160,height=120,framerate=30/1 ! identity name=gate",
        true,
    )
    .unwrap();
    let audio = gst::parse::bin_from_description(
        "audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! identity",
        true,
    )
    .unwrap();
    src.add_many([&video, &audio]).unwrap();
    for (part, name) in [(&video, "video"), (&audio, "audio")] {
        let ghost = gst::GhostPad::builder_with_target(&part.static_pad("src").unwrap())
            .unwrap()
            .name(name)
            .build();
        src.add_pad(&ghost).unwrap();
    }
    let dead = Arc::new(AtomicBool::new(false));
    let d = dead.clone();
    // When the last video frame went through (wall clock, ms), to compare with the element's
    // own switch time in its switch history.
    let last_frame_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lf = last_frame_ms.clone();
    video
        .by_name("gate")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if d.load(Ordering::SeqCst) {
                gst::PadProbeReturn::Drop
            } else {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                lf.store(now, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            }
        });
    let red = file_uri(&media("red", 20));
    let mut rig = Rig::with_audio(
        vec![In::Element(src.upcast()), In::Uri(red.clone())],
        "failback-delay=-1",
    );
    assert!(
        rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    rig.wait(Duration::from_secs(2), |_| false);
    let n = rig.switches.len();
    dead.store(true, Ordering::SeqCst);
    let kill = rig.start.elapsed();
    assert!(
        rig.wait(Duration::from_secs(5), |r| r
            .switched_to_since(&red, n)
            .is_some()),
        "no failover while the video is dead and the audio flows: {:?}",
        rig.statistics()
    );
    let (_, s) = rig.switched_to_since(&red, n).unwrap().clone();
    assert_eq!(reason(&s), "stall", "{s}");
    // From the last frame that went through to the switch, by the element's clock (the switch
    // history), so that neither this thread's polling nor a late last frame counts.
    let switched_ms = switch_wallclock_ms(&rig, "stall");
    let took =
        Duration::from_millis(switched_ms.saturating_sub(last_frame_ms.load(Ordering::SeqCst)));
    eprintln!(
        "video died: backup on air {took:?} after its last frame (stall-timeout {STALL_MS} ms)"
    );
    assert!(
        took >= Duration::from_millis(STALL_MS - 50)
            && took < Duration::from_millis(STALL_MS + 700),
        "switch {took:?} after the last video frame"
    );
    let primary = input_stats(&rig, 0);
    let why = primary.get::<String>("last-error").unwrap();
    assert!(
        why.contains("no video") && why.contains("audio"),
        "the failure says which stream: {why}"
    );
    // Never healthy once the video was dead for more than the flow window.
    let late = healthy_since(&rig, kill + Duration::from_millis(300));
    assert!(
        late.iter().all(|(_, s)| s == "failover"),
        "healthy while the primary's video was dead: {late:?}"
    );
    assert!(rig.wait(Duration::from_secs(2), |r| r.status() == "failover"));
    rig.finish();
}

#[test]
fn audio_only_input_is_never_healthy_on_video_and_a_video_backup_is_preferred() {
    let _serial = serial();
    let audio = file_uri(&audio_only());
    // Alone: filler on air, degraded, and the status says why.
    let mut rig = Rig::with_audio(vec![In::Uri(audio.clone())], "");
    let degraded = rig.wait(Duration::from_secs(5), |r| {
        r.status() == "degraded"
            && r.statistics()
                .get::<String>("status-detail")
                .unwrap()
                .contains("no video")
    });
    assert!(degraded, "{:?}", rig.statistics());
    rig.wait(Duration::from_secs(1), |_| false);
    assert!(
        healthy_since(&rig, Duration::ZERO).is_empty(),
        "healthy with an audio-only input: {:?}",
        rig.statuses.lock().unwrap()
    );
    let frames = rig.finish();
    assert!(
        runs(&frames).iter().all(|c| *c == Colour::Black),
        "filler on the video output"
    );

    // With a video backup: the backup goes on air at once, as a failover.
    let blue = file_uri(&media("blue", 20));
    let mut rig = Rig::with_audio(vec![In::Uri(audio), In::Uri(blue.clone())], "");
    // The status and the switch are two messages: wait for both (the status was once seen
    // before the switch was recorded).
    assert!(
        rig.wait(Duration::from_secs(3), |r| r.status() == "failover"
            && r.switched_to(&blue).is_some()),
        "{:?}",
        rig.statistics()
    );
    let (at, s) = rig.switched_to(&blue).unwrap().clone();
    eprintln!("audio-only primary: video backup on air {at:?} after PLAYING");
    assert_eq!(reason(&s), "initial");
    // At once, not after a timeout (stall-timeout and start-timeout are 3 s by default).
    assert!(at < Duration::from_millis(2000), "backup on air at {at:?}");
    rig.wait(Duration::from_secs(2), |_| false);
    assert!(
        !rig.statuses
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| s == "healthy"),
        "healthy with an audio-only primary"
    );
    rig.finish();
}

#[test]
fn black_picture_and_silence_fail_over_with_their_reasons_after_their_timeouts() {
    let _serial = serial();
    let dark = file_uri(&black_and_silent());
    let red = file_uri(&media("red", 20));
    // Checks off: the black, silent primary stays on air, and statistics still say how long
    // it has been black and silent.
    let mut rig = Rig::with_audio(vec![In::Uri(dark.clone()), In::Uri(red.clone())], "");
    assert!(rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"));
    rig.wait(Duration::from_millis(1500), |_| false);
    let primary = input_stats(&rig, 0);
    let black = primary.get::<u64>("black-ms").unwrap();
    let silent = primary.get::<u64>("silent-ms").unwrap();
    assert!(
        black >= 1000 && silent >= 1000,
        "black {black} ms, silent {silent} ms: {primary}"
    );
    assert_eq!(rig.status(), "healthy", "checks off: no failover");
    rig.finish();

    // A still picture is a frozen one: the backup for the freeze check moves.
    let ball = file_uri(&media("ball", 20));
    for (props, expected, limit, backup) in [
        ("black-timeout=800", "black", 800u64, &red),
        ("silence-timeout=800", "silence", 800, &red),
        ("freeze-timeout=800", "frozen", 800, &ball),
        // Cold standby: the backup is started when the primary on air is impaired (it was
        // never started before: the frozen or black picture stayed on air).
        ("black-timeout=800 standby=cold", "black", 800, &red),
        ("freeze-timeout=800 standby=cold", "frozen", 800, &ball),
    ] {
        let mut rig = Rig::with_audio(
            vec![In::Uri(dark.clone()), In::Uri(backup.clone())],
            &format!("{props} failback-delay=0"),
        );
        assert!(
            rig.wait(Duration::from_secs(6), |r| r
                .switches
                .iter()
                .any(|(_, s)| reason(s) == expected)),
            "{props}: no switch for {expected}: {:?}",
            rig.statistics()
        );
        // The switch for the impairment (the backup may have been on air for a moment at the
        // start, before the primary flowed: that switch is not this one).
        let k = rig
            .switches
            .iter()
            .position(|(_, s)| reason(s) == expected)
            .unwrap();
        let (at, s) = rig.switches[k].clone();
        assert!(
            at >= Duration::from_millis(limit),
            "{props}: switch at {at:?}"
        );
        if props.contains("standby=cold") {
            // The backup starts only now: the filler bridges its start.
            assert!(
                rig.wait(Duration::from_secs(3), |r| r
                    .switched_to_since(backup, k)
                    .is_some()),
                "{props}: the backup never went on air: {:?}",
                rig.statistics()
            );
        } else {
            assert_eq!(&s.get::<String>("to").unwrap(), backup);
        }
        let (at, _) = rig.switched_to_since(backup, k).unwrap().clone();
        eprintln!("{props}: the backup on air {at:?} after PLAYING");
        assert!(
            at < Duration::from_millis(limit + 1500),
            "{props}: backup on air at {at:?}"
        );
        // The impaired primary stays impaired (it is still black and silent): no failback,
        // even with failback-delay=0, and never healthy after the switch.
        rig.wait(Duration::from_secs(2), |_| false);
        assert_eq!(rig.status(), "failover", "{:?}", rig.statistics());
        assert!(
            healthy_since(&rig, at).iter().all(|(_, s)| s == "failover"),
            "{props}: healthy on an impaired primary"
        );
        let primary = input_stats(&rig, 0);
        assert_eq!(
            primary.get::<String>("state").unwrap(),
            expected,
            "{primary}"
        );
        rig.finish();
    }
}

#[test]
fn cold_standby_with_every_input_impaired_keeps_them_running_without_churn() {
    let _serial = serial();
    let path = black_and_silent();
    let dark = file_uri(&path);
    // The same black file twice, under two names.
    let copy = path.with_file_name("black-silent-copy.mkv");
    std::fs::copy(&path, &copy).unwrap();
    let dark2 = file_uri(&copy);
    let mut rig = Rig::with_audio(
        vec![In::Uri(dark.clone()), In::Uri(dark2.clone())],
        "black-timeout=500 standby=cold failback-delay=0",
    );
    // The primary goes black, the backup starts, goes on air, goes black in turn.
    assert!(
        rig.wait(Duration::from_secs(6), |r| {
            let stats = r.statistics();
            let inputs = stats.get::<gst::Array>("inputs").unwrap();
            inputs.get(1).is_some_and(|b| {
                b.get::<gst::Structure>()
                    .unwrap()
                    .get::<String>("state")
                    .unwrap()
                    == "black"
            })
        }),
        "the backup never judged black: {:?}",
        rig.statistics()
    );
    let before = input_stats(&rig, 1).get::<u64>("retries").unwrap();
    let switches = rig.switches.len();
    rig.wait(Duration::from_secs(2), |_| false);
    let stats = rig.statistics();
    let backup = input_stats(&rig, 1);
    let primary = input_stats(&rig, 0);
    // Both stay running and watched: no stop and restart of the backup every tick.
    assert_eq!(
        backup.get::<u64>("retries").unwrap(),
        before,
        "the backup was restarted while every input was impaired: {stats:?}"
    );
    assert!(
        rig.switches.len() <= switches + 1,
        "switches went on: {:?}",
        &rig.switches[switches..]
    );
    for s in [&primary, &backup] {
        assert_eq!(s.get::<String>("state").unwrap(), "black", "{stats:?}");
    }
    assert_eq!(rig.status(), "degraded", "{stats:?}");
    rig.finish();
}

#[test]
fn a_one_fps_input_is_healthy_while_its_frames_come_every_second() {
    let _serial = serial();
    let slow = file_uri(&one_fps());
    // stall-timeout (700 ms) shorter than the input's frame interval: its own cadence rules.
    let mut rig = Rig::new(&[&slow], "");
    assert!(
        rig.wait(Duration::from_secs(6), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    let since = rig.start.elapsed();
    rig.wait(Duration::from_secs(5), |_| false);
    let statuses: Vec<_> = rig
        .statuses
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t > since)
        .cloned()
        .collect();
    assert!(
        statuses.is_empty(),
        "the status flapped on a 1 fps input: {statuses:?}"
    );
    assert_eq!(
        rig.switches.len(),
        1,
        "only the initial switch: {:?}",
        rig.switches
    );
    let primary = input_stats(&rig, 0);
    let interval = primary.get::<u64>("frame-interval-ms").unwrap();
    assert!(
        (800..=1300).contains(&interval),
        "its own frame interval, measured: {interval} ms"
    );
    rig.finish();
}

#[test]
fn rtsp_primary_with_a_stall_timeout_below_its_jitterbuffer_latency_goes_on_air() {
    let _serial = serial();
    let rtsp = RtspServer::start();
    let red = file_uri(&media("red", 40));
    // rtspsrc holds 2 s in its jitter buffer before the first frame: start-timeout (5 s by
    // default) covers the start, stall-timeout (1 s) the gaps once it flows.
    let mut rig = Rig::new(&[&rtsp.uri, &red], "stall-timeout=1000 failback-delay=-1");
    assert!(
        rig.wait(Duration::from_secs(10), |r| r.status() == "healthy"
            && r.f.property::<Option<String>>("active-input").as_deref()
                == Some(rtsp.uri.as_str())),
        "the RTSP primary never went on air: {:?}",
        rig.statistics()
    );
    let (at, s) = rig.switched_to(&rtsp.uri).unwrap().clone();
    eprintln!("RTSP primary on air {at:?} after PLAYING ({})", reason(&s));
    // The backup was on air meanwhile, and the primary took over when it flowed.
    assert_eq!(reason(&s), "preferred");
    let primary = input_stats(&rig, 0);
    assert_eq!(primary.get::<u64>("failures").unwrap(), 0, "{primary}");
    rig.wait(Duration::from_secs(1), |_| false);
    assert_eq!(rig.status(), "healthy");
    let frames = rig.finish();
    let r = runs(&frames);
    assert!(r.ends_with(&[Colour::White]), "{r:?}");
}

/// 8 s of white picture whose audio (a tone) ends after 1 s.
fn audio_ends_early() -> PathBuf {
    made(
        "audio-ends-early",
        "matroskamux name=m streamable=true \
         videotestsrc pattern=white num-buffers=240 ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc ! m. \
         audiotestsrc num-buffers=50 samplesperbuffer=960 ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! m.",
    )
}

/// The primary's audio ends while its video goes on: the demuxer then sends GAP events on the
/// audio stream, which `audiorate` turned into silence that counted as flowing audio: the
/// output was digital silence and the status `healthy` for ever (found by a hostile run).
/// Now it is a `stall` naming the audio, and the backup goes on air.
#[test]
fn an_input_whose_audio_ends_while_its_video_goes_on_fails_over() {
    let _serial = serial();
    let primary = file_uri(&audio_ends_early());
    let backup = file_uri(&black_and_silent());
    let mut rig = Rig::with_audio(
        vec![In::Uri(primary.clone()), In::Uri(backup.clone())],
        "failback-delay=-1",
    );
    assert!(
        rig.wait(Duration::from_secs(5), |r| r.status() == "healthy"),
        "{:?}",
        rig.statistics()
    );
    let n = rig.switches.len();
    assert!(
        rig.wait(Duration::from_secs(5), |r| r
            .switched_to_since(&backup, n)
            .is_some()),
        "no failover after the primary's audio ended: {:?}",
        rig.statistics()
    );
    let (at, s) = rig.switched_to_since(&backup, n).unwrap().clone();
    assert_eq!(reason(&s), "stall", "{s}");
    // Audio ends at 1 s; stall-timeout is 700 ms.
    assert!(
        at < Duration::from_millis(1000 + 700 + 1500),
        "switch at {at:?}"
    );
    let primary_stats = input_stats(&rig, 0);
    let error = primary_stats.get::<String>("last-error").unwrap();
    assert!(error.contains("no audio"), "{primary_stats}");
    rig.finish();
}

/// A downstream that takes longer than a frame period to take a buffer (here 80 ms a frame at
/// 30 fps): the output, a live source, must not fall further and further behind the clock with
/// every frame (each one late, dropped by a synchronising sink, or recorded ever later: 4.7 s
/// behind after 8 s); once 2 s behind it skips ahead, counts what it skipped, and says so with
/// a WARNING.
#[test]
fn a_slow_downstream_never_leaves_the_output_behind_the_clock_silently() {
    let _serial = serial();
    init();
    let white = media("white", 20);
    let p = pipeline(
        "vigilfailoversrc name=f enable-audio=false \
         video-caps=video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
         ! identity sleep-time=80000 ! fakesink name=out sync=true",
    );
    let f = p.by_name("f").unwrap();
    f.set_property("uris", gst::Array::new([file_uri(&white).to_send_value()]));
    // How far behind the clock each frame reaches the sink (running time now minus its PTS).
    let lags: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let l = lags.clone();
    let pc = p.clone();
    p.by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(gst::PadProbeData::Buffer(b)), Some(clock), Some(base)) =
                (&info.data, pc.clock(), pc.base_time())
                && let Some(pts) = b.pts()
            {
                let now = clock.time().saturating_sub(base);
                l.lock().unwrap().push((
                    Instant::now(),
                    now.nseconds() as i64 - pts.nseconds() as i64,
                ));
            }
            gst::PadProbeReturn::Ok
        });
    let log = run(&p, Duration::from_secs(9), Duration::ZERO);
    let stats = f.property::<gst::Structure>("statistics");
    stop_within(&p, Duration::from_secs(5));
    assert!(log.errors.is_empty(), "{}", log.error_text());
    let lags = lags.lock().unwrap().clone();
    assert!(lags.len() > 30, "{} frames reached the sink", lags.len());
    // Over the last two seconds (7 to 9 s in, where a output that never skips is 4 to 5 s
    // behind).
    let end = lags.last().unwrap().0;
    let worst = lags
        .iter()
        .filter(|(t, _)| end.duration_since(*t) < Duration::from_secs(2))
        .map(|(_, lag)| *lag)
        .max()
        .unwrap();
    assert!(
        worst < 3_000_000_000,
        "the output is {} ms behind the clock at the sink",
        worst / 1_000_000
    );
    let skipped = stats.get::<u64>("late-skipped-frames").unwrap();
    assert!(skipped > 0, "statistics count the skipped frames: {stats}");
    assert!(
        log.warnings
            .iter()
            .any(|w| w.text.contains("fell behind the clock")),
        "a WARNING says the output fell behind: {:?}",
        log.warnings.iter().map(|w| &w.text).collect::<Vec<_>>()
    );
}
