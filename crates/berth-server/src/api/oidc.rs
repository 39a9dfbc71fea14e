//! Single sign-on: `GET /api/auth/providers` (what the login page offers), the browser's
//! round trip `GET /api/auth/oidc/login` → provider → `GET /api/auth/oidc/callback`, and the
//! admin's `/api/settings/oidc`.
//!
//! The callback answers a browser navigation, so it never answers JSON: it redirects to the
//! dashboard with a session cookie, or to `/` with a short-lived `berth_login_error` cookie
//! whose words the login page shows once.

use crate::AppState;
use crate::api::npm::MASK;
use crate::api::session::{cookie, new_session, secure};
use crate::auth::{ClientAddr, CurrentUser, cookie_value, set_cookie};
use crate::error::{ApiError, ApiResult, Json};
use crate::oidc::{Identity, ProviderCheck, Refusal};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_crypto::SecretString;
use berth_domain::oidc::OidcSettings;
use berth_store::{SecretUpdate, SessionKind, StoreError, User};
use serde::{Deserialize, Serialize};

/// The cookie that binds a sign-in to the browser that started it.
const BINDING_COOKIE: &str = "berth_oidc";

/// Refuses password logins when the settings turned them off (and no break-glass is set).
pub(crate) async fn local_login_allowed(st: &AppState) -> ApiResult<()> {
    if st.settings.break_glass_local_login {
        return Ok(());
    }
    match st.store.oidc_settings().await? {
        Some(v) if !v.settings.local_login => Err(ApiError::Forbidden(format!(
            "password login is turned off: sign in with {} (an operator can turn it back on with BERTH_BREAK_GLASS_LOCAL_LOGIN=1)",
            v.settings.display_name
        ))),
        _ => Ok(()),
    }
}

#[derive(Serialize)]
pub struct Providers {
    /// Whether the username/password form works.
    local: bool,
    oidc: Option<Provider>,
}

#[derive(Serialize)]
pub struct Provider {
    /// "Sign in with <name>".
    name: String,
    /// Navigate the browser here to sign in.
    login_url: &'static str,
}

pub async fn providers(State(st): State<AppState>) -> ApiResult<Json<Providers>> {
    let oidc = st.store.oidc_settings().await?;
    Ok(Json(Providers {
        local: st.settings.break_glass_local_login
            || oidc.as_ref().is_none_or(|v| v.settings.local_login),
        oidc: oidc.map(|v| Provider {
            name: v.settings.display_name,
            login_url: "/api/auth/oidc/login",
        }),
    }))
}

fn redirect(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn binding_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    // Lax, not Strict: the provider's redirect back is a cross-site navigation.
    set_cookie(
        BINDING_COOKIE,
        value,
        "Path=/api/auth/oidc; HttpOnly; SameSite=Lax",
        max_age,
        secure,
    )
}

/// The cookie that carries a refusal to the login page. A cookie and not the URL, so a link
/// from elsewhere cannot make berth's login page show words of its author's choosing.
pub const ERROR_COOKIE: &str = "berth_login_error";

/// Back to the login page with a message it shows (and clears) once. Not HttpOnly: the
/// login page reads it.
fn to_login(why: &str, secure: bool) -> Response {
    let v: String = openidconnect::url::form_urlencoded::byte_serialize(why.as_bytes()).collect();
    let mut res = redirect("/");
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(ERROR_COOKIE, &v, "Path=/; SameSite=Lax", 60, secure),
    );
    res
}

/// A path inside berth to return to; anything else becomes `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/api/")
                && n.len() <= 512
                && n.chars().all(|c| c.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let is_secure = secure(&st, &headers);
    let (view, secret) = match (
        st.store.oidc_settings().await,
        st.store.oidc_client_secret().await,
    ) {
        (Ok(Some(view)), Ok(secret)) => (view, secret),
        (Ok(None), _) => return to_login("single sign-on is not configured", is_secure),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot read the OIDC settings");
            return to_login(
                "berth cannot read its identity provider settings",
                is_secure,
            );
        }
    };
    match st
        .oidc
        .begin(
            &view.settings,
            secret.as_ref(),
            &safe_next(q.next.as_deref()),
        )
        .await
    {
        Ok(started) => {
            let mut res = redirect(&started.authorize_url);
            res.headers_mut().insert(
                header::SET_COOKIE,
                binding_cookie(
                    started.binding.expose(),
                    crate::oidc::PENDING_TTL.as_secs(),
                    is_secure,
                ),
            );
            res
        }
        Err(Refusal(why)) => {
            tracing::warn!(reason = %why, "single sign-on could not start");
            to_login(&why, is_secure)
        }
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(st): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let is_secure = secure(&st, &headers);
    let mut res = match sign_in(&st, &addr, &headers, q).await {
        Ok((user, next)) => {
            match new_session(&st, &user, SessionKind::Browser, &addr, &headers).await {
                Ok((secret, _)) => {
                    let mut res = redirect(&next);
                    res.headers_mut().append(
                        header::SET_COOKIE,
                        cookie(
                            secret.expose(),
                            st.settings.session_ttl.as_secs(),
                            is_secure,
                        ),
                    );
                    res
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot create a session after single sign-on");
                    to_login("berth could not start your session; try again", is_secure)
                }
            }
        }
        Err(why) => {
            tracing::info!(client.addr = %addr, reason = %why, "single sign-on refused");
            let _ = st
                .store
                .audit(
                    "anonymous",
                    "login.failed",
                    None,
                    Some(&addr),
                    Some(serde_json::json!({"via": "oidc", "reason": why.0})),
                )
                .await;
            to_login(&why.0, is_secure)
        }
    };
    res.headers_mut()
        .append(header::SET_COOKIE, binding_cookie("", 0, is_secure));
    res
}

fn store_refusal(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "single sign-on: the store failed");
    Refusal("berth could not record your sign-in; try again".into())
}

async fn sign_in(
    st: &AppState,
    addr: &str,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<(User, String), Refusal> {
    if let Some(err) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(Refusal(format!(
            "the identity provider refused the sign-in: {err}{}{detail}",
            if detail.is_empty() { "" } else { ": " }
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(Refusal(
            "the identity provider's answer has no code or state; start again".into(),
        ));
    };
    let view = st
        .store
        .oidc_settings()
        .await
        .map_err(store_refusal)?
        .ok_or_else(|| Refusal("single sign-on is not configured".into()))?;
    let secret = st.store.oidc_client_secret().await.map_err(store_refusal)?;
    let binding = cookie_value(headers, BINDING_COOKIE);
    let identity = st
        .oidc
        .finish(
            &view.settings,
            secret.as_ref(),
            &state,
            &code,
            binding.as_deref(),
        )
        .await?;
    let user = user_for(st, &view.settings, &identity, addr).await?;
    st.store
        .audit(
            &user.username,
            "login.succeeded",
            None,
            Some(addr),
            Some(serde_json::json!({"via": "oidc", "role": user.role})),
        )
        .await
        .map_err(store_refusal)?;
    Ok((user, identity.next))
}

/// The berth user for a verified identity: the linked one, an admin-made password-less one
/// of the same name, or (if allowed) a new one. The rules' role is applied on every
/// sign-in, so a change of groups at the provider reaches berth at the next sign-in.
async fn user_for(
    st: &AppState,
    s: &OidcSettings,
    id: &Identity,
    addr: &str,
) -> Result<User, Refusal> {
    let rule_role = s.role_from_rules(&id.claims);
    let known = match st
        .store
        .user_by_identity(&id.issuer, &id.subject)
        .await
        .map_err(store_refusal)?
    {
        Some(u) => Some(u),
        None => {
            let name = s.username_from(&id.claims).map_err(Refusal)?;
            st.store
                .link_sso_user(&name, &id.issuer, &id.subject)
                .await
                .map_err(store_refusal)?
        }
    };
    if let Some(user) = known {
        if user.disabled {
            return Err(Refusal(format!(
                "the berth user {} is disabled; ask an admin",
                user.username
            )));
        }
        return match rule_role {
            Some(role) if role != user.role => match st.store.set_user_role(user.id, role).await {
                Ok(changed) => {
                    let _ = st
                        .store
                        .audit(
                            "oidc",
                            "user.role_changed",
                            Some(&user.username),
                            Some(addr),
                            Some(serde_json::json!({"from": user.role, "to": role, "by": "role rules"})),
                        )
                        .await;
                    Ok(changed)
                }
                Err(StoreError::Conflict(why)) => {
                    tracing::warn!(user.name = %user.username, reason = %why, "role rules not applied");
                    Ok(user)
                }
                Err(e) => Err(store_refusal(e)),
            },
            _ => Ok(user),
        };
    }
    let name = s.username_from(&id.claims).map_err(Refusal)?;
    if !s.allow_new_users {
        return Err(Refusal(format!(
            "berth lets in only users an admin has added; ask an admin to add {name}"
        )));
    }
    let role = rule_role.unwrap_or(s.default_role);
    match st
        .store
        .create_sso_user(&name, role, &id.issuer, &id.subject)
        .await
    {
        Ok(user) => {
            let _ = st
                .store
                .audit(
                    "oidc",
                    "user.created",
                    Some(&user.username),
                    Some(addr),
                    Some(serde_json::json!({"via": "oidc", "role": role})),
                )
                .await;
            Ok(user)
        }
        Err(StoreError::Conflict(_)) => Err(Refusal(format!(
            "a berth user named {name} already exists and signs in with a password; an admin must remove its password or rename it first"
        ))),
        Err(e) => Err(store_refusal(e)),
    }
}

#[derive(Serialize)]
pub struct OidcAnswer {
    #[serde(flatten)]
    settings: OidcSettings,
    /// `"********"` when a client secret is stored, else null. Never the secret.
    client_secret: Option<&'static str>,
    /// Register this at the provider as the redirect URI.
    redirect_url: String,
}

async fn answer(st: &AppState) -> ApiResult<Json<OidcAnswer>> {
    let v = st
        .store
        .oidc_settings()
        .await?
        .ok_or_else(|| ApiError::NotFound("single sign-on is not configured".into()))?;
    Ok(Json(OidcAnswer {
        redirect_url: v.settings.redirect_url(),
        client_secret: v.has_secret.then_some(MASK),
        settings: v.settings,
    }))
}

pub async fn get_settings(State(st): State<AppState>) -> ApiResult<Json<OidcAnswer>> {
    answer(&st).await
}

pub async fn put_settings(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(mut body): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<OidcAnswer>> {
    let update = match body.remove("client_secret") {
        None => SecretUpdate::Keep,
        Some(serde_json::Value::Null) => SecretUpdate::Clear,
        Some(serde_json::Value::String(p)) if p.is_empty() => {
            return Err(ApiError::BadRequest(
                "client_secret must not be empty: leave it out to keep the stored one, or send null to remove it".into(),
            ));
        }
        Some(serde_json::Value::String(p)) => SecretUpdate::Replace(SecretString::new(p)),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "client_secret must be a string (or null to remove it)".into(),
            ));
        }
    };
    let mut settings: OidcSettings = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    settings.validate().map_err(ApiError::BadRequest)?;
    if !settings.local_login && !st.store.sso_admin_exists(&settings.issuer).await? {
        return Err(ApiError::Conflict(format!(
            "password login can be turned off only after an admin has signed in with {}: sign in with it once and give that user the admin role first",
            settings.display_name
        )));
    }
    let action = match &update {
        SecretUpdate::Keep => "kept",
        SecretUpdate::Replace(_) => "replaced",
        SecretUpdate::Clear => "removed",
    };
    st.store.set_oidc_settings(&settings, update).await?;
    st.oidc.forget_provider();
    st.store
        .audit(
            &me.user.username,
            "oidc.updated",
            Some(&settings.issuer),
            Some(&addr),
            Some(serde_json::json!({"client_secret": action, "local_login": settings.local_login})),
        )
        .await?;
    answer(&st).await
}

pub async fn delete_settings(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<StatusCode> {
    if !st.store.delete_oidc_settings().await? {
        return Err(ApiError::NotFound(
            "single sign-on is not configured".into(),
        ));
    }
    st.oidc.forget_provider();
    st.store
        .audit(&me.user.username, "oidc.deleted", None, Some(&addr), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/settings/oidc/test`: discovery with the stored settings.
pub async fn test(State(st): State<AppState>) -> ApiResult<Json<ProviderCheck>> {
    let v = st
        .store
        .oidc_settings()
        .await?
        .ok_or_else(|| ApiError::NotFound("single sign-on is not configured".into()))?;
    st.oidc
        .check(&v.settings)
        .await
        .map(Json)
        .map_err(|e| ApiError::BadGateway(e.0))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_inside_berth() {
        assert_eq!(safe_next(Some("/deploys/abc")), "/deploys/abc");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "/api/auth/logout",
            "deploys",
            "/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
