// SPDX-License-Identifier: MPL-2.0
//! What the numbers were measured on: CPU, cores, memory, OS, kernel, load, and the versions of
//! every library and tool compared.

use std::process::Command;

use crate::tools::first_line;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn cpuinfo(key: &str) -> Option<String> {
    read("/proc/cpuinfo")
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Model name, with family, model, clock and the vector extensions the codecs pick from.
fn cpu_model() -> String {
    let name = cpuinfo("model name").unwrap_or_else(|| "unknown".into());
    let flags = cpuinfo("flags").unwrap_or_default();
    let simd: Vec<&str> = ["avx2", "avx512f", "avx512bw", "avx512vl"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let hypervisor = if flags.split_whitespace().any(|x| x == "hypervisor") {
        ", virtual machine"
    } else {
        ""
    };
    format!(
        "{name} (family {}, model {}, {} MHz{hypervisor}; {})",
        cpuinfo("cpu family").unwrap_or_default(),
        cpuinfo("model").unwrap_or_default(),
        cpuinfo("cpu MHz")
            .and_then(|m| m.parse::<f64>().ok())
            .map(|m| format!("{m:.0}"))
            .unwrap_or_default(),
        simd.join(", ")
    )
}

fn memory() -> String {
    read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

fn os() -> String {
    read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages, as the kernel gives them.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn deb_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// Date and time now, in UTC, as `date` prints it.
pub fn now() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| "unknown".into())
}

/// The machine table of the report.
pub fn describe() -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = vec![
        ("CPU".into(), cpu_model()),
        (
            "logical cores".into(),
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "unknown".into()),
        ),
        ("memory".into(), memory()),
        ("OS".into(), os()),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        ("GStreamer".into(), gst::version_string().to_string()),
        (
            "rustc".into(),
            first_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
        ),
    ];
    for (label, package) in [
        ("libsvtav1enc (SVT-AV1)", "libsvtav1enc1"),
        ("SvtAv1EncApp", "svt-av1"),
        ("libdav1d", "libdav1d6"),
        ("dav1d CLI", "dav1d"),
        ("libaom", "libaom3"),
        ("ffmpeg", "ffmpeg"),
        (
            "gst-plugins-bad (av1enc, av1dec)",
            "gstreamer1.0-plugins-bad",
        ),
    ] {
        rows.push((
            label.into(),
            deb_version(package).unwrap_or_else(|| "not installed".into()),
        ));
    }
    rows
}
