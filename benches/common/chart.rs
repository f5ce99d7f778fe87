//! The SVG chart of scenarios 1-3: grouped bar panels, drawn with plotters' SVG backend
//! (text is written as SVG `<text>` elements, so no font files are needed).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One system's bars across a panel's groups.
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// One value per group; `None` leaves a gap.
    pub values: Vec<Option<f64>>,
}

/// One panel: groups along x, one bar per series in each group.
pub struct Panel {
    pub title: String,
    pub y_desc: String,
    pub groups: Vec<String>,
    pub series: Vec<Series>,
    /// Logarithmic y axis (bars start at the smallest power of ten below the data).
    pub log: bool,
    /// How a bar's value is printed above it.
    pub value_fmt: fn(f64) -> String,
}

/// Colours per system, the same in every panel.
pub fn color(label: &str) -> RGBColor {
    match label {
        l if l.starts_with("slates (modify") => RGBColor(120, 170, 230),
        l if l.starts_with("slates") => RGBColor(31, 94, 180),
        l if l.starts_with("tower-sessions") => RGBColor(230, 140, 30),
        l if l.starts_with("locking") => RGBColor(200, 40, 40),
        _ => RGBColor(130, 130, 130),
    }
}

const PANEL_HEIGHT: u32 = 380;
const WIDTH: u32 = 1000;

/// Draws `panels` stacked vertically under `caption`, `subtitle` and one legend (the
/// colours of every series of every panel) into an SVG at `path`.
pub fn draw(
    path: &std::path::Path,
    caption: &str,
    subtitle: &str,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    const HEAD: u32 = 100;
    let height = HEAD + PANEL_HEIGHT * panels.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(HEAD);
    let mut legend: Vec<(&str, RGBColor)> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        // One entry per colour: "slates" stands for every slates variant of that colour.
        if !legend.iter().any(|(_, c)| *c == s.color) {
            legend.push((&s.label, s.color));
        }
    }
    let mut x = 20;
    for (label, color) in legend {
        head.draw(&Rectangle::new([(x, 74), (x + 14, 88)], color.filled()))?;
        head.draw(&Text::new(
            label.to_owned(),
            (x + 20, 74),
            ("sans-serif", 14).into_font(),
        ))?;
        x += 40 + 8 * label.len() as i32;
    }
    head.draw(&Text::new(
        caption.to_owned(),
        (20, 12),
        ("sans-serif", 24).into_font().style(FontStyle::Bold),
    ))?;
    head.draw(&Text::new(
        subtitle.to_owned(),
        (20, 44),
        ("sans-serif", 14).into_font().color(&RGBColor(80, 80, 80)),
    ))?;
    let areas = body.split_evenly((panels.len(), 1));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn std::error::Error>> {
    let values: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .collect();
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let (y_min, y_max, to_y): (f64, f64, Box<dyn Fn(f64) -> f64>) = if panel.log {
        let min = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let lo = min.log10().floor().min(max.log10().floor());
        let hi = max.log10().ceil().max(lo + 1.0) + 0.6;
        (lo, hi, Box::new(|v: f64| v.max(1e-12).log10()))
    } else {
        (0.0, max * 1.25, Box::new(|v: f64| v))
    };
    let n_groups = panel.groups.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 17).into_font())
        .margin(12)
        .x_label_area_size(8)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n_groups as f64, y_min..y_max)?;
    let log = panel.log;
    let y_fmt = move |v: &f64| {
        if log {
            let x = 10f64.powf(*v);
            if (v - v.round()).abs() > 1e-9 {
                String::new()
            } else if x >= 1.0 {
                format!("{x:.0}")
            } else {
                format!("{x}")
            }
        } else {
            format!("{v:.0}")
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc(panel.y_desc.as_str())
        .y_label_formatter(&y_fmt)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 12));
    if log {
        mesh.y_labels(((y_max - y_min).ceil() as usize) + 1);
    }
    mesh.draw()?;

    let n_series = panel.series.len().max(1);
    let slot = 0.8 / n_series as f64;
    let value_style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, series) in panel.series.iter().enumerate() {
        let color = series.color;
        let bars = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (g, v)))
            .map(|(g, v)| {
                let x0 = g as f64 + 0.1 + i as f64 * slot;
                Rectangle::new(
                    [(x0 + slot * 0.08, y_min), (x0 + slot * 0.92, to_y(v))],
                    color.filled(),
                )
            })
            .collect::<Vec<_>>();
        chart.draw_series(bars)?;
        let labels = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (g, v)))
            .map(|(g, v)| {
                let x = g as f64 + 0.1 + (i as f64 + 0.5) * slot;
                Text::new((panel.value_fmt)(v), (x, to_y(v)), value_style.clone())
            })
            .collect::<Vec<_>>();
        chart.draw_series(labels)?;
    }
    let group_style = TextStyle::from(("sans-serif", 13).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Center, VPos::Top));
    chart.draw_series(panel.groups.iter().enumerate().map(|(g, name)| {
        Text::new(
            name.clone(),
            (g as f64 + 0.5, y_max - (y_max - y_min) * 0.01),
            group_style.clone(),
        )
    }))?;
    Ok(())
}
