// SPDX-License-Identifier: MPL-2.0
//! Helpers for the integration tests: loading the built plugins through the registry, running
//! pipelines with a deadline, reading the bus, and the reference tools.
//!
//! The plugins are loaded from their shared libraries (`libgstvigil*.so`), the way
//! `GST_PLUGIN_PATH` and an installed plugin are loaded, never registered statically.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

/// The plugin packages the tests load, built with their `fault-injection` feature (the
/// elements; the metrics tracer has none).
pub const PLUGIN_PACKAGES: &[&str] = &[
    "gst-plugin-vigil-svtav1",
    "gst-plugin-vigil-dav1d",
    "gst-plugin-vigil-sink",
    "gst-plugin-vigil-failover",
    "gst-plugin-vigil-metrics",
];

/// The directory holding the plugins the tests load: `VIGIL_PLUGIN_DIR` (plugins built with
/// the `fault-injection` feature), or `target/fault-injection/plugins`, which [`init`] fills
/// by building the plugin crates with the feature into a target directory of their own
/// (`target/fault-injection`), apart from every other build of the workspace.
pub fn plugin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIGIL_PLUGIN_DIR") {
        return PathBuf::from(d);
    }
    static BUILT: Once = Once::new();
    BUILT.call_once(build_fault_plugins);
    fault_target_dir().join("plugins")
}

/// `<cargo target dir>/fault-injection`, found from this test binary's path
/// (`<target>/<profile>/deps/<binary>`).
fn fault_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .join("fault-injection")
}

/// Builds the plugin crates with `fault-injection` (debug, `--locked`) into
/// `target/fault-injection` and copies the four libraries into `plugins/` there. Cargo's own
/// output goes to this process's stderr; a failed build fails the test.
fn build_fault_plugins() {
    let target = fault_target_dir();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The metrics tracer has no fault injection.
    let features = PLUGIN_PACKAGES
        .iter()
        .filter(|p| **p != "gst-plugin-vigil-metrics")
        .map(|p| format!("{p}/fault-injection"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--locked", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .args(["--features", &features]);
    for p in PLUGIN_PACKAGES {
        cmd.args(["-p", p]);
    }
    // A wrapper set for the outer build (clippy's) is not meant for this one.
    cmd.env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let limit = Duration::from_secs(3600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("building the fault-injection plugins took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "building the fault-injection plugins failed: {cmd:?}"
    );
    let plugins = target.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins directory");
    for name in PLUGINS {
        let built = target.join("debug").join(name);
        // Copy to a temporary name and rename, so a concurrent test run never loads half a file.
        let tmp = plugins.join(format!(".{name}.{}", std::process::id()));
        std::fs::copy(&built, &tmp).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        std::fs::rename(&tmp, plugins.join(name)).expect("rename plugin");
    }
}

/// The plugin libraries the tests load.
pub const PLUGINS: &[&str] = &[
    "libgstvigilsvtav1.so",
    "libgstvigildav1d.so",
    "libgstvigilsink.so",
    "libgstvigilfailover.so",
    "libgstvigilmetrics.so",
];

/// Initialises GStreamer once and loads every vigil plugin from [`plugin_dir`].
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("GStreamer initialises");
        let dir = plugin_dir();
        for name in PLUGINS {
            let path = dir.join(name);
            assert!(
                path.exists(),
                "{} is missing: unset VIGIL_PLUGIN_DIR to have the tests build the plugins",
                path.display()
            );
            let plugin = gst::Plugin::load_file(&path)
                .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
            gst::Registry::get().add_plugin(&plugin).ok();
        }
        // The tests drive the fault-injection surface: VIGIL_PLUGIN_DIR may point at plugins
        // built without it.
        let enc = gst::ElementFactory::make("vigilsvtav1enc").build().expect("vigilsvtav1enc loads");
        assert!(
            enc.find_property("fault-injection").is_some(),
            "{} holds plugins built without the fault-injection feature: unset VIGIL_PLUGIN_DIR to have the tests build them",
            dir.display()
        );
    });
}

/// An ERROR or WARNING seen on the bus.
#[derive(Debug, Clone)]
pub struct BusProblem {
    /// The element that posted it.
    pub source: String,
    /// The GError text.
    pub text: String,
    /// The debug string.
    pub debug: String,
    /// The details structure, if any.
    pub details: Option<gst::Structure>,
    /// When it was seen, from the start of the run.
    pub at: Duration,
}

/// What a pipeline run put on the bus.
#[derive(Debug, Default)]
pub struct RunLog {
    /// ERROR messages, in order.
    pub errors: Vec<BusProblem>,
    /// WARNING messages, in order.
    pub warnings: Vec<BusProblem>,
    /// When EOS reached the pipeline, from the start of the run.
    pub eos: Option<Duration>,
    /// Element messages.
    pub elements: Vec<gst::Structure>,
    /// Whether the deadline passed before EOS or an ERROR.
    pub timed_out: bool,
}

impl RunLog {
    /// The `vigil-watchdog` details of each ERROR that has them.
    pub fn watchdog_errors(&self) -> Vec<&gst::Structure> {
        self.errors
            .iter()
            .filter_map(|e| e.details.as_ref())
            .filter(|d| d.name() == "vigil-watchdog")
            .collect()
    }

    /// Every ERROR text joined, for assertion messages.
    pub fn error_text(&self) -> String {
        self.errors
            .iter()
            .map(|e| format!("{}: {} ({})", e.source, e.text, e.debug))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn problem(
    msg: &gst::MessageRef,
    error: &glib::Error,
    debug: Option<&str>,
    details: Option<&gst::StructureRef>,
    start: Instant,
) -> BusProblem {
    BusProblem {
        source: msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default(),
        text: error.to_string(),
        debug: debug.map(|d| d.to_string()).unwrap_or_default(),
        details: details.map(|d| d.to_owned()),
        at: start.elapsed(),
    }
}

/// Sets the pipeline to PLAYING and collects bus messages until EOS, until `settle` after the
/// first ERROR (so duplicates are seen), or until `deadline`. The pipeline is left running:
/// stop it with [`stop_within`].
pub fn run(pipeline: &gst::Pipeline, deadline: Duration, settle: Duration) -> RunLog {
    let bus = pipeline.bus().expect("pipeline bus");
    let start = Instant::now();
    let mut log = RunLog::default();
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The ERROR that explains it is on the bus: collect it below.
    }
    let mut end = start + deadline;
    loop {
        let now = Instant::now();
        if now >= end {
            log.timed_out = log.errors.is_empty() && log.eos.is_none();
            break;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds((end - now).as_nanos() as u64))
        else {
            continue;
        };
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => {
                log.eos = Some(start.elapsed());
                break;
            }
            MessageView::Error(e) => {
                log.errors.push(problem(
                    &msg,
                    &e.error(),
                    e.debug().as_deref(),
                    e.details(),
                    start,
                ));
                if log.errors.len() == 1 {
                    end = end.min(Instant::now() + settle);
                }
            }
            MessageView::Warning(w) => log.warnings.push(problem(
                &msg,
                &w.error(),
                w.debug().as_deref(),
                w.details(),
                start,
            )),
            MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    log.elements.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    log
}

/// Sets the pipeline to NULL on another thread and fails the test if that takes longer than
/// `limit`. Returns how long it took.
pub fn stop_within(pipeline: &gst::Pipeline, limit: Duration) -> Duration {
    let p = pipeline.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let r = p.set_state(gst::State::Null);
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(limit) {
        Ok(ok) => {
            assert!(ok, "setting the pipeline to NULL failed");
            start.elapsed()
        }
        Err(_) => panic!("the pipeline did not reach NULL within {limit:?}: a state change hung"),
    }
}

/// Parses a launch line into a pipeline.
pub fn pipeline(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("pipeline '{desc}': {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// Runs a command with a time limit; returns (success, stdout, stderr).
pub fn run_tool(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for tool") {
            let out = child.wait_with_output().expect("tool output");
            return (
                status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-tests-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A Y4M file: its header fields and raw frames.
pub struct Y4m {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame rate.
    pub fps: (i32, i32),
    /// 8 or 10.
    pub depth: u32,
    /// Each frame's planes (I420 or I420_10LE, tightly packed).
    pub frames: Vec<Vec<u8>>,
}

/// Reads a 4:2:0 Y4M file (8 or 10 bit).
pub fn read_y4m(path: &Path) -> Y4m {
    let data = std::fs::read(path).expect("y4m file");
    let nl = data.iter().position(|&b| b == b'\n').expect("y4m header");
    let header = std::str::from_utf8(&data[..nl]).expect("y4m header text");
    let (mut w, mut h, mut fps, mut depth) = (0u32, 0u32, (25, 1), 8);
    for f in header.split(' ').skip(1) {
        match f.as_bytes()[0] {
            b'W' => w = f[1..].parse().unwrap(),
            b'H' => h = f[1..].parse().unwrap(),
            b'F' => {
                let (n, d) = f[1..].split_once(':').unwrap();
                fps = (n.parse().unwrap(), d.parse().unwrap());
            }
            b'C' => {
                assert!(
                    f.starts_with("C420"),
                    "only 4:2:0 Y4M is read here, not {f}"
                );
                if f.contains("p10") {
                    depth = 10;
                }
            }
            _ => {}
        }
    }
    let bps = if depth > 8 { 2 } else { 1 };
    let size = (w * h + 2 * w.div_ceil(2) * h.div_ceil(2)) as usize * bps;
    let mut frames = Vec::new();
    let mut p = nl + 1;
    while p < data.len() {
        let fl = data[p..].iter().position(|&b| b == b'\n').unwrap();
        p += fl + 1;
        frames.push(data[p..p + size].to_vec());
        p += size;
    }
    Y4m {
        width: w,
        height: h,
        fps,
        depth,
        frames,
    }
}

/// The frame payloads of an IVF file.
pub fn read_ivf(path: &Path) -> Vec<Vec<u8>> {
    let d = std::fs::read(path).expect("ivf file");
    assert_eq!(&d[..4], b"DKIF", "not an IVF file");
    let header_len = u16::from_le_bytes([d[6], d[7]]) as usize;
    let mut p = header_len;
    let mut frames = Vec::new();
    while p + 12 <= d.len() {
        let size = u32::from_le_bytes(d[p..p + 4].try_into().unwrap()) as usize;
        frames.push(d[p + 12..p + 12 + size].to_vec());
        p += 12 + size;
    }
    frames
}

/// Whether a command is on PATH.
pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Threads of this process now.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes the C heap has handed out and not taken back (glibc `mallinfo2`: allocated arena
/// space plus mmapped blocks). Unlike the resident size it does not grow when glibc keeps
/// freed memory in per-thread arenas, so it shows leaks, not fragmentation.
pub fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads allocator statistics.
    let m = unsafe { mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Asserts that every property `element` defines has a nick and a blurb, and that
/// `gst-inspect-1.0`, loading it from [`plugin_dir`], prints no warning and shows each of
/// `properties` and `signals`.
pub fn assert_documented(element: &str, properties: &[&str], signals: &[&str]) {
    init();
    let e = gst::ElementFactory::make(element)
        .build()
        .unwrap_or_else(|_| panic!("{element} loads"));
    for p in e.list_properties() {
        if p.owner_type() != e.type_() {
            continue;
        }
        assert!(
            !p.blurb().unwrap_or_default().is_empty(),
            "{element}: {} has no blurb",
            p.name()
        );
        assert_ne!(p.nick(), p.name(), "{element}: {} has no nick", p.name());
    }
    let (ok, out, err) = run_tool(
        Command::new("gst-inspect-1.0")
            .arg(element)
            .env("GST_PLUGIN_PATH", plugin_dir()),
        Duration::from_secs(30),
    );
    assert!(ok, "gst-inspect-1.0 {element} failed: {err}");
    assert!(err.is_empty(), "gst-inspect-1.0 {element} printed: {err}");
    for prop in properties {
        let shown = out.lines().any(|l| {
            l.trim_start()
                .strip_prefix(prop)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        });
        assert!(shown, "gst-inspect-1.0 does not show {element}'s {prop}");
    }
    for signal in signals {
        assert!(
            out.contains(&format!("\"{signal}\"")),
            "gst-inspect-1.0 does not show {element}'s signal {signal}"
        );
    }
}

/// An appsink named `sink` in `p` that keeps every buffer it gets.
pub fn collect_buffers(p: &gst::Pipeline) -> std::sync::Arc<std::sync::Mutex<Vec<gst::Buffer>>> {
    let sink = p
        .by_name("sink")
        .expect("an element named sink")
        .downcast::<gst_app::AppSink>()
        .expect("sink is an appsink");
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = out.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                o.lock()
                    .unwrap()
                    .push(sample.buffer_owned().expect("a buffer"));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    out
}

/// A pipeline run with a fault injected: its bus log and how long stopping it took.
pub struct FaultRun {
    /// What the run put on the bus.
    pub log: RunLog,
    /// How long the change to NULL took.
    pub stop: Duration,
}

/// Runs `desc` (with a fault injected into one vigil element) to EOS or ERROR, then stops it
/// within 2 s.
pub fn run_fault_pipeline(desc: &str) -> FaultRun {
    let p = pipeline(desc);
    let log = run(&p, Duration::from_secs(30), Duration::from_millis(1000));
    let stop = stop_within(&p, Duration::from_secs(2));
    FaultRun { log, stop }
}

/// `fault-injection=PLAN`, or nothing for an empty plan.
pub fn fault_property(plan: &str) -> String {
    if plan.is_empty() {
        String::new()
    } else {
        format!("fault-injection={plan}")
    }
}

/// The watchdog contract for one injected fault: exactly one ERROR carries the
/// `vigil-watchdog` details (with `reason` and `phase`), it comes first, from an element whose
/// path contains `source`, says the output is truncated, arrives within `limit`, and the
/// pipeline then stops within 2 s. The source may follow with its generic "streaming stopped"
/// ERROR, as after any flow error.
pub fn assert_one_watchdog_error(
    r: &FaultRun,
    source: &str,
    reason: &str,
    phase: &str,
    limit: Duration,
) {
    assert!(!r.log.timed_out, "the run hung: {:?}", r.log);
    assert_eq!(
        r.log.watchdog_errors().len(),
        1,
        "one watchdog ERROR: {}",
        r.log.error_text()
    );
    assert!(
        r.log.errors[0].source.contains(source),
        "{}",
        r.log.error_text()
    );
    let d = r.log.watchdog_errors()[0];
    assert_eq!(d.get::<&str>("reason").unwrap(), reason);
    assert_eq!(d.get::<&str>("phase").unwrap(), phase);
    assert!(d.get::<u64>("frames-in").is_ok() && d.get::<u64>("idle-ms").is_ok());
    assert!(
        r.log.errors[0].text.contains("truncated"),
        "{}",
        r.log.errors[0].text
    );
    assert!(
        r.log.errors[0].at < limit,
        "ERROR after {:?}, limit {limit:?}",
        r.log.errors[0].at
    );
    assert!(r.stop < Duration::from_secs(2));
}

/// The appsrc named `name` in `p`.
pub fn appsrc(p: &gst::Pipeline, name: &str) -> gst_app::AppSrc {
    p.by_name(name)
        .unwrap_or_else(|| panic!("no element named {name}"))
        .downcast::<gst_app::AppSrc>()
        .unwrap_or_else(|_| panic!("{name} is not an appsrc"))
}

/// The appsink named `name` in `p`.
pub fn appsink(p: &gst::Pipeline, name: &str) -> gst_app::AppSink {
    p.by_name(name)
        .unwrap_or_else(|| panic!("no element named {name}"))
        .downcast::<gst_app::AppSink>()
        .unwrap_or_else(|_| panic!("{name} is not an appsink"))
}

/// Pushes `payloads` into `src` from a thread of its own, frame `i` at `i * duration`, then
/// EOS; stops early if the pipeline refuses a buffer.
pub fn push_timed(src: gst_app::AppSrc, payloads: Vec<Vec<u8>>, duration: gst::ClockTime) {
    std::thread::spawn(move || {
        for (i, data) in payloads.into_iter().enumerate() {
            let mut b = gst::Buffer::from_mut_slice(data);
            {
                let b = b.get_mut().expect("a new buffer");
                b.set_pts(duration * i as u64);
                b.set_duration(duration);
            }
            if src.push_buffer(b).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    });
}

/// Runs the launch line `desc` to EOS or ERROR (bounded by `deadline`) and stops it within 2 s.
pub fn run_to_end(desc: &str, deadline: Duration) -> RunLog {
    let p = pipeline(desc);
    let log = run(&p, deadline, Duration::from_millis(300));
    stop_within(&p, Duration::from_secs(2));
    log
}

/// The OBU types of a temporal unit in the low-overhead format (every OBU with its size field,
/// as SVT-AV1 writes them).
pub fn obu_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut p = 0;
    while p < data.len() {
        let header = data[p];
        types.push((header >> 3) & 0x0f);
        let mut q = p + 1 + usize::from(header & 0x04 != 0);
        let mut size = 0usize;
        for i in 0..8 {
            let Some(&b) = data.get(q) else {
                return types;
            };
            q += 1;
            size |= ((b & 0x7f) as usize) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        p = q + size;
    }
    types
}

/// The C example program (`examples/c/vigil-record.c`): the meson-built one
/// (`VIGIL_C_EXAMPLE`, set by `meson test`), or one compiled here with `cc` and
/// `pkg-config --cflags --libs gstreamer-1.0`, as its header says.
pub fn c_example() -> PathBuf {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("VIGIL_C_EXAMPLE") {
                return PathBuf::from(p);
            }
            let dir = scratch("c-example-build");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/c/vigil-record.c");
            let out = dir.join("vigil-record");
            let (ok, flags, err) = run_tool(
                Command::new("pkg-config").args(["--cflags", "--libs", "gstreamer-1.0"]),
                Duration::from_secs(30),
            );
            assert!(ok, "pkg-config gstreamer-1.0: {err}");
            let (ok, _, err) = run_tool(
                Command::new("cc")
                    .args(["-Wall", "-Wextra", "-Werror"])
                    .arg(&src)
                    .arg("-o")
                    .arg(&out)
                    .args(flags.split_whitespace()),
                Duration::from_secs(120),
            );
            assert!(ok, "cc vigil-record.c: {err}");
            out
        })
        .clone()
}
