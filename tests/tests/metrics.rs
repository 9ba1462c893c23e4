// SPDX-License-Identifier: MPL-2.0
//! The `vigilmetrics` tracer against running pipelines: an application that knows nothing
//! about metrics (`metrics_app`) runs a failover ingest encoded, decoded and written through
//! vigilsink, beside a pipeline whose encoder wedges; the tracer, turned on with `GST_TRACERS`,
//! serves every vigil element's metrics over loopback HTTP. They are read with a real HTTP
//! client, checked by `promtool check metrics`, and scraped by a real Prometheus server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use vigil_tests::*;

/// One test at a time: each runs a pipeline process (and Prometheus) on a 2-core machine.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET` or another method on loopback, with std's TCP stream: (status code, body).
fn http(method: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Two streamable MJPEG inputs: the primary ends after 2 s (and, with `failback-delay=-1`,
/// never comes back on air), the backup lasts 40 s.
fn inputs() -> (String, String) {
    static INPUTS: OnceLock<(String, String)> = OnceLock::new();
    INPUTS
        .get_or_init(|| {
            let dir = scratch("metrics-inputs");
            let make = |name: &str, frames: u32| {
                let path = dir.join(name);
                let log = run_to_end(
                    &format!(
                        "videotestsrc num-buffers={frames} ! video/x-raw,width=320,height=240,framerate=30/1 \
                         ! jpegenc ! matroskamux streamable=true ! filesink location={}",
                        path.display()
                    ),
                    Duration::from_secs(60),
                );
                assert!(log.eos.is_some(), "{name}: {}", log.error_text());
                format!("file://{}", path.display())
            };
            (make("a.mkv", 60), make("b.mkv", 1200))
        })
        .clone()
}

/// The application process; killed when dropped.
struct App {
    child: Child,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_app(name: &str) -> App {
    init();
    let (a, b) = inputs();
    let dir = scratch(name);
    let port = free_port();
    let live = format!(
        "live=vigilfailoversrc name=fo enable-audio=false failback-delay=-1 \
         video-caps=video/x-raw,width=320,height=240,framerate=30/1 uris=<\"{a}\",\"{b}\"> \
         ! videoconvert ! vigilsvtav1enc name=enc preset=12 pred-structure=low-delay \
         ! vigildav1ddec name=dec ! vigilsink name=sink location={}",
        dir.join("out.yuv").display()
    );
    // A sink whose consumer wedges. Not a second encoder: an SVT-AV1 encoder that starts while
    // another one does counts the other's threads as its own activity (vigil-core's
    // ThreadCpuProbe takes every thread created meanwhile) and may never look idle.
    let faulty = format!(
        "faulty=videotestsrc ! video/x-raw,width=160,height=120 \
         ! vigilsink name=wedged location={} watchdog-timeout=500 fault-injection=wedge:streaming:5",
        dir.join("wedged.raw").display()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_metrics_app"))
        .args(["--seconds", "90", &live, &faulty])
        .env(
            "GST_TRACERS",
            format!("vigilmetrics(address=127.0.0.1:{port})"),
        )
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("SVT_LOG", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("metrics_app runs");
    App { child, port }
}

/// The value of the sample `series` (name and labels, exactly as served).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `ready` holds (or 60 s pass) and returns the last body.
fn scrape_until(port: u16, ready: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < end {
        if let Some((200, body)) = http("GET", port, "/metrics") {
            if ready(&body) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the metrics never showed the running pipelines:\n{last}");
}

#[test]
fn serves_every_vigil_element_of_running_pipelines_in_prometheus_format() {
    let _serial = serial();
    let (a, b) = inputs();
    let app = start_app("metrics-http");
    let fo = r#"pipeline="live",element="fo""#;
    let switched_to_backup = format!("vigil_failover_on_air{{{fo},input=\"{b}\"}}");
    let body = scrape_until(app.port, |body| {
        value(body, &switched_to_backup) == Some(1.0)
            && value(
                body,
                r#"vigil_watchdog_trips_total{pipeline="faulty",element="wedged",reason="abandoned",phase="streaming"}"#,
            ) == Some(1.0)
            && value(
                body,
                r#"vigil_sink_buffers_total{pipeline="live",element="sink",outcome="rendered"}"#,
            )
            .is_some_and(|v| v >= 30.0)
    });
    // Flow through each element of the live pipeline.
    for series in [
        r#"vigil_frames_out_total{pipeline="live",element="fo"}"#,
        r#"vigil_frames_in_total{pipeline="live",element="enc"}"#,
        r#"vigil_frames_out_total{pipeline="live",element="enc"}"#,
        r#"vigil_frames_in_total{pipeline="live",element="dec"}"#,
        r#"vigil_frames_out_total{pipeline="live",element="dec"}"#,
        r#"vigil_frames_in_total{pipeline="live",element="sink"}"#,
    ] {
        assert!(
            value(&body, series).is_some_and(|v| v >= 30.0),
            "{series}:\n{body}"
        );
    }
    for outcome in ["dropped", "discarded"] {
        let series = format!(
            "vigil_sink_buffers_total{{pipeline=\"live\",element=\"sink\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(value(&body, &series), Some(0.0), "{series}:\n{body}");
    }
    assert!(
        value(
            &body,
            r#"vigil_sink_queued_buffers{pipeline="live",element="sink"}"#
        )
        .is_some(),
        "{body}"
    );
    // The failover source: one status set, the switches by reason, the input on air, ages.
    assert_eq!(
        value(
            &body,
            &format!("vigil_failover_status{{{fo},status=\"failover\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    for status in ["starting", "healthy", "degraded", "exhausted", "stopped"] {
        assert_eq!(
            value(
                &body,
                &format!("vigil_failover_status{{{fo},status=\"{status}\"}}")
            ),
            Some(0.0),
            "{status}:\n{body}"
        );
    }
    assert_eq!(
        value(
            &body,
            &format!("vigil_failover_switches_total{{{fo},reason=\"initial\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            &format!("vigil_failover_switches_total{{{fo},reason=\"eos\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert!(!body.contains(&format!("vigil_failover_on_air{{{fo},input=\"{a}\"}}")));
    let age = value(
        &body,
        &format!("vigil_failover_input_last_data_age_seconds{{{fo},input=\"{b}\"}}"),
    );
    assert!(
        age.is_some_and(|s| (0.0..2.0).contains(&s)),
        "{age:?}:\n{body}"
    );
    // The wedged encoder of the other pipeline is there with its trip, and nothing else tripped.
    assert_eq!(
        body.matches("vigil_watchdog_trips_total{").count(),
        1,
        "{body}"
    );

    // The format, by Prometheus' own checker.
    let dir = scratch("metrics-promtool");
    let file = dir.join("metrics.txt");
    std::fs::write(&file, &body).unwrap();
    let (ok, out, err) = run_tool(
        Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display())),
        Duration::from_secs(30),
    );
    assert!(ok, "promtool check metrics: {out}{err}\n{body}");

    // Only /metrics (and /) is served.
    assert_eq!(http("GET", app.port, "/nope").map(|r| r.0), Some(404));
    assert_eq!(http("POST", app.port, "/metrics").map(|r| r.0), Some(405));
    assert_eq!(http("GET", app.port, "/").map(|r| r.0), Some(200));
}

/// Prometheus' server, killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the first sample of a Prometheus API query answer, if any.
fn first_value(answer: &str) -> Option<f64> {
    let rest = answer.split("\"value\":[").nth(1)?;
    let v = rest.split(",\"").nth(1)?.split('"').next()?;
    v.parse().ok()
}

#[test]
fn the_prometheus_server_scrapes_the_tracer() {
    let _serial = serial();
    assert!(
        have_tool("prometheus"),
        "the prometheus server is missing: scripts/setup-debian.sh installs it"
    );
    let app = start_app("metrics-prometheus");
    let dir: PathBuf = scratch("metrics-prometheus-server");
    let web = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            app.port
        ),
    )
    .unwrap();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs"),
    );
    let query = |q: &str| http("GET", web, &format!("/api/v1/query?query={q}")).map(|r| r.1);
    let end = Instant::now() + Duration::from_secs(90);
    let (mut up, mut frames) = (None, None);
    while Instant::now() < end {
        up = query("up%7Bjob%3D%22vigil%22%7D")
            .as_deref()
            .and_then(first_value);
        frames = query("vigil_frames_out_total%7Bpipeline%3D%22live%22%2Celement%3D%22enc%22%7D")
            .as_deref()
            .and_then(first_value);
        if up == Some(1.0) && frames.is_some_and(|f| f > 0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(up, Some(1.0), "Prometheus did not scrape the tracer (up)");
    assert!(
        frames.is_some_and(|f| f > 0.0),
        "Prometheus has no frames of the encoder: {frames:?}"
    );
    drop(app);
}
