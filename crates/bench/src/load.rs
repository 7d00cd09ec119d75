//! The load generator: N keep-alive HTTP/1.1 connections (hyper's client
//! connection, one tokio task each) sending prepared requests back to back
//! for a fixed time after a short warm-up, every response's status checked
//! and its latency recorded (see `stats`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

use crate::stats::{Summary, Tally};

/// One request, prepared once and sent many times.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: &'static str,
    pub authorization: Option<HeaderValue>,
    /// Sent with `content_type` when not empty.
    pub body: Bytes,
    pub content_type: &'static str,
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Call {
    pub fn get(path: &'static str) -> Self {
        Self {
            method: Method::GET,
            path,
            authorization: None,
            body: Bytes::new(),
            content_type: FORM,
        }
    }

    pub fn form(path: &'static str, authorization: HeaderValue, body: String) -> Self {
        Self {
            method: Method::POST,
            path,
            authorization: Some(authorization),
            body: Bytes::from(body),
            content_type: FORM,
        }
    }

    /// A form with no `Authorization` header: the client authenticates in
    /// the body (a client assertion).
    pub fn unauthenticated_form(path: &'static str, body: String) -> Self {
        Self {
            method: Method::POST,
            path,
            authorization: None,
            body: Bytes::from(body),
            content_type: FORM,
        }
    }

    /// A JSON body, no `Authorization` header.
    pub fn json(path: &'static str, body: String) -> Self {
        Self {
            method: Method::POST,
            path,
            authorization: None,
            body: Bytes::from(body),
            content_type: "application/json",
        }
    }

    fn request(&self, host: &HeaderValue) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header(HOST, host.clone());
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        if !self.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        Ok(builder.body(Full::new(self.body.clone()))?)
    }
}

/// Where a group's requests come from: round robin over prepared calls,
/// forever or each call once (then the group stops).
pub struct Calls {
    calls: Vec<Call>,
    next: AtomicUsize,
    repeat: bool,
    exhausted: AtomicBool,
    finished: AtomicBool,
}

impl Calls {
    pub fn cycle(calls: Vec<Call>) -> Arc<Self> {
        Self::new(calls, true)
    }

    pub fn each_once(calls: Vec<Call>) -> Arc<Self> {
        Self::new(calls, false)
    }

    fn new(calls: Vec<Call>, repeat: bool) -> Arc<Self> {
        Arc::new(Self {
            calls,
            next: AtomicUsize::new(0),
            repeat,
            exhausted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        })
    }

    /// Hands out no more calls: the group ends after the answers it
    /// awaits, and is measured until the last of them (as one that ran
    /// out), so that it runs exactly as long as something else.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    fn next(&self) -> Option<&Call> {
        if self.finished.load(Ordering::Relaxed) {
            self.exhausted.store(true, Ordering::Relaxed);
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if self.repeat && !self.calls.is_empty() {
            return self.calls.get(i % self.calls.len());
        }
        let call = self.calls.get(i);
        if call.is_none() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        call
    }
}

/// The source address of a group's connections.
#[derive(Clone)]
pub enum Bind {
    /// Whatever the kernel picks (127.0.0.1 towards a loopback server).
    Default,
    /// A fresh address of 127.1.0.0/16 and up for each connection, and a
    /// fresh one again whenever the server answers 429: an attacker with as
    /// many addresses as it needs, so per-address throttling never rests it.
    Rotating(Arc<AtomicU32>),
    /// This address for every connection, kept after a 429: one client
    /// that waits out the throttle rather than dodging it.
    Fixed(IpAddr),
}

impl Bind {
    pub fn rotating() -> Self {
        Self::Rotating(Arc::new(AtomicU32::new(0)))
    }

    fn source(&self) -> Option<IpAddr> {
        match self {
            Self::Default => None,
            Self::Fixed(ip) => Some(*ip),
            Self::Rotating(next) => Some(IpAddr::V4(rotating_address(
                next.fetch_add(1, Ordering::Relaxed),
            ))),
        }
    }
}

/// The n-th attacker address: 127.1.0.1, 127.1.0.2, ... skipping .0 and .255
/// in the last octet, wrapping within 127.1.0.0–127.254.255.255.
pub fn rotating_address(n: u32) -> Ipv4Addr {
    let per_block = 254u32;
    let host = n % per_block + 1;
    let block = (n / per_block) % (254 * 256);
    let second = 1 + block / 256;
    let third = block % 256;
    Ipv4Addr::new(127, second as u8, third as u8, host as u8)
}

/// Connections that share a request source, expectations and figures.
pub struct Group {
    pub connections: usize,
    pub calls: Arc<Calls>,
    /// Statuses that count as success (anything else is an error).
    pub expect: Vec<u16>,
    pub bind: Bind,
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Runs every group at once against `addr`; one summary per group.
pub async fn run(addr: SocketAddr, groups: Vec<Group>, timing: Timing) -> Vec<Summary> {
    run_tallies(addr, groups, timing)
        .await
        .into_iter()
        .map(|(tally, window)| tally.summary(window))
        .collect()
}

/// Like [`run`], but each group's tally and window as they are, for a
/// caller that merges several groups into one figure.
pub async fn run_tallies(
    addr: SocketAddr,
    groups: Vec<Group>,
    timing: Timing,
) -> Vec<(Tally, Duration)> {
    let start = Instant::now();
    let measure_from = start + timing.warmup;
    let end = measure_from + timing.measure;
    let host = host_header(addr);
    let mut handles = Vec::new();
    for group in &groups {
        let mut tasks = Vec::new();
        for _ in 0..group.connections {
            let conn = Conn {
                addr,
                host: host.clone(),
                calls: Arc::clone(&group.calls),
                expect: group.expect.clone(),
                bind: group.bind.clone(),
                measure_from,
                end,
            };
            tasks.push(tokio::spawn(conn.drive()));
        }
        handles.push(tasks);
    }
    let mut out = Vec::new();
    for (group, tasks) in groups.iter().zip(handles) {
        let mut tally = Tally::new();
        let mut last_done = measure_from;
        for task in tasks {
            if let Ok((t, done)) = task.await {
                tally.merge(&t);
                last_done = last_done.max(done);
            }
        }
        // A group that ran out of calls is measured until its last answer.
        let window = if group.calls.exhausted.load(Ordering::Relaxed) {
            last_done.min(end) - measure_from
        } else {
            timing.measure
        };
        out.push((tally, window));
    }
    out
}

struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    calls: Arc<Calls>,
    expect: Vec<u16>,
    bind: Bind,
    measure_from: Instant,
    end: Instant,
}

impl Conn {
    /// Sends until the end (or the calls run out); returns the tally of
    /// answers within the window and when the last one arrived.
    async fn drive(self) -> (Tally, Instant) {
        let mut tally = Tally::new();
        let mut last_done = self.measure_from;
        let mut sender: Option<SendRequest<Full<Bytes>>> = None;
        while Instant::now() < self.end {
            let Some(call) = self.calls.next() else { break };
            let sent = Instant::now();
            let outcome = match sender.as_mut() {
                Some(s) => exchange(s, call, &self.host).await,
                None => match connect(self.addr, self.bind.source()).await {
                    Ok(mut s) => {
                        let r = exchange(&mut s, call, &self.host).await;
                        sender = Some(s);
                        r
                    }
                    Err(e) => Err(e),
                },
            };
            let done = Instant::now();
            let status = match outcome {
                Ok(status) => status,
                Err(_) => {
                    sender = None;
                    0
                }
            };
            if sent >= self.measure_from && done <= self.end {
                tally.record(status, done - sent, self.expect.contains(&status));
                last_done = done;
            }
            if status == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            } else if status == 429 && matches!(self.bind, Bind::Rotating(_)) {
                sender = None;
            }
        }
        (tally, last_done)
    }
}

pub fn host_header(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"))
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<SendRequest<Full<Bytes>>> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request and its whole body; the status.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    call: &Call,
    host: &HeaderValue,
) -> Result<u16> {
    let (status, _) = exchange_body(sender, call, host).await?;
    Ok(status)
}

async fn exchange_body(
    sender: &mut SendRequest<Full<Bytes>>,
    call: &Call,
    host: &HeaderValue,
) -> Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(call.request(host)?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One request on a fresh connection, for set-up steps: status and body.
pub async fn fetch(addr: SocketAddr, call: &Call) -> Result<(u16, Bytes)> {
    let mut sender = connect(addr, None)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    exchange_body(&mut sender, call, &host_header(addr)).await
}

/// Like [`fetch`], but anything other than 200 is an error naming the body.
pub async fn fetch_ok(addr: SocketAddr, call: &Call) -> Result<Bytes> {
    let (status, body) = fetch(addr, call).await?;
    if status != 200 {
        return Err(anyhow!(
            "{} {} answered {status}: {}",
            call.method,
            call.path,
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_addresses_stay_in_loopback_and_skip_network_and_broadcast_octets() {
        assert_eq!(rotating_address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(rotating_address(253), Ipv4Addr::new(127, 1, 0, 254));
        assert_eq!(rotating_address(254), Ipv4Addr::new(127, 1, 1, 1));
        for n in [0, 1000, 65_000, 10_000_000, u32::MAX] {
            let a = rotating_address(n);
            assert!(a.is_loopback() && a.octets()[1] >= 1, "{a}");
            assert!(!matches!(a.octets()[3], 0 | 255), "{a}");
        }
    }

    #[test]
    fn a_finished_group_gets_no_more_calls() {
        let calls = Calls::cycle(vec![Call::get("/a")]);
        assert!(calls.next().is_some());
        calls.finish();
        assert!(calls.next().is_none());
        assert!(calls.exhausted.load(Ordering::Relaxed));
    }

    #[test]
    fn each_once_runs_out_and_cycle_does_not() {
        let once = Calls::each_once(vec![Call::get("/a"), Call::get("/b")]);
        assert!(once.next().is_some() && once.next().is_some());
        assert!(once.next().is_none());
        assert!(once.exhausted.load(Ordering::Relaxed));
        let cycle = Calls::cycle(vec![Call::get("/a")]);
        for _ in 0..5 {
            assert_eq!(cycle.next().map(|c| c.path), Some("/a"));
        }
    }
}
