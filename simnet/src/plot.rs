//! SVG plots of a report: the latency CDF (left) and messages per node,
//! sorted (right). Plain SVG written by hand: two line charts need no
//! plotting library.

use std::fmt::Write;

use crate::report::Report;

const W: f64 = 460.0;
const H: f64 = 320.0;
const PAD: f64 = 50.0;

/// The report's two charts side by side, as an SVG document.
pub fn svg(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{H}" font-family="sans-serif" font-size="11">"#,
        2.0 * W
    );
    let latencies: Vec<(f64, f64)> = {
        let n = report.latencies_ms.len().max(1) as f64;
        report
            .latencies_ms
            .iter()
            .enumerate()
            .map(|(i, l)| (*l as f64 / 1000.0, (i + 1) as f64 / n))
            .collect()
    };
    chart(
        &mut out,
        0.0,
        "job latency CDF (submit -> completed)",
        "simulated seconds",
        "share of completed jobs",
        &latencies,
    );
    let mut messages = report.node_messages.clone();
    messages.sort_unstable();
    let messages: Vec<(f64, f64)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64, *m as f64))
        .collect();
    chart(
        &mut out,
        W,
        "messages per node (sorted)",
        "nodes",
        "messages sent + received",
        &messages,
    );
    out.push_str("</svg>\n");
    out
}

fn chart(
    out: &mut String,
    x0: f64,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
) {
    let max_x = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let (left, right, top, bottom) = (x0 + PAD, x0 + W - 15.0, 30.0, H - PAD);
    let sx = |x: f64| left + (right - left) * x / max_x;
    let sy = |y: f64| bottom - (bottom - top) * y / max_y;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{title}</text>"#,
        (left + right) / 2.0
    );
    let _ = writeln!(
        out,
        r#"<path d="M{left},{top} L{left},{bottom} L{right},{bottom}" stroke="black" fill="none"/>"#
    );
    for k in 0..=4 {
        let fx = max_x * f64::from(k) / 4.0;
        let fy = max_y * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            sx(fx),
            bottom + 15.0,
            short(fx)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 4.0,
            sy(fy) + 4.0,
            short(fy)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
        (left + right) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{y_label}</text>"#,
        x0 + 12.0,
        (top + bottom) / 2.0,
        x0 + 12.0,
        (top + bottom) / 2.0
    );
    // At most ~1000 points: enough for a smooth line, small files.
    let step = (points.len() / 1000).max(1);
    let mut d = String::new();
    for (i, (x, y)) in points.iter().enumerate().step_by(step) {
        let _ = write!(
            d,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            sx(*x),
            sy(*y)
        );
    }
    if let Some((x, y)) = points.last() {
        let _ = write!(d, "L{:.1},{:.1}", sx(*x), sy(*y));
    }
    let _ = writeln!(
        out,
        r#"<path d="{d}" stroke="steelblue" stroke-width="1.5" fill="none"/>"#
    );
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
