//! A TCP proxy between keygate and the test PostgreSQL that a test can cut
//! and restore: what a database that stops and comes back looks like from
//! keygate's side, without stopping the cluster every other test shares.
//! Cut, it does what a stopped PostgreSQL does to its clients: every
//! connection through it is closed (as backends are terminated) and the
//! port refuses new ones (nothing listens). Restored, it listens on the
//! same port again and forwards as before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    /// How many forwarded connections are open.
    open: Arc<watch::Sender<usize>>,
    /// Whether the port accepts connections.
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (up, state) = watch::channel(true);
        let open = Arc::new(watch::Sender::new(0));
        let (listens, listening) = watch::channel(true);
        let task = tokio::spawn(run(
            listener,
            (port, target),
            state,
            Arc::clone(&open),
            listens,
        ));
        Self {
            port,
            up,
            open,
            listening,
            task,
        }
    }

    /// The database "stops": once this returns, every connection through
    /// the proxy is closed and new ones are refused (each connection is
    /// closed by its own task: waiting for them, not for a while, is what
    /// makes the outage real by the time the test goes on).
    pub async fn cut(&self) {
        self.up.send_replace(false);
        let mut open = self.open.subscribe();
        let mut listening = self.listening.clone();
        let cut = async {
            open.wait_for(|n| *n == 0).await.map(|_| ())?;
            listening.wait_for(|up| !*up).await.map(|_| ())
        };
        tokio::time::timeout(Duration::from_secs(10), cut)
            .await
            .expect("the proxy's connections close and its port with them")
            .expect("the proxy is running");
    }

    /// The database is back: once this returns, the port accepts
    /// connections again.
    pub async fn restore(&self) {
        self.up.send_replace(true);
        let mut listening = self.listening.clone();
        tokio::time::timeout(Duration::from_secs(10), listening.wait_for(|up| *up))
            .await
            .expect("the proxy listens again")
            .expect("the proxy is running");
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by the
    /// proxy's.
    pub fn url_to(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(self.port)).expect("port");
        url.to_string()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut listener: TcpListener,
    (port, target): (u16, SocketAddr),
    mut state: watch::Receiver<bool>,
    open: Arc<watch::Sender<usize>>,
    listening: watch::Sender<bool>,
) {
    let connections = state.clone();
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(forward(client, target, connections.clone(), Arc::clone(&open)));
                    }
                }
                _ = state.wait_for(|up| !*up) => break,
            }
        }
        drop(listener);
        listening.send_replace(false);
        if state.wait_for(|up| *up).await.is_err() {
            return;
        }
        listener = rebind(port).await;
        listening.send_replace(true);
    }
}

/// The same port again (SO_REUSEADDR, so the closed connections' TIME_WAIT
/// does not stand in the way).
async fn rebind(port: u16) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not listen on port {port} again");
}

async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<bool>,
    open: Arc<watch::Sender<usize>>,
) {
    open.send_modify(|n| *n += 1);
    let _closed = Closed(open);
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
    // Both dropped: closed, as a terminated backend's connection is.
}

/// Counts a forwarded connection closed when its task ends, however it ends.
struct Closed(Arc<watch::Sender<usize>>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}
