// SPDX-License-Identifier: MPL-2.0
//! A Rust application whose `vigilsink` consumer is ten times slower than the live stream: the
//! pipeline keeps running, the streaming thread is never held, and every drop is announced on
//! the bus. Prints each `vigil-sink-backpressure` message and the sink's statistics.
//!
//! `cargo run -p vigil-examples --example slow_consumer [seconds]`

use std::time::Duration;

use gst::prelude::*;
use gstvigilsink::VigilSink;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gst::init()?;
    gstvigilsink::plugin_register_static()?;
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    // 50 frames per second in, a consumer that needs 200 ms a frame.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={} ! video/x-raw,width=320,height=240,framerate=50/1 \
         ! vigilsink name=sink max-buffers=8 backpressure-interval=500",
        seconds * 50
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .ok_or("no sink")?
        .downcast::<VigilSink>()
        .map_err(|_| "not a vigilsink")?;
    sink.set_consumer(|sample| {
        std::thread::sleep(Duration::from_millis(200));
        println!(
            "consumer: frame at {}",
            sample.buffer().and_then(|b| b.pts()).display()
        );
        Ok(())
    });

    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(u64::from(seconds) + 10)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e
                    .structure()
                    .filter(|s| s.name() == "vigil-sink-backpressure")
                {
                    println!(
                        "backpressure: {} dropped ({} in all), pressure {}",
                        s.get::<u64>("dropped")?,
                        s.get::<u64>("total-dropped")?,
                        s.get::<&str>("pressure")?
                    );
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                eprintln!("error: {} ({:?})", e.error(), e.details());
                break;
            }
            _ => {}
        }
    }
    println!("stats: {}", sink.property::<gst::Structure>("stats"));
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
