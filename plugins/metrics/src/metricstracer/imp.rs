// SPDX-License-Identifier: MPL-2.0
//! `vigilmetrics`: the tracer. It tracks every element whose factory name starts with `vigil`
//! (from `element-new`), counts the buffers that enter (`pad-chain-pre` on its `sink` pad) and
//! leave it (`pad-push-pre` on its `src` pad, `video` for the failover source), the
//! `vigil-watchdog` details of the ERROR and WARNING messages it posts and the failover
//! source's `vigil-failover-switched` messages; a scrape adds what the elements' own
//! statistics say at that moment (the sink's outcomes, the failover status, input and ages).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::DEFAULT_ADDRESS;
use crate::exposition::{Exposition, Kind};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigilmetrics",
        gst::DebugColorFlags::empty(),
        Some("vigil metrics tracer"),
    )
});

/// Name of the details structure of a watchdog ERROR or WARNING (vigil-core's).
const WATCHDOG_DETAILS: &str = "vigil-watchdog";
/// Name of the failover source's switch message.
const SWITCHED_MESSAGE: &str = "vigil-failover-switched";

/// What the hooks count for one element.
#[derive(Debug, Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// (reason, phase) -> trips.
    trips: Mutex<BTreeMap<(String, String), u64>>,
    /// reason -> switches.
    switches: Mutex<BTreeMap<String, u64>>,
}

/// One tracked element.
struct Tracked {
    element: glib::WeakRef<gst::Element>,
    factory: String,
    counters: Arc<Counters>,
}

/// Every vigil element of the process, keyed by its address (a new element at the address of a
/// dead one replaces its entry at `element-new`).
#[derive(Default)]
struct Registry {
    types: RwLock<HashSet<glib::Type>>,
    elements: RwLock<HashMap<usize, Tracked>>,
}

fn key(element: &gst::Element) -> usize {
    element.as_ptr() as usize
}

impl Registry {
    fn track(&self, element: &gst::Element, factory: &str) {
        self.types.write().unwrap().insert(element.type_());
        self.elements.write().unwrap().insert(
            key(element),
            Tracked {
                element: element.downgrade(),
                factory: factory.to_string(),
                counters: Arc::default(),
            },
        );
    }

    /// The counters of `element` if it is a tracked vigil element: a type check first, so the
    /// hooks cost one read lock for every other element.
    fn counters(&self, element: &gst::Element) -> Option<Arc<Counters>> {
        if !self.types.read().unwrap().contains(&element.type_()) {
            return None;
        }
        self.elements
            .read()
            .unwrap()
            .get(&key(element))
            .map(|t| t.counters.clone())
    }

    /// The live elements (dead ones are dropped).
    fn snapshot(&self) -> Vec<(gst::Element, String, Arc<Counters>)> {
        let mut map = self.elements.write().unwrap();
        map.retain(|_, t| t.element.upgrade().is_some());
        map.values()
            .filter_map(|t| Some((t.element.upgrade()?, t.factory.clone(), t.counters.clone())))
            .collect()
    }

    fn scrape(&self) -> String {
        let mut e = Exposition::default();
        let info = e.declare(
            "vigil_element_info",
            Kind::Gauge,
            "Each vigil element instance (always 1), with its factory.",
        );
        let trips = e.declare(
            "vigil_watchdog_trips_total",
            Kind::Counter,
            "Watchdog ERRORs and WARNINGs posted by the element (vigil-watchdog details), by reason and phase.",
        );
        let frames_in = e.declare(
            "vigil_frames_in_total",
            Kind::Counter,
            "Buffers that entered the element's sink pad.",
        );
        let frames_out = e.declare(
            "vigil_frames_out_total",
            Kind::Counter,
            "Buffers the element pushed on its src pad (video pad for vigilfailoversrc).",
        );
        let sink_buffers = e.declare(
            "vigil_sink_buffers_total",
            Kind::Counter,
            "vigilsink buffers by outcome: rendered (consumed), dropped (leaky), discarded (queued, never written).",
        );
        let sink_queued = e.declare(
            "vigil_sink_queued_buffers",
            Kind::Gauge,
            "vigilsink buffers queued for the consumer now.",
        );
        let status = e.declare(
            "vigil_failover_status",
            Kind::Gauge,
            "vigilfailoversrc status as a state set: 1 for the current status, 0 for the others.",
        );
        let switches = e.declare(
            "vigil_failover_switches_total",
            Kind::Counter,
            "vigilfailoversrc switches, by reason.",
        );
        let on_air = e.declare(
            "vigil_failover_on_air",
            Kind::Gauge,
            "1 for the vigilfailoversrc input on air (no sample while none is).",
        );
        let age = e.declare(
            "vigil_failover_input_last_data_age_seconds",
            Kind::Gauge,
            "Time since each vigilfailoversrc input last delivered data (no sample before its first).",
        );
        let mut elements: Vec<_> = self
            .snapshot()
            .into_iter()
            .map(|(el, factory, c)| (top_level_name(&el), el.name().to_string(), el, factory, c))
            .collect();
        elements.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (pipeline, name, el, factory, c) in elements {
            let id = [("pipeline", pipeline.as_str()), ("element", name.as_str())];
            e.get(info)
                .sample(&[id[0], id[1], ("factory", factory.as_str())], 1.0);
            for ((reason, phase), n) in c.trips.lock().unwrap().iter() {
                e.get(trips).sample(
                    &[id[0], id[1], ("reason", reason), ("phase", phase)],
                    *n as f64,
                );
            }
            if factory != "vigilfailoversrc" {
                e.get(frames_in)
                    .sample(&id, c.frames_in.load(Ordering::Relaxed) as f64);
            }
            if factory != "vigilsink" {
                e.get(frames_out)
                    .sample(&id, c.frames_out.load(Ordering::Relaxed) as f64);
            }
            if factory == "vigilsink" {
                let stats = el.property::<Option<gst::Structure>>("stats");
                if let Some(s) = stats {
                    for outcome in ["rendered", "dropped", "discarded"] {
                        if let Some(v) = number(&s, outcome) {
                            e.get(sink_buffers)
                                .sample(&[id[0], id[1], ("outcome", outcome)], v);
                        }
                    }
                    if let Some(v) = number(&s, "queued") {
                        e.get(sink_queued).sample(&id, v);
                    }
                }
            }
            if factory == "vigilfailoversrc" {
                for (reason, n) in c.switches.lock().unwrap().iter() {
                    e.get(switches)
                        .sample(&[id[0], id[1], ("reason", reason)], *n as f64);
                }
                let Some(s) = el.property::<Option<gst::Structure>>("statistics") else {
                    continue;
                };
                let current = s.get::<String>("status").unwrap_or_default();
                for nick in status_nicks(&el) {
                    let v = if nick == current { 1.0 } else { 0.0 };
                    e.get(status)
                        .sample(&[id[0], id[1], ("status", nick.as_str())], v);
                }
                let active = s.get::<String>("active-input").unwrap_or_default();
                if !active.is_empty() {
                    e.get(on_air)
                        .sample(&[id[0], id[1], ("input", active.as_str())], 1.0);
                }
                if let Ok(inputs) = s.get::<gst::Array>("inputs") {
                    for input in inputs.iter().filter_map(|v| v.get::<gst::Structure>().ok()) {
                        let input_name = input.get::<String>("name").unwrap_or_default();
                        if let Some(ms) = number(&input, "last-data-ms-ago").filter(|ms| *ms >= 0.0)
                        {
                            e.get(age).sample(
                                &[id[0], id[1], ("input", input_name.as_str())],
                                ms / 1000.0,
                            );
                        }
                    }
                }
            }
        }
        e.render()
    }
}

/// A numeric field of any integer or float type.
fn number(s: &gst::StructureRef, field: &str) -> Option<f64> {
    let v = s.value(field).ok()?;
    v.get::<u64>()
        .map(|x| x as f64)
        .or_else(|_| v.get::<i64>().map(|x| x as f64))
        .or_else(|_| v.get::<u32>().map(|x| x as f64))
        .or_else(|_| v.get::<i32>().map(|x| x as f64))
        .or_else(|_| v.get::<f64>())
        .ok()
}

/// The nicks of the failover source's `status` enum, read from its property.
fn status_nicks(el: &gst::Element) -> Vec<String> {
    el.find_property("status")
        .and_then(|p| p.downcast::<glib::ParamSpecEnum>().ok())
        .map(|p| {
            p.enum_class()
                .values()
                .iter()
                .map(|v| v.nick().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the top-level bin holding `el` (its pipeline), or its own name.
fn top_level_name(el: &gst::Element) -> String {
    let mut top: gst::Object = el.clone().upcast();
    while let Some(parent) = top.parent() {
        top = parent;
    }
    top.name().to_string()
}

/// The tracer's parameters: `address=HOST:PORT` (default loopback, port 9464).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Params {
    pub address: String,
}

impl Params {
    /// Parses `key=value,...` (the text inside `vigilmetrics(...)`).
    pub fn parse(params: Option<&str>) -> Result<Self, String> {
        let mut p = Params {
            address: DEFAULT_ADDRESS.to_string(),
        };
        for item in params.unwrap_or_default().split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                Some(("address", v)) => p.address = v.trim().trim_matches('"').to_string(),
                _ => return Err(format!("unknown parameter '{item}' (address=HOST:PORT)")),
            }
        }
        Ok(p)
    }
}

#[derive(Default)]
pub struct MetricsTracer {
    registry: Arc<Registry>,
}

#[glib::object_subclass]
impl ObjectSubclass for MetricsTracer {
    const NAME: &'static str = "VigilMetricsTracer";
    type Type = super::MetricsTracer;
    type ParentType = gst::Tracer;
}

impl ObjectImpl for MetricsTracer {
    fn constructed(&self) {
        self.parent_constructed();
        let params = self.obj().property::<Option<String>>("params");
        let params = match Params::parse(params.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                glib::g_warning!("vigilmetrics", "vigilmetrics: {e}; not serving metrics");
                return;
            }
        };
        let listener = match TcpListener::bind(&params.address) {
            Ok(l) => l,
            Err(e) => {
                glib::g_warning!(
                    "vigilmetrics",
                    "vigilmetrics: cannot listen on {}: {e}; not serving metrics",
                    params.address
                );
                return;
            }
        };
        gst::info!(CAT, "serving metrics on http://{}/metrics", params.address);
        let registry = self.registry.clone();
        super::server::serve(listener, move || registry.scrape());

        use gst::subclass::prelude::TracerHook;
        for hook in [
            TracerHook::ElementNew,
            TracerHook::ElementPostMessagePre,
            TracerHook::PadPushPre,
            TracerHook::PadPushListPre,
            TracerHook::PadChainPre,
            TracerHook::PadChainListPre,
        ] {
            self.register_hook(hook);
        }
    }
}

impl GstObjectImpl for MetricsTracer {}

impl MetricsTracer {
    fn count_out(&self, pad: &gst::Pad, n: u64) {
        let Some(el) = pad.parent_element() else {
            return;
        };
        if let Some(c) = self.registry.counters(&el)
            && matches!(pad.name().as_str(), "src" | "video")
        {
            c.frames_out.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn count_in(&self, pad: &gst::Pad, n: u64) {
        let Some(el) = pad.parent_element() else {
            return;
        };
        if let Some(c) = self.registry.counters(&el)
            && pad.name() == "sink"
        {
            c.frames_in.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl TracerImpl for MetricsTracer {
    fn element_new(&self, _ts: u64, element: &gst::Element) {
        let Some(factory) = element.factory() else {
            return;
        };
        let name = factory.name();
        if name.starts_with("vigil") {
            gst::debug!(CAT, "tracking {} ({name})", element.name());
            self.registry.track(element, &name);
        }
    }

    fn element_post_message_pre(&self, _ts: u64, element: &gst::Element, message: &gst::Message) {
        let Some(c) = self.registry.counters(element) else {
            return;
        };
        use gst::MessageView;
        let details = match message.view() {
            MessageView::Error(m) => m.details().map(|d| d.to_owned()),
            MessageView::Warning(m) => m.details().map(|d| d.to_owned()),
            MessageView::Element(m) => {
                if let Some(s) = m.structure().filter(|s| s.name() == SWITCHED_MESSAGE) {
                    let reason = s.get::<String>("reason").unwrap_or_default();
                    *c.switches.lock().unwrap().entry(reason).or_default() += 1;
                }
                None
            }
            _ => None,
        };
        if let Some(d) = details.filter(|d| d.name() == WATCHDOG_DETAILS) {
            let reason = d.get::<String>("reason").unwrap_or_default();
            let phase = d.get::<String>("phase").unwrap_or_default();
            *c.trips.lock().unwrap().entry((reason, phase)).or_default() += 1;
        }
    }

    fn pad_push_pre(&self, _ts: u64, pad: &gst::Pad, _buffer: &gst::Buffer) {
        self.count_out(pad, 1);
    }

    fn pad_push_list_pre(&self, _ts: u64, pad: &gst::Pad, list: &gst::BufferList) {
        self.count_out(pad, list.len() as u64);
    }

    fn pad_chain_pre(&self, _ts: u64, pad: &gst::Pad, _buffer: &gst::Buffer) {
        self.count_in(pad, 1);
    }

    fn pad_chain_list_pre(&self, _ts: u64, pad: &gst::Pad, list: &gst::BufferList) {
        self.count_in(pad, list.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_default_to_loopback_and_name_bad_ones() {
        assert_eq!(Params::parse(None).unwrap().address, "127.0.0.1:9464");
        assert_eq!(Params::parse(Some("")).unwrap().address, DEFAULT_ADDRESS);
        assert_eq!(
            Params::parse(Some("address=0.0.0.0:9000")).unwrap().address,
            "0.0.0.0:9000"
        );
        assert!(
            Params::parse(Some("port=1"))
                .unwrap_err()
                .contains("port=1")
        );
    }
}
