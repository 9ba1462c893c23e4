// SPDX-License-Identifier: MPL-2.0
//! The chart the report shows: for every comparison, each case's speed relative to the
//! comparison's reference (median, whiskers from min to max), drawn with plotters into a PNG.
//! Text uses a TrueType font read at run time (plotters' `ab_glyph`), so no system font
//! machinery is involved.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Report, TargetOutcome};
use crate::stats::Summary;

/// Where Debian's `fonts-dejavu-core` puts its sans-serif font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const WIDTH: u32 = 1600;
const ROW: i32 = 24;
const GROUP: i32 = 34;
const TOP: i32 = 56;
const BOTTOM: i32 = 50;
const PLOT_LEFT: i32 = 780;
const PLOT_RIGHT: i32 = WIDTH as i32 - 120;
/// Ratios above this are drawn clipped, with their value written.
const MAX_RATIO: f64 = 2.5;

struct Row {
    label: String,
    ratio: Summary,
    /// Some(met) when a target is set on this row.
    target: Option<(f64, bool)>,
}

fn register_font(font: &Path) -> Result<(), String> {
    let bytes = std::fs::read(font).map_err(|e| format!("font {}: {e}", font.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a font plotters can read", font.display()))
}

fn groups(report: &Report) -> Vec<(String, Vec<Row>)> {
    let outcomes: Vec<TargetOutcome> = report.target_outcomes();
    let targets: Vec<Row> = outcomes
        .iter()
        .filter_map(|o| {
            Some(Row {
                label: o.target.label.clone(),
                ratio: o.ratio?,
                target: Some((o.target.min_ratio, o.met()?)),
            })
        })
        .collect();
    let targets = (
        "Targets (ratio of the two cases each names)".to_string(),
        targets,
    );
    std::iter::once(targets)
        .chain(report.comparisons().map(|c| {
            let reference = &c.results[c.reference].name;
            let rows = c
                .results
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != c.reference)
                .filter_map(|(i, r)| {
                    let ratio = c.ratio(i, c.reference)?;
                    let target = outcomes
                        .iter()
                        .find(|o| {
                            o.target.comparison == c.id
                                && o.target.case == r.name
                                && o.target.vs == *reference
                        })
                        .and_then(|o| Some((o.target.min_ratio, o.met()?)));
                    Some(Row {
                        label: r.name.clone(),
                        ratio,
                        target,
                    })
                })
                .collect();
            (format!("{} (vs {reference})", c.title), rows)
        }))
        .filter(|(_, rows): &(String, Vec<Row>)| !rows.is_empty())
        .collect()
}

fn x_of(ratio: f64) -> i32 {
    let r = ratio.clamp(0.0, MAX_RATIO);
    PLOT_LEFT + ((PLOT_RIGHT - PLOT_LEFT) as f64 * r / MAX_RATIO) as i32
}

/// Draws the chart of `report` into `path`.
pub fn draw(path: &Path, report: &Report, font: &Path) -> Result<(), String> {
    register_font(font)?;
    let groups = groups(report);
    let rows: i32 = groups.iter().map(|(_, r)| r.len() as i32).sum();
    let height = (TOP + groups.len() as i32 * GROUP + rows * ROW + BOTTOM) as u32;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("chart: {e}");
    root.fill(&WHITE).map_err(e)?;
    let text = |size: i32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(
        format!(
            "vigil benchmarks ({} mode, {}): speed relative to the reference of each comparison (median, whiskers min-max)",
            report.mode, report.started
        ),
        (16, 14),
        text(17),
    ))
    .map_err(e)?;
    let bottom = height as i32 - BOTTOM;
    // Grid and axis labels.
    let mut tick = 0.0;
    while tick <= MAX_RATIO + 1e-9 {
        let x = x_of(tick);
        let style = if (tick - 1.0).abs() < 1e-9 {
            BLACK.stroke_width(2)
        } else {
            RGBColor(220, 220, 220).stroke_width(1)
        };
        root.draw(&PathElement::new(vec![(x, TOP), (x, bottom)], style))
            .map_err(e)?;
        root.draw(&Text::new(
            format!("{tick:.2}x"),
            (x - 16, bottom + 8),
            text(13),
        ))
        .map_err(e)?;
        tick += 0.25;
    }
    let mut y = TOP;
    for (title, rows) in &groups {
        root.draw(&Text::new(title.clone(), (16, y + 10), text(15)))
            .map_err(e)?;
        y += GROUP;
        for row in rows {
            let mid = y + ROW / 2;
            root.draw(&Text::new(row.label.clone(), (32, mid - 7), text(13)))
                .map_err(e)?;
            let color = match row.target {
                Some((_, true)) => RGBColor(46, 139, 87),
                Some((_, false)) => RGBColor(200, 60, 50),
                None => RGBColor(70, 110, 180),
            };
            let x_end = x_of(row.ratio.median);
            root.draw(&Rectangle::new(
                [(PLOT_LEFT, y + 4), (x_end, y + ROW - 4)],
                color.filled(),
            ))
            .map_err(e)?;
            root.draw(&PathElement::new(
                vec![(x_of(row.ratio.min), mid), (x_of(row.ratio.max), mid)],
                BLACK.stroke_width(2),
            ))
            .map_err(e)?;
            for v in [row.ratio.min, row.ratio.max] {
                root.draw(&PathElement::new(
                    vec![(x_of(v), mid - 5), (x_of(v), mid + 5)],
                    BLACK.stroke_width(2),
                ))
                .map_err(e)?;
            }
            if let Some((min, _)) = row.target {
                let x = x_of(min);
                root.draw(&PathElement::new(
                    vec![(x, y + 1), (x, y + ROW - 1)],
                    RGBColor(230, 150, 0).stroke_width(3),
                ))
                .map_err(e)?;
            }
            root.draw(&Text::new(
                format!("{:.3}x", row.ratio.median),
                (x_of(row.ratio.max.max(row.ratio.median)) + 8, mid - 7),
                text(13),
            ))
            .map_err(e)?;
            y += ROW;
        }
    }
    root.draw(&Text::new(
        "green: target met, red: target missed (orange mark: the target), blue: no target",
        (16, bottom + 28),
        text(13),
    ))
    .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
