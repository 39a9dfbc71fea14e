//! The whole path through the real binary: a seeded project, NPM configured over the API, a
//! CI webhook per version, traffic through the real nginx at the stage's subdomain.

use crate::support::{Berth, Options, testenv};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub async fn npm_double(
    env: &std::collections::HashMap<String, String>,
    name: &str,
) -> (String, std::path::PathBuf) {
    let prefix = std::path::PathBuf::from(&env["BERTH_TEST_NGINX_PREFIX"]);
    for stale in std::fs::read_dir(prefix.join("proxy_host"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if stale
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{name}-"))
        {
            let _ = std::fs::remove_dir_all(stale.path());
        }
    }
    let hosts_dir = berth_npm_double::hosts_dir(&prefix, &format!("{name}-{}", std::process::id()));
    let nginx = berth_npm_double::NginxConfig {
        bin: "nginx".into(),
        conf: env["BERTH_TEST_NGINX_CONF"].clone().into(),
        lock: prefix.join("proxy_host.lock"),
        listen: format!("127.0.0.1:{}", env["BERTH_TEST_NGINX_PORT"]),
        hosts_dir: hosts_dir.clone(),
        prefix,
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let d = berth_npm_double::Double::new(berth_npm_double::Config {
        nginx: Some(nginx),
        initial_admin: Some(("berth@e2e.test".into(), "npm-secret-pw".into())),
        ..Default::default()
    });
    tokio::spawn(berth_npm_double::serve(l, d, std::future::pending()));
    (url, hosts_dir)
}

pub async fn served(env: &std::collections::HashMap<String, String>, host: &str) -> String {
    let url = format!("http://127.0.0.1:{}/version", env["BERTH_TEST_NGINX_PORT"]);
    match reqwest::Client::new()
        .get(url)
        .header("host", host)
        .send()
        .await
    {
        Ok(r) => format!(
            "{} {}",
            r.status().as_u16(),
            r.text().await.unwrap_or_default().trim()
        ),
        Err(e) => format!("error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ci_webhooks_put_each_version_live_at_its_subdomain() {
    let Some(env) = testenv() else { return };
    let (npm_url, hosts_dir) = npm_double(&env, "e2e-webhook").await;
    let data = tempfile::tempdir().unwrap();
    let seed = data.path().join("seed.yaml");
    std::fs::write(
        &seed,
        format!(
            "global:\n  domain: e2e.berth.test\n  network: berth-e2e\n  drain_secs: 1\n  watch_secs: 1\n  prune_images: false\n  poll_interval_secs: 0\n\
             \x20 image_allowlist: ['{registry}/berth-test/other']\n\
             projects:\n  shop:\n    image: {image}\n    port: 8080\n    healthcheck: /health\n\
             \x20   env: {{GREETING: hi, DB_PASSWORD: {{value: s3cr3t-db-pw, secret: true}}}}\n\
             \x20   stages:\n      dev:\n        tag_pattern: 'v*'\n        auto_deploy: true\n      prod:\n        tag_pattern: 'v*'\n        auto_deploy: true\n        promote_from: dev\n",
            image = env["BERTH_TEST_IMAGE"],
            registry = env["BERTH_TEST_REGISTRY"],
        ),
    )
    .unwrap();
    let berth = Berth::start(Options {
        data: Some(data),
        ..Options::new()
            .env("DOCKER_HOST", &env["BERTH_TEST_DOCKER_HOST"])
            .env("BERTH_SEED_FILE", seed.to_str().unwrap())
    });
    let cookie = berth.login().await;
    let c = &berth.client;
    // Clear what an earlier run may have left of this project's containers.
    for project in ["shop", "other"] {
        crate::support::docker(
            &env,
            &[
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.project={project}"),
            ],
        )
        .lines()
        .for_each(|id| drop(crate::support::docker(&env, &["rm", "-f", id])));
    }

    let put = c
        .put(format!("{}/api/npm", berth.url))
        .header("cookie", &cookie)
        .header("origin", &berth.url)
        .json(&json!({"url": npm_url, "email": "berth@e2e.test", "password": "npm-secret-pw", "upstream": "host_port"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let (_, hook) = berth.get("/api/settings/webhook", &cookie).await;
    let hook = format!("{}{}", berth.url, hook["path"].as_str().unwrap());

    // Refusals change nothing.
    let r = c
        .post(format!("{}/api/webhook/not-the-secret", berth.url))
        .json(&json!({"image": "x/y:v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(&hook)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&hook)
        .header("content-type", "application/json")
        .body(format!("{{\"image\":\"{}\"}}", "a".repeat(2 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = c
        .post(&hook)
        .json(&json!({"image": "127.0.0.1:15000/nobody/unknown:v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(&hook)
        .json(&json!({"image": "NOT A REFERENCE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, deploys) = berth.get("/api/deploys", &cookie).await;
    assert_eq!(
        deploys.as_array().unwrap().len(),
        0,
        "a refused webhook deployed something: {deploys}"
    );

    let domain = "stage-dev-shop.e2e.berth.test";
    for version in ["v1", "v2"] {
        let t0 = Instant::now();
        let r = c
            .post(&hook)
            .json(&json!({"image": format!("{}:{version}", env["BERTH_TEST_IMAGE"])}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["deploys"].as_array().unwrap().len(), 1, "{body}");
        assert!(
            body["skipped"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("promotion"),
            "{body}"
        );
        let id = body["deploys"][0]["deploy"].as_str().unwrap().to_string();
        loop {
            let (_, d) = berth.get(&format!("/api/deploys/{id}"), &cookie).await;
            if d["finished_at"].is_string() {
                assert_eq!(d["state"], "succeeded", "{d}");
                assert_eq!(d["steps"].as_array().unwrap().len(), 7, "{d}");
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "deploy {id} did not finish: {d}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(served(&env, domain).await, format!("200 {version}"));
    }

    // The secret env value reached the container but no API answer, and no log line.
    let (_, instances) = berth
        .get("/api/projects/shop/stages/dev/instances", &cookie)
        .await;
    let live = instances
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "live")
        .unwrap()
        .clone();
    assert_eq!(live["tag"], "v2");
    for path in [
        "/api/deploys",
        "/api/projects",
        "/api/projects/shop/stages/dev/instances",
        "/api/npm",
    ] {
        let (_, v) = berth.get(path, &cookie).await;
        assert!(
            !v.to_string().contains("s3cr3t-db-pw") && !v.to_string().contains("npm-secret-pw"),
            "{path}: {v}"
        );
    }
    let (_, list) = berth.get("/api/deploys", &cookie).await;
    for d in list.as_array().unwrap() {
        let (_, logs) = berth
            .get(
                &format!("/api/deploys/{}/logs", d["id"].as_str().unwrap()),
                &cookie,
            )
            .await;
        assert!(!logs.to_string().contains("s3cr3t-db-pw"));
    }
    assert!(!berth.log().contains("s3cr3t-db-pw") && !berth.log().contains("npm-secret-pw"));
    let env_in_container = crate::support::docker(
        &env,
        &[
            "inspect",
            "-f",
            "{{range .Config.Env}}{{println .}}{{end}}",
            live["container_name"].as_str().unwrap(),
        ],
    );
    assert!(env_in_container.contains("DB_PASSWORD=s3cr3t-db-pw"));

    // An image berth has no project for, but allow-listed: the project is made from what the
    // image declares (EXPOSE 8080, its HEALTHCHECK) and the tag deployed.
    let r = c
        .post(&hook)
        .json(&json!({"image": format!("{}/berth-test/other:v1", env["BERTH_TEST_REGISTRY"])}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["created"], true, "{body}");
    assert_eq!(body["project"], "other", "{body}");
    let id = body["deploys"][0]["deploy"].as_str().unwrap().to_string();
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, d) = berth.get(&format!("/api/deploys/{id}"), &cookie).await;
        if d["finished_at"].is_string() {
            assert_eq!(d["state"], "succeeded", "{d}");
            break;
        }
        assert!(Instant::now() < end, "{d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        served(&env, "stage-dev-other.e2e.berth.test").await,
        "200 v1"
    );
    let (_, p) = berth.get("/api/projects/other", &cookie).await;
    assert_eq!(p["project"]["port"], 8080, "{p}");

    for project in ["shop", "other"] {
        crate::support::docker(
            &env,
            &[
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.project={project}"),
            ],
        )
        .lines()
        .for_each(|id| drop(crate::support::docker(&env, &["rm", "-f", id])));
    }
    let _ = std::fs::remove_dir_all(hosts_dir);
}
