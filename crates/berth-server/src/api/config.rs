//! `GET /api/config/export`: the configuration as seed YAML; secrets only with
//! `?include_secrets=true` (and that is audited).

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiResult, Query};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_config::seed::IncludeSecrets;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    include_secrets: bool,
}

pub async fn export(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let include = if q.include_secrets {
        IncludeSecrets::Yes
    } else {
        IncludeSecrets::No
    };
    let yaml = st.store.export_seed(include).await?.to_yaml(include);
    st.store
        .audit(
            &me.user.username,
            "config.exported",
            None,
            Some(&addr),
            Some(serde_json::json!({ "include_secrets": q.include_secrets })),
        )
        .await?;
    let mut res = yaml.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"berth-config.yaml\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
