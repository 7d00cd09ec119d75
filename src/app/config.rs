//! Every `KEYGATE_*` variable, parsed and validated once at start-up, into
//! the types of the modules that own them (`db::DatabaseUrl`,
//! `signing::MasterKey`, `mail::MailTransport`, ...).
//!
//! A bad value stops start-up with one line naming the variable and what is
//! wrong with it; nothing downstream re-checks a value that has its type.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::accounts::sso::{SsoSettings, SsoSettingsError, SsoVariables};
use crate::db::DatabaseUrl;
use crate::duration::HumanDuration;
use crate::exposure::github_keys::GithubKeys;
use crate::http::edge::HttpTuning;
use crate::mail::{MailTransport, MailTuning};
use crate::signing::{MasterKey, SigningAlg};

pub mod variables;

use variables::{
    DATABASE_URL, EXPIRY_WARNING, GITHUB_SCANNING_KEYS, INVITE_TTL, ISSUER, KEY_MAX_LIFETIME,
    LISTEN, MAIL_DIR, MAIL_FROM, MAX_KEYS_PER_USER, METRICS_ALLOW_FROM, OIDC_ALLOWED_DOMAINS,
    OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_DEFAULT_ROLE, OIDC_ISSUER, OIDC_NAME,
    PASSWORD_SIGN_IN, REQUIRE_MFA, SECRET_KEY, SESSION_IDLE, SESSION_MAX, SIGNING_ALG, SMTP_URL,
    TOKEN_TTL, TRUSTED_PROXIES, Variable,
};

/// A bad value: one line naming the variable and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub listen: SocketAddr,
    /// `None`: derived from the bound address once the server listens.
    pub issuer: Option<String>,
    /// `None`: generated once into a file beside a SQLite database.
    pub secret_key: Option<MasterKey>,
    pub token_ttl: HumanDuration,
    pub signing_alg: SigningAlg,
    /// `None`: keys may be created that never expire.
    pub key_max_lifetime: Option<HumanDuration>,
    pub mail: MailTransport,
    pub mail_from: lettre::message::Mailbox,
    pub expiry_warning: HumanDuration,
    /// Outbox and sweep timing; not from the environment (tests shorten it).
    pub mail_tuning: MailTuning,
    /// The webhook worker's timing (defaults: the contract's).
    pub webhook_tuning: crate::webhooks::WebhookTuning,
    /// Bounds of the trusted issuers' key fetches (defaults: 5 s, 256 KiB).
    pub federation_tuning: crate::federation::JwksTuning,
    /// Connection and body-read limits; not from the environment (tests
    /// shorten them).
    pub http_tuning: HttpTuning,
    /// Reverse proxies whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Who may read `/metrics` (the client address as for throttling).
    pub metrics_allow_from: Vec<ipnet::IpNet>,
    /// A console session ends after this long without a request.
    pub session_idle: HumanDuration,
    /// A console session ends this long after sign-in, however busy.
    pub session_max: HumanDuration,
    /// Lifetime of invitation and password-reset links.
    pub invite_ttl: HumanDuration,
    /// Active keys one person may hold (`None`: no limit).
    pub max_keys_per_user: Option<u32>,
    /// GitHub's secret-scanning public keys, read from their file (`None`:
    /// `POST /integrations/github/secret-scanning` is not served).
    pub github_scanning_keys: Option<Arc<GithubKeys>>,
    /// The identity provider for console sign-in (`KEYGATE_OIDC_*`).
    pub sso: Option<SsoSettings>,
    /// `KEYGATE_PASSWORD_SIGN_IN`.
    pub password_sign_in: bool,
    /// `KEYGATE_REQUIRE_MFA`.
    pub require_mfa: crate::accounts::RequireMfa,
}

/// Longest access-token lifetime accepted; RFC 9700 asks for short-lived tokens.
const MAX_TOKEN_TTL_SECS: i64 = 86_400;

/// Longest console session and link lifetime accepted: a forgotten browser
/// or an old email should not open the console weeks later.
const MAX_SESSION_OR_LINK_SECS: i64 = 30 * 86_400;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars()
            .filter(|(name, _)| name.starts_with("KEYGATE_"))
            .collect();
        Self::from_vars(&vars)
    }

    /// Parses the given variables; absent ones take their documented defaults.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let given = Given(vars);
        let fail = |variable: &Variable, message: String| ConfigError {
            variable: variable.name,
            message,
        };

        let database_url = DatabaseUrl::parse(given.or_default(&DATABASE_URL))
            .map_err(|m| fail(&DATABASE_URL, m))?;

        let listen: SocketAddr = given.or_default(&LISTEN).parse().map_err(|_| {
            fail(
                &LISTEN,
                "must be an IP address and port, such as 127.0.0.1:8080 or 0.0.0.0:8080".into(),
            )
        })?;

        let issuer = given
            .set(&ISSUER)
            .map(parse_issuer)
            .transpose()
            .map_err(|m| fail(&ISSUER, m))?;

        let secret_key = given
            .set(&SECRET_KEY)
            .map(MasterKey::from_hex)
            .transpose()
            .map_err(|m| fail(&SECRET_KEY, m))?;
        if secret_key.is_none() && matches!(database_url, DatabaseUrl::Postgres(_)) {
            return Err(fail(
                &SECRET_KEY,
                "required with PostgreSQL (generate one with `openssl rand -hex 32`)".into(),
            ));
        }

        let token_ttl: HumanDuration = given
            .or_default(&TOKEN_TTL)
            .parse()
            .map_err(|e| fail(&TOKEN_TTL, format!("{e}")))?;
        if token_ttl.as_secs() > MAX_TOKEN_TTL_SECS {
            return Err(fail(
                &TOKEN_TTL,
                "must be at most 24h: access tokens are meant to be short-lived".into(),
            ));
        }

        let signing_alg: SigningAlg = given
            .or_default(&SIGNING_ALG)
            .parse()
            .map_err(|m| fail(&SIGNING_ALG, m))?;

        let key_max_lifetime = HumanDuration::parse_or_zero(given.or_default(&KEY_MAX_LIFETIME))
            .map_err(|e| fail(&KEY_MAX_LIFETIME, format!("{e}, or 0 for no limit")))?;

        let mail = MailTransport::from_settings(given.set(&SMTP_URL), given.or_default(&MAIL_DIR))
            .map_err(|m| fail(&SMTP_URL, m))?;

        let mail_from = given
            .or_default(&MAIL_FROM)
            .parse()
            .map_err(|e| fail(&MAIL_FROM, format!("not a valid mailbox: {e}")))?;

        let expiry_warning: HumanDuration = given
            .or_default(&EXPIRY_WARNING)
            .parse()
            .map_err(|e| fail(&EXPIRY_WARNING, format!("{e}")))?;

        let trusted_proxies = given
            .set(&TRUSTED_PROXIES)
            .map(parse_networks)
            .transpose()
            .map_err(|m| fail(&TRUSTED_PROXIES, m))?
            .unwrap_or_default();

        let metrics_allow_from = parse_networks(given.or_default(&METRICS_ALLOW_FROM))
            .map_err(|m| fail(&METRICS_ALLOW_FROM, m))?;

        let session_idle =
            parse_bounded(given.or_default(&SESSION_IDLE)).map_err(|m| fail(&SESSION_IDLE, m))?;
        let session_max =
            parse_bounded(given.or_default(&SESSION_MAX)).map_err(|m| fail(&SESSION_MAX, m))?;
        if session_idle > session_max {
            return Err(fail(
                &SESSION_IDLE,
                format!(
                    "{session_idle} is longer than {} ({session_max})",
                    SESSION_MAX.name
                ),
            ));
        }
        let invite_ttl =
            parse_bounded(given.or_default(&INVITE_TTL)).map_err(|m| fail(&INVITE_TTL, m))?;

        let max_keys_per_user = given
            .set(&MAX_KEYS_PER_USER)
            .map(|text| {
                text.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    fail(
                        &MAX_KEYS_PER_USER,
                        format!(
                            "{text:?} is not a whole number of at least 1 (leave it unset for no limit)"
                        ),
                    )
                })
            })
            .transpose()?;

        let github_scanning_keys = given
            .set(&GITHUB_SCANNING_KEYS)
            .map(|path| GithubKeys::load(Path::new(path)).map(Arc::new))
            .transpose()
            .map_err(|m| fail(&GITHUB_SCANNING_KEYS, m))?;

        let sso = SsoSettings::parse(SsoVariables {
            issuer: given.set(&OIDC_ISSUER),
            client_id: given.set(&OIDC_CLIENT_ID),
            client_secret: given.set(&OIDC_CLIENT_SECRET),
            name: given.or_default(&OIDC_NAME),
            allowed_domains: given.set(&OIDC_ALLOWED_DOMAINS),
            default_role: given.set(&OIDC_DEFAULT_ROLE),
        })
        .map_err(|e| match e {
            SsoSettingsError::Issuer(m) => fail(&OIDC_ISSUER, m),
            SsoSettingsError::ClientId(m) => fail(&OIDC_CLIENT_ID, m),
            SsoSettingsError::ClientSecret(m) => fail(&OIDC_CLIENT_SECRET, m),
            SsoSettingsError::Name(m) => fail(&OIDC_NAME, m),
            SsoSettingsError::AllowedDomains(m) => fail(&OIDC_ALLOWED_DOMAINS, m),
        })?;

        let password_sign_in = match given.or_default(&PASSWORD_SIGN_IN) {
            "on" => true,
            "off" => false,
            other => {
                return Err(fail(
                    &PASSWORD_SIGN_IN,
                    format!("{other:?} is neither on nor off"),
                ));
            }
        };
        let passkeys = issuer
            .as_deref()
            .and_then(crate::accounts::RelyingParty::for_issuer)
            .is_some();
        if !password_sign_in && sso.is_none() && !passkeys {
            return Err(fail(
                &PASSWORD_SIGN_IN,
                "off needs KEYGATE_OIDC_ISSUER, or an https KEYGATE_ISSUER for passkeys: \
                 otherwise nobody could sign in to the console"
                    .into(),
            ));
        }

        let require_mfa = crate::accounts::RequireMfa::parse(given.or_default(&REQUIRE_MFA))
            .ok_or_else(|| {
                fail(
                    &REQUIRE_MFA,
                    format!(
                        "{:?} is none of off, admins, everyone",
                        given.or_default(&REQUIRE_MFA)
                    ),
                )
            })?;

        Ok(Self {
            database_url,
            listen,
            issuer,
            secret_key,
            token_ttl,
            signing_alg,
            key_max_lifetime,
            mail,
            mail_from,
            expiry_warning,
            mail_tuning: MailTuning::default(),
            webhook_tuning: crate::webhooks::WebhookTuning::default(),
            federation_tuning: crate::federation::JwksTuning::default(),
            http_tuning: HttpTuning::default(),
            trusted_proxies,
            metrics_allow_from,
            session_idle,
            session_max,
            invite_ttl,
            max_keys_per_user,
            github_scanning_keys,
            sso,
            password_sign_in,
            require_mfa,
        })
    }
}

/// The variables as given, read by their entry in the table.
struct Given<'a>(&'a HashMap<String, String>);

impl<'a> Given<'a> {
    /// The value set, if any: blanks count as unset.
    fn set(&self, variable: &Variable) -> Option<&'a str> {
        self.0
            .get(variable.name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The value set, else the variable's default. Only variables with a
    /// default are read this way (`defaults_match_the_contract` parses them
    /// all unset).
    fn or_default(&self, variable: &Variable) -> &'a str {
        self.set(variable)
            .or(variable.default_value())
            .unwrap_or_default()
    }
}

/// A duration of at most 30 days.
fn parse_bounded(text: &str) -> Result<HumanDuration, String> {
    let duration: HumanDuration = text.parse().map_err(|e| format!("{e}"))?;
    if duration.as_secs() > MAX_SESSION_OR_LINK_SECS {
        return Err(format!("{duration} is longer than the maximum of 30d"));
    }
    Ok(duration)
}

impl Config {
    /// A server listening on every address (0.0.0.0, [::]) cannot derive its
    /// public URL: tokens would carry `http://0.0.0.0:8080`, which no resource
    /// server matches. Such a server needs `KEYGATE_ISSUER`.
    pub fn require_public_issuer(&self) -> Result<(), ConfigError> {
        if self.issuer.is_some() || !self.listen.ip().is_unspecified() {
            return Ok(());
        }
        Err(ConfigError {
            variable: ISSUER.name,
            message: format!(
                "required when listening on {}: set it to the public URL clients and \
                 resource servers use to reach keygate, such as https://auth.example.com",
                self.listen
            ),
        })
    }

    /// A warning for an issuer that is not https on an address other
    /// machines can reach: credentials and tokens would travel in clear
    /// unless a TLS proxy in front serves the issuer's https URL.
    pub fn insecure_issuer_warning(&self, issuer: &str) -> Option<String> {
        let https = issuer
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        // `[::ffff:127.0.0.1]` is loopback too: `to_canonical` reads it as IPv4.
        if https || self.listen.ip().to_canonical().is_loopback() {
            return None;
        }
        Some(format!(
            "the issuer {issuer} is not https while keygate listens on {}, which other \
             machines can reach: put a TLS proxy in front and set KEYGATE_ISSUER to its https:// URL",
            self.listen
        ))
    }
}

/// An absolute http(s) URL without query or fragment; stored without a
/// trailing slash so that `issuer + "/oauth/token"` is well formed.
fn parse_issuer(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (RFC 8414 §2)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Comma- or space-separated addresses and networks: `10.0.0.1, 10.1.0.0/16`.
fn parse_networks(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{item:?} is not an IP address or network (such as 10.0.0.0/8)")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(&vars)
    }

    #[test]
    fn defaults_match_the_contract() {
        let config = parse(&[]).unwrap();
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite("keygate.db".into())
        );
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.issuer, None);
        assert_eq!(config.token_ttl.as_secs(), 900);
        assert_eq!(config.signing_alg, SigningAlg::Es256);
        assert_eq!(config.key_max_lifetime.unwrap().as_secs(), 180 * 86_400);
        assert_eq!(config.mail, MailTransport::Files("mail".into()));
        assert_eq!(config.mail_from.to_string(), "keygate <keygate@localhost>");
        assert_eq!(config.expiry_warning.as_secs(), 7 * 86_400);
        assert_eq!(config.session_idle.as_secs(), 30 * 60);
        assert_eq!(config.session_max.as_secs(), 12 * 3600);
        assert_eq!(config.invite_ttl.as_secs(), 72 * 3600);
        assert_eq!(config.max_keys_per_user, None);
        assert!(config.github_scanning_keys.is_none());
    }

    #[test]
    fn account_settings_parse() {
        let config = parse(&[
            ("KEYGATE_MAX_KEYS_PER_USER", "1"),
            ("KEYGATE_SESSION_IDLE", "5m"),
            ("KEYGATE_SESSION_MAX", "1h"),
            ("KEYGATE_INVITE_TTL", "1d"),
        ])
        .unwrap();
        assert_eq!(config.max_keys_per_user, Some(1));
        assert_eq!(config.session_idle.as_secs(), 300);
        assert_eq!(config.session_max.as_secs(), 3600);
        assert_eq!(config.invite_ttl.as_secs(), 86_400);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            ("KEYGATE_DATABASE_URL", "mysql://x"),
            ("KEYGATE_LISTEN", "localhost"),
            ("KEYGATE_ISSUER", "ftp://example.com"),
            ("KEYGATE_SECRET_KEY", "abc"),
            ("KEYGATE_TOKEN_TTL", "15 minutes"),
            ("KEYGATE_TOKEN_TTL", "2d"),
            ("KEYGATE_SIGNING_ALG", "HS256"),
            ("KEYGATE_KEY_MAX_LIFETIME", "forever"),
            ("KEYGATE_SMTP_URL", "http://mail"),
            ("KEYGATE_MAIL_FROM", "not an address"),
            ("KEYGATE_EXPIRY_WARNING", "0"),
            ("KEYGATE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("KEYGATE_TRUSTED_PROXIES", "proxy.local"),
            ("KEYGATE_METRICS_ALLOW_FROM", "10.0.0.0/8,prometheus.local"),
            ("KEYGATE_METRICS_ALLOW_FROM", "::1/129"),
            ("KEYGATE_MAX_KEYS_PER_USER", "0"),
            ("KEYGATE_MAX_KEYS_PER_USER", "-1"),
            ("KEYGATE_MAX_KEYS_PER_USER", "one"),
            ("KEYGATE_OIDC_ISSUER", "http://idp.example.com"),
            ("KEYGATE_PASSWORD_SIGN_IN", "no"),
            ("KEYGATE_PASSWORD_SIGN_IN", "off"),
            ("KEYGATE_REQUIRE_MFA", "all"),
            ("KEYGATE_SESSION_IDLE", "30"),
            ("KEYGATE_SESSION_IDLE", "13h"),
            ("KEYGATE_SESSION_MAX", "31d"),
            ("KEYGATE_INVITE_TTL", "0"),
            ("KEYGATE_INVITE_TTL", "60d"),
            ("KEYGATE_GITHUB_SCANNING_KEYS", "/nonexistent/keys.json"),
            ("KEYGATE_GITHUB_SCANNING_KEYS", "/"),
        ];
        for (variable, value) in cases {
            let err = parse(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert!(err.to_string().starts_with(variable));
        }
    }

    #[test]
    fn postgres_requires_a_secret_key() {
        let err = parse(&[("KEYGATE_DATABASE_URL", "postgres://u@localhost/db")]).unwrap_err();
        assert_eq!(err.variable, "KEYGATE_SECRET_KEY");
        let key = "11".repeat(32);
        let config = parse(&[
            ("KEYGATE_DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("KEYGATE_SECRET_KEY", key.as_str()),
        ])
        .unwrap();
        assert!(!format!("{config:?}").contains("pw@"));
        assert!(!format!("{config:?}").contains(&key));
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let config = parse(&[("KEYGATE_TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12 ::1")]).unwrap();
        let shown: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.1/32", "172.16.0.0/12", "::1/128"]);
        assert!(parse(&[]).unwrap().trusted_proxies.is_empty());
    }

    #[test]
    fn metrics_are_for_loopback_and_private_networks_by_default() {
        let allowed = |config: &Config, ip: &str| {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            config
                .metrics_allow_from
                .iter()
                .any(|net| net.contains(&ip))
        };
        let config = parse(&[]).unwrap();
        for ip in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "fd00::1",
        ] {
            assert!(allowed(&config, ip), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(!allowed(&config, ip), "{ip}");
        }
        let config =
            parse(&[("KEYGATE_METRICS_ALLOW_FROM", "203.0.113.0/24, 2001:db8::1")]).unwrap();
        assert!(allowed(&config, "203.0.113.9"));
        assert!(allowed(&config, "2001:db8::1"));
        assert!(!allowed(&config, "127.0.0.1"));
    }

    #[test]
    fn zero_max_lifetime_means_unbounded() {
        let config = parse(&[("KEYGATE_KEY_MAX_LIFETIME", "0")]).unwrap();
        assert_eq!(config.key_max_lifetime, None);
    }

    #[test]
    fn listening_everywhere_needs_an_issuer() {
        for listen in ["0.0.0.0:8080", "[::]:8080"] {
            let config = parse(&[("KEYGATE_LISTEN", listen)]).unwrap();
            let err = config.require_public_issuer().unwrap_err();
            assert_eq!(err.variable, "KEYGATE_ISSUER");
            assert!(err.to_string().contains(listen), "{err}");
            assert!(err.to_string().contains("public URL"), "{err}");
            assert_eq!(err.to_string().lines().count(), 1);
            let config = parse(&[
                ("KEYGATE_LISTEN", listen),
                ("KEYGATE_ISSUER", "https://auth.example.com"),
            ])
            .unwrap();
            assert!(config.require_public_issuer().is_ok());
        }
        for listen in ["127.0.0.1:8080", "10.0.0.5:8080", "[::1]:8080"] {
            let config = parse(&[("KEYGATE_LISTEN", listen)]).unwrap();
            assert!(config.require_public_issuer().is_ok(), "{listen}");
        }
    }

    #[test]
    fn plain_http_issuer_off_loopback_is_warned_about() {
        let warned = |listen: &str, issuer: &str| {
            parse(&[("KEYGATE_LISTEN", listen)])
                .unwrap()
                .insecure_issuer_warning(issuer)
        };
        assert!(warned("0.0.0.0:8080", "http://auth.example.com").is_some());
        assert!(warned("10.0.0.5:8080", "http://10.0.0.5:8080").is_some());
        assert!(warned("0.0.0.0:8080", "https://auth.example.com").is_none());
        assert!(warned("0.0.0.0:8080", "HTTPS://auth.example.com").is_none());
        assert!(warned("127.0.0.1:8080", "http://127.0.0.1:8080").is_none());
        assert!(warned("[::1]:8080", "http://[::1]:8080").is_none());
        let mapped = "[::ffff:127.0.0.1]:8080";
        assert!(warned(mapped, "http://[::ffff:127.0.0.1]:8080").is_none());
        assert!(warned("[::ffff:10.0.0.5]:8080", "http://10.0.0.5:8080").is_some());
    }

    #[test]
    fn issuer_loses_its_trailing_slash() {
        let config = parse(&[("KEYGATE_ISSUER", "https://auth.example.com/")]).unwrap();
        assert_eq!(config.issuer.as_deref(), Some("https://auth.example.com"));
    }

    #[test]
    fn smtp_url_forms() {
        for ok in [
            "smtp://user:pass@mail.example.com:587",
            "smtps://mail.example.com:465",
            "smtp://127.0.0.1:2525?tls=none",
        ] {
            assert!(matches!(
                parse(&[("KEYGATE_SMTP_URL", ok)]).unwrap().mail,
                MailTransport::Smtp(_)
            ));
        }
        assert!(parse(&[("KEYGATE_SMTP_URL", "smtps://h:465?tls=none")]).is_err());
        let config = parse(&[("KEYGATE_SMTP_URL", "smtp://u:hunter2@h:587")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
