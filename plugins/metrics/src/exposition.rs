// SPDX-License-Identifier: MPL-2.0
//! The Prometheus text exposition format (version 0.0.4): metric families with their `HELP`
//! and `TYPE` lines and their samples, label values escaped. No GStreamer here.

use std::fmt::Write;

/// The content type a scrape is answered with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric family: a name, its help text, its type and its samples.
#[derive(Debug, Clone)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    /// Adds a sample with these labels.
    pub fn sample(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push((
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        ));
    }
}

/// The families of one scrape, in the order they were declared.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// Declares a family (every family is rendered, even without samples) and returns its
    /// index for [`Exposition::get`].
    pub fn declare(&mut self, name: &'static str, kind: Kind, help: &'static str) -> usize {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.families.len() - 1
    }

    /// The family declared at `index`.
    pub fn get(&mut self, index: usize) -> &mut Family {
        &mut self.families[index]
    }

    /// The text served to a scrape.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (labels, value) in &f.samples {
                out.push_str(f.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Whole numbers without a fraction, others as Rust prints them.
fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_samples() {
        let mut e = Exposition::default();
        let c = e.declare("vigil_x_total", Kind::Counter, "Things.");
        let g = e.declare("vigil_y", Kind::Gauge, "Other things.");
        e.get(c)
            .sample(&[("pipeline", "p\"1"), ("element", "a\\b\nc")], 3.0);
        e.get(g).sample(&[], 0.25);
        assert_eq!(
            e.render(),
            "# HELP vigil_x_total Things.\n# TYPE vigil_x_total counter\n\
             vigil_x_total{pipeline=\"p\\\"1\",element=\"a\\\\b\\nc\"} 3\n\
             # HELP vigil_y Other things.\n# TYPE vigil_y gauge\nvigil_y 0.25\n"
        );
    }
}
