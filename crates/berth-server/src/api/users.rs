//! `GET /api/users` and `GET /api/audit` (admin). The Accounts work adds the rest.

use crate::AppState;
use crate::error::{ApiResult, Json, Query};
use axum::extract::State;
use berth_store::{AuditEntry, User};
use serde::Deserialize;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(st.store.list_users().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default = "hundred")]
    limit: i64,
}

fn hundred() -> i64 {
    100
}

pub async fn audit(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(st.store.audit_entries(q.limit).await?))
}
