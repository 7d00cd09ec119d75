//! End to end: `keygate-bench --quick` against the debug keygate binary
//! (built beside this crate's by `cargo test --workspace`). Its figures
//! mean nothing; it proves every scenario runs and writes its files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn a_quick_run_measures_every_scenario_and_writes_json_and_chart() {
    let bench = Path::new(env!("CARGO_BIN_EXE_keygate-bench"));
    let keygate = bench.with_file_name("keygate");
    assert!(
        keygate.is_file(),
        "{} is missing: run `cargo build --bin keygate` first (cargo test --workspace builds it)",
        keygate.display()
    );
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(bench)
        .arg("--quick")
        .arg("--keygate-bin")
        .arg(&keygate)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("targets (issues 11 and 21):"), "{stdout}");

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    let rows = results["rows"].as_array().unwrap();
    let row = |label: &str, server: &str| {
        rows.iter()
            .find(|r| r["label"] == label && r["server"] == server)
            .unwrap_or_else(|| panic!("no row {label} / {server} in {stdout}"))
    };
    // A 0.2 s window on a busy machine may see no answer at all, so only
    // errors and the whole run's count are asserted, not each row's rate.
    let labels = [
        "warm 1",
        "warm 16",
        "warm 64",
        "abuse: valid alone",
        "jwks",
        "introspect",
    ];
    for label in labels {
        for server in ["keygate", "ceiling"] {
            assert_eq!(row(label, server)["errors"], 0, "{label} / {server}");
        }
    }
    for label in [
        "cold",
        "scale 10 keys",
        "scale 200 keys",
        "abuse: valid under attack",
        "exposure: cold token alone",
        "exposure: leak reports",
        "exposure: cold token meanwhile",
    ] {
        assert_eq!(row(label, "keygate")["errors"], 0, "{label}");
    }
    let answered: u64 = rows
        .iter()
        .filter(|r| r["server"] == "keygate")
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert!(answered > 0, "{stdout}");
    assert!(row("verifier", "keygate-verifier")["rps"].as_f64().unwrap() > 0.0);
    assert!(!results["checks"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(out.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("warm"));
}

/// On PostgreSQL the warm scenario also measures the ceiling that makes one
/// round trip per token, and names keygate's ratio to it.
#[test]
fn a_quick_warm_run_on_postgres_measures_the_read_ceiling_too() {
    let admin = std::env::var("KEYGATE_TEST_POSTGRES_URL").expect(
        "KEYGATE_TEST_POSTGRES_URL is not set: run the tests with scripts/test, \
         which starts a PostgreSQL (or names one with that variable)",
    );
    let bench = Path::new(env!("CARGO_BIN_EXE_keygate-bench"));
    let keygate = bench.with_file_name("keygate");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(bench)
        .args(["--quick", "--scenarios", "warm", "--postgres", &admin])
        .arg("--keygate-bin")
        .arg(&keygate)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    let rows = results["rows"].as_array().unwrap();
    let row = |label: &str, server: &str| {
        rows.iter()
            .find(|r| r["label"] == label && r["server"] == server)
            .unwrap_or_else(|| panic!("no row {label} / {server} in {stdout}"))
    };
    for label in ["warm 1", "warm 16", "warm 64"] {
        for server in ["ceiling", "ceiling+read", "keygate"] {
            assert_eq!(
                row(label, server)["errors"],
                0,
                "{label} / {server}: {stdout}"
            );
        }
    }
    // A 0.2 s window may see no answer on a busy machine; with answers on
    // both, the ratio is named.
    let answered = |server| row("warm 64", server)["rps"].as_f64().unwrap() > 0.0;
    if answered("ceiling+read") && answered("keygate") {
        assert!(stdout.contains("warm 64 / keygate: "), "{stdout}");
        assert!(stdout.contains("× ceiling+read"), "{stdout}");
    }
}
