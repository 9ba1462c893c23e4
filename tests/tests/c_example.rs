// SPDX-License-Identifier: MPL-2.0
//! The C example (`examples/c/vigil-record.c`): it records a failover input through
//! vigilsvtav1enc into Matroska via vigilsink, prints status changes and switches, finishes the
//! file at the end, and exits with status 3 on a `vigil-watchdog` ERROR.
//!
//! It runs the meson-built program (`VIGIL_C_EXAMPLE`, set by `meson test`), or compiles the
//! source with `cc` and `pkg-config --cflags --libs gstreamer-1.0`, as its header says.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use vigil_tests::*;

/// Two streamable MJPEG Matroska inputs: `a` of 2 s, `b` of 20 s.
fn inputs() -> (String, String) {
    static INPUTS: OnceLock<(String, String)> = OnceLock::new();
    INPUTS
        .get_or_init(|| {
            let dir = scratch("c-example-inputs");
            let make = |name: &str, frames: u32, pattern: &str| {
                let path = dir.join(name);
                let log = run_to_end(
                    &format!(
                        "videotestsrc num-buffers={frames} pattern={pattern} \
                         ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc \
                         ! matroskamux streamable=true ! filesink location={}",
                        path.display()
                    ),
                    Duration::from_secs(60),
                );
                assert!(log.eos.is_some(), "{name}: {}", log.error_text());
                format!("file://{}", path.display())
            };
            (make("a.mkv", 60, "ball"), make("b.mkv", 600, "smpte"))
        })
        .clone()
}

fn record(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(c_example());
    cmd.args(args)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("SVT_LOG", "1");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vigil-record runs");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("vigil-record {args:?} did not end within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Decodes `path` (Matroska, AV1) with vigildav1ddec and returns the frame count.
fn decoded_frames(path: &Path) -> usize {
    let p = pipeline(&format!(
        "filesrc location={} ! matroskademux ! vigildav1ddec ! appsink name=sink sync=false",
        path.display()
    ));
    let frames = collect_buffers(&p);
    let log = run(&p, Duration::from_secs(60), Duration::from_millis(300));
    stop_within(&p, Duration::from_secs(2));
    assert!(log.eos.is_some(), "decoding: {}", log.error_text());
    frames.lock().unwrap().len()
}

#[test]
fn records_a_failover_input_prints_status_and_switches_and_finishes_the_file() {
    init();
    let (a, b) = inputs();
    let out = scratch("c-example-record").join("out.mkv");
    let (code, stdout, stderr) = record(&["--seconds", "5", out.to_str().unwrap(), &a, &b]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The primary goes on air first, or (both are local files, and the first input that
    // flows goes on air at once) right after the backup, as the preferred input.
    assert!(
        stdout.contains(&format!("switch from=- to={a} reason=initial"))
            || (stdout.contains(&format!("switch from=- to={b} reason=initial"))
                && stdout.contains(&format!("switch from={b} to={a} reason=preferred"))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("status healthy active={a}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("switch from={a} to={b}")),
        "the primary ended after 2 s: a switch to the backup\n{stdout}"
    );
    assert!(stdout.contains("finished"), "{stdout}");
    let frames = decoded_frames(&out);
    // 5 s at 30 fps, less the start-up; the file is finished (it decodes to its end).
    assert!(frames >= 60, "{frames} frames in {}", out.display());
}

#[test]
fn exits_with_status_3_on_a_watchdog_error() {
    init();
    let (a, _) = inputs();
    let out = scratch("c-example-watchdog").join("out.mkv");
    let (code, stdout, stderr) = record(&[
        "--seconds",
        "30",
        "--encoder",
        "vigilsvtav1enc preset=12 pred-structure=low-delay watchdog-timeout=1000 fault-injection=wedge:streaming:10",
        out.to_str().unwrap(),
        &a,
    ]);
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("watchdog: vigil-watchdog"), "{stdout}");
    assert!(stdout.contains("reason=(string)abandoned"), "{stdout}");
}

#[test]
fn says_clearly_when_the_plugins_are_missing() {
    let dir = scratch("c-example-no-plugins");
    let (ok, out, err) = run_tool(
        Command::new(c_example())
            .args(["out.mkv", "file:///nonexistent.mkv"])
            .env("GST_PLUGIN_PATH", &dir)
            .env("GST_PLUGIN_SYSTEM_PATH_1_0", &dir)
            .env("GST_REGISTRY", dir.join("registry.bin")),
        Duration::from_secs(30),
    );
    assert!(!ok, "{out}");
    assert!(err.contains("vigilfailoversrc is not found"), "{err}");
}
