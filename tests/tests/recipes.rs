// SPDX-License-Identifier: MPL-2.0
//! Every recipe in README.md and docs/ runs as written: each command of each fenced `sh` block
//! is run with `sh` in a scratch directory that looks like the top of a clone after
//! `meson compile -C build` (`build/plugins` holds the plugins, `build/examples/c/vigil-record` the C example,
//! `examples/` is the
//! repository's, `GST_PLUGIN_PATH=$PWD/build/plugins` is exported as the README says), next to
//! small input files (`in.mkv`, `in.mp4`, `in.ivf`, `in.y4m`, `grain.mkv`, `a.mkv`, `b.mkv`).
//!
//! Only the size of the work changes: `num-buffers=N` is cut to 10, `autovideosink` becomes
//! `fakesink` (no display here), `--seconds N` becomes 5. A recipe that runs until it is
//! stopped (a live source without `num-buffers`, `vigilfailoversrc`) gets Ctrl-C (SIGINT to its
//! `gst-launch-1.0`) after a few seconds, as a user would stop it. Then: the command succeeded,
//! printed no ERROR (nor a CRITICAL or a Python traceback), and every file it wrote plays (a recording stopped by hand must be
//! finished, so it needs `-e`).
//!
//! The commands that are the project's own build and test steps (`./scripts/...`, `meson`,
//! `cargo`, installing packages) are not run here: the suite itself is them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use vigil_tests::*;

/// One command from a fenced `sh` block.
#[derive(Debug, Clone)]
struct Recipe {
    /// `file:line`.
    at: String,
    /// The command, continuation lines joined.
    command: String,
}

/// Commands the suite runs in other ways, with why.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    (
        "./scripts/",
        "the demo, test, torture and packaging scripts are the suite itself",
    ),
    ("meson ", "the meson build and test are the suite itself"),
    (
        "sudo meson ",
        "installing into the system is tested from a staging tree (inspect-installed)",
    ),
    ("cargo ", "the cargo builds and tests are the suite itself"),
    (
        "sudo apt",
        "the Debian package is tested by package-deb (scratch root)",
    ),
    (
        "sudo dpkg",
        "the Debian package is tested by package-deb (scratch root)",
    ),
    (
        "curl ",
        "a scrape needs the pipeline running beside it: tests/tests/metrics.rs scrapes",
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// README.md and every page of docs/.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// The commands of the fenced `sh` blocks of `path`, in order.
fn recipes_in(path: &Path) -> Vec<Recipe> {
    let text = std::fs::read_to_string(path).expect("a document");
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut current: Option<Recipe> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let part = trimmed.strip_suffix('\\');
        let piece = part.unwrap_or(trimmed).trim();
        match current.as_mut() {
            Some(r) => {
                r.command.push(' ');
                r.command.push_str(piece);
            }
            None => {
                if piece.is_empty() || piece.starts_with('#') {
                    continue;
                }
                current = Some(Recipe {
                    at: format!("{name}:{}", i + 1),
                    command: piece.to_string(),
                });
            }
        }
        if part.is_none() {
            out.extend(current.take());
        }
    }
    out
}

/// The command with its work made small (see the module docs).
fn small(command: &str) -> String {
    command
        .split(' ')
        .map(|w| {
            if let Some(n) = w.strip_prefix("num-buffers=")
                && n.parse::<u64>().is_ok_and(|n| n > 10)
            {
                "num-buffers=10".to_string()
            } else if w == "autovideosink" {
                "fakesink".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace("--seconds 30", "--seconds 5")
}

/// Whether the recipe runs until stopped by hand.
fn runs_until_stopped(command: &str) -> bool {
    command.contains("vigilfailoversrc") && command.contains("gst-launch-1.0")
        || (command.contains("is-live=true") && !command.contains("num-buffers="))
}

/// Files the recipe writes (`location=` of a sink).
fn written_files(command: &str) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut files = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if let Some(f) = w.strip_prefix("location=") {
            let sink = words[..i]
                .iter()
                .rev()
                .find(|w| !w.contains('='))
                .copied()
                .unwrap_or_default();
            if sink == "filesink" || sink == "vigilsink" {
                files.push(f.to_string());
            }
        }
    }
    files
}

/// The small inputs the recipes read.
fn make_inputs(dir: &Path) {
    let enc = "vigilsvtav1enc preset=12";
    let small =
        "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1";
    let make = |desc: String| {
        let log = run_to_end(&desc, Duration::from_secs(120));
        assert!(log.eos.is_some(), "{desc}: {}", log.error_text());
    };
    let at = |f: &str| dir.join(f).display().to_string();
    make(format!(
        "{small} ! y4menc ! filesink location={}",
        at("in.y4m")
    ));
    make(format!(
        "{small} ! {enc} ! matroskamux ! filesink location={}",
        at("in.mkv")
    ));
    make(format!(
        "{small} ! {enc} ! av1parse ! mp4mux ! filesink location={}",
        at("in.mp4")
    ));
    make(format!(
        "videotestsrc num-buffers=10 pattern=snow ! video/x-raw,width=320,height=240 \
         ! {enc} film-grain=8 ! matroskamux ! filesink location={}",
        at("grain.mkv")
    ));
    for (name, pattern) in [("a.mkv", "ball"), ("b.mkv", "smpte")] {
        make(format!(
            "videotestsrc num-buffers=90 pattern={pattern} \
             ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc \
             ! matroskamux streamable=true ! filesink location={}",
            at(name)
        ));
    }
    let (ok, _, err) = run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(dir.join("in.mkv"))
            .args(["-c:v", "copy", "-f", "ivf", "-y"])
            .arg(dir.join("in.ivf")),
        Duration::from_secs(60),
    );
    assert!(ok, "ffmpeg (in.ivf): {err}");
}

/// The processes descending from `pid`, with their command names.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u32>().ok())
            .unwrap_or(0);
        parent_of.push((p, ppid, comm));
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp, comm) in &parent_of {
            if *pp == parent {
                out.push((*p, comm.clone()));
                frontier.push(*p);
            }
        }
    }
    out
}

/// What running a recipe gave.
struct Ran {
    ok: bool,
    output: String,
}

/// Runs `command` with `sh` in `dir`; a recipe that runs until stopped gets SIGINT a few
/// seconds after its pipeline is PLAYING.
fn run_recipe(dir: &Path, command: &str, stop_by_hand: bool) -> Ran {
    use std::os::unix::process::CommandExt;
    let log = dir.join("recipe.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("GST_PLUGIN_PATH", dir.join("build/plugins"))
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("SVT_LOG", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0)
        .spawn()
        .expect("sh");
    let start = Instant::now();
    let stop_after = Duration::from_secs(4);
    // gst-launch-1.0 -q says nothing: then Ctrl-C comes this long after the start.
    let playing_limit = Duration::from_secs(20);
    let mut playing_at: Option<Instant> = None;
    let limit = Duration::from_secs(180);
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // Ctrl-C a few seconds after the pipeline is PLAYING (gst-launch-1.0 says so), not
        // at a fixed time from the start: the start includes a registry scan of its own.
        if stop_by_hand && !interrupted && playing_at.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Setting pipeline to PLAYING") || start.elapsed() > playing_limit {
                playing_at = Some(Instant::now());
            }
        }
        if stop_by_hand && !interrupted && playing_at.is_some_and(|t| t.elapsed() > stop_after) {
            for (pid, comm) in descendants(child.id()) {
                if comm.starts_with("gst-launch") {
                    let _ = Command::new("kill")
                        .args(["-INT", &pid.to_string()])
                        .status();
                }
            }
            interrupted = true;
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("`{command}` did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ran {
        ok: status.success(),
        output: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// The duration of a media file, after prerolling it through parsebin: a file whose muxer
/// was not finished has none (Matroska) or does not parse (MP4).
fn playable_duration(path: &Path) -> Result<gst::ClockTime, String> {
    let p = pipeline(&format!(
        "filesrc location={} ! parsebin ! fakesink",
        path.display()
    ));
    let _ = p.set_state(gst::State::Paused);
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(20));
    let duration = p.query_duration::<gst::ClockTime>();
    stop_within(&p, Duration::from_secs(5));
    if r.is_err() {
        return Err(format!("{} does not preroll", path.display()));
    }
    match duration {
        Some(d) if d > gst::ClockTime::ZERO => Ok(d),
        _ => Err(format!("{} has no duration: unfinished", path.display())),
    }
}

#[test]
fn the_recipe_extractor_sees_continuations_and_skips_comments() {
    let dir = scratch("recipe-extractor");
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "text\n```sh\n# a comment\ngst-launch-1.0 a \\\n  ! b\n\nls\n```\n```\nnot sh\n```\n",
    )
    .unwrap();
    let r = recipes_in(&page);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].command, "gst-launch-1.0 a ! b");
    assert_eq!(r[0].at, "page.md:4");
    assert_eq!(r[1].command, "ls");
    assert_eq!(
        small("videotestsrc num-buffers=300 ! autovideosink"),
        "videotestsrc num-buffers=10 ! fakesink"
    );
    assert!(runs_until_stopped(
        "gst-launch-1.0 -e videotestsrc is-live=true ! fakesink"
    ));
    assert_eq!(
        written_files("a ! matroskamux ! vigilsink location=rec.mkv max-buffers=3"),
        vec!["rec.mkv"]
    );
}

#[test]
fn every_recipe_in_the_readme_and_docs_runs_as_written() {
    init();
    let plugins = plugin_dir();
    let mut ran = 0;
    let mut failures = Vec::new();
    for doc in documents() {
        let recipes = recipes_in(&doc);
        if recipes.is_empty() {
            continue;
        }
        // One directory per page: a page's recipes may use what an earlier one made.
        let dir = scratch(&format!(
            "recipes-{}",
            doc.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(dir.join("build")).unwrap();
        std::os::unix::fs::symlink(&plugins, dir.join("build/plugins")).unwrap();
        std::fs::create_dir_all(dir.join("build/examples/c")).unwrap();
        std::os::unix::fs::symlink(c_example(), dir.join("build/examples/c/vigil-record")).unwrap();
        std::os::unix::fs::symlink(repo_root().join("examples"), dir.join("examples")).unwrap();
        make_inputs(&dir);
        for recipe in recipes {
            if let Some((_, why)) = NOT_RUN_HERE
                .iter()
                .find(|(prefix, _)| recipe.command.starts_with(prefix))
            {
                eprintln!("{}: not run here ({why}): {}", recipe.at, recipe.command);
                continue;
            }
            let command = small(&recipe.command);
            let by_hand = runs_until_stopped(&command);
            let files = written_files(&command);
            if by_hand && !files.is_empty() && !command.contains(" -e ") {
                failures.push(format!(
                    "{}: records {files:?} until stopped by hand, without -e (the file would be unfinished): {}",
                    recipe.at, recipe.command
                ));
                continue;
            }
            for f in &files {
                let _ = std::fs::remove_file(dir.join(f));
            }
            eprintln!("{}: running: {command}", recipe.at);
            let r = run_recipe(&dir, &command, by_hand);
            ran += 1;
            let complained = r.output.lines().any(|l| {
                l.starts_with("ERROR")
                    || l.contains("(error)")
                    || l.contains("-CRITICAL **")
                    || l.starts_with("Traceback")
            });
            if !r.ok || complained {
                failures.push(format!(
                    "{}: `{command}` failed:\n{}",
                    recipe.at,
                    r.output.lines().take(30).collect::<Vec<_>>().join("\n")
                ));
                continue;
            }
            for f in &files {
                let path = dir.join(f);
                if f.ends_with(".yuv") {
                    if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0 {
                        failures.push(format!("{}: wrote no {f}", recipe.at));
                    }
                    continue;
                }
                if let Err(e) = playable_duration(&path) {
                    failures.push(format!("{}: {e}: {command}", recipe.at));
                }
            }
        }
    }
    assert!(ran >= 10, "only {ran} recipes found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_python_failover_example_says_clearly_when_the_plugins_are_missing() {
    let dir = scratch("python-no-plugins");
    let (ok, out, err) = run_tool(
        Command::new("/usr/bin/python3")
            .arg(repo_root().join("examples/failover_status.py"))
            .args(["--seconds", "1", "file:///nonexistent.mkv"])
            .env("GST_PLUGIN_PATH", &dir)
            .env("GST_PLUGIN_SYSTEM_PATH_1_0", &dir)
            .env("GST_REGISTRY", dir.join("registry.bin")),
        Duration::from_secs(60),
    );
    assert!(!ok, "it succeeded without the plugins: {out}");
    assert!(!err.contains("Traceback"), "{err}");
    assert!(
        err.contains("vigilfailoversrc is not found") && err.contains("build/plugins"),
        "{err}"
    );
}
