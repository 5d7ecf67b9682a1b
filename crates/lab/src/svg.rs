//! The demo's failover timeline as SVG: text, scalable, a few kilobytes, fit to paste into
//! an incident report (it replaced a hand-written PNG encoder: an uncompressed 2 MB file
//! with an upper-case 5x7 font and labels drawn over each other).

use std::fmt::Write;

/// An SVG document being drawn, in pixels from the top left.
pub struct Svg {
    w: f64,
    h: f64,
    body: String,
}

/// Text as it may appear in SVG character data or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

impl Svg {
    pub fn new(w: f64, h: f64) -> Svg {
        Svg {
            w,
            h,
            body: String::new(),
        }
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{}"/>"#,
            escape(fill)
        );
    }

    /// A line; dashed when `dash` > 0 (dash and gap that long).
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, dash: f64) {
        let dash = if dash > 0.0 {
            format!(r#" stroke-dasharray="{dash:.0} {dash:.0}""#)
        } else {
            String::new()
        };
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}"{dash}/>"#,
            escape(stroke)
        );
    }

    /// Text with its baseline at `y`; `anchor` is start, middle or end.
    pub fn text(&mut self, x: f64, y: f64, s: &str, size: f64, fill: &str, anchor: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size:.0}" fill="{}" text-anchor="{}">{}</text>"#,
            escape(fill),
            escape(anchor),
            escape(s)
        );
    }

    /// The document.
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = self.w,
            h = self.h
        )
    }
}

/// Roughly how wide `s` is in a sans-serif font of `size` pixels (for placing labels; a
/// generous average so estimates err towards more room).
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// Places labels that start at the given x positions (sorted or not) in lanes so that no
/// two in one lane overlap: each gets the first lane whose last label ends before it
/// starts (with `gap` to spare). Returns each label's lane, in the input order.
pub fn lanes(spans: &[(f64, f64)], gap: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| spans[a].0.total_cmp(&spans[b].0));
    let mut ends: Vec<f64> = Vec::new();
    let mut lane = vec![0; spans.len()];
    for i in order {
        let (x, w) = spans[i];
        let k = match ends.iter().position(|&e| e + gap <= x) {
            Some(k) => k,
            None => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
        };
        ends[k] = x + w;
        lane[i] = k;
    }
    lane
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"a<b & "c" 'd'>"#),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(escape("bell\u{7}"), "bell");
        let mut s = Svg::new(10.0, 10.0);
        s.text(1.0, 2.0, "</svg><script>", 12.0, "black", "start");
        let doc = s.finish();
        assert!(!doc.contains("<script>"));
        assert_eq!(doc.matches("</svg>").count(), 1);
    }

    #[test]
    fn labels_in_one_lane_never_overlap() {
        // Marks 3 ms apart (VIP up, GARP, FIP up): the old picture drew them over each other.
        let spans: Vec<(f64, f64)> = [300.0, 303.0, 306.0, 500.0, 305.0, 900.0]
            .iter()
            .map(|&x| (x, text_width("VIP up on b 12", 11.0)))
            .collect();
        let lane = lanes(&spans, 4.0);
        for i in 0..spans.len() {
            for j in 0..spans.len() {
                if i != j && lane[i] == lane[j] {
                    let (a, b) = (spans[i], spans[j]);
                    assert!(
                        a.0 + a.1 + 4.0 <= b.0 || b.0 + b.1 + 4.0 <= a.0,
                        "{i} and {j} overlap in lane {}",
                        lane[i]
                    );
                }
            }
        }
        // Far apart ones share the first lane.
        assert_eq!(lane[0], 0);
        assert_eq!(lane[5], 0);
        assert!(lane.iter().copied().max().unwrap() >= 3);
    }
}
