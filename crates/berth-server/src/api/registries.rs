//! Registries as records (admin): URL, kind, username, and a write-only password or token;
//! a connection test that says what failed (DNS, TLS, connect, 401, 404).

use crate::AppState;
use crate::api::npm::present;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use berth_crypto::SecretString;
use berth_domain::model::{RegistryKind, RegistrySpec, validate_http_url};
use berth_store::{RegistryView, SecretUpdate};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryBody {
    /// Letters, digits, `-` and `_` (create only; the path names it on update).
    #[serde(default)]
    name: Option<String>,
    /// generic, dockerhub, ghcr, gitea, forgejo, gitlab, harbor or quay.
    #[serde(default = "generic")]
    #[schema(value_type = String)]
    kind: RegistryKind,
    /// `https://ghcr.io`, `http://127.0.0.1:5000`.
    url: String,
    #[serde(default)]
    username: Option<String>,
    /// Left out: keep the stored one; `null`: clear it; a string: replace it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    password: Option<Option<SecretString>>,
}

fn generic() -> RegistryKind {
    RegistryKind::Generic
}

fn valid_name(name: &str) -> ApiResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::BadRequest(
            "name: 1 to 64 letters, digits, '-' or '_'".into(),
        ));
    }
    Ok(())
}

fn spec(name: String, b: &RegistryBody) -> ApiResult<RegistrySpec> {
    valid_name(&name)?;
    validate_http_url("url", &b.url).map_err(|m| ApiError::BadRequest(format!("url: {m}")))?;
    Ok(RegistrySpec {
        name,
        kind: b.kind,
        url: b.url.trim_end_matches('/').to_string(),
        username: b.username.clone().filter(|u| !u.is_empty()),
        secret: None,
    })
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<RegistryView>>> {
    Ok(Json(st.store.list_registries().await?))
}

pub async fn create(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<RegistryBody>,
) -> ApiResult<(StatusCode, Json<Vec<RegistryView>>)> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::BadRequest("name: required".into()))?;
    let mut r = spec(name, &body)?;
    r.secret = body.password.flatten();
    st.store.create_registry(&r).await?;
    st.store
        .audit(
            &me.user.username,
            "registry.created",
            Some(&r.name),
            Some(&addr),
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(st.store.list_registries().await?)))
}

pub async fn update(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(name): Path<String>,
    Json(body): Json<RegistryBody>,
) -> ApiResult<Json<Vec<RegistryView>>> {
    if let Some(n) = &body.name
        && n != &name
    {
        return Err(ApiError::BadRequest(format!(
            "name: {n:?} differs from {name:?} in the path; names cannot be changed"
        )));
    }
    let r = spec(name.clone(), &body)?;
    let secret = match body.password {
        None => SecretUpdate::Keep,
        Some(None) => SecretUpdate::Clear,
        Some(Some(s)) => SecretUpdate::Replace(s),
    };
    st.store.update_registry(&r, secret).await?;
    st.store
        .audit(
            &me.user.username,
            "registry.updated",
            Some(&name),
            Some(&addr),
            None,
        )
        .await?;
    Ok(Json(st.store.list_registries().await?))
}

pub async fn delete(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.store.delete_registry(&name).await?;
    st.store
        .audit(
            &me.user.username,
            "registry.deleted",
            Some(&name),
            Some(&addr),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    /// A repository (`org/app`) to check pull access to.
    repository: Option<String>,
}

#[derive(Serialize)]
pub struct TestAnswer {
    ok: bool,
    registry: String,
}

/// `POST /api/registries/{name}/test`: logs in with the stored credentials; `502` with what
/// failed.
pub async fn test(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TestQuery>,
) -> ApiResult<Json<TestAnswer>> {
    let r = st
        .store
        .registry(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no registry named {name}")))?;
    let host = r.host().to_string();
    let auth = r.auth_for(&host);
    st.registry
        .check(&host, q.repository.as_deref(), auth.as_ref())
        .await
        .map_err(|e| ApiError::BadGateway(format!("{host}: {e}")))?;
    Ok(Json(TestAnswer {
        ok: true,
        registry: host,
    }))
}
