//! A real HTTP receiver on loopback for the webhook tests: it records every
//! request it gets and answers as the test says — a status (after a delay,
//! if asked), never (a stall), an endless body, or a redirect.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// This status, after this long.
    Answer(u16, Duration),
    /// Reads the request and never answers (well, after a minute).
    Stall,
    /// 200 and a body that never ends.
    EndlessBody,
    /// 307 to this URL.
    Redirect(String),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Received {
    /// The event's `type`.
    pub fn event_type(&self) -> String {
        let body: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON body");
        body["type"].as_str().expect("a type").to_owned()
    }
}

/// What the handlers share with the test.
#[derive(Default)]
struct Shared {
    behaviour: Mutex<Option<Behaviour>>,
    got: Mutex<Vec<Received>>,
    /// Requests being answered right now, and the most there ever were.
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// Bytes of endless bodies handed to the server so far.
    streamed: Arc<AtomicU64>,
}

/// Counts a request as open while it lives.
struct Open<'a>(&'a Shared);

impl<'a> Open<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_open.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 64 KiB chunks for ever, counted as they are taken.
struct Endless(Arc<AtomicU64>);

impl futures_core::Stream for Endless {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        self.0.fetch_add(CHUNK.len() as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Bytes::from_static(&CHUNK))))
    }
}

async fn receive(shared: web::Data<Shared>, request: HttpRequest, body: String) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let _open = Open::new(&shared);
    shared.got.lock().expect("receiver log").push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    let behaviour = shared
        .behaviour
        .lock()
        .expect("behaviour")
        .clone()
        .unwrap_or(Behaviour::Answer(200, Duration::ZERO));
    match behaviour {
        Behaviour::Answer(status, after) => {
            tokio::time::sleep(after).await;
            let code = actix_web::http::StatusCode::from_u16(status).expect("a status");
            HttpResponse::build(code).body("receiver says so")
        }
        Behaviour::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            HttpResponse::Ok().finish()
        }
        Behaviour::EndlessBody => {
            HttpResponse::Ok().streaming(Endless(Arc::clone(&shared.streamed)))
        }
        Behaviour::Redirect(to) => HttpResponse::TemporaryRedirect()
            .insert_header(("location", to))
            .finish(),
    }
}

/// A receiver on a port of its own; `url` is where endpoints point.
pub struct Receiver {
    pub url: String,
    shared: web::Data<Shared>,
}

impl Receiver {
    /// Answers 200 at once until told otherwise.
    pub async fn start() -> Self {
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            shared,
        }
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("behaviour") = Some(behaviour);
    }

    pub fn answer(&self, status: u16) {
        self.behave(Behaviour::Answer(status, Duration::ZERO));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().expect("receiver log").clone()
    }

    /// Requests being answered right now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most requests it was ever answering at once.
    pub fn most_open(&self) -> usize {
        self.shared.most_open.load(Ordering::SeqCst)
    }

    /// Bytes of endless bodies it produced.
    pub fn streamed(&self) -> u64 {
        self.shared.streamed.load(Ordering::SeqCst)
    }
}
