//! Live events over SSE, in process: a deploy's progress reaches subscribers; filters,
//! the per-deploy stream's backlog and end, and shutdown closing streams.

use crate::support::{EXAMPLE_SEED, TestApp};
use axum::body::Body;
use axum::http::{Method, Request, header};
use berth_domain::Role;
use http_body_util::BodyExt;
use serde_json::json;
use std::time::Duration;
use tower::ServiceExt;

/// Reads SSE text from a body until `until` appears or `wait` passes.
async fn read_until(body: &mut Body, until: &str, wait: Duration) -> (String, bool) {
    let mut text = String::new();
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    text.push_str(&String::from_utf8_lossy(d));
                    if text.contains(until) {
                        return (text, true);
                    }
                }
            }
            Ok(_) => return (text, false),  // the stream ended
            Err(_) => return (text, false), // timed out
        }
    }
}

async fn open(t: &TestApp, path: &str, token: &str) -> (axum::http::response::Parts, Body) {
    let req = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    t.router.clone().oneshot(req).await.unwrap().into_parts()
}

#[tokio::test]
async fn deploy_progress_reaches_subscribers() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let viewer = t.token(Role::Viewer).await;
    let deployer = t.token(Role::Deployer).await;
    let (parts, mut all) = open(&t, "/api/events", &viewer).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "text/event-stream");
    let (_, mut other) = open(&t, "/api/events?project=someone-else", &viewer).await;

    let a = t
        .call(
            Method::POST,
            "/api/projects/web-app-launcher/stages/dev/deploys",
            Some(&deployer),
            Some(json!({"tag": "dev-1"})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = a.json()["deploy"].as_str().unwrap().to_string();
    // No engine here: the deploy fails at pulling, and every subscriber sees it happen.
    let (text, seen) = read_until(&mut all, "\"state\":\"failed\"", Duration::from_secs(10)).await;
    assert!(seen, "{text}");
    assert!(
        text.contains("event: deploy")
            && text.contains(&id)
            && text.contains("\"state\":\"queued\""),
        "{text}"
    );
    let (text, seen) = read_until(&mut other, "data:", Duration::from_millis(500)).await;
    assert!(
        !seen,
        "a filtered subscriber got another project's events: {text}"
    );

    // The per-deploy stream of a finished deploy: its log, its final state, then the end.
    let (parts, mut one) = open(&t, &format!("/api/deploys/{id}/stream"), &viewer).await;
    assert_eq!(parts.status, 200);
    let (text, _) = read_until(&mut one, "never", Duration::from_secs(5)).await;
    assert!(
        text.contains("event: log") && text.contains("unavailable"),
        "{text}"
    );
    assert!(text.contains("event: state\ndata: failed"), "{text}");
    assert!(
        one.frame().await.is_none(),
        "the stream of a finished deploy must end"
    );

    // Bad ids are 404s in the envelope.
    t.get("/api/deploys/not-an-id/stream", Some(&viewer))
        .await
        .error(404);
}

#[tokio::test]
async fn streams_end_at_shutdown() {
    let t = TestApp::new().await;
    let viewer = t.token(Role::Viewer).await;
    let (_, mut body) = open(&t, "/api/events", &viewer).await;
    t.app.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(f) = body.frame().await {
            f.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream outlived shutdown");
}
