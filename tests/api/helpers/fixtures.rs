//! People, APIs, roles, teams and keys, made by keygate's own library on
//! the test's clock, each as its CLI command would make it (`users add`,
//! `apis add`, `apis set`, `roles set`, `teams add`, `teams members add`,
//! `keys create --json`): the same actor ("command line"),
//! issuer, configuration and output, without a process per fixture.
//!
//! The one place the tests call keygate's users, resource-server and keys
//! functions: when those change, this file does, and no test.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keygate::Config;
use keygate::audit::COMMAND_LINE;
use keygate::db::DbConnection;
use keygate::keys::{self, AllowedNetworks, Envelope, KeyLimits, NewKeyRequest};
use keygate::scope::{Audience, ScopeSet};
use serde_json::Value;

use super::TestApp;
use super::database::parse_url;

/// The API of [`TestApp::standard_key`].
pub const STANDARD_API: &str = "https://api.example.com";

/// A key and its secret, with the creation output `keys create --json`
/// prints.
#[derive(Debug, Clone)]
pub struct Key {
    pub client_id: String,
    pub client_secret: String,
    pub json: Value,
}

/// What `keys create` is given: its flags, as text.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    owner: String,
    name: String,
    scopes: String,
    audiences: Vec<String>,
    expires_in: Option<String>,
    allow_from: Option<String>,
    max_tokens_per_minute: Option<String>,
    /// `--team`: the owner names a team.
    team: bool,
    /// Who asks, in the console or the API; `None`: the command line.
    requested_by: Option<String>,
    /// `--public-key`: the client's public key(s) as given (PEM, JWK or
    /// JWKS); the key then has no secret.
    public_key: Option<String>,
}

impl KeySpec {
    /// `--owner OWNER --name NAME`, nothing else.
    pub fn new(owner: &str, name: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// `--public-key`: a `private_key_jwt` key with these public keys.
    pub fn public_key(mut self, text: &str) -> Self {
        self.public_key = Some(text.to_owned());
        self
    }

    /// `standard_key`'s: alice's key `ci` holding `scopes` for the
    /// standard API.
    pub fn standard(scopes: &str) -> Self {
        Self::new("alice@example.com", "ci")
            .scopes(scopes)
            .audience(STANDARD_API)
    }

    /// `owner`'s key `name` holding `read` for the standard API.
    pub fn reader(owner: &str, name: &str) -> Self {
        Self::new(owner, name).scopes("read").audience(STANDARD_API)
    }

    /// `--scopes`
    pub fn scopes(mut self, scopes: &str) -> Self {
        scopes.clone_into(&mut self.scopes);
        self
    }

    /// `--audience`, once more.
    pub fn audience(mut self, audience: &str) -> Self {
        self.audiences.push(audience.to_owned());
        self
    }

    /// `--expires-in`
    pub fn expires_in(mut self, lifetime: &str) -> Self {
        self.expires_in = Some(lifetime.to_owned());
        self
    }

    /// `--allow-from`
    pub fn allow_from(mut self, networks: &str) -> Self {
        self.allow_from = Some(networks.to_owned());
        self
    }

    /// `--max-tokens-per-minute`
    pub fn max_tokens_per_minute(mut self, limit: &str) -> Self {
        self.max_tokens_per_minute = Some(limit.to_owned());
        self
    }

    /// `--team TEAM --name NAME` instead of `--owner`.
    pub fn for_team(team: &str, name: &str) -> Self {
        Self {
            team: true,
            ..Self::new(team, name)
        }
    }

    /// Made by this person (no admin) rather than the command line, as
    /// the console or the API would: a scope needing approval leaves it
    /// pending.
    pub fn requested_by(mut self, email: &str) -> Self {
        self.requested_by = Some(email.to_owned());
        self
    }
}

/// A well-formed secret of no key: keygate's format, its checksum right.
pub fn unused_secret() -> String {
    keys::PlainSecret::generate().expose().to_owned()
}

/// What a CLI command run now would know: the app's configuration (its
/// variables, and the issuer the test's CLI is given) and the time.
struct Context {
    config: Config,
    issuer: String,
    now: DateTime<Utc>,
}

impl Context {
    fn new(vars: &HashMap<String, String>, server_issuer: &str, now: DateTime<Utc>) -> Self {
        let mut vars = vars.clone();
        if !server_issuer.is_empty() {
            vars.entry("KEYGATE_ISSUER".into())
                .or_insert_with(|| server_issuer.to_owned());
        }
        let config = Config::from_vars(&vars).expect("valid test configuration");
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        Self {
            config,
            issuer,
            now,
        }
    }

    fn master_key(&self) -> keygate::signing::MasterKey {
        keygate::app::master_key(&self.config).expect("the master key")
    }
}

/// `keygate users add EMAIL --role ROLE [--name NAME]`: a person invited by
/// email, the invitation queued.
fn invite(conn: &mut DbConnection, ctx: &Context, email: &str, role: &str, name: &str) {
    let settings = keygate::app::account_settings(&ctx.config, &ctx.issuer, &ctx.master_key());
    let invitation = keygate::accounts::Invitation {
        email,
        role,
        name,
        actor: COMMAND_LINE,
        again: false,
    };
    keygate::accounts::invite_with(conn, &settings, &ctx.issuer, invitation, ctx.now)
        .unwrap_or_else(|e| panic!("users add {email}: {e}"));
}

/// `keygate users add EMAIL --role ROLE --password-stdin`.
fn add_person(conn: &mut DbConnection, ctx: &Context, email: &str, role: &str, password: &str) {
    keygate::accounts::check_password_policy(password, email).expect("an acceptable password");
    let password_hash = keygate::accounts::Password::new(password)
        .hash()
        .expect("hash the password");
    let input = keygate::users::NewUserInput {
        email,
        name: "",
        role,
        password_hash: Some(password_hash),
    };
    keygate::users::create_user(conn, input, COMMAND_LINE, ctx.now)
        .unwrap_or_else(|e| panic!("users add {email}: {e}"));
}

/// `keygate apis add IDENTIFIER --name NAME --scopes SCOPES`.
fn add_api(conn: &mut DbConnection, ctx: &Context, identifier: &str, name: &str, scopes: &str) {
    let audience = Audience::parse(identifier).expect("an API identifier");
    let scopes = ScopeSet::parse(scopes).expect("scopes");
    let at = (&audience, ctx.issuer.as_str());
    keygate::resource_servers::create_api(conn, at, name, &scopes, COMMAND_LINE, ctx.now)
        .unwrap_or_else(|e| panic!("apis add {identifier}: {e}"));
}

/// `keygate roles set NAME --scopes SCOPES`.
fn set_role(conn: &mut DbConnection, ctx: &Context, name: &str, scopes: &str) {
    let scopes = ScopeSet::parse(scopes).expect("scopes");
    keygate::users::set_role(conn, name, &scopes, COMMAND_LINE, ctx.now)
        .unwrap_or_else(|e| panic!("roles set {name}: {e}"));
}

/// `keygate apis set IDENTIFIER --approval-scopes SCOPES`.
fn set_approval_scopes(conn: &mut DbConnection, ctx: &Context, identifier: &str, scopes: &str) {
    let scopes = ScopeSet::parse(scopes).expect("scopes");
    keygate::resource_servers::set_approval_scopes(
        conn,
        identifier,
        &scopes,
        COMMAND_LINE,
        ctx.now,
    )
    .unwrap_or_else(|e| panic!("apis set {identifier} --approval-scopes: {e}"));
}

/// `keygate teams add NAME --role ROLE [--notify EMAIL]`, then `teams
/// members add NAME EMAIL` for each member.
fn add_team(
    conn: &mut DbConnection,
    ctx: &Context,
    (name, role, notify): (&str, &str, Option<&str>),
    members: &[String],
) {
    let new = keygate::teams::NewTeam {
        name,
        role: Some(role),
        notify,
        description: "",
    };
    keygate::teams::create_team(conn, new, COMMAND_LINE, ctx.now)
        .unwrap_or_else(|e| panic!("teams add {name}: {e}"));
    for member in members {
        keygate::teams::add_member(conn, name, member, COMMAND_LINE, ctx.now)
            .unwrap_or_else(|e| panic!("teams members add {name} {member}: {e}"));
    }
}

/// `keygate keys create --json` with `spec`'s flags.
fn create_key(conn: &mut DbConnection, ctx: &Context, spec: &KeySpec) -> Key {
    let request = NewKeyRequest {
        owner: if spec.team {
            keygate::keys::KeyOwner::team(&spec.owner)
        } else {
            keygate::keys::KeyOwner::person(&spec.owner)
        },
        name: &spec.name,
        description: "",
        scopes: ScopeSet::parse(&spec.scopes).expect("scopes"),
        audiences: spec
            .audiences
            .iter()
            .map(|a| Audience::parse(a).expect("an audience"))
            .collect(),
        expires_in: spec
            .expires_in
            .as_deref()
            .map(|d| d.parse().expect("a lifetime")),
        envelope: Envelope {
            allowed_networks: spec
                .allow_from
                .as_deref()
                .map(|n| AllowedNetworks::parse(n).expect("networks"))
                .unwrap_or_default(),
            max_tokens_per_minute: spec
                .max_tokens_per_minute
                .as_deref()
                .and_then(|n| keys::envelope::parse_tokens_per_minute(n).expect("a token limit")),
        },
        credential: match &spec.public_key {
            None => keygate::keys::NewCredential::Secret,
            Some(text) => keygate::keys::NewCredential::PublicKeys(
                keygate::keys::public_keys::parse(text)
                    .expect("public keys")
                    .jwks,
            ),
        },
    };
    let limits = KeyLimits {
        max_lifetime: ctx.config.key_max_lifetime,
        expiry_warning: ctx.config.expiry_warning,
        max_keys_per_user: ctx.config.max_keys_per_user,
    };
    let tagger = ctx.master_key().token_hasher();
    let caller = match &spec.requested_by {
        Some(email) => keys::Caller::Person(keys::Person {
            email: email.clone(),
            reach: keys::Reach::OwnKeys,
        }),
        None => keys::Caller::CommandLine,
    };
    let issued = keys::Service::new(&ctx.issuer, limits)
        .create(conn, &caller, request, &tagger, ctx.now)
        .unwrap_or_else(|e| panic!("keys create {spec:?}: {e}"));
    let json = serde_json::to_value(&issued).expect("the key as JSON");
    Key {
        client_id: issued.client_id.to_string(),
        client_secret: issued
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        json,
    }
}

/// `keygate keys list --json`.
fn list_keys(conn: &mut DbConnection, ctx: &Context) -> Value {
    let list = keys::list_api_keys(conn, None, ctx.now).expect("list the keys");
    serde_json::to_value(list).expect("keys as JSON")
}

/// Fixtures of this app, each on one connection to its database.
impl TestApp {
    /// Runs `make` on a connection to this app's database, off the async
    /// workers, with what the CLI would know now by the test's clock.
    async fn fixture<T: Send + 'static>(
        &self,
        make: impl FnOnce(&mut DbConnection, &Context) -> T + Send + 'static,
    ) -> T {
        let url = parse_url(&self.database_url);
        let ctx = Context::new(&self.vars, &self.issuer, self.clock.now());
        tokio::task::spawn_blocking(move || {
            let mut conn = keygate::db::connect_one(&url).expect("connect to the test database");
            make(&mut conn, &ctx)
        })
        .await
        .expect("the fixture ran")
    }

    /// A person without a password yet, invited by email (`users add`).
    pub async fn add_user(&self, email: &str, role: &str) {
        self.add_named_user(email, role, "").await;
    }

    /// [`add_user`](Self::add_user) with a display name.
    pub async fn add_named_user(&self, email: &str, role: &str, name: &str) {
        let (email, role, name) = (email.to_owned(), role.to_owned(), name.to_owned());
        self.fixture(move |conn, ctx| invite(conn, ctx, &email, &role, &name))
            .await;
    }

    /// A person with a password (`users add --password-stdin`).
    pub async fn add_person(&self, email: &str, role: &str, password: &str) {
        let (email, role, password) = (email.to_owned(), role.to_owned(), password.to_owned());
        self.fixture(move |conn, ctx| add_person(conn, ctx, &email, &role, &password))
            .await;
    }

    /// A resource server (`apis add`).
    pub async fn add_api(&self, identifier: &str, name: &str, scopes: &str) {
        let (identifier, name, scopes) =
            (identifier.to_owned(), name.to_owned(), scopes.to_owned());
        self.fixture(move |conn, ctx| add_api(conn, ctx, &identifier, &name, &scopes))
            .await;
    }

    /// The API `https://api.example.com` with scopes `read write`.
    pub async fn add_standard_api(&self) {
        self.add_api(STANDARD_API, "Example API", "read write")
            .await;
    }

    /// A member `owner` with a password, and the standard API.
    pub async fn add_owner_and_api(&self, owner: &str) {
        self.add_person(owner, "member", "a long enough password")
            .await;
        self.add_standard_api().await;
    }

    /// A role and what it grants (`roles set`).
    pub async fn set_role(&self, name: &str, scopes: &str) {
        let (name, scopes) = (name.to_owned(), scopes.to_owned());
        self.fixture(move |conn, ctx| set_role(conn, ctx, &name, &scopes))
            .await;
    }

    /// Marks scopes of an API as needing approval (`apis set
    /// --approval-scopes`).
    pub async fn set_approval_scopes(&self, identifier: &str, scopes: &str) {
        let (identifier, scopes) = (identifier.to_owned(), scopes.to_owned());
        self.fixture(move |conn, ctx| set_approval_scopes(conn, ctx, &identifier, &scopes))
            .await;
    }

    /// A team with this role and members (`teams add`, `teams members add`);
    /// its emails go to every enabled member.
    pub async fn add_team(&self, name: &str, role: &str, members: &[&str]) {
        self.add_team_notifying(name, role, None, members).await;
    }

    /// [`add_team`](Self::add_team) whose emails go to `notify`.
    pub async fn add_team_notifying(
        &self,
        name: &str,
        role: &str,
        notify: Option<&str>,
        members: &[&str],
    ) {
        let (name, role) = (name.to_owned(), role.to_owned());
        let notify = notify.map(str::to_owned);
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        self.fixture(move |conn, ctx| {
            add_team(conn, ctx, (&name, &role, notify.as_deref()), &members);
        })
        .await;
    }

    /// A key (`keys create --json`).
    pub async fn create_key(&self, spec: KeySpec) -> Key {
        self.fixture(move |conn, ctx| create_key(conn, ctx, &spec))
            .await
    }

    /// A user alice (invited), the API `https://api.example.com` with
    /// scopes `read write`, and a key `ci` of hers holding `scope` for it.
    pub async fn standard_key(&self, scope: &str) -> Key {
        self.standard_key_with(KeySpec::standard(scope)).await
    }

    /// [`standard_key`](Self::standard_key)'s user and API, and the key
    /// `spec` says.
    pub async fn standard_key_with(&self, spec: KeySpec) -> Key {
        self.fixture(move |conn, ctx| {
            invite(conn, ctx, "alice@example.com", "member", "");
            add_api(conn, ctx, STANDARD_API, "Example API", "read write");
            create_key(conn, ctx, &spec)
        })
        .await
    }

    /// An admin `root@example.com` and a key of theirs holding
    /// `keygate:introspect`.
    pub async fn introspector_key(&self) -> Key {
        self.fixture(|conn, ctx| {
            invite(conn, ctx, "root@example.com", "admin", "");
            let spec =
                KeySpec::new("root@example.com", "introspector").scopes("keygate:introspect");
            create_key(conn, ctx, &spec)
        })
        .await
    }

    /// Every key as `keys list --json` shows them, by the test's clock.
    pub async fn listed_keys(&self) -> Value {
        self.fixture(list_keys).await
    }

    /// The key's row as `keys list --json` shows it, by the test's clock.
    pub async fn listed_key(&self, client_id: &str) -> Value {
        let list = self.listed_keys().await;
        list.as_array()
            .expect("a list")
            .iter()
            .find(|k| k["client_id"] == client_id)
            .cloned()
            .expect("the key is listed")
    }
}
