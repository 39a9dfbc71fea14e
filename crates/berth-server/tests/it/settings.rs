//! Settings, export, and the rule that secrets never come back from the API.

use crate::support::{EXAMPLE_SEED, TestApp};
use axum::http::Method;
use berth_domain::Role;
use serde_json::json;

const SECRETS: [&str; 3] = [
    "change-me-npm-password",
    "change-me-gitea-token",
    "s3cr3t-session-key",
];

#[tokio::test]
async fn bad_settings_are_refused_and_change_nothing() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let before = t.get("/api/settings", Some(&admin)).await.json();
    let mut bad = before.clone();
    bad["subdomain_pattern"] = json!("no-placeholders");
    let msg = t
        .call(Method::PUT, "/api/settings", Some(&admin), Some(bad))
        .await
        .error(400);
    assert!(msg.starts_with("subdomain_pattern:"), "{msg}");
    let mut bad = before.clone();
    bad["poll_interval_secs"] = json!(-5);
    t.call(Method::PUT, "/api/settings", Some(&admin), Some(bad))
        .await
        .error(400);
    let mut bad = before.clone();
    bad["unknown_knob"] = json!(true);
    t.call(Method::PUT, "/api/settings", Some(&admin), Some(bad))
        .await
        .error(400);
    assert_eq!(t.get("/api/settings", Some(&admin)).await.json(), before);

    let mut good = before.clone();
    good["domain"] = json!("apps.example.test");
    let a = t
        .call(
            Method::PUT,
            "/api/settings",
            Some(&admin),
            Some(good.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(t.get("/api/settings", Some(&admin)).await.json(), good);
    let audit = t.app.store.audit_entries(5).await.unwrap();
    assert_eq!(audit[0].action, "settings.updated");
    assert!(audit[0].detail.as_deref().unwrap().contains("domain"));
}

#[tokio::test]
async fn secrets_never_come_back_from_any_read_route() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    for r in t
        .table
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains('{'))
    {
        let a = t.get(r.path, Some(&admin)).await;
        for s in SECRETS {
            assert!(!a.text.contains(s), "{} returned the secret {s}", r.path);
        }
    }
    let projects = t.get("/api/projects", Some(&admin)).await.json();
    assert_eq!(projects[0]["name"], "web-app-launcher");
}

#[tokio::test]
async fn export_leaves_secrets_out_unless_asked_and_audits() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let a = t.get("/api/config/export", Some(&admin)).await;
    assert_eq!(a.status, 200);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/yaml")
    );
    assert!(a.text.contains("web-app-launcher"));
    for s in SECRETS {
        assert!(!a.text.contains(s), "{s} in a default export");
    }
    let full = t
        .get("/api/config/export?include_secrets=true", Some(&admin))
        .await;
    for s in SECRETS {
        assert!(
            full.text.contains(s),
            "{s} missing from an export with secrets"
        );
    }
    // The export is a valid seed again.
    berth_config::seed::Seed::parse(&full.text).unwrap();
    let audit = t.app.store.audit_entries(5).await.unwrap();
    assert_eq!(audit[0].action, "config.exported");
    assert!(audit[0].detail.as_deref().unwrap().contains("true"));
}

#[tokio::test]
async fn the_npm_password_is_write_only_and_masked() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let admin = t.token(Role::Admin).await;
    let a = t.get("/api/npm", Some(&admin)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["password"], "********");
    assert!(!a.text.contains("change-me-npm-password"));

    // Bad input changes nothing.
    let before = a.json();
    for (body, needle) in [
        (json!({"url": "npm:81", "email": "a@b.c"}), "http://"),
        (json!({"url": "http://npm:81", "email": "nobody"}), "email"),
        (
            json!({"url": "http://npm:81", "email": "a@b.c", "password": ""}),
            "must not be empty",
        ),
        (
            json!({"url": "http://npm:81", "email": "a@b.c", "upstream": "dns"}),
            "upstream",
        ),
    ] {
        let msg = t
            .call(Method::PUT, "/api/npm", Some(&admin), Some(body))
            .await
            .error(400);
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    assert_eq!(t.get("/api/npm", Some(&admin)).await.json(), before);

    // Leaving the password out keeps it; a new one replaces it; null removes it.
    let body = json!({"url": "http://npm.internal:81/", "email": "berth@example.com", "upstream": "host_port"});
    let a = t
        .call(Method::PUT, "/api/npm", Some(&admin), Some(body))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["url"], "http://npm.internal:81");
    assert_eq!(a.json()["password"], "********");
    let kept = t.app.store.npm_connection().await.unwrap().unwrap();
    assert_eq!(kept.password.unwrap().expose(), "change-me-npm-password");
    let body =
        json!({"url": "http://npm:81", "email": "berth@example.com", "password": "n3w-secret-pw"});
    let a = t
        .call(Method::PUT, "/api/npm", Some(&admin), Some(body))
        .await;
    assert!(!a.text.contains("n3w-secret-pw"));
    assert_eq!(
        t.app
            .store
            .npm_connection()
            .await
            .unwrap()
            .unwrap()
            .password
            .unwrap()
            .expose(),
        "n3w-secret-pw"
    );
    let audit = t.app.store.audit_entries(3).await.unwrap();
    assert_eq!(audit[0].action, "npm.updated");
    assert!(!format!("{audit:?}").contains("n3w-secret-pw"));
    let body = json!({"url": "http://npm:81", "email": "berth@example.com", "password": null});
    let a = t
        .call(Method::PUT, "/api/npm", Some(&admin), Some(body))
        .await;
    assert_eq!(a.json()["password"], serde_json::Value::Null);

    assert_eq!(
        t.call(Method::DELETE, "/api/npm", Some(&admin), None)
            .await
            .status,
        204
    );
    t.get("/api/npm", Some(&admin)).await.error(404);
}

#[tokio::test]
async fn the_npm_connection_test_reaches_npm_and_says_what_failed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    t.call(Method::POST, "/api/npm/test", Some(&admin), None)
        .await
        .error(404);

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let npm = format!("http://{}", l.local_addr().unwrap());
    let double = berth_npm_double::Double::new(berth_npm_double::Config {
        initial_admin: Some(("berth@example.com".into(), "npm-password".into())),
        ..Default::default()
    });
    tokio::spawn(berth_npm_double::serve(l, double, std::future::pending()));

    let put = |pw: &str| json!({"url": npm, "email": "berth@example.com", "password": pw});
    t.call(
        Method::PUT,
        "/api/npm",
        Some(&admin),
        Some(put("wrong-password")),
    )
    .await;
    let msg = t
        .call(Method::POST, "/api/npm/test", Some(&admin), None)
        .await
        .error(502);
    assert!(
        msg.contains("refused berth's credentials") && msg.contains("Invalid email or password"),
        "{msg}"
    );

    t.call(
        Method::PUT,
        "/api/npm",
        Some(&admin),
        Some(put("npm-password")),
    )
    .await;
    let a = t
        .call(Method::POST, "/api/npm/test", Some(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["version"], "2.15.1");
    assert_eq!(a.json()["user"], "berth@example.com");

    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    t.call(
        Method::PUT,
        "/api/npm",
        Some(&admin),
        Some(json!({"url": url, "email": "berth@example.com"})),
    )
    .await;
    let msg = t
        .call(Method::POST, "/api/npm/test", Some(&admin), None)
        .await
        .error(502);
    assert!(msg.contains("unreachable"), "{msg}");
}
