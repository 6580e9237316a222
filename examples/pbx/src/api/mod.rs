//! The REST API (`[http] listen`, 127.0.0.1:9486 by default), after Wazo's:
//! tokens from `POST /token` carried in `X-Auth-Token`, ACLs
//! `service.resource.action` on every resource, lists as `{total, items}`, JSON
//! errors `{message, error_id, details}`, and the live events on the WebSocket
//! `/events` (wazo-websocketd's protocol). The OpenAPI document at
//! `/api/api.yml` lists exactly the routes served (a test requests each).
//!
//! The API reads the configuration the PBX runs on (swapped on SIGHUP), changes
//! users' live services through [`Users`] (saved before they apply, like a
//! feature code's), and asks the shell for what only the call engine knows (the
//! calls in progress) over the control channel.
//!
//! Tokens are issued for a user's extension and SIP password (ACL
//! [`USER_ACL`]: the user's own resources and call events) or an `[[api_users]]`
//! account (its configured ACL). Failed attempts count against the source address
//! and name like SIP's: a banned pair, or a banned scanner, is answered 401 as a
//! wrong password is, so nothing tells which names exist.

mod acl;
mod directory;
mod events;
mod tokens;
mod webhooks;

use crate::config::Config;
use crate::control::{LiveCall, Query};
use crate::events::Bus;
use crate::live::Users;
use acl::Acl;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query as Params, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokens::Tokens;
use tokio::sync::{oneshot, watch};

/// The OpenAPI document.
const OPENAPI: &str = include_str!("api.yml");

/// What a token issued for a user's own credentials may do (`me` is the user).
pub(crate) const USER_ACL: &[&str] = &[
    "confd.users.me.read",
    "confd.users.me.#",
    "calld.users.me.#",
    "websocketd",
    "events.calls.me",
    "events.config.users.me.#",
    "dird.directories.lookup.*.read",
    "dird.directories.reverse.*.me.read",
];

/// Largest request body (JSON), in bytes: 413 beyond.
const MAX_BODY: usize = 64 * 1024;
/// Longest user name or password taken from a client.
const MAX_CREDENTIAL: usize = 128;
/// Longest forward destination.
const MAX_DESTINATION: usize = 40;
/// How long the shell has to answer a question.
const SHELL_DEADLINE: Duration = Duration::from_secs(2);
/// Most items a list returns at once (`limit` above it is cut to it).
const MAX_LIMIT: usize = 1000;

/// What the API is built on.
pub(crate) struct Services {
    /// The configuration in force (a new one on each reload).
    pub(crate) config: watch::Receiver<Arc<Config>>,
    /// The shell's control channel.
    pub(crate) shell: tokio::sync::mpsc::Sender<Query>,
    pub(crate) users: Users,
    pub(crate) bus: Bus,
    /// This node's name, the events' `origin_uuid`.
    pub(crate) node: String,
}

struct Api {
    services: Services,
    /// The directory service, rebuilt on reload.
    directory: std::sync::RwLock<Arc<pbxkit_directory::Directory>>,
    tokens: Mutex<Tokens>,
    bans: Mutex<crate::ban::Bans>,
    rng: ring::rand::SystemRandom,
}

type Shared = Arc<Api>;

/// Binds `listen` and serves the API there until the process ends; the address
/// bound (port 0 asks the system for one).
pub(crate) async fn serve(listen: SocketAddr, services: Services) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let (policy, directory) = {
        let config = services.config.borrow();
        let directory = directory::build(&config).map_err(std::io::Error::other)?;
        (config.security.ban_policy(), directory)
    };
    let api = Arc::new(Api {
        directory: std::sync::RwLock::new(Arc::new(directory)),
        services,
        tokens: Mutex::new(Tokens::default()),
        bans: Mutex::new(crate::ban::Bans::new(policy)),
        rng: ring::rand::SystemRandom::new(),
    });
    {
        let config = api.services.config.borrow();
        webhooks::spawn(&config.webhooks, &api.services.bus, &api.services.node);
    }
    let app = router(api.clone());
    tokio::spawn(follow_reloads(api));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        {
            tracing::error!(error = %e, "the REST API stopped");
        }
    });
    Ok(local)
}

/// At each reload: a user or API account removed from the configuration, or
/// whose password changed, loses its tokens; the directory is rebuilt (a CSV
/// source that no longer loads keeps the one before).
async fn follow_reloads(api: Shared) {
    let mut config = api.services.config.clone();
    let mut before = config.borrow_and_update().clone();
    while config.changed().await.is_ok() {
        let after = config.borrow_and_update().clone();
        let now: HashMap<&str, &str> = crate::passwords::accounts(&after).collect();
        let gone: Vec<&str> = crate::passwords::accounts(&before)
            .filter(|(name, password)| now.get(name) != Some(password))
            .map(|(name, _)| name)
            .collect();
        if let Ok(mut tokens) = api.tokens.lock() {
            for name in gone {
                tokens.revoke_all_of(name);
            }
        }
        match directory::build(&after) {
            Ok(directory) => {
                if let Ok(mut current) = api.directory.write() {
                    *current = Arc::new(directory);
                }
            }
            Err(e) => tracing::error!(error = %e, "directory not rebuilt"),
        }
        before = after;
    }
}

/// Whether the API's parts of `config` (its directory sources) set up.
pub(crate) fn check(config: &Config) -> Result<(), String> {
    directory::build(config).map(drop)
}

fn router(api: Shared) -> Router {
    Router::new()
        .route("/api/api.yml", get(openapi))
        .route("/token", post(create_token))
        .route("/token/{token}", get(check_token).delete(revoke_token))
        .route("/users", get(list_users))
        .route("/users/{user}", get(get_user))
        .route("/users/{user}/services", get(get_services))
        .route("/users/{user}/services/dnd", put(put_dnd))
        .route("/users/{user}/forwards", get(get_forwards))
        .route("/users/{user}/forwards/{forward}", put(put_forward))
        .route("/users/{user}/calls", get(list_user_calls))
        .route("/users/{user}/calls/{call}", delete(hang_up_user_call))
        .route("/calls", get(list_calls))
        .route("/calls/{call}", delete(hang_up_call))
        .route("/events", get(events::upgrade))
        .route("/directories/lookup/{profile}", get(directory::lookup))
        .route(
            "/directories/reverse/{profile}/{user}",
            get(directory::reverse),
        )
        .route(
            "/directories/input/{profile}/{vendor}",
            get(directory::phone_input),
        )
        .route(
            "/directories/lookup/{profile}/{vendor}",
            get(directory::phone_results),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// An error answer: `{message, error_id, details}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            id,
            message: message.into(),
            details: json!({}),
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, invalid or expired token",
        )
    }

    fn forbidden(required: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token does not grant {required}"),
        )
        .with_details(json!({ "required_acl": required }))
    }

    fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} not found"),
        )
        .with_details(json!({ what: { "id": id } }))
    }

    fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-data",
            format!("{field}: {message}"),
        )
        .with_details(json!({ field: { "message": message } }))
    }

    fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "message": self.message,
            "error_id": self.id,
            "details": self.details,
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"pbxkit\""),
            );
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no-route", "no such route")
}

async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "no-method",
        "method not allowed on this route",
    )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

impl Api {
    fn config(&self) -> Arc<Config> {
        self.services.config.borrow().clone()
    }

    fn directory(&self) -> Arc<pbxkit_directory::Directory> {
        match self.directory.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The token a request carries, if it is good now.
    fn token(&self, headers: &HeaderMap) -> Result<tokens::Token, ApiError> {
        let id = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        self.token_by_id(id).ok_or_else(ApiError::unauthorized)
    }

    fn token_by_id(&self, id: &str) -> Option<tokens::Token> {
        let tokens = self.tokens.lock().ok()?;
        tokens.get(id, Instant::now()).cloned()
    }

    /// A route on one user: the request's token, the configuration in force and
    /// the path's user (`me` resolved), once the token grants `acl(user)`.
    fn user_route(
        &self,
        headers: &HeaderMap,
        user: &str,
        acl: impl FnOnce(&str) -> String,
    ) -> Result<(tokens::Token, Arc<Config>, String), ApiError> {
        let token = self.token(headers)?;
        let config = self.config();
        let user = path_user(&config, &token, user)?;
        require(&token, &acl(&user))?;
        Ok((token, config, user))
    }

    /// The request's token if it grants `required`.
    fn authorize(&self, headers: &HeaderMap, required: &str) -> Result<tokens::Token, ApiError> {
        let token = self.token(headers)?;
        require(&token, required)?;
        Ok(token)
    }

    /// Asks the shell; `None` when it does not answer in time.
    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || ApiError::unavailable("the PBX did not answer in time");
        self.services
            .shell
            .send_timeout(query(tx), SHELL_DEADLINE)
            .await
            .map_err(|_| unavailable())?;
        match tokio::time::timeout(SHELL_DEADLINE, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(unavailable()),
        }
    }
}

fn require(token: &tokens::Token, required: &str) -> Result<(), ApiError> {
    if token.acl.allows(required) {
        Ok(())
    } else {
        Err(ApiError::forbidden(required))
    }
}

/// A path's user: `me` is the token's own; names that could not be an ACL word
/// (dots, wildcards) are nobody.
fn path_user(config: &Config, token: &tokens::Token, user: &str) -> Result<String, ApiError> {
    let user = match (user, &token.user) {
        ("me", Some(me)) => me.as_str(),
        (user, _) => user,
    };
    if user.is_empty() || user.contains(['.', '*', '#']) || config.user(user).is_none() {
        return Err(ApiError::not_found("user", user));
    }
    Ok(user.to_owned())
}

/// A JSON body, or a 400 that names what is wrong.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        // serde names the field in its message ("missing field `enabled`",
        // "unknown field `x`"); the details carry the position too.
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .unwrap_or("body")
            .to_owned();
        ApiError::invalid(&field, message)
    })
}

// ---- tokens -------------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// Seconds the token lasts.
    #[serde(default)]
    expiration: Option<u64>,
    /// wazo-auth's backend name: accepted and ignored (the name says which).
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for wazo-auth's clients")]
    backend: Option<String>,
}

/// `Authorization: Basic` credentials.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4 * MAX_CREDENTIAL {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// Compares passwords in time independent of where they differ.
fn same_password(given: &str, expected: &str) -> bool {
    use ring::digest::{SHA256, digest};
    digest(&SHA256, given.as_bytes()).as_ref() == digest(&SHA256, expected.as_bytes()).as_ref()
}

async fn create_token(
    State(api): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Answer {
    let request: TokenRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        body(&bytes)?
    };
    let config = api.config();
    let expiration = request.expiration.unwrap_or(config.http.token_expiration);
    if expiration == 0 || expiration > config.http.max_token_expiration {
        return Err(ApiError::invalid(
            "expiration",
            format!(
                "must be between 1 and {} seconds",
                config.http.max_token_expiration
            ),
        ));
    }
    let Some((name, password)) = basic_credentials(&headers) else {
        return Err(ApiError::unauthorized());
    };
    let now = Instant::now();
    let ip = peer.ip();
    let name: String = name.chars().take(MAX_CREDENTIAL).collect();
    {
        let bans = api.bans.lock().map_err(|_| ApiError::unauthorized())?;
        if bans.is_banned(ip, now) || bans.is_pair_banned(ip, &name, now) {
            return Err(ApiError::unauthorized());
        }
    }
    // A user's extension and SIP password, or an API account.
    let account = if let Some(user) = config.user(&name) {
        same_password(&password, &user.password).then(|| (Acl::new(USER_ACL, Some(&name)), true))
    } else if let Some(account) = config.api_users.iter().find(|a| a.name == name) {
        same_password(&password, &account.password).then(|| (Acl::new(&account.acl, None), false))
    } else {
        // An unknown name costs the same hashing as a known one.
        let _ = same_password(&password, "");
        None
    };
    let Some((acl, is_user)) = account else {
        let banned = api
            .bans
            .lock()
            .ok()
            .and_then(|mut bans| bans.failed(ip, &name, now));
        tracing::info!(peer = %ip, user = %name, "API authentication refused");
        if banned.is_some() {
            tracing::warn!(peer = %ip, user = %name, "too many failed API authentications: banned");
        }
        return Err(ApiError::unauthorized());
    };
    if let Ok(mut bans) = api.bans.lock() {
        bans.succeeded(ip, &name, now);
    }
    let id = token_id(&api.rng).map_err(|()| ApiError::unavailable("no randomness"))?;
    let token = api
        .tokens
        .lock()
        .map_err(|_| ApiError::unavailable("token table unavailable"))?
        .issue(
            id,
            tokens::Grant {
                auth_id: name.clone(),
                user: is_user.then(|| name.clone()),
                acl,
                lifetime: Duration::from_secs(expiration),
            },
            (now, crate::shell::unix_now()),
        )
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json!({ "data": token_json(&token) })).into_response())
}

/// 128 random bits, written like a UUID (as wazo-auth's tokens are).
fn token_id(rng: &dyn ring::rand::SecureRandom) -> Result<String, ()> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| ())?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

fn rfc3339(unix: f64) -> String {
    // Milliseconds fit an i64 for any date a clock gives.
    jiff::Timestamp::from_millisecond((unix * 1000.0) as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn token_json(token: &tokens::Token) -> Value {
    json!({
        "token": token.id,
        "auth_id": token.auth_id,
        "xivo_user_uuid": token.user,
        "issued_at": rfc3339(token.issued_at as f64),
        "expires_at": rfc3339(token.expires_at as f64),
        "acl": token.acl.patterns(),
    })
}

/// `GET /token/{token}` (and HEAD): 200 with the token while it is good, else 404.
/// `?scope=acl` asks whether it grants that ACL too (403 if not). The token
/// itself is the credential.
async fn check_token(
    State(api): State<Shared>,
    Path(id): Path<String>,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    let token = api
        .token_by_id(&id)
        .ok_or_else(|| ApiError::not_found("token", "(hidden)"))?;
    if let Some(scope) = params.get("scope") {
        require(&token, scope)?;
    }
    Ok(Json(json!({ "data": token_json(&token) })).into_response())
}

async fn revoke_token(State(api): State<Shared>, Path(id): Path<String>) -> Answer {
    let revoked = api
        .tokens
        .lock()
        .map(|mut t| t.revoke(&id))
        .unwrap_or(false);
    if !revoked {
        return Err(ApiError::not_found("token", "(hidden)"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- lists --------------------------------------------------------------------

/// One page of `items` as `{total, items}`: `search` (a case-insensitive substring
/// of any text field) filters, `order` (a field) and `direction` (`asc`, `desc`)
/// sort, `offset` and `limit` cut. `total` counts what the search kept.
fn page(mut items: Vec<Value>, params: &HashMap<String, String>, order: &str) -> Answer {
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| ApiError::invalid(name, "must be a non-negative integer"))
            })
            .transpose()
    };
    let (limit, offset) = (number("limit")?, number("offset")?.unwrap_or(0));
    let order = params.get("order").map_or(order, String::as_str);
    if !items.is_empty() && !items.iter().any(|i| i.get(order).is_some()) {
        return Err(ApiError::invalid("order", format!("no field {order:?}")));
    }
    let descending = match params.get("direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid("direction", "must be asc or desc")),
    };
    if let Some(search) = params.get("search").map(|s| s.to_lowercase()) {
        items.retain(|item| {
            item.as_object().is_some_and(|o| {
                o.values()
                    .filter_map(Value::as_str)
                    .any(|v| v.to_lowercase().contains(&search))
            })
        });
    }
    let key = |v: &Value| -> (u8, f64, String) {
        match v.get(order) {
            Some(Value::Number(n)) => (0, n.as_f64().unwrap_or(0.0), String::new()),
            Some(Value::String(s)) => (1, 0.0, s.clone()),
            Some(other) => (1, 0.0, other.to_string()),
            None => (2, 0.0, String::new()),
        }
    };
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let ordering =
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then_with(|| ka.2.cmp(&kb.2));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    let total = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
        .collect();
    Ok(Json(json!({ "total": total, "items": items })).into_response())
}

// ---- users --------------------------------------------------------------------

fn services_of(api: &Api, config: &Config, exten: &str) -> pbxkit_dialplan::UserServices {
    api.services
        .users
        .get(exten)
        .or_else(|| config.user(exten).map(Config::services))
        .unwrap_or_default()
}

fn forwards_json(services: &pbxkit_dialplan::UserServices) -> Value {
    let forward = |f: &pbxkit_dialplan::config::Forward| json!({ "enabled": f.enabled, "destination": (!f.destination.is_empty()).then_some(&f.destination) });
    json!({
        "busy": forward(&services.forwards.busy),
        "noanswer": forward(&services.forwards.no_answer),
        "unconditional": forward(&services.forwards.unconditional),
    })
}

fn user_json(api: &Api, config: &Config, user: &crate::config::User) -> Value {
    let services = services_of(api, config, &user.exten);
    json!({
        "id": user.exten,
        "exten": user.exten,
        "name": user.name,
        "line": { "username": user.exten, "protocol": "sip" },
        "voicemail": user.voicemail,
        "services": { "dnd": { "enabled": services.dnd } },
        "forwards": forwards_json(&services),
        "record_incoming": user.record_incoming,
        "record_outgoing": user.record_outgoing,
    })
}

async fn list_users(
    State(api): State<Shared>,
    headers: HeaderMap,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    api.authorize(&headers, "confd.users.read")?;
    let config = api.config();
    let items = config
        .users
        .iter()
        .map(|u| user_json(&api, &config, u))
        .collect();
    page(items, &params, "exten")
}

async fn get_user(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Answer {
    let (_, config, user) = api.user_route(&headers, &user, |u| format!("confd.users.{u}.read"))?;
    let Some(entry) = config.user(&user) else {
        return Err(ApiError::not_found("user", &user));
    };
    Ok(Json(user_json(&api, &config, entry)).into_response())
}

async fn get_services(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Answer {
    let (_, config, user) = api.user_route(&headers, &user, |u| {
        format!("confd.users.{u}.services.read")
    })?;
    let services = services_of(&api, &config, &user);
    Ok(Json(json!({ "dnd": { "enabled": services.dnd } })).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

async fn put_dnd(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    let (_, config, user) = api.user_route(&headers, &user, |u| {
        format!("confd.users.{u}.services.dnd.update")
    })?;
    let Enabled { enabled } = body(&bytes)?;
    let configured = config.user(&user).map(Config::services).unwrap_or_default();
    api.services
        .users
        .update(&user, &configured, |s| s.dnd = enabled)
        .await
        .map_err(|e| ApiError::unavailable(format!("not saved: {e}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_forwards(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Answer {
    let (_, config, user) = api.user_route(&headers, &user, |u| {
        format!("confd.users.{u}.forwards.read")
    })?;
    Ok(Json(forwards_json(&services_of(&api, &config, &user))).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardBody {
    enabled: bool,
    #[serde(default)]
    destination: Option<String>,
}

async fn put_forward(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path((user, forward)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Answer {
    let (_, config, user) = api.user_route(&headers, &user, |u| {
        format!("confd.users.{u}.forwards.{forward}.update")
    })?;
    if !matches!(forward.as_str(), "busy" | "noanswer" | "unconditional") {
        return Err(ApiError::not_found("forward", &forward));
    }
    let ForwardBody {
        enabled,
        destination,
    } = body(&bytes)?;
    let destination = destination.unwrap_or_default();
    if destination.len() > MAX_DESTINATION
        || !destination
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#+".contains(&b))
    {
        return Err(ApiError::invalid(
            "destination",
            format!("a number of at most {MAX_DESTINATION} digits, * # +"),
        ));
    }
    if enabled && destination.is_empty() {
        return Err(ApiError::invalid(
            "destination",
            "required when the forward is enabled",
        ));
    }
    let configured = config.user(&user).map(Config::services).unwrap_or_default();
    api.services
        .users
        .update(&user, &configured, |s| {
            let f = match forward.as_str() {
                "busy" => &mut s.forwards.busy,
                "noanswer" => &mut s.forwards.no_answer,
                _ => &mut s.forwards.unconditional,
            };
            f.enabled = enabled;
            f.destination = destination;
        })
        .await
        .map_err(|e| ApiError::unavailable(format!("not saved: {e}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- calls --------------------------------------------------------------------

fn call_json(call: &LiveCall) -> Value {
    json!({
        "call_id": call.call_id,
        "caller_id_number": call.caller,
        "dialed_extension": call.dialed,
        "peer": call.callee,
        "status": if call.answer.is_some() { "Up" } else { "Ring" },
        "creation_time": rfc3339(call.start),
        "answer_time": call.answer.map(rfc3339),
    })
}

fn is_party(call: &LiveCall, user: &str) -> bool {
    call.caller == user || call.callee.as_deref() == Some(user) || call.dialed == user
}

async fn list_calls(
    State(api): State<Shared>,
    headers: HeaderMap,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    api.authorize(&headers, "calld.calls.read")?;
    let calls = api.ask(Query::Calls).await?;
    page(
        calls.iter().map(call_json).collect(),
        &params,
        "creation_time",
    )
}

async fn list_user_calls(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Params(params): Params<HashMap<String, String>>,
) -> Answer {
    let (_, _, user) =
        api.user_route(&headers, &user, |u| format!("calld.users.{u}.calls.read"))?;
    let calls = api.ask(Query::Calls).await?;
    let items = calls
        .iter()
        .filter(|c| is_party(c, &user))
        .map(call_json)
        .collect();
    page(items, &params, "creation_time")
}

/// Call-IDs hold dots and `@`, which ACL words can't: hanging up any call is
/// `calld.calls.delete`, one's own `calld.users.<user>.calls.delete`.
async fn hang_up_call(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(call): Path<String>,
) -> Answer {
    api.authorize(&headers, "calld.calls.delete")?;
    hang_up(&api, call).await
}

async fn hang_up_user_call(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path((user, call)): Path<(String, String)>,
) -> Answer {
    let (_, _, user) =
        api.user_route(&headers, &user, |u| format!("calld.users.{u}.calls.delete"))?;
    let calls = api.ask(Query::Calls).await?;
    if !calls
        .iter()
        .any(|c| c.call_id == call && is_party(c, &user))
    {
        return Err(ApiError::not_found("call", &call));
    }
    hang_up(&api, call).await
}

async fn hang_up(api: &Api, call_id: String) -> Answer {
    let id = call_id.clone();
    let found = api.ask(|reply| Query::HangUp { call_id, reply }).await?;
    if !found {
        return Err(ApiError::not_found("call", &id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    async fn page_json(items: Vec<Value>, p: &[(&str, &str)]) -> Result<Value, StatusCode> {
        match page(items, &params(p), "exten") {
            Ok(response) => {
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                Ok(serde_json::from_slice(&bytes).unwrap())
            }
            Err(e) => Err(e.status),
        }
    }

    #[tokio::test]
    async fn lists_search_sort_and_page() {
        let items: Vec<Value> = ["1002", "1000", "1001", "2000"]
            .iter()
            .map(|e| json!({ "exten": e, "name": format!("User {e}") }))
            .collect();
        let all = page_json(items.clone(), &[]).await.unwrap();
        assert_eq!(all["total"], 4);
        assert_eq!(all["items"][0]["exten"], "1000");
        let cut = page_json(
            items.clone(),
            &[
                ("search", "user 1"),
                ("direction", "desc"),
                ("limit", "2"),
                ("offset", "1"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(cut["total"], 3, "the total counts what the search kept");
        let extens: Vec<&str> = cut["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["exten"].as_str().unwrap())
            .collect();
        assert_eq!(extens, ["1001", "1000"]);
        for bad in [
            &[("limit", "-1")][..],
            &[("offset", "x")],
            &[("direction", "up")],
            &[("order", "nope")],
        ] {
            assert_eq!(
                page_json(items.clone(), bad).await,
                Err(StatusCode::BAD_REQUEST)
            );
        }
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let e = body::<Enabled>(b"{}").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.details.get("enabled").is_some(), "{e:?}");
        let e = body::<Enabled>(b"{\"enabled\": true, \"x\": 1}").unwrap_err();
        assert!(e.details.get("x").is_some(), "{e:?}");
        let e = body::<Enabled>(b"not json").unwrap_err();
        assert!(e.details.get("body").is_some(), "{e:?}");
    }

    #[test]
    fn basic_credentials_are_decoded_and_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Basic MTAwMDpzM2NyZTc6eA==".parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("1000".into(), "s3cre7:x".into()))
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&headers), None);
        let long = format!("Basic {}", "A".repeat(4 * MAX_CREDENTIAL + 4));
        headers.insert(header::AUTHORIZATION, long.parse().unwrap());
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn token_ids_look_like_uuids_and_differ() {
        let rng = ring::rand::SystemRandom::new();
        let (a, b) = (token_id(&rng).unwrap(), token_id(&rng).unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
