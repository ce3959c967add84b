//! SVG plot of a run: frame latency over time (p50, p99, max per bucket) above the latency
//! distribution.

use plotters::prelude::*;

use crate::stats::GroupSummary;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Draws `g` (usually the `total` group) into an SVG file at `path`.
pub fn draw(g: &GroupSummary, title: &str, path: &std::path::Path) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(420);

    let t_max = g.timeline.last().map_or(1.0, |p| p.t + 1.0);
    let y_max =
        g.timeline.iter().map(|p| p.p99).fold(100.0f64, f64::max).min(g.latency_ms.max.max(100.0)) * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{title}: frame latency over time"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(err)?;
    chart.configure_mesh().x_desc("time (s)").y_desc("latency (ms)").draw().map_err(err)?;
    let series = |f: fn(&crate::stats::TimePoint) -> f64| {
        g.timeline.iter().map(move |p| (p.t, f(p).min(y_max))).collect::<Vec<_>>()
    };
    chart
        .draw_series(LineSeries::new(series(|p| p.max), RGBColor(200, 200, 200)))
        .map_err(err)?
        .label("max")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(200, 200, 200)));
    chart
        .draw_series(LineSeries::new(series(|p| p.p99), RED))
        .map_err(err)?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .draw_series(LineSeries::new(series(|p| p.p50), BLUE))
        .map_err(err)?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    let x_max = g.histogram.last().map_or(1000.0, |(v, _)| *v).max(1.0);
    let c_max = g.histogram.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64 * 1.1;
    let width = g.histogram.windows(2).map(|w| w[1].0 - w[0].0).next().unwrap_or(1.0);
    let mut hist = ChartBuilder::on(&bottom)
        .caption(
            format!(
                "distribution: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} frames)",
                g.latency_ms.p50, g.latency_ms.p99, g.latency_ms.max, g.latency_ms.count
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..c_max)
        .map_err(err)?;
    hist.configure_mesh().x_desc("latency (ms)").y_desc("frames").draw().map_err(err)?;
    hist.draw_series(
        g.histogram
            .iter()
            .map(|(v, c)| Rectangle::new([(v - width, 0.0), (*v, *c as f64)], BLUE.mix(0.6).filled())),
    )
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
