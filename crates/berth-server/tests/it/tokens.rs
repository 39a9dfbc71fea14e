//! API tokens (named, role-capped, expiring, revocable), the sessions list, "log out
//! everywhere", an admin ending a user's sessions, and the audit log's filters.

use crate::support::TestApp;
use axum::http::Method;
use berth_domain::Role;
use serde_json::json;

async fn new_token(t: &TestApp, as_: &str, body: serde_json::Value) -> crate::support::Answer {
    t.call(Method::POST, "/api/auth/tokens", Some(as_), Some(body))
        .await
}

#[tokio::test]
async fn a_token_acts_with_its_own_role_until_it_is_revoked() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let a = new_token(
        &t,
        &admin,
        json!({"name": "ci-shop", "role": "deployer", "expires_in_days": 30}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let body = a.json();
    let token = body["token"].as_str().unwrap().to_string();
    let id = body["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("bt_") && token.len() > 30);
    assert_eq!(body["role"], "deployer");

    // A deployer token of an admin reads and deploys, but changes no settings.
    assert_eq!(t.get("/api/projects", Some(&token)).await.status, 200);
    let settings = t.get("/api/settings", Some(&admin)).await.json();
    let msg = t
        .call(Method::PUT, "/api/settings", Some(&token), Some(settings))
        .await
        .error(403);
    assert!(msg.contains("admin"), "{msg}");
    let me = t.get("/api/auth/me", Some(&token)).await.json();
    assert_eq!(me["user"]["role"], "deployer");

    // Listed by id and name, never by secret; the caller's own session is marked.
    let list = t.get("/api/auth/sessions", Some(&admin)).await;
    assert!(!list.text.contains(&token[3..]), "a secret in the list");
    let rows = list.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the token is listed");
    assert_eq!(row["name"], "ci-shop");
    assert_eq!(row["kind"], "script");
    assert_eq!(row["current"], false);
    assert_eq!(
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["current"] == true)
            .count(),
        1
    );

    // Revoked: refused at once; revoking again is a clear 404.
    let r = t
        .call(
            Method::DELETE,
            &format!("/api/auth/sessions/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    t.get("/api/projects", Some(&token)).await.error(401);
    t.call(
        Method::DELETE,
        &format!("/api/auth/sessions/{id}"),
        Some(&admin),
        None,
    )
    .await
    .error(404);

    // Both are in the audit log, by id, without the secret.
    let audit = t.get("/api/audit?action=token.", Some(&admin)).await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    assert!(!audit.text.contains(&token[3..]));
    let entries = audit.json();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    assert_eq!(entries[0]["action"], "token.created");
    assert_eq!(entries[0]["target"], id.as_str());
    let revoked = t
        .get("/api/audit?action=session.revoked", Some(&admin))
        .await
        .json();
    assert_eq!(revoked[0]["target"], id.as_str());
}

#[tokio::test]
async fn a_token_never_exceeds_its_creator_and_bad_requests_create_nothing() {
    let t = TestApp::new().await;
    let deployer = t.token(Role::Deployer).await;
    let before = t.get("/api/auth/sessions", Some(&deployer)).await.json();
    let msg = new_token(&t, &deployer, json!({"name": "x", "role": "admin"}))
        .await
        .error(403);
    assert!(msg.contains("more than your own role"), "{msg}");
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "expires_in_days": 5000}),
            "expires_in_days",
        ),
        (json!({"name": "x", "role": "root"}), "role"),
        (json!({"name": "x", "scopes": ["all"]}), "scopes"),
    ] {
        let msg = new_token(&t, &deployer, body.clone()).await.error(400);
        assert!(msg.contains(field), "{body}: {msg}");
    }
    let after = t.get("/api/auth/sessions", Some(&deployer)).await.json();
    assert_eq!(before, after, "a refused request created a token");
    // Its own role is allowed, and the default is viewer.
    let v = new_token(&t, &deployer, json!({"name": "read-only"})).await;
    assert_eq!(v.status, 201, "{}", v.text);
    assert_eq!(v.json()["role"], "viewer");
    let v = new_token(
        &t,
        &deployer,
        json!({"name": "deploys", "role": "deployer"}),
    )
    .await;
    assert_eq!(v.status, 201, "{}", v.text);
}

#[tokio::test]
async fn log_out_everywhere_and_an_admin_ending_a_users_sessions() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let v1 = t.token(Role::Viewer).await;
    let v2 = t.token(Role::Viewer).await;
    let r = t
        .call(
            Method::POST,
            "/api/auth/sessions/revoke-all",
            Some(&v1),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ended"], 2);
    t.get("/api/auth/me", Some(&v1)).await.error(401);
    t.get("/api/auth/me", Some(&v2)).await.error(401);
    assert_eq!(t.get("/api/auth/me", Some(&admin)).await.status, 200);

    let v3 = t.token(Role::Viewer).await;
    let users = t.get("/api/users", Some(&admin)).await.json();
    let id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "viewer-user")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = t
        .call(
            Method::POST,
            &format!("/api/users/{id}/sessions/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    t.get("/api/auth/me", Some(&v3)).await.error(401);
    t.call(
        Method::POST,
        "/api/users/999999/sessions/revoke",
        Some(&admin),
        None,
    )
    .await
    .error(404);
    let audit = t
        .get("/api/audit?actor=admin-user&action=user.", Some(&admin))
        .await
        .json();
    assert_eq!(audit[0]["action"], "user.sessions_ended");
    assert_eq!(audit[0]["target"], "viewer-user");
}

#[tokio::test]
async fn the_audit_log_filters_and_refuses_bad_times() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let _ = new_token(&t, &admin, json!({"name": "one"})).await;
    let all = t.get("/api/audit", Some(&admin)).await.json();
    assert!(!all.as_array().unwrap().is_empty());
    let none = t
        .get("/api/audit?actor=nobody-at-all", Some(&admin))
        .await
        .json();
    assert_eq!(none.as_array().unwrap().len(), 0);
    let future = t
        .get("/api/audit?since=2999-01-01T00:00:00Z", Some(&admin))
        .await
        .json();
    assert_eq!(future.as_array().unwrap().len(), 0);
    let msg = t
        .get("/api/audit?since=yesterday", Some(&admin))
        .await
        .error(400);
    assert!(msg.contains("since"), "{msg}");
    // Paging: entries before the newest one's id.
    let newest = all[0]["id"].as_i64().unwrap();
    let older = t
        .get(&format!("/api/audit?before={newest}"), Some(&admin))
        .await
        .json();
    assert!(
        older
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"].as_i64().unwrap() < newest)
    );
}
