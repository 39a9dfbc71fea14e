//! One envelope for every error, and the headers every answer carries.

use crate::support::TestApp;
use axum::body::Body;
use axum::http::{Method, Request, header};
use berth_domain::Role;

#[tokio::test]
async fn body_rejections_use_the_envelope() {
    let t = TestApp::new().await;
    let post = |body: &'static str, ct: &'static str| {
        Request::post("/api/auth/login")
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap()
    };
    let msg = t
        .send(post("{not json", "application/json"))
        .await
        .error(400);
    assert!(msg.contains("not valid JSON"), "{msg}");
    let msg = t
        .send(post(r#"{"username":"a"}"#, "application/json"))
        .await
        .error(400);
    assert!(msg.contains("password"), "{msg}");
    let msg = t
        .send(post(
            r#"{"username":"a","password":"b","extra":1}"#,
            "application/json",
        ))
        .await
        .error(400);
    assert!(msg.contains("extra"), "{msg}");
    let msg = t
        .send(post(r#"{"username":"a","password":"b"}"#, "text/plain"))
        .await
        .error(415);
    assert!(msg.contains("application/json"), "{msg}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let t = TestApp::builder()
        .settings(|s| s.max_body_bytes = 4096)
        .build()
        .await;
    let big = format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(10_000));
    let a = t
        .send(
            Request::post("/api/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(big))
                .unwrap(),
        )
        .await;
    a.error(413);
    assert_eq!(
        a.headers.get(header::CONNECTION).map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the unread body leaves the connection unusable: say so"
    );
}

#[tokio::test]
async fn wrong_methods_and_queries_use_the_envelope() {
    let t = TestApp::new().await;
    let a = t.call(Method::DELETE, "/api/health", None, None).await;
    a.error(405);
    let admin = t.token(Role::Admin).await;
    let msg = t
        .get("/api/config/export?include_secrets=perhaps", Some(&admin))
        .await
        .error(400);
    assert!(msg.contains("include_secrets"), "{msg}");
    t.get("/api/audit?bogus=1", Some(&admin)).await.error(400);
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_a_request_id() {
    let t = TestApp::new().await;
    for path in ["/api/health", "/api/projects", "/", "/assets/missing.js"] {
        let a = t.get(path, None).await;
        for h in [
            "x-content-type-options",
            "x-frame-options",
            "content-security-policy",
            "referrer-policy",
            "x-request-id",
        ] {
            assert!(a.headers.contains_key(h), "{path}: {h} missing");
        }
    }
    let a = t.get("/api/health", None).await;
    assert_eq!(a.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn health_reports_an_absent_engine_without_failing() {
    let t = TestApp::new().await;
    let a = t.get("/api/health", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["database"]["status"], "ok");
    assert_eq!(v["engine"]["status"], "unavailable");
    assert!(
        v["engine"]["error"]
            .as_str()
            .unwrap()
            .contains("nonexistent")
    );
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let viewer = t.token(Role::Viewer).await;
    let msg = t.get("/api/containers", Some(&viewer)).await.error(503);
    assert!(msg.contains("unavailable"), "{msg}");
}

#[tokio::test]
async fn health_says_unavailable_while_shutting_down() {
    let t = TestApp::new().await;
    t.app
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let a = t.get("/api/health", None).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.json()["status"], "unavailable");
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_index_is_not_cached() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    let Some(asset) = std::fs::read_dir(dist.join("assets"))
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        })
    else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "web/dist is not built: run npm run build in web/"
        );
        eprintln!("skipped: web/dist not built");
        return;
    };
    let t = TestApp::new().await;
    let a = t.get(&format!("/assets/{asset}"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let index = t.get("/", None).await;
    assert_eq!(index.headers["cache-control"], "no-cache");
    assert!(
        index.text.contains(&asset) || asset.ends_with(".css") || index.text.contains("/assets/")
    );
    // A deep link gets the same index.html, an unknown asset a 404 (never index.html).
    assert_eq!(t.get("/settings/anything", None).await.text, index.text);
    assert_eq!(t.get("/assets/nope-123.js", None).await.status, 404);
}
