//! berth against the real engine: it lists the engine's containers, and it keeps serving and
//! recovers when the engine goes away and comes back.

use crate::support::{Berth, Options, docker, testenv};
use std::time::Duration;

#[tokio::test]
async fn lists_the_engines_containers_after_an_http_login() {
    let Some(env) = testenv() else { return };
    let name = format!("berth-e2e-list-{}", std::process::id());
    let image = format!("{}:v1", env["BERTH_TEST_IMAGE"]);
    docker(&env, &["pull", "-q", &image]);
    let id = docker(
        &env,
        &[
            "create",
            "--name",
            &name,
            "--label",
            "berth.test=e2e",
            &image,
        ],
    );

    let berth = Berth::start(Options::new().env("DOCKER_HOST", &env["BERTH_TEST_DOCKER_HOST"]));
    berth
        .wait_for(Duration::from_secs(10), "engine connected", || async {
            berth.health().await["engine"]["status"] == "connected"
        })
        .await;
    let health = berth.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        health["engine"]["api_version"]
            .as_str()
            .unwrap()
            .starts_with("1."),
        "{health}"
    );

    // Anonymous: refused. Logged in over HTTP: the container is there, with its labels.
    let (status, _) = berth.get("/api/containers", "").await;
    assert_eq!(status, 401);
    let cookie = berth.login().await;
    let (status, list) = berth.get("/api/containers", &cookie).await;
    assert_eq!(status, 200, "{list}");
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("container {name} not listed: {list}"));
    assert_eq!(mine["name"], name.as_str());
    assert_eq!(mine["image"], image.as_str());
    assert_eq!(mine["state"], "created");
    assert_eq!(mine["labels"]["berth.test"], "e2e");

    docker(&env, &["rm", "-f", &name]);
}

/// Forwards a unix socket to the engine's, so a test can take "the engine" away and back.
struct SocketForwarder {
    task: tokio::task::JoinHandle<()>,
}

impl SocketForwarder {
    fn start(listen: &std::path::Path, engine: &str) -> Self {
        let _ = std::fs::remove_file(listen);
        let listener = tokio::net::UnixListener::bind(listen).unwrap();
        let engine = engine.trim_start_matches("unix://").to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::UnixStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Self { task }
    }
}

impl Drop for SocketForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn serves_without_the_engine_and_recovers_when_it_returns() {
    let Some(env) = testenv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let host = format!("unix://{}", sock.display());

    // No engine at start: berth serves anyway and says why.
    let berth = Berth::start(Options::new().env("DOCKER_HOST", &host));
    berth
        .wait_for(
            Duration::from_secs(10),
            "engine reported unavailable",
            || async { berth.health().await["engine"]["status"] == "unavailable" },
        )
        .await;
    let h = berth.health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["engine"]["error"]
            .as_str()
            .unwrap()
            .contains("engine.sock"),
        "{h}"
    );
    let cookie = berth.login().await;
    let (status, body) = berth.get("/api/containers", &cookie).await;
    assert_eq!(status, 503, "{body}");

    // The engine appears: berth reconnects by itself.
    let fwd = SocketForwarder::start(&sock, &env["BERTH_TEST_DOCKER_HOST"]);
    berth
        .wait_for(Duration::from_secs(20), "reconnect", || async {
            berth.health().await["engine"]["status"] == "connected"
        })
        .await;
    let (status, _) = berth.get("/api/containers", &cookie).await;
    assert_eq!(status, 200);

    // And goes away again: the next call notices, and health says so.
    drop(fwd);
    let _ = std::fs::remove_file(&sock);
    berth
        .wait_for(Duration::from_secs(20), "engine lost", || async {
            let (s, _) = berth.get("/api/containers", &cookie).await;
            s == 503 && berth.health().await["status"] == "degraded"
        })
        .await;
    assert!(berth.log().contains("container engine unavailable"));
}
