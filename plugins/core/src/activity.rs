// SPDX-License-Identifier: MPL-2.0
//! Liveness of a library's own threads, as a second source of progress for the watchdog.
//!
//! A library such as SVT-AV1 runs its own thread pool: at its slowest presets it may work for
//! minutes before the next packet appears, and a fixed timeout would either trip on healthy
//! work or be useless. A wedged library is asleep, a slow one burns CPU. [`ThreadCpuProbe`]
//! sums the CPU time of the threads a library created, so the watchdog can tell them apart.

use std::collections::BTreeSet;

/// Reports a counter that advances while the codec is doing work the watchdog cannot see.
pub trait ActivityProbe: Send + Sync {
    /// The counter now, or `None` if it cannot be read.
    fn sample(&self) -> Option<u64>;
}

/// The thread ids of this process now (Linux; empty elsewhere).
pub fn process_threads() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sums user and system CPU ticks of a fixed set of threads of this process.
#[derive(Debug, Clone)]
pub struct ThreadCpuProbe {
    threads: Vec<u32>,
}

impl ThreadCpuProbe {
    /// A probe over the threads that exist now and did not exist in `before`: call it right
    /// after the library created its threads, with the set taken right before.
    pub fn new_threads_since(before: &BTreeSet<u32>) -> Self {
        Self {
            threads: process_threads().difference(before).copied().collect(),
        }
    }

    /// As [`ThreadCpuProbe::new_threads_since`], keeping only the threads that carry the
    /// calling thread's name: Linux gives a new thread the name of the thread that created it,
    /// so these are the threads the library created from this (worker) thread, and not the
    /// ones other elements of the process happened to start meanwhile (a busy thread of
    /// someone else would hide a wedge).
    pub fn new_threads_since_from_here(before: &BTreeSet<u32>) -> Self {
        let here = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
        Self {
            threads: process_threads()
                .difference(before)
                .copied()
                .filter(|tid| {
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                        .is_ok_and(|name| name == here)
                })
                .collect(),
        }
    }

    /// How many threads it watches.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether it watches no thread at all.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }
}

fn thread_ticks(tid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    // After ')': state(3) ... utime is field 14, stime 15 of the full line.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

impl ActivityProbe for ThreadCpuProbe {
    fn sample(&self) -> Option<u64> {
        if self.threads.is_empty() {
            return None;
        }
        Some(self.threads.iter().filter_map(|&t| thread_ticks(t)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn probe_sees_a_busy_thread_and_not_a_sleeping_one() {
        let before = process_threads();
        let (tx, rx) = mpsc::channel::<()>();
        let busy = std::thread::spawn(move || {
            let t = Instant::now();
            let mut x = 0u64;
            while rx.try_recv().is_err() && t.elapsed() < Duration::from_secs(5) {
                x = x.wrapping_mul(31).wrapping_add(7);
                std::hint::black_box(x);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        let probe = ThreadCpuProbe::new_threads_since(&before);
        assert!(!probe.is_empty());
        let a = probe.sample().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let b = probe.sample().unwrap();
        assert!(
            b > a,
            "a spinning thread must accumulate CPU ticks ({a} -> {b})"
        );
        tx.send(()).unwrap();
        busy.join().unwrap();
    }
}
