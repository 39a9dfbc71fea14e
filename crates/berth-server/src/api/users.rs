//! User management (admin): list, create (with a password or for single sign-on only),
//! change role, disable, reset the password, delete; and `GET /api/audit` with filters.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use berth_crypto::SecretString;
use berth_domain::{Role, Username};
use berth_store::{AuditEntry, AuditFilter, User, UserAdminView};
use serde::Deserialize;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<UserAdminView>>> {
    Ok(Json(st.store.list_users_admin().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    #[schema(value_type = String)]
    role: Role,
    /// Left out: the user signs in only through the identity provider (their first
    /// sign-in links them by name).
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
}

async fn hash(password: SecretString) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || berth_auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::BadRequest(format!("password: {e}")))
}

pub async fn create(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let name =
        Username::parse(body.username.trim()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let user = match body.password {
        Some(p) => {
            let h = hash(p).await?;
            st.store.create_user(&name, &h, body.role).await?
        }
        None => {
            st.store
                .create_user_without_password(&name, body.role)
                .await?
        }
    };
    st.store
        .audit(
            &me.user.username,
            "user.created",
            Some(&user.username),
            Some(&addr),
            Some(serde_json::json!({"role": user.role, "password": user_has_password(&st, &user).await?})),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn user_has_password(st: &AppState, u: &User) -> ApiResult<bool> {
    Ok(st
        .store
        .user_for_login(&u.username)
        .await?
        .is_some_and(|(_, h)| h.is_some()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    /// true ends every session and token of the user.
    disabled: Option<bool>,
    /// A new password (ends the user's sessions).
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
}

/// `PATCH /api/users/{id}`: role, disabled, password. Refused (and nothing changed) if it
/// would leave no enabled admin, or if you would lock yourself out.
pub async fn update(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
    Json(body): Json<UserChange>,
) -> ApiResult<Json<User>> {
    let before = st.store.user(id).await?;
    if id == me.user.id
        && (body.disabled == Some(true) || body.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::Conflict(
            "you cannot disable or demote yourself; another admin can".into(),
        ));
    }
    if body.role.is_none() && body.disabled.is_none() && body.password.is_none() {
        return Err(ApiError::BadRequest(
            "give role, disabled or password to change".into(),
        ));
    }
    // Hash first: a bad password refuses the whole change before anything is written.
    let new_hash = match body.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let mut after = before.clone();
    if let Some(role) = body.role
        && role != before.role
    {
        after = st.store.set_user_role(id, role).await?;
    }
    if let Some(d) = body.disabled
        && d != before.disabled
    {
        after = st.store.set_user_disabled(id, d).await?;
    }
    if let Some(h) = &new_hash {
        st.store.set_password(id, h, None).await?;
    }
    st.store
        .audit(
            &me.user.username,
            "user.updated",
            Some(&before.username),
            Some(&addr),
            Some(serde_json::json!({
                "role": {"from": before.role, "to": after.role},
                "disabled": {"from": before.disabled, "to": after.disabled},
                "password": if new_hash.is_some() { "replaced" } else { "kept" },
            })),
        )
        .await?;
    Ok(Json(after))
}

pub async fn delete(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if id == me.user.id {
        return Err(ApiError::Conflict(
            "you cannot delete yourself; another admin can".into(),
        ));
    }
    let gone = st.store.delete_user(id).await?;
    st.store
        .audit(
            &me.user.username,
            "user.deleted",
            Some(&gone.username),
            Some(&addr),
            Some(serde_json::json!({"role": gone.role})),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default = "hundred")]
    limit: i64,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
}

fn hundred() -> i64 {
    100
}

pub async fn audit(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    for (field, v) in [("since", &q.since), ("until", &q.until)] {
        if let Some(v) = v
            && chrono::DateTime::parse_from_rfc3339(v).is_err()
        {
            return Err(ApiError::BadRequest(format!(
                "{field}: {v:?} is not an RFC 3339 time (2026-11-23T10:00:00Z)"
            )));
        }
    }
    let f = AuditFilter {
        actor: q.actor.filter(|v| !v.is_empty()),
        action: q.action.filter(|v| !v.is_empty()),
        since: q.since,
        until: q.until,
        before: q.before,
    };
    Ok(Json(st.store.audit_search(&f, q.limit).await?))
}
