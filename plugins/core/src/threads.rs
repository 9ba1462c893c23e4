// SPDX-License-Identifier: MPL-2.0
//! Bounded waits on plain threads (the failover bin's input, controller and output threads):
//! the same rule as for workers, a wait on a thread never hangs a state change.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Joins `thread` if it ends within `limit`; otherwise leaves it detached and returns false
/// (the caller announces what it left behind). A thread that ended is always joined, so none
/// is leaked when it finished in time.
pub fn join_within<T>(thread: JoinHandle<T>, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while !thread.is_finished() {
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(5)));
    }
    let _ = thread.join();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_ends_in_time_is_joined_and_one_that_hangs_is_left() {
        let quick = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(20)));
        assert!(join_within(quick, Duration::from_secs(5)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let t = Instant::now();
        assert!(!join_within(stuck, Duration::from_millis(100)));
        assert!(t.elapsed() < Duration::from_secs(2), "the wait is bounded");
        drop(tx);
    }
}
