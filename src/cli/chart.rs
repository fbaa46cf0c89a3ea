//! Line charts as SVG (plotters): the curves of `metarec eval --plot` and of the examples that
//! draw EVALUATION.md's figures.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;
use std::ops::Range;

/// A chart of named lines over linear axes.
pub struct Lines<'a> {
    pub caption: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x: Range<f64>,
    pub y: Range<f64>,
    /// (label, points) per line, coloured in order from plotters' 99-colour palette.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `lines` on `area` (a whole SVG or a panel of one) with a legend.
pub fn draw(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    lines: &Lines,
) -> Result<(), Box<dyn Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(lines.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(lines.x.clone(), lines.y.clone())?;
    chart
        .configure_mesh()
        .x_desc(lines.x_desc)
        .y_desc(lines.y_desc)
        .draw()?;
    for (i, (label, points)) in lines.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The largest finite value of the lines' y coordinates (0 when there is none).
pub fn y_max(series: &[(String, Vec<(f64, f64)>)]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}
