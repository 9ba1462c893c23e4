// SPDX-License-Identifier: MPL-2.0
//! Interleaved repetitions: every case of a comparison runs once per round, in an order that
//! rotates from round to round, so slow drifts of the machine (other work, heat) fall on every
//! case alike and ratios can be taken round by round.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One run of one case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Wall-clock seconds of the timed part.
    pub secs: f64,
    /// Bytes of output, where the case writes some.
    pub bytes: Option<u64>,
    /// Other named measurements (percentiles of a distribution, counters).
    pub values: BTreeMap<String, f64>,
    /// CPU seconds (user + system, every thread) of a case run as a whole process.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Of which system time.
    #[serde(default)]
    pub sys: Option<f64>,
    /// Peak resident set size of the process, KiB.
    #[serde(default)]
    pub rss_kib: Option<u64>,
}

impl Run {
    /// A whole process's run: its wall time, CPU time and peak RSS.
    pub fn from_process(c: crate::tools::ProcessCost, bytes: Option<u64>) -> Self {
        Self {
            secs: c.wall,
            bytes,
            cpu: Some(c.user + c.sys),
            sys: Some(c.sys),
            rss_kib: Some(c.max_rss_kib),
            ..Self::default()
        }
    }

    pub fn timed(secs: f64) -> Self {
        Self {
            secs,
            ..Self::default()
        }
    }
}

/// A function that performs one run; it gets the round number.
pub type RunFn<'a> = Box<dyn FnMut(usize) -> Result<Run, String> + 'a>;

/// One contender of a comparison.
pub struct Case<'a> {
    pub name: String,
    pub run: RunFn<'a>,
}

impl<'a> Case<'a> {
    pub fn new(
        name: impl Into<String>,
        run: impl FnMut(usize) -> Result<Run, String> + 'a,
    ) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// What one case gave over all rounds: `runs[i]` is round `i` (`None` once it failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub runs: Vec<Option<Run>>,
    pub error: Option<String>,
}

/// Runs `rounds` rounds of `cases`, rotating the order each round. A case that fails is not
/// run again; its error is kept for the report.
pub fn interleave(title: &str, mut cases: Vec<Case<'_>>, rounds: usize) -> Vec<CaseResult> {
    let n = cases.len();
    let mut results: Vec<CaseResult> = cases
        .iter()
        .map(|c| CaseResult {
            name: c.name.clone(),
            runs: Vec::with_capacity(rounds),
            error: None,
        })
        .collect();
    let started = Instant::now();
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            if results[i].error.is_some() {
                results[i].runs.push(None);
                continue;
            }
            match (cases[i].run)(round) {
                Ok(run) => {
                    let cpu = run
                        .cpu
                        .map(|c| format!(", CPU {c:.3} s"))
                        .unwrap_or_default();
                    eprintln!(
                        "  [{title}] round {}/{rounds} {}: {:.3} s{cpu}",
                        round + 1,
                        results[i].name,
                        run.secs
                    );
                    results[i].runs.push(Some(run));
                }
                Err(e) => {
                    eprintln!("  [{title}] {} failed: {e}", results[i].name);
                    results[i].error = Some(e);
                    results[i].runs.push(None);
                }
            }
        }
    }
    eprintln!(
        "  [{title}] {rounds} rounds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn rounds_rotate_and_failures_stop_a_case() {
        let order = RefCell::new(Vec::new());
        let cases = vec![
            Case::new("a", |_| {
                order.borrow_mut().push("a");
                Ok(Run::timed(1.0))
            }),
            Case::new("b", |r| {
                order.borrow_mut().push("b");
                if r == 1 {
                    Err("boom".into())
                } else {
                    Ok(Run::timed(2.0))
                }
            }),
        ];
        let res = interleave("t", cases, 3);
        assert_eq!(*order.borrow(), ["a", "b", "b", "a", "a"]);
        assert_eq!(res[0].runs.iter().flatten().count(), 3);
        assert_eq!(res[1].runs.iter().flatten().count(), 1);
        assert_eq!(res[1].error.as_deref(), Some("boom"));
    }
}
