//! `pareto_frontier.png`: tokens/s/gpu against tokens/s/user per serving mode, best points
//! marked. Drawn with plotters into memory and encoded here so the bytes depend on the data only.
use crate::error::{GenError, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::sync::Once;

/// DejaVu Sans (Bitstream Vera license, see assets/DejaVuSans-LICENSE.txt): no system fonts needed.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

pub struct Series {
    pub label: String,
    /// (tokens/s/user, tokens/s/gpu), any order.
    pub points: Vec<(f64, f64)>,
    /// The mode's best deployment.
    pub best: Option<(f64, f64)>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 800;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded and known to parse; a failure would only lose the text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * e)
        .find(|m| *m >= v * 1.05)
        .unwrap_or(10.0 * e)
}

/// PNG bytes of the chart. `min_user_speed` draws the TPOT target as a vertical line.
pub fn pareto_png(title: &str, series: &[Series], min_user_speed: Option<f64>) -> Result<Vec<u8>> {
    register_font();
    let err = |e: String| GenError::Plot(e);
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut xmax, mut ymax) = (0f64, 0f64);
    for (x, y) in all {
        xmax = xmax.max(*x);
        ymax = ymax.max(*y);
    }
    if let Some(u) = min_user_speed {
        xmax = xmax.max(u);
    }
    let (xmax, ymax) = (nice_max(xmax), nice_max(ymax));
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 26))
            .margin(24)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("tokens/s/user (per request decode speed)")
            .y_desc("tokens/s/gpu (cluster throughput per GPU)")
            .axis_desc_style((FAMILY, 20))
            .label_style((FAMILY, 16))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        if let Some(u) = min_user_speed {
            let style = ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(2);
            chart
                .draw_series(LineSeries::new([(u, 0.0), (u, ymax)], style))
                .map_err(|e| err(e.to_string()))?
                .label(format!("TPOT target ({u:.1} tokens/s/user)"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        }
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut pts = s.points.clone();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let line = ShapeStyle::from(&color).stroke_width(3);
            chart
                .draw_series(LineSeries::new(pts.clone(), line))
                .map_err(|e| err(e.to_string()))?
                .label(format!(
                    "{} Pareto frontier ({} points)",
                    s.label,
                    pts.len()
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], line));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(|e| err(e.to_string()))?;
            if let Some(b) = s.best {
                let label = format!(
                    "{} best: {:.1} tokens/s/gpu @ {:.1} tokens/s/user",
                    s.label, b.1, b.0
                );
                chart
                    .draw_series([
                        Cross::new(b, 12, ShapeStyle::from(&BLACK).stroke_width(3)),
                        Cross::new(b, 10, ShapeStyle::from(&color).stroke_width(2)),
                    ])
                    .map_err(|e| err(e.to_string()))?
                    .label(label)
                    .legend(move |(x, y)| {
                        Cross::new((x + 12, y), 7, ShapeStyle::from(&color).stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FAMILY, 16))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(e.to_string()))?;
        w.write_image_data(&buf).map_err(|e| err(e.to_string()))?;
    }
    Ok(png_bytes)
}
