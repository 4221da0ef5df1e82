//! SVG plots of a report, drawn with `plotters` (SVG backend only): the
//! latency CDF of completed jobs (left) and messages per node, sorted
//! (right).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

const W: u32 = 960;
const H: u32 = 360;

/// The report's two charts side by side, as an SVG document.
pub fn svg(report: &Report) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        // Drawing into a string fails only on a bug in the drawing code.
        draw(&root, report).expect("drawing into a string does not fail");
        root.present().expect("drawing into a string does not fail");
    }
    out
}

/// Writes [`svg`] to `path`.
pub fn write_svg(report: &Report, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, svg(report))
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, report: &Report) -> DrawResult {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(W / 2);
    let n = report.latencies_ms.len().max(1) as f64;
    let cdf: Vec<(f64, f64)> = report
        .latencies_ms
        .iter()
        .enumerate()
        .map(|(i, l)| (*l as f64 / 1000.0, (i + 1) as f64 / n))
        .collect();
    line_chart(
        &left,
        "job latency CDF (submit -> completed)",
        "simulated seconds",
        "share of completed jobs",
        &thin(&cdf),
    )?;
    let mut messages = report.node_messages.clone();
    messages.sort_unstable();
    let per_node: Vec<(f64, f64)> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64, *m as f64))
        .collect();
    line_chart(
        &right,
        "messages per node (sorted)",
        "nodes",
        "messages sent + received",
        &thin(&per_node),
    )
}

/// At most ~1,000 points (the last one kept): a smooth line, a small file.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let step = (points.len() / 1000).max(1);
    let mut kept: Vec<(f64, f64)> = points.iter().copied().step_by(step).collect();
    if let Some(last) = points.last()
        && kept.last() != Some(last)
    {
        kept.push(*last);
    }
    kept
}

fn line_chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
) -> DrawResult {
    let max_x = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x * 1.02, 0.0..max_y * 1.05)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        ShapeStyle::from(&BLUE).stroke_width(2),
    ))?;
    Ok(())
}
