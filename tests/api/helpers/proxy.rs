//! A TCP proxy between keygate and the test PostgreSQL that a test can cut
//! and restore: what a database that stops and comes back looks like from
//! keygate's side, without stopping the cluster every other test shares.
//! Cut, it does what a stopped PostgreSQL does to its clients: every
//! connection through it is closed (as backends are terminated) and the
//! port refuses new ones (nothing listens). Restored, it listens on the
//! same port again and forwards as before.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (up, state) = watch::channel(true);
        let task = tokio::spawn(run(listener, port, target, state));
        Self { port, up, task }
    }

    /// The database "stops": connections closed, new ones refused.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The database is back.
    pub fn restore(&self) {
        self.up.send_replace(true);
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
    port: u16,
    target: SocketAddr,
    mut state: watch::Receiver<bool>,
) {
    let connections = state.clone();
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(forward(client, target, connections.clone()));
                    }
                }
                _ = state.wait_for(|up| !*up) => break,
            }
        }
        drop(listener);
        if state.wait_for(|up| *up).await.is_err() {
            return;
        }
        listener = rebind(port).await;
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

async fn forward(mut client: TcpStream, target: SocketAddr, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
    // Both dropped: closed, as a terminated backend's connection is.
}
