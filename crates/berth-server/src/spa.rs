//! The embedded single-page app (web/dist, built by Vite). Hashed assets under `assets/` are
//! immutable; `index.html` is never cached; unknown non-API paths get `index.html` so the
//! SPA's router can take them; `/api/*` never gets it.

use crate::error::envelope;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>berth</title>\
<p>berth is running, but its web UI was not built into this binary. \
Run <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then rebuild berth. \
The API is available under <code>/api</code>.</p>";

fn file(path: &str, cache: &'static str) -> Option<Response> {
    let f = Assets::get(path)?;
    let mime = f.metadata.mimetype().to_string();
    let mut res = (StatusCode::OK, f.data.into_owned()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(res)
}

pub(crate) async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return envelope(StatusCode::NOT_FOUND, "no such API route");
    }
    if path.starts_with("assets/") {
        return file(path, "public, max-age=31536000, immutable")
            .unwrap_or_else(|| (StatusCode::NOT_FOUND, "no such asset").into_response());
    }
    if !path.is_empty()
        && path != "index.html"
        && let Some(res) = file(path, "public, max-age=3600")
    {
        return res;
    }
    file("index.html", "no-cache").unwrap_or_else(|| {
        let mut res = (StatusCode::OK, NOT_BUILT).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        res
    })
}
