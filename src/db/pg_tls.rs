//! TLS for the warm path's own PostgreSQL connections (`super::pg_reads`),
//! decided from the URL as libpq decides it for the pool's connections, so
//! that they never do with less.
//!
//! libpq reads `sslmode` and its certificate paths from the URL (or from
//! `PGSSLMODE` and its kin); `tokio-postgres` knows only `disable`,
//! `prefer` and `require`, and no certificate. So the TLS parameters are
//! taken out of the URL, the rest goes to `tokio-postgres`, and rustls is
//! set up as libpq would verify:
//!
//! | `sslmode` | the warm path's connections |
//! | --- | --- |
//! | `disable` (or any mode, to a Unix socket: libpq speaks no TLS there) | plain |
//! | `prefer` (the default), `require` | TLS when the server offers it (`prefer`) or always; the server's certificate checked against the root certificate when `sslrootcert` names one or `~/.postgresql/root.crt` exists (libpq's rule), otherwise not checked |
//! | `verify-ca` | TLS; the chain checked against the root certificate |
//! | `verify-full` | TLS; the chain and the host name checked |
//!
//! Whatever else libpq would do here (`allow`, a client certificate, a
//! revocation list, `sslrootcert=system`, protocol bounds) answers an
//! error naming it, and the pool, which is libpq, keeps the reads.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// URL parameters that are libpq's TLS settings.
const TLS_PARAMETERS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslcompression",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

/// Of those, the ones this module leaves to libpq when set.
const LEFT_TO_LIBPQ: &[(&str, &str)] = &[
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslpassword", "PGSSLPASSWORD"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
];

/// How the warm path connects.
pub enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

/// An environment variable's value, if set and not empty.
pub type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Where libpq looks: the process's environment and home directory.
pub struct Surroundings {
    pub env: Lookup,
    pub home: Option<PathBuf>,
}

impl Surroundings {
    pub fn of_this_process() -> Self {
        Self {
            env: Box::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The `tokio-postgres` configuration and connector for `url`, or why the
/// pool keeps the reads.
pub fn plan(url: &str, around: &Surroundings) -> Result<(Config, Connector), String> {
    let (rest, tls) = split(url);
    let setting = |name: &str, variable: &str| {
        tls.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (around.env)(variable))
    };
    for (name, variable) in LEFT_TO_LIBPQ {
        if setting(name, variable).is_some() {
            return Err(format!("{name} is set"));
        }
    }
    let postgresql = around.home.as_ref().map(|h| h.join(".postgresql"));
    if postgresql
        .as_ref()
        .is_some_and(|dir| dir.join("postgresql.crt").exists())
    {
        return Err("~/.postgresql/postgresql.crt is a client certificate".into());
    }
    let mut config = Config::from_str(&rest).map_err(|e| e.to_string())?;
    let mode = setting("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into());
    // libpq speaks no TLS over a Unix socket, whatever the mode says.
    let hosts = config.get_hosts();
    let sockets_only = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
    if mode == "disable" || sockets_only {
        config.ssl_mode(SslMode::Disable);
        return Ok((config, Connector::Plain));
    }
    let (ssl_mode, checks) = match mode.as_str() {
        "prefer" => (SslMode::Prefer, Checks::IfRoot),
        "require" => (SslMode::Require, Checks::IfRoot),
        "verify-ca" => (SslMode::Require, Checks::Chain),
        "verify-full" => (SslMode::Require, Checks::ChainAndName),
        other => return Err(format!("sslmode={other}")),
    };
    let root = match setting("sslrootcert", "PGSSLROOTCERT") {
        Some(named) if named == "system" => return Err("sslrootcert=system".into()),
        Some(named) => Some(PathBuf::from(named)),
        None => postgresql.map(|dir| dir.join("root.crt")),
    }
    .filter(|path| path.exists());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (checks, root) {
        (Checks::IfRoot, None) => Arc::new(Unchecked(provider.signature_verification_algorithms)),
        (Checks::Chain | Checks::ChainAndName, None) => {
            return Err(format!("sslmode={mode} without a root certificate"));
        }
        (Checks::IfRoot | Checks::Chain, Some(root)) => {
            Arc::new(ChainOnly(webpki(&root, &provider)?))
        }
        (Checks::ChainAndName, Some(root)) => webpki(&root, &provider)?,
    };
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if setting("sslsni", "PGSSLSNI").as_deref() == Some("0") {
        tls.enable_sni = false;
    }
    config.ssl_mode(ssl_mode);
    Ok((config, Connector::Tls(MakeRustlsConnect::new(tls))))
}

/// What libpq checks of the server's certificate.
#[derive(Clone, Copy)]
enum Checks {
    /// The chain if a root certificate is there, otherwise nothing.
    IfRoot,
    Chain,
    ChainAndName,
}

/// `url` without its TLS parameters, and those (percent-decoded). The
/// others are kept exactly as written.
fn split(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key_text = percent_decode_str(key).decode_utf8_lossy();
        if TLS_PARAMETERS.contains(&key_text.as_ref()) {
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            tls.push((key_text.into_owned(), value));
        } else {
            kept.push(pair);
        }
    }
    if kept.is_empty() {
        (base.to_owned(), tls)
    } else {
        (format!("{base}?{}", kept.join("&")), tls)
    }
}

/// The standard verifier (chain and name) over the certificates in `root`.
fn webpki(
    root: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let shown = root.display();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).map_err(|e| format!("{shown}: {e}"))? {
        let cert = cert.map_err(|e| format!("{shown}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{shown}: {e}"))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("{shown}: {e}"))
}

/// libpq's `verify-ca`: the chain must lead to the root, whatever name
/// the certificate is for.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// libpq's `prefer` and `require` without a root certificate: encrypted,
/// the certificate taken as it comes (the handshake's signatures are
/// still checked against it).
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://u:p%3Fw@db.example:5432/keygate";

    fn around(env: &'static [(&'static str, &'static str)], home: Option<PathBuf>) -> Surroundings {
        Surroundings {
            env: Box::new(move |name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }),
            home,
        }
    }

    fn outcome(url: &str, around: &Surroundings) -> Result<(SslMode, bool), String> {
        plan(url, around).map(|(config, connector)| {
            (
                config.get_ssl_mode(),
                matches!(connector, Connector::Tls(_)),
            )
        })
    }

    /// A root certificate file: a self-signed certificate made for the
    /// tests (`openssl req -x509`), its key thrown away.
    fn root_file(dir: &Path) -> PathBuf {
        const ROOT: &str = include_str!("../../tests/support/unrelated-root.crt");
        let path = dir.join("root.crt");
        std::fs::write(&path, ROOT).unwrap();
        path
    }

    #[test]
    fn splits_tls_parameters_off_and_keeps_the_rest_as_written() {
        let (rest, tls) = split(&format!(
            "{URL}?application_name=a%20b&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt&connect_timeout=5"
        ));
        assert_eq!(
            rest,
            format!("{URL}?application_name=a%20b&connect_timeout=5")
        );
        assert_eq!(
            tls,
            vec![
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/tmp/ca.crt".to_owned())
            ]
        );
        assert_eq!(split(URL), (URL.to_owned(), Vec::new()));
        assert_eq!(split(&format!("{URL}?sslmode=disable")).0, URL);
    }

    #[test]
    fn modes_as_libpq_reads_them() {
        let none = around(&[], None);
        assert_eq!(outcome(URL, &none), Ok((SslMode::Prefer, true)));
        assert_eq!(
            outcome(&format!("{URL}?sslmode=disable"), &none),
            Ok((SslMode::Disable, false))
        );
        assert_eq!(
            outcome(&format!("{URL}?sslmode=require"), &none),
            Ok((SslMode::Require, true))
        );
        let env = around(&[("PGSSLMODE", "disable")], None);
        assert_eq!(
            outcome(URL, &env),
            Ok((SslMode::Disable, false)),
            "PGSSLMODE"
        );
        assert_eq!(
            outcome(&format!("{URL}?sslmode=require"), &env),
            Ok((SslMode::Require, true)),
            "the URL first"
        );
        for mode in ["verify-ca", "verify-full"] {
            let refused = outcome(&format!("{URL}?sslmode={mode}"), &none).unwrap_err();
            assert!(refused.contains("without a root certificate"), "{refused}");
        }
        assert!(outcome(&format!("{URL}?sslmode=allow"), &none).is_err());
        let socket = "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/keygate?sslmode=require";
        assert_eq!(
            outcome(socket, &none),
            Ok((SslMode::Disable, false)),
            "a Unix socket"
        );
        assert!(outcome(&format!("{URL}?sslmode=bogus"), &none).is_err());
    }

    #[test]
    fn a_root_certificate_makes_the_checks_possible() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_file(dir.path());
        let none = around(&[], None);
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("{URL}?sslmode={mode}&sslrootcert={}", root.display());
            assert_eq!(outcome(&url, &none), Ok((SslMode::Require, true)), "{mode}");
        }
        // libpq's default place for it, under the home directory.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        root_file(&home.path().join(".postgresql"));
        let at_home = around(&[], Some(home.path().to_owned()));
        assert!(outcome(&format!("{URL}?sslmode=verify-full"), &at_home).is_ok());
        let garbage = dir.path().join("garbage.crt");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let url = format!("{URL}?sslmode=verify-ca&sslrootcert={}", garbage.display());
        assert!(outcome(&url, &none).is_err());
    }

    #[test]
    fn what_only_libpq_does_stays_with_the_pool() {
        let none = around(&[], None);
        for extra in [
            "sslcert=/c.crt",
            "sslkey=/c.key",
            "sslcrl=/x.crl",
            "sslrootcert=system",
            "ssl_min_protocol_version=TLSv1.3",
        ] {
            assert!(
                outcome(&format!("{URL}?{extra}"), &none).is_err(),
                "{extra}"
            );
        }
        let env = around(&[("PGSSLCERT", "/c.crt")], None);
        assert!(outcome(URL, &env).is_err(), "PGSSLCERT");
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(".postgresql/postgresql.crt"), "").unwrap();
        let client_cert = around(&[], Some(home.path().to_owned()));
        assert!(
            outcome(URL, &client_cert).is_err(),
            "a default client certificate"
        );
        assert!(outcome(&format!("{URL}?unknown_option=1"), &none).is_err());
    }
}
