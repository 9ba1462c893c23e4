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
