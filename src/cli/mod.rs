//! The `keygate` command line: one file per subcommand group.

mod apis;
mod keys;
mod mail;
mod roles;
mod signing_keys;
mod users;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::Config;
use crate::app::{self, StartupError};
use crate::db::DbConnection;
use crate::error::AppError;

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "API keys in, short-lived JWT access tokens out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates first). The default command.
    Serve,
    /// Apply pending migrations and exit.
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
    /// Create, list, rotate and revoke API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// List and rotate the keys that sign access tokens.
    #[command(name = "signing-keys", subcommand)]
    SigningKeys(signing_keys::SigningKeysCommand),
    /// Check the email set-up.
    #[command(subcommand)]
    Mail(mail::MailCommand),
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
    pub fn open(config: Config) -> Result<Self, CliError> {
        let conn = app::open_connection(&config)?;
        Ok(Self { config, conn })
    }

    pub fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Runs every subcommand except `serve`.
pub fn run(command: Command, config: Config) -> Result<(), CliError> {
    if let Command::Migrate = command {
        // open_database migrates; nothing else to do.
        Context::open(config)?;
        println!("database is up to date");
        return Ok(());
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
        Command::SigningKeys(c) => signing_keys::run(c, &mut ctx),
        Command::Serve | Command::Migrate | Command::Mail(_) => Ok(()),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Splits a `--scopes "a b"` argument into a validated set.
fn parse_scopes(text: &str) -> Result<crate::scope::ScopeSet, CliError> {
    crate::scope::ScopeSet::parse(text).map_err(|e| CliError::Usage(e.to_string()))
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}
