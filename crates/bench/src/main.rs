//! keygate-bench: a benchmark anyone can rerun (issue 11). It builds
//! keygate's release binary, makes fresh databases, starts `keygate serve`
//! and an in-memory ceiling server (this binary as `keygate-bench
//! ceiling`), drives them over loopback with its own HTTP/1.1 load
//! generator and prints requests/s, p50, p99, errors and peak RSS per
//! scenario, keygate's figure as a ratio of the ceiling's, and the
//! targets' verdicts; results.json and chart.svg go to --out.
//!
//!     cargo run --release -p keygate-bench --
#![forbid(unsafe_code)]

mod ceiling;
mod chart;
mod fixture;
mod load;
mod options;
mod report;
mod results;
mod scenarios;
mod servers;
mod stats;
mod targets;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;

use options::{Cli, Command, Options, Scenario};
use results::{Machine, Results};
use scenarios::Bench;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Ceiling(args)) => ceiling::serve(args),
        None => run(cli.run.effective()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The binary to measure: the one given, or a fresh release build.
fn keygate_binary(opts: &Options) -> Result<PathBuf> {
    if let Some(path) = &opts.keygate_bin {
        if !path.is_file() {
            bail!("--keygate-bin {}: no such file", path.display());
        }
        return Ok(path.canonicalize()?);
    }
    eprintln!("building keygate (cargo build --release --bin keygate)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Process::new(cargo);
    build
        .args(["build", "--release", "--bin", "keygate"])
        .current_dir(workspace_root());
    // `cargo run` gives this process the bench's own CARGO_MANIFEST_DIR,
    // CARGO_PKG_* and the like; some build scripts (ring's) track them, so
    // passing them on would rebuild half the tree unlike a plain build.
    for (name, _) in std::env::vars_os() {
        if is_cargo_run_variable(&name.to_string_lossy()) {
            build.env_remove(&name);
        }
    }
    let status = build.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release --bin keygate failed");
    }
    let built = target_dir().join("release/keygate");
    built
        .canonicalize()
        .with_context(|| format!("the build left no {}", built.display()))
}

/// What cargo sets for the program it runs (not what configures cargo).
fn is_cargo_run_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

fn git_commit() -> String {
    Process::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// One scenario group's runner.
type ScenarioGroup = fn(&mut Bench) -> Result<()>;

fn run(opts: Options) -> Result<()> {
    let started = Instant::now();
    if cfg!(debug_assertions) && !opts.quick {
        eprintln!(
            "warning: keygate-bench is a debug build, its load generator is slow: use cargo run --release"
        );
    }
    let keygate_bin = keygate_binary(&opts)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let engine = if opts.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let out_dir = opts.out.clone().unwrap_or_else(|| {
        target_dir()
            .join("bench")
            .join(chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string())
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut bench = Bench::new(opts.clone(), keygate_bin, cores)?;

    let groups: [(Scenario, ScenarioGroup); 9] = [
        (Scenario::Warm, Bench::warm),
        (Scenario::Cold, Bench::cold),
        (Scenario::Scale, Bench::scale),
        (Scenario::Abuse, Bench::abuse),
        (Scenario::Jwks, Bench::jwks),
        (Scenario::Introspect, Bench::introspect),
        (Scenario::Verifier, Bench::verifier),
        (Scenario::Secretless, Bench::secretless),
        (Scenario::Exposure, Bench::exposure),
    ];
    let mut failed = Vec::new();
    for (scenario, run_group) in groups {
        if !opts.runs(scenario) {
            continue;
        }
        if let Err(e) = run_group(&mut bench) {
            eprintln!("scenario {scenario:?} failed: {e:#}");
            failed.push(format!("{scenario:?}"));
        }
    }
    if opts.runs(Scenario::Cold) {
        let _ = bench.argon2_ms();
    }

    let mut results = Results {
        command,
        engine,
        machine: Machine::probe(cores, git_commit()),
        seconds_per_measurement: opts.seconds,
        argon2_verify_ms: bench.argon2_verify_ms,
        argon2_parallel_per_s: bench.argon2_parallel_per_s,
        rows: std::mem::take(&mut bench.rows),
        checks: Vec::new(),
        total_seconds: 0.0,
    };
    results.fill_ratios();
    results.checks = targets::evaluate(&results, cores, &opts.scale_keys);
    results.total_seconds = started.elapsed().as_secs_f64();
    let table = report::table(&results);
    println!("{table}");
    let svg = chart::render(&results).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    report::save(&results, &out_dir, &table, &svg)?;
    println!(
        "total {:.0} s; results.json, table.txt and chart.svg in {}",
        results.total_seconds,
        out_dir.display()
    );
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nested_build_drops_what_cargo_run_set_but_keeps_cargo_settings() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_BIN_NAME",
            "OUT_DIR",
        ] {
            assert!(is_cargo_run_variable(name), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO", "PATH"] {
            assert!(!is_cargo_run_variable(name), "{name}");
        }
    }
}
