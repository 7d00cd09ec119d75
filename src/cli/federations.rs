//! `keygate federations`: trust an external issuer's workload tokens
//! (GitHub Actions, GitLab CI, Kubernetes) for one federated key, list the
//! federations, remove one (its key is revoked).

use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Context, parse_scopes, print_json};
use crate::federation::{self, Federation, FederationError, NewFederation};
use crate::http::error::AppError;
use crate::keys::{Caller, KeyOwner};
use crate::scope::Audience;

/// A refusal of the federation feature, said in one line.
impl From<FederationError> for CliError {
    fn from(error: FederationError) -> Self {
        Self::App(AppError::from(error))
    }
}

#[derive(Debug, Subcommand)]
pub enum FederationsCommand {
    /// Trust an issuer's tokens whose subject matches PATTERN: they may be
    /// exchanged (RFC 8693) for access tokens of a new federated key.
    #[command(group(clap::ArgGroup::new("holder").required(true).args(["owner", "team"])))]
    Add {
        /// A name for the federation (letters, digits, '-', '_', '.').
        name: String,
        /// The issuer's URL, as its tokens' `iss` (https; http only on loopback).
        #[arg(long)]
        issuer: String,
        /// The subject pattern the tokens' `sub` must match; `*` matches any
        /// run of characters, e.g. "repo:acme/app:ref:refs/heads/main".
        #[arg(long = "subject", value_name = "PATTERN")]
        subject: String,
        /// What the tokens' `aud` must hold (default: keygate's issuer).
        #[arg(long)]
        audience: Option<String>,
        /// A further claim the tokens must carry with this exact value, as
        /// NAME=VALUE; repeatable.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Email of the person who owns the federated key.
        #[arg(long)]
        owner: Option<String>,
        /// Name of the team that owns the federated key, instead of --owner.
        #[arg(long)]
        team: Option<String>,
        /// Space-separated scopes of the federated key, such as "read write".
        #[arg(long = "scopes", visible_alias = "scope")]
        scopes: String,
        /// A registered API the federated key's tokens may target; repeatable.
        #[arg(long)]
        resource: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List federations.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a federation; its federated key is revoked at once.
    Remove {
        /// The federation's name (or ID).
        name: String,
    },
}

/// What `federations add --json` prints: the contract's fields first.
#[derive(Serialize)]
struct Added<'a> {
    name: &'a str,
    client_id: &'a str,
    issuer: &'a str,
    subject: &'a str,
    audience: &'a str,
    scopes: &'a [String],
    owner: Option<&'a str>,
    team: Option<&'a str>,
    resources: &'a [String],
    status: &'a str,
}

pub fn run(command: FederationsCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    let keys = super::keys::service(ctx);
    let caller = Caller::CommandLine;
    match command {
        FederationsCommand::Add {
            name,
            issuer,
            subject,
            audience,
            claims,
            owner,
            team,
            scopes,
            resource,
            json,
        } => {
            let owner = match (owner, team) {
                (Some(email), _) => KeyOwner::person(&email),
                (None, Some(team)) => KeyOwner::team(&team),
                (None, None) => {
                    return Err(CliError::Usage("give --owner EMAIL or --team NAME".into()));
                }
            };
            let new = NewFederation {
                name,
                issuer,
                subject,
                audience,
                claims: claims
                    .iter()
                    .map(|c| federation::parse_claim(c))
                    .collect::<Result<_, _>>()?,
                owner,
                scopes: parse_scopes(&scopes)?,
                resources: resource
                    .iter()
                    .map(|a| Audience::parse(a))
                    .collect::<Result<_, _>>()
                    .map_err(CliError::Usage)?,
            };
            let tagger = crate::app::master_key(&ctx.config)?.token_hasher();
            let issuer_default = ctx.issuer();
            let added = federation::add(
                ctx.conn(),
                &keys,
                &caller,
                new,
                &issuer_default,
                &tagger,
                now,
            )?;
            if json {
                print_json(&Added {
                    name: &added.name,
                    client_id: &added.client_id,
                    issuer: &added.issuer,
                    subject: &added.subject,
                    audience: &added.audience,
                    scopes: &added.scopes,
                    owner: added.owner.as_deref(),
                    team: added.team.as_deref(),
                    resources: &added.resources,
                    status: &added.status,
                })?;
            } else {
                println!("added federation {} ({})", added.name, added.status);
                println!("client_id: {}", added.client_id);
                println!("issuer:    {}", added.issuer);
                println!("subject:   {}", added.subject);
                println!("audience:  {}", added.audience);
                println!("scopes:    {}", added.scopes.join(" "));
                println!(
                    "A workload exchanges its token at the token endpoint with \
                     grant_type=urn:ietf:params:oauth:grant-type:token-exchange, this client_id \
                     and subject_token_type=urn:ietf:params:oauth:token-type:jwt; no secret."
                );
            }
        }
        FederationsCommand::List { json } => {
            let list = federation::list(ctx.conn(), &keys, &caller, now)?;
            if json {
                print_json(&list)?;
            } else {
                for f in &list {
                    println!("{}", line(f));
                }
            }
        }
        FederationsCommand::Remove { name } => {
            let removed = federation::remove(ctx.conn(), &keys, &caller, &name, now)?;
            println!(
                "removed federation {}; its key {} is revoked",
                removed.name, removed.client_id
            );
        }
    }
    Ok(())
}

fn line(f: &Federation) -> String {
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    format!(
        "{}\t{}\t{}\t{}\taud {}\t{}\t{}\tlast used by {}",
        f.name,
        f.client_id,
        f.issuer,
        f.subject,
        f.audience,
        f.owner
            .clone()
            .or_else(|| f.team.as_ref().map(|t| format!("team {t}")))
            .unwrap_or_default(),
        f.status,
        dash(f.last_used_by.as_deref()),
    )
}
