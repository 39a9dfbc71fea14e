//! Every API route, enumerated from the router's own table, answers anonymous callers, bad
//! and expired tokens, and each role as its declared access says. A route added without the
//! right decision fails here.

use crate::support::TestApp;
use axum::http::Method;
use berth_domain::Role;
use berth_server::Access;

fn concrete(path: &str) -> String {
    // Fill path parameters ({id}) with a value of the right shape.
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_public_routes_are_exactly_these() {
    let t = TestApp::new().await;
    let mut public: Vec<String> = t
        .table
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    public.sort();
    assert_eq!(
        public,
        [
            "GET /api/auth/oidc/callback",
            "GET /api/auth/oidc/login",
            "GET /api/auth/providers",
            "GET /api/health",
            "POST /api/auth/login",
            "POST /api/auth/token",
            "POST /api/hooks/{source}",
            "POST /api/hooks/{source}/{secret}",
            "POST /api/webhook/{secret}"
        ],
        "a public route was added or removed: if on purpose, update this list"
    );
    assert!(t.table.len() >= 10);
    assert!(t.table.iter().all(|r| r.path.starts_with("/api/")));
}

#[tokio::test]
async fn every_route_enforces_its_access() {
    let t = TestApp::new().await;
    let expired = t.expired_token().await;
    for r in &t.table {
        let method: Method = r.method.parse().unwrap();
        let path = concrete(r.path);
        let what = format!("{} {}", r.method, r.path);
        let anon = t.call(method.clone(), &path, None, None).await;
        match r.access {
            Access::Public => {
                assert_ne!(
                    anon.status, 401,
                    "{what} is public but refused anonymous: {}",
                    anon.text
                );
            }
            Access::Role(required) => {
                anon.error(401);
                t.call(method.clone(), &path, Some("bt_not-a-real-token"), None)
                    .await
                    .error(401);
                t.call(method.clone(), &path, Some(&expired), None)
                    .await
                    .error(401);
                for role in Role::ALL {
                    // A fresh session each time: some routes (logout) end the one they use.
                    let token = t.token(role).await;
                    let a = t.call(method.clone(), &path, Some(&token), None).await;
                    if role.allows(required) {
                        assert!(
                            a.status != 401 && a.status != 403,
                            "{what}: {role} should pass, got {}: {}",
                            a.status,
                            a.text
                        );
                    } else {
                        let msg = a.error(403);
                        assert!(msg.contains(required.as_str()), "{what}: {msg}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn unknown_api_paths_get_the_envelope_and_never_the_spa() {
    let t = TestApp::new().await;
    t.get("/api/nope", None).await.error(404);
    t.get("/api", None).await.error(404);
    t.call(
        Method::POST,
        "/api/does/not/exist",
        None,
        Some(serde_json::json!({})),
    )
    .await
    .error(404);
    let page = t.get("/projects/some/deep/link", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers["cache-control"], "no-cache");
}

#[tokio::test]
async fn the_committed_openapi_description_matches_the_routes() {
    let t = TestApp::new().await;
    for r in &t.table {
        assert!(
            !r.summary.is_empty(),
            "{} {} has no .doc(…)",
            r.method,
            r.path
        );
    }
    let generated = berth_server::openapi::pretty(&t.table);
    let committed = include_str!("../../../../docs/openapi.json");
    assert!(
        generated == committed,
        "docs/openapi.json is out of date: run `cargo run -q -p berth -- openapi > docs/openapi.json`"
    );
    // Every route is in it, with its access.
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for r in &t.table {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing", r.method, r.path);
        let access = op["x-berth-access"].as_str().unwrap();
        match r.access {
            berth_server::Access::Public => assert_eq!(access, "public"),
            berth_server::Access::Role(role) => {
                assert_eq!(access, format!("role:{}", role.as_str()));
                assert!(op["security"].is_array());
            }
        }
    }
    // And served to any logged-in user.
    let viewer = t.token(berth_domain::Role::Viewer).await;
    let served = t.get("/api/openapi.json", Some(&viewer)).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json()["paths"], doc["paths"]);
}
