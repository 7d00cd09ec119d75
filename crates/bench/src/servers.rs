//! The servers under test as child processes: `keygate serve` on a
//! fixture's database, and the ceiling (this binary re-executed as
//! `keygate-bench ceiling`). Both are started, timed to readiness and
//! measured (peak RSS from /proc) the same way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::fixture::{AUDIENCE, Credentials, Fixture, SCOPE};

/// Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`): the
/// kernel's USER_HZ, 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The name of the ceiling that reads PostgreSQL once per token.
pub const CEILING_READ: &str = "ceiling+read";

/// How long a server may take to answer /readyz (a million keys included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Keygate,
    Ceiling,
    /// The ceiling making one round trip to PostgreSQL per token.
    CeilingRead,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Keygate => "keygate",
            Self::Ceiling => "ceiling",
            Self::CeilingRead => CEILING_READ,
        }
    }
}

pub struct Server {
    child: Child,
    pub kind: Kind,
    pub addr: SocketAddr,
    /// From spawn to the first 200 on /readyz.
    pub started_in: Duration,
    log: PathBuf,
}

impl Server {
    pub fn keygate(fixture: &Fixture) -> Result<Self> {
        let addr = free_port()?;
        let log = fixture.dir.path().join("keygate-serve.log");
        let mut cmd = fixture.keygate();
        cmd.arg("serve").env("KEYGATE_LISTEN", addr.to_string());
        Self::start(cmd, Kind::Keygate, addr, log)
    }

    /// The ceiling, knowing `clients` (written to a file in `dir`).
    pub fn ceiling(dir: &Path, clients: &[Credentials]) -> Result<Self> {
        let (cmd, addr) = Self::ceiling_command(dir, clients)?;
        Self::start(cmd, Kind::Ceiling, addr, dir.join("ceiling.log"))
    }

    /// The ceiling that makes one round trip per token to the PostgreSQL
    /// database of `url` (without TLS: a ceiling for keygate either way).
    pub fn ceiling_read(dir: &Path, clients: &[Credentials], url: &str) -> Result<Self> {
        let (mut cmd, addr) = Self::ceiling_command(dir, clients)?;
        cmd.arg("--postgres").arg(url);
        Self::start(cmd, Kind::CeilingRead, addr, dir.join("ceiling-read.log"))
    }

    fn ceiling_command(dir: &Path, clients: &[Credentials]) -> Result<(Command, SocketAddr)> {
        let addr = free_port()?;
        let file = dir.join("ceiling-clients.txt");
        let lines: String = clients
            .iter()
            .map(|c| format!("{} {}\n", c.client_id, c.secret))
            .collect();
        std::fs::write(&file, lines).context("writing the ceiling's clients")?;
        let exe = std::env::current_exe().context("finding keygate-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.arg("ceiling")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--clients")
            .arg(&file)
            .arg("--audience")
            .arg(AUDIENCE)
            .arg("--scope")
            .arg(SCOPE);
        Ok((cmd, addr))
    }

    fn start(mut cmd: Command, kind: Kind, addr: SocketAddr, log: PathBuf) -> Result<Self> {
        let log_file = std::fs::File::create(&log).context("creating the server log")?;
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let mut server = Self {
            child,
            kind,
            addr,
            started_in: Duration::ZERO,
            log,
        };
        server.wait_ready(started)?;
        Ok(server)
    }

    fn wait_ready(&mut self, started: Instant) -> Result<()> {
        loop {
            if readyz(self.addr) {
                self.started_in = started.elapsed();
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready: {}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready after {READY_TIMEOUT:?}: {}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// The peak resident set so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        parse_vm_hwm_kib(&status).map(|kib| kib as f64 / 1024.0)
    }
}

impl Server {
    /// CPU seconds the server has used so far, user and system (utime +
    /// stime of /proc/PID/stat).
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds_of(self.child.id())
    }
}

/// CPU seconds process `pid` has used so far, user and system.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime, fields 14 and 15 of /proc/PID/stat. The command name
/// (field 2, in parentheses) may hold spaces and parentheses itself, so
/// the fields are counted from after its last `)`, where field 3 begins.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A loopback port free right now (the server binds it a moment later).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// True when GET /readyz answers 200.
fn readyz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status = "Name:\tkeygate\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(51_200));
        assert_eq!(parse_vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime_whatever_the_command_name() {
        let stat = "4242 (key gate) (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("4242 (keygate) S 1"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&own).is_some());
    }
}
