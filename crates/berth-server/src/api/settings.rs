//! `GET/PUT /api/settings`: the global settings.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json};
use axum::extract::State;
use berth_domain::model::GlobalSettings;

pub async fn get(State(st): State<AppState>) -> ApiResult<Json<GlobalSettings>> {
    Ok(Json(st.store.global_settings().await?))
}

pub async fn put(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(new): Json<GlobalSettings>,
) -> ApiResult<Json<GlobalSettings>> {
    berth_config::seed::validate_global(&new)
        .map_err(|(field, m)| ApiError::BadRequest(format!("{field}: {m}")))?;
    let old = st.store.global_settings().await?;
    st.store.set_global_settings(&new).await?;
    let (o, n) = (
        serde_json::to_value(&old).unwrap_or_default(),
        serde_json::to_value(&new).unwrap_or_default(),
    );
    let changed: Vec<&String> = n
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| o.get(k.as_str()) != Some(*v))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    st.store
        .audit(
            &me.user.username,
            "settings.updated",
            Some("global"),
            Some(&addr),
            Some(serde_json::json!({ "changed": changed })),
        )
        .await?;
    Ok(Json(new))
}
