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

#[test]
fn without_audio_a_recording_into_a_muxer_ends_cleanly_on_interrupt() {
    init();
    let dir = scratch("failover-mux");
    let input = dir.join("in.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc num-buffers=300 ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc \
             ! matroskamux ! filesink location={}",
            input.display()
        ),
        std::time::Duration::from_secs(30),
    );
    assert!(log.eos.is_some(), "{}", log.error_text());
    let out = dir.join("out.mkv");
    // As a user records with gst-launch-1.0 -e and stops it with Ctrl-C.
    let mut child = std::process::Command::new("gst-launch-1.0")
        .arg("-e")
        .args(
            format!(
                "vigilfailoversrc enable-audio=false uris=<\"file://{}\"> \
                 video-caps=video/x-raw,width=160,height=120,framerate=30/1 \
                 ! videoconvert ! jpegenc ! matroskamux ! filesink location={}",
                input.display(),
                out.display()
            )
            .split_whitespace(),
        )
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0");
    // Ctrl-C once the recording runs (the file grows), then about 2 s later: a fixed delay from
    // the process start would include the registry update and the start-up.
    let started = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) < 4096 {
        assert!(
            std::time::Instant::now() < started,
            "the recording did not start within 20 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "gst-launch-1.0 ended before Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let status = status.expect("gst-launch-1.0 -e did not end within 10 s of Ctrl-C");
    assert!(status.success(), "gst-launch-1.0 exited with {status}");
    // The file is finished: it plays to its end.
    let p = pipeline(&format!(
        "filesrc location={} ! matroskademux ! jpegdec ! fakesink name=sink",
        out.display()
    ));
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let f = frames.clone();
    p.by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let log = run(
        &p,
        std::time::Duration::from_secs(20),
        std::time::Duration::ZERO,
    );
    stop_within(&p, std::time::Duration::from_secs(2));
    assert!(
        log.eos.is_some(),
        "the recording plays to its end: {}",
        log.error_text()
    );
    let n = frames.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 30, "{n} frames recorded in about 2 s");
}

/// A bad URI in `uris` set before the element is in a pipeline (as gst-launch-1.0 does) is
/// still announced: the WARNING naming it is posted when the element starts (it was lost).
#[test]
fn a_bad_uri_set_before_the_element_has_a_bus_is_announced_when_it_starts() {
    init();
    let dir = scratch("failover-config-early");
    let good = format!("file://{}", dir.join("backup.mkv").display());
    let p = pipeline(&format!(
        "vigilfailoversrc name=f enable-audio=false uris=\"<foo://cam/stream,{good}>\" ! fakesink"
    ));
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(3),
            &[gst::MessageType::Warning],
        )
        .expect("a WARNING for the refused URI");
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("'foo://cam/stream'"),
        "{}",
        w.error()
    );
    stop_within(&p, std::time::Duration::from_secs(4));
}

/// `video-caps` and `audio-caps` that cannot work are refused when the element starts, with
/// an ERROR naming the property (a zero width failed as a link error between internal
/// elements, and a framerate range was silently fixated to 1 fps).
#[test]
fn bad_output_caps_are_refused_naming_the_property() {
    init();
    for (props, names) in [
        ("video-caps=video/x-raw,width=0", "video-caps"),
        ("video-caps=video/x-raw,format=FOO", "video-caps"),
        (
            "video-caps=\"video/x-raw,framerate=[1/1,30/1]\"",
            "video-caps must be fixed",
        ),
        (
            "enable-audio=true audio-caps=audio/x-raw,rate=0",
            "audio-caps",
        ),
    ] {
        let p = pipeline(&format!(
            "vigilfailoversrc name=f enable-audio=false {props} f.video ! fakesink"
        ));
        let log = run(
            &p,
            std::time::Duration::from_secs(5),
            std::time::Duration::ZERO,
        );
        stop_within(&p, std::time::Duration::from_secs(4));
        let text = log.error_text();
        assert!(!log.errors.is_empty(), "{props}: no ERROR");
        assert!(text.contains(names), "{props}: {text}");
    }
}

/// `add-source` takes source elements only: a filter or a sink is refused with a WARNING
/// naming it (they were accepted and the input sat in `starting` for ever), as is an element
/// another bin holds.
#[test]
fn add_source_refuses_what_is_not_a_source() {
    init();
    let p = pipeline("vigilfailoversrc name=f enable-audio=false ! fakesink");
    let f = p.by_name("f").unwrap();
    let bus = p.bus().unwrap();
    let held = gst::ElementFactory::make("videotestsrc")
        .name("held")
        .build()
        .unwrap();
    let other = gst::Pipeline::new();
    other.add(&held).unwrap();
    for (element, name) in [
        (
            gst::ElementFactory::make("identity")
                .name("filter")
                .build()
                .unwrap(),
            "filter",
        ),
        (
            gst::ElementFactory::make("fakesink")
                .name("sink")
                .build()
                .unwrap(),
            "sink",
        ),
        (held.clone(), "held"),
    ] {
        assert!(
            !f.emit_by_name::<bool>("add-source", &[&element]),
            "add-source {name} was accepted"
        );
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(1),
                &[gst::MessageType::Warning],
            )
            .unwrap_or_else(|| panic!("no WARNING for {name}"));
        let gst::MessageView::Warning(w) = msg.view() else {
            unreachable!()
        };
        assert!(
            w.error().to_string().contains(&format!("'{name}'")),
            "{}",
            w.error()
        );
    }
    let src = gst::ElementFactory::make("videotestsrc").build().unwrap();
    assert!(
        f.emit_by_name::<bool>("add-source", &[&src]),
        "a source is accepted"
    );
    stop_within(&p, std::time::Duration::from_secs(4));
}

/// NULL given to an action signal (as C or Python can) is refused like any bad argument:
/// FALSE and a WARNING, never an abort of the process.
#[test]
fn action_signals_given_null_return_false() {
    init();
    let p = pipeline("vigilfailoversrc name=f enable-audio=false ! fakesink");
    let f = p.by_name("f").unwrap();
    let bus = p.bus().unwrap();
    for signal in ["add-uri", "remove-uri", "switch-to"] {
        assert!(
            !f.emit_by_name::<bool>(signal, &[&None::<String>]),
            "{signal}(NULL) accepted"
        );
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(1),
                &[gst::MessageType::Warning],
            )
            .unwrap_or_else(|| panic!("no WARNING for {signal}(NULL)"));
        let gst::MessageView::Warning(w) = msg.view() else {
            unreachable!()
        };
        assert!(w.error().to_string().contains(signal), "{}", w.error());
    }
    assert!(!f.emit_by_name::<bool>("add-source", &[&None::<gst::Element>]));
}

/// What the output is built from (`video-caps`, `audio-caps`, `enable-audio`, `fill-gaps`)
/// applies at the start: a change while running is refused with a WARNING and the getter
/// keeps the value in use; and `enable-audio=false` is refused while the audio pad is linked
/// (removing a linked pad left the pipeline waiting for ever to reach PLAYING).
#[test]
fn start_only_properties_and_a_linked_audio_pad_are_not_changed_under_the_output() {
    init();
    let dir = scratch("failover-config-running");
    let media = dir.join("in.mkv");
    let log = run_to_end(
        &format!(
            "videotestsrc num-buffers=150 ! video/x-raw,width=160,height=120,framerate=30/1 ! jpegenc \
             ! matroskamux ! filesink location={}",
            media.display()
        ),
        std::time::Duration::from_secs(30),
    );
    assert!(log.eos.is_some(), "{}", log.error_text());
    let p = pipeline(
        "vigilfailoversrc name=f video-caps=video/x-raw,width=160,height=120,framerate=30/1 \
         f.video ! fakesink f.audio ! fakesink",
    );
    let f = p.by_name("f").unwrap();
    f.set_property(
        "uris",
        gst::Array::new([format!("file://{}", media.display()).to_send_value()]),
    );
    // Linked: refused, in any state.
    f.set_property("enable-audio", false);
    assert!(f.property::<bool>("enable-audio"));
    assert!(
        f.static_pad("audio").is_some(),
        "the linked audio pad stays"
    );
    p.set_state(gst::State::Playing).unwrap();
    let (r, _, _) = p.state(gst::ClockTime::from_seconds(10));
    assert!(r.is_ok(), "PLAYING: {r:?}");
    let before: gst::Caps = f.property("video-caps");
    f.set_property(
        "video-caps",
        "video/x-raw,width=320,height=240,framerate=30/1"
            .parse::<gst::Caps>()
            .unwrap(),
    );
    f.set_property("fill-gaps", false);
    assert_eq!(f.property::<gst::Caps>("video-caps"), before);
    assert!(f.property::<bool>("fill-gaps"));
    let bus = p.bus().unwrap();
    let mut warned = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Warning]) {
        if let gst::MessageView::Warning(w) = m.view() {
            warned.push(w.error().to_string());
        }
    }
    for needle in [
        "enable-audio=false refused",
        "'video-caps' cannot change",
        "'fill-gaps' cannot change",
    ] {
        assert!(
            warned.iter().any(|w| w.contains(needle)),
            "a WARNING says '{needle}': {warned:?}"
        );
    }
    stop_within(&p, std::time::Duration::from_secs(5));
}

/// Output caps no input can be converted to are refused at the start, naming `video-caps`
/// (they failed every input at run time, each blamed for ever).
#[test]
fn video_caps_with_a_zero_aspect_ratio_or_interlaced_are_refused() {
    init();
    for caps in [
        "video/x-raw,width=160,height=120,framerate=15/1,pixel-aspect-ratio=0/1",
        "video/x-raw,width=160,height=120,framerate=15/1,interlace-mode=interleaved",
    ] {
        let p = pipeline(&format!(
            "vigilfailoversrc name=f enable-audio=false video-caps=\"{caps}\" ! fakesink"
        ));
        let log = run(
            &p,
            std::time::Duration::from_secs(10),
            std::time::Duration::ZERO,
        );
        stop_within(&p, std::time::Duration::from_secs(5));
        assert!(
            log.errors
                .iter()
                .any(|e| e.debug.contains("video-caps") || e.text.contains("video-caps")),
            "{caps}: an ERROR names video-caps: {}",
            log.error_text()
        );
    }
}

/// An application that stops the pipeline from the element's own notification (here
/// `notify::status`, emitted on the controller thread) gets its state change at once: the
/// element does not wait for the thread it is called from.
#[test]
fn stopping_from_a_status_notification_returns_at_once() {
    init();
    let p = pipeline("vigilfailoversrc name=f enable-audio=false ! fakesink");
    let f = p.by_name("f").unwrap();
    let took: std::sync::Arc<std::sync::Mutex<Option<std::time::Duration>>> = Default::default();
    let t = took.clone();
    let pw = p.downgrade();
    let test_thread = std::thread::current().id();
    f.connect_notify(Some("status"), move |f, _| {
        let status = f.property_value("status");
        let nick = gst::glib::EnumValue::from_value(&status)
            .map(|(_, v)| v.nick().to_string())
            .unwrap_or_default();
        // "starting" comes from the application's own set_state; the others from the
        // controller thread, which is the case under test.
        if nick == "stopped" || nick == "starting" || t.lock().unwrap().is_some() {
            return;
        }
        assert_ne!(
            std::thread::current().id(),
            test_thread,
            "a notification from the element's thread"
        );
        if let Some(p) = pw.upgrade() {
            let start = std::time::Instant::now();
            let _ = p.set_state(gst::State::Null);
            *t.lock().unwrap() = Some(start.elapsed());
        }
    });
    p.set_state(gst::State::Playing).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while took.lock().unwrap().is_none() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let took = took.lock().unwrap().expect("a status notification came");
    assert!(
        took < std::time::Duration::from_secs(2),
        "set_state(NULL) from the notification took {took:?}"
    );
    stop_within(&p, std::time::Duration::from_secs(5));
}
