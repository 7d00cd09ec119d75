use std::path::PathBuf;

use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, or_dash, parse_scopes, print_json};
use crate::duration::HumanDuration;
use crate::exposure::{self, scan};
use crate::http::error::AppError;
use crate::keys::envelope;
use crate::keys::{
    self, AllowedNetworks, Caller, Envelope, EnvelopeChange, IssuedKey, KeyError, NewKeyRequest,
};
use crate::keys::{Key, KeyFilter, KeyOwner, KeyStatus};
use crate::scope::Audience;
use crate::time::rfc3339;

/// A refusal of the keys service, said in one line.
impl From<KeyError> for CliError {
    fn from(error: KeyError) -> Self {
        Self::App(AppError::from(error))
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed this once.
    #[command(group(clap::ArgGroup::new("holder").required(true).args(["owner", "team"])))]
    Create {
        /// Email of the user who owns the key (and gets its emails).
        #[arg(long)]
        owner: Option<String>,
        /// Name of the team that owns the key, instead of --owner (its
        /// emails go to the team's notify address or its members).
        #[arg(long)]
        team: Option<String>,
        /// A name for the key, such as the client that will use it.
        #[arg(long)]
        name: String,
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Space-separated scopes, such as "read write".
        #[arg(long = "scopes", visible_alias = "scope", default_value = "")]
        scopes: String,
        /// A registered API the key's tokens may target; repeatable.
        #[arg(long)]
        audience: Vec<String>,
        /// Lifetime such as 30d (default and maximum: KEYGATE_KEY_MAX_LIFETIME).
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        envelope: EnvelopeArgs,
        /// A file (or - for stdin) with the client's public key(s): PEM,
        /// a JWK or a JWKS. The key then has no secret: its client signs
        /// client assertions (private_key_jwt) with the private key.
        #[arg(long, value_name = "FILE")]
        public_key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a key's usage envelope (where it may be used from and how many
    /// tokens it may be issued per minute) or its public keys.
    Set {
        /// The key's client ID (kgc_...).
        client_id: String,
        #[command(flatten)]
        envelope: EnvelopeArgs,
        /// A file (or - for stdin) with the public key(s) that replace a
        /// private_key_jwt key's (PEM, a JWK or a JWKS); list the old and
        /// the new key during a roll-over.
        #[arg(long, value_name = "FILE")]
        public_key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys.
    List {
        /// Only the keys of the user with this email.
        #[arg(long, conflicts_with = "team")]
        owner: Option<String>,
        /// Only the keys of the team with this name.
        #[arg(long)]
        team: Option<String>,
        /// Only the keys in this status: pending, active, expired or revoked.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a key to another person or team; its client ID and secret stay,
    /// so nothing using it breaks. Both owners are emailed.
    #[command(group(clap::ArgGroup::new("new_owner").required(true).args(["to", "to_team"])))]
    Transfer {
        /// The key's client ID (kgc_...).
        client_id: String,
        /// Email of the person who gets the key.
        #[arg(long, value_name = "EMAIL")]
        to: Option<String>,
        /// Name of the team that gets the key.
        #[arg(long, value_name = "NAME")]
        to_team: Option<String>,
        /// Why, for the audit log and both owners' emails.
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a key waiting for approval: it works from now on.
    Approve {
        /// The key's client ID (kgc_...).
        client_id: String,
    },
    /// Deny a key waiting for approval: it is revoked for good.
    Deny {
        /// The key's client ID (kgc_...).
        client_id: String,
        /// Why, for the audit log and the requester's email.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke a key for good.
    Revoke {
        /// The key's client ID (kgc_...).
        client_id: String,
        /// Why, for the audit log and the owner's email.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Issue a new secret for a key (the client ID stays).
    Rotate {
        /// The key's client ID (kgc_...).
        client_id: String,
        /// How long the old secret keeps working (default: not at all); at most
        /// 30 days and never past the key's expiry.
        #[arg(long)]
        grace: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Find keygate secrets in files (a repository, a log directory) and,
    /// with --revoke, revoke the live keys they belong to.
    Scan {
        /// Files and directories to scan (recursively; .git, binary files
        /// and files over 8 MiB are skipped).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Revoke every live key whose secret was found (reason
        /// "exposed: <file>:<line>"), and email its owner.
        #[arg(long)]
        revoke: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A key's usage envelope on the command line: at creation, left out means
/// anywhere and no limit; in `keys set`, left out means unchanged.
#[derive(Debug, clap::Args)]
pub struct EnvelopeArgs {
    /// Networks the key may be used from, such as "10.0.0.0/8,192.0.2.7";
    /// "any" for anywhere (the default at creation).
    #[arg(long, value_name = "CIDR,...")]
    allow_from: Option<String>,
    /// Most tokens the key may be issued per minute; "none" for no limit
    /// (the default at creation).
    #[arg(long, value_name = "N")]
    max_tokens_per_minute: Option<String>,
}

impl EnvelopeArgs {
    /// What the flags given change; each left out is `None`.
    fn change(&self) -> Result<EnvelopeChange, CliError> {
        Ok(EnvelopeChange {
            allowed_networks: self
                .allow_from
                .as_deref()
                .map(AllowedNetworks::parse)
                .transpose()?,
            max_tokens_per_minute: self
                .max_tokens_per_minute
                .as_deref()
                .map(envelope::parse_tokens_per_minute)
                .transpose()?,
        })
    }
}

/// The public keys in FILE (`-`: stdin), checked.
fn read_public_keys(file: &str) -> Result<crate::keys::public_keys::PublicKeys, CliError> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("--public-key {file}: {e}")))?
    };
    crate::keys::public_keys::parse(&text)
        .map_err(|e| CliError::Usage(format!("--public-key {file}: {e}")))
}

/// `--owner EMAIL` or `--team NAME` (clap lets at most one through).
fn holder(person: Option<&str>, team: Option<&str>) -> Option<KeyOwner> {
    match (person, team) {
        (Some(email), _) => Some(KeyOwner::person(email)),
        (None, Some(name)) => Some(KeyOwner::team(name)),
        (None, None) => None,
    }
}

fn parse_status(text: &str) -> Result<KeyStatus, CliError> {
    KeyStatus::parse(text).ok_or_else(|| {
        CliError::Usage(format!(
            "--status {text:?}: must be pending, active, expired or revoked"
        ))
    })
}

/// One key as `keys list` and `users disable` show it: who owns it (a
/// person, or `team NAME`) and who created it.
pub(super) fn key_line(k: &Key) -> String {
    format!(
        "{}\t{}\t{}\t{}\tcreated by {}\texpires {}\tlast used {} from {}",
        k.client_id,
        k.name,
        k.holder(),
        k.status.as_str(),
        k.created_by,
        or_dash(k.expires_at.map(rfc3339).as_deref()),
        or_dash(k.last_used_at.map(rfc3339).as_deref()),
        or_dash(k.last_used_from.as_deref())
    )
}

fn parse_duration(flag: &str, text: &str) -> Result<HumanDuration, CliError> {
    text.parse()
        .map_err(|e| CliError::Usage(format!("{flag} {text:?}: {e}")))
}

/// The keys service as the command line uses it.
pub(super) fn service(ctx: &Context) -> keys::Service {
    keys::Service::new(ctx.issuer(), limits(ctx))
}

fn limits(ctx: &Context) -> keys::KeyLimits {
    keys::KeyLimits {
        max_lifetime: ctx.config.key_max_lifetime,
        expiry_warning: ctx.config.expiry_warning,
        max_keys_per_user: ctx.config.max_keys_per_user,
    }
}

pub fn run(command: KeysCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    let service = service(ctx);
    match command {
        KeysCommand::Create {
            owner,
            team,
            name,
            description,
            scopes,
            audience,
            expires_in,
            envelope,
            public_key,
            json,
        } => {
            let credential = match public_key.as_deref() {
                None => crate::keys::NewCredential::Secret,
                Some(file) => crate::keys::NewCredential::PublicKeys(read_public_keys(file)?.jwks),
            };
            let given = envelope.change()?;
            let envelope = Envelope {
                allowed_networks: given.allowed_networks.unwrap_or_default(),
                max_tokens_per_minute: given.max_tokens_per_minute.flatten(),
            };
            let request = NewKeyRequest {
                owner: holder(owner.as_deref(), team.as_deref())
                    .ok_or_else(|| CliError::Usage("give --owner EMAIL or --team NAME".into()))?,
                name: &name,
                description: &description,
                scopes: parse_scopes(&scopes)?,
                audiences: audience
                    .iter()
                    .map(|a| Audience::parse(a))
                    .collect::<Result<_, _>>()
                    .map_err(CliError::Usage)?,
                expires_in: expires_in
                    .as_deref()
                    .map(|d| parse_duration("--expires-in", d))
                    .transpose()?,
                envelope,
                credential,
            };
            let tagger = crate::app::master_key(&ctx.config)?.token_hasher();
            let issued = service.create(ctx.conn(), &Caller::CommandLine, request, &tagger, now)?;
            show_issued(&issued, json, "created")?;
        }
        KeysCommand::Set {
            client_id,
            envelope,
            public_key,
            json,
        } => {
            let change = envelope.change()?;
            let public_keys = public_key.as_deref().map(read_public_keys).transpose()?;
            if change.is_empty() && public_keys.is_none() {
                return Err(CliError::Usage(
                    "give --allow-from, --max-tokens-per-minute, --public-key or several".into(),
                ));
            }
            let mut key = None;
            if let Some(keys) = &public_keys {
                key = Some(service.set_public_keys(
                    ctx.conn(),
                    &Caller::CommandLine,
                    &client_id,
                    keys,
                    now,
                )?);
            }
            if !change.is_empty() {
                key = Some(service.set_envelope(
                    ctx.conn(),
                    &Caller::CommandLine,
                    &client_id,
                    &change,
                    now,
                )?);
            }
            let Some(key) = key else {
                return Err(CliError::Usage("nothing to change".into()));
            };
            if json {
                print_json(&key)?;
            } else {
                println!("changed key {} ({})", key.client_id, key.name);
                show_envelope(&key.allowed_networks, key.max_tokens_per_minute);
                for thumbprint in &key.public_key_thumbprints {
                    println!("  public key:    {thumbprint}");
                }
            }
        }
        KeysCommand::List {
            owner,
            team,
            status,
            json,
        } => {
            let filter = KeyFilter {
                owner: holder(owner.as_deref(), team.as_deref()),
                status: status.as_deref().map(parse_status).transpose()?,
            };
            let list = service.list(ctx.conn(), &Caller::CommandLine, &filter, now)?;
            if json {
                print_json(&list)?;
            } else {
                for k in &list {
                    println!("{}", key_line(k));
                }
            }
        }
        KeysCommand::Transfer {
            client_id,
            to,
            to_team,
            reason,
            json,
        } => {
            let to = holder(to.as_deref(), to_team.as_deref())
                .ok_or_else(|| CliError::Usage("give --to EMAIL or --to-team NAME".into()))?;
            let key = service.transfer(
                ctx.conn(),
                &Caller::CommandLine,
                &client_id,
                &to,
                reason.as_deref(),
                now,
            )?;
            if json {
                print_json(&key)?;
            } else {
                println!(
                    "transferred key {} ({}, created by {}) to {}; its client ID and secret \
                     are unchanged",
                    key.client_id,
                    key.name,
                    key.created_by,
                    key.holder()
                );
            }
        }
        KeysCommand::Approve { client_id } => {
            let key = service.approve(ctx.conn(), &Caller::CommandLine, &client_id, now)?;
            println!(
                "approved key {} ({}) of {}, requested by {}; it works from now on",
                key.client_id,
                key.name,
                key.holder(),
                key.created_by
            );
        }
        KeysCommand::Deny { client_id, reason } => {
            let key = service.deny(
                ctx.conn(),
                &Caller::CommandLine,
                &client_id,
                reason.as_deref(),
                now,
            )?;
            println!(
                "denied key {} ({}) of {}, requested by {}; it is revoked",
                key.client_id,
                key.name,
                key.holder(),
                key.created_by
            );
        }
        KeysCommand::Revoke { client_id, reason } => {
            let key = service.revoke(
                ctx.conn(),
                &Caller::CommandLine,
                &client_id,
                reason.as_deref(),
                now,
            )?;
            println!(
                "revoked key {} ({}); this cannot be undone",
                key.client_id, key.name
            );
        }
        KeysCommand::Rotate {
            client_id,
            grace,
            json,
        } => {
            let grace = grace
                .as_deref()
                .map(|g| {
                    HumanDuration::parse_or_zero(g)
                        .map_err(|e| CliError::Usage(format!("--grace {g:?}: {e}")))
                })
                .transpose()?
                .flatten();
            let tagger = crate::app::master_key(&ctx.config)?.token_hasher();
            let issued = service.rotate(
                ctx.conn(),
                &Caller::CommandLine,
                &client_id,
                grace,
                &tagger,
                now,
            )?;
            show_issued(&issued, json, "rotated")?;
        }
        KeysCommand::Scan {
            paths,
            revoke,
            json,
        } => {
            let findings = scan::scan_paths(&paths)?;
            let revoked = if revoke {
                revoke_found(ctx, &findings)?
            } else {
                vec![None; findings.len()]
            };
            show_findings(&findings, &revoked, revoke, json)?;
        }
    }
    Ok(())
}

/// `keys scan` without `--revoke`: needs no database.
pub fn scan_only(paths: &[PathBuf], json: bool) -> Result<(), CliError> {
    let findings = scan::scan_paths(paths)?;
    show_findings(&findings, &vec![None; findings.len()], false, json)
}

/// For each finding, the client ID of the key it revoked: through the same
/// path as `POST /oauth/exposed` (`crate::exposure`), so a secret found
/// twice revokes once.
fn revoke_found(
    ctx: &mut Context,
    findings: &[scan::Finding],
) -> Result<Vec<Option<String>>, CliError> {
    let tagger = crate::app::master_key(&ctx.config)?.token_hasher();
    let service = service(ctx);
    let now = Utc::now();
    let mut revoked = Vec::with_capacity(findings.len());
    for finding in findings {
        if !finding.checksum_valid {
            revoked.push(None);
            continue;
        }
        let source = format!("{}:{}", finding.path, finding.line);
        let source = exposure::parse_source(Some(&source))
            .unwrap_or_else(|_| exposure::DEFAULT_SOURCE.to_owned());
        let key = exposure::revoke_if_live(
            ctx.conn(),
            (&service, &Caller::CommandLine),
            &tagger,
            &finding.secret,
            &source,
            now,
        )?;
        revoked.push(key.map(|k| k.client_id.into_string()));
    }
    Ok(revoked)
}

#[derive(serde::Serialize)]
struct FindingJson<'a> {
    #[serde(flatten)]
    finding: &'a scan::Finding,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_client_id: Option<Option<&'a str>>,
}

fn show_findings(
    findings: &[scan::Finding],
    revoked: &[Option<String>],
    revoking: bool,
    json: bool,
) -> Result<(), CliError> {
    if json {
        let shown: Vec<_> = findings
            .iter()
            .zip(revoked)
            .map(|(finding, key)| FindingJson {
                finding,
                revoked_client_id: revoking.then_some(key.as_deref()),
            })
            .collect();
        return print_json(&shown);
    }
    for (f, key) in findings.iter().zip(revoked) {
        let validity = if f.checksum_valid {
            "valid checksum"
        } else {
            "invalid checksum"
        };
        match key {
            Some(client_id) => println!(
                "{}:{}: {} ({validity}): revoked key {client_id}",
                f.path, f.line, f.masked
            ),
            None => println!("{}:{}: {} ({validity})", f.path, f.line, f.masked),
        }
    }
    let count = revoked.iter().flatten().count();
    if revoking {
        let keys = if count == 1 { "key" } else { "keys" };
        println!("{} found, {count} {keys} revoked", findings.len());
    } else {
        println!("{} found", findings.len());
    }
    Ok(())
}

fn show_envelope(networks: &AllowedNetworks, limit: Option<u32>) {
    let networks = if networks.is_empty() {
        "any".to_owned()
    } else {
        networks.to_vec().join(", ")
    };
    let limit = limit.map_or_else(
        || "no limit".to_owned(),
        |n| format!("{n} tokens per minute"),
    );
    println!("  allowed from:  {networks}");
    println!("  token limit:   {limit}");
}

fn show_issued(issued: &IssuedKey, json: bool, what: &str) -> Result<(), CliError> {
    if json {
        return print_json(issued);
    }
    let k = issued;
    println!("{what} key {}", k.name);
    println!("  client_id:     {}", k.client_id);
    match &k.client_secret {
        Some(secret) => println!("  client_secret: {}", secret.expose()),
        None => println!("  client_secret: none ({})", k.auth_method.as_str()),
    }
    let owner = match (&k.owner, &k.team) {
        (_, Some(team)) => format!("team {team}"),
        (owner, None) => or_dash(owner.as_deref()).to_owned(),
    };
    println!("  owner:         {owner}");
    println!("  created_by:    {}", k.created_by);
    println!("  status:        {}", k.status.as_str());
    println!("  scopes:        {}", k.scopes);
    println!("  audiences:     {}", k.audiences.to_vec().join(" "));
    println!(
        "  expires_at:    {}",
        or_dash(k.expires_at.map(rfc3339).as_deref())
    );
    show_envelope(&k.allowed_networks, k.max_tokens_per_minute);
    for thumbprint in &k.public_key_thumbprints {
        println!("  public key:    {thumbprint}");
    }
    if let Some(until) = k.previous_secret_expires_at {
        println!(
            "  the previous secret keeps working until {}",
            rfc3339(until)
        );
    }
    println!("Store the secret now: it is shown only this once.");
    Ok(())
}
