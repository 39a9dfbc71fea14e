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
            "GET /api/health",
            "POST /api/auth/login",
            "POST /api/auth/token",
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
