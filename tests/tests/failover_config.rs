// SPDX-License-Identifier: MPL-2.0
//! `vigilfailoversrc` configuration (issue 12): inputs are validated (a string that is not a
//! URI, or whose protocol has no source element, is refused with a WARNING naming it), an
//! unknown `switch-to` is refused, and the pads match the configuration (no `audio` pad with
//! `enable-audio=false`, so linking one fails at once instead of waiting for ever).

use gst::prelude::*;
use vigil_tests::*;

#[test]
fn bad_uris_are_refused_with_a_warning_naming_them() {
    init();
    let p = pipeline("vigilfailoversrc name=f enable-audio=false ! fakesink");
    let f = p.by_name("f").unwrap();
    let bus = p.bus().unwrap();
    for bad in ["garbage://x", "not a uri at all", ""] {
        let added = f.emit_by_name::<bool>("add-uri", &[&bad]);
        assert!(!added, "add-uri '{bad}' was accepted");
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(1),
                &[gst::MessageType::Warning],
            )
            .unwrap_or_else(|| panic!("no WARNING for '{bad}'"));
        let gst::MessageView::Warning(w) = msg.view() else {
            unreachable!()
        };
        assert!(
            w.error().to_string().contains(&format!("'{bad}'")),
            "{}",
            w.error()
        );
    }
    let dir = scratch("failover-config");
    let good = format!("file://{}", dir.join("later.mkv").display());
    assert!(
        f.emit_by_name::<bool>("add-uri", &[&good]),
        "a file URI is accepted"
    );
    assert!(
        !f.emit_by_name::<bool>("add-uri", &[&good]),
        "a URI is registered once"
    );
    // The uris property skips what it refuses, keeping the rest.
    f.set_property(
        "uris",
        gst::Array::new(
            ["garbage://y", good.as_str()]
                .iter()
                .map(|u| u.to_send_value()),
        ),
    );
    let uris: gst::Array = f.property("uris");
    let uris: Vec<String> = uris.iter().filter_map(|v| v.get::<String>().ok()).collect();
    assert_eq!(uris, vec![good.clone()]);
    // switch-to an input that is not there.
    p.set_state(gst::State::Playing).unwrap();
    assert!(!f.emit_by_name::<bool>("switch-to", &[&"garbage://x"]));
    assert!(!f.emit_by_name::<bool>("switch-to", &[&"file:///not/an/input.mkv"]));
    stop_within(&p, std::time::Duration::from_secs(4));
}

#[test]
fn without_audio_there_is_no_audio_pad_and_linking_one_fails() {
    init();
    let f = gst::ElementFactory::make("vigilfailoversrc")
        .property("enable-audio", false)
        .build()
        .unwrap();
    assert!(f.static_pad("video").is_some());
    assert!(
        f.static_pad("audio").is_none(),
        "no audio pad with enable-audio=false"
    );
    f.set_property("enable-audio", true);
    assert!(
        f.static_pad("audio").is_some(),
        "the pad comes back with audio"
    );
    let r = gst::parse::launch(
        "vigilfailoversrc name=f enable-audio=false f.video ! fakesink f.audio ! fakesink",
    );
    match r {
        Err(e) => assert!(
            e.to_string().contains("audio") || e.to_string().contains("link"),
            "{e}"
        ),
        Ok(p) => {
            // gst-launch links delayed pads later: the audio link must not exist.
            let p = p.downcast::<gst::Pipeline>().unwrap();
            let f = p.by_name("f").unwrap();
            assert!(f.static_pad("audio").is_none());
        }
    }
}
