//! Quick deploy and the tag picker, reading the real test registry (no engine needed: nothing
//! is pulled).

use crate::support::TestApp;
use axum::http::Method;
use berth_domain::Role;
use serde_json::json;

fn registry() -> Option<String> {
    if let Ok(r) = std::env::var("BERTH_TEST_REGISTRY") {
        return Some(r);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "the test environment is not up: run scripts/testenv up"
    );
    eprintln!("skipped: no test registry");
    None
}

#[tokio::test]
async fn inspect_quick_deploy_and_the_tag_picker() {
    let Some(reg) = registry() else { return };
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let deployer = t.token(Role::Deployer).await;
    let image = format!("{reg}/berth-test/app:v2");

    let a = t
        .call(
            Method::POST,
            "/api/deploy/inspect",
            Some(&deployer),
            Some(json!({"image": image})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let s = a.json();
    assert_eq!(s["exposed_ports"], json!([8080]));
    assert_eq!(s["healthcheck"], true);
    assert_eq!(s["labels"]["org.opencontainers.image.version"], "v2");
    assert!(s["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(s["existing_project"], json!(null));
    assert_eq!(s["project"]["name"], "app");
    assert_eq!(s["project"]["port"], 8080);
    assert_eq!(s["project"]["healthcheck"]["type"], "image");
    assert_eq!(s["domain"], "stage-dev-app");

    for (body, status, needle) in [
        (json!({"image": "NOT AN IMAGE"}), 400, "image:"),
        (
            json!({"image": format!("{reg}/berth-test/app")}),
            400,
            "names no tag",
        ),
        (
            json!({"image": format!("{reg}/berth-test/app:no-such-tag")}),
            502,
            "not found",
        ),
        (json!({"image": image, "extra": 1}), 400, "unknown field"),
    ] {
        let msg = t
            .call(
                Method::POST,
                "/api/deploy/inspect",
                Some(&deployer),
                Some(body),
            )
            .await
            .error(status);
        assert!(msg.contains(needle), "{msg}");
    }

    // Quick deploy is an admin's: it creates a project.
    t.call(
        Method::POST,
        "/api/deploy/quick",
        Some(&deployer),
        Some(json!({"image": image})),
    )
    .await
    .error(403);
    let a = t
        .call(
            Method::POST,
            "/api/deploy/quick",
            Some(&admin),
            Some(json!({"image": image})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let q = a.json();
    assert_eq!(q["project"]["name"], "app");
    assert_eq!(q["stage"], "dev");
    let d = t
        .get(
            &format!("/api/deploys/{}", q["deploy"].as_str().unwrap()),
            Some(&admin),
        )
        .await
        .json();
    assert_eq!(d["trigger"], "quick");
    assert_eq!(d["tag"], "v2");
    // Now the repository has a project: inspect says so and suggests another name.
    let s = t
        .call(
            Method::POST,
            "/api/deploy/inspect",
            Some(&deployer),
            Some(json!({"image": image})),
        )
        .await
        .json();
    assert_eq!(s["existing_project"], "app");
    assert_eq!(s["project"]["name"], "app-2");

    // The tag picker: the registry's tags matching the stage, newest first.
    let tags = t
        .get("/api/projects/app/stages/dev/tags", Some(&deployer))
        .await;
    assert_eq!(tags.status, 200, "{}", tags.text);
    let v = tags.json();
    assert_eq!(v["source"], "registry");
    let list: Vec<&str> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(&list[..4], ["v4", "v3", "v2", "v1"], "{list:?}");
    assert!(list.contains(&"unhealthy"));
    // A promotion stage offers only what is live in its source (nothing yet).
    let a = t
        .call(
            Method::POST,
            "/api/projects/app/stages",
            Some(&admin),
            Some(json!({"name": "prod", "tag_pattern": "v*", "promote_from": "dev", "subdomain": "app"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = t
        .get("/api/projects/app/stages/prod/tags", Some(&deployer))
        .await
        .json();
    assert_eq!(v, json!({"tags": [], "source": "promotion", "live": null}));
    t.get("/api/projects/app/stages/nope/tags", Some(&deployer))
        .await
        .error(404);
}

#[tokio::test]
async fn registries_are_records_with_a_connection_test_and_write_only_secrets() {
    let Some(_) = registry() else { return };
    let auth_reg = std::env::var("BERTH_TEST_REGISTRY_AUTH").unwrap();
    let user = std::env::var("BERTH_TEST_REGISTRY_USER").unwrap();
    let password =
        std::fs::read_to_string(std::env::var("BERTH_TEST_REGISTRY_PASSWORD_FILE").unwrap())
            .unwrap()
            .trim()
            .to_string();
    let t = TestApp::new().await;
    let admin = t.token(Role::Admin).await;
    let body = json!({"name": "private", "url": format!("http://{auth_reg}"), "username": user, "password": password});
    let a = t
        .call(
            Method::POST,
            "/api/registries",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(!a.text.contains(&password), "{}", a.text);
    assert_eq!(a.json()[0]["has_secret"], true);
    t.call(Method::POST, "/api/registries", Some(&admin), Some(body))
        .await
        .error(409);
    for (bad, needle) in [
        (json!({"name": "x y", "url": "http://r"}), "name:"),
        (json!({"name": "r", "url": "ftp://r"}), "url:"),
        (
            json!({"name": "r", "url": "http://r", "kind": "nexus"}),
            "unknown variant",
        ),
    ] {
        let msg = t
            .call(Method::POST, "/api/registries", Some(&admin), Some(bad))
            .await
            .error(400);
        assert!(msg.contains(needle), "{msg}");
    }

    let ok = t
        .call(
            Method::POST,
            "/api/registries/private/test?repository=berth-test/private",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A wrong password: the test says 401; leaving the password out keeps it.
    let a = t
        .call(
            Method::PUT,
            "/api/registries/private",
            Some(&admin),
            Some(
                json!({"url": format!("http://{auth_reg}"), "username": user, "password": "wrong"}),
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let msg = t
        .call(
            Method::POST,
            "/api/registries/private/test",
            Some(&admin),
            None,
        )
        .await
        .error(502);
    assert!(msg.contains("401"), "{msg}");
    let a = t
        .call(
            Method::PUT,
            "/api/registries/private",
            Some(&admin),
            Some(json!({"url": format!("http://{auth_reg}"), "username": user, "password": password})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = t
        .call(
            Method::PUT,
            "/api/registries/private",
            Some(&admin),
            Some(json!({"url": format!("http://{auth_reg}"), "username": user})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ok = t
        .call(
            Method::POST,
            "/api/registries/private/test",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "kept: {}", ok.text);

    // A project pulling through it: its tag picker logs in; the registry cannot be deleted.
    let a = t
        .call(
            Method::POST,
            "/api/projects",
            Some(&admin),
            Some(json!({"name": "priv", "registry": "private", "image": format!("{auth_reg}/berth-test/private"), "port": 8080, "stages": {"dev": {"tag_pattern": "*"}}})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let tags = t
        .get("/api/projects/priv/stages/dev/tags", Some(&admin))
        .await;
    assert_eq!(tags.status, 200, "{}", tags.text);
    assert_eq!(tags.json()["tags"], json!(["v1"]));
    let msg = t
        .call(
            Method::DELETE,
            "/api/registries/private",
            Some(&admin),
            None,
        )
        .await
        .error(409);
    assert!(msg.contains("priv"), "{msg}");
    t.call(Method::DELETE, "/api/projects/priv", Some(&admin), None)
        .await;
    let a = t
        .call(
            Method::DELETE,
            "/api/registries/private",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(
        t.get("/api/registries", Some(&admin)).await.json(),
        json!([])
    );
}
