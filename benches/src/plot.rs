//! Latency-by-percentile curves, as HdrHistogram's plotter draws them: the x axis is
//! -log10(1 - percentile), so 90%, 99%, 99.9% and 99.99% are evenly spaced.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Row;

const X_MAX: f64 = 5.0; // 99.999%

/// Draws every row's curve into an SVG file.
pub fn draw(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let max = rows.iter().map(|r| r.hist.max()).max().unwrap_or(1).max(2) as f64;
    let min = rows.iter().map(|r| r.hist.min()).min().unwrap_or(1).max(1) as f64;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "round-trip latency by percentile (ns, log scale)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..X_MAX, (min * 0.8..max * 1.2).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = format!("{:.3}", 100.0 * (1.0 - 10f64.powf(-*x)));
            format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("ns")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, row) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = row
            .hist
            .iter_quantiles(5)
            .map(|v| {
                let q = v.quantile_iterated_to().min(1.0 - 1e-5);
                (-(1.0 - q).log10(), v.value_iterated_to().max(1) as f64)
            })
            .filter(|(x, _)| *x <= X_MAX)
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(row.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
