//! The plots of both tables: instructions per packet (a hand-written SVG) and veth rates
//! (plotters).

use std::path::Path;

use super::cost::CostRow;
use super::stats::{median, Row, Sample};

/// A bar chart: instructions per packet, nethuns beside raw, one pair of bars per row.
pub fn cost(rows: &[CostRow], path: &Path) -> Result<(), String> {
    let rows: Vec<&CostRow> = rows.iter().filter(|r| r.ours.is_some()).collect();
    let max = rows
        .iter()
        .flat_map(|r| [r.ours, r.raw])
        .flatten()
        .fold(1.0f64, f64::max);
    let (w, row_h, left) = (760.0, 34.0, 150.0);
    let h = 50.0 + row_h * rows.len() as f64;
    let scale = (w - left - 80.0) / max;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"18\">User-space instructions per packet (callgrind): nethuns (blue) vs the baseline (grey: the raw engine loop; for fwd, the copy)</text>\n"
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 34.0 + row_h * i as f64;
        svg += &format!(
            "<text x=\"10\" y=\"{}\">{} {}</text>\n",
            y + 18.0,
            r.backend,
            r.label()
        );
        for (j, (v, color)) in [(r.ours, "#3b6fb6"), (r.raw, "#999")].iter().enumerate() {
            let v = v.unwrap_or(0.0);
            let yy = y + 3.0 + 13.0 * j as f64;
            svg += &format!(
                "<rect x=\"{left}\" y=\"{yy}\" width=\"{:.1}\" height=\"12\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{v:.1}</text>\n",
                v * scale,
                left + v * scale + 4.0,
                yy + 10.0
            );
        }
    }
    svg += "</svg>\n";
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

/// Draws nethuns vs baseline Mpps per row as grouped bars.
pub fn veth(rows: &[Row], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let rows: Vec<&Row> = rows.iter().filter(|r| !r.ours.is_empty()).collect();
    let med = |v: &[Sample]| median(v, |s| s.pps / 1e6);
    let ymax = rows
        .iter()
        .map(|r| med(&r.ours).max(med(&r.base)))
        .fold(0.1, f64::max)
        * 1.15;
    let w = 160 + 90 * rows.len().max(1) as u32;
    let root = SVGBackend::new(path, (w, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("nethuns vs raw engine (Mpps, median)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(70)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..rows.len().max(1) as f64, 0f64..ymax)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}B", r.backend, r.test.short(), r.size))
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("Mpps")
        .draw()
        .map_err(|e| e.to_string())?;
    let ours = rows.iter().enumerate().map(|(i, r)| {
        Rectangle::new(
            [(i as f64 + 0.1, 0.0), (i as f64 + 0.48, med(&r.ours))],
            BLUE.filled(),
        )
    });
    chart
        .draw_series(ours)
        .map_err(|e| e.to_string())?
        .label("nethuns")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.filled()));
    let base = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.base.is_empty())
        .map(|(i, r)| {
            Rectangle::new(
                [(i as f64 + 0.52, 0.0), (i as f64 + 0.9, med(&r.base))],
                RED.mix(0.6).filled(),
            )
        });
    chart
        .draw_series(base)
        .map_err(|e| e.to_string())?
        .label("baseline (raw engine / single thread)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.mix(0.6).filled()));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
