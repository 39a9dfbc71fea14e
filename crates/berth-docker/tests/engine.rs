//! The engine port against the real Docker engine and registries of `scripts/testenv`.

use berth_crypto::SecretString;
use berth_docker::DockerEngine;
use berth_domain::model::{
    EnvValue, GlobalSettings, HealthCheck, ProjectSpec, StageSpec, VolumeMode, VolumeSpec,
};
use berth_domain::plan::{ContainerPlan, Target};
use berth_domain::ports::{ContainerEngine, EngineError, Publish, PullProgress, RegistryAuth};
use berth_domain::{ImageRef, ProjectName, StageName, TagPattern};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env() -> Option<BTreeMap<String, String>> {
    let vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BERTH_TEST_"))
        .collect();
    if vars.contains_key("BERTH_TEST_DOCKER_HOST") {
        return Some(vars);
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "the test environment is not up: run scripts/testenv up"
    );
    eprintln!("skipped: no test environment");
    None
}

async fn engine(env: &BTreeMap<String, String>) -> Arc<DockerEngine> {
    let e = DockerEngine::new(Some(env["BERTH_TEST_DOCKER_HOST"].clone()));
    assert!(e.connect().await.is_connected());
    e
}

fn project(image: &str, volumes: Vec<VolumeSpec>) -> ProjectSpec {
    ProjectSpec {
        name: ProjectName::parse("enginetest").unwrap(),
        registry: None,
        image: ImageRef::parse(image).unwrap(),
        port: 8080,
        health: HealthCheck::Image,
        env: BTreeMap::from([
            ("GREETING".into(), EnvValue::Plain("hello".into())),
            (
                "API_KEY".into(),
                EnvValue::Secret(SecretString::new("k3y-value")),
            ),
        ]),
        volumes,
        memory_bytes: Some(64 << 20),
        cpus: Some(0.5),
        labels: BTreeMap::new(),
        poll_interval_secs: None,
        stages: vec![],
    }
}

fn stage() -> StageSpec {
    StageSpec {
        name: StageName::parse("dev").unwrap(),
        tag_pattern: TagPattern::parse("*").unwrap(),
        auto_deploy: true,
        max_instances: 1,
        promote_from: None,
        confirm: false,
        subdomain: None,
        env: BTreeMap::from([("GREETING".into(), EnvValue::Plain("hello from dev".into()))]),
    }
}

async fn wait_health(e: &DockerEngine, id: &str, want: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = e.inspect(id).await.unwrap();
        if s.health.as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < end, "health never became {want}: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn pull_run_inspect_and_remove_a_plan() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(env) = env() else { return };
    let e = engine(&env).await;
    let repo = &env["BERTH_TEST_IMAGE"];
    let image = format!("{repo}:v2");

    // Pull, with per-layer progress.
    let seen: Arc<Mutex<Vec<PullProgress>>> = Arc::default();
    let sink = seen.clone();
    e.pull(&image, None, &move |p| sink.lock().unwrap().push(p))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "no progress reported");
    assert!(
        seen.iter().any(|p| p.status.contains("Digest")
            || p.status.contains("Status")
            || p.status.contains("Pull")),
        "{seen:?}"
    );
    let digest = e
        .image_digest(&image)
        .await
        .unwrap()
        .expect("a registry digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // Run a plan pinned by digest, with env, a secret, isolated and shared volumes, limits.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), "from the host").unwrap();
    let iso = dir.path().join("iso");
    std::fs::create_dir_all(iso.join("dev-v2")).unwrap();
    let volumes = vec![
        VolumeSpec {
            source: shared.display().to_string(),
            target: "/shared".into(),
            mode: VolumeMode::Shared,
            read_only: true,
        },
        VolumeSpec {
            source: iso.display().to_string(),
            target: "/data".into(),
            mode: VolumeMode::Isolated,
            read_only: false,
        },
    ];
    let network = "berth-enginetest".to_string();
    e.ensure_network(&network).await.unwrap();
    e.ensure_network(&network).await.unwrap(); // idempotent
    let global = GlobalSettings {
        network: network.clone(),
        ..Default::default()
    };
    let instance = format!("inst-{}", std::process::id());
    let plan = ContainerPlan::new(
        &project(repo, volumes),
        &stage(),
        &global,
        &Target {
            tag: "v2",
            digest: Some(&digest),
            deploy_id: "deploy-1",
            instance_id: &instance,
            owner: "test",
        },
    );
    let id = e.run(&plan, Publish::Loopback).await.unwrap();
    let st = e.inspect(&id).await.unwrap();
    assert!(st.running, "{st:?}");
    assert_eq!(st.name, plan.name);
    assert_eq!(st.labels["berth.digest"], digest);
    assert_eq!(st.labels["berth.deploy"], "deploy-1");
    assert!(st.networks.contains_key(&network), "{st:?}");
    let port = st.published_port.expect("published on loopback");
    wait_health(&e, &id, "healthy").await;

    // What the container sees.
    let get = |path: String| async move {
        reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(get("/version".into()).await.trim(), "v2");
    assert_eq!(
        get("/env/GREETING".into()).await,
        "hello from dev",
        "stage override applied"
    );
    assert_eq!(get("/env/API_KEY".into()).await, "k3y-value");
    assert_eq!(
        get("/file?path=/shared/hello.txt".into()).await,
        "from the host"
    );
    let c = reqwest::Client::new();
    let r = c
        .put(format!(
            "http://127.0.0.1:{port}/file?path=/data/written.txt"
        ))
        .body("isolated")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        std::fs::read_to_string(iso.join("dev-v2/written.txt")).unwrap(),
        "isolated",
        "isolated volume is per stage and tag"
    );
    let r = c
        .put(format!(
            "http://127.0.0.1:{port}/file?path=/shared/nope.txt"
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "the shared volume is read-only");

    // Listed as berth's; stop, start, remove (twice).
    assert!(e.list_managed().await.unwrap().iter().any(|c| c.id == id));
    e.stop(&id, Duration::from_secs(2)).await.unwrap();
    assert!(!e.inspect(&id).await.unwrap().running);
    e.stop(&id, Duration::from_secs(2)).await.unwrap(); // already stopped: fine
    e.start(&id).await.unwrap();
    assert!(e.inspect(&id).await.unwrap().running);
    e.remove(&id).await.unwrap();
    e.remove(&id).await.unwrap();
    assert!(matches!(
        e.inspect(&id).await,
        Err(EngineError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_unhealthy_image_reports_unhealthy() {
    let Some(env) = env() else { return };
    let e = engine(&env).await;
    let repo = &env["BERTH_TEST_IMAGE"];
    e.pull(&format!("{repo}:unhealthy"), None, &|_| {})
        .await
        .unwrap();
    let global = GlobalSettings {
        network: "bridge".into(),
        ..Default::default()
    };
    let instance = format!("unhealthy-{}", std::process::id());
    let plan = ContainerPlan::new(
        &project(repo, vec![]),
        &stage(),
        &global,
        &Target {
            tag: "unhealthy",
            digest: None,
            deploy_id: "d",
            instance_id: &instance,
            owner: "test",
        },
    );
    let id = e.run(&plan, Publish::No).await.unwrap();
    wait_health(&e, &id, "unhealthy").await;
    e.remove(&id).await.unwrap();
}

#[tokio::test]
async fn pulls_fail_with_the_registry_s_reason() {
    let Some(env) = env() else { return };
    let e = engine(&env).await;
    let missing = format!("{}:no-such-tag", env["BERTH_TEST_IMAGE"]);
    let err = e.pull(&missing, None, &|_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains("not found") || err.to_string().contains("unknown"),
        "{err}"
    );

    // The registry with auth: refused without credentials, pulled with them.
    let private = format!("{}/berth-test/private:v1", env["BERTH_TEST_REGISTRY_AUTH"]);
    let err = e.pull(&private, None, &|_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains("unauthorized") || err.to_string().contains("no basic auth"),
        "{err}"
    );
    let password = std::fs::read_to_string(&env["BERTH_TEST_REGISTRY_PASSWORD_FILE"]).unwrap();
    let auth = RegistryAuth {
        server: env["BERTH_TEST_REGISTRY_AUTH"].clone(),
        username: env["BERTH_TEST_REGISTRY_USER"].clone(),
        password: SecretString::new(password.trim()),
    };
    e.pull(&private, Some(&auth), &|_| {}).await.unwrap();
    assert!(e.image_digest(&private).await.unwrap().is_some());
}
