//! User management by admins, and per-stage webhook secrets.

use crate::support::{EXAMPLE_SEED, TestApp};
use axum::http::Method;
use berth_domain::Role;
use serde_json::json;

#[tokio::test]
async fn admins_create_change_disable_and_delete_users() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let users = |t: &TestApp| {
        let t = t.app.store.clone();
        async move { t.list_users().await.unwrap().len() }
    };
    let n = users(&t).await;

    // Bad input: a clear message, nothing created.
    for (body, word) in [
        (json!({"username": "a b", "role": "viewer"}), "username"),
        (
            json!({"username": "dave", "role": "viewer", "password": "short"}),
            "password",
        ),
        (json!({"username": "dave", "role": "root"}), "role"),
    ] {
        let why = t
            .call(Method::POST, "/api/users", Some(&admin), Some(body.clone()))
            .await
            .error(400);
        assert!(why.contains(word), "{body}: {why}");
    }
    assert_eq!(users(&t).await, n);

    let made = t
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({"username": "dave", "role": "viewer", "password": "a long enough secret"})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert!(!made.text.contains("a long enough secret"));
    let id = made.json()["id"].as_i64().unwrap();
    let dup = t
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({"username": "DAVE", "role": "viewer"})),
        )
        .await
        .error(409);
    assert!(dup.contains("already exists"), "{dup}");

    // dave logs in; a role change reaches his token at once.
    let login = t
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"username": "dave", "password": "a long enough secret"})),
        )
        .await;
    assert_eq!(login.status, 201, "{}", login.text);
    let dave = login.json()["token"].as_str().unwrap().to_string();
    t.call(Method::PUT, "/api/settings", Some(&dave), Some(json!({})))
        .await
        .error(403);
    let up = t
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            Some(json!({"role": "deployer"})),
        )
        .await;
    assert_eq!(up.json()["role"], "deployer");
    assert_eq!(
        t.get("/api/auth/me", Some(&dave)).await.json()["user"]["role"],
        "deployer"
    );
    // Disabling ends his token; enabling does not bring it back.
    t.call(
        Method::PATCH,
        &format!("/api/users/{id}"),
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await;
    t.get("/api/auth/me", Some(&dave)).await.error(401);
    let again = t
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"username": "dave", "password": "a long enough secret"})),
        )
        .await;
    again.error(401);
    t.call(
        Method::PATCH,
        &format!("/api/users/{id}"),
        Some(&admin),
        Some(json!({"disabled": false, "password": "another long secret"})),
    )
    .await;
    t.get("/api/auth/me", Some(&dave)).await.error(401);

    // Admins cannot lock themselves out, nor leave berth without an admin.
    let me = t.get("/api/auth/me", Some(&admin)).await.json()["user"]["id"]
        .as_i64()
        .unwrap();
    for body in [json!({"role": "viewer"}), json!({"disabled": true})] {
        t.call(
            Method::PATCH,
            &format!("/api/users/{me}"),
            Some(&admin),
            Some(body),
        )
        .await
        .error(409);
    }
    t.call(
        Method::DELETE,
        &format!("/api/users/{me}"),
        Some(&admin),
        None,
    )
    .await
    .error(409);
    t.call(
        Method::PATCH,
        &format!("/api/users/{id}"),
        Some(&admin),
        Some(json!({})),
    )
    .await
    .error(400);

    let gone = t
        .call(
            Method::DELETE,
            &format!("/api/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    assert_eq!(users(&t).await, n);

    // Every change is audited, without passwords.
    let audit = t.get("/api/audit?action=user.", Some(&admin)).await;
    for action in ["user.created", "user.updated", "user.deleted"] {
        assert!(audit.text.contains(action), "{action}: {}", audit.text);
    }
    assert!(!audit.text.contains("long enough secret") && !audit.text.contains("another long"));
}

#[tokio::test]
async fn a_stage_webhook_deploys_only_its_own_stage() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let made = t
        .call(
            Method::POST,
            "/api/projects/web-app-launcher/stages/dev/webhook",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let path = made.json()["path"].as_str().unwrap().to_string();
    assert!(path.starts_with("/api/webhook/wh_"), "{path}");
    let detail = t
        .get("/api/projects/web-app-launcher", Some(&admin))
        .await
        .json();
    assert_eq!(detail["stage_webhooks"], json!(["dev"]));
    assert!(
        !detail.to_string().contains(&path[13..]),
        "never shown again"
    );

    // Another project's image: refused, nothing deployed.
    let before = t.app.store.list_deploys(None, 100).await.unwrap().len();
    let why = t
        .call(
            Method::POST,
            &path,
            None,
            Some(json!({"image": "git.example.com/alexei/other-app:dev-1"})),
        )
        .await
        .error(403);
    assert!(why.contains("only web-app-launcher/dev"), "{why}");
    assert_eq!(
        t.app.store.list_deploys(None, 100).await.unwrap().len(),
        before
    );

    // Its own image: only dev is considered (rel/prod are not even listed).
    let a = t
        .call(
            Method::POST,
            &path,
            None,
            Some(json!({"image": "git.example.com/alexei/web-app-launcher:dev-7"})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let v = a.json();
    assert_eq!(v["deploys"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["deploys"][0]["stage"], "dev");
    assert_eq!(v["skipped"], json!([]));

    // Regenerating replaces the secret; deleting removes it.
    let again = t
        .call(
            Method::POST,
            "/api/projects/web-app-launcher/stages/dev/webhook",
            Some(&admin),
            None,
        )
        .await
        .json();
    t.call(
        Method::POST,
        &path,
        None,
        Some(json!({"image": "git.example.com/alexei/web-app-launcher:dev-8"})),
    )
    .await
    .error(404);
    let new_path = again["path"].as_str().unwrap();
    let d = t
        .call(
            Method::DELETE,
            "/api/projects/web-app-launcher/stages/dev/webhook",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(d.status, 204);
    t.call(
        Method::POST,
        new_path,
        None,
        Some(json!({"image": "git.example.com/alexei/web-app-launcher:dev-9"})),
    )
    .await
    .error(404);
    t.call(
        Method::DELETE,
        "/api/projects/web-app-launcher/stages/dev/webhook",
        Some(&admin),
        None,
    )
    .await
    .error(404);
}
