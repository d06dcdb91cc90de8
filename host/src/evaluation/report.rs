//! The drift report as one self-contained HTML file: inline CSS and SVG, no script, no
//! external resource, so it opens offline. Per column, drifted ones first: the reference and
//! current distributions as a bar chart, the test, its score, the threshold and the verdict.

use std::fmt::Write as _;

use crate::evaluation::drift::{ColumnReport, Report};

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A score as the table shows it.
fn score(x: f64) -> String {
    if x == 0.0 || x.abs() >= 1e-4 {
        format!("{x:.6}")
    } else {
        format!("{x:.3e}")
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const AXIS: f64 = 40.0;

/// The bar chart of one column: a reference bar and a current bar per bin.
fn chart(c: &ColumnReport) -> String {
    let h = &c.histogram;
    let bins = h.labels.len().max(1) as f64;
    let top = h
        .reference
        .iter()
        .chain(&h.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let slot = (WIDTH - 10.0) / bins;
    let bar = (slot - 4.0).max(2.0) / 2.0;
    let plot = HEIGHT - AXIS;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{} distributions\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">",
        escape(&c.column)
    );
    for (i, label) in h.labels.iter().enumerate() {
        let x = 5.0 + i as f64 * slot;
        for (j, (share, class)) in [(h.reference[i], "reference"), (h.current[i], "current")]
            .into_iter()
            .enumerate()
        {
            let height = share / top * (plot - 10.0);
            let _ = write!(
                svg,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\"><title>{}: {class} {:.1}%</title></rect>",
                x + j as f64 * bar,
                plot - height,
                escape(label),
                share * 100.0
            );
        }
        // Every label for categories; for numbers, every fourth edge.
        if c.kind == "cat" || i % 4 == 0 {
            let text: String = label.chars().take(12).collect();
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" transform=\"rotate(30 {:.1} {:.1})\">{}</text>",
                x,
                plot + 12.0,
                x,
                plot + 12.0,
                escape(&text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The whole report.
pub fn html(report: &Report, reference: &str, current: &str) -> String {
    let drifted = report.columns.iter().filter(|c| c.drifted).count();
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>wafer drift report</title><style>\
         body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
         h1{font-size:1.5em}h2{font-size:1.1em;margin:0 0 .3em}\
         section{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}\
         section.drifted{border-color:#c0392b}\
         .verdict{font-weight:bold;margin-left:.5em}.drifted .verdict{color:#c0392b}\
         .stable .verdict{color:#27ae60}\
         rect.reference{fill:#7f8c8d}rect.current{fill:#e67e22}\
         svg text{font-size:10px;fill:#555}\
         .legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}\
         </style></head><body>\n",
    );
    let _ = write!(
        out,
        "<h1>Data drift</h1>\n<p class=\"summary\"><strong>{}</strong>: {drifted} of {} columns drifted ({:.1}%). Reference: {} ({} rows); current: {} ({} rows). Tests as Evidently's DataDriftPreset picks them.</p>\n\
         <p class=\"legend\"><span style=\"background:#7f8c8d\"></span>reference<span style=\"background:#e67e22\"></span>current</p>\n",
        if report.drifted {
            "The dataset drifted"
        } else {
            "No dataset drift"
        },
        report.columns.len(),
        report.share * 100.0,
        escape(reference),
        report.reference_rows,
        escape(current),
        report.current_rows,
    );
    for c in &report.columns {
        let state = if c.drifted { "drifted" } else { "stable" };
        let _ = write!(
            out,
            "<section class=\"column {state}\" data-column=\"{}\">\n<h2>{}<span class=\"verdict\">{}</span></h2>\n\
             <p class=\"test\">{} ({}): score <span class=\"score\">{}</span>, threshold {}; missing {:.1}% of the reference, {:.1}% of the current data</p>\n{}\n</section>\n",
            escape(&c.column),
            escape(&c.column),
            if c.drifted { "drift" } else { "no drift" },
            c.method,
            if c.kind == "num" {
                "numeric"
            } else {
                "categorical"
            },
            score(c.score),
            c.threshold,
            c.missing[0] * 100.0,
            c.missing[1] * 100.0,
            chart(c),
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::drift::Histogram;

    #[test]
    fn names_are_escaped_and_every_column_has_a_chart() {
        let column = |name: &str, drifted| ColumnReport {
            column: name.to_owned(),
            kind: "cat",
            method: "chisquare",
            score: 0.01,
            threshold: 0.05,
            drifted,
            missing: [0.0, 0.0],
            histogram: Histogram {
                labels: vec!["<a>".into(), "b".into()],
                reference: vec![0.5, 0.5],
                current: vec![0.9, 0.1],
            },
        };
        let report = Report {
            reference_rows: 2,
            current_rows: 2,
            columns: vec![column("x<script>", true), column("y", false)],
            untested: Vec::new(),
            share: 0.5,
            drifted: true,
        };
        let html = html(&report, "r.csv", "c.csv");
        assert!(!html.contains("<script>"));
        assert!(html.contains("x&lt;script&gt;"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("<rect").count(), 8);
        assert!(!html.contains("http"), "no external resource");
    }
}
