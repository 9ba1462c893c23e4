// SPDX-License-Identifier: MPL-2.0
//! `vigilsvtav1enc` owns what it derives from the caps (issue 10): a `parameters-string` key
//! that would contradict them is refused with an error naming it (never a crash, never a
//! bitstream that disagrees with its caps); sizes SVT-AV1 cannot take and impossible tile
//! layouts are refused with the rule; forced key frames follow the final configuration.

use std::process::Command;
use std::time::Duration;

use vigil_tests::*;

/// Runs a launch line in a child `gst-launch-1.0` (so a crash cannot take the suite down) and
/// returns (exit code, stdout + stderr).
///
/// gst-launch-1.0 1.22 quits its main loop from its bus sync handler; an ERROR posted before
/// the loop runs (an element that fails on the first buffer of the preroll) is lost, and it
/// then waits for ever with nothing left running. It does so with stock elements too
/// (`identity error-after=1`: 5 waits in 300 runs here), with our encoder in about 1 run in 60.
/// Such a run (killed by `timeout` after it printed the ERROR) is run again; a crash or a run
/// that never printed an ERROR is returned as it is.
fn launch_child(line: &str) -> (Option<i32>, String) {
    init();
    let mut last = (None, String::new());
    for _ in 0..4 {
        let out = Command::new("timeout")
            .arg("20")
            .arg("gst-launch-1.0")
            .args(line.split_whitespace())
            .env("GST_PLUGIN_PATH", plugin_dir())
            .output()
            .expect("gst-launch-1.0 runs");
        last = (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
        let lost_quit = last.0 == Some(124) && last.1.contains("ERROR: from element");
        if !lost_quit {
            break;
        }
    }
    last
}

/// gst-launch-1.0 exits 1 on an ERROR while running and 255 when the pipeline refuses to
/// start; a crash has no exit code (a signal), a hang is killed by `timeout` (124).
fn failed_cleanly(code: Option<i32>) -> bool {
    matches!(code, Some(1) | Some(255))
}

#[test]
fn owned_keys_are_refused_with_their_name_and_never_crash() {
    for (key, size) in [
        ("height=8704", "64x64"),
        ("width=320", "160x120"),
        ("input-depth=10", "160x120"),
        ("fps-num=60", "160x120"),
        ("color-primaries=9", "160x120"),
        ("frames=3", "160x120"),
    ] {
        let (w, h) = size.split_once('x').unwrap();
        let (code, out) = launch_child(&format!(
            "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width={w},height={h} ! vigilsvtav1enc parameters-string={key} ! fakesink"
        ));
        assert!(failed_cleanly(code), "{key}: {code:?} {out}");
        let name = key.split('=').next().unwrap();
        assert!(
            out.contains(&format!("'{name}' cannot be set: the element owns it")),
            "{key}: the error names the key: {out}"
        );
    }
}

#[test]
fn sizes_and_tiles_svt_cannot_take_are_refused_with_the_rule() {
    let (code, out) = launch_child(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=641,height=481 ! vigilsvtav1enc ! fakesink",
    );
    assert!(failed_cleanly(code), "{code:?} {out}");
    assert!(out.contains("641x481") && out.contains("even"), "{out}");
    let (code, out) = launch_child(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=160,height=120 ! vigilsvtav1enc tile-columns=4 tile-rows=6 ! fakesink",
    );
    assert!(failed_cleanly(code), "{code:?} {out}");
    assert!(out.contains("at most 128"), "{out}");
    // A refusal found by SVT itself names the setting.
    let (code, out) = launch_child(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=160,height=120 ! vigilsvtav1enc parameters-string=tile-columns=4:tile-rows=6 ! fakesink",
    );
    assert!(failed_cleanly(code), "{code:?} {out}");
    assert!(
        out.contains("tile-rows=6"),
        "the message names what the user set: {out}"
    );
}

#[test]
fn forced_key_frames_follow_the_final_configuration() {
    // VBR or low delay set through parameters-string: SVT 1.4 cannot force key frames there,
    // so the element must not ask it to (which failed the configuration before).
    for params in ["rc=1:tbr=500", "pred-struct=1"] {
        let log = run_to_end(
            &format!(
                "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! vigilsvtav1enc preset=12 parameters-string={params} ! fakesink"
            ),
            Duration::from_secs(60),
        );
        assert!(
            log.errors.is_empty() && log.eos.is_some(),
            "{params}: {}",
            log.error_text()
        );
    }
}
