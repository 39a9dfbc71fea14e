//! Logging in and out: `POST /api/auth/login` (browser: a session cookie), `POST
//! /api/auth/token` (scripts: a bearer token), logout, `me`, and password change.
//!
//! An unknown user and a wrong password get the same answer after the same work; failed
//! attempts are throttled per account and per address.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser, SESSION_COOKIE, Via};
use crate::error::{ApiError, ApiResult, Json};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_auth::SessionSecret;
use berth_crypto::SecretString;
use berth_store::{Session, SessionKind, User};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    #[schema(value_type = String)]
    password: SecretString,
}

#[derive(Serialize)]
struct LoginAnswer {
    user: User,
    expires_at: String,
}

#[derive(Serialize)]
struct TokenAnswer {
    /// Shown once; send it as `Authorization: Bearer <token>`.
    token: String,
    expires_at: String,
    user: User,
}

const INVALID: &str = "invalid username or password";

/// Checks credentials with throttling; the same error for unknown user and wrong password.
async fn authenticate(st: &AppState, creds: &Credentials, addr: &str) -> ApiResult<User> {
    let name = creds.username.trim();
    if name.is_empty() || name.len() > 128 || creds.password.expose().len() > 1024 {
        return Err(ApiError::BadRequest(
            "give a username and a password".into(),
        ));
    }
    super::oidc::local_login_allowed(st).await?;
    if let Err(t) = st.throttle.check(name, addr) {
        let secs = t.retry_after.as_secs_f64().ceil() as u64;
        return Err(ApiError::TooManyRequests {
            message: format!("too many failed logins; try again in {secs} s"),
            retry_after_secs: secs,
        });
    }
    let found = st.store.user_for_login(name).await?;
    let pw = creds.password.expose().to_string();
    let ok_user = tokio::task::spawn_blocking(move || match found {
        Some((user, Some(hash))) if !user.disabled => {
            berth_auth::verify_password(&pw, &hash).then_some(user)
        }
        _ => {
            berth_auth::verify_dummy(&pw);
            None
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match ok_user {
        Some(user) => {
            st.throttle.succeeded(name);
            st.store
                .audit(&user.username, "login.succeeded", None, Some(addr), None)
                .await?;
            Ok(user)
        }
        None => {
            st.throttle.failed(name, addr);
            st.store
                .audit("anonymous", "login.failed", Some(name), Some(addr), None)
                .await?;
            tracing::info!(user.name = %name, client.addr = %addr, "login failed");
            Err(ApiError::Unauthorized(INVALID.into()))
        }
    }
}

pub(crate) async fn new_session(
    st: &AppState,
    user: &User,
    kind: SessionKind,
    addr: &str,
    headers: &HeaderMap,
) -> ApiResult<(SecretString, Session)> {
    let s = SessionSecret::generate(match kind {
        SessionKind::Browser => "bs_",
        SessionKind::Script => "bt_",
    });
    let ua = crate::auth::user_agent(headers);
    let session = st
        .store
        .create_session(
            user.id,
            &s.hash,
            kind,
            st.settings.session_ttl,
            Some(addr),
            ua,
        )
        .await?;
    Ok((s.secret, session))
}

pub(crate) fn secure(st: &AppState, headers: &HeaderMap) -> bool {
    st.settings.secure_cookies
        || (st.settings.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https")))
}

/// The session cookie (empty with `max_age` 0 to clear it).
pub(crate) fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    crate::auth::set_cookie(
        SESSION_COOKIE,
        value,
        "Path=/; HttpOnly; SameSite=Strict",
        max_age,
        secure,
    )
}

pub async fn login(
    State(st): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Json(creds): Json<Credentials>,
) -> ApiResult<Response> {
    let user = authenticate(&st, &creds, &addr).await?;
    let (secret, session) = new_session(&st, &user, SessionKind::Browser, &addr, &headers).await?;
    let mut res = Json(LoginAnswer {
        user,
        expires_at: session.expires_at,
    })
    .into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            secret.expose(),
            st.settings.session_ttl.as_secs(),
            secure(&st, &headers),
        ),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub async fn token(
    State(st): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Json(creds): Json<Credentials>,
) -> ApiResult<Response> {
    let user = authenticate(&st, &creds, &addr).await?;
    let (secret, session) = new_session(&st, &user, SessionKind::Script, &addr, &headers).await?;
    let mut res = (
        StatusCode::CREATED,
        Json(TokenAnswer {
            token: secret.expose().to_string(),
            expires_at: session.expires_at,
            user,
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub async fn logout(
    State(st): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<Response> {
    st.store.delete_session(&me.token_hash).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if me.via == Via::Cookie {
        res.headers_mut()
            .insert(header::SET_COOKIE, cookie("", 0, secure(&st, &headers)));
    }
    Ok(res)
}

#[derive(Serialize)]
struct Me {
    user: User,
    via: &'static str,
}

pub async fn me(me: CurrentUser) -> Json<impl Serialize> {
    Json(Me {
        via: match me.via {
            Via::Cookie => "cookie",
            Via::Bearer => "bearer",
        },
        user: me.user,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String)]
    current_password: SecretString,
    #[schema(value_type = String)]
    new_password: SecretString,
}

pub async fn change_password(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let (_, hash) = st
        .store
        .user_for_login(&me.user.username)
        .await?
        .ok_or_else(|| ApiError::NotFound("your user no longer exists".into()))?;
    let current = body.current_password.expose().to_string();
    let new = body.new_password;
    let new_hash = tokio::task::spawn_blocking(move || {
        let ok = hash
            .as_deref()
            .is_some_and(|h| berth_auth::verify_password(&current, h));
        if !ok {
            return Err(ApiError::Forbidden("the current password is wrong".into()));
        }
        berth_auth::hash_password(&new).map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .await
    .map_err(ApiError::internal)??;
    st.store
        .set_password(me.user.id, &new_hash, Some(&me.token_hash))
        .await?;
    st.store
        .audit(
            &me.user.username,
            "user.password_changed",
            Some(&me.user.username),
            Some(&addr),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
