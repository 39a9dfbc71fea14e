//! The deployer against real parts: the test engine and registry, the NPM double, and the
//! real nginx it configures. Traffic goes through nginx, as users' would.

use berth_config::seed::Seed;
use berth_crypto::{Keyring, SecretString};
use berth_deployer::{DeployRequest, Deployer, Options};
use berth_domain::deploy::Trigger;
use berth_domain::model::{NpmSettings, UpstreamMode};
use berth_domain::ports::ContainerEngine;
use berth_npm_double::{Config, Double, NginxConfig};
use berth_store::{SecretUpdate, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct World {
    deployer: Arc<Deployer>,
    store: Store,
    engine: Arc<berth_docker::DockerEngine>,
    nginx_port: String,
    domain: String,
    hosts_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

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

/// A store with one project `name` (stage `dev`: any tag, blue-green), NPM pointing at a
/// fresh double that drives the test nginx, short drain and watch windows.
async fn world(env: &BTreeMap<String, String>, name: &str, watch_secs: u64) -> World {
    world_with(env, name, watch_secs, "").await
}

/// `world`, with more stages (YAML at the stages' indentation) after `dev`.
async fn world_with(
    env: &BTreeMap<String, String>,
    name: &str,
    watch_secs: u64,
    stages: &str,
) -> World {
    world_full(env, name, watch_secs, stages, false).await
}

/// `world_with`; with `private`, the project's image is in the registry that requires a
/// login, and the seed holds its credentials.
async fn world_full(
    env: &BTreeMap<String, String>,
    name: &str,
    watch_secs: u64,
    stages: &str,
    private: bool,
) -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let domain = format!("{name}.berth-e2e.test");
    let (registries, registry, image) = if private {
        let password = std::fs::read_to_string(&env["BERTH_TEST_REGISTRY_PASSWORD_FILE"]).unwrap();
        (
            format!(
                "registries:\n  private:\n    url: http://{host}\n    username: {user}\n    token: '{pw}'\n",
                host = env["BERTH_TEST_REGISTRY_AUTH"],
                user = env["BERTH_TEST_REGISTRY_USER"],
                pw = password.trim(),
            ),
            "    registry: private\n",
            format!("{}/berth-test/private", env["BERTH_TEST_REGISTRY_AUTH"]),
        )
    } else {
        (String::new(), "", env["BERTH_TEST_IMAGE"].clone())
    };
    let seed = format!(
        "global:\n  domain: {domain}\n  network: berth-e2e\n  drain_secs: 1\n  watch_secs: {watch_secs}\n  keep_releases: 2\n  prune_images: false\n{registries}\
         projects:\n  {name}:\n{registry}    image: {image}\n    port: 8080\n    healthcheck: {{type: image}}\n    env: {{GREETING: hi}}\n    stages:\n      dev:\n        tag_pattern: '*'\n        auto_deploy: true\n{stages}",
    );
    let store = Store::open(
        &format!("sqlite://{}/b.db", dir.path().display()),
        Keyring::for_tests(),
    )
    .await
    .unwrap();
    store
        .initialize(Some(&Seed::parse(&seed).unwrap()), None)
        .await
        .unwrap();

    let prefix = std::path::PathBuf::from(&env["BERTH_TEST_NGINX_PREFIX"]);
    // Server blocks an earlier, interrupted run left for the same domains would shadow ours.
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
    let nginx_port = env["BERTH_TEST_NGINX_PORT"].clone();
    let nginx_hosts = hosts_dir.clone();
    let nginx = NginxConfig {
        bin: "nginx".into(),
        conf: env["BERTH_TEST_NGINX_CONF"].clone().into(),
        lock: prefix.join("proxy_host.lock"),
        listen: format!("127.0.0.1:{nginx_port}"),
        hosts_dir,
        prefix,
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let npm_url = format!("http://{}", l.local_addr().unwrap());
    let double = Double::new(Config {
        nginx: Some(nginx),
        initial_admin: Some(("berth@e2e.test".into(), "npm-pw".into())),
        ..Default::default()
    });
    tokio::spawn(berth_npm_double::serve(l, double, std::future::pending()));
    let npm = NpmSettings {
        url: npm_url,
        email: "berth@e2e.test".into(),
        password: None,
        upstream: UpstreamMode::HostPort,
        certificate_id: None,
        websockets: false,
    };
    store
        .set_npm_settings(&npm, SecretUpdate::Replace(SecretString::new("npm-pw")))
        .await
        .unwrap();

    let engine = berth_docker::DockerEngine::new(Some(env["BERTH_TEST_DOCKER_HOST"].clone()));
    assert!(engine.connect().await.is_connected());
    let options = Options {
        stop_grace: Duration::from_secs(2),
        watch_every: Duration::from_millis(500),
        notify_backoff: Duration::from_millis(100),
    };
    let deployer = Deployer::new(
        store.clone(),
        engine.clone(),
        Arc::new(berth_npm::NpmConnector),
        options,
    );
    World {
        deployer,
        store,
        engine,
        nginx_port,
        domain: format!("stage-dev-{name}.{domain}"),
        hosts_dir: nginx_hosts,
        _dir: dir,
    }
}

impl World {
    /// Points `project` at `berth-test/{repository}` (pushed by scripts/testenv for one test
    /// alone) and removes that repository's images from the engine, so the next deploy pulls.
    async fn own_repository(
        &self,
        env: &BTreeMap<String, String>,
        project: &str,
        repository: &str,
    ) -> String {
        let repo = format!("{}/berth-test/{repository}", env["BERTH_TEST_REGISTRY"]);
        let mut p = self.store.project(project).await.unwrap().unwrap();
        p.image = berth_domain::ImageRef::parse(&repo).unwrap();
        self.store.update_project(&p).await.unwrap();
        let _ = self.engine.prune_images(&repo, &[]).await;
        repo
    }

    async fn deploy(&self, project: &str, tag: &str) -> String {
        self.deploy_to(project, "dev", tag).await
    }

    async fn deploy_to(&self, project: &str, stage: &str, tag: &str) -> String {
        self.deployer
            .submit(DeployRequest {
                project: project.into(),
                stage: stage.into(),
                tag: tag.into(),
                trigger: Trigger::Manual,
                actor: "test".into(),
                digest: None,
                confirmed: false,
            })
            .await
            .unwrap()
    }

    async fn finished(&self, id: &str) -> berth_store::DeployRecord {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let d = self.store.deploy(id).await.unwrap();
            if d.finished_at.is_some() {
                return d;
            }
            assert!(Instant::now() < end, "deploy {id} did not finish: {d:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn served(&self) -> String {
        self.served_at(&self.domain).await
    }

    async fn served_at(&self, host: &str) -> String {
        let c = reqwest::Client::new();
        match c
            .get(format!("http://127.0.0.1:{}/version", self.nginx_port))
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

    /// `served`, retried for up to 5 s until it says `want` (route changes reach nginx by an
    /// asynchronous reload).
    async fn served_soon(&self, want: &str) -> String {
        self.served_soon_at(&self.domain, want).await
    }

    async fn served_soon_at(&self, host: &str, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.served_at(host).await;
            if got == want || Instant::now() > end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn containers(&self, project: &str) -> Vec<berth_domain::ports::ContainerSummary> {
        self.engine
            .list_managed()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.labels.get("berth.project").map(String::as_str) == Some(project))
            .collect()
    }

    async fn cleanup(&self, project: &str) {
        for c in self.containers(project).await {
            let _ = self.engine.remove(&c.id).await;
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.hosts_dir);
    }
}

/// What a steady load saw.
struct LoadResult {
    sent: u64,
    failed: u64,
    errors: Vec<String>,
}

/// GETs through nginx at a steady rate, until stopped (bounded: at most `max` requests).
/// Each request on a fresh connection: an nginx reload closes idle keep-alive connections,
/// and a client that reuses one it has not yet seen closed loses that request whoever the
/// upstream is (browsers retry it; `berth-bench deploys` counts it separately). What berth
/// answers for is that every request nginx takes is served.
struct Load {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<LoadResult>,
}

impl Load {
    fn start(port: String, domain: String, per_sec: u64, max: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut r = LoadResult {
                sent: 0,
                failed: 0,
                errors: Vec::new(),
            };
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
            while !flag.load(Ordering::Relaxed) && r.sent < max {
                tick.tick().await;
                r.sent += 1;
                match c
                    .get(format!("http://127.0.0.1:{port}/version"))
                    .header("host", &domain)
                    .send()
                    .await
                {
                    Ok(res) if res.status() == 200 => {}
                    Ok(res) => {
                        r.failed += 1;
                        r.errors.push(format!("status {}", res.status()));
                    }
                    Err(e) => {
                        r.failed += 1;
                        r.errors.push(e.to_string());
                    }
                }
            }
            r
        });
        Load { stop, handle }
    }

    async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blue_green_swaps_without_dropping_a_request_and_keeps_the_old_release() {
    let Some(env) = env() else { return };
    let w = world(&env, "bluegreen", 2).await;
    w.cleanup("bluegreen").await;

    let d1 = w.deploy("bluegreen", "v1").await;
    let r1 = w.finished(&d1).await;
    assert_eq!(
        r1.state,
        "succeeded",
        "{r1:?}\nlogs: {:?}",
        w.store.deploy_logs(&d1, 0).await.unwrap()
    );
    assert!(r1.digest.as_deref().unwrap_or("").starts_with("sha256:"));
    assert_eq!(w.served().await, "200 v1");
    let steps: Vec<String> = w
        .store
        .deploy_steps(&d1)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{}", s.step, s.state))
        .collect();
    assert_eq!(
        steps,
        [
            "resolving:done",
            "pulling:done",
            "starting:done",
            "health_checking:done",
            "switching:done",
            "draining:done",
            "watching:done"
        ]
    );

    // v2 under a steady 100 requests/s through nginx: not one may fail.
    let load = Load::start(w.nginx_port.clone(), w.domain.clone(), 100, 6000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d2 = w.deploy("bluegreen", "v2").await;
    let r2 = w.finished(&d2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let LoadResult {
        sent,
        failed,
        errors,
    } = load.finish().await;
    assert_eq!(r2.state, "succeeded", "{r2:?}");
    assert_eq!(w.served().await, "200 v2");
    assert!(sent > 100, "too little traffic to mean anything: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the swap: {errors:?}"
    );

    // The old release is kept, stopped, for rollback.
    let live = w.containers("bluegreen").await;
    let tags: Vec<(String, String)> = live
        .iter()
        .map(|c| (c.labels["berth.tag"].clone(), c.state.clone()))
        .collect();
    assert!(tags.contains(&("v1".into(), "exited".into())), "{tags:?}");
    assert!(tags.contains(&("v2".into(), "running".into())), "{tags:?}");
    assert_eq!(tags.len(), 2, "{tags:?}");
    w.cleanup("bluegreen").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unhealthy_version_never_replaces_the_live_one() {
    let Some(env) = env() else { return };
    let w = world(&env, "unhealthy", 1).await;
    w.cleanup("unhealthy").await;
    let ok = w.deploy("unhealthy", "v2").await;
    assert_eq!(w.finished(&ok).await.state, "succeeded");
    let bad = w.deploy("unhealthy", "unhealthy").await;
    let r = w.finished(&bad).await;
    assert_eq!(r.state, "failed", "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("unhealthy"), "{r:?}");
    assert_eq!(
        w.served().await,
        "200 v2",
        "the live version must keep serving"
    );
    let tags: Vec<String> = w
        .containers("unhealthy")
        .await
        .iter()
        .map(|c| c.labels["berth.tag"].clone())
        .collect();
    assert_eq!(tags, ["v2"], "the failed container must be removed");
    w.cleanup("unhealthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_that_turns_unhealthy_while_watched_is_rolled_back() {
    let Some(env) = env() else { return };
    // flaky reports healthy, then unhealthy after 8 s: inside a 20 s watch window.
    let w = world(&env, "watched", 20).await;
    w.cleanup("watched").await;
    let ok = w.deploy("watched", "v3").await;
    // The first deploy has nothing to fall back on; keep its watch short by waiting it out.
    assert_eq!(w.finished(&ok).await.state, "succeeded");
    let flaky = w.deploy("watched", "flaky").await;
    let r = w.finished(&flaky).await;
    assert_eq!(
        r.state,
        "rolled_back",
        "{r:?}\n{:?}",
        w.store.deploy_logs(&flaky, 0).await.unwrap()
    );
    assert!(
        r.error.as_deref().unwrap().starts_with("watching:"),
        "{r:?}"
    );
    let served = w.served().await;
    assert_eq!(
        served,
        "200 v3",
        "traffic must be back on the previous version\n{:?}",
        w.store.deploy_logs(&flaky, 0).await.unwrap()
    );
    let running: Vec<String> = w
        .containers("watched")
        .await
        .iter()
        .filter(|c| c.state == "running")
        .map(|c| c.labels["berth.tag"].clone())
        .collect();
    assert_eq!(running, ["v3"]);
    w.cleanup("watched").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_pushes_runs_one_at_a_time_and_ends_with_the_newest() {
    let Some(env) = env() else { return };
    let w = world(&env, "burst", 1).await;
    w.cleanup("burst").await;
    let first = w.deploy("burst", "v1").await;
    let mut ids = vec![first];
    for tag in ["v2", "v3", "v4", "v2", "v3", "v4"] {
        ids.push(w.deploy("burst", tag).await);
    }
    let mut states = Vec::new();
    let mut ran = Vec::new();
    for id in &ids {
        let r = w.finished(id).await;
        if r.state == "failed" {
            eprintln!("{r:?}\n{:?}", w.store.deploy_logs(id, 0).await.unwrap());
        }
        if let (Some(a), Some(b)) = (r.started_at.clone(), r.finished_at.clone())
            && r.state == "succeeded"
        {
            ran.push((a, b));
        }
        states.push(r.state);
    }
    // Whether the first push was claimed before the second arrived is a race; what must hold:
    // the newest push goes live, every other one either ran to success or was superseded
    // while queued, and a burst of seven supersedes some.
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{states:?}"
    );
    assert!(
        states.iter().all(|s| s == "superseded" || s == "succeeded"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "superseded"), "{states:?}");
    // One at a time: the deploys that ran never overlapped (RFC 3339 UTC sorts as text).
    ran.sort();
    for pair in ran.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping deploys: {ran:?}");
    }
    assert_eq!(w.served().await, "200 v4");
    let running = w
        .containers("burst")
        .await
        .into_iter()
        .filter(|c| c.state == "running")
        .count();
    assert_eq!(running, 1, "one live container per blue-green stage");
    w.cleanup("burst").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_removes_orphans() {
    let Some(env) = env() else { return };
    let w = world(&env, "orphans", 1).await;
    w.cleanup("orphans").await;
    let d = w.deploy("orphans", "v1").await;
    assert_eq!(w.finished(&d).await.state, "succeeded");
    // A container with berth's labels but no instance record: what a crash between `run`
    // and the record could leave.
    let project = w
        .store
        .project_for_deploy("orphans")
        .await
        .unwrap()
        .unwrap()
        .0;
    let global = w.store.global_settings().await.unwrap();
    let owner = w.store.installation_id().await.unwrap();
    let start = |instance_id: &'static str, owner: String| {
        let plan = berth_domain::plan::ContainerPlan::new(
            &project,
            &project.stages[0],
            &global,
            &berth_domain::plan::Target {
                tag: "v1",
                digest: None,
                deploy_id: "lost",
                instance_id,
                owner: &owner,
            },
        );
        let engine = w.engine.clone();
        async move {
            engine
                .run(&plan, berth_domain::ports::Publish::No)
                .await
                .unwrap()
        }
    };
    let orphan = start("no-such-instance", owner).await;
    // Another installation sharing the engine: its containers are none of ours.
    let foreign = start("someone-elses", "ffffffffffffffff".into()).await;
    w.deployer.reconcile().await.unwrap();
    assert!(
        w.engine.inspect(&orphan).await.is_err(),
        "the orphan must be gone"
    );
    assert!(
        w.engine.inspect(&foreign).await.is_ok(),
        "another installation's container must be left alone"
    );
    w.engine.remove(&foreign).await.unwrap();
    assert_eq!(
        w.served().await,
        "200 v1",
        "and the live instance untouched"
    );
    w.cleanup("orphans").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_takes_only_what_is_live_upstream_and_rollback_restores_a_kept_release() {
    let Some(env) = env() else { return };
    let prod = "      prod:\n        tag_pattern: 'v*'\n        promote_from: dev\n        confirm: true\n        subdomain: promoted\n";
    let w = world_with(&env, "promo", 1, prod).await;
    w.cleanup("promo").await;
    let d1 = w.deploy("promo", "v1").await;
    let dev_v1 = w.finished(&d1).await;
    assert_eq!(dev_v1.state, "succeeded");

    let req = |tag: &str, confirmed: bool| DeployRequest {
        project: "promo".into(),
        stage: "prod".into(),
        tag: tag.into(),
        trigger: Trigger::Promote,
        actor: "test".into(),
        digest: None,
        confirmed,
    };
    let e = w.deployer.submit(req("v2", true)).await.unwrap_err();
    assert!(e.to_string().contains("only takes tags live in dev"), "{e}");
    let e = w.deployer.submit(req("v1", false)).await.unwrap_err();
    assert!(e.to_string().contains("confirmation"), "{e}");
    let p = w.deployer.submit(req("v1", true)).await.unwrap();
    let promoted = w.finished(&p).await;
    assert_eq!(promoted.state, "succeeded", "{promoted:?}");
    assert_eq!(
        promoted.digest, dev_v1.digest,
        "prod runs exactly the image dev runs"
    );
    let c = reqwest::Client::new();
    let prod_served = c
        .get(format!("http://127.0.0.1:{}/version", w.nginx_port))
        .header("host", "promoted.promo.berth-e2e.test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(prod_served.trim(), "v1");

    // dev moves on to v2; v1 is kept; a rollback by digest brings v1 back.
    let d2 = w.deploy("promo", "v2").await;
    assert_eq!(w.finished(&d2).await.state, "succeeded");
    assert_eq!(w.served().await, "200 v2");
    let (_, dev_id) = w.store.stage_ids("promo", "dev").await.unwrap().unwrap();
    let kept = w
        .store
        .stage_instances(dev_id)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.status == "kept")
        .expect("v1 kept");
    assert_eq!(kept.tag, "v1");
    let rb = w
        .deployer
        .submit(DeployRequest {
            project: "promo".into(),
            stage: "dev".into(),
            tag: kept.tag.clone(),
            trigger: Trigger::Rollback,
            actor: "test".into(),
            digest: kept.digest.clone(),
            confirmed: true,
        })
        .await
        .unwrap();
    let r = w.finished(&rb).await;
    assert_eq!(r.state, "succeeded", "{r:?}");
    assert_eq!(r.digest, kept.digest);
    assert_eq!(w.served().await, "200 v1");
    w.cleanup("promo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_stop_start_restart_and_remove_instances_and_retire_a_stage() {
    use berth_deployer::InstanceAction as A;
    let Some(env) = env() else { return };
    let w = world(&env, "ops", 1).await;
    w.cleanup("ops").await;
    let d1 = w.deploy("ops", "v1").await;
    assert_eq!(w.finished(&d1).await.state, "succeeded");
    let d2 = w.deploy("ops", "v2").await;
    assert_eq!(w.finished(&d2).await.state, "succeeded");
    let (_, sid) = w.store.stage_ids("ops", "dev").await.unwrap().unwrap();
    let instances = w.store.stage_instances(sid).await.unwrap();
    let live = instances
        .iter()
        .find(|i| i.status == "live")
        .unwrap()
        .id
        .clone();
    let kept = instances
        .iter()
        .find(|i| i.status == "kept")
        .unwrap()
        .id
        .clone();
    let act = |id: &str, a: A| {
        let (d, id) = (w.deployer.clone(), id.to_string());
        async move { d.instance_action("ops", "dev", &id, a, "tester").await }
    };

    assert_eq!(act(&live, A::Stop).await.unwrap().status, "stopped");
    assert!(
        !w.served().await.starts_with("200"),
        "stopped means not served"
    );
    let e = act(&live, A::Stop).await.unwrap_err();
    assert!(e.to_string().contains("not live"), "{e}");
    // Starting it again: health-gated, and routed to its new host port.
    // (nginx applies a reload asynchronously: the new route serves within moments.)
    assert_eq!(act(&live, A::Start).await.unwrap().status, "live");
    assert_eq!(w.served_soon("200 v2").await, "200 v2");
    assert_eq!(act(&live, A::Restart).await.unwrap().status, "live");
    assert_eq!(w.served_soon("200 v2").await, "200 v2");
    let e = act(&kept, A::Start).await.unwrap_err();
    assert!(e.to_string().contains("roll back"), "{e}");
    let e = act("no-such", A::Restart).await.unwrap_err();
    assert!(matches!(e, berth_deployer::OpError::NotFound(_)), "{e}");

    // Removing the kept release leaves the live one serving.
    assert_eq!(act(&kept, A::Remove).await.unwrap().status, "removed");
    assert_eq!(w.served().await, "200 v2");
    assert_eq!(w.containers("ops").await.len(), 1);

    // Retiring the stage removes the live container and its route.
    assert_eq!(
        w.deployer
            .retire_stage("ops", "dev", "tester")
            .await
            .unwrap(),
        1
    );
    assert!(w.containers("ops").await.is_empty());
    assert!(!w.served().await.starts_with("200"));
    assert!(w.store.stage_instances(sid).await.unwrap().is_empty());
    w.cleanup("ops").await;
}

/// A notification receiver on 127.0.0.1 that answers 500 to the first `fail_first` requests.
async fn receiver(fail_first: usize) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use axum::http::StatusCode;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/hook/{token}",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < fail_first {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                g.lock().unwrap().push(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/tok-3f9a", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_deploys_are_notified_with_retries_and_the_host_logged() {
    let Some(env) = env() else { return };
    let w = world(&env, "notified", 1).await;
    w.cleanup("notified").await;
    let (url, got) = receiver(2).await;
    let mut g = w.store.global_settings().await.unwrap();
    g.notification_url = Some(url);
    w.store.set_global_settings(&g).await.unwrap();

    let ok = w.deploy("notified", "v1").await;
    let done = w.finished(&ok).await;
    assert_eq!(done.state, "succeeded");
    let bad = w.deploy("notified", "unhealthy").await;
    assert_eq!(w.finished(&bad).await.state, "failed");

    // Two 500s, then accepted: back-off 100 ms, 200 ms; the failure goes through at once.
    let end = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < end,
            "notifications: {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = got.lock().unwrap().clone();
    let by_event = |e: &str| {
        got.iter()
            .find(|n| n["event"] == e)
            .cloned()
            .unwrap_or_else(|| panic!("no {e} in {got:?}"))
    };
    let s = by_event("deploy.succeeded");
    assert_eq!(s["deploy"], ok.as_str());
    assert_eq!(s["tag"], "v1");
    assert_eq!(s["domain"], w.domain.as_str());
    assert!(s["digest"].as_str().unwrap().starts_with("sha256:"), "{s}");
    assert!(s["text"].as_str().unwrap().contains("is live at"), "{s}");
    let f = by_event("deploy.failed");
    assert_eq!(f["deploy"], bad.as_str());
    assert!(f["error"].as_str().unwrap().contains("health"), "{f}");

    // Recorded in the deploy's log, naming the host but never the URL's token.
    let logs = w.store.deploy_logs(&ok, 0).await.unwrap();
    let line = logs
        .iter()
        .find(|l| l.line.starts_with("notified"))
        .unwrap_or_else(|| panic!("{logs:?}"));
    assert_eq!(line.line, "notified 127.0.0.1 (attempt 3 of 5)");
    assert!(logs.iter().all(|l| !l.line.contains("tok-3f9a")));
    w.cleanup("notified").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_behind_registry_login_is_pulled_with_the_stored_credentials() {
    let Some(env) = env() else { return };
    let w = world_full(&env, "privy", 1, "", true).await;
    w.cleanup("privy").await;
    let d = w.deploy("privy", "v1").await;
    let r = w.finished(&d).await;
    assert_eq!(r.state, "succeeded", "{r:?}");
    assert_eq!(w.served().await, "200 v1");
    // The credentials never reach the deploy's log.
    let password = std::fs::read_to_string(&env["BERTH_TEST_REGISTRY_PASSWORD_FILE"]).unwrap();
    let logs = w.store.deploy_logs(&d, 0).await.unwrap();
    assert!(logs.iter().all(|l| !l.line.contains(password.trim())));
    w.cleanup("privy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn npm_unreachable_fails_the_switch_cleanly_and_the_old_version_keeps_serving() {
    let Some(env) = env() else { return };
    let w = world(&env, "npmdown", 1).await;
    w.cleanup("npmdown").await;
    let d1 = w.deploy("npmdown", "v1").await;
    assert_eq!(w.finished(&d1).await.state, "succeeded");
    // NPM goes away: a port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut npm = w.store.npm_connection().await.unwrap().unwrap();
    npm.url = dead;
    w.store
        .set_npm_settings(&npm, berth_store::SecretUpdate::Keep)
        .await
        .unwrap();
    let d2 = w.deploy("npmdown", "v2").await;
    let r = w.finished(&d2).await;
    // The switch had begun (design.md: a visible state), so it ends rolled back, naming NPM.
    assert_eq!(r.state, "rolled_back", "{r:?}");
    let err = r.error.clone().unwrap_or_default();
    assert!(
        err.starts_with("switching: Nginx Proxy Manager is unreachable"),
        "{err}"
    );
    assert_eq!(w.served().await, "200 v1", "the old version keeps serving");
    let running: Vec<String> = w
        .containers("npmdown")
        .await
        .into_iter()
        .filter(|c| c.state == "running")
        .map(|c| c.labels["berth.tag"].clone())
        .collect();
    assert_eq!(running, ["v1"], "the new container is gone");
    w.cleanup("npmdown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_instance_stage_serves_tags_side_by_side_and_evicts_the_oldest() {
    let Some(env) = env() else { return };
    let stages = "      pr:\n        tag_pattern: 'v*'\n        max_instances: 2\n";
    let w = world_with(&env, "multi", 1, stages).await;
    w.cleanup("multi").await;
    for tag in ["v1", "v2", "v3"] {
        let d = w.deploy_to("multi", "pr", tag).await;
        assert_eq!(w.finished(&d).await.state, "succeeded", "{tag}");
    }
    let (_, sid) = w.store.stage_ids("multi", "pr").await.unwrap().unwrap();
    let live: Vec<_> = w
        .store
        .stage_instances(sid)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status == "live")
        .collect();
    let mut tags: Vec<&str> = live.iter().map(|i| i.tag.as_str()).collect();
    tags.sort();
    assert_eq!(tags, ["v2", "v3"], "the oldest was evicted");
    for i in &live {
        assert!(i.subdomain.ends_with(&i.tag), "{}", i.subdomain);
        let host = format!("{}.multi.berth-e2e.test", i.subdomain);
        assert_eq!(
            w.served_soon_at(&host, &format!("200 {}", i.tag)).await,
            format!("200 {}", i.tag)
        );
    }
    let v1_host = live[0].subdomain.replace(&live[0].tag, "v1");
    let gone = w
        .served_at(&format!("{v1_host}.multi.berth-e2e.test"))
        .await;
    assert!(!gone.starts_with("200"), "v1's route is removed: {gone}");
    assert_eq!(w.containers("multi").await.len(), 2);
    w.cleanup("multi").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_allow_listed_image_becomes_a_project_from_what_it_declares() {
    let Some(env) = env() else { return };
    let w = world(&env, "auto", 1).await;
    w.cleanup("other").await;
    let image = berth_domain::ImageRef::parse(&format!(
        "{}/berth-test/other:v1",
        env["BERTH_TEST_REGISTRY"]
    ))
    .unwrap();
    // Two webhooks at once for the same new image make one project.
    let (a, b) = tokio::join!(
        w.deployer.create_from_image(&image),
        w.deployer.create_from_image(&image)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.name, b.name);
    assert_eq!(a.name.as_str(), "other");
    assert_eq!(a.port, 8080, "from EXPOSE");
    assert_eq!(
        a.health,
        berth_domain::model::HealthCheck::Image,
        "from HEALTHCHECK"
    );
    assert_eq!(w.store.list_projects().await.unwrap().len(), 2);

    let d = w.deploy("other", "v1").await;
    assert_eq!(w.finished(&d).await.state, "succeeded");
    assert_eq!(
        w.served_at("stage-dev-other.auto.berth-e2e.test").await,
        "200 v1"
    );
    // An image that is not in the registry fails with the registry's reason, creating nothing.
    let missing = berth_domain::ImageRef::parse(&format!(
        "{}/berth-test/nope:v1",
        env["BERTH_TEST_REGISTRY"]
    ))
    .unwrap();
    let e = w.deployer.create_from_image(&missing).await.unwrap_err();
    assert!(e.to_string().starts_with("pulling"), "{e}");
    assert_eq!(w.store.list_projects().await.unwrap().len(), 2);
    w.cleanup("other").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_nothing_uses_any_more_are_pruned_and_the_live_one_is_not() {
    let Some(env) = env() else { return };
    let w = world(&env, "pruning", 1).await;
    w.cleanup("pruning").await;
    // Its own repository (scripts/testenv pushes it for this test alone), no kept releases.
    let repo = w.own_repository(&env, "pruning", "prune").await;
    let mut g = w.store.global_settings().await.unwrap();
    g.prune_images = true;
    g.keep_releases = 0;
    w.store.set_global_settings(&g).await.unwrap();

    let d1 = w.deploy("pruning", "v1").await;
    assert_eq!(w.finished(&d1).await.state, "succeeded");
    let d2 = w.deploy("pruning", "v2").await;
    let r2 = w.finished(&d2).await;
    assert_eq!(r2.state, "succeeded");
    assert_eq!(w.served().await, "200 v2");

    let v1 = format!("{repo}:v1");
    let v2 = format!("{repo}:v2");
    assert!(
        matches!(
            w.engine.image_digest(&v1).await,
            Err(berth_domain::ports::EngineError::NotFound(_))
        ),
        "v1 is no longer used and was pruned"
    );
    assert_eq!(
        w.engine.image_digest(&v2).await.unwrap(),
        r2.digest,
        "the live image stays"
    );
    let logs = w.store.deploy_logs(&d2, 0).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.line.starts_with("pruned unused images:") && l.line.contains(":v1")),
        "{logs:?}"
    );
    // The next deploy pulls what it needs again: pruning never blocks a redeploy.
    let d3 = w.deploy("pruning", "v1").await;
    assert_eq!(w.finished(&d3).await.state, "succeeded");
    assert_eq!(w.served().await, "200 v1");
    w.cleanup("pruning").await;
    let _ = w.engine.prune_images(&repo, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_pull_is_published_layer_by_layer() {
    let Some(env) = env() else { return };
    let w = world(&env, "progress", 1).await;
    w.cleanup("progress").await;
    // Its own image (scripts/testenv pushes it for this test alone), removed first, so that
    // berth has to pull it.
    let repo = w.own_repository(&env, "progress", "progress").await;

    let mut events = w.deployer.subscribe();
    let d1 = w.deploy("progress", "v1").await;
    assert_eq!(w.finished(&d1).await.state, "succeeded");
    // The image was not there: its pull was published layer by layer, as progress events
    // (not log lines), ending with every layer complete.
    let mut layers = BTreeMap::<String, String>::new();
    loop {
        match events.try_recv() {
            Ok(e) if e.deploy == d1 => {
                if let Some(p) = e.progress {
                    assert_eq!(e.state, "progress");
                    assert!(!p.layer.is_empty(), "{p:?}");
                    if let (Some(c), Some(t)) = (p.current, p.total) {
                        assert!(c <= t, "{p:?}");
                    }
                    layers.insert(p.layer, p.status);
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert!(!layers.is_empty(), "no pull progress was published");
    assert!(
        layers
            .values()
            .all(|s| s == "Pull complete" || s == "Already exists"),
        "{layers:?}"
    );
    assert_eq!(w.served().await, "200 progress");
    w.cleanup("progress").await;
    let _ = w.engine.prune_images(&repo, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_up_points_lost_or_stale_routes_at_the_live_instance_again() {
    use berth_domain::ports::ProxyConnector;
    let Some(env) = env() else { return };
    let w = world(&env, "reroute", 1).await;
    w.cleanup("reroute").await;
    let d = w.deploy("reroute", "v1").await;
    assert_eq!(w.finished(&d).await.state, "succeeded");
    assert_eq!(w.served().await, "200 v1");
    assert_eq!(w.deployer.check_routes().await, 0, "nothing to fix");

    // As after a host reboot: the container restarts on another host port.
    let (_, sid) = w.store.stage_ids("reroute", "dev").await.unwrap().unwrap();
    let live = w.store.stage_instances(sid).await.unwrap().remove(0);
    let cid = live.container_id.clone().unwrap();
    let before = w.engine.inspect(&cid).await.unwrap().published_port;
    w.engine.stop(&cid, Duration::from_secs(2)).await.unwrap();
    w.engine.start(&cid).await.unwrap();
    let after = w.engine.inspect(&cid).await.unwrap().published_port;
    assert_ne!(before, after, "the engine gave it a new port");
    w.deployer.reconcile().await.unwrap();
    assert_eq!(w.served_soon("200 v1").await, "200 v1");

    // As after an NPM restored from an old backup: the host is gone.
    let npm = w.store.npm_connection().await.unwrap().unwrap();
    let proxy = berth_npm::NpmConnector.connect(&npm);
    let route = proxy.find_route(&w.domain).await.unwrap().unwrap();
    proxy.remove_route(route.id).await.unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while w.served().await.starts_with("200") {
        assert!(Instant::now() < end, "the route was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.deployer.reconcile().await.unwrap();
    assert_eq!(w.served_soon("200 v1").await, "200 v1");
    w.cleanup("reroute").await;
}

/// Publishes `berth-test/app:{from}` as `{repo}:{tag}` through the registry API (blobs
/// mounted across repositories, the manifest put under the new tag): a CI push, without an
/// engine.
async fn publish(reg: &str, from: &str, repo: &str, tag: &str) {
    let c = reqwest::Client::new();
    let accept = "application/vnd.docker.distribution.manifest.v2+json";
    let manifest = c
        .get(format!("http://{reg}/v2/berth-test/app/manifests/{from}"))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in blobs {
        let r = c
            .post(format!(
                "http://{reg}/v2/{repo}/blobs/uploads/?mount={d}&from=berth-test/app"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "mount {d}: {}",
            r.text().await.unwrap()
        );
    }
    let r = c
        .put(format!("http://{reg}/v2/{repo}/manifests/{tag}"))
        .header("content-type", accept)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_deploys_new_and_re_pushed_tags_once_and_backs_off_on_errors() {
    let Some(env) = env() else { return };
    let reg = env["BERTH_TEST_REGISTRY"].clone();
    let w = world(&env, "polled", 1).await;
    w.cleanup("polled").await;
    // A repository of its own, fresh per run, so other tests' tags do not show up.
    let repo = format!("berth-test/polled-{}", std::process::id());
    let mut p = w.store.project("polled").await.unwrap().unwrap();
    p.image = berth_domain::ImageRef::parse(&format!("{reg}/{repo}")).unwrap();
    p.stages[0].tag_pattern = berth_domain::TagPattern::parse("v*").unwrap();
    w.store.update_project(&p).await.unwrap();
    let poller = berth_deployer::Poller::new(
        w.deployer.clone(),
        w.store.clone(),
        Arc::new(berth_registry::RegistryClient::new()),
    );

    publish(&reg, "v1", &repo, "v1").await;
    let queued = poller.poll("polled").await.unwrap();
    assert_eq!(queued.len(), 1);
    let d = w.finished(&queued[0]).await;
    assert_eq!(
        (d.state.as_str(), d.tag.as_str(), d.trigger.as_str()),
        ("succeeded", "v1", "poll")
    );
    assert_eq!(w.served().await, "200 v1");
    assert!(
        poller.poll("polled").await.unwrap().is_empty(),
        "nothing new"
    );

    // A newer version, by version order (v10 > v9 > v2, whatever the registry's order).
    publish(&reg, "v2", &repo, "v2").await;
    publish(&reg, "v3", &repo, "v10").await;
    let queued = poller.poll("polled").await.unwrap();
    assert_eq!(queued.len(), 1);
    let d = w.finished(&queued[0]).await;
    assert_eq!((d.state.as_str(), d.tag.as_str()), ("succeeded", "v10"));
    assert_eq!(w.served().await, "200 v3");

    // The same tag pushed again with other content: a new digest, deployed once.
    publish(&reg, "v4", &repo, "v10").await;
    let queued = poller.poll("polled").await.unwrap();
    assert_eq!(queued.len(), 1, "a re-pushed tag");
    assert_eq!(w.finished(&queued[0]).await.state, "succeeded");
    assert_eq!(w.served().await, "200 v4");
    assert!(poller.poll("polled").await.unwrap().is_empty());
    let status = w.store.poll_status("polled").await.unwrap().unwrap();
    assert_eq!((status.failures, status.last_error), (0, None));

    // The registry goes away: recorded, and the next look backs off.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("127.0.0.1:{}/{repo}", closed.local_addr().unwrap().port());
    drop(closed);
    p.image = berth_domain::ImageRef::parse(&dead).unwrap();
    // The project's own interval, not the global one, is what backs off.
    p.poll_interval_secs = Some(30);
    w.store.update_project(&p).await.unwrap();
    let interval = 30;
    let mut waits = Vec::new();
    for failures in 1..=2 {
        let e = poller.poll("polled").await.unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        let s = w.store.poll_status("polled").await.unwrap().unwrap();
        assert_eq!(s.failures, failures);
        let next = chrono::DateTime::parse_from_rfc3339(&s.next_check).unwrap();
        let checked =
            chrono::DateTime::parse_from_rfc3339(s.last_checked.as_deref().unwrap()).unwrap();
        waits.push((next - checked).num_seconds());
    }
    assert_eq!(waits, [interval * 2, interval * 4], "doubling back-off");
    assert_eq!(w.served().await, "200 v4", "serving is untouched");
    w.cleanup("polled").await;
}
