//! Projects and stages through the API: create, read, replace, delete; validation that names
//! the field and changes nothing; secret env values that never come back.

use crate::support::{EXAMPLE_SEED, TestApp};
use axum::http::Method;
use berth_domain::Role;
use berth_domain::model::EnvValue;
use serde_json::{Value, json};

const SECRET: &str = "pa55-w0rd-that-must-not-leak";

fn shop() -> Value {
    json!({
        "name": "shop",
        "image": "127.0.0.1:15000/berth-test/app",
        "port": 8080,
        "healthcheck": "/healthz",
        "env": {"DB_PASSWORD": {"value": SECRET, "secret": true}, "MODE": "prod"},
        "memory": "256m",
        "stages": {
            "dev": {"tag_pattern": "v*", "auto_deploy": true},
            "prod": {"tag_pattern": "v*", "promote_from": "dev", "confirm": true, "subdomain": "shop"}
        }
    })
}

async fn secret_in_store(t: &TestApp) -> String {
    let (p, _) = t
        .app
        .store
        .project_for_deploy("shop")
        .await
        .unwrap()
        .unwrap();
    match &p.env["DB_PASSWORD"] {
        EnvValue::Secret(s) => s.expose().to_string(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_project_is_created_read_replaced_and_deleted() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let created = t
        .call(Method::POST, "/api/projects", Some(&admin), Some(shop()))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(!created.text.contains(SECRET), "{}", created.text);
    let v = created.json();
    assert_eq!(v["project"]["env"]["DB_PASSWORD"], json!({"secret": true}));
    assert_eq!(v["project"]["memory"], "256m");
    assert_eq!(v["instances"]["dev"], json!([]));
    assert_eq!(secret_in_store(&t).await, SECRET);

    // Read it back, change the port, send the masked secret back: the value is kept.
    let read = t.get("/api/projects/shop", Some(&admin)).await;
    assert!(!read.text.contains(SECRET));
    let mut p = read.json()["project"].clone();
    p["port"] = json!(9090);
    let a = t
        .call(
            Method::PUT,
            "/api/projects/shop",
            Some(&admin),
            Some(p.clone()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["project"]["port"], 9090);
    assert_eq!(secret_in_store(&t).await, SECRET, "kept");

    // Stages on their own.
    let a = t
        .call(
            Method::POST,
            "/api/projects/shop/stages",
            Some(&admin),
            Some(json!({"name": "qa", "tag_pattern": "rc-*"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = t
        .call(
            Method::PUT,
            "/api/projects/shop/stages/qa",
            Some(&admin),
            Some(json!({"tag_pattern": "qa-*", "max_instances": 3})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["project"]["stages"]["qa"]["max_instances"], 3);
    let a = t
        .call(
            Method::DELETE,
            "/api/projects/shop/stages/qa",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["removed_instances"], 0);
    assert!(t.app.store.stage_ids("shop", "qa").await.unwrap().is_none());

    let a = t
        .call(Method::DELETE, "/api/projects/shop", Some(&admin), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    t.get("/api/projects/shop", Some(&admin)).await.error(404);
    let actions: Vec<String> = t
        .app
        .store
        .audit_entries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for want in [
        "project.created",
        "project.updated",
        "stage.created",
        "stage.updated",
        "stage.deleted",
        "project.deleted",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn bad_projects_are_refused_naming_the_field_and_change_nothing() {
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let a = t
        .call(Method::POST, "/api/projects", Some(&admin), Some(shop()))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let before = t.get("/api/projects/shop", Some(&admin)).await.text;
    let audit_before = t.app.store.audit_entries(100).await.unwrap().len();

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = shop();
        f(&mut v);
        v
    };
    let cases: Vec<(Method, &str, Value, u16, &str)> = vec![
        (Method::POST, "/api/projects", shop(), 409, "already exists"),
        (
            Method::POST,
            "/api/projects",
            edit(&|v| v["port"] = json!(0)),
            400,
            "port:",
        ),
        (
            Method::POST,
            "/api/projects",
            edit(&|v| v["name"] = json!("Bad Name")),
            400,
            "name:",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["stages"]["prod"]["promote_from"] = json!("qa")),
            400,
            "stages.prod.promote_from",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["name"] = json!("other")),
            400,
            "names cannot be changed",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["image"] = json!("reg.test/app:v1")),
            400,
            "image:",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["registry"] = json!("nowhere")),
            400,
            "registry:",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["extra"] = json!(1)),
            400,
            "unknown field",
        ),
        (
            Method::PUT,
            "/api/projects/shop",
            edit(&|v| v["env"]["NEW_SECRET"] = json!({"secret": true})),
            400,
            "NEW_SECRET",
        ),
        (Method::PUT, "/api/projects/nope", shop(), 404, "no project"),
        (
            Method::POST,
            "/api/projects/shop/stages",
            json!({"name": "dev", "tag_pattern": "x"}),
            409,
            "already has",
        ),
        (
            Method::POST,
            "/api/projects/shop/stages",
            json!({"tag_pattern": "x"}),
            400,
            "name:",
        ),
        (
            Method::POST,
            "/api/projects/shop/stages",
            json!({"name": "qa", "tag_pattern": "x", "max_instances": 99}),
            400,
            "stages.qa.max_instances",
        ),
        (
            Method::PUT,
            "/api/projects/shop/stages/dev",
            json!({"tag_pattern": "v*", "bogus": 1}),
            400,
            "unknown field",
        ),
        (
            Method::PUT,
            "/api/projects/shop/stages/nope",
            json!({"tag_pattern": "v*"}),
            404,
            "no stage",
        ),
        (
            Method::DELETE,
            "/api/projects/shop/stages/dev",
            Value::Null,
            409,
            "no stage dev",
        ),
        (
            Method::POST,
            "/api/projects/shop/stages/dev/instances/nope/stop",
            Value::Null,
            404,
            "no instance",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let body = (!body.is_null()).then_some(body);
        let msg = t
            .call(method.clone(), path, Some(&admin), body)
            .await
            .error(status);
        assert!(msg.contains(needle), "{method} {path}: {msg}");
    }
    assert_eq!(t.get("/api/projects/shop", Some(&admin)).await.text, before);
    assert_eq!(
        t.app.store.audit_entries(100).await.unwrap().len(),
        audit_before,
        "nothing refused is audited as done"
    );
    assert_eq!(secret_in_store(&t).await, SECRET);
}

#[tokio::test]
async fn deployers_and_viewers_cannot_change_projects() {
    let t = TestApp::builder().seed(EXAMPLE_SEED).build().await;
    let deployer = t.token(Role::Deployer).await;
    let viewer = t.token(Role::Viewer).await;
    let a = t.get("/api/projects/web-app-launcher", Some(&viewer)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains("s3cr3t-session-key"), "{}", a.text);
    let p = a.json()["project"].clone();
    for token in [&deployer, &viewer] {
        t.call(
            Method::PUT,
            "/api/projects/web-app-launcher",
            Some(token),
            Some(p.clone()),
        )
        .await
        .error(403);
        t.call(
            Method::DELETE,
            "/api/projects/web-app-launcher",
            Some(token),
            None,
        )
        .await
        .error(403);
    }
}
