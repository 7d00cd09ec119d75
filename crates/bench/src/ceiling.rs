//! The ceiling: the least a client-credentials server must do per token,
//! as a bare actix-web app run in its own process (`keygate-bench ceiling`)
//! so that it is measured exactly like keygate. Clients live in a HashMap
//! (SHA-256 of the secret, compared in constant time); tokens are ES256
//! RFC 9068 JWTs signed by jsonwebtoken with a key parsed once at start.
//! It also answers the JWKS, introspection (signature and claims check) and
//! `/readyz`, so those scenarios have a frame too.
//!
//! With `--postgres URL` it is the ceiling of a server that must ask its
//! database once per token, as keygate must on PostgreSQL (a change
//! committed anywhere bites on the next request): each token request first
//! runs a prepared `SELECT 1` on its worker's own `tokio-postgres`
//! connection, the cheapest round trip there is.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, anyhow};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// Lifetime of the ceiling's tokens, as keygate's default.
const TOKEN_TTL_SECONDS: u64 = 900;
const KID: &str = "ceiling";

#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    /// Address to bind, e.g. 127.0.0.1:18081.
    #[arg(long)]
    pub listen: SocketAddr,
    /// File of clients, one `CLIENT_ID SECRET` a line.
    #[arg(long)]
    pub clients: PathBuf,
    /// Audience of the tokens (the key's only API).
    #[arg(long)]
    pub audience: String,
    /// Scope of the tokens.
    #[arg(long, default_value = "read")]
    pub scope: String,
    /// Make one round trip to this PostgreSQL per token (a prepared
    /// `SELECT 1`, without TLS, on each worker's own connection).
    #[arg(long)]
    pub postgres: Option<String>,
}

struct State {
    clients: HashMap<String, [u8; 32]>,
    issuer: String,
    audience: String,
    scope: String,
    signing: EncodingKey,
    verifying: DecodingKey,
    validation: Validation,
    jwks: String,
    postgres: Option<tokio_postgres::Config>,
}

/// A worker's own connection for the per-token round trip, made at its
/// first token request.
#[derive(Default)]
struct RoundTrip {
    conn: tokio::sync::OnceCell<(tokio_postgres::Client, tokio_postgres::Statement)>,
}

impl RoundTrip {
    async fn select_one(&self, config: &tokio_postgres::Config) -> Result<()> {
        let (client, statement) = self
            .conn
            .get_or_try_init(|| async {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                actix_web::rt::spawn(connection);
                let statement = client.prepare("SELECT 1").await?;
                anyhow::Ok((client, statement))
            })
            .await?;
        client.query_one(statement, &[]).await?;
        Ok(())
    }
}

pub fn serve(args: CeilingArgs) -> Result<()> {
    let state = web::Data::new(State::new(&args)?);
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::Data::new(RoundTrip::default()))
                .route("/oauth/token", web::post().to(token))
                .route("/oauth/introspect", web::post().to(introspect))
                .route("/.well-known/jwks.json", web::get().to(jwks))
                .route("/readyz", web::get().to(HttpResponse::Ok))
        })
        .workers(workers)
        .bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?
        .run()
        .await
        .context("serving")
    })
}

impl State {
    fn new(args: &CeilingArgs) -> Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| anyhow!("generating an ES256 key failed"))?;
        let signing = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&signing, Algorithm::ES256)?;
        jwk.common.key_id = Some(KID.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        let verifying = DecodingKey::from_jwk(&jwk)?;
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] })?;
        let issuer = format!("http://{}", args.listen);
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&args.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(Self {
            clients: read_clients(&args.clients)?,
            issuer,
            audience: args.audience.clone(),
            scope: args.scope.clone(),
            signing,
            verifying,
            validation,
            jwks,
            postgres: args
                .postgres
                .as_deref()
                .map(str::parse)
                .transpose()
                .context("reading --postgres")?,
        })
    }

    /// The client ID of valid Basic credentials.
    fn authenticate(&self, req: &HttpRequest) -> Option<String> {
        let (id, secret) = basic_credentials(req)?;
        let expected = self.clients.get(&id)?;
        bool::from(sha256(&secret).ct_eq(expected)).then_some(id)
    }
}

/// `CLIENT_ID SECRET` lines; the secrets are kept only as SHA-256.
pub fn read_clients(path: &Path) -> Result<HashMap<String, [u8; 32]>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_clients(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_clients(text: &str) -> Result<HashMap<String, [u8; 32]>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(
            |(n, line)| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [id, secret] => Ok((id.to_owned(), sha256(secret))),
                _ => Err(anyhow!("line {}: expected `CLIENT_ID SECRET`", n + 1)),
            },
        )
        .collect()
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
    out
}

/// RFC 6749 §2.3.1: base64 of form-urlencoded `id:secret`.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn oauth_json(status: actix_web::http::StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

fn invalid_client() -> HttpResponse {
    let mut response = oauth_json(
        actix_web::http::StatusCode::UNAUTHORIZED,
        &json!({"error": "invalid_client"}),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ceiling\""),
    );
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    round_trip: web::Data<RoundTrip>,
) -> HttpResponse {
    if let Some(config) = &state.postgres
        && round_trip.select_one(config).await.is_err()
    {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let params = form(&body);
    if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_json(
            actix_web::http::StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type"}),
        );
    }
    let Some(client_id) = state.authenticate(&req) else {
        return invalid_client();
    };
    let iat = unix_now();
    let claims = json!({
        "iss": state.issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": state.audience,
        "scope": state.scope,
        "iat": iat,
        "exp": iat + TOKEN_TTL_SECONDS,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(KID.to_owned());
    match jsonwebtoken::encode(&header, &claims, &state.signing) {
        Ok(access_token) => oauth_json(
            actix_web::http::StatusCode::OK,
            &json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL_SECONDS,
                "scope": state.scope,
            }),
        ),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn introspect(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    if state.authenticate(&req).is_none() {
        return invalid_client();
    }
    let params = form(&body);
    let token = params.get("token").map_or("", String::as_str);
    let answer = match jsonwebtoken::decode::<Value>(token, &state.verifying, &state.validation) {
        Ok(data) => {
            let mut claims = data.claims;
            if let Some(map) = claims.as_object_mut() {
                map.insert("active".into(), Value::Bool(true));
                map.insert("token_type".into(), "Bearer".into());
            }
            claims
        }
        Err(_) => json!({"active": false}),
    };
    oauth_json(actix_web::http::StatusCode::OK, &answer)
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(state.jwks.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_file_keeps_only_digests_and_refuses_bad_lines() {
        let clients = parse_clients("kgc_a kgs_1\n\nkgc_b kgs_2\n").unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients["kgc_a"], sha256("kgs_1"));
        let err = parse_clients("kgc_a\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn basic_credentials_are_percent_decoded() {
        let value = format!("Basic {}", STANDARD.encode("kgc%5Fa:s%3Ab"));
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request();
        assert_eq!(
            basic_credentials(&req),
            Some(("kgc_a".to_owned(), "s:b".to_owned()))
        );
    }
}
