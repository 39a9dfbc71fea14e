//! The double with the real nginx of `scripts/testenv`: routes it sets carry real traffic.

use berth_npm_double::{Config, Double, NginxConfig};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Env {
    port: String,
    nginx: NginxConfig,
}

fn env(name: &str) -> Option<Env> {
    let Ok(prefix) = std::env::var("BERTH_TEST_NGINX_PREFIX") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the test environment is not up: run scripts/testenv up"
        );
        eprintln!("skipped: no test environment");
        return None;
    };
    let prefix = PathBuf::from(prefix);
    let port = std::env::var("BERTH_TEST_NGINX_PORT").unwrap();
    let hosts_dir = berth_npm_double::hosts_dir(&prefix, &format!("{name}-{}", std::process::id()));
    Some(Env {
        nginx: NginxConfig {
            bin: "nginx".into(),
            conf: PathBuf::from(std::env::var("BERTH_TEST_NGINX_CONF").unwrap()),
            lock: prefix.join("proxy_host.lock"),
            listen: format!("127.0.0.1:{port}"),
            hosts_dir,
            prefix,
        },
        port,
    })
}

/// A backend answering `name` on every path.
async fn backend(name: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(l, axum::Router::new().fallback(move || async move { name })).await
    });
    port
}

async fn start(config: Config) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(berth_npm_double::serve(
        l,
        Double::new(config),
        std::future::pending(),
    ));
    url
}

/// GETs `/` through nginx with `Host: domain` until the body is `want` (reloads are async).
async fn through_nginx(port: &str, domain: &str, want: &str) {
    let c = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < end {
        if let Ok(r) = c
            .get(format!("http://127.0.0.1:{port}/"))
            .header("host", domain)
            .send()
            .await
        {
            last = format!("{} {}", r.status(), r.text().await.unwrap_or_default());
            if last.ends_with(want) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{domain}: wanted {want:?}, last got {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_carry_traffic_and_broken_config_is_reported() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(e) = env("routes") else { return };
    let hosts_dir = e.nginx.hosts_dir.clone();
    let url = start(Config {
        nginx: Some(e.nginx),
        initial_admin: Some(("a@b.test".into(), "pw-pw-pw-pw".into())),
        ..Default::default()
    })
    .await;
    let c = reqwest::Client::new();
    let tk: Value = c
        .post(format!("{url}/api/tokens"))
        .json(&json!({"identity": "a@b.test", "secret": "pw-pw-pw-pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tk = tk["token"].as_str().unwrap().to_string();
    let (blue, green) = (backend("blue").await, backend("green").await);
    let domain = format!("app-{}.npm-double.test", std::process::id());

    let h: Value = c
        .post(format!("{url}/api/nginx/proxy-hosts"))
        .bearer_auth(&tk)
        .json(&json!({"domain_names": [domain], "forward_scheme": "http", "forward_host": "127.0.0.1", "forward_port": blue}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = h["id"].as_i64().unwrap();
    assert!(hosts_dir.join(format!("{id}.conf")).exists());
    through_nginx(&e.port, &domain, "blue").await;

    // Switch the upstream: traffic follows.
    let r = c
        .put(format!("{url}/api/nginx/proxy-hosts/{id}"))
        .bearer_auth(&tk)
        .json(&json!({"forward_port": green}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    through_nginx(&e.port, &domain, "green").await;

    // A broken advanced_config: the host is kept, nginx_online false with nginx's own words,
    // the file removed — and nginx keeps serving everything else.
    let r: Value = c
        .put(format!("{url}/api/nginx/proxy-hosts/{id}"))
        .bearer_auth(&tk)
        .json(&json!({"advanced_config": "proxy_bogus_directive on;"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["meta"]["nginx_online"], false, "{r}");
    assert!(
        r["meta"]["nginx_err"]
            .as_str()
            .unwrap()
            .contains("unknown directive \"proxy_bogus_directive\""),
        "{r}"
    );
    assert!(!hosts_dir.join(format!("{id}.conf")).exists());
    // Fixing it brings it back.
    let r: Value = c
        .put(format!("{url}/api/nginx/proxy-hosts/{id}"))
        .bearer_auth(&tk)
        .json(&json!({"advanced_config": ""}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["meta"], json!({"nginx_online": true, "nginx_err": null}));
    through_nginx(&e.port, &domain, "green").await;

    // Disable and delete take the route away (the default server answers).
    let r = c
        .post(format!("{url}/api/nginx/proxy-hosts/{id}/disable"))
        .bearer_auth(&tk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    through_nginx(&e.port, &domain, "no route\n").await;
    c.post(format!("{url}/api/nginx/proxy-hosts/{id}/enable"))
        .bearer_auth(&tk)
        .send()
        .await
        .unwrap();
    through_nginx(&e.port, &domain, "green").await;
    let r = c
        .delete(format!("{url}/api/nginx/proxy-hosts/{id}"))
        .bearer_auth(&tk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    through_nginx(&e.port, &domain, "no route\n").await;
    let _ = std::fs::remove_dir_all(&hosts_dir);
}
