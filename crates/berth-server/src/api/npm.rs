//! `GET/PUT/DELETE /api/npm`: the Nginx Proxy Manager connection. The password is write-only:
//! answers show `"********"` when one is stored, and a PUT without `password` keeps it
//! (`"password": null` removes it).

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json};
use axum::extract::State;
use axum::http::StatusCode;
use berth_crypto::SecretString;
use berth_domain::model::{NpmSettings, UpstreamMode, validate_http_url};
use berth_store::{NpmView, SecretUpdate};
use serde::{Deserialize, Deserializer, Serialize};

pub const MASK: &str = "********";

#[derive(Serialize)]
pub struct NpmAnswer {
    url: String,
    email: String,
    /// `"********"` when a password is stored, else null. Never the password.
    password: Option<&'static str>,
    upstream: UpstreamMode,
    certificate_id: Option<u32>,
    websockets: bool,
}

impl From<NpmView> for NpmAnswer {
    fn from(v: NpmView) -> Self {
        Self {
            password: v.has_password.then_some(MASK),
            url: v.url,
            email: v.email,
            upstream: v.upstream,
            certificate_id: v.certificate_id,
            websockets: v.websockets,
        }
    }
}

/// Absent → `None` (keep); `null` → `Some(None)` (clear); a string → `Some(Some(_))`.
pub(crate) fn present<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<SecretString>>, D::Error> {
    Option::<SecretString>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NpmUpdate {
    /// NPM's admin API, e.g. `http://npm:81`.
    url: String,
    /// The service account's email.
    email: String,
    /// Left out: keep the stored password; `null`: clear it; a string: replace it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    password: Option<Option<SecretString>>,
    /// `container_name` (NPM on berth's network) or `host_port`.
    #[serde(default)]
    #[schema(value_type = String)]
    upstream: UpstreamMode,
    #[serde(default)]
    certificate_id: Option<u32>,
    #[serde(default)]
    websockets: bool,
}

pub async fn get(State(st): State<AppState>) -> ApiResult<Json<NpmAnswer>> {
    let view = st
        .store
        .npm_settings()
        .await?
        .ok_or_else(|| ApiError::NotFound("Nginx Proxy Manager is not configured".into()))?;
    Ok(Json(view.into()))
}

pub async fn put(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<NpmUpdate>,
) -> ApiResult<Json<NpmAnswer>> {
    let url = body.url.trim().trim_end_matches('/').to_string();
    validate_http_url("url", &url).map_err(ApiError::BadRequest)?;
    let email = body.email.trim().to_string();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::BadRequest(
            "email: NPM logs in with an email address".into(),
        ));
    }
    let password = match body.password {
        None => SecretUpdate::Keep,
        Some(None) => SecretUpdate::Clear,
        Some(Some(p)) if p.is_empty() => {
            return Err(ApiError::BadRequest(
                "password must not be empty: leave it out to keep the stored one, or send null to remove it".into(),
            ));
        }
        Some(Some(p)) => SecretUpdate::Replace(p),
    };
    let action = match &password {
        SecretUpdate::Keep => "kept",
        SecretUpdate::Replace(_) => "replaced",
        SecretUpdate::Clear => "removed",
    };
    let settings = NpmSettings {
        url,
        email,
        password: None,
        upstream: body.upstream,
        certificate_id: body.certificate_id,
        websockets: body.websockets,
    };
    st.store.set_npm_settings(&settings, password).await?;
    st.store
        .audit(
            &me.user.username,
            "npm.updated",
            Some(&settings.url),
            Some(&addr),
            Some(serde_json::json!({ "password": action })),
        )
        .await?;
    let view = st
        .store
        .npm_settings()
        .await?
        .ok_or_else(|| ApiError::internal("NPM settings vanished"))?;
    Ok(Json(view.into()))
}

pub async fn delete(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<StatusCode> {
    if !st.store.delete_npm_settings().await? {
        return Err(ApiError::NotFound(
            "Nginx Proxy Manager is not configured".into(),
        ));
    }
    st.store
        .audit(&me.user.username, "npm.deleted", None, Some(&addr), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/npm/test`: reaches NPM with the stored settings and logs in.
pub async fn test(State(st): State<AppState>) -> ApiResult<Json<berth_domain::ports::ProxyInfo>> {
    let settings = st
        .store
        .npm_connection()
        .await?
        .ok_or_else(|| ApiError::NotFound("Nginx Proxy Manager is not configured".into()))?;
    if settings.password.is_none() {
        return Err(ApiError::BadRequest(
            "no NPM password is stored: set one first".into(),
        ));
    }
    let client = st.proxy.connect(&settings);
    client
        .check()
        .await
        .map(Json)
        .map_err(|e| ApiError::BadGateway(e.to_string()))
}
