//! What a run found: one row per measurement (a scenario on one server),
//! the facts the targets need, and the machine it ran on.

use serde::Serialize;

use crate::servers::CEILING_READ;
use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario group: warm, cold, scale, abuse, jwks, introspect,
    /// verifier, secretless, exposure.
    pub scenario: &'static str,
    /// What this row measures within it, e.g. "warm 64", "scale 1000000 keys".
    pub label: String,
    /// keygate, ceiling, ceiling+read (PostgreSQL only) or keygate-verifier.
    pub server: &'static str,
    pub connections: usize,
    #[serde(flatten)]
    pub figures: Summary,
    pub peak_rss_mib: Option<f64>,
    pub startup_s: Option<f64>,
    /// keygate's requests/s over the ceiling's for the same label.
    pub ratio: Option<f64>,
    /// keygate's requests/s over those of the ceiling that makes one
    /// round trip to PostgreSQL per token, for the same label.
    pub ratio_to_read: Option<f64>,
    /// The exposure scenario's leak reports: what they carried and cost.
    pub flood: Option<Flood>,
    pub note: Option<String>,
}

/// Floods of leak reports (`POST /oauth/exposed`), one after another, and
/// the server CPU each took.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Flood {
    /// Addresses of each flood (every flood has its own).
    pub addresses: usize,
    /// Strings sent in each flood.
    pub strings_sent: u64,
    /// Per flood, the strings of reports answered 202 (the rest were
    /// refused, 429).
    pub strings_accepted: Vec<u64>,
    /// Per flood, utime + stime of the keygate process from its first
    /// report to its last answer, the token requests sent meanwhile
    /// included.
    pub server_cpu_s: Vec<f64>,
    /// Per flood, the same of the PostgreSQL backends serving keygate's
    /// database (empty on SQLite, whose work is in keygate's process).
    pub database_cpu_s: Vec<f64>,
}

impl Flood {
    /// The fewest strings accepted in one flood.
    pub fn fewest_accepted(&self) -> u64 {
        self.strings_accepted.iter().copied().min().unwrap_or(0)
    }

    /// Per flood, keygate's CPU and its database backends'.
    pub fn total_cpu_s(&self) -> Vec<f64> {
        self.server_cpu_s
            .iter()
            .enumerate()
            .map(|(i, s)| s + self.database_cpu_s.get(i).copied().unwrap_or(0.0))
            .collect()
    }

    /// The most CPU one flood took, keygate's and its database's.
    pub fn most_cpu_s(&self) -> f64 {
        self.total_cpu_s().into_iter().fold(0.0, f64::max)
    }
}

impl Row {
    pub fn new(
        scenario: &'static str,
        label: impl Into<String>,
        server: &'static str,
        connections: usize,
        figures: Summary,
    ) -> Self {
        Self {
            scenario,
            label: label.into(),
            server,
            connections,
            figures,
            peak_rss_mib: None,
            startup_s: None,
            ratio: None,
            ratio_to_read: None,
            flood: None,
            note: None,
        }
    }
}

/// A target of issue 11, checked against the rows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// The label of the row it is about.
    pub label: String,
    pub rule: String,
    pub measured: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub date: String,
    pub keygate_commit: String,
}

impl Machine {
    pub fn probe(cores: usize, commit: String) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cores,
            memory_gib: memory_kib / 1024.0 / 1024.0,
            cpu,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            keygate_commit: commit,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub command: String,
    pub engine: &'static str,
    pub machine: Machine,
    pub seconds_per_measurement: f64,
    /// One argon2 verification with keygate's parameters, ms of one core.
    pub argon2_verify_ms: Option<f64>,
    /// Verifications/s with every core verifying at once.
    pub argon2_parallel_per_s: Option<f64>,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    pub total_seconds: f64,
}

impl Results {
    pub fn find(&self, label: &str, server: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.label == label && r.server == server)
    }

    /// Fills each keygate row's ratios from the ceiling rows of its label
    /// (not for attackers: serving them slower is no shortfall).
    pub fn fill_ratios(&mut self) {
        let rates = |server: &str| -> Vec<(String, f64)> {
            self.rows
                .iter()
                .filter(|r| r.server == server)
                .map(|r| (r.label.clone(), r.figures.rps))
                .collect()
        };
        let ceilings = rates("ceiling");
        let reads = rates(CEILING_READ);
        let over = |rows: &[(String, f64)], row: &Row| {
            rows.iter()
                .find(|(label, _)| *label == row.label)
                .and_then(|(_, c)| (*c > 0.0).then(|| row.figures.rps / c))
        };
        let compared = |r: &Row| r.server == "keygate" && !r.label.contains("attackers");
        for row in self.rows.iter_mut().filter(|r| compared(r)) {
            row.ratio = over(&ceilings, row);
            row.ratio_to_read = over(&reads, row);
        }
    }

    /// The ceiling+read row's requests/s over the ceiling's, for `label`.
    pub fn read_ceiling_ratio(&self, label: &str) -> Option<f64> {
        let read = self.find(label, CEILING_READ)?.figures.rps;
        let ceiling = self.find(label, "ceiling")?.figures.rps;
        (ceiling > 0.0).then(|| read / ceiling)
    }
}
