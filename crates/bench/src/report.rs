//! The printed table, the target verdicts and the saved JSON.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::results::{Results, Row};
use crate::servers::CEILING_READ;

pub fn table(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(
        out,
        "keygate-bench on {} ({} cores, {:.0} GiB, {}), {}, keygate {}; {} s per measurement",
        results.engine,
        m.cores,
        m.memory_gib,
        m.cpu,
        m.date,
        m.keygate_commit,
        results.seconds_per_measurement
    );
    if let Some(ms) = results.argon2_verify_ms {
        let _ = write!(
            out,
            "argon2 verification (keygate's parameters): {ms:.1} ms on one core"
        );
        if let Some(rate) = results.argon2_parallel_per_s {
            let _ = write!(out, ", {rate:.0}/s with all {} cores at once", m.cores);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
    let header = [
        "scenario",
        "server",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "RSS MiB",
        "× ceiling",
        "target",
    ];
    let mut lines: Vec<[String; 10]> = vec![header.map(str::to_owned)];
    for row in &results.rows {
        lines.push(cells(results, row));
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, line) in lines.iter().enumerate() {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            // Text left, figures right.
            if i < 2 || i == 9 {
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    let read_notes = results.rows.iter().filter_map(|r| {
        r.ratio_to_read.map(|x| {
            format!(
                "  {} / {}: {x:.2} × {CEILING_READ} (the ceiling making one round trip \
                 to PostgreSQL per token)",
                r.label, r.server
            )
        })
    });
    let notes: Vec<String> = results
        .rows
        .iter()
        .filter_map(|r| {
            r.note
                .as_ref()
                .map(|n| format!("  {} / {}: {n}", r.label, r.server))
        })
        .chain(read_notes)
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    if !results.checks.is_empty() {
        let _ = writeln!(out, "\ntargets (issues 11 and 21):");
        for c in &results.checks {
            let verdict = if c.pass { "PASS" } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {verdict}  {}: {} — measured {}",
                c.label, c.rule, c.measured
            );
        }
    }
    out
}

fn cells(results: &Results, row: &Row) -> [String; 10] {
    let f = &row.figures;
    let target = if row.server == "keygate" {
        let verdicts: Vec<&str> = results
            .checks
            .iter()
            .filter(|c| c.label == row.label)
            .map(|c| if c.pass { "PASS" } else { "FAIL" })
            .collect();
        verdicts.join(",")
    } else {
        String::new()
    };
    [
        row.label.clone(),
        row.server.to_owned(),
        row.connections.to_string(),
        format!("{:.0}", f.rps),
        ms(f.p50_ms),
        ms(f.p99_ms),
        f.errors.to_string(),
        row.peak_rss_mib
            .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
        row.ratio.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
        target,
    ]
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn save(results: &Results, out_dir: &Path, table: &str, chart_svg: &str) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(out_dir.join("results.json"), json)?;
    std::fs::write(out_dir.join("table.txt"), table)?;
    std::fs::write(out_dir.join("chart.svg"), chart_svg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Check, Machine};
    use crate::stats::Summary;

    #[test]
    fn the_table_lines_up_and_shows_verdicts_beside_keygate_rows() {
        let figures = |rps| Summary {
            rps,
            p50_ms: 1.234,
            p99_ms: 123.4,
            ..Summary::default()
        };
        let mut results = Results {
            command: "x".into(),
            engine: "sqlite",
            machine: Machine::probe(2, "abc".into()),
            seconds_per_measurement: 1.0,
            argon2_verify_ms: Some(16.0),
            argon2_parallel_per_s: Some(100.0),
            rows: vec![
                Row::new("warm", "warm 64", "ceiling", 64, figures(30_000.0)),
                Row::new("warm", "warm 64", "keygate", 64, figures(6_000.0)),
            ],
            checks: vec![Check {
                label: "warm 64".into(),
                rule: "≥ 0.75 × ceiling".into(),
                measured: "0.20".into(),
                pass: false,
            }],
            total_seconds: 1.0,
        };
        results.fill_ratios();
        let text = table(&results);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("warm 64")).collect();
        assert_eq!(rows.len(), 2);
        assert!(
            rows[1].contains("0.20") && rows[1].ends_with("FAIL"),
            "{}",
            rows[1]
        );
        assert!(rows[0].contains("30000") && rows[0].contains("123"));
        assert!(text.contains("FAIL  warm 64: ≥ 0.75 × ceiling — measured 0.20"));
        assert!(text.contains("16.0 ms on one core, 100/s with all 2 cores at once"));
    }
}
