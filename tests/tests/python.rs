// SPDX-License-Identifier: MPL-2.0
//! The elements from Python through PyGObject (run with Debian's `/usr/bin/python3`, which has
//! the GObject introspection bindings), loading the plugins through `GST_PLUGIN_PATH`.

use std::process::Command;
use std::time::Duration;

use vigil_tests::*;

#[test]
fn encoder_and_decoder_from_python() {
    init();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/codecs.py");
    let (ok, out, err) = run_tool(
        Command::new("/usr/bin/python3")
            .arg(&script)
            .env("GST_PLUGIN_PATH", plugin_dir()),
        Duration::from_secs(90),
    );
    assert!(ok, "the Python script failed: {out}\n{err}");
    assert!(out.contains("roundtrip frames=20"), "{out}");
    assert!(
        out.contains("watchdog reason=abandoned phase=streaming"),
        "the details structure reaches Python: {out}"
    );
}

/// The documented way for a Python `new-sample` handler to fail (return ERROR, since
/// PyGObject swallows exceptions) ends the run in an ERROR naming it, never a clean EOS.
#[test]
fn python_sink_consumer_reports_its_failure() {
    init();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sink_consumer.py");
    let run = |args: &[&str]| {
        let output = Command::new("timeout")
            .arg("60")
            .arg("/usr/bin/python3")
            .arg(&script)
            .args(args)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .output()
            .expect("python runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("EOS after 50 frames"), "{out}");
    let (code, out) = run(&["--fail-at", "10"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ERROR after 10 frames"), "{out}");
    assert!(out.contains("new-sample handler returned"), "{out}");
}
