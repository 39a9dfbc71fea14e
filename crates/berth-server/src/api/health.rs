//! `GET /api/health`: is berth up, is its database, is the container engine.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_domain::ports::EngineStatus;
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Health {
    /// `ok`; `degraded` when the engine is unreachable (berth still serves);
    /// `unavailable` when the database fails or berth is shutting down.
    pub status: String,
    pub version: String,
    pub database: Component,
    pub engine: serde_json::Value,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Component {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn get(State(st): State<AppState>) -> Response {
    let database = match st.store.ping().await {
        Ok(()) => Component {
            status: "ok".into(),
            error: None,
        },
        Err(e) => {
            tracing::warn!(error = %e, "health: database check failed");
            Component {
                status: "unavailable".into(),
                error: Some("the database does not answer".into()),
            }
        }
    };
    let engine = st.engine.status();
    let shutting_down = st.shutting_down.load(Ordering::Relaxed);
    let (status, code) = if database.error.is_some() || shutting_down {
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    } else if !matches!(engine, EngineStatus::Connected { .. }) {
        ("degraded", StatusCode::OK)
    } else {
        ("ok", StatusCode::OK)
    };
    let body = Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database,
        engine: serde_json::to_value(engine).unwrap_or_default(),
    };
    let mut res = (code, axum::Json(body)).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}
