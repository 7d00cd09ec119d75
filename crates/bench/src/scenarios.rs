//! The scenario groups. Each makes its own fixture (fresh database), starts
//! the servers it needs, warms what must be warm, and measures keygate and
//! the ceiling alternately (ceiling first, then keygate, for each figure),
//! so that drift on a shared machine hits both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::HeaderValue;
use keygate::keys::{ClientId, PlainSecret};
use keygate_verifier::{JwkSet, Verifier};

use crate::fixture::{AUDIENCE, Credentials, Fixture, live_keys};
use crate::load::{self, Bind, Call, Calls, Group, Timing};
use crate::options::Options;
use crate::results::Row;
use crate::servers::Server;
use crate::stats::{Summary, Tally};
use crate::targets::{ABUSE_UNLOADED, ABUSE_VALID, COLD, WARM_1, WARM_64, scale_label};

mod exposure;
mod secretless;

const TOKEN_PATH: &str = "/oauth/token";
const INTROSPECT_PATH: &str = "/oauth/introspect";
const JWKS_PATH: &str = "/.well-known/jwks.json";
const TOKEN_BODY: &str = "grant_type=client_credentials";
/// Connections of valid clients in the cold and abuse scenarios.
const VALID_CONNECTIONS: usize = 16;
/// Attacker connections in the abuse scenario (half per kind).
const ATTACK_CONNECTIONS: usize = 64;

pub struct Bench {
    rt: tokio::runtime::Runtime,
    opts: Options,
    keygate_bin: PathBuf,
    pub cores: usize,
    pub rows: Vec<Row>,
    pub argon2_verify_ms: Option<f64>,
    /// Verifications/s with one thread per core verifying at once: what the
    /// cores really give (SMT siblings and shared memory bandwidth make it
    /// less than cores ÷ one verification's time).
    pub argon2_parallel_per_s: Option<f64>,
}

impl Bench {
    pub fn new(opts: Options, keygate_bin: PathBuf, cores: usize) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()
            .context("starting the load generator's runtime")?;
        Ok(Self {
            rt,
            opts,
            keygate_bin,
            cores,
            rows: Vec::new(),
            argon2_verify_ms: None,
            argon2_parallel_per_s: None,
        })
    }

    fn timing(&self) -> Timing {
        let measure = Duration::from_secs_f64(self.opts.seconds);
        let warmup = if self.opts.quick {
            Duration::from_millis(100)
        } else {
            Duration::from_secs_f64((self.opts.seconds / 5.0).clamp(0.2, 1.0))
        };
        Timing { warmup, measure }
    }

    fn fixture(&self) -> Result<Fixture> {
        Fixture::new(&self.keygate_bin, self.opts.postgres.as_deref())
    }

    /// The CLI's key plus `live - 1` more with their own hashes, and `idle`
    /// keys sharing one hash; the credentials of the live ones.
    fn keys(&self, fixture: &Fixture, live: usize, idle: usize) -> Result<Vec<Credentials>> {
        let template = fixture.prepare()?;
        let more = live_keys(live.saturating_sub(1), self.cores)?;
        let idle_hash = if idle > 0 {
            PlainSecret::generate()
                .hash()
                .map_err(|e| anyhow!("argon2: {e}"))?
                .as_str()
                .to_owned()
        } else {
            String::new()
        };
        let seconds = fixture.seed(&template.client_id, &more, idle, &idle_hash)?;
        if idle > 0 {
            progress(format!("  seeded {} keys in {seconds:.1} s", live + idle));
        }
        let mut creds = vec![template];
        creds.extend(more.iter().filter_map(|k| k.credentials()));
        Ok(creds)
    }

    fn run(&self, server: &Server, groups: Vec<Group>) -> Vec<Summary> {
        self.rt
            .block_on(load::run(server.addr, groups, self.timing()))
    }

    fn row(
        &self,
        scenario: &'static str,
        label: &str,
        server: &Server,
        conns: usize,
        s: Summary,
    ) -> Row {
        let mut row = Row::new(scenario, label, server.kind.name(), conns, s);
        row.peak_rss_mib = server.peak_rss_mib();
        row
    }

    /// `call` over and over on 64 connections, each answer a 200: one row.
    fn one_call_at_64(&mut self, scenario: &'static str, server: &Server, call: Call) {
        progress(format!("{scenario}: {}", server.kind.name()));
        let group = Group {
            connections: 64,
            calls: Calls::cycle(vec![call]),
            expect: vec![200],
            bind: Bind::Default,
        };
        let s = self.run(server, vec![group]).pop().unwrap_or_default();
        let row = self.row(scenario, scenario, server, 64, s);
        self.rows.push(row);
    }

    /// Every key once, so that the measured requests find them verified.
    fn warm_up(&self, server: &Server, creds: &[Credentials]) -> Result<()> {
        let group = Group {
            connections: creds.len().min(VALID_CONNECTIONS),
            calls: Calls::each_once(token_calls(creds)),
            expect: vec![200],
            bind: Bind::Default,
        };
        let timing = Timing {
            warmup: Duration::ZERO,
            measure: Duration::from_secs(300),
        };
        let s = self
            .rt
            .block_on(load::run(server.addr, vec![group], timing));
        let s = s.first().ok_or_else(|| anyhow!("no warm-up result"))?;
        if s.errors > 0 || s.requests < creds.len() as u64 {
            bail!(
                "warming {} keys on {}: answers by status {:?}",
                creds.len(),
                server.kind.name(),
                s.by_status
            );
        }
        Ok(())
    }

    fn tokens(&self, server: &Server, creds: &[Credentials], connections: usize) -> Summary {
        let group = valid_group(creds, connections);
        self.run(server, vec![group]).pop().unwrap_or_default()
    }

    pub fn warm(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, self.opts.warm_keys(), 0)?;
        let ceiling = Server::ceiling(fixture.dir.path(), &creds)?;
        // On PostgreSQL, also the ceiling of a server that must ask its
        // database once per token, as keygate must there.
        let ceiling_read = match &self.opts.postgres {
            Some(_) => Some(Server::ceiling_read(
                fixture.dir.path(),
                &creds,
                &fixture.database_url,
            )?),
            None => None,
        };
        let keygate = Server::keygate(&fixture)?;
        let servers: Vec<&Server> = [Some(&ceiling), ceiling_read.as_ref(), Some(&keygate)]
            .into_iter()
            .flatten()
            .collect();
        for server in &servers {
            self.warm_up(server, &creds)?;
        }
        for conns in [1, 16, 64] {
            let label = match conns {
                1 => WARM_1.to_owned(),
                64 => WARM_64.to_owned(),
                n => format!("warm {n}"),
            };
            for &server in &servers {
                progress(format!("warm: {conns} connections, {}", server.kind.name()));
                let s = self.tokens(server, &creds, conns);
                let row = self.row("warm", &label, server, conns, s);
                self.rows.push(row);
            }
        }
        Ok(())
    }

    /// One argon2 verification with keygate's own parameters (its
    /// `SecretHash::verify`), the median of a few, in ms.
    pub fn argon2_ms(&mut self) -> Result<f64> {
        if let Some(ms) = self.argon2_verify_ms {
            return Ok(ms);
        }
        let secret = PlainSecret::generate();
        let hash = secret.hash().map_err(|e| anyhow!("argon2: {e}"))?;
        let rounds = if self.opts.quick { 3 } else { 15 };
        let mut times: Vec<f64> = (0..=rounds)
            .map(|_| {
                let t = Instant::now();
                let ok = hash.verify(&secret);
                (ok, t.elapsed().as_secs_f64() * 1000.0)
            })
            .skip(1)
            .map(|(ok, ms)| if ok { ms } else { f64::NAN })
            .collect();
        if times.iter().any(|t| t.is_nan()) {
            bail!("argon2 verification of a fresh hash failed");
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        self.argon2_verify_ms = Some(ms);
        self.argon2_parallel_per_s =
            Some(parallel_verifications(&secret, &hash, self.cores, rounds));
        Ok(ms)
    }

    pub fn cold(&mut self) -> Result<()> {
        let ms = self.argon2_ms()?;
        let reference = crate::targets::cold_reference(self.cores, ms);
        // Enough never-verified keys for the whole window at 1.5 × the
        // argon2 reference: the run must not run out of them.
        let count = if self.opts.quick {
            24
        } else {
            (reference * self.opts.seconds * 1.5).ceil() as usize + 32
        };
        progress(format!("cold: hashing {count} keys"));
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, count, 0)?;
        let keygate = Server::keygate(&fixture)?;
        let group = Group {
            connections: VALID_CONNECTIONS,
            calls: Calls::each_once(token_calls(&creds)),
            expect: vec![200],
            bind: Bind::Default,
        };
        let timing = Timing {
            warmup: Duration::ZERO,
            measure: self.timing().measure,
        };
        progress("cold: keygate");
        let s = self
            .rt
            .block_on(load::run(keygate.addr, vec![group], timing))
            .pop()
            .unwrap_or_default();
        let mut row = self.row("cold", COLD, &keygate, VALID_CONNECTIONS, s);
        row.note = Some(format!(
            "each request a key not verified since start; argon2 reference {reference:.0}/s \
             ({} cores ÷ {ms:.1} ms; {:.0}/s measured with {} threads verifying at once); \
             the ceiling has no slow path",
            self.cores,
            self.argon2_parallel_per_s.unwrap_or(0.0),
            self.cores
        ));
        self.rows.push(row);
        Ok(())
    }

    pub fn scale(&mut self) -> Result<()> {
        for &keys in &self.opts.scale_keys.clone() {
            let live = keys.min(self.opts.warm_keys());
            progress(format!("scale: {keys} keys"));
            let fixture = self.fixture()?;
            let creds = self.keys(&fixture, live, keys - live)?;
            let keygate = Server::keygate(&fixture)?;
            let started_in = keygate.started_in.as_secs_f64();
            let rss_at_start = keygate.peak_rss_mib();
            self.warm_up(&keygate, &creds)?;
            let s = self.tokens(&keygate, &creds, 64);
            let mut row = self.row("scale", &scale_label(keys), &keygate, 64, s);
            row.startup_s = Some(started_in);
            row.note = Some(format!(
                "start-up {started_in:.2} s, RSS when ready {:.0} MiB; {live} keys in use",
                rss_at_start.unwrap_or(0.0)
            ));
            self.rows.push(row);
        }
        Ok(())
    }

    pub fn abuse(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, self.opts.warm_keys(), 0)?;
        let ceiling = Server::ceiling(fixture.dir.path(), &creds)?;
        let keygate = Server::keygate(&fixture)?;
        self.warm_up(&ceiling, &creds)?;
        self.warm_up(&keygate, &creds)?;
        let pool = if self.opts.quick { 256 } else { 4096 };
        let random: Vec<Credentials> = (0..pool)
            .map(|_| Credentials {
                client_id: ClientId::generate().into_string(),
                secret: PlainSecret::generate().expose().to_owned(),
            })
            .collect();
        let real: Vec<Credentials> = (0..pool)
            .map(|i| Credentials {
                client_id: creds[i % creds.len()].client_id.clone(),
                secret: PlainSecret::generate().expose().to_owned(),
            })
            .collect();
        for server in [&ceiling, &keygate] {
            let name = server.kind.name();
            progress(format!("abuse: valid clients alone, {name}"));
            let alone = self.tokens(server, &creds, VALID_CONNECTIONS);
            let row = self.row("abuse", ABUSE_UNLOADED, server, VALID_CONNECTIONS, alone);
            self.rows.push(row);

            progress(format!("abuse: valid clients under attack, {name}"));
            let bind = Bind::rotating();
            let attackers = |creds: &[Credentials]| Group {
                connections: ATTACK_CONNECTIONS / 2,
                calls: Calls::cycle(token_calls(creds)),
                expect: vec![401, 429],
                bind: bind.clone(),
            };
            let groups = vec![
                valid_group(&creds, VALID_CONNECTIONS),
                attackers(&random),
                attackers(&real),
            ];
            let mut out = self.run(server, groups).into_iter();
            let valid = out.next().unwrap_or_default();
            let row = self.row("abuse", ABUSE_VALID, server, VALID_CONNECTIONS, valid);
            self.rows.push(row);
            for kind in ["random IDs", "real IDs"] {
                let s = out.next().unwrap_or_default();
                let mut row = self.row(
                    "abuse",
                    &format!("abuse: attackers {kind}"),
                    server,
                    ATTACK_CONNECTIONS / 2,
                    s.clone(),
                );
                row.note = Some(format!("answers by status {:?}", s.by_status));
                self.rows.push(row);
            }
        }
        Ok(())
    }

    pub fn jwks(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, 1, 0)?;
        let ceiling = Server::ceiling(fixture.dir.path(), &creds)?;
        let keygate = Server::keygate(&fixture)?;
        for server in [&ceiling, &keygate] {
            self.one_call_at_64("jwks", server, Call::get(JWKS_PATH));
        }
        Ok(())
    }

    pub fn introspect(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, 1, 0)?;
        let ceiling = Server::ceiling(fixture.dir.path(), &creds)?;
        let keygate = Server::keygate(&fixture)?;
        let mut calls = Vec::new();
        for server in [&ceiling, &keygate] {
            let token = self.rt.block_on(access_token(server.addr, &creds[0]))?;
            let call = Call::form(INTROSPECT_PATH, basic(&creds[0]), format!("token={token}"));
            let body = self.rt.block_on(load::fetch_ok(server.addr, &call))?;
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            if answer["active"] != true {
                bail!(
                    "{} introspected its own fresh token as {answer}",
                    server.kind.name()
                );
            }
            calls.push(call);
        }
        for (server, call) in [&ceiling, &keygate].into_iter().zip(calls) {
            self.one_call_at_64("introspect", server, call);
        }
        Ok(())
    }

    /// Offline validations/s of keygate-verifier on every core, with the
    /// server's own JWKS and tokens (the server is stopped before measuring).
    pub fn verifier(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let creds = self.keys(&fixture, 1, 0)?;
        let (verifier, tokens) = {
            let keygate = Server::keygate(&fixture)?;
            let jwks_body = self
                .rt
                .block_on(load::fetch_ok(keygate.addr, &Call::get(JWKS_PATH)))?;
            let jwks: JwkSet = serde_json::from_slice(&jwks_body).context("keygate's JWKS")?;
            let mut tokens = Vec::new();
            for _ in 0..64 {
                tokens.push(self.rt.block_on(access_token(keygate.addr, &creds[0]))?);
            }
            let issuer = format!("http://{}", keygate.addr);
            (Verifier::from_jwks(&jwks, issuer, AUDIENCE), tokens)
        };
        verifier
            .verify_offline(&tokens[0])
            .map_err(|e| anyhow!("keygate-verifier refused keygate's token: {e}"))?;
        progress("verifier: offline validations");
        let measure = self.timing().measure;
        let tally = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.cores)
                .map(|_| {
                    let (verifier, tokens) = (&verifier, &tokens);
                    scope.spawn(move || {
                        let mut tally = Tally::new();
                        let end = Instant::now() + measure;
                        let mut i = 0usize;
                        while Instant::now() < end {
                            let t = Instant::now();
                            let ok = verifier.verify_offline(&tokens[i % tokens.len()]).is_ok();
                            tally.record(u16::from(ok) * 200, t.elapsed(), ok);
                            i += 1;
                        }
                        tally
                    })
                })
                .collect();
            let mut all = Tally::new();
            for w in workers {
                if let Ok(t) = w.join() {
                    all.merge(&t);
                }
            }
            all
        });
        let s = tally.summary(measure);
        let per_core = s.rps / self.cores as f64;
        let mut row = Row::new("verifier", "verifier", "keygate-verifier", self.cores, s);
        row.note = Some(format!(
            "offline validations on {} threads ({per_core:.0}/s per core); p50/p99 per validation",
            self.cores
        ));
        self.rows.push(row);
        Ok(())
    }
}

/// `threads` threads verifying `rounds` times each, all at once.
fn parallel_verifications(
    secret: &PlainSecret,
    hash: &keygate::keys::SecretHash,
    threads: usize,
    rounds: usize,
) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..rounds {
                    let _ = hash.verify(secret);
                }
            });
        }
    });
    (threads * rounds) as f64 / started.elapsed().as_secs_f64()
}

fn progress(message: impl AsRef<str>) {
    eprintln!("{}", message.as_ref());
}

/// RFC 6749 §2.3.1 Basic credentials (IDs and secrets are alphanumeric and
/// `_`, which form-urlencoding leaves as they are).
fn basic(c: &Credentials) -> HeaderValue {
    let value = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", c.client_id, c.secret))
    );
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Basic"))
}

fn token_calls(creds: &[Credentials]) -> Vec<Call> {
    creds
        .iter()
        .map(|c| Call::form(TOKEN_PATH, basic(c), TOKEN_BODY.to_owned()))
        .collect()
}

fn valid_group(creds: &[Credentials], connections: usize) -> Group {
    Group {
        connections,
        calls: Calls::cycle(token_calls(creds)),
        expect: vec![200],
        bind: Bind::Default,
    }
}

async fn access_token(addr: SocketAddr, creds: &Credentials) -> Result<String> {
    let call = Call::form(TOKEN_PATH, basic(creds), TOKEN_BODY.to_owned());
    let body = load::fetch_ok(addr, &call).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("token response without access_token: {answer}"))
}
