//! keygate's fuzzing driver, on stable Rust and with nothing but std.
//!
//! A [`Target`] is a function over bytes that checks properties of the code
//! under test (not only that it does not panic) and names the outcome it saw
//! (`"parsed"`, `"Malformed"`, ...). The driver feeds it inputs made three
//! ways: the target's seed corpus (valid requests, tokens, bodies), byte
//! mutations of corpus entries (bit flips, interesting bytes, insertions,
//! deletions, duplications, dictionary tokens, splices), and, where the
//! target has one, a structure-aware generator. Without compiler
//! instrumentation there is no coverage feedback; its stand-in is the
//! outcome: the first input to produce an outcome not seen before joins the
//! corpus, so mutation goes on from every kind of answer the code gave.
//!
//! A panic or a failed property is a [`Finding`]: the input is shrunk
//! (greedy chunk deletion) and printed as a Rust byte string, ready to be
//! kept as a regression test beside the code it broke.
//!
//! [`main`] is the entry point of a `harness = false` bench target:
//!
//! - `cargo bench --bench fuzz [-- --seconds 180]` (or `KEYGATE_FUZZ_SECONDS`)
//!   runs for that many seconds in all, split evenly over the targets, from a
//!   seed taken from the clock, and prints cases/s and outcome counts;
//! - without `--bench`, which is how `cargo test --all-targets` runs a bench
//!   binary, it is a short deterministic run: a fixed seed and
//!   `KEYGATE_FUZZ_CASES` (default [`DEFAULT_TEST_CASES`]) cases per target,
//!   ending in a libtest-style `test result:` line.
//!
//! Either way `--seed N` replays a run, a plain argument keeps only the
//! targets whose name contains it, and the exit status is 1 on any finding.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Cases per target in a test-mode run: a few seconds in all.
pub const DEFAULT_TEST_CASES: u64 = 3_000;
/// Seed of a test-mode run, so CI replays the same inputs every time.
pub const TEST_SEED: u64 = 0x6b65_7967_6174_6531;
/// Seconds of a bench-mode run, all targets together.
pub const DEFAULT_BENCH_SECONDS: u64 = 180;

/// Inputs longer than this are cut before they are checked.
const MAX_INPUT_LEN: usize = 4096;
/// How many corpus entries a target keeps at most.
const MAX_CORPUS: usize = 4096;
/// A target stops after this many findings: the first ones are the useful ones.
const MAX_FINDINGS: usize = 3;
/// Attempts spent shrinking one finding.
const MAX_SHRINK_ATTEMPTS: usize = 4000;

/// A small, fast pseudo-random generator (splitmix64): reproducible from its
/// seed, which is all a fuzzer needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Widening then narrowing: the result is below n, so it fits.
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }

    /// One of `items`; `None` when there are none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// What a check says about one input: the outcome's name when every
/// property held, otherwise which property failed and how.
pub type Verdict = Result<&'static str, String>;

type Check = Box<dyn Fn(&[u8]) -> Verdict>;
type Generate = Box<dyn Fn(&mut Rng) -> Vec<u8>>;

/// One thing to fuzz: a check over bytes, its seeds, and what mutation and
/// generation draw on.
pub struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    dictionary: Vec<Vec<u8>>,
    generate: Option<Generate>,
    generate_one_in: usize,
    check: Check,
}

impl Target {
    pub fn new(name: &'static str, check: impl Fn(&[u8]) -> Verdict + 'static) -> Self {
        Self {
            name,
            seeds: Vec::new(),
            dictionary: Vec::new(),
            generate: None,
            generate_one_in: 4,
            check: Box::new(check),
        }
    }

    /// Valid (and interestingly invalid) inputs that mutation starts from.
    pub fn seeds<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.seeds
            .extend(seeds.into_iter().map(|s| s.as_ref().to_vec()));
        self
    }

    /// Tokens of the input's language (`%`, `&`, `"aud"`, ...), inserted or
    /// written over by mutation.
    pub fn dictionary<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.dictionary
            .extend(tokens.into_iter().map(|s| s.as_ref().to_vec()));
        self
    }

    /// A structure-aware generator, used for about one case in four.
    pub fn generator(mut self, generate: impl Fn(&mut Rng) -> Vec<u8> + 'static) -> Self {
        self.generate = Some(Box::new(generate));
        self
    }

    /// Use the generator for one case in `n` (1: every case but the seeds).
    pub fn generate_one_in(mut self, n: usize) -> Self {
        self.generate_one_in = n.max(1);
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The check on one input, a panic turned into a failure.
    pub fn run_one(&self, input: &[u8]) -> Verdict {
        match panic::catch_unwind(AssertUnwindSafe(|| (self.check)(input))) {
            Ok(verdict) => verdict,
            Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-text panic payload)".to_owned()
    }
}

/// How long each target runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Cases(u64),
    Time(Duration),
}

/// An input that broke a property, shrunk.
#[derive(Debug, Clone)]
pub struct Finding {
    pub input: Vec<u8>,
    pub failure: String,
}

/// What one target's run did.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub cases: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn cases_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.cases as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs `target` within `budget`, from `seed`.
pub fn fuzz(target: &Target, budget: Budget, seed: u64) -> Report {
    let mut rng = Rng::new(seed ^ fnv1a(target.name.as_bytes()));
    let mut corpus: Vec<Vec<u8>> = target.seeds.clone();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut findings: Vec<Finding> = Vec::new();
    let started = Instant::now();
    let mut cases: u64 = 0;

    let quiet = silence_panics();
    // The seeds first, each once: a seed that fails is the plainest finding.
    let mut pending: Vec<Vec<u8>> = corpus.iter().rev().cloned().collect();
    loop {
        let done = match budget {
            Budget::Cases(n) => cases >= n,
            // Reading the clock every case would cost more than cheap checks.
            Budget::Time(d) => cases.is_multiple_of(64) && started.elapsed() >= d,
        };
        if done || findings.len() >= MAX_FINDINGS {
            break;
        }
        let input = match pending.pop() {
            Some(seed_input) => seed_input,
            None => next_input(target, &corpus, &mut rng),
        };
        cases += 1;
        match target.run_one(&input) {
            Ok(outcome) => {
                let count = outcomes.entry(outcome).or_insert(0);
                *count += 1;
                if *count == 1 && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(failure) => {
                let shrunk = shrink(target, input);
                if !findings.iter().any(|f| f.input == shrunk.input) {
                    findings.push(Finding {
                        input: shrunk.input,
                        failure: if shrunk.failure.is_empty() {
                            failure
                        } else {
                            shrunk.failure
                        },
                    });
                }
            }
        }
    }
    drop(quiet);
    Report {
        target: target.name,
        cases,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        outcomes,
        findings,
    }
}

fn next_input(target: &Target, corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    if let Some(generate) = &target.generate
        && rng.one_in(target.generate_one_in)
    {
        let mut input = generate(rng);
        // Mostly whole, sometimes mutated: mutation on top of structure.
        if rng.one_in(4) {
            mutate(&mut input, corpus, &target.dictionary, rng);
        }
        input.truncate(MAX_INPUT_LEN);
        return input;
    }
    let mut input = rng.pick(corpus).cloned().unwrap_or_default();
    mutate(&mut input, corpus, &target.dictionary, rng);
    input.truncate(MAX_INPUT_LEN);
    input
}

/// Bytes that tend to matter to parsers: bounds, separators, escapes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xc3, 0xe2, b'%', b'+', b'&', b'=', b':', b'.', b' ', b'"',
    b'\\', b'{', b'}', b'[', b']', b',', b'-', b'_', b'/', b'0', b'9', b'A', b'F', b'\n', b'\t',
];

/// One to four stacked mutations of `input`.
pub fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[Vec<u8>], rng: &mut Rng) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.pick(INTERESTING).copied().unwrap_or(0);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.byte();
            }
            3 => {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..count).map(|_| rng.byte()).collect();
                input.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let count = 1 + rng.below((len - at).min(16));
                input.drain(at..at + count);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let count = 1 + rng.below((len - at).min(32));
                let chunk = input[at..at + count].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, chunk);
            }
            6 | 7 if !dictionary.is_empty() => {
                let token = rng.pick(dictionary).cloned().unwrap_or_default();
                let at = rng.below(len + 1);
                if rng.one_in(2) || at + token.len() > len {
                    input.splice(at..at, token);
                } else {
                    input.splice(at..at + token.len(), token);
                }
            }
            8 => {
                if let Some(other) = rng.pick(corpus)
                    && !other.is_empty()
                {
                    let from = rng.below(other.len());
                    let count = 1 + rng.below(other.len() - from);
                    let chunk = other[from..from + count].to_vec();
                    let at = rng.below(len + 1);
                    let end = (at + rng.below(count + 1)).min(len);
                    input.splice(at..end, chunk);
                }
            }
            9 if len > 0 => input.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                let byte = rng.pick(INTERESTING).copied().unwrap_or(0);
                input.insert(at, byte);
            }
        }
    }
}

/// Greedy chunk deletion while the input still fails.
fn shrink(target: &Target, mut input: Vec<u8>) -> Finding {
    let mut failure = String::new();
    let mut attempts = 0;
    let mut chunk = input.len().max(1);
    while chunk >= 1 && attempts < MAX_SHRINK_ATTEMPTS {
        let mut at = 0;
        let mut shrank = false;
        while at + chunk <= input.len() && attempts < MAX_SHRINK_ATTEMPTS {
            attempts += 1;
            let mut candidate = input.clone();
            candidate.drain(at..at + chunk);
            match target.run_one(&candidate) {
                Err(f) => {
                    input = candidate;
                    failure = f;
                    shrank = true;
                }
                Ok(_) => at += chunk,
            }
        }
        if !shrank {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    Finding { input, failure }
}

/// Keeps panics of the code under test off stderr while a run lasts (they
/// become findings); the previous hook is back when the guard drops.
struct QuietPanics {
    previous: Option<PanicHook>,
}

type PanicHook = Box<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

fn silence_panics() -> QuietPanics {
    let previous = Some(panic::take_hook());
    panic::set_hook(Box::new(|_| {}));
    QuietPanics { previous }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(hook) = self.previous.take() {
            panic::set_hook(hook);
        }
    }
}

/// `input` as a Rust byte-string literal, to paste into a regression test.
pub fn byte_literal(input: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in input {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How [`main`] was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub bench: bool,
    pub seconds: u64,
    pub cases: u64,
    pub seed: u64,
    pub filter: Option<String>,
}

impl Options {
    /// From the arguments (without the program name) and the environment.
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, text: Option<String>| -> Result<Option<u64>, String> {
            text.map(|t| {
                t.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{name} must be a whole number, not {t:?}"))
            })
            .transpose()
        };
        let mut options = Self {
            bench: false,
            seconds: number("KEYGATE_FUZZ_SECONDS", env("KEYGATE_FUZZ_SECONDS"))?
                .unwrap_or(DEFAULT_BENCH_SECONDS),
            cases: number("KEYGATE_FUZZ_CASES", env("KEYGATE_FUZZ_CASES"))?
                .unwrap_or(DEFAULT_TEST_CASES),
            seed: TEST_SEED,
            filter: None,
        };
        let mut seed = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => options.bench = true,
                "--seconds" => {
                    options.seconds = number("--seconds", args.next().cloned())?
                        .ok_or("--seconds needs a value")?;
                }
                "--cases" => {
                    options.cases =
                        number("--cases", args.next().cloned())?.ok_or("--cases needs a value")?;
                }
                "--seed" => {
                    seed = Some(
                        number("--seed", args.next().cloned())?.ok_or("--seed needs a value")?,
                    );
                }
                // libtest's options that take a value: skip both.
                "--test-threads" | "--skip" | "--color" | "--format" | "--logfile" | "-Z" => {
                    args.next();
                }
                // Other flags cargo or libtest pass to every test binary.
                flag if flag.starts_with('-') => {}
                name => options.filter = Some(name.to_owned()),
            }
        }
        options.seed = match seed {
            Some(seed) => seed,
            None if options.bench => clock_seed(),
            None => TEST_SEED,
        };
        Ok(options)
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(TEST_SEED, |d| fnv1a(&d.as_nanos().to_le_bytes()))
}

/// Runs `targets` as the arguments say (see the crate docs), prints a
/// report per target and returns the process's exit status.
pub fn main(suite: &str, targets: &[Target]) -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args, |name| std::env::var(name).ok()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{suite} fuzz: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| options.filter.as_deref().is_none_or(|f| t.name.contains(f)))
        .collect();
    let budget = if options.bench {
        let each = options.seconds as f64 / chosen.len().max(1) as f64;
        Budget::Time(Duration::from_secs_f64(each))
    } else {
        Budget::Cases(options.cases)
    };
    println!(
        "{suite} fuzz: {} target(s), {budget:?} each, seed {}",
        chosen.len(),
        options.seed
    );
    let mut failed = 0;
    let mut total_cases = 0;
    let started = Instant::now();
    for target in &chosen {
        let report = fuzz(target, budget, options.seed);
        total_cases += report.cases;
        print_report(&report);
        if !report.findings.is_empty() {
            failed += 1;
        }
    }
    println!(
        "{suite} fuzz: {total_cases} cases in {:.1} s, {} target(s) with findings (replay: --seed {})",
        started.elapsed().as_secs_f64(),
        failed,
        options.seed
    );
    if !options.bench {
        let status = if failed == 0 { "ok" } else { "FAILED" };
        println!(
            "test result: {status}. {} passed; {failed} failed; 0 ignored; 0 measured; {} filtered out",
            chosen.len() - failed,
            targets.len() - chosen.len()
        );
    }
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

fn print_report(report: &Report) {
    let outcomes: Vec<String> = report
        .outcomes
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    println!(
        "  {:<28} {:>9} cases {:>6.1} s {:>9.0}/s  corpus {:>4}  {}",
        report.target,
        report.cases,
        report.elapsed.as_secs_f64(),
        report.cases_per_second(),
        report.corpus,
        outcomes.join(", ")
    );
    for finding in &report.findings {
        println!(
            "    FINDING: {}\n      input: {}",
            finding.failure,
            byte_literal(&finding.input)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn finds_shrinks_and_reports_a_planted_bug() {
        let target = Target::new("planted", |input| {
            if input.windows(3).any(|w| w == b"%zz") {
                panic!("planted bug");
            }
            Ok("fine")
        })
        .seeds(["a=b&c=d"])
        .dictionary(["%", "zz"]);
        let report = fuzz(&target, Budget::Cases(200_000), 7);
        let finding = report.findings.first().expect("the planted bug is found");
        assert_eq!(finding.input, b"%zz");
        assert!(
            finding.failure.contains("planted bug"),
            "{}",
            finding.failure
        );
    }

    #[test]
    fn a_property_failure_is_a_finding_and_new_outcomes_grow_the_corpus() {
        let target = Target::new("property", |input| match input.first() {
            Some(b'x') => Err("starts with x".into()),
            Some(b) if b.is_ascii_digit() => Ok("digit"),
            _ => Ok("other"),
        })
        .seeds(["abc", "1"]);
        let report = fuzz(&target, Budget::Cases(50_000), 1);
        assert_eq!(report.findings[0].input, b"x");
        assert_eq!(report.outcomes.len(), 2);
    }

    #[test]
    fn the_same_seed_replays_the_same_inputs() {
        let target = || {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            let t = Target::new("replay", move |input| {
                log.lock().unwrap().push(input.to_vec());
                Ok("ok")
            })
            .seeds(["seed"]);
            (t, seen)
        };
        let (a, seen_a) = target();
        let (b, seen_b) = target();
        fuzz(&a, Budget::Cases(500), 42);
        fuzz(&b, Budget::Cases(500), 42);
        assert_eq!(*seen_a.lock().unwrap(), *seen_b.lock().unwrap());
        assert_eq!(seen_a.lock().unwrap()[0], b"seed");
    }

    #[test]
    fn options_from_arguments_and_environment() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = |_: &str| None;
        let test = Options::parse(
            &args(&[
                "--nocapture",
                "--test-threads",
                "2",
                "form",
                "--color=never",
            ]),
            none,
        )
        .unwrap();
        assert!(!test.bench);
        assert_eq!((test.seed, test.cases), (TEST_SEED, DEFAULT_TEST_CASES));
        assert_eq!(test.filter.as_deref(), Some("form"));

        let bench =
            Options::parse(&args(&["--bench", "--seconds", "30", "--seed", "9"]), none).unwrap();
        assert!(bench.bench);
        assert_eq!((bench.seconds, bench.seed), (30, 9));

        let env = |name: &str| (name == "KEYGATE_FUZZ_CASES").then(|| "12".to_owned());
        assert_eq!(Options::parse(&[], env).unwrap().cases, 12);
        assert!(Options::parse(&args(&["--seconds", "x"]), none).is_err());
    }

    #[test]
    fn byte_literals_escape_what_is_not_printable() {
        assert_eq!(byte_literal(b"a\"\\\n\x00\xff"), r#"b"a\"\\\n\x00\xff""#);
    }
}
