//! Prometheus text exposition for node_exporter's textfile collector.
//!
//! Each binary writes its own file with its own metric names (node_exporter serves only
//! one of two identical series from different files), replaced atomically so the collector
//! never reads half a file, and without client-side timestamps (node_exporter drops a
//! whole file that has them).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

/// Metric family type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

/// A set of metric families, rendered in name order.
#[derive(Debug, Default)]
pub struct Textfile {
    families: BTreeMap<String, Family>,
    /// Labels every sample carries (the pair's name): they come first.
    common: Vec<(String, String)>,
}

/// `[general] pair`: the name that tells which two nodes form a pair, put on every hakit
/// series as `pair="…"` so alerts can count MASTERs per pair (two pairs may both call their
/// instance VI_1).
pub fn check_pair(p: &str) -> Result<(), String> {
    if p.is_empty()
        || p.len() > 63
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err(format!(
            "[general] pair {p:?}: 1 to 63 letters, digits, _ . : -"
        ));
    }
    Ok(())
}

impl Textfile {
    pub fn new() -> Self {
        Self::default()
    }

    /// A textfile whose every sample carries `pair="…"` (when a pair name is configured).
    pub fn for_pair(pair: Option<&str>) -> Self {
        let mut t = Self::default();
        if let Some(p) = pair {
            t.common.push(("pair".into(), p.to_string()));
        }
        t
    }

    /// `hakit_build_info{version} 1`: which release runs on the node. One writer carries
    /// it (nat-notify's file): node_exporter refuses a series found in two files.
    pub fn build_info(&mut self) {
        self.add(
            "hakit_build_info",
            Kind::Gauge,
            "1, labelled with hakit's version.",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    }

    /// Adds one sample. The first call for a name fixes its help and type.
    pub fn add(&mut self, name: &str, kind: Kind, help: &str, labels: &[(&str, &str)], value: f64) {
        let fam = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                help: help.to_string(),
                kind,
                samples: Vec::new(),
            });
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fam.samples.push((labels, value));
    }

    /// The exposition text, ending with a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, fam) in &self.families {
            let kind = match fam.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&fam.help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &fam.samples {
                out.push_str(name);
                if !labels.is_empty() || !self.common.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in self.common.iter().chain(labels).enumerate() {
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

    /// Writes the file atomically (mode 0644: metrics are not secret).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::runtime::write_atomic(path, self.render().as_bytes(), 0o644)
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
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
    fn renders_families_once_with_escaped_labels() {
        let mut t = Textfile::new();
        t.add(
            "hakit_garp_frames_total",
            Kind::Counter,
            "Frames sent.",
            &[("ip", "192.0.2.1")],
            5.0,
        );
        t.add(
            "hakit_garp_frames_total",
            Kind::Counter,
            "ignored",
            &[("ip", "a\"b")],
            1.0,
        );
        t.add(
            "hakit_garp_last_run_seconds",
            Kind::Gauge,
            "Duration\nof run.",
            &[],
            0.25,
        );
        assert_eq!(
            t.render(),
            "# HELP hakit_garp_frames_total Frames sent.\n\
             # TYPE hakit_garp_frames_total counter\n\
             hakit_garp_frames_total{ip=\"192.0.2.1\"} 5\n\
             hakit_garp_frames_total{ip=\"a\\\"b\"} 1\n\
             # HELP hakit_garp_last_run_seconds Duration\\nof run.\n\
             # TYPE hakit_garp_last_run_seconds gauge\n\
             hakit_garp_last_run_seconds 0.25\n"
        );
    }
}
