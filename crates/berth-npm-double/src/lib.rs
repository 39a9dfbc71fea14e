//! A faithful double of the Nginx Proxy Manager v2.15.1 REST API, as `npm-api.md` records it,
//! quirks included, for berth's tests (NPM itself ships only as an image). It renders each
//! enabled proxy host into a real nginx server block, checks it with `nginx -t` and reloads the
//! real nginx, so traffic really flows through the routes a client sets.
//!
//! Departures, all invisible to a client: state is in memory (a restart forgets hosts and
//! invalidates tokens, like a reinstall); tokens are HS256 with NPM's payload instead of RS256;
//! 2FA is not implemented; redirection/dead hosts and streams are listed empty.

// Handlers return early with NPM's error answers: `Result<_, Response>` is the clearest shape,
// and a test double's error path is not hot.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod jwt;
mod nginx;
pub mod validate;

pub use nginx::NginxConfig;

/// How the double runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where proxy-host configs go and how nginx is tested and reloaded; `None`: no nginx.
    pub nginx: Option<NginxConfig>,
    /// `INITIAL_ADMIN_EMAIL` / `INITIAL_ADMIN_PASSWORD`: the first user, created at start.
    pub initial_admin: Option<(String, String)>,
    /// Lifetime of a token from `POST /api/tokens` (NPM: one day).
    pub token_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nginx: None,
            initial_admin: None,
            token_ttl: Duration::from_secs(86400),
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    id: i64,
    created_on: String,
    modified_on: String,
    email: String,
    name: String,
    nickname: String,
    avatar: String,
    password: String,
    is_disabled: bool,
    is_deleted: bool,
    roles: Vec<String>,
    proxy_hosts: String, // "manage" | "view" | "hidden"
}

impl User {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "created_on": self.created_on, "modified_on": self.modified_on,
            "is_disabled": self.is_disabled, "email": self.email, "name": self.name,
            "nickname": self.nickname, "avatar": self.avatar, "roles": self.roles,
        })
    }
}

#[derive(Debug, Clone)]
struct Host {
    id: i64,
    row: Map<String, Value>,
    is_deleted: bool,
}

#[derive(Default)]
struct Db {
    users: Vec<User>,
    hosts: Vec<Host>,
    next_host: i64,
    audit: Vec<Value>,
    next_audit: i64,
}

struct Inner {
    config: Config,
    key: [u8; 32],
    db: Mutex<Db>,
}

#[derive(Clone)]
pub struct Double(Arc<Inner>);

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// NPM's error envelope.
fn err(code: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    err(404, &format!("Not Found - {path}"))
}

fn internal(code: u16) -> Response {
    err(code, "Internal Error")
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// A token's failure, as NPM v2.15.1 answers it.
enum AuthFail {
    /// No token, or a non-Bearer scheme.
    Missing,
    /// Garbage or a bad signature: NPM crashes (500).
    Invalid,
    Expired(i64),
}

impl Double {
    pub fn new(config: Config) -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("random key");
        let mut db = Db {
            next_host: 1,
            next_audit: 1,
            ..Default::default()
        };
        if let Some((email, password)) = &config.initial_admin {
            let t = now();
            db.users.push(User {
                id: 1,
                created_on: t.clone(),
                modified_on: t,
                email: email.trim().to_lowercase(),
                name: "Administrator".into(),
                nickname: "Admin".into(),
                avatar: String::new(),
                password: password.clone(),
                is_disabled: false,
                is_deleted: false,
                roles: vec!["admin".into()],
                proxy_hosts: "manage".into(),
            });
        }
        Self(Arc::new(Inner {
            config,
            key,
            db: Mutex::new(db),
        }))
    }

    /// Changes a user's proxy-host permission (`manage`, `view`, `hidden`): for tests of the
    /// permission quirk.
    pub fn set_proxy_host_permission(&self, email: &str, permission: &str) {
        let mut db = self.0.db.lock().unwrap();
        if let Some(u) = db.users.iter_mut().find(|u| u.email == email) {
            u.proxy_hosts = permission.to_string();
        }
    }

    /// The stored host rows (tests look behind the API).
    pub fn hosts(&self) -> Vec<Value> {
        self.0
            .db
            .lock()
            .unwrap()
            .hosts
            .iter()
            .filter(|h| !h.is_deleted)
            .map(|h| Value::Object(h.row.clone()))
            .collect()
    }

    fn issue(&self, user_id: i64, ttl: Duration) -> (String, String) {
        let iat = chrono::Utc::now().timestamp();
        let exp = iat + ttl.as_secs() as i64;
        let jti: String = hex::encode(crate::jwt::random::<8>());
        let payload = json!({"iss": "api", "attrs": {"id": user_id}, "scope": ["user"], "expiresIn": "1d", "jti": jti, "iat": iat, "exp": exp});
        let token = jwt::sign(&self.0.key, &payload);
        let expires = chrono::DateTime::from_timestamp(exp, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        (token, expires)
    }

    /// The user behind `Authorization: Bearer …`.
    fn authenticate(&self, headers: &HeaderMap) -> Result<User, AuthFail> {
        let Some(raw) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(AuthFail::Missing);
        };
        let Some(token) = raw.strip_prefix("Bearer ") else {
            return Err(AuthFail::Missing);
        };
        let claims = jwt::verify(&self.0.key, token.trim()).ok_or(AuthFail::Invalid)?;
        let exp = claims["exp"].as_i64().unwrap_or(0);
        if exp <= chrono::Utc::now().timestamp() {
            return Err(AuthFail::Expired(exp));
        }
        let id = claims["attrs"]["id"].as_i64().ok_or(AuthFail::Invalid)?;
        let db = self.0.db.lock().unwrap();
        db.users
            .iter()
            .find(|u| u.id == id && !u.is_deleted && !u.is_disabled)
            .cloned()
            .ok_or(AuthFail::Invalid)
    }

    fn audit(&self, db: &mut Db, user_id: i64, object_id: i64, action: &str, meta: Value) {
        let t = now();
        let id = db.next_audit;
        db.next_audit += 1;
        db.audit.push(json!({"id": id, "created_on": t, "modified_on": t, "user_id": user_id, "object_type": "proxy-host", "object_id": object_id, "action": action, "meta": meta}));
    }
}

fn expired(exp: i64) -> Response {
    let at = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": 400, "message": "Token has expired", "message_i18n": {"name": "TokenExpiredError", "message": "jwt expired", "expiredAt": at}}})),
    )
        .into_response()
}

/// The request body as NPM's express sees it: JSON or a form; any other type is no body.
fn body_value(headers: &HeaderMap, body: &Bytes) -> Result<Option<Value>, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        if body.is_empty() {
            return Ok(None);
        }
        return serde_json::from_slice(body)
            .map(Some)
            .map_err(|_| internal(400));
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(body);
        let mut m = Map::new();
        for kv in text.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            m.insert(k.replace('+', " "), Value::from(v.replace('+', " ")));
        }
        return Ok(Some(Value::Object(m)));
    }
    Ok(None)
}

fn payload_undefined() -> Response {
    err(400, "Payload is undefined")
}

pub fn router(double: Double) -> Router {
    Router::new()
        .route(
            "/api",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/api/")]).into_response() }),
        )
        .route("/api/", get(health))
        .route("/api/schema", get(schema))
        .route("/api/tokens", post(login).get(refresh))
        .route("/api/users/me", get(me))
        .route("/api/users", post(create_user))
        .route("/api/nginx/proxy-hosts", get(list_hosts).post(create_host))
        .route("/api/nginx/proxy-hosts/", get(list_hosts).post(create_host))
        .route(
            "/api/nginx/proxy-hosts/{id}",
            get(get_host).put(update_host).delete(delete_host),
        )
        .route("/api/nginx/proxy-hosts/{id}/enable", post(enable_host))
        .route("/api/nginx/proxy-hosts/{id}/disable", post(disable_host))
        .route("/api/nginx/certificates", get(empty_list_with_debug))
        .route("/api/nginx/access-lists", get(empty_list))
        .route("/api/nginx/redirection-hosts", get(empty_list))
        .route("/api/nginx/dead-hosts", get(empty_list))
        .route("/api/nginx/streams", get(empty_list))
        .route("/api/settings", get(settings))
        .route("/api/reports/hosts", get(report))
        .route("/api/audit-log", get(audit_log))
        .fallback(any(fallback))
        .layer(axum::middleware::from_fn(headers_and_options))
        .with_state(double)
}

/// NPM's response headers; OPTIONS → 204; `X-Served-By` on 2xx/3xx only.
async fn headers_and_options(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .unwrap_or_default();
    let mut res = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let no_content = res.status().as_u16() == 204;
    let h = res.headers_mut();
    if !no_content {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    h.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let status = res.status().as_u16();
    if (200..400).contains(&status)
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        res.headers_mut().insert("x-served-by", v);
    }
    res
}

async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    not_found(path.strip_prefix("/api").unwrap_or(path))
}

async fn health(State(d): State<Double>) -> Response {
    let setup = d.0.db.lock().unwrap().users.iter().any(|u| !u.is_deleted);
    ok(json!({"status": "OK", "setup": setup, "version": {"major": 2, "minor": 15, "revision": 1}}))
}

async fn schema() -> Response {
    ok(
        json!({"openapi": "3.1.0", "info": {"title": "Nginx Proxy Manager API (berth test double)", "version": "2.15.1"}, "paths": {
        "/": {}, "/tokens": {}, "/users": {}, "/users/me": {}, "/nginx/proxy-hosts": {}, "/nginx/proxy-hosts/{hostID}": {},
        "/nginx/proxy-hosts/{hostID}/enable": {}, "/nginx/proxy-hosts/{hostID}/disable": {}, "/nginx/certificates": {},
        "/nginx/access-lists": {}, "/settings": {}, "/reports/hosts": {}, "/audit-log": {}}}),
    )
}

async fn login(State(d): State<Double>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match body_value(&headers, &body) {
        Ok(Some(v)) => v,
        Ok(None) => return payload_undefined(),
        Err(r) => return r,
    };
    let Some(o) = v.as_object() else {
        return err(400, "data must be object");
    };
    let mut errors = Vec::new();
    for r in ["identity", "secret"] {
        match o.get(r) {
            None => errors.push(format!("data must have required property '{r}'")),
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(format!("data/{r} must NOT have fewer than 1 characters"))
            }
            _ => {}
        }
    }
    if o.keys()
        .any(|k| !["identity", "secret", "scope"].contains(&k.as_str()))
    {
        errors.push("data must NOT have additional properties".into());
    }
    if let Some(s) = o.get("scope")
        && s != "user"
    {
        errors.push("data/scope must be equal to one of the allowed values".into());
    }
    if !errors.is_empty() {
        return err(400, &errors.join(", "));
    }
    let identity = o["identity"].as_str().unwrap_or("").trim().to_lowercase();
    let secret = o["secret"].as_str().unwrap_or("");
    let user =
        d.0.db
            .lock()
            .unwrap()
            .users
            .iter()
            .find(|u| u.email == identity && !u.is_deleted && !u.is_disabled)
            .cloned();
    match user {
        None => err(400, "Invalid email or password"),
        Some(u) if u.password != secret => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": 400, "message": "Invalid email or password", "message_i18n": "error.invalid-auth"}})),
        )
            .into_response(),
        Some(u) => {
            let (token, expires) = d.issue(u.id, d.0.config.token_ttl);
            ok(json!({"token": token, "expires": expires}))
        }
    }
}

/// Parses NPM's expiry syntax (`^[0-9]+(y|Q|M|w|d|h|m|s|ms)$`).
fn parse_expiry(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        "M" => 30 * 86400,
        "Q" => 91 * 86400,
        "y" => 365 * 86400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

async fn refresh(
    State(d): State<Double>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match d.authenticate(&headers) {
        Ok(u) => u,
        Err(AuthFail::Expired(exp)) => return expired(exp),
        Err(_) => return internal(500),
    };
    let ttl = match q.get("expiry") {
        None => Duration::from_secs(86400),
        Some(e) => match parse_expiry(e) {
            Some(t) => t,
            None => return err(400, &format!("Invalid expiry time: {e}")),
        },
    };
    let (token, expires) = d.issue(user.id, ttl);
    ok(json!({"token": token, "expires": expires}))
}

async fn me(State(d): State<Double>, headers: HeaderMap) -> Response {
    match d.authenticate(&headers) {
        Ok(u) => ok(u.json()),
        Err(AuthFail::Expired(exp)) => expired(exp),
        Err(_) => internal(500),
    }
}

async fn create_user(State(d): State<Double>, headers: HeaderMap, body: Bytes) -> Response {
    let setup = d.0.db.lock().unwrap().users.iter().any(|u| !u.is_deleted);
    let admin = match d.authenticate(&headers) {
        Ok(u) if u.roles.iter().any(|r| r == "admin") => true,
        Ok(_) => return not_found("/users"),
        Err(AuthFail::Expired(exp)) => return expired(exp),
        Err(AuthFail::Invalid) => return internal(500),
        Err(AuthFail::Missing) => false,
    };
    if setup && !admin {
        return not_found("/users");
    }
    let v = match body_value(&headers, &body) {
        Ok(Some(v)) => v,
        Ok(None) => return payload_undefined(),
        Err(r) => return r,
    };
    let Some(o) = v.as_object() else {
        return err(400, "data must be object");
    };
    let mut errors = Vec::new();
    for r in ["name", "nickname", "email"] {
        if !o.contains_key(r) {
            errors.push(format!("data must have required property '{r}'"));
        }
    }
    if o.keys().any(|k| {
        !["name", "nickname", "email", "roles", "is_disabled", "auth"].contains(&k.as_str())
    }) {
        errors.push("data must NOT have additional properties".into());
    }
    if !errors.is_empty() {
        return err(400, &errors.join(", "));
    }
    let mut db = d.0.db.lock().unwrap();
    let email = o["email"].as_str().unwrap_or("").trim().to_lowercase();
    if db.users.iter().any(|u| u.email == email && !u.is_deleted) {
        return err(400, "Email address already in use");
    }
    let id = db.users.iter().map(|u| u.id).max().unwrap_or(0) + 1;
    let t = now();
    let roles = if !setup {
        vec!["admin".to_string()]
    } else {
        o.get("roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(email.as_bytes()));
    let user = User {
        id,
        created_on: t.clone(),
        modified_on: t,
        name: o["name"].as_str().unwrap_or("").to_string(),
        nickname: o["nickname"].as_str().unwrap_or("").to_string(),
        avatar: format!("//www.gravatar.com/avatar/{}?default=mm", &digest[..32]),
        password: o
            .get("auth")
            .and_then(|a| a["secret"].as_str())
            .unwrap_or("")
            .to_string(),
        is_disabled: o
            .get("is_disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        is_deleted: false,
        roles,
        proxy_hosts: "manage".into(),
        email,
    };
    let mut out = user.json();
    out["permissions"] = json!({"visibility": "all", "proxy_hosts": "manage", "redirection_hosts": "manage", "dead_hosts": "manage", "streams": "manage", "access_lists": "manage", "certificates": "manage"});
    db.users.push(user);
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

/// Authorises a proxy-host call with NPM's quirks: a missing token or permission falls through
/// to the 404 catch-all (500 on create), a bad token crashes (500), an expired one is 400.
fn host_auth(
    d: &Double,
    headers: &HeaderMap,
    path: &str,
    write: bool,
    create: bool,
) -> Result<User, Response> {
    let denied = || {
        if create {
            internal(500)
        } else {
            not_found(path)
        }
    };
    match d.authenticate(headers) {
        Ok(u) => {
            let allowed = match u.proxy_hosts.as_str() {
                "manage" => true,
                "view" => !write,
                _ => false,
            };
            if allowed { Ok(u) } else { Err(denied()) }
        }
        Err(AuthFail::Missing) => Err(denied()),
        Err(AuthFail::Invalid) => Err(internal(500)),
        Err(AuthFail::Expired(exp)) => Err(expired(exp)),
    }
}

fn expand(db: &Db, row: &Map<String, Value>, what: &[&str], in_list: bool) -> Value {
    let mut v = Value::Object(row.clone());
    for w in what {
        match *w {
            "owner" => {
                let owner = row.get("owner_user_id").and_then(Value::as_i64);
                v["owner"] = db
                    .users
                    .iter()
                    .find(|u| Some(u.id) == owner)
                    .map(User::json)
                    .unwrap_or(Value::Null);
            }
            "certificate" => v["certificate"] = Value::Null,
            "access_list" | "access_list.[clients,items]" => v["access_list"] = Value::Null,
            _ => {}
        }
    }
    let _ = in_list;
    v
}

fn parse_id(raw: &str) -> Result<i64, Response> {
    raw.parse::<i64>().map_err(|_| internal(400))
}

async fn list_hosts(
    State(d): State<Double>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = host_auth(&d, &headers, "/nginx/proxy-hosts", false, false) {
        return r;
    }
    let db = d.0.db.lock().unwrap();
    let exp: Vec<&str> = q
        .get("expand")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    let needle = q.get("query").map(|s| s.to_lowercase());
    let mut rows: Vec<(String, Value)> = db
        .hosts
        .iter()
        .filter(|h| !h.is_deleted)
        .map(|h| (h.row["domain_names"].to_string(), h))
        .filter(|(text, _)| {
            needle
                .as_ref()
                .is_none_or(|n| text.to_lowercase().contains(n))
        })
        .map(|(text, h)| (text, expand(&db, &h.row, &exp, true)))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    ok(Value::from(
        rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    ))
}

async fn get_host(
    State(d): State<Double>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = host_auth(
        &d,
        &headers,
        &format!("/nginx/proxy-hosts/{id}"),
        false,
        false,
    ) {
        return r;
    }
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let db = d.0.db.lock().unwrap();
    let exp: Vec<&str> = q
        .get("expand")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    match db.hosts.iter().find(|h| h.id == id && !h.is_deleted) {
        Some(h) => ok(expand(&db, &h.row, &exp, false)),
        None => not_found(&id.to_string()),
    }
}

/// The first of `domains` already used by another live host, compared case-insensitively.
fn clash(db: &Db, domains: &[Value], except: Option<i64>) -> Option<String> {
    for d in domains.iter().filter_map(Value::as_str) {
        let lower = d.to_lowercase();
        for h in db
            .hosts
            .iter()
            .filter(|h| !h.is_deleted && Some(h.id) != except)
        {
            if h.row["domain_names"].as_array().is_some_and(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .any(|x| x.to_lowercase() == lower)
            }) {
                return Some(d.to_string());
            }
        }
    }
    None
}

/// NPM's SSL clean-up: without a certificate (omitted or falsy after coercion) SSL flags go.
fn ssl_cleanup(row: &mut Map<String, Value>, cert_sent: Option<&Value>) {
    let falsy = match cert_sent {
        None => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::Null) => true,
        Some(_) => false,
    };
    if falsy {
        row.insert("ssl_forced".into(), Value::from(false));
        row.insert("http2_support".into(), Value::from(false));
    }
    if row.get("ssl_forced") == Some(&Value::from(false)) {
        row.insert("hsts_enabled".into(), Value::from(false));
    }
    if row.get("hsts_enabled") == Some(&Value::from(false)) {
        row.insert("hsts_subdomains".into(), Value::from(false));
    }
}

fn store_cert(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "new" => Value::from(0), // no Let's Encrypt here
        Value::String(s) => Value::from(s.parse::<i64>().unwrap_or(0)),
        other => other.clone(),
    }
}

/// Applies a host's nginx config the way NPM does; returns the new meta (None: nginx broken
/// before the change, which NPM answers with a 500).
async fn apply(d: &Double, row: &Map<String, Value>) -> Option<Value> {
    let Some(nginx) = d.0.config.nginx.clone() else {
        return Some(json!({"nginx_online": true, "nginx_err": null}));
    };
    let row = row.clone();
    tokio::task::spawn_blocking(move || nginx.apply(&row))
        .await
        .ok()
        .flatten()
}

async fn create_host(State(d): State<Double>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match host_auth(&d, &headers, "/nginx/proxy-hosts", true, true) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = match body_value(&headers, &body) {
        Ok(Some(v)) => v,
        Ok(None) => return payload_undefined(),
        Err(r) => return r,
    };
    let data = match validate::proxy_host(&v, true) {
        Ok(o) => o,
        Err(m) => return err(400, &m),
    };
    let (id, before) = {
        let mut db = d.0.db.lock().unwrap();
        let mut domains: Vec<Value> = data["domain_names"].as_array().cloned().unwrap_or_default();
        if let Some(c) = clash(&db, &domains, None) {
            return err(400, &format!("{c} is already in use"));
        }
        domains.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        let id = db.next_host;
        db.next_host += 1;
        let t = now();
        let mut row = Map::new();
        for (k, def) in [
            ("id", Value::from(id)),
            ("created_on", Value::from(t.clone())),
            ("modified_on", Value::from(t)),
            ("owner_user_id", Value::from(user.id)),
            ("domain_names", Value::from(domains)),
            ("forward_host", Value::Null),
            ("forward_port", Value::Null),
            ("access_list_id", Value::from(0)),
            ("certificate_id", Value::from(0)),
            ("ssl_forced", Value::from(false)),
            ("caching_enabled", Value::from(false)),
            ("block_exploits", Value::from(false)),
            ("advanced_config", Value::from("")),
            ("meta", json!({})),
            ("allow_websocket_upgrade", Value::from(false)),
            ("http2_support", Value::from(false)),
            ("forward_scheme", Value::Null),
            ("enabled", Value::from(true)),
            ("locations", Value::Null),
            ("hsts_enabled", Value::from(false)),
            ("hsts_subdomains", Value::from(false)),
            ("trust_forwarded_proto", Value::from(false)),
        ] {
            row.insert(k.into(), def);
        }
        for (k, v) in &data {
            if k != "domain_names" {
                row.insert(
                    k.clone(),
                    if k == "certificate_id" {
                        store_cert(v)
                    } else {
                        v.clone()
                    },
                );
            }
        }
        ssl_cleanup(&mut row, data.get("certificate_id"));
        db.hosts.push(Host {
            id,
            row: row.clone(),
            is_deleted: false,
        });
        d.audit(&mut db, user.id, id, "created", Value::Object(row.clone()));
        (id, row)
    };
    let enabled = before["enabled"] == true;
    if enabled {
        let meta = apply(&d, &before).await;
        match meta {
            None => return internal(500), // nginx was broken before: the row stays, meta {}
            Some(meta) => {
                let mut db = d.0.db.lock().unwrap();
                if let Some(h) = db.hosts.iter_mut().find(|h| h.id == id) {
                    let mut m = h.row["meta"].as_object().cloned().unwrap_or_default();
                    m.extend(meta.as_object().cloned().unwrap_or_default());
                    h.row.insert("meta".into(), Value::Object(m));
                }
            }
        }
    }
    let db = d.0.db.lock().unwrap();
    (
        StatusCode::CREATED,
        axum::Json(expand(
            &db,
            &before,
            &["owner", "certificate", "access_list"],
            false,
        )),
    )
        .into_response()
}

async fn update_host(
    State(d): State<Double>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let user = match host_auth(
        &d,
        &headers,
        &format!("/nginx/proxy-hosts/{raw}"),
        true,
        false,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id = match parse_id(&raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let v = match body_value(&headers, &body) {
        Ok(Some(v)) => v,
        Ok(None) => return payload_undefined(),
        Err(r) => return r,
    };
    let data = match validate::proxy_host(&v, false) {
        Ok(o) => o,
        Err(m) => return err(400, &m),
    };
    let row = {
        let mut db = d.0.db.lock().unwrap();
        if !db.hosts.iter().any(|h| h.id == id && !h.is_deleted) {
            return not_found(&id.to_string());
        }
        if let Some(domains) = data.get("domain_names").and_then(Value::as_array)
            && let Some(c) = clash(&db, domains, Some(id))
        {
            return err(400, &format!("{c} is already in use"));
        }
        let h = db
            .hosts
            .iter_mut()
            .find(|h| h.id == id)
            .expect("checked above");
        for (k, v) in &data {
            let v = match k.as_str() {
                "certificate_id" => store_cert(v),
                "domain_names" => {
                    let mut a = v.as_array().cloned().unwrap_or_default();
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    Value::from(a)
                }
                _ => v.clone(),
            };
            h.row.insert(k.clone(), v);
        }
        let stored_cert = h.row["certificate_id"].clone();
        ssl_cleanup(
            &mut h.row,
            data.get("certificate_id").or(Some(&stored_cert)),
        );
        h.row.insert("modified_on".into(), Value::from(now()));
        let row = h.row.clone();
        d.audit(&mut db, user.id, id, "updated", Value::Object(data.clone()));
        row
    };
    let mut row = row;
    if row["enabled"] == true {
        match apply(&d, &row).await {
            None => return internal(500),
            Some(meta) => {
                let mut m = row["meta"].as_object().cloned().unwrap_or_default();
                m.extend(meta.as_object().cloned().unwrap_or_default());
                row.insert("meta".into(), Value::Object(m));
                let mut db = d.0.db.lock().unwrap();
                if let Some(h) = db.hosts.iter_mut().find(|h| h.id == id) {
                    h.row.insert("meta".into(), row["meta"].clone());
                }
            }
        }
    }
    let db = d.0.db.lock().unwrap();
    ok(expand(
        &db,
        &row,
        &["owner", "certificate", "access_list"],
        false,
    ))
}

async fn remove_config(d: &Double, id: i64) {
    if let Some(n) = d.0.config.nginx.clone() {
        let _ = tokio::task::spawn_blocking(move || n.remove(id)).await;
    }
}

async fn delete_host(
    State(d): State<Double>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let user = match host_auth(
        &d,
        &headers,
        &format!("/nginx/proxy-hosts/{raw}"),
        true,
        false,
    ) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id = match parse_id(&raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    {
        let mut db = d.0.db.lock().unwrap();
        let Some(h) = db.hosts.iter_mut().find(|h| h.id == id && !h.is_deleted) else {
            return not_found(&id.to_string());
        };
        h.is_deleted = true;
        let row = h.row.clone();
        d.audit(&mut db, user.id, id, "deleted", Value::Object(row));
    }
    remove_config(&d, id).await;
    ok(Value::from(true))
}

async fn toggle(d: Double, headers: HeaderMap, raw: String, enable: bool) -> Response {
    let path = format!(
        "/nginx/proxy-hosts/{raw}/{}",
        if enable { "enable" } else { "disable" }
    );
    let user = match host_auth(&d, &headers, &path, true, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id = match parse_id(&raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let row = {
        let mut db = d.0.db.lock().unwrap();
        let Some(h) = db.hosts.iter_mut().find(|h| h.id == id && !h.is_deleted) else {
            return not_found(&id.to_string());
        };
        if h.row["enabled"] == enable {
            return err(
                400,
                if enable {
                    "Host is already enabled"
                } else {
                    "Host is already disabled"
                },
            );
        }
        h.row.insert("enabled".into(), Value::from(enable));
        let row = h.row.clone();
        d.audit(
            &mut db,
            user.id,
            id,
            if enable { "enabled" } else { "disabled" },
            Value::Object(row.clone()),
        );
        row
    };
    if enable {
        if let Some(meta) = apply(&d, &row).await {
            let mut db = d.0.db.lock().unwrap();
            if let Some(h) = db.hosts.iter_mut().find(|h| h.id == id) {
                h.row.insert("meta".into(), meta);
            }
        }
    } else {
        remove_config(&d, id).await;
    }
    ok(Value::from(true))
}

async fn enable_host(
    State(d): State<Double>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    toggle(d, headers, raw, true).await
}

async fn disable_host(
    State(d): State<Double>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    toggle(d, headers, raw, false).await
}

fn authed(d: &Double, headers: &HeaderMap, path: &str) -> Result<User, Response> {
    match d.authenticate(headers) {
        Ok(u) => Ok(u),
        Err(AuthFail::Missing) => Err(not_found(path)),
        Err(AuthFail::Invalid) => Err(internal(500)),
        Err(AuthFail::Expired(exp)) => Err(expired(exp)),
    }
}

async fn empty_list(
    State(d): State<Double>,
    headers: HeaderMap,
    req_path: axum::extract::OriginalUri,
) -> Response {
    let path = req_path.path().trim_start_matches("/api").to_string();
    match authed(&d, &headers, &path) {
        Ok(_) => ok(json!([])),
        Err(r) => r,
    }
}

/// Certificates: every error here carries NPM's `debug` field.
async fn empty_list_with_debug(State(d): State<Double>, headers: HeaderMap) -> Response {
    match authed(&d, &headers, "/nginx/certificates") {
        Ok(_) => ok(json!([])),
        Err(r) => {
            let status = r.status();
            let code = status.as_u16();
            let message = if code == 404 {
                "Not Found - /nginx/certificates"
            } else {
                "Internal Error"
            };
            (status, axum::Json(json!({"error": {"code": code, "message": message}, "debug": {"stack": [], "previous": null}}))).into_response()
        }
    }
}

async fn settings(State(d): State<Double>, headers: HeaderMap) -> Response {
    match authed(&d, &headers, "/settings") {
        Ok(_) => ok(
            json!([{"id": "default-site", "name": "Default Site", "description": "What to show when Nginx is hit with an unknown Host", "value": "congratulations", "meta": {}}]),
        ),
        Err(r) => r,
    }
}

async fn report(State(d): State<Double>, headers: HeaderMap) -> Response {
    match authed(&d, &headers, "/reports/hosts") {
        Ok(_) => {
            let n =
                d.0.db
                    .lock()
                    .unwrap()
                    .hosts
                    .iter()
                    .filter(|h| !h.is_deleted)
                    .count();
            ok(json!({"proxy": n, "redirection": 0, "stream": 0, "dead": 0}))
        }
        Err(r) => r,
    }
}

async fn audit_log(State(d): State<Double>, headers: HeaderMap) -> Response {
    match authed(&d, &headers, "/audit-log") {
        Ok(_) => {
            let db = d.0.db.lock().unwrap();
            ok(Value::from(
                db.audit.iter().rev().cloned().collect::<Vec<_>>(),
            ))
        }
        Err(r) => r,
    }
}

/// Serves the double on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    double: Double,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(double))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The directory a double writes its host configs into, under a shared nginx prefix.
pub fn hosts_dir(prefix: &std::path::Path, instance: &str) -> PathBuf {
    prefix.join("proxy_host").join(instance)
}
