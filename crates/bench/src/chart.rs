//! The SVG chart: throughput and p99 per scenario, keygate beside the
//! ceiling, on log scales (cold tokens/s and verifier validations/s differ
//! by orders of magnitude). plotters' SVG backend only: text is left to
//! the viewer, so no font library is needed to build or run.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{Results, Row};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 960;
const KEYGATE: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const CEILING: RGBColor = RGBColor(0xb0, 0xb0, 0xb0);

/// One x position: a scenario and its two figures.
struct Bar {
    label: String,
    keygate: Option<f64>,
    ceiling: Option<f64>,
}

pub fn render(results: &Results) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = format!(
            "keygate vs ceiling — {}, {} cores, {} ({})",
            results.engine,
            results.machine.cores,
            results.machine.date,
            results.machine.keygate_commit
        );
        let (top, rest) = root.split_vertically(40);
        top.draw(&Text::new(title, (20, 12), ("sans-serif", 20).into_font()))
            .map_err(|e| e.to_string())?;
        legend(&top)?;
        let (upper, lower) = rest.split_vertically((HEIGHT - 40) / 2);
        panel(
            &upper,
            "throughput (requests/s, log scale)",
            &bars(results, |r| r.figures.rps),
        )?;
        panel(
            &lower,
            "p99 latency (ms, log scale)",
            &bars(results, |r| r.figures.p99_ms),
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Labels in run order; attacker rows are left out (they have no ceiling
/// counterpart worth a bar and would crowd the chart).
fn bars(results: &Results, value: impl Fn(&Row) -> f64) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for row in results
        .rows
        .iter()
        .filter(|r| !r.label.contains("attackers"))
    {
        let v = Some(value(row)).filter(|v| *v > 0.0);
        let i = match out.iter().position(|b| b.label == row.label) {
            Some(i) => i,
            None => {
                out.push(Bar {
                    label: row.label.clone(),
                    keygate: None,
                    ceiling: None,
                });
                out.len() - 1
            }
        };
        match row.server {
            "ceiling" => out[i].ceiling = v,
            server if server.starts_with("keygate") => out[i].keygate = v,
            _ => {}
        }
    }
    out
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    bars: &[Bar],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let values = bars.iter().flat_map(|b| [b.keygate, b.ceiling]).flatten();
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 3.0, hi * 3.0)
    };
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (server, color, offset) in [("keygate", KEYGATE, 0.1), ("ceiling", CEILING, 0.5)] {
        let rects = bars.iter().enumerate().filter_map(|(i, b)| {
            let v = if server == "keygate" {
                b.keygate
            } else {
                b.ceiling
            }?;
            let x = i as f64 + offset;
            Some(Rectangle::new([(x, lo), (x + 0.4, v)], color.filled()))
        });
        chart.draw_series(rects).map_err(err)?;
        let values = bars.iter().enumerate().filter_map(|(i, b)| {
            let v = if server == "keygate" {
                b.keygate
            } else {
                b.ceiling
            }?;
            let style = ("sans-serif", 11).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                ),
            );
            Some(Text::new(
                short(v),
                (i as f64 + offset + 0.2, v * 1.08),
                style,
            ))
        });
        chart.draw_series(values).map_err(err)?;
    }
    // Scenario names under each pair of bars, on two lines.
    for (i, bar) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        let (first, second) = two_lines(&bar.label);
        let style = ("sans-serif", 13).into_font().color(&BLACK).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ),
        );
        // backend_coord is absolute; the area draws relative to its corner.
        let origin = area.get_base_pixel();
        let (x, y) = (x - origin.0, y - origin.1 + 6);
        area.draw(&Text::new(first, (x, y), style.clone()))
            .map_err(err)?;
        area.draw(&Text::new(second, (x, y + 16), style))
            .map_err(err)?;
    }
    Ok(())
}

/// The two colours, top right, outside both panels (a legend inside a
/// panel would hide a bar).
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let x0 = WIDTH as i32 - 330;
    for (i, (name, color)) in [
        ("keygate (and its verifier)", KEYGATE),
        ("ceiling", CEILING),
    ]
    .into_iter()
    .enumerate()
    {
        let x = x0 + i as i32 * 220;
        area.draw(&Rectangle::new([(x, 14), (x + 16, 28)], color.filled()))
            .map_err(err)?;
        area.draw(&Text::new(
            name,
            (x + 22, 14),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// "scale 1000000 keys" → ("scale", "1M keys"): labels that fit a bar pair.
fn two_lines(label: &str) -> (String, String) {
    let label = label
        .replace("1000000", "1M")
        .replace("10000 ", "10k ")
        .replace("abuse: valid alone", "abuse: alone")
        .replace("abuse: valid under attack", "abuse: attacked");
    match label.split_once(' ') {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (label, String::new()),
    }
}

/// 33000 → "33k", 0.85 → "0.85".
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Machine;
    use crate::stats::Summary;

    #[test]
    fn the_chart_has_both_panels_every_scenario_and_both_servers() {
        let row = |label: &str, server, rps| {
            Row::new(
                "t",
                label,
                server,
                64,
                Summary {
                    rps,
                    p99_ms: 3.0,
                    ..Summary::default()
                },
            )
        };
        let results = Results {
            command: String::new(),
            engine: "sqlite",
            machine: Machine::probe(2, "abc".into()),
            seconds_per_measurement: 1.0,
            argon2_verify_ms: None,
            argon2_parallel_per_s: None,
            rows: vec![
                row("warm 64", "ceiling", 33_000.0),
                row("warm 64", "keygate", 6_900.0),
                row("scale 1000000 keys", "keygate", 5_000.0),
                row("abuse: attackers real IDs", "keygate", 100.0),
            ],
            checks: Vec::new(),
            total_seconds: 1.0,
        };
        let svg = render(&results).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "throughput",
            "p99 latency",
            "warm",
            "1M keys",
            "keygate",
            "ceiling",
            "33k",
            "6.9k",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(!svg.contains("attackers"));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(33_000.0), "33k");
        assert_eq!(short(6_900.0), "6.9k");
        assert_eq!(short(2_500_000.0), "2.5M");
        assert_eq!(short(0.85), "0.85");
        assert_eq!(
            two_lines("scale 10000 keys"),
            ("scale".into(), "10k keys".into())
        );
    }
}
