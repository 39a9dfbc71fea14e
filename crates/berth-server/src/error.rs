//! One error type for the HTTP layer and one JSON envelope for every error berth answers:
//!
//! ```json
//! {"error": {"status": 400, "code": "bad_request", "message": "…"}}
//! ```
//!
//! Error types come in layers: thiserror enums in library crates (`StoreError`,
//! `EngineError`, …), converted to [`ApiError`] only here. 4xx messages are written for the
//! user; 5xx answers carry a fixed text and the cause goes to the log, once, inside the
//! request's span (which carries the request id).
//!
//! Extractor rejections (bad JSON, wrong content type, a body over the limit, a bad path or
//! query) go through [`Json`], [`Path`] and [`Query`] below so they use the same envelope;
//! [`envelope_errors`] catches whatever else answers an `/api` request with a non-JSON error
//! (the router's 405, a layer's 413).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_domain::ports::EngineError;
use berth_store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// Something berth talks to (NPM, a registry) failed.
    #[error("{0}")]
    BadGateway(String),
    /// The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The `code` field: a stable word for each status.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        502 => "bad_gateway",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
}

/// Builds the envelope for `status` with `message`.
pub fn envelope(status: StatusCode, message: &str) -> Response {
    let body = Envelope {
        error: Body {
            status: status.as_u16(),
            code: code_for(status),
            message,
        },
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was never read: the connection cannot carry another request,
        // and a client that reused it would see its next request cut off.
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                envelope(
                    status,
                    "internal error; the cause is in berth's log under this request's id",
                )
            }
            ApiError::TooManyRequests {
                message,
                retry_after_secs,
            } => {
                let mut res = envelope(status, message);
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(&1).to_owned()),
                );
                res
            }
            other => envelope(status, &other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            other => ApiError::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            EngineError::NotFound(m) => ApiError::NotFound(m),
            EngineError::Engine(m) => {
                ApiError::BadRequest(format!("the container engine refused: {m}"))
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `axum::Json`, with rejections in berth's envelope.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(match &r {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                    "send the body as JSON with Content-Type: application/json".into(),
                ),
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::BadRequest(format!("the body is not valid JSON: {}", r.body_text()))
                }
                JsonRejection::JsonDataError(_) => ApiError::BadRequest(r.body_text()),
                _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                    "the request body is larger than berth accepts".into(),
                ),
                _ => ApiError::BadRequest(r.body_text()),
            }),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path`, with rejections in berth's envelope.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r: PathRejection| ApiError::BadRequest(r.body_text()))
    }
}

/// `axum::extract::Query`, with rejections in berth's envelope.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r: QueryRejection| ApiError::BadRequest(r.body_text()))
    }
}

/// Rewrites any non-JSON error answer to an `/api` request into the envelope.
pub async fn envelope_errors(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/") || req.uri().path() == "/api";
    let res = next.run(req).await;
    let status = res.status();
    if !is_api || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this path",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than berth accepts",
        StatusCode::NOT_FOUND => "no such API route",
        StatusCode::REQUEST_TIMEOUT => "the request took too long",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let mut out = envelope(status, message);
    for (k, v) in res.headers() {
        if k == header::ALLOW || k == header::RETRY_AFTER {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}
