// SPDX-License-Identifier: MPL-2.0
//! vigil's side-by-side benchmark harness: measures every vigil element against the tools and
//! elements a user would otherwise pick, on the same inputs, with interleaved rounds, and writes
//! a Markdown report with a chart.
//!
//! `scripts/bench.sh --quick [--out DIR]` is the smoke run (small inputs, a few minutes);
//! `scripts/bench.sh --full` writes `docs/benchmarks.md` and `docs/benchmarks.png`.

mod chart;
mod context;
mod gstrun;
mod inputs;
mod machine;
mod peers;
mod report;
mod runner;
mod stats;
mod suites;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use gst::prelude::*;

use context::{Ctx, Mode};
use report::{Item, Report, Section};

const USAGE: &str = "usage: bench (--quick | --full) [--out DIR] [--work DIR] [--rounds N] \
[--plugin-dir DIR] [--no-build] [--build-peers | --no-peers] [--only encoder,decoder,watchdog,sink,failover,live,scale,soak] [--soak-minutes M] \
[--presets 8,10,12] [--font FILE] | --render DIR/benchmarks.json";

/// The plugins the harness loads from the release build.
const PLUGIN_PACKAGES: [&str; 3] = [
    "gst-plugin-vigil-svtav1",
    "gst-plugin-vigil-dav1d",
    "gst-plugin-vigil-sink",
];
const FAILOVER_PACKAGE: &str = "gst-plugin-vigil-failover";
const VIGIL_ELEMENTS: [&str; 3] = ["vigilsvtav1enc", "vigildav1ddec", "vigilsink"];
const SUITES: [&str; 8] = [
    "encoder", "decoder", "watchdog", "sink", "failover", "live", "scale", "soak",
];

#[derive(Debug)]
struct Args {
    mode: Mode,
    out: Option<PathBuf>,
    work: Option<PathBuf>,
    rounds: Option<usize>,
    plugin_dir: Option<PathBuf>,
    build: bool,
    peers: Option<bool>,
    only: Vec<String>,
    font: PathBuf,
    render: Option<PathBuf>,
    presets: Option<Vec<u32>>,
    soak_minutes: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Quick,
        out: None,
        work: None,
        rounds: None,
        plugin_dir: None,
        build: true,
        peers: None,
        only: SUITES.iter().map(|s| s.to_string()).collect(),
        font: PathBuf::from(chart::DEFAULT_FONT),
        render: None,
        presets: None,
        soak_minutes: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--quick" => args.mode = Mode::Quick,
            "--full" => args.mode = Mode::Full,
            "--out" => args.out = Some(value()?.into()),
            "--work" => args.work = Some(value()?.into()),
            "--rounds" => {
                let n: usize = value()?.parse().map_err(|_| "--rounds needs a number")?;
                args.rounds = Some(n.max(1));
            }
            "--plugin-dir" => args.plugin_dir = Some(value()?.into()),
            "--no-build" => args.build = false,
            "--build-peers" => args.peers = Some(true),
            "--no-peers" => args.peers = Some(false),
            "--only" => {
                args.only = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = args.only.iter().find(|s| !SUITES.contains(&s.as_str())) {
                    return Err(format!("unknown suite {bad}\n{USAGE}"));
                }
            }
            "--font" => args.font = value()?.into(),
            "--render" => args.render = Some(value()?.into()),
            "--presets" => {
                let list = value()?
                    .split(',')
                    .map(|p| p.trim().parse::<u32>().ok().filter(|p| *p <= 13))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--presets needs SVT-AV1 presets (0-13) separated by commas")?;
                args.presets = Some(list);
            }
            "--soak-minutes" => {
                let m: f64 = value()?
                    .parse()
                    .ok()
                    .filter(|m: &f64| *m > 0.0)
                    .ok_or("--soak-minutes needs a number of minutes above 0")?;
                args.soak_minutes = Some(m);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn build_plugins(root: &Path) -> Result<(), String> {
    eprintln!("vigil benches: cargo build --release of the plugins");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["build", "--release", "--locked"]);
    for p in PLUGIN_PACKAGES {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the plugins failed ({status})"));
    }
    // The failover plugin is the newest; a tree where it does not build still benchmarks the
    // other elements, and the report says failover was not measured.
    let failover = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", FAILOVER_PACKAGE])
        .status();
    if !failover.is_ok_and(|s| s.success()) {
        eprintln!("vigil benches: {FAILOVER_PACKAGE} did not build; failover is not measured");
    }
    Ok(())
}

/// Loads every plugin in `dir` into the registry; returns the file each `elements` comes from.
fn load_plugins(dir: &Path, elements: &[&str]) -> Result<Vec<(String, String)>, String> {
    gst::Registry::get().scan_path(dir);
    elements
        .iter()
        .map(|e| {
            let factory = gst::ElementFactory::find(e)
                .ok_or_else(|| format!("element {e} not found in {}", dir.display()))?;
            let plugin = factory
                .plugin()
                .ok_or_else(|| format!("{e} has no plugin"))?;
            let file = plugin
                .filename()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            Ok((e.to_string(), format!("{} {}", file, plugin.version())))
        })
        .collect()
}

fn method(mode: Mode, rounds: usize) -> Vec<String> {
    vec![
        format!(
            "{} mode: a comparison runs {rounds} rounds unless its table gives another number; \
             in each round every case runs once, in an order that rotates from round to round. \
             Tables give the median over rounds with the minimum and maximum.",
            mode.name()
        ),
        "Ratios are taken round by round (the case's speed over the reference's speed in the \
         same round), then summarised the same way: a slow spell of the machine falls on both \
         sides of a ratio, so ratios are fair where absolute numbers are not."
            .into(),
        "One method for every comparison: each case, GStreamer pipeline or command-line tool, \
         runs as a fresh process of its own (`gst-launch-1.0 -q PIPELINE` with the plugins on \
         `GST_PLUGIN_PATH`, as a user runs it, or the tool's command line), timed from its \
         start to its exit; its CPU time (user + system, all threads) and peak RSS come from \
         `wait4`. Live pipelines are stopped with Ctrl-C (SIGINT) after a fixed time. Only the \
         figures whose point is one call or the time between buffers (stop latency, failover \
         switch times, the sink's streaming-thread time, the bitrate-change stall) are measured \
         in the harness process, and their sections say so."
            .into(),
        "The machine may be shared: other work (builds, tests) can run during a run. The load \
         averages at its start and end are in the machine table. Interleaving keeps the ratios \
         fair under such load; the absolute numbers are only indicative."
            .into(),
    ]
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if let Some(data) = &args.render {
        return render(data, &args.font);
    }
    let root = workspace_root();
    let target = target_dir(&root);
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| target.join("bench-work"));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let out = args.out.clone().unwrap_or_else(|| match args.mode {
        Mode::Full => root.join("docs"),
        Mode::Quick => target.join("bench-quick"),
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    let plugin_dir = match &args.plugin_dir {
        Some(d) => d.clone(),
        None => {
            if args.build {
                build_plugins(&root)?;
            }
            target.join("release")
        }
    };
    gst::init().map_err(|e| format!("gst::init: {e}"))?;
    let started = machine::now();
    let load_start = machine::load_average();
    let mut loaded = load_plugins(&plugin_dir, &VIGIL_ELEMENTS)?;
    if let Ok(failover) = load_plugins(&plugin_dir, &["vigilfailoversrc"]) {
        loaded.extend(failover);
    }

    let rounds = args.rounds.unwrap_or(match args.mode {
        Mode::Quick => 3,
        Mode::Full => 5,
    });
    let mut ctx = Ctx {
        mode: args.mode,
        work,
        rounds,
        dav1ddec: None,
        fallbacksrc: None,
        skipped: Vec::new(),
        presets: args.presets.clone(),
        plugin_path: plugin_dir.display().to_string(),
    };
    let build_peers = args.peers.unwrap_or(args.mode == Mode::Full);
    let peers_root = target.join("bench-peers");
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let mut peers_used = Vec::new();
    if args.peers != Some(false)
        && ["decoder", "failover", "live", "scale"]
            .iter()
            .any(|s| wants(s))
    {
        let mut list = Vec::new();
        if wants("decoder") || wants("live") {
            list.push(peers::DAV1DDEC);
        }
        if (wants("failover") || wants("live") || wants("scale"))
            && ctx.has_elements(&["vigilfailoversrc"])
        {
            list.push(peers::FALLBACKSRC);
        }
        for peer in list {
            match peers::ensure(&peers_root, peer, build_peers) {
                Ok((dir, version)) => {
                    gst::Registry::get().scan_path(&dir);
                    ctx.plugin_path = format!("{}:{}", ctx.plugin_path, dir.display());
                    if gst::ElementFactory::find(peer.element).is_some() {
                        peers_used.push((
                            peer.element.to_string(),
                            format!("{} {version}", peer.krate),
                        ));
                        if peer.element == peers::DAV1DDEC.element {
                            ctx.dav1ddec = Some(version);
                        } else {
                            ctx.fallbacksrc = Some(version);
                        }
                    } else {
                        ctx.skipped.push(format!(
                            "{}: built, but the registry has no {} (see {})",
                            peer.krate,
                            peer.element,
                            dir.display()
                        ));
                    }
                }
                Err(e) => ctx
                    .skipped
                    .push(format!("gst-plugins-rs `{}`: {e}", peer.element)),
            }
        }
    }

    let mut report = Report {
        mode: args.mode.name().into(),
        rounds,
        started,
        method: method(args.mode, rounds),
        ..Report::default()
    };
    let mut run_suite =
        |name: &str,
         ctx: &mut Ctx,
         f: &mut dyn FnMut(&mut Ctx) -> Result<Option<Section>, String>| {
            if !wants(name) {
                return;
            }
            eprintln!("vigil benches: {name}");
            match f(ctx) {
                Ok(Some(section)) => report.sections.push(section),
                Ok(None) => {}
                Err(e) => ctx.skipped.push(format!("{name}: {e}")),
            }
        };
    let mut targets = Vec::new();
    run_suite("encoder", &mut ctx, &mut |ctx| {
        let (s, t) = suites::encoder::run(ctx)?;
        targets.extend(t);
        Ok(Some(s))
    });
    run_suite("decoder", &mut ctx, &mut |ctx| {
        let (s, t) = suites::decoder::run(ctx)?;
        targets.extend(t);
        Ok(Some(s))
    });
    run_suite("watchdog", &mut ctx, &mut |ctx| {
        let (s, t) = suites::watchdog::run(ctx)?;
        targets.extend(t);
        Ok(Some(s))
    });
    run_suite("sink", &mut ctx, &mut |ctx| {
        for (id, what) in [
            ("sink-file", "200 MiB copy"),
            ("sink-small", "small buffers"),
        ] {
            targets.push(report::Target {
                label: format!("sink, {what}: vigilsink (defaults) >= 0.9x filesink"),
                comparison: id.into(),
                case: "vigilsink (defaults)".into(),
                vs: "filesink".into(),
                min_ratio: 0.9,
                cpu_at_most: false,
                at_most: None,
            });
        }
        suites::sink::run(ctx).map(Some)
    });
    run_suite("live", &mut ctx, &mut |ctx| {
        suites::live::run(ctx).map(Some)
    });
    run_suite("failover", &mut ctx, &mut |ctx| {
        Ok(suites::failover::run(ctx)?.map(|(s, t)| {
            targets.extend(t);
            s
        }))
    });

    run_suite("scale", &mut ctx, &mut |ctx| {
        if !ctx.has_elements(&["vigilfailoversrc"]) {
            return Err("vigilfailoversrc is not built".into());
        }
        suites::scale::run(ctx).map(Some)
    });
    let soak_minutes = args.soak_minutes.unwrap_or(match args.mode {
        Mode::Quick => 0.25,
        Mode::Full => 30.0,
    });
    run_suite("soak", &mut ctx, &mut |ctx| {
        if !ctx.has_elements(&["vigilfailoversrc"]) {
            return Err("vigilfailoversrc is not built".into());
        }
        suites::soak::run(ctx, soak_minutes).map(Some)
    });
    report.targets = targets;
    report.finished = machine::now();
    let mut machine = machine::describe();
    machine.push((
        "load average (1, 5, 15 min) at start / end".into(),
        format!("{load_start} / {}", machine::load_average()),
    ));
    for (element, source) in loaded.iter().chain(&peers_used) {
        machine.push((format!("`{element}` from"), source.clone()));
    }
    report.machine = machine;
    report.skipped = ctx.skipped;
    let data = out.join("benchmarks.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&data, json).map_err(|e| format!("{}: {e}", data.display()))?;
    write_report(&root, &out, report, &args.font)
}

/// Draws the chart and writes `benchmarks.md` into `out`; a full run also shows the
/// hand-written analysis (`benches/analysis.md`).
fn write_report(root: &Path, out: &Path, mut report: Report, font: &Path) -> Result<(), String> {
    if report.mode == Mode::Full.name() {
        report.analysis = std::fs::read_to_string(root.join("benches").join("analysis.md")).ok();
    }
    let png = out.join("benchmarks.png");
    report.chart = Some("benchmarks.png".into());
    if let Err(e) = chart::draw(&png, &report, font) {
        eprintln!("vigil benches: no chart: {e}");
        report.chart = None;
        report.skipped.push(format!("Chart: {e}"));
    }
    let md = out.join("benchmarks.md");
    std::fs::write(&md, report.to_markdown()).map_err(|e| format!("{}: {e}", md.display()))?;
    eprintln!("vigil benches: wrote {}", md.display());
    print_summary(&report);
    Ok(())
}

/// Writes the report again from the data a run saved (`benchmarks.json`), next to it: for the
/// analysis, the chart or the layout, without measuring again.
fn render(data: &Path, font: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let report: Report =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", data.display()))?;
    let out = data.parent().unwrap_or(Path::new("."));
    write_report(&workspace_root(), out, report, font)
}

fn print_summary(report: &Report) {
    println!("vigil benches ({} mode): targets", report.mode);
    for o in report.target_outcomes() {
        let r = o
            .ratio
            .map(|r| match &o.target.at_most {
                Some((key, _)) => format!("{:.0} {key} ({:.0}-{:.0})", r.median, r.min, r.max),
                None => format!("{:.3}x ({:.3}-{:.3})", r.median, r.min, r.max),
            })
            .unwrap_or_else(|| "not measured".into());
        let met = match o.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        println!("  {}: {r} {met}", o.target.label);
    }
    for s in &report.sections {
        for i in &s.items {
            if let Item::Comparison(c) = i
                && c.results.iter().any(|r| r.error.is_some())
            {
                println!("  {}: some cases failed (see the report)", c.title);
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(tools::SPAWN_ARG) {
        return tools::spawn_main(&args[1..]);
    }
    tools::SPAWNER.store(true, std::sync::atomic::Ordering::SeqCst);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil benches: {e}");
            ExitCode::FAILURE
        }
    }
}
