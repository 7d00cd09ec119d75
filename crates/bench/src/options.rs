//! The command line: what to run, for how long, against which build and
//! database.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand};

use crate::ceiling::CeilingArgs;

#[derive(Debug, Parser)]
#[command(
    name = "keygate-bench",
    about = "Load benchmark of keygate (POST /oauth/token and more) beside an in-memory ceiling server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve as the ceiling (started by the benchmark itself).
    #[command(hide = true)]
    Ceiling(CeilingArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Seconds per measurement (after a warm-up of a fifth of it, 0.2–1 s).
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "warm,cold,scale,abuse,jwks,introspect,verifier,secretless,exposure"
    )]
    pub scenarios: Vec<Scenario>,
    /// Keys in the database for the scale scenario, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,10000,1000000", value_parser = parse_keys)]
    pub scale_keys: Vec<usize>,
    /// Run on PostgreSQL: an admin URL; a scratch database is created (and
    /// dropped) for each scenario group. Default: SQLite in a temp dir.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The keygate binary to measure; default: `cargo build --release
    /// --bin keygate` first and use target/release/keygate.
    #[arg(long, value_name = "PATH")]
    pub keygate_bin: Option<PathBuf>,
    /// Where results.json, table.txt and chart.svg go (default:
    /// target/bench/<date>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A tiny run (0.2 s measurements, 10 keys, scale 10 and 200) for the
    /// smoke test; its figures mean nothing.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Warm,
    Cold,
    Scale,
    Abuse,
    Jwks,
    Introspect,
    Verifier,
    Secretless,
    Exposure,
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "warm" => Self::Warm,
            "cold" => Self::Cold,
            "scale" => Self::Scale,
            "abuse" => Self::Abuse,
            "jwks" => Self::Jwks,
            "introspect" | "introspection" => Self::Introspect,
            "verifier" => Self::Verifier,
            "secretless" => Self::Secretless,
            "exposure" => Self::Exposure,
            other => {
                return Err(format!(
                    "unknown scenario {other:?}: expected warm, cold, scale, abuse, jwks, introspect, verifier, secretless or exposure"
                ));
            }
        })
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&v) {
        return Err("must be between 0.1 and 3600".into());
    }
    Ok(v)
}

/// A key count: digits, optionally with `_` separators or a k/M suffix.
fn parse_keys(s: &str) -> Result<usize, String> {
    let t = s.trim().replace('_', "");
    let (digits, factor) = match t.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1_000),
        None => match t.strip_suffix('M') {
            Some(d) => (d, 1_000_000),
            None => (t.as_str(), 1),
        },
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a key count (e.g. 10, 10000, 10k, 1M)"))?;
    let n = n.checked_mul(factor).ok_or("too many keys")?;
    if !(1..=10_000_000).contains(&n) {
        return Err(format!("{n} keys: must be between 1 and 10,000,000"));
    }
    Ok(n)
}

impl Options {
    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }

    /// What --quick shrinks: measurement time and key counts.
    pub fn effective(mut self) -> Self {
        if self.quick {
            self.seconds = self.seconds.min(0.2);
            self.scale_keys = vec![10, 200];
        }
        self
    }

    /// Keys used by the warm, abuse and scale scenarios.
    pub fn warm_keys(&self) -> usize {
        if self.quick { 10 } else { 100 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("keygate-bench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_run_everything_for_five_seconds() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.seconds, 5.0);
        assert_eq!(cli.run.scenarios.len(), 9);
        assert_eq!(cli.run.scale_keys, [10, 10_000, 1_000_000]);
    }

    #[test]
    fn lists_and_suffixes_parse() {
        let cli = parse(&[
            "--scenarios",
            "warm,jwks,exposure",
            "--scale-keys",
            "10,10k,1M",
            "--seconds",
            "2.5",
        ])
        .unwrap();
        assert_eq!(
            cli.run.scenarios,
            [Scenario::Warm, Scenario::Jwks, Scenario::Exposure]
        );
        assert_eq!(cli.run.scale_keys, [10, 10_000, 1_000_000]);
        assert_eq!(cli.run.seconds, 2.5);
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        let err = parse(&["--scenarios", "warm,hot"]).unwrap_err().to_string();
        assert!(err.contains("unknown scenario \"hot\""), "{err}");
        let err = parse(&["--scale-keys", "ten"]).unwrap_err().to_string();
        assert!(err.contains("not a key count"), "{err}");
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["--scale-keys", "0"]).is_err());
    }

    #[test]
    fn quick_shrinks_the_run() {
        let opts = parse(&["--quick"]).unwrap().run.effective();
        assert_eq!(opts.seconds, 0.2);
        assert_eq!(opts.scale_keys, [10, 200]);
        assert_eq!(opts.warm_keys(), 10);
    }

    #[test]
    fn the_ceiling_subcommand_parses() {
        let cli = parse(&[
            "ceiling",
            "--listen",
            "127.0.0.1:1",
            "--clients",
            "f",
            "--audience",
            "a",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Ceiling(_))));
    }
}
