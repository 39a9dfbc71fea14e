//! A user's own sessions and API tokens, and an admin's hold on other users' sessions.
//!
//! - `GET /api/auth/sessions`: my browser sessions and tokens (never a secret: an `id` that is
//!   a prefix of the stored hash, and which one is the caller's own).
//! - `DELETE /api/auth/sessions/{id}`: end one of them; `POST /api/auth/sessions/revoke-all`:
//!   log out everywhere (this session too).
//! - `POST /api/auth/tokens`: a named token with a role no higher than the caller's and an
//!   expiry, shown once.
//! - `POST /api/users/{id}/sessions/revoke` (admin): end every session of a user.
//!
//! Every change is in the audit log, by id and name only.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_auth::SessionSecret;
use berth_domain::Role;
use berth_store::{SessionInfo, session_id};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Serialize)]
pub struct MySession {
    #[serde(flatten)]
    info: SessionInfo,
    /// The session or token this request came with.
    current: bool,
}

pub async fn list(State(st): State<AppState>, me: CurrentUser) -> ApiResult<Json<Vec<MySession>>> {
    let mine = session_id(&me.token_hash).to_string();
    Ok(Json(
        st.store
            .user_sessions(me.user.id)
            .await?
            .into_iter()
            .map(|info| MySession {
                current: info.id == mine,
                info,
            })
            .collect(),
    ))
}

pub async fn revoke(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !st.store.delete_user_session(me.user.id, &id).await? {
        return Err(ApiError::NotFound(format!(
            "you have no session or token {id}"
        )));
    }
    st.store
        .audit(
            &me.user.username,
            "session.revoked",
            Some(&id),
            Some(&addr),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_all(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<Json<serde_json::Value>> {
    let n = st.store.delete_user_sessions(me.user.id).await?;
    st.store
        .audit(
            &me.user.username,
            "session.revoked_all",
            Some(&me.user.username),
            Some(&addr),
            Some(json!({ "ended": n })),
        )
        .await?;
    Ok(Json(json!({ "ended": n })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for, e.g. "ci-shop" (1 to 64 characters).
    name: String,
    /// viewer, deployer or admin; at most your own role. Default: viewer.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    /// Days until it stops working (1 to 3650). Default: 90.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

#[derive(Serialize)]
struct NewTokenAnswer {
    /// Shown once; send it as `Authorization: Bearer <token>`.
    token: String,
    id: String,
    name: String,
    role: Role,
    expires_at: String,
}

pub async fn create_token(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name: 1 to 64 characters, no control characters".into(),
        ));
    }
    let role = body.role.unwrap_or(Role::Viewer);
    if role > me.user.role {
        return Err(ApiError::Forbidden(format!(
            "role: a token cannot have more than your own role ({})",
            me.user.role.as_str()
        )));
    }
    let days = body.expires_in_days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::BadRequest("expires_in_days: 1 to 3650".into()));
    }
    let s = SessionSecret::generate("bt_");
    let ua = crate::auth::user_agent(&headers);
    let session = st
        .store
        .create_token(
            me.user.id,
            &s.hash,
            name,
            role,
            Duration::from_secs(u64::from(days) * 86_400),
            Some(&addr),
            ua,
        )
        .await?;
    let id = session_id(&s.hash).to_string();
    st.store
        .audit(
            &me.user.username,
            "token.created",
            Some(&id),
            Some(&addr),
            Some(json!({ "name": name, "role": role.as_str(), "expires_at": session.expires_at })),
        )
        .await?;
    let mut res = (
        StatusCode::CREATED,
        Json(NewTokenAnswer {
            token: s.secret.expose().to_string(),
            id,
            name: name.to_string(),
            role,
            expires_at: session.expires_at,
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `POST /api/users/{id}/sessions/revoke` (admin): ends every session and token of a user.
pub async fn end_user_sessions(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    let user = st.store.user(id).await?;
    let n = st.store.delete_user_sessions(user.id).await?;
    st.store
        .audit(
            &me.user.username,
            "user.sessions_ended",
            Some(&user.username),
            Some(&addr),
            Some(json!({ "ended": n })),
        )
        .await?;
    Ok(Json(json!({ "ended": n })))
}
