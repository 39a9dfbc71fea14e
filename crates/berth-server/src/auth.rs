//! Authentication and authorisation for API routes.
//!
//! A caller is identified by the `berth_session` cookie (browsers) or an
//! `Authorization: Bearer` token (scripts); both name a row in `sessions` by the SHA-256 of
//! their secret. The guard runs before the handler (and before its body is read), so an
//! anonymous call never reaches a handler of a protected route.
//!
//! Cookie-authenticated writes also pass a same-origin check (`Sec-Fetch-Site`, `Origin`):
//! SameSite=Strict already keeps the cookie off cross-site requests; this is the second lock.

use crate::error::ApiError;
use crate::routes::Access;
use crate::{App, AppState};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_store::User;
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "berth_session";

/// How the caller presented their secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// The authenticated caller, put into the request by the guard.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    /// The stored hash of the session or token in use.
    pub token_hash: String,
    pub via: Via,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("authentication required".into()))
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` entry when berth is
/// told to trust its proxy.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(
            &st.0,
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
        )))
    }
}

pub(crate) fn client_addr(
    app: &App,
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> String {
    if app.settings.trust_proxy
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return first.to_string();
    }
    peer.map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The client's `User-Agent`, kept with a session so its owner can tell sessions apart.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The secret a request carries, and how.
pub(crate) fn presented_secret(headers: &HeaderMap) -> Option<(String, Via)> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some((rest.trim().to_string(), Via::Bearer));
        }
    }
    cookie_value(headers, SESSION_COOKIE).map(|v| (v, Via::Cookie))
}

/// A `Set-Cookie` value: `attrs` are its fixed attributes (`Path=/; HttpOnly; SameSite=…`);
/// `Secure` is added when berth is reached over https. Values are berth's own ASCII (random
/// secrets, URL-encoded text).
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    attrs: &str,
    max_age: u64,
    secure: bool,
) -> axum::http::HeaderValue {
    let s = format!(
        "{name}={value}; {attrs}; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    axum::http::HeaderValue::from_str(&s).expect("cookie is ASCII")
}

/// A cookie's value, if the request carries it non-empty.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

fn cross_site(req: &Request) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    if let (Some(origin), Some(host)) = (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        return origin == "null" || origin_host != host;
    }
    false
}

/// The guard every API route runs first (see [`crate::routes::Routes::add`]).
pub(crate) async fn guard(
    access: Access,
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let required = match access {
        Access::Public => return next.run(req).await,
        Access::Role(r) => r,
    };
    let Some((secret, via)) = presented_secret(req.headers()) else {
        return ApiError::Unauthorized(
            "authentication required: log in, or send Authorization: Bearer <token>".into(),
        )
        .into_response();
    };
    let token_hash = berth_auth::hash_token(&secret);
    let user = match st.0.store.session_user(&token_hash).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return ApiError::Unauthorized(
                "the session or token is invalid or has expired; log in again".into(),
            )
            .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if via == Via::Cookie
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && cross_site(&req)
    {
        return ApiError::Forbidden("cross-site request refused".into()).into_response();
    }
    if !user.role.allows(required) {
        return ApiError::Forbidden(format!(
            "this needs the {required} role; {} is a {}",
            user.username, user.role
        ))
        .into_response();
    }
    req.extensions_mut().insert(CurrentUser {
        user,
        token_hash,
        via,
    });
    next.run(req).await
}
