//! The one table of the variables keygate reads: each one's name, its
//! default as people read it, and what it means. The parser takes its
//! defaults from here, `keygate serve --help` lists it, and a test holds
//! the README's configuration table to it.
//!
//! A variable of the contract joins the table when `Config` reads it, not
//! before: the help promises nothing that does nothing.

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub unset: Unset,
    /// What it means, one line, plain text (the README adds code marks).
    pub help: &'static str,
}

/// What a variable is when it is not set (or set to blanks).
#[derive(Debug, Clone, Copy)]
pub enum Unset {
    /// Read as if set to this value, and shown as it.
    Default(&'static str),
    /// No value to read: keygate does without, as these words say.
    Means(&'static str),
}

impl Variable {
    const fn with_default(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self {
            name,
            unset: Unset::Default(default),
            help,
        }
    }

    const fn without_default(name: &'static str, means: &'static str, help: &'static str) -> Self {
        Self {
            name,
            unset: Unset::Means(means),
            help,
        }
    }

    /// The value read when the variable is unset, if it has one.
    pub fn default_value(&self) -> Option<&'static str> {
        match self.unset {
            Unset::Default(value) => Some(value),
            Unset::Means(_) => None,
        }
    }

    /// The default as `serve --help` and the README show it.
    pub fn shown_default(&self) -> &'static str {
        match self.unset {
            Unset::Default(shown) | Unset::Means(shown) => shown,
        }
    }
}

pub const DATABASE_URL: Variable = Variable::with_default(
    "KEYGATE_DATABASE_URL",
    "sqlite://keygate.db",
    "sqlite://PATH (embedded default) or postgres://...",
);
pub const LISTEN: Variable = Variable::with_default(
    "KEYGATE_LISTEN",
    "127.0.0.1:8080",
    "address the server binds",
);
pub const ISSUER: Variable = Variable::without_default(
    "KEYGATE_ISSUER",
    "http:// + listen address",
    "public URL, iss of every token; required when listening on 0.0.0.0 or [::]",
);
pub const SECRET_KEY: Variable = Variable::without_default(
    "KEYGATE_SECRET_KEY",
    "generated into <database>.secret beside a SQLite database; required with PostgreSQL",
    "64 hex characters: encrypts signing keys at rest, keys session and link hashes",
);
pub const TOKEN_TTL: Variable = Variable::with_default(
    "KEYGATE_TOKEN_TTL",
    "15m",
    "access-token lifetime (at most 24h)",
);
pub const SIGNING_ALG: Variable = Variable::with_default(
    "KEYGATE_SIGNING_ALG",
    "ES256",
    "ES256, EdDSA or RS256 for new signing keys",
);
pub const KEY_MAX_LIFETIME: Variable = Variable::with_default(
    "KEYGATE_KEY_MAX_LIFETIME",
    "180d",
    "longest expiry of a key, and the default; 0 allows keys that never expire",
);
pub const SMTP_URL: Variable = Variable::without_default(
    "KEYGATE_SMTP_URL",
    "unset",
    "smtp://user:pass@host:port (STARTTLS), smtps://... or smtp://host:port?tls=none; \
     unset: emails are .eml files in KEYGATE_MAIL_DIR",
);
pub const MAIL_DIR: Variable = Variable::with_default(
    "KEYGATE_MAIL_DIR",
    "mail",
    "where .eml files go without an SMTP URL",
);
pub const MAIL_FROM: Variable = Variable::with_default(
    "KEYGATE_MAIL_FROM",
    "keygate <keygate@localhost>",
    "From of every email",
);
pub const EXPIRY_WARNING: Variable = Variable::with_default(
    "KEYGATE_EXPIRY_WARNING",
    "7d",
    "how long before expiry the owner is warned",
);
pub const MAX_KEYS_PER_USER: Variable = Variable::without_default(
    "KEYGATE_MAX_KEYS_PER_USER",
    "unset (no limit)",
    "active keys one person may hold; 1 is one key per person",
);
pub const SESSION_IDLE: Variable = Variable::with_default(
    "KEYGATE_SESSION_IDLE",
    "30m",
    "console session idle timeout (at most KEYGATE_SESSION_MAX)",
);
pub const SESSION_MAX: Variable = Variable::with_default(
    "KEYGATE_SESSION_MAX",
    "12h",
    "console session absolute lifetime (at most 30d)",
);
pub const INVITE_TTL: Variable = Variable::with_default(
    "KEYGATE_INVITE_TTL",
    "72h",
    "lifetime of invitation and password-reset links (at most 30d)",
);
pub const TRUSTED_PROXIES: Variable = Variable::without_default(
    "KEYGATE_TRUSTED_PROXIES",
    "unset",
    "proxies (addresses or networks) whose X-Forwarded-For names the client",
);
/// Loopback and private networks, so a Prometheus beside keygate works out
/// of the box and the internet does not learn why logins fail.
pub const METRICS_ALLOW_FROM: Variable = Variable::with_default(
    "KEYGATE_METRICS_ALLOW_FROM",
    "127.0.0.0/8 ::1 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7",
    "networks that may read /metrics; others get 404",
);
pub const GITHUB_SCANNING_KEYS: Variable = Variable::without_default(
    "KEYGATE_GITHUB_SCANNING_KEYS",
    "unset",
    "file of GitHub's secret-scanning public keys; unset: that endpoint answers 404",
);
pub const OIDC_ISSUER: Variable = Variable::without_default(
    "KEYGATE_OIDC_ISSUER",
    "unset",
    "the company identity provider for console sign-in (OpenID Connect); unset: no SSO button",
);
pub const OIDC_CLIENT_ID: Variable = Variable::without_default(
    "KEYGATE_OIDC_CLIENT_ID",
    "unset",
    "keygate's client at that provider (redirect URI {KEYGATE_ISSUER}/sign-in/oidc/callback)",
);
pub const OIDC_CLIENT_SECRET: Variable = Variable::without_default(
    "KEYGATE_OIDC_CLIENT_SECRET",
    "unset",
    "that client's secret; required with KEYGATE_OIDC_ISSUER",
);
pub const OIDC_NAME: Variable = Variable::with_default(
    "KEYGATE_OIDC_NAME",
    "single sign-on",
    "the button's words: Sign in with NAME",
);
pub const OIDC_ALLOWED_DOMAINS: Variable = Variable::without_default(
    "KEYGATE_OIDC_ALLOWED_DOMAINS",
    "unset (any)",
    "email domains whose people may sign in through the provider",
);
pub const OIDC_DEFAULT_ROLE: Variable = Variable::without_default(
    "KEYGATE_OIDC_DEFAULT_ROLE",
    "unset",
    "unset: only people keygate knows may sign in through the provider; set: others from an allowed domain are added with this role",
);
pub const PASSWORD_SIGN_IN: Variable = Variable::with_default(
    "KEYGATE_PASSWORD_SIGN_IN",
    "on",
    "off: console sign-in only through the provider or a passkey; passwords and reset links are refused, and an invitation's link leads to adding a passkey (the CLI still works)",
);
pub const REQUIRE_MFA: Variable = Variable::with_default(
    "KEYGATE_REQUIRE_MFA",
    "off",
    "admins or everyone: those people must enrol a second factor at their next password sign-in and can do nothing else until they have",
);
/// Read by the log set-up in `main`, not by `Config`.
pub const RUST_LOG: Variable = Variable::with_default(
    "RUST_LOG",
    DEFAULT_LOG_FILTER,
    "log filter; secrets never appear in logs",
);
/// The log filter without `RUST_LOG`.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Every variable, in the order `serve --help` and the README list them.
pub const VARIABLES: &[Variable] = &[
    DATABASE_URL,
    LISTEN,
    ISSUER,
    SECRET_KEY,
    TOKEN_TTL,
    SIGNING_ALG,
    KEY_MAX_LIFETIME,
    SMTP_URL,
    MAIL_DIR,
    MAIL_FROM,
    EXPIRY_WARNING,
    MAX_KEYS_PER_USER,
    SESSION_IDLE,
    SESSION_MAX,
    INVITE_TTL,
    TRUSTED_PROXIES,
    METRICS_ALLOW_FROM,
    GITHUB_SCANNING_KEYS,
    OIDC_ISSUER,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    OIDC_NAME,
    OIDC_ALLOWED_DOMAINS,
    OIDC_DEFAULT_ROLE,
    PASSWORD_SIGN_IN,
    REQUIRE_MFA,
    RUST_LOG,
];

/// The `serve --help` epilogue: every variable, one line each, its default
/// in brackets as clap shows an option's.
pub fn help() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut text = String::from("Environment (a bad value stops start-up with one line):\n");
    for variable in VARIABLES {
        text.push_str(&format!(
            "  {:<width$}  {} [default: {}]\n",
            variable.name,
            variable.help,
            variable.shown_default()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = include_str!("../../../README.md");

    /// The rows of the README's table under `## Configuration`, code marks
    /// taken out: `[name, default, meaning]`.
    fn readme_rows() -> Vec<[String; 3]> {
        let section = README
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_default();
        section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split(" | ")
                    .map(|cell| cell.trim().replace('`', ""))
                    .collect();
                assert_eq!(cells.len(), 3, "{line}");
                [cells[0].clone(), cells[1].clone(), cells[2].clone()]
            })
            .collect()
    }

    #[test]
    fn the_readme_table_is_this_table() {
        let rows = readme_rows();
        let expected: Vec<[String; 3]> = VARIABLES
            .iter()
            .map(|v| [v.name, v.shown_default(), v.help].map(ToOwned::to_owned))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn the_readme_is_short() {
        let words = README.split_whitespace().count();
        assert!(words <= 1200, "README.md has {words} words, at most 1200");
    }

    #[test]
    fn help_lists_every_variable_once_with_its_default() {
        let help = help();
        for variable in VARIABLES {
            let lines: Vec<&str> = help
                .lines()
                .filter(|l| l.trim_start().starts_with(variable.name))
                .collect();
            assert_eq!(lines.len(), 1, "{} in {help}", variable.name);
            let default = format!("[default: {}]", variable.shown_default());
            assert!(lines[0].ends_with(&default), "{}", lines[0]);
        }
    }
}
