//! `GET /api/containers`: the engine's containers, as berth sees them.

use crate::AppState;
use crate::error::{ApiResult, Json};
use axum::extract::State;
use berth_domain::ports::ContainerSummary;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<ContainerSummary>>> {
    Ok(Json(st.engine.list_containers().await?))
}
