//! `GET /api/projects`: projects with their stages. (The deploy engine adds the rest.)

use crate::AppState;
use crate::error::{ApiResult, Json};
use axum::extract::State;
use berth_store::ProjectSummary;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<ProjectSummary>>> {
    Ok(Json(st.store.list_projects().await?))
}
