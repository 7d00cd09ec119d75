//! What every connection and request body is held to before a handler's own
//! work: how long a body may take to arrive, how many connections are kept,
//! and what a body that could not be read means to the caller. The OAuth
//! endpoints and the management API each answer a [`BodyFailure`] in their
//! own error format.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage as _;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::header;
use actix_web::web::Bytes;
use futures_core::Stream;

/// Connection and body limits. Not read from the environment: the defaults
/// suit production (a benchmark's 64 keep-alive connections never come near
/// them), tests shorten them through `Config::http_tuning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTuning {
    /// From the request head to the body's last byte. actix's own
    /// `client_request_timeout` covers only the head: without this, a client
    /// that sends a head and trickles the body holds its connection forever.
    pub body_read_timeout: Duration,
    /// The request head's deadline (actix's `client_request_timeout`).
    pub client_request_timeout: Duration,
    /// How long a closing connection may take to shut down.
    pub client_disconnect_timeout: Duration,
    /// Connections held at once, all workers together; `None`: from the
    /// process's file-descriptor limit, so that accepting never fails with
    /// "too many open files" (a full server stops accepting instead).
    pub max_connections: Option<usize>,
}

impl Default for HttpTuning {
    fn default() -> Self {
        Self {
            body_read_timeout: Duration::from_secs(10),
            client_request_timeout: Duration::from_secs(5),
            client_disconnect_timeout: Duration::from_secs(1),
            max_connections: None,
        }
    }
}

/// File descriptors kept back from connections: the database pool, the
/// listener, mail and log files.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Never fewer connections than this, whatever the descriptor limit says.
const MIN_CONNECTIONS: usize = 128;

impl HttpTuning {
    /// The connection cap of one of `workers` workers.
    pub fn max_connections_per_worker(&self, workers: usize) -> usize {
        let total = self.max_connections.unwrap_or_else(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            limit.map_or(usize::MAX, |limit| {
                usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX)
            })
        });
        (total.max(MIN_CONNECTIONS) / workers.max(1)).max(1)
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    /// Larger than the endpoint accepts.
    TooLarge,
    /// Not all of it arrived within [`HttpTuning::body_read_timeout`].
    TimedOut,
    /// Malformed framing (a bad chunk, a wrong length, a bad encoding).
    Malformed(String),
}

impl BodyFailure {
    pub fn from_payload(error: &PayloadError) -> Self {
        match error {
            PayloadError::Overflow => Self::TooLarge,
            PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Self::TimedOut,
            other => Self::Malformed(other.to_string()),
        }
    }

    /// The body failure behind an error response an extractor produced.
    pub fn of_response<B>(response: &ServiceResponse<B>) -> Option<Self> {
        response
            .response()
            .error()
            .and_then(|e| e.as_error::<PayloadError>())
            .map(Self::from_payload)
    }

    /// Logged at INFO: a body that could not be read is the client's fault.
    pub fn log(&self) {
        tracing::info!(failure = ?self, "request body refused");
    }
}

impl std::fmt::Display for BodyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => f.write_str("the request body is too large"),
            Self::TimedOut => f.write_str("the request body did not arrive in time"),
            Self::Malformed(cause) => write!(f, "the request body could not be read: {cause}"),
        }
    }
}

/// A middleware's answer to one request.
type Answer = Pin<Box<dyn Future<Output = Result<ServiceResponse, actix_web::Error>>>>;

/// Middleware: every request body must arrive within `timeout` of its head.
/// A request whose body ran out of time is answered (by its handler, which
/// sees a [`BodyFailure::TimedOut`]) and its connection closed; so is one
/// whose handler answered without reading all of its body, since actix
/// would otherwise go on reading (and waiting for) the rest.
pub fn body_deadline<S>(
    timeout: Duration,
) -> impl Fn(ServiceRequest, &S) -> Answer + Clone + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    move |mut request: ServiceRequest, service: &S| {
        let state = Rc::new(Cell::new(BodyState::Read));
        if has_body(&request) {
            state.set(BodyState::Reading);
            let body = DeadlineBody {
                inner: request.take_payload(),
                deadline: Box::pin(tokio::time::sleep(timeout)),
                state: Rc::clone(&state),
            };
            request.set_payload(Payload::from(
                Box::pin(body) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
            ));
        }
        let response = service.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if state.get() != BodyState::Read {
                response
                    .response_mut()
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(response)
        })
    }
}

/// Whether the request announces a body with at least one byte.
fn has_body(request: &ServiceRequest) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Not all of it has been read (yet).
    Reading,
    /// To its end, or to an error of its own.
    Read,
    /// Its deadline passed first.
    Expired,
}

/// A request body that fails with a timed-out I/O error once its deadline
/// passes.
struct DeadlineBody {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    state: Rc<Cell<BodyState>>,
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.state.get() != BodyState::Reading {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if !matches!(item, Some(Ok(_))) {
                self.state.set(BodyState::Read);
            }
            return Poll::Ready(item);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.state.set(BodyState::Expired);
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body deadline passed",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// actix's HTTP/1 dispatcher logs at ERROR every connection that ends in a
/// "stream error": a malformed request head, a head too large, a client
/// gone. Those are the peer's doing, so this layer logs them again at WARN
/// and drops the original; the server's own failures (a 500) keep ERROR,
/// logged with their cause where they happen.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionErrorsAsWarnings;

const DISPATCHER: &str = "actix_http::h1::dispatcher";
const STREAM_ERROR: &str = "stream error: ";

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ConnectionErrorsAsWarnings {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != tracing::Level::ERROR || metadata.target() != DISPATCHER {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        match message.0.strip_prefix(STREAM_ERROR) {
            Some(error) => {
                tracing::warn!(target: "actix_http::h1::dispatcher", %error, "connection closed on a client error");
                false
            }
            None => true,
        }
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
