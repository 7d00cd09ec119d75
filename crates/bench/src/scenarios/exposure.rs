//! The exposure scenario (issue 21, item 4): floods of leak reports
//! (`POST /oauth/exposed`) of strings shaped like keygate secrets (prefix,
//! random body, valid checksum) that are the secret of no key, each flood
//! from 20 addresses keeping within their throttle, and what they cost the
//! server. A string whose lookup tag finds no key should cost one indexed
//! read and no argon2 (`keygate::exposure`). Measured per flood: the
//! server's CPU seconds (utime + stime from /proc) from the first report
//! to the last answer; over all floods, the latency of cold token requests
//! (each a key not verified since start, so each pays argon2) sent one at
//! a time meanwhile, beside the same requests with no flood.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use keygate::client_auth::throttle::ThrottlePolicy;
use keygate::http::oauth::exposed::MAX_SECRETS;

use super::*;
use crate::fixture::Fixture;
use crate::results::Flood;
use crate::servers::cpu_seconds_of;
use crate::targets::{
    EXPOSURE_ADDRESSES, EXPOSURE_COLD, EXPOSURE_COLD_ALONE, EXPOSURE_FLOOD, EXPOSURE_STRINGS,
};

const EXPOSED_PATH: &str = "/oauth/exposed";
/// Floods, one after another, each from its own addresses (the throttle
/// would refuse a second flood from the same ones within its window).
const FLOODS: u8 = 5;
/// Cold token requests with no flood, one at a time: the baseline.
const COLD_ALONE: usize = 20;
/// Keys for the cold token requests of one flood: more than one
/// connection sending one at a time uses while it lasts (each key is used
/// once; a flood that outlasts them says so in the notes).
const COLD_PER_FLOOD: usize = 40;
/// An upper bound on a flood; it ends when its reports are all answered.
const FLOOD_LIMIT: Duration = Duration::from_secs(120);
/// Between floods, for the server to settle (the next flood's CPU is
/// counted from its start anyway).
const PAUSE: Duration = Duration::from_millis(500);

/// The n-th reporting address (from 1) of a flood: 127.2.flood.n, apart
/// from the abuse scenario's 127.1.0.0/16 and the valid clients' 127.0.0.1.
fn reporter(flood: u8, n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 2, flood, n))
}

/// `count` reports of [`MAX_SECRETS`] distinct fresh strings each.
fn reports(count: usize) -> Result<Vec<Call>> {
    (0..count)
        .map(|_| {
            let strings: Vec<String> = (0..MAX_SECRETS)
                .map(|_| PlainSecret::generate().expose().to_owned())
                .collect();
            Ok(Call::json(EXPOSED_PATH, serde_json::to_string(&strings)?))
        })
        .collect()
}

/// What one flood gave.
struct FloodRun {
    reports: Vec<(Tally, Duration)>,
    cold: (Tally, Duration),
    server_cpu_s: f64,
    /// The PostgreSQL backends' CPU meanwhile (none on SQLite).
    database_cpu_s: Option<f64>,
    cold_keys_ran_out: bool,
}

/// CPU seconds so far of each process that can be read.
fn cpu_of(pids: &[u32]) -> Vec<(u32, f64)> {
    pids.iter()
        .filter_map(|&pid| cpu_seconds_of(pid).map(|cpu| (pid, cpu)))
        .collect()
}

/// CPU the processes of `after` used since `before` (all of it for one
/// that started meanwhile: a connection the pool opened during the flood).
fn cpu_since(before: &[(u32, f64)], after: &[(u32, f64)]) -> f64 {
    after
        .iter()
        .map(|(pid, cpu)| {
            let start = before
                .iter()
                .find(|(p, _)| p == pid)
                .map_or(0.0, |(_, c)| *c);
            cpu - start
        })
        .sum()
}

impl Bench {
    pub fn exposure(&mut self) -> Result<()> {
        let quick = self.opts.quick;
        let per_address = if quick {
            1
        } else {
            EXPOSURE_STRINGS as usize / (EXPOSURE_ADDRESSES * MAX_SECRETS)
        };
        let strings_sent = (EXPOSURE_ADDRESSES * per_address * MAX_SECRETS) as u64;
        let (floods, alone, per_flood) = if quick {
            (1, 2, 4)
        } else {
            (FLOODS, COLD_ALONE, COLD_PER_FLOOD)
        };
        let argon2_ms = self.argon2_ms()?;
        // One more key, whose request comes first: the server's first token
        // request (its connections, statements, signing key) is not cold
        // in the sense measured here.
        let count = 1 + alone + usize::from(floods) * per_flood;
        progress(format!("exposure: hashing {count} keys"));
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, count, 0)?;
        let keygate = Server::keygate(&fixture)?;
        self.warm_up(&keygate, &creds[..1])?;
        let (alone_creds, flood_creds) = creds[1..].split_at(alone);

        progress("exposure: cold token requests alone");
        let s = self.one_at_a_time(&keygate, alone_creds);
        let mut row = self.row("exposure", EXPOSURE_COLD_ALONE, &keygate, 1, s.clone());
        row.note = Some(format!(
            "one at a time on one connection, no flood, each a key not verified since start; \
             max {:.1} ms",
            s.max_ms
        ));
        self.rows.push(row);

        let mut runs = Vec::new();
        for (flood, keys) in (1..=floods).zip(flood_creds.chunks(per_flood)) {
            progress(format!(
                "exposure: flood {flood} of {floods}, {strings_sent} strings from \
                 {EXPOSURE_ADDRESSES} addresses, cold token requests meanwhile"
            ));
            runs.push(self.flood((&fixture, &keygate), flood, per_address, keys)?);
            std::thread::sleep(PAUSE);
        }
        self.flood_rows(&keygate, &runs, (per_address, strings_sent), argon2_ms);
        Ok(())
    }

    fn one_at_a_time(&self, server: &Server, creds: &[Credentials]) -> Summary {
        let group = Group {
            connections: 1,
            calls: Calls::each_once(token_calls(creds)),
            expect: vec![200],
            bind: Bind::Default,
        };
        let timing = Timing {
            warmup: Duration::ZERO,
            measure: FLOOD_LIMIT,
        };
        self.rt
            .block_on(load::run(server.addr, vec![group], timing))
            .pop()
            .unwrap_or_default()
    }

    /// One flood from 127.2.`flood`.1–20, with cold token requests (one key
    /// each of `keys`) one at a time until its last report is answered.
    fn flood(
        &self,
        (fixture, keygate): (&Fixture, &Server),
        flood: u8,
        per_address: usize,
        keys: &[Credentials],
    ) -> Result<FloodRun> {
        let mut reporters = Vec::new();
        for n in 1..=EXPOSURE_ADDRESSES {
            let n = u8::try_from(n).context("more reporting addresses than 127.2.x.0/24 holds")?;
            reporters.push(Group {
                connections: 1,
                calls: Calls::each_once(reports(per_address)?),
                expect: vec![202, 429],
                bind: Bind::Fixed(reporter(flood, n)),
            });
        }
        let cold_calls = Calls::each_once(token_calls(keys));
        let cold = Group {
            connections: 1,
            calls: Arc::clone(&cold_calls),
            expect: vec![200],
            bind: Bind::Default,
        };
        let timing = Timing {
            warmup: Duration::ZERO,
            measure: FLOOD_LIMIT,
        };
        let unreadable = || anyhow!("keygate's /proc/PID/stat could not be read");
        let database_before = cpu_of(&fixture.database_backends()?);
        let before = keygate.cpu_seconds().ok_or_else(unreadable)?;
        let addr = keygate.addr;
        let ((reports, after), cold) = self.rt.block_on(async {
            let reports = async {
                let tallies = load::run_tallies(addr, reporters, timing).await;
                let cpu = keygate.cpu_seconds();
                cold_calls.finish();
                (tallies, cpu)
            };
            tokio::join!(reports, load::run_tallies(addr, vec![cold], timing))
        });
        let after = after.ok_or_else(unreadable)?;
        let database_after = cpu_of(&fixture.database_backends()?);
        let database_cpu_s = self
            .opts
            .postgres
            .is_some()
            .then(|| cpu_since(&database_before, &database_after));
        let cold = cold.into_iter().next().unwrap_or_default();
        Ok(FloodRun {
            cold_keys_ran_out: cold.0.count() >= keys.len() as u64,
            reports,
            cold,
            server_cpu_s: after - before,
            database_cpu_s,
        })
    }

    /// The reports' row (every flood's answers together) and the cold
    /// token requests' row.
    fn flood_rows(
        &mut self,
        keygate: &Server,
        runs: &[FloodRun],
        (per_address, strings_sent): (usize, u64),
        argon2_ms: f64,
    ) {
        let mut reports = Tally::new();
        let mut cold = Tally::new();
        let (mut reports_window, mut cold_window) = (Duration::ZERO, Duration::ZERO);
        let mut accepted = Vec::new();
        let mut cpu = Vec::new();
        let mut database_cpu = Vec::new();
        let mut per_flood = Vec::new();
        for run in runs {
            let mut flood = Tally::new();
            let mut window = Duration::ZERO;
            for (t, w) in &run.reports {
                flood.merge(t);
                window = window.max(*w);
            }
            let answered = flood.summary(window);
            let ok = answered.by_status.get(&202).copied().unwrap_or(0);
            accepted.push(ok * MAX_SECRETS as u64);
            cpu.push(run.server_cpu_s);
            let database = match run.database_cpu_s {
                Some(s) => {
                    database_cpu.push(s);
                    format!(" and {s:.2} s in PostgreSQL")
                }
                None => String::new(),
            };
            let cold_cpu_s = run.cold.0.count() as f64 * argon2_ms / 1000.0;
            per_flood.push(format!(
                "{:.2} s CPU in keygate{database} in {:.2} s, {} cold requests (about \
                 {cold_cpu_s:.2} s of argon2), answers {:?}{}",
                run.server_cpu_s,
                window.as_secs_f64(),
                run.cold.0.count(),
                answered.by_status,
                if run.cold_keys_ran_out {
                    "; its cold keys ran out before it ended"
                } else {
                    ""
                }
            ));
            reports.merge(&flood);
            reports_window += window;
            cold.merge(&run.cold.0);
            cold_window += run.cold.1;
        }
        let throttle = ThrottlePolicy::default();
        let mut note = format!(
            "{}, each {strings_sent} distinct well-formed secrets of no key in {} reports of \
             {MAX_SECRETS} from its own {EXPOSURE_ADDRESSES} addresses 127.2.<flood>.1–\
             {EXPOSURE_ADDRESSES} ({per_address} each; the throttle allows {} in {} s per \
             address); per flood: {}",
            match runs.len() {
                1 => "1 flood".to_owned(),
                n => format!("{n} floods one after another"),
            },
            EXPOSURE_ADDRESSES * per_address,
            throttle.per_client,
            throttle.window.num_seconds(),
            per_flood.join("; ")
        );
        let fewest = accepted.iter().copied().min().unwrap_or(0);
        if fewest < strings_sent {
            note.push_str(&format!(
                "; a flood had only {fewest} of {strings_sent} strings accepted: the per-address \
                 throttle refused the rest (its limits are keygate's defaults, not raised)"
            ));
        }
        let s = reports.summary(reports_window);
        let mut row = self.row("exposure", EXPOSURE_FLOOD, keygate, EXPOSURE_ADDRESSES, s);
        row.flood = Some(Flood {
            addresses: EXPOSURE_ADDRESSES,
            strings_sent,
            strings_accepted: accepted,
            server_cpu_s: cpu,
            database_cpu_s: database_cpu,
        });
        row.note = Some(note);
        self.rows.push(row);

        let s = cold.summary(cold_window);
        let mut row = self.row("exposure", EXPOSURE_COLD, keygate, 1, s.clone());
        row.note = Some(format!(
            "one at a time on one connection while each flood lasted, each a key not verified \
             since start; max {:.1} ms; answers by status {:?}",
            s.max_ms, s.by_status
        ));
        self.rows.push(row);
    }
}
