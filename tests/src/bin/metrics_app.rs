// SPDX-License-Identifier: MPL-2.0
//! An application that knows nothing about metrics, for the metrics tests: it runs each
//! `NAME=LAUNCH-LINE` argument as a pipeline named NAME, side by side, for `--seconds N`, prints
//! each ERROR (`error NAME: TEXT`) without stopping the other pipelines, then stops them all.
//! The `vigilmetrics` tracer is turned on from outside, with `GST_TRACERS`.

use std::time::{Duration, Instant};

use gst::prelude::*;

fn main() {
    gst::init().expect("GStreamer initialises");
    let mut args = std::env::args().skip(1);
    let mut seconds = 10.0f64;
    let mut pipelines = Vec::new();
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seconds N");
            continue;
        }
        let (name, desc) = a.split_once('=').expect("NAME=LAUNCH-LINE");
        let p = gst::parse::launch(desc)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        p.set_property("name", name);
        pipelines.push(p);
    }
    for p in &pipelines {
        let _ = p.set_state(gst::State::Playing);
    }
    println!("running {}", pipelines.len());
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        for p in &pipelines {
            let bus = p.bus().unwrap();
            while let Some(msg) = bus.pop() {
                if let gst::MessageView::Error(e) = msg.view() {
                    println!("error {}: {}", p.name(), e.error());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in &pipelines {
        let _ = p.set_state(gst::State::Null);
    }
    println!("stopped");
}
