//! [`berth_domain::ports::ProxyManager`] for Nginx Proxy Manager, following the contract
//! observed on a real v2.15.1 (`npm-api.md`):
//!
//! - login with a service account (`POST /api/tokens`); the token is traded for a fresh one
//!   (`GET /api/tokens`) before it expires;
//! - NPM has no 401: an expired token is `400 Token has expired`, a missing or unpermitted one
//!   a `404 Not Found - /<route>` (500 on create), a bad one a 500. All of these get one
//!   re-login and one retry;
//! - a domain already served by a proxy host is adopted and updated, never duplicated;
//! - a create answers the row before nginx was configured, so berth reads the host back, and
//!   `meta.nginx_online: false` is a failure carrying nginx's own error text.
//!
//! Architecture invariant: nothing outside this crate knows NPM's wire format. The password
//! travels only in the login body.

use berth_crypto::SecretString;
use berth_domain::ports::{ProxyError, ProxyInfo, ProxyManager, Route, RouteSpec};
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::Mutex;

/// How to reach NPM.
#[derive(Clone)]
pub struct NpmConfig {
    /// Base URL, e.g. `http://npm:81` (the client adds `/api`).
    pub url: String,
    pub email: String,
    pub password: SecretString,
    /// Trade the token for a new one when less than this is left (NPM tokens last a day).
    pub refresh_before: Duration,
    pub timeout: Duration,
}

impl NpmConfig {
    pub fn new(url: &str, email: &str, password: SecretString) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            email: email.to_string(),
            password,
            refresh_before: Duration::from_secs(3600),
            timeout: Duration::from_secs(15),
        }
    }
}

struct Token {
    value: String,
    expires: chrono::DateTime<chrono::Utc>,
}

pub struct NpmClient {
    config: NpmConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

/// An NPM answer: status and JSON body (NPM always answers JSON).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }

    /// NPM's ways of saying "your token is no good": see the module docs.
    fn is_auth_quirk(&self) -> bool {
        let m = self.message();
        match self.status.as_u16() {
            400 => m == "Token has expired",
            404 => m.starts_with("Not Found - /"),
            500 => true,
            _ => false,
        }
    }
}

fn transport(e: reqwest::Error) -> ProxyError {
    if e.is_timeout() {
        ProxyError::Unreachable("no answer in time".into())
    } else if e.is_connect() {
        ProxyError::Unreachable(format!("cannot connect ({})", root_cause(&e)))
    } else {
        ProxyError::Unreachable(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn route_from(v: &Value) -> Result<Route, ProxyError> {
    let bad = || ProxyError::Protocol(format!("a proxy host without the expected fields: {v}"));
    Ok(Route {
        id: v["id"].as_i64().ok_or_else(bad)?,
        domains: v["domain_names"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .filter_map(|d| d.as_str().map(String::from))
            .collect(),
        forward_host: v["forward_host"].as_str().unwrap_or_default().to_string(),
        forward_port: v["forward_port"].as_u64().unwrap_or(0) as u16,
        enabled: v["enabled"].as_bool().unwrap_or(true),
    })
}

impl NpmClient {
    pub fn new(config: NpmConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default TLS settings");
        Self {
            config,
            http,
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.config.url)
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, ProxyError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(transport)?;
        let status = res.status();
        let text = res.text().await.map_err(transport)?;
        let body = serde_json::from_str(&text).map_err(|_| {
            ProxyError::Protocol(format!("{status} with a body that is not JSON (is the URL NPM's admin port, e.g. :81?): {}", text.chars().take(200).collect::<String>()))
        })?;
        Ok(Answer { status, body })
    }

    async fn login(&self) -> Result<Token, ProxyError> {
        let body = json!({"identity": self.config.email, "secret": self.config.password.expose()});
        let a = self.raw(Method::POST, "/tokens", None, Some(&body)).await?;
        if a.status != StatusCode::OK {
            return Err(ProxyError::Auth(a.message()));
        }
        Self::token_from(&a)
    }

    fn token_from(a: &Answer) -> Result<Token, ProxyError> {
        let value = a.body["token"]
            .as_str()
            .ok_or_else(|| ProxyError::Protocol("a token answer without a token".into()))?;
        let expires = a.body["expires"]
            .as_str()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .map(|e| e.with_timezone(&chrono::Utc))
            .ok_or_else(|| ProxyError::Protocol("a token answer without a valid expiry".into()))?;
        Ok(Token {
            value: value.to_string(),
            expires,
        })
    }

    /// A token good for a while: the cached one, a refreshed one, or a new login.
    async fn token(&self, force_login: bool) -> Result<String, ProxyError> {
        let mut slot = self.token.lock().await;
        let now = chrono::Utc::now();
        let margin = chrono::Duration::from_std(self.config.refresh_before).unwrap_or_default();
        if !force_login && let Some(t) = slot.as_ref() {
            if t.expires - now > margin {
                return Ok(t.value.clone());
            }
            if t.expires > now {
                // Trade the still-valid token for a fresh one; fall back to a login.
                if let Ok(a) = self.raw(Method::GET, "/tokens", Some(&t.value), None).await
                    && a.status == StatusCode::OK
                    && let Ok(fresh) = Self::token_from(&a)
                {
                    tracing::debug!(npm.url = %self.config.url, "NPM token refreshed");
                    let v = fresh.value.clone();
                    *slot = Some(fresh);
                    return Ok(v);
                }
            }
        }
        let t = self.login().await?;
        let v = t.value.clone();
        *slot = Some(t);
        Ok(v)
    }

    /// An authenticated call, with one re-login and retry on NPM's auth quirks.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ProxyError> {
        let token = self.token(false).await?;
        let a = self.raw(method.clone(), path, Some(&token), body).await?;
        if !a.is_auth_quirk() {
            return Ok(a);
        }
        tracing::info!(npm.url = %self.config.url, http.status = a.status.as_u16(), message = %a.message(), "NPM refused the token; logging in again");
        let token = self.token(true).await?;
        let a = self.raw(method, path, Some(&token), body).await?;
        if a.is_auth_quirk() {
            // A fresh login did not help: a permission problem, or NPM itself failing.
            return Err(match a.status.as_u16() {
                500 => ProxyError::Rejected(
                    "NPM answered 500 Internal Error twice (its nginx may be broken, or the account lacks permission on proxy hosts)".into(),
                ),
                _ => ProxyError::Auth(format!(
                    "{} even after a fresh login: give {} the \"manage\" permission on proxy hosts",
                    a.message(),
                    self.config.email
                )),
            });
        }
        Ok(a)
    }

    async fn host(&self, id: i64) -> Result<Value, ProxyError> {
        let a = self
            .call(Method::GET, &format!("/nginx/proxy-hosts/{id}"), None)
            .await?;
        match a.status.as_u16() {
            200 => Ok(a.body),
            404 => Err(ProxyError::Rejected(format!(
                "proxy host {id} does not exist"
            ))),
            _ => Err(ProxyError::Protocol(a.message())),
        }
    }

    /// Fails unless nginx took the host's configuration.
    fn online(v: &Value) -> Result<(), ProxyError> {
        match v["meta"]["nginx_online"].as_bool() {
            Some(false) => Err(ProxyError::Nginx(
                v["meta"]["nginx_err"]
                    .as_str()
                    .unwrap_or("nginx_online is false")
                    .trim()
                    .to_string(),
            )),
            _ => Ok(()),
        }
    }

    async fn find(&self, domain: &str) -> Result<Option<Value>, ProxyError> {
        let a = self
            .call(
                Method::GET,
                &format!("/nginx/proxy-hosts?query={}", urlencode(domain)),
                None,
            )
            .await?;
        if a.status != StatusCode::OK {
            return Err(ProxyError::Protocol(a.message()));
        }
        let lower = domain.to_lowercase();
        Ok(a.body
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| {
                h["domain_names"].as_array().is_some_and(|d| {
                    d.iter()
                        .filter_map(Value::as_str)
                        .any(|x| x.to_lowercase() == lower)
                })
            })
            .cloned())
    }

    fn body(spec: &RouteSpec) -> Value {
        json!({
            "domain_names": [spec.domain],
            "forward_scheme": "http",
            "forward_host": spec.forward_host,
            "forward_port": spec.forward_port,
            "certificate_id": spec.certificate_id.unwrap_or(0),
            "ssl_forced": spec.certificate_id.is_some(),
            "http2_support": spec.certificate_id.is_some(),
            "allow_websocket_upgrade": spec.websockets,
            "block_exploits": true,
        })
    }

    async fn update(&self, id: i64, spec: &RouteSpec) -> Result<Route, ProxyError> {
        let a = self
            .call(
                Method::PUT,
                &format!("/nginx/proxy-hosts/{id}"),
                Some(&Self::body(spec)),
            )
            .await?;
        if a.status != StatusCode::OK {
            return Err(ProxyError::Rejected(a.message()));
        }
        Self::online(&a.body)?;
        route_from(&a.body)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl ProxyManager for NpmClient {
    fn check(&self) -> BoxFuture<'_, Result<ProxyInfo, ProxyError>> {
        Box::pin(async move {
            let a = self.raw(Method::GET, "/", None, None).await?;
            if a.body["status"] != "OK" {
                return Err(ProxyError::Protocol(format!(
                    "GET /api/ answered {}",
                    a.body
                )));
            }
            let v = &a.body["version"];
            let version = format!("{}.{}.{}", v["major"], v["minor"], v["revision"]);
            let me = self.call(Method::GET, "/users/me", None).await?;
            if me.status != StatusCode::OK {
                return Err(ProxyError::Auth(me.message()));
            }
            Ok(ProxyInfo {
                version,
                user: me.body["email"].as_str().unwrap_or_default().to_string(),
            })
        })
    }

    fn find_route<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<Option<Route>, ProxyError>> {
        Box::pin(async move {
            self.find(domain)
                .await?
                .as_ref()
                .map(route_from)
                .transpose()
        })
    }

    fn ensure_route<'a>(&'a self, spec: &'a RouteSpec) -> BoxFuture<'a, Result<Route, ProxyError>> {
        Box::pin(async move {
            if let Some(existing) = self.find(&spec.domain).await? {
                let id = route_from(&existing)?.id;
                tracing::info!(npm.host = id, domain = %spec.domain, "updating the proxy host that serves this domain");
                return self.update(id, spec).await;
            }
            let a = self
                .call(Method::POST, "/nginx/proxy-hosts", Some(&Self::body(spec)))
                .await?;
            match a.status.as_u16() {
                201 => {
                    let id = route_from(&a.body)?.id;
                    // The create answer predates nginx: read the outcome back.
                    let host = self.host(id).await?;
                    if let Err(e) = Self::online(&host) {
                        // Leave nothing half-made behind.
                        let _ = self
                            .call(Method::DELETE, &format!("/nginx/proxy-hosts/{id}"), None)
                            .await;
                        return Err(e);
                    }
                    route_from(&host)
                }
                400 if a.message().ends_with("is already in use") => {
                    // Someone made it between our look and our create: adopt it.
                    match self.find(&spec.domain).await? {
                        Some(h) => self.update(route_from(&h)?.id, spec).await,
                        None => Err(ProxyError::Rejected(a.message())),
                    }
                }
                _ => Err(ProxyError::Rejected(a.message())),
            }
        })
    }

    fn remove_route(&self, id: i64) -> BoxFuture<'_, Result<(), ProxyError>> {
        Box::pin(async move {
            let a = self
                .call(Method::DELETE, &format!("/nginx/proxy-hosts/{id}"), None)
                .await?;
            match a.status.as_u16() {
                200 => Ok(()),
                404 => Ok(()), // already gone
                _ => Err(ProxyError::Rejected(a.message())),
            }
        })
    }
}

/// Connects to NPM with the settings stored in berth.
pub struct NpmConnector;

impl berth_domain::ports::ProxyConnector for NpmConnector {
    fn connect(&self, s: &berth_domain::model::NpmSettings) -> std::sync::Arc<dyn ProxyManager> {
        std::sync::Arc::new(NpmClient::new(NpmConfig::new(
            &s.url,
            &s.email,
            s.password.clone().unwrap_or_default(),
        )))
    }
}
