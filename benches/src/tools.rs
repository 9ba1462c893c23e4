// SPDX-License-Identifier: MPL-2.0
//! Running the reference command-line tools: timed, bounded, quiet, and with their error output
//! kept for the report when they fail.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::runner::Run;

/// What a whole process cost, from its start to its exit (`wait4`'s resource usage).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCost {
    /// Wall-clock seconds from the spawn to the exit.
    pub wall: f64,
    /// CPU seconds in user mode, all threads.
    pub user: f64,
    /// CPU seconds in the kernel on the process's behalf, all threads.
    pub sys: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

fn timeval_secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Runs `cmd` to completion within `timeout` as a fresh process and returns what it cost
/// (wall time from spawn to exit, user and system CPU time and peak RSS from `wait4`).
/// Standard output is discarded; standard error goes to `log`. A failing exit is an error
/// that quotes the end of its log; a process still running at `timeout` is killed.
pub fn run_process(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
) -> Result<ProcessCost, String> {
    run_process_for(cmd, log, timeout, None)
}

/// As [`run_process`]; with `interrupt_after`, the process is sent SIGINT (Ctrl-C) at that
/// time, as a user stops a live pipeline, and its exit after it counts as a clean end.
pub fn run_process_for(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    interrupt_after: Option<Duration>,
) -> Result<ProcessCost, String> {
    let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let name = format!("{:?}", cmd.get_program());
    // The process is started by a small spawner (this program, re-executed): Linux keeps a
    // process's RSS high-water mark across exec, so a child forked straight from this big
    // harness would report the harness's size as its own peak.
    let result = log.with_extension("cost");
    let _ = std::fs::remove_file(&result);
    let mut wrapped;
    let cmd = if SPAWNER.load(std::sync::atomic::Ordering::SeqCst) {
        wrapped = spawner(cmd, &result)?;
        &mut wrapped
    } else {
        cmd
    };
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    // The child is reaped here with wait4 (for its rusage), never through `Child`.
    std::mem::forget(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = loop {
            // SAFETY: status and usage are valid for writes; pid is our own child.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            break r;
        };
        let wall = started.elapsed().as_secs_f64();
        let _ = tx.send((r, status, usage, wall));
    });
    let mut interrupted = false;
    let waited = match interrupt_after {
        Some(after) => match rx.recv_timeout(after.min(timeout)) {
            Ok(v) => Ok(v),
            Err(_) => {
                interrupted = true;
                // SAFETY: sending a signal to our own unreaped child.
                unsafe { libc::kill(pid, libc::SIGINT) };
                rx.recv_timeout(timeout.saturating_sub(after))
            }
        },
        None => rx.recv_timeout(timeout),
    };
    let (r, status, usage, wall) = match waited {
        Ok(v) => v,
        Err(_) => {
            // SAFETY: sending a signal to our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(10));
            return Err(format!(
                "{name} did not finish within {} s",
                timeout.as_secs()
            ));
        }
    };
    if r == -1 {
        return Err(format!(
            "waiting for {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if interrupt_after.is_some() && !interrupted {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!(
            "{name} ended before it was stopped: {}",
            text.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
        ));
    }
    let stopped_by_us = interrupted
        && (libc::WIFEXITED(status)
            || (libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGINT));
    let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !(stopped_by_us || clean_exit) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        let how = if libc::WIFEXITED(status) {
            format!("exit status {}", libc::WEXITSTATUS(status))
        } else {
            format!("signal {}", libc::WTERMSIG(status))
        };
        return Err(format!(
            "{name} failed ({how}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    // What the spawner measured of its child (the spawner's own cost is left out).
    if let Some(c) = std::fs::read_to_string(&result)
        .ok()
        .and_then(|t| ProcessCost::parse(&t))
    {
        let _ = std::fs::remove_file(&result);
        return Ok(c);
    }
    Ok(ProcessCost {
        wall,
        user: timeval_secs(usage.ru_utime),
        sys: timeval_secs(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    })
}

impl ProcessCost {
    fn parse(text: &str) -> Option<Self> {
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        (v.len() == 4).then(|| Self {
            wall: v[0],
            user: v[1],
            sys: v[2],
            max_rss_kib: v[3] as u64,
        })
    }
}

/// Whether this program can act as the spawner (set by `main`; unit tests spawn directly).
pub static SPAWNER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The argument that makes this program a spawner (see [`spawn_main`]).
pub const SPAWN_ARG: &str = "--spawn-measured";

/// `cmd` run through the spawner, which writes its cost to `result`.
fn spawner(cmd: &Command, result: &Path) -> Result<Command, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut w = Command::new(me);
    w.arg(SPAWN_ARG)
        .arg(result)
        .arg("--")
        .arg(cmd.get_program());
    w.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        w.current_dir(d);
    }
    Ok(w)
}

static SPAWNED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = SPAWNED.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The spawner: `PROGRAM --spawn-measured RESULT -- COMMAND ARGS...` runs COMMAND as its
/// child (killed if the spawner dies; SIGINT and SIGTERM passed on), waits for it with
/// `wait4`, writes "wall user sys max_rss_kib" to RESULT and exits as the child did.
pub fn spawn_main(args: &[String]) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let (Some(result), Some("--"), Some(program)) =
        (args.first(), args.get(1).map(String::as_str), args.get(2))
    else {
        eprintln!("usage: {SPAWN_ARG} RESULT -- COMMAND [ARGS...]");
        return std::process::ExitCode::from(2);
    };
    let mut cmd = Command::new(program);
    cmd.args(&args[3..]);
    // SAFETY: prctl is async-signal-safe and only affects the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let handler = forward_signal as extern "C" fn(libc::c_int);
    // SAFETY: installing a handler that only calls kill.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let started = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot run {program}: {e}");
            return std::process::ExitCode::from(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    SPAWNED.store(pid, std::sync::atomic::Ordering::SeqCst);
    std::mem::forget(child);
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is valid for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out-pointers; pid is our child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    let wall = started.elapsed().as_secs_f64();
    let _ = std::fs::write(
        result,
        format!(
            "{wall} {} {} {}",
            timeval_secs(usage.ru_utime),
            timeval_secs(usage.ru_stime),
            usage.ru_maxrss.max(0)
        ),
    );
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::ExitCode::from(code as u8)
}

/// Runs `cmd` as [`run_process`] and gives its wall-clock seconds (for preparing inputs and
/// building peers, where nothing else is measured).
pub fn run_timed(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<f64, String> {
    run_process(cmd, log, timeout).map(|c| c.wall)
}

/// Runs `cmd` as [`run_process`] and gives its cost as a [`Run`] (wall time, CPU time, peak
/// RSS) with `bytes` of output.
pub fn run_measured(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    bytes: Option<u64>,
) -> Result<Run, String> {
    let c = run_process(cmd, log, timeout)?;
    Ok(Run::from_process(c, bytes))
}

/// The command that runs `desc` as a user would: `gst-launch-1.0 -q DESC`, with the plugins of
/// `plugin_path` on `GST_PLUGIN_PATH` (the description is split at white space, as a shell
/// would split an unquoted one).
pub fn gst_launch(desc: &str, plugin_path: &str) -> Command {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_path);
    cmd
}

/// The first line a command prints (on either stream), or `None` if it cannot run.
pub fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Whether `program` can be found on `PATH`.
pub fn exists(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Size of a file in bytes (0 if it is missing).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vigil-bench-tools-{}.log", std::process::id()))
    }

    #[test]
    fn a_process_costs_its_cpu_time_and_its_memory() {
        // About 0.2 s of CPU in a shell loop, and a 64 MiB allocation by `head`.
        let c = run_process(
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; head -c 67108864 /dev/zero | tail -c 1 >/dev/null"]),
            &log(),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(c.user + c.sys > 0.05, "{c:?}");
        assert!(c.wall >= c.user * 0.5, "{c:?}");
        assert!(c.max_rss_kib > 1000, "{c:?}");
    }

    #[test]
    fn failures_timeouts_and_interrupts_are_told_apart() {
        let e = run_process(
            Command::new("sh").args(["-c", "echo broken >&2; exit 3"]),
            &log(),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(e.contains("exit status 3") && e.contains("broken"), "{e}");
        let t = Instant::now();
        let e = run_process(
            Command::new("sleep").arg("30"),
            &log(),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        // Stopped with Ctrl-C as a live pipeline is: a clean end.
        let c = run_process_for(
            Command::new("sleep").arg("30"),
            &log(),
            Duration::from_secs(10),
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert!(c.wall >= 0.3 && c.wall < 5.0, "{c:?}");
        // One that ends by itself before it is stopped did not run as long as asked.
        let e = run_process_for(
            &mut Command::new("true"),
            &log(),
            Duration::from_secs(10),
            Some(Duration::from_secs(5)),
        )
        .unwrap_err();
        assert!(e.contains("ended before it was stopped"), "{e}");
    }
}
