// SPDX-License-Identifier: MPL-2.0
//! Soak: one channel for a long time (failover with a primary that ends every 8 s and is
//! retried, a live backup, the encoder, a muxer and the sink), as a whole `gst-launch-1.0`
//! process; its RSS and thread count are sampled from `/proc` while it runs, the switches are
//! counted from its messages, and the file is checked at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::gstrun::{launch, run_to_eos};
use crate::report::{Item, Section};
use crate::suites::failover::LiveServer;

/// RSS (KiB) and threads of process `pid`, from `/proc/PID/status`.
fn rss_and_threads(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// The primary: an 8 s Matroska file (it ends, and is retried, every time).
fn primary_file(ctx: &Ctx) -> Result<std::path::PathBuf, String> {
    let path = ctx.work.join("soak-primary-8s.mkv");
    if !path.is_file() {
        let tmp = path.with_extension("tmp.mkv");
        let p = launch(&format!(
            "videotestsrc pattern=smpte num-buffers=240 \
             ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! jpegenc \
             ! matroskamux ! filesink location={}",
            tmp.display()
        ))?;
        run_to_eos(&p, Duration::from_secs(300))?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// Duration in seconds and frame count of the video of `file`, from ffprobe.
fn probe(file: &std::path::Path) -> Result<(f64, u64), String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "format=duration:stream=nb_read_packets",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(file)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    match (get("duration"), get("nb_read_packets")) {
        (Some(d), Some(n)) => Ok((d, n as u64)),
        _ => Err(format!(
            "ffprobe cannot read {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The soak section: `minutes` of one channel.
pub fn run(ctx: &mut Ctx, minutes: f64) -> Result<Section, String> {
    let primary = primary_file(ctx)?;
    let server = LiveServer::start(640, 360)?;
    let backup = format!("{}/b", server.base);
    // Named for this run: a quick run started meanwhile (same work folder) must not replace it.
    let out = ctx.work.join(format!("soak-{}.mkv", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let desc = format!(
        "vigilfailoversrc name=f enable-audio=false retry-backoff-min=500 retry-backoff-max=2000 \
         failback-delay=0 uris=<\"file://{}\",\"{backup}\"> \
         video-caps=video/x-raw,width=640,height=360,framerate=30/1 \
         f.video ! vigilsvtav1enc preset=12 pred-structure=low-delay rate-control=cbr \
         target-bitrate=800 ! matroskamux ! vigilsink location={}",
        primary.display(),
        out.display()
    );
    let log = ctx.work.join("soak.log");
    let mut child = Command::new("gst-launch-1.0")
        .args(["-e", "-m"])
        .args(desc.split_whitespace())
        .env("GST_PLUGIN_PATH", &ctx.plugin_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot run gst-launch-1.0: {e}"))?;
    let pid = child.id();
    let switches = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (s, e) = (switches.clone(), errors.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("vigil-failover-switched") {
                s.fetch_add(1, Ordering::Relaxed);
            }
            if line.starts_with("ERROR") {
                e.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let total = Duration::from_secs_f64(minutes * 60.0);
    let every = if total > Duration::from_secs(300) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    };
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut died = None;
    while started.elapsed() < total {
        std::thread::sleep(every.min(total.saturating_sub(started.elapsed())));
        if let Ok(Some(status)) = child.try_wait() {
            died = Some(status);
            break;
        }
        if let Some((rss, threads)) = rss_and_threads(pid) {
            samples.push((
                started.elapsed().as_secs_f64(),
                rss,
                threads,
                switches.load(Ordering::Relaxed),
            ));
            eprintln!(
                "  [soak] {:.0} s: RSS {:.1} MiB, {threads} threads, {} switches",
                started.elapsed().as_secs_f64(),
                rss as f64 / 1024.0,
                switches.load(Ordering::Relaxed)
            );
        }
    }
    let ran = started.elapsed().as_secs_f64();
    if died.is_none() {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                break None;
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let _ = reader.join();
    drop(server);
    if let Some(s) = died {
        return Err(format!(
            "the soak pipeline ended by itself after {ran:.0} s ({s}); see {}",
            log.display()
        ));
    }
    let probed = probe(&out);
    let _ = std::fs::remove_file(&out);
    let (duration, frames) = probed?;
    let mut md = format!(
        "One channel for {minutes} minutes as one `gst-launch-1.0 -e -m` process: \
         `vigilfailoversrc` with an 8 s Matroska file as primary (it ends every 8 s and is \
         retried: `retry-backoff-min=500`, `failback-delay=0`) and a live 640x360 RTSP stream \
         on loopback as backup, `vigilsvtav1enc preset=12 pred-structure=low-delay \
         rate-control=cbr target-bitrate=800`, `matroskamux`, `vigilsink`; stopped with \
         Ctrl-C at the end. RSS and threads are read from `/proc/PID/status`.\n\n\
         Result: {} switches, {} ERROR messages, {}; the file plays for {duration:.1} s \
         with {frames} video frames (ffprobe).\n\n\
         | time s | RSS MiB | threads | switches so far |\n|---:|---:|---:|---:|\n",
        switches.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none: killed after 30 s".into()),
    );
    for (t, rss, threads, sw) in &samples {
        md.push_str(&format!(
            "| {t:.0} | {:.1} | {threads} | {sw} |\n",
            *rss as f64 / 1024.0
        ));
    }
    if samples.len() >= 4 {
        let warm = samples.len() / 4;
        let (a, b) = (&samples[warm], &samples[samples.len() - 1]);
        md.push_str(&format!(
            "\nAfter warm-up (from {:.0} s to {:.0} s): RSS {:+.1} MiB, threads {:+}.\n",
            a.0,
            b.0,
            (b.1 as f64 - a.1 as f64) / 1024.0,
            b.2 as i64 - a.2 as i64
        ));
    }
    Ok(Section {
        title: "Soak".into(),
        items: vec![Item::Text(md)],
    })
}
