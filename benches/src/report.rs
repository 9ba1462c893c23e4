// SPDX-License-Identifier: MPL-2.0
//! The results of a run and how they read: comparisons (a speed per case, ratios to a reference
//! taken round by round), distributions (percentiles per round), the targets, and the Markdown
//! report.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::runner::{CaseResult, Run};
use crate::stats::Summary;

/// What a comparison's runs are turned into (higher is better for both).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Metric {
    /// Frames per second: `frames` over the run's seconds.
    Fps { frames: u64 },
    /// Megabytes (10^6) per second written: `bytes` over the run's seconds.
    Throughput { bytes: u64 },
}

impl Metric {
    pub fn unit(&self) -> &'static str {
        match self {
            Metric::Fps { .. } => "fps",
            Metric::Throughput { .. } => "MB/s",
        }
    }

    pub fn value(&self, secs: f64) -> f64 {
        match self {
            Metric::Fps { frames } => *frames as f64 / secs,
            Metric::Throughput { bytes } => *bytes as f64 / 1e6 / secs,
        }
    }
}

/// Cases measured against one reference case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Short name, used by targets and the chart.
    pub id: String,
    pub title: String,
    pub metric: Metric,
    /// Index in `results` of the case the ratios are taken against.
    pub reference: usize,
    pub results: Vec<CaseResult>,
    /// Show the output size column.
    pub sizes: bool,
    pub notes: Vec<String>,
}

impl Comparison {
    fn case_index(&self, name: &str) -> Option<usize> {
        self.results.iter().position(|r| r.name == name)
    }

    /// The metric of every round of case `i` (`None` where it did not run).
    fn values(&self, i: usize) -> Vec<Option<f64>> {
        self.results[i]
            .runs
            .iter()
            .map(|r| r.as_ref().map(|r| self.metric.value(r.secs)))
            .collect()
    }

    pub fn summary(&self, i: usize) -> Option<Summary> {
        Summary::of(&self.values(i).into_iter().flatten().collect::<Vec<_>>())
    }

    /// Ratio of case `i` to case `j`, round by round (rounds where both ran).
    pub fn ratio(&self, i: usize, j: usize) -> Option<Summary> {
        let a = self.values(i);
        let b = self.values(j);
        let pairs: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter_map(|(x, y)| Some((*x)? / (*y)?))
            .collect();
        Summary::of(&pairs)
    }

    /// A per-run figure of case `i` over its rounds.
    fn figure(&self, i: usize, f: impl Fn(&Run) -> Option<f64>) -> Vec<Option<f64>> {
        self.results[i]
            .runs
            .iter()
            .map(|r| r.as_ref().and_then(&f))
            .collect()
    }

    /// CPU time of case `i` over that of case `j`, round by round (lower is cheaper).
    pub fn cpu_ratio(&self, i: usize, j: usize) -> Option<Summary> {
        let pairs: Vec<f64> = self
            .figure(i, |r| r.cpu)
            .iter()
            .zip(&self.figure(j, |r| r.cpu))
            .filter_map(|(x, y)| Some((*x)? / (*y)?))
            .collect();
        Summary::of(&pairs)
    }

    /// Whether any case of this comparison ran as a whole process (has CPU figures).
    pub fn has_cpu(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.runs.iter().flatten().any(|r| r.cpu.is_some()))
    }

    /// Median output size of case `i`.
    fn size(&self, i: usize) -> Option<Summary> {
        let v: Vec<f64> = self.results[i]
            .runs
            .iter()
            .flatten()
            .filter_map(|r| r.bytes.map(|b| b as f64))
            .collect();
        Summary::of(&v)
    }
}

/// Per-round percentiles of a per-buffer time, lower is better.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    /// Short name, used by targets.
    #[serde(default)]
    pub id: String,
    pub title: String,
    /// Keys of `Run::values` to show, with their headings.
    pub columns: Vec<(String, String)>,
    /// The key the ratio column is taken on.
    pub ratio_key: String,
    pub reference: usize,
    pub results: Vec<CaseResult>,
    pub notes: Vec<String>,
}

impl Distribution {
    fn values(&self, i: usize, key: &str) -> Vec<Option<f64>> {
        self.results[i]
            .runs
            .iter()
            .map(|r| r.as_ref().and_then(|r| r.values.get(key).copied()))
            .collect()
    }

    fn summary(&self, i: usize, key: &str) -> Option<Summary> {
        Summary::of(
            &self
                .values(i, key)
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        )
    }

    fn ratio(&self, i: usize, j: usize, key: &str) -> Option<Summary> {
        let pairs: Vec<f64> = self
            .values(i, key)
            .iter()
            .zip(&self.values(j, key))
            .filter_map(|(x, y)| Some((*x)? / (*y)?))
            .collect();
        Summary::of(&pairs)
    }
}

/// A speed a user would expect: case `case` of comparison `comparison` at least `min_ratio`
/// times case `vs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub label: String,
    pub comparison: String,
    pub case: String,
    pub vs: String,
    /// The speed ratio to reach, or with `cpu_at_most` the CPU-time ratio not to exceed.
    pub min_ratio: f64,
    /// The target is on CPU time: `case` uses at most `min_ratio` times the CPU of `vs`.
    #[serde(default)]
    pub cpu_at_most: bool,
    /// The target is a figure of a distribution instead of a ratio: the median over rounds of
    /// value `key` of `case` is at most `max` (`vs` and `min_ratio` unused).
    #[serde(default)]
    pub at_most: Option<(String, f64)>,
}

/// One part of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Item {
    Comparison(Comparison),
    Distribution(Distribution),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// Everything a run produced.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub mode: String,
    pub rounds: usize,
    pub started: String,
    pub finished: String,
    pub machine: Vec<(String, String)>,
    pub method: Vec<String>,
    pub sections: Vec<Section>,
    pub targets: Vec<Target>,
    pub skipped: Vec<String>,
    pub chart: Option<String>,
    /// Hand-written analysis shown at the end (not part of the measured data).
    #[serde(skip)]
    pub analysis: Option<String>,
}

/// How a target came out.
#[derive(Debug, Clone)]
pub struct TargetOutcome {
    pub target: Target,
    pub ratio: Option<Summary>,
}

impl TargetOutcome {
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| {
            if let Some((_, max)) = &self.target.at_most {
                r.median <= *max
            } else if self.target.cpu_at_most {
                r.median <= self.target.min_ratio
            } else {
                r.median >= self.target.min_ratio
            }
        })
    }
}

impl Report {
    pub fn comparisons(&self) -> impl Iterator<Item = &Comparison> {
        self.sections.iter().flat_map(|s| {
            s.items.iter().filter_map(|i| match i {
                Item::Comparison(c) => Some(c),
                _ => None,
            })
        })
    }

    pub fn distributions(&self) -> impl Iterator<Item = &Distribution> {
        self.sections.iter().flat_map(|s| {
            s.items.iter().filter_map(|i| match i {
                Item::Distribution(d) => Some(d),
                _ => None,
            })
        })
    }

    pub fn target_outcomes(&self) -> Vec<TargetOutcome> {
        self.targets
            .iter()
            .map(|t| {
                if let Some((key, _)) = &t.at_most {
                    let ratio = self
                        .distributions()
                        .find(|d| d.id == t.comparison)
                        .and_then(|d| {
                            let i = d.results.iter().position(|r| r.name == t.case)?;
                            d.summary(i, key)
                        });
                    return TargetOutcome {
                        target: t.clone(),
                        ratio,
                    };
                }
                let ratio = self
                    .comparisons()
                    .find(|c| c.id == t.comparison)
                    .and_then(|c| {
                        let i = c.case_index(&t.case)?;
                        let j = c.case_index(&t.vs)?;
                        if t.cpu_at_most {
                            c.cpu_ratio(i, j)
                        } else {
                            c.ratio(i, j)
                        }
                    });
                TargetOutcome {
                    target: t.clone(),
                    ratio,
                }
            })
            .collect()
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# vigil benchmarks\n");
        let _ = writeln!(
            md,
            "Generated by `scripts/bench.sh --{}` ({} interleaved rounds), started {}, finished {}. \
             Do not edit by hand: the measurements are in `benchmarks.json`, and \
             `scripts/bench.sh --render docs/benchmarks.json` writes this page again from them.\n",
            self.mode, self.rounds, self.started, self.finished
        );
        md.push_str("## Machine\n\n| | |\n|---|---|\n");
        for (k, v) in &self.machine {
            let _ = writeln!(md, "| {k} | {} |", v.replace('|', "\\|"));
        }
        md.push_str("\n## Method\n\n");
        for m in &self.method {
            let _ = writeln!(md, "- {m}");
        }
        md.push_str(
            "\n## Targets\n\n| target | measured (median, min-max) | met |\n|---|---|---|\n",
        );
        for o in self.target_outcomes() {
            let measured = o
                .ratio
                .map(|r| match &o.target.at_most {
                    Some((key, _)) => {
                        format!("{:.0} {key} ({:.0}-{:.0})", r.median, r.min, r.max)
                    }
                    None => format!("{:.3}x ({:.3}-{:.3})", r.median, r.min, r.max),
                })
                .unwrap_or_else(|| "not measured".into());
            let met = match o.met() {
                Some(true) => "yes",
                Some(false) if self.analysis.is_some() => "**no** (see Analysis)",
                Some(false) => "**no**",
                None => "n/a",
            };
            let _ = writeln!(md, "| {} | {measured} | {met} |", o.target.label);
        }
        md.push('\n');
        if let Some(chart) = &self.chart {
            let _ = writeln!(
                md,
                "![Speed of each case relative to its reference (median, whiskers min-max)]({chart})\n"
            );
        }
        for s in &self.sections {
            let _ = writeln!(md, "## {}\n", s.title);
            for item in &s.items {
                match item {
                    Item::Comparison(c) => write_comparison(&mut md, c),
                    Item::Distribution(d) => write_distribution(&mut md, d),
                    Item::Text(t) => {
                        let _ = writeln!(md, "{t}\n");
                    }
                }
            }
        }
        if !self.skipped.is_empty() {
            md.push_str("## Not measured\n\n");
            for s in &self.skipped {
                let _ = writeln!(md, "- {s}");
            }
            md.push('\n');
        }
        if let Some(a) = &self.analysis {
            md.push_str("## Analysis\n\n");
            md.push_str(a.trim());
            md.push('\n');
        }
        md
    }
}

fn fmt_summary(s: Option<Summary>, digits: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.d$} | {:.d$} | {:.d$}",
            s.median,
            s.min,
            s.max,
            d = digits
        ),
        None => "- | - | -".into(),
    }
}

fn write_rounds(md: &mut String, results: &[CaseResult]) {
    let rounds = results.iter().map(|r| r.runs.len()).max().unwrap_or(0);
    let _ = writeln!(md, "{rounds} interleaved rounds.\n");
}

fn write_comparison(md: &mut String, c: &Comparison) {
    let unit = c.metric.unit();
    let reference = &c.results[c.reference].name;
    let cpu = c.has_cpu();
    let _ = writeln!(md, "### {}\n", c.title);
    write_rounds(md, &c.results);
    let _ = write!(md, "| case | {unit} median | min | max |");
    if cpu {
        md.push_str(" CPU s (user+sys) | of which sys | peak RSS MiB |");
    }
    if c.sizes {
        md.push_str(" output bytes (median) |");
    }
    let _ = write!(md, " speed ratio to {reference}: median (min-max) |");
    if cpu {
        md.push_str(" CPU time ratio (lower is cheaper) |");
    }
    md.push_str("\n|---|---:|---:|---:|");
    if cpu {
        md.push_str("---:|---:|---:|");
    }
    if c.sizes {
        md.push_str("---:|");
    }
    md.push_str("---|");
    if cpu {
        md.push_str("---|");
    }
    md.push('\n');
    for (i, r) in c.results.iter().enumerate() {
        let _ = write!(md, "| {} | {} |", r.name, fmt_summary(c.summary(i), 1));
        if cpu {
            let med = |f: &dyn Fn(&Run) -> Option<f64>, d: usize| {
                Summary::of(&c.figure(i, f).into_iter().flatten().collect::<Vec<_>>())
                    .map(|s| format!("{:.d$}", s.median))
                    .unwrap_or_else(|| "-".into())
            };
            let _ = write!(
                md,
                " {} | {} | {} |",
                med(&|r| r.cpu, 3),
                med(&|r| r.sys, 3),
                med(&|r| r.rss_kib.map(|k| k as f64 / 1024.0), 1)
            );
        }
        if c.sizes {
            let size = c
                .size(i)
                .map(|s| format!("{:.0}", s.median))
                .unwrap_or_else(|| "-".into());
            let _ = write!(md, " {size} |");
        }
        let ratio = if let Some(e) = &r.error {
            format!("failed: {}", e.replace('|', "/"))
        } else if i == c.reference {
            "1 (reference)".to_string()
        } else {
            c.ratio(i, c.reference)
                .map(|s| format!("{:.3}x ({:.3}-{:.3})", s.median, s.min, s.max))
                .unwrap_or_else(|| "-".into())
        };
        let _ = write!(md, " {ratio} |");
        if cpu {
            let cr = if r.error.is_some() {
                "-".to_string()
            } else if i == c.reference {
                "1 (reference)".to_string()
            } else {
                c.cpu_ratio(i, c.reference)
                    .map(|s| format!("{:.3}x ({:.3}-{:.3})", s.median, s.min, s.max))
                    .unwrap_or_else(|| "-".into())
            };
            let _ = write!(md, " {cr} |");
        }
        md.push('\n');
    }
    md.push('\n');
    for n in &c.notes {
        let _ = writeln!(md, "{n}\n");
    }
}

fn write_distribution(md: &mut String, d: &Distribution) {
    let reference = &d.results[d.reference].name;
    let _ = writeln!(md, "### {}\n", d.title);
    write_rounds(md, &d.results);
    md.push_str("| case |");
    for (_, h) in &d.columns {
        let _ = write!(md, " {h} median (min-max) |");
    }
    let ratio_heading = d
        .columns
        .iter()
        .find(|(k, _)| *k == d.ratio_key)
        .map(|(_, h)| h.as_str())
        .unwrap_or(&d.ratio_key);
    let _ = writeln!(md, " {ratio_heading} ratio to {reference} |");
    md.push_str("|---|");
    for _ in &d.columns {
        md.push_str("---:|");
    }
    md.push_str("---|\n");
    for (i, r) in d.results.iter().enumerate() {
        let _ = write!(md, "| {} |", r.name);
        for (k, _) in &d.columns {
            let cell = d
                .summary(i, k)
                .map(|s| format!("{:.0} ({:.0}-{:.0})", s.median, s.min, s.max))
                .unwrap_or_else(|| "-".into());
            let _ = write!(md, " {cell} |");
        }
        let ratio = if let Some(e) = &r.error {
            format!("failed: {}", e.replace('|', "/"))
        } else if i == d.reference {
            "1 (reference)".to_string()
        } else {
            d.ratio(i, d.reference, &d.ratio_key)
                .map(|s| format!("{:.4}x ({:.4}-{:.4})", s.median, s.min, s.max))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(md, " {ratio} |");
    }
    md.push('\n');
    for n in &d.notes {
        let _ = writeln!(md, "{n}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Run;

    fn case(name: &str, secs: &[f64]) -> CaseResult {
        CaseResult {
            name: name.into(),
            runs: secs.iter().map(|s| Some(Run::timed(*s))).collect(),
            error: None,
        }
    }

    #[test]
    fn ratios_are_taken_round_by_round() {
        let c = Comparison {
            id: "x".into(),
            title: "x".into(),
            metric: Metric::Fps { frames: 100 },
            reference: 0,
            results: vec![
                case("ref", &[1.0, 2.0, 1.0]),
                case("ours", &[2.0, 2.0, 0.5]),
            ],
            sizes: false,
            notes: vec![],
        };
        let r = c.ratio(1, 0).unwrap();
        assert_eq!((r.min, r.median, r.max), (0.5, 1.0, 2.0));
        assert_eq!(c.summary(0).unwrap().median, 100.0);
        let mut report = Report {
            sections: vec![Section {
                title: "s".into(),
                items: vec![Item::Comparison(c)],
            }],
            targets: vec![Target {
                label: "ours >= 0.98x ref".into(),
                comparison: "x".into(),
                case: "ours".into(),
                vs: "ref".into(),
                min_ratio: 0.98,
                cpu_at_most: false,
                at_most: None,
            }],
            ..Report::default()
        };
        assert_eq!(report.target_outcomes()[0].met(), Some(true));
        report.targets[0].min_ratio = 1.5;
        assert_eq!(report.target_outcomes()[0].met(), Some(false));
        assert!(
            report
                .to_markdown()
                .contains("| ours >= 0.98x ref | 1.000x (0.500-2.000) | **no** |")
        );
    }
}
