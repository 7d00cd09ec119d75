//! How a message leaves keygate: SMTP (STARTTLS, implicit TLS, or plain for
//! a local relay) or `.eml` files in a folder.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;

/// How emails leave keygate.
#[derive(Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// `smtp://`, `smtps://` or `smtp://...?tls=none`; the URL may hold a password.
    Smtp(url::Url),
    /// `.eml` files in a folder.
    Files(PathBuf),
}

impl fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Smtp(url) => {
                let mut shown = url.clone();
                if shown.password().is_some() {
                    let _ = shown.set_password(Some("redacted"));
                }
                write!(f, "Smtp({shown})")
            }
            Self::Files(dir) => write!(f, "Files({})", dir.display()),
        }
    }
}

impl MailTransport {
    /// `KEYGATE_SMTP_URL` when set, otherwise `.eml` files in `mail_dir`.
    pub fn from_settings(smtp_url: Option<&str>, mail_dir: &str) -> Result<Self, String> {
        match smtp_url {
            Some(text) => parse_smtp_url(text).map(Self::Smtp),
            None => Ok(Self::Files(PathBuf::from(mail_dir))),
        }
    }
}

fn parse_smtp_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|_| {
        "not a valid URL; expected smtp://user:pass@host:port, smtps://... or smtp://host:port?tls=none"
            .to_string()
    })?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err("scheme must be smtp:// or smtps://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    for (name, value) in url.query_pairs() {
        match (name.as_ref(), value.as_ref()) {
            ("tls", "none") if url.scheme() == "smtp" => {}
            ("tls", _) => return Err("only ?tls=none is understood, and only with smtp://".into()),
            (other, _) => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(url)
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain connection upgraded with STARTTLS, which is required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://...?tls=none`: no encryption, for a relay on the same host or network.
    None,
}

/// What an SMTP URL means, before any connection is made.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Percent-decoded user and password, when the URL has a user.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("KEYGATE_SMTP_URL: {0}")]
pub struct TransportError(String);

impl SmtpSettings {
    /// Maps a URL already checked by the configuration.
    pub fn from_url(url: &url::Url) -> Result<Self, TransportError> {
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TransportError("needs a host".into()))?
            // An IPv6 literal comes bracketed; the socket wants it bare.
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let plain = url.query_pairs().any(|(k, v)| k == "tls" && v == "none");
        let security = match (url.scheme(), plain) {
            ("smtps", _) => Security::Implicit,
            ("smtp", true) => Security::None,
            ("smtp", false) => Security::StartTls,
            (other, _) => return Err(TransportError(format!("unknown scheme {other}://"))),
        };
        let default_port = match security {
            Security::StartTls => 587,
            Security::Implicit => 465,
            Security::None => 25,
        };
        let decode = |text: &str| {
            percent_decode_str(text)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| TransportError("credentials are not valid UTF-8 once decoded".into()))
        };
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ))
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            credentials,
        })
    }

    /// Where messages go, for people: never the password.
    pub fn describe(&self) -> String {
        let scheme = match self.security {
            Security::Implicit => "smtps",
            _ => "smtp",
        };
        let suffix = if self.security == Security::None {
            "?tls=none"
        } else {
            ""
        };
        format!("{scheme}://{}:{}{suffix}", self.host, self.port)
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server refused for good (SMTP 5xx) or the message cannot be
    /// built: retrying would fail the same way.
    #[error("{0}")]
    Permanent(String),
    /// Anything that may pass later: connection refused, timeouts, 4xx.
    #[error("{0}")]
    Transient(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

/// The configured way out.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        settings: SmtpSettings,
    },
    /// `.eml` files in the folder, readable by their owner only
    /// ([`super::files`]).
    Files { dir: PathBuf },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Mailer {
    /// `timeout` bounds connecting and every SMTP command.
    pub fn new(config: &MailTransport, timeout: Duration) -> Result<Self, TransportError> {
        match config {
            MailTransport::Smtp(url) => {
                let settings = SmtpSettings::from_url(url)?;
                let tls = |host: &str| {
                    TlsParameters::new(host.to_owned())
                        .map_err(|e| TransportError(format!("TLS setup failed: {e}")))
                };
                let security = match settings.security {
                    Security::StartTls => Tls::Required(tls(&settings.host)?),
                    Security::Implicit => Tls::Wrapper(tls(&settings.host)?),
                    Security::None => Tls::None,
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
                        .port(settings.port)
                        .tls(security)
                        .timeout(Some(timeout));
                if let Some((user, password)) = &settings.credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Ok(Self::Smtp {
                    transport: builder.build(),
                    settings,
                })
            }
            MailTransport::Files(dir) => Ok(Self::Files { dir: dir.clone() }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { settings, .. } => settings.describe(),
            Self::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp { transport, .. } => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(error_chain(&e))),
                Err(e) => Err(SendError::Transient(error_chain(&e))),
            },
            Self::Files { dir } => {
                let dir = dir.clone();
                let bytes = message.formatted();
                let shown = dir.display().to_string();
                tokio::task::spawn_blocking(move || super::files::write_eml(&dir, &bytes))
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?
                    .map(|_| ())
                    .map_err(|e| SendError::Transient(format!("cannot write to {shown}: {e}")))
            }
        }
    }
}

/// The error and its causes on one line, each said once.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // Nested errors of one kind repeat their prefix ("Connection error:
    // Connection error: ..."): say it once.
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// What one email consists of, whatever its origin.
pub struct Outgoing<'a> {
    /// Without angle brackets; stable per outbox row so a resend is recognisable.
    pub message_id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// A `multipart/alternative` message with Date, Message-ID, From and To.
pub fn compose(
    from: &Mailbox,
    mail: &Outgoing<'_>,
    date: SystemTime,
) -> Result<Message, SendError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", mail.to)))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject)
        .date(date)
        .message_id(Some(format!("<{}>", mail.message_id)))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.to_owned(),
            mail.html.to_owned(),
        ))
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> SmtpSettings {
        SmtpSettings::from_url(&url::Url::parse(text).unwrap()).unwrap()
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chain_is_one_line_saying_each_cause_once() {
        let inner = Layer(
            "Connection error",
            Some(Box::new(Layer("refused\n(os error 111)", None))),
        );
        let outer = Layer("Connection error", Some(Box::new(inner)));
        assert_eq!(
            error_chain(&outer),
            "Connection error: refused (os error 111)"
        );
    }

    #[test]
    fn smtp_url_maps_to_transport_settings() {
        let s = settings("smtp://user%40corp:p%40ss%3Aword@mail.example.com:2587");
        assert_eq!(s.host, "mail.example.com");
        assert_eq!(s.port, 2587);
        assert_eq!(s.security, Security::StartTls);
        assert_eq!(
            s.credentials,
            Some(("user@corp".to_owned(), "p@ss:word".to_owned()))
        );

        let s = settings("smtps://mail.example.com");
        assert_eq!(
            (s.port, s.security, s.credentials),
            (465, Security::Implicit, None)
        );

        let s = settings("smtp://mail.example.com");
        assert_eq!((s.port, s.security), (587, Security::StartTls));

        let s = settings("smtp://127.0.0.1:1025?tls=none");
        assert_eq!((s.port, s.security), (1025, Security::None));
        assert_eq!(s.describe(), "smtp://127.0.0.1:1025?tls=none");

        let s = settings("smtp://[::1]:25?tls=none");
        assert_eq!(s.host, "::1");
    }

    #[tokio::test]
    async fn the_password_is_never_shown() {
        let s = settings("smtp://user:hunter2@mail.example.com:587");
        assert!(!s.describe().contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        let mailer = Mailer::new(
            &MailTransport::Smtp(url::Url::parse("smtp://user:hunter2@mail.example.com").unwrap()),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[test]
    fn composed_message_is_multipart_alternative_with_required_headers() {
        let from: Mailbox = "keygate <keygate@localhost>".parse().unwrap();
        let message = compose(
            &from,
            &Outgoing {
                message_id: "abc@keygate",
                to: "alice@example.com",
                subject: "[keygate] API key \"ci\" created",
                text: "hello",
                html: "<p>hello</p>",
            },
            SystemTime::now(),
        )
        .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        for header in [
            "Date: ",
            "Message-ID: <abc@keygate>",
            "From: keygate <keygate@localhost>",
            "To: alice@example.com",
            "multipart/alternative",
            "text/plain",
            "text/html",
        ] {
            assert!(raw.contains(header), "{header} missing in {raw}");
        }
        let bad = Outgoing {
            message_id: "x@keygate",
            to: "not an address",
            subject: "s",
            text: "t",
            html: "h",
        };
        assert!(
            compose(&from, &bad, SystemTime::now())
                .unwrap_err()
                .is_permanent()
        );
    }
}
