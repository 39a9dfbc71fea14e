//! `GET /api/users` and `GET /api/audit` (admin, with filters).

use crate::AppState;
use crate::error::{ApiError, ApiResult, Json, Query};
use axum::extract::State;
use berth_store::{AuditEntry, AuditFilter, User};
use serde::Deserialize;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(st.store.list_users().await?))
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
