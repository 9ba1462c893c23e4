// SPDX-License-Identifier: MPL-2.0
//! The benchmark harness (work in progress).
fn main() {
    println!("vigil benches: not written yet");
}
