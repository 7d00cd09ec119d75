//! The `keygate` command line: one file per subcommand group.

mod apis;
mod audit;
mod federations;
mod keys;
mod mail;
mod roles;
mod signing_keys;
mod teams;
mod users;
mod webhooks;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::Config;
use crate::app::{self, StartupError};
use crate::db::{DatabaseUrl, DbConnection};
use crate::http::error::AppError;

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "API keys in, short-lived JWT access tokens out",
    after_help = "With no command, keygate serves. `keygate serve --help` lists the \
                  environment variables every command reads."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates first). The default command.
    #[command(after_help = app::variables::help())]
    Serve,
    /// Create the database, or apply pending migrations, and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage roles: named sets of scopes their members may give their keys.
    #[command(subcommand)]
    Roles(roles::RolesCommand),
    /// Register resource servers (APIs) and the scopes they understand.
    #[command(subcommand)]
    Apis(apis::ApisCommand),
    /// Create, list, rotate, revoke, transfer, approve and deny API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage teams: keys that belong to a team keep working whoever leaves.
    #[command(subcommand)]
    Teams(teams::TeamsCommand),
    /// List and rotate the keys that sign access tokens.
    #[command(name = "signing-keys", subcommand)]
    SigningKeys(signing_keys::SigningKeysCommand),
    /// Check the email set-up.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Export the audit log (NDJSON or CSV), oldest first.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Register, list, remove and test the endpoints keygate sends signed events to.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Trust workloads of an external issuer (GitHub Actions, GitLab CI,
    /// Kubernetes) to exchange their tokens for a federated key's.
    #[command(subcommand)]
    Federations(federations::FederationsCommand),
}

/// A failed command: one line on stderr and a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    App(#[from] AppError),
    #[error("{0}")]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Usage(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a subcommand needs: the configuration and a migrated database. One
/// connection, not a pool: a pool's threads could still be logging in to
/// PostgreSQL when the command exits, and libpq crashes under exit handlers.
pub struct Context {
    pub config: Config,
    conn: DbConnection,
}

impl Context {
    /// Opens an existing database: only `serve` and `migrate` create one, so
    /// that a mistyped SQLite path is reported, not silently a new database.
    pub fn open(config: Config) -> Result<Self, CliError> {
        require_existing_database(&config.database_url)?;
        let (conn, _) = app::open_connection(&config)?;
        Ok(Self { config, conn })
    }

    /// The issuer the server announces: `KEYGATE_ISSUER`, else http:// and
    /// the listen address, as `serve` derives it.
    pub fn issuer(&self) -> String {
        self.config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.config.listen))
    }

    pub fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Runs every subcommand except `serve`.
pub fn run(command: Command, config: Config) -> Result<(), CliError> {
    if let Command::Migrate = command {
        // Opening migrates (and creates a SQLite file); nothing else to do.
        let (_, applied) = app::open_connection(&config)?;
        println!("{}", migrated(applied));
        return Ok(());
    }
    if let Command::Keys(keys::KeysCommand::Scan {
        paths,
        revoke: false,
        json,
    }) = &command
    {
        // Finding secrets in files needs no database, only revoking does.
        return keys::scan_only(paths, *json);
    }
    if let Command::Mail(c) = command {
        // Needs no database: only the transport.
        return mail::run(c, &config);
    }
    let mut ctx = Context::open(config)?;
    match command {
        Command::Users(c) => users::run(c, &mut ctx),
        Command::Roles(c) => roles::run(c, &mut ctx),
        Command::Apis(c) => apis::run(c, &mut ctx),
        Command::Keys(c) => keys::run(c, &mut ctx),
        Command::Teams(c) => teams::run(c, &mut ctx),
        Command::SigningKeys(c) => signing_keys::run(c, &mut ctx),
        Command::Audit(c) => audit::run(c, &mut ctx),
        Command::Webhooks(c) => webhooks::run(c, &mut ctx),
        Command::Federations(c) => federations::run(c, &mut ctx),
        Command::Serve | Command::Migrate | Command::Mail(_) => Ok(()),
    }
}

/// What `keygate migrate` says once done: how many migrations it applied.
fn migrated(applied: usize) -> String {
    match applied {
        0 => "database is up to date".to_owned(),
        1 => "applied 1 migration".to_owned(),
        n => format!("applied {n} migrations"),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Splits a `--scopes "a b"` argument into a validated set; a comma is
/// refused (`"read,write"` is a typo for `"read write"`, not one scope).
fn parse_scopes(text: &str) -> Result<crate::scope::ScopeSet, CliError> {
    crate::scope::ScopeSet::parse(text).map_err(|e| CliError::Usage(format!("--scopes: {e}")))
}

/// A SQLite file that is not there is a typo or a wrong directory, unless
/// the command is one that creates the database.
fn require_existing_database(url: &DatabaseUrl) -> Result<(), CliError> {
    let DatabaseUrl::Sqlite(path) = url else {
        return Ok(());
    };
    if path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "no database at {} (KEYGATE_DATABASE_URL={url:?}): check the path, \
         or create it with `keygate migrate`",
        path.display()
    )))
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn migrate_counts_what_it_applied() {
        assert_eq!(migrated(0), "database is up to date");
        assert_eq!(migrated(1), "applied 1 migration");
        assert_eq!(migrated(5), "applied 5 migrations");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("keygate").chain(args.iter().copied()))
    }

    /// Every flag and positional of every subcommand says what it is for.
    #[test]
    fn every_argument_has_a_help_line() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "keygate", &mut missing);
        assert!(missing.is_empty(), "without a help line: {missing:?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn scopes_is_the_spelling_everywhere_and_scope_its_alias() {
        let lists = [
            vec!["roles", "set", "r"],
            vec!["apis", "add", "https://a.example", "--name", "A"],
            vec!["keys", "create", "--owner", "a@x", "--name", "k"],
        ];
        for base in lists {
            for flag in ["--scopes", "--scope"] {
                let mut args = base.clone();
                args.extend([flag, "read write"]);
                let cli = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                let scopes = match cli.command {
                    Some(Command::Roles(roles::RolesCommand::Set { scopes, .. }))
                    | Some(Command::Apis(apis::ApisCommand::Add { scopes, .. }))
                    | Some(Command::Keys(keys::KeysCommand::Create { scopes, .. })) => scopes,
                    other => panic!("{args:?} parsed as {other:?}"),
                };
                assert_eq!(scopes, "read write");
            }
        }
    }

    #[test]
    fn a_misspelt_flag_names_the_right_one() {
        let err = parse(&[
            "keys",
            "create",
            "--owner",
            "a",
            "--name",
            "k",
            "--scopess",
            "r",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a similar argument exists: '--scopes'"),
            "{err}"
        );
        assert!(err.contains("Usage: keygate keys create"), "{err}");
    }

    #[test]
    fn a_missing_argument_is_named() {
        let err = parse(&["keys", "create", "--name", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--owner <OWNER>"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_group_without_its_subcommand_shows_its_help() {
        for group in [
            "users",
            "roles",
            "apis",
            "keys",
            "teams",
            "signing-keys",
            "mail",
            "webhooks",
        ] {
            let err = parse(&[group]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
                "{group}"
            );
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("Commands:"), "{group}: {err}");
        }
    }

    #[test]
    fn users_enable_exists_beside_disable() {
        for verb in ["enable", "disable"] {
            assert!(parse(&["users", verb, "a@example.com"]).is_ok(), "{verb}");
        }
    }

    #[test]
    fn a_comma_in_a_scope_list_is_refused() {
        let err = parse_scopes("read,write").unwrap_err().to_string();
        assert!(err.starts_with("--scopes: "), "{err}");
        assert!(err.contains("contains a comma"), "{err}");
        assert_eq!(err.lines().count(), 1);
        assert_eq!(
            parse_scopes("read write").unwrap().to_string(),
            "read write"
        );
    }

    #[test]
    fn serve_help_lists_every_variable() {
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for name in app::variables::VARIABLES.iter().map(|v| v.name) {
            let lines = help.lines().filter(|l| l.trim_start().starts_with(name));
            assert_eq!(lines.count(), 1, "{name} in {help}");
        }
        assert!(help.contains("KEYGATE_ISSUER"));
        assert!(help.contains("KEYGATE_DATABASE_URL"));
    }

    #[test]
    fn a_missing_sqlite_file_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.db");
        let url = DatabaseUrl::Sqlite(path.clone());
        let err = require_existing_database(&url).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("keygate migrate"), "{err}");
        assert_eq!(err.lines().count(), 1);
        std::fs::write(&path, b"").unwrap();
        assert!(require_existing_database(&url).is_ok());
        let pg = DatabaseUrl::parse("postgres://u@localhost/db").unwrap();
        assert!(require_existing_database(&pg).is_ok());
    }
}
