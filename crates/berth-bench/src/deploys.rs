//! `berth-bench deploys`: the deploy engine's figures, against real parts (scripts/testenv):
//!
//! - zero downtime: a steady 200 requests/s through nginx while 20 blue-green swaps run,
//!   against the same load with no deploys (failed requests, p50/p99);
//! - deploy overhead: deploy requested → new version served through nginx, against the same
//!   steps done by hand with the Docker CLI and an nginx reload (the floor), medians of 5.
//!
//! Bounded: at most 60,000 requests and 10 minutes; traffic only to 127.0.0.1.

use anyhow::{Context, bail};
use berth_config::seed::Seed;
use berth_crypto::{Keyring, SecretString};
use berth_deployer::{DeployRequest, Deployer, Options};
use berth_domain::deploy::Trigger;
use berth_domain::model::{NpmSettings, UpstreamMode};
use berth_domain::ports::ContainerEngine;
use berth_store::{SecretUpdate, Store};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RATE: u64 = 200;
const SWAPS: usize = 20;
const ROUNDS: usize = 5;
const MAX_REQUESTS: usize = 60_000;
const DEADLINE: Duration = Duration::from_secs(600);

struct Env(BTreeMap<String, String>);

impl Env {
    fn get(&self, k: &str) -> anyhow::Result<&str> {
        self.0
            .get(k)
            .map(String::as_str)
            .with_context(|| format!("{k} is not set: run `eval \"$(scripts/testenv up)\"` first"))
    }
}

fn docker(env: &Env, args: &[&str]) -> anyhow::Result<String> {
    let cli = if std::path::Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let out = Command::new(cli)
        .env("DOCKER_HOST", env.get("BERTH_TEST_DOCKER_HOST")?)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Latencies and failures of GETs at a steady rate until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(Vec<Duration>, usize, BTreeMap<String, usize>)>,
}

/// How the load talks to nginx.
#[derive(Clone, Copy)]
enum Conn {
    /// Pooled keep-alive connections, as browsers and most clients use.
    KeepAlive,
    /// A new connection per request: what the routing itself delivers.
    Fresh,
}

impl Load {
    fn start(port: String, host: String, conn: Conn) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let b = reqwest::Client::builder().timeout(Duration::from_secs(5));
            let c = match conn {
                Conn::KeepAlive => b.build().unwrap(),
                Conn::Fresh => b.pool_max_idle_per_host(0).build().unwrap(),
            };
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let t0 = Instant::now();
            let mut sent = 0usize;
            while !flag.load(Ordering::Relaxed) && sent < MAX_REQUESTS && t0.elapsed() < DEADLINE {
                tick.tick().await;
                sent += 1;
                let (c, tx, url, host) = (
                    c.clone(),
                    tx.clone(),
                    format!("http://127.0.0.1:{port}/version"),
                    host.clone(),
                );
                // Each request on its own task: a slow answer must not slow the rate.
                tokio::spawn(async move {
                    let s = Instant::now();
                    let outcome = match c.get(url).header("host", host).send().await {
                        Ok(r) if r.status() == 200 => None,
                        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
                        Err(e) => {
                            let mut cause: &dyn std::error::Error = &e;
                            while let Some(next) = cause.source() {
                                cause = next;
                            }
                            Some(cause.to_string())
                        }
                    };
                    let _ = tx.send((s.elapsed(), outcome));
                });
            }
            drop(tx);
            let (mut lat, mut failed, mut kinds) = (Vec::with_capacity(sent), 0, BTreeMap::new());
            while let Some((d, outcome)) = rx.recv().await {
                lat.push(d);
                if let Some(kind) = outcome {
                    failed += 1;
                    *kinds.entry(kind).or_insert(0) += 1;
                }
            }
            (lat, failed, kinds)
        });
        Load { stop, handle }
    }

    async fn finish(self) -> (Vec<Duration>, usize, BTreeMap<String, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap()
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn served(port: &str, host: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/version"))
        .header("host", host)
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    Some(r.text().await.ok()?.trim().to_string())
}

async fn wait_served(port: &str, host: &str, want: &str) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(120);
    while Instant::now() < end {
        if served(port, host).await.as_deref() == Some(want) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{host} never served {want}")
}

pub async fn run() -> anyhow::Result<()> {
    let env = Env(std::env::vars()
        .filter(|(k, _)| k.starts_with("BERTH_TEST_"))
        .collect());
    let image = env.get("BERTH_TEST_IMAGE")?.to_string();
    let port = env.get("BERTH_TEST_NGINX_PORT")?.to_string();
    let prefix = std::path::PathBuf::from(env.get("BERTH_TEST_NGINX_PREFIX")?);
    let conf = env.get("BERTH_TEST_NGINX_CONF")?.to_string();

    // berth's side: a store, the NPM double on the test nginx, the deployer.
    let dir = tempfile::tempdir()?;
    let seed = format!(
        "global:\n  domain: bench.test\n  network: berth-bench\n  drain_secs: 2\n  watch_secs: 1\n  keep_releases: 1\n\
         projects:\n  bench:\n    image: {image}\n    port: 8080\n    healthcheck: {{type: image}}\n    stages:\n      dev:\n        tag_pattern: '*'\n        auto_deploy: true\n"
    );
    let store = Store::open(
        &format!("sqlite://{}/b.db", dir.path().display()),
        Keyring::new(berth_crypto::Key::generate(), vec![]),
    )
    .await?;
    store.initialize(Some(&Seed::parse(&seed)?), None).await?;
    let hosts_dir = berth_npm_double::hosts_dir(&prefix, "bench");
    let _ = std::fs::remove_dir_all(&hosts_dir);
    let nginx = berth_npm_double::NginxConfig {
        bin: "nginx".into(),
        conf: conf.clone().into(),
        lock: prefix.join("proxy_host.lock"),
        listen: format!("127.0.0.1:{port}"),
        hosts_dir: hosts_dir.clone(),
        prefix: prefix.clone(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let npm_url = format!("http://{}", l.local_addr()?);
    let double = berth_npm_double::Double::new(berth_npm_double::Config {
        nginx: Some(nginx),
        initial_admin: Some(("b@bench.test".into(), "pw".into())),
        ..Default::default()
    });
    tokio::spawn(berth_npm_double::serve(l, double, std::future::pending()));
    let npm = NpmSettings {
        url: npm_url,
        email: "b@bench.test".into(),
        password: None,
        upstream: UpstreamMode::HostPort,
        certificate_id: None,
        websockets: false,
    };
    store
        .set_npm_settings(&npm, SecretUpdate::Replace(SecretString::new("pw")))
        .await?;
    let engine =
        berth_docker::DockerEngine::new(Some(env.get("BERTH_TEST_DOCKER_HOST")?.to_string()));
    if !engine.connect().await.is_connected() {
        bail!("the test engine is not reachable");
    }
    for c in engine.list_managed().await? {
        if c.labels.get("berth.project").map(String::as_str) == Some("bench") {
            engine.remove(&c.id).await?;
        }
    }
    let deployer = Deployer::new(
        store.clone(),
        engine.clone(),
        Arc::new(berth_npm::NpmConnector),
        Options {
            stop_grace: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let host = "stage-dev-bench.bench.test";
    let deploy = |tag: &str| {
        let (d, tag) = (deployer.clone(), tag.to_string());
        async move {
            d.submit(DeployRequest {
                project: "bench".into(),
                stage: "dev".into(),
                tag,
                trigger: Trigger::Manual,
                actor: "bench".into(),
                digest: None,
                confirmed: false,
            })
            .await
            .map_err(anyhow::Error::from)
        }
    };
    let finished = |id: String| {
        let store = store.clone();
        async move {
            let end = Instant::now() + Duration::from_secs(120);
            loop {
                let d = store.deploy(&id).await?;
                if d.finished_at.is_some() {
                    return Ok::<_, anyhow::Error>(d);
                }
                if Instant::now() > end {
                    bail!("deploy {id} did not finish");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Warm the engine's image cache so both sides measure the same work.
    for t in ["v1", "v2", "v3", "v4"] {
        docker(&env, &["pull", "-q", &format!("{image}:{t}")])?;
    }
    let first = finished(deploy("v1").await?).await?;
    if first.state != "succeeded" {
        bail!("the first deploy failed: {:?}", first.error);
    }
    wait_served(&port, host, "v1").await?;

    println!("berth deploy benchmark (real engine, registry and nginx; NPM double)");
    println!();

    // 1. Zero downtime.
    let quiet = Load::start(port.clone(), host.to_string(), Conn::KeepAlive);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (mut base_lat, base_failed, _) = quiet.finish().await;
    let load = Load::start(port.clone(), host.to_string(), Conn::KeepAlive);
    let fresh = Load::start(port.clone(), host.to_string(), Conn::Fresh);
    let t0 = Instant::now();
    let tags = ["v2", "v3", "v4", "v1"];
    let mut outcomes = BTreeMap::new();
    for i in 0..SWAPS {
        let d = finished(deploy(tags[i % tags.len()]).await?).await?;
        *outcomes.entry(d.state).or_insert(0) += 1;
    }
    let swap_time = t0.elapsed();
    let (mut lat, failed, kinds) = load.finish().await;
    let (mut f_lat, f_failed, f_kinds) = fresh.finish().await;
    println!(
        "zero downtime: {RATE} requests/s through nginx on keep-alive connections and {RATE}/s on fresh ones,"
    );
    println!(
        "while {SWAPS} blue-green swaps ran in {:.0} s (outcomes: {outcomes:?})",
        swap_time.as_secs_f64()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12}",
        "", "requests", "failed", "p50", "p99"
    );
    let (b50, b99) = (pct(&mut base_lat, 0.5), pct(&mut base_lat, 0.99));
    let (d50, d99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12}",
        "no deploys (baseline)",
        base_lat.len(),
        base_failed,
        ms(b50),
        ms(b99)
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12}",
        "during swaps, keep-alive",
        lat.len(),
        failed,
        ms(d50),
        ms(d99)
    );
    let (f50, f99) = (pct(&mut f_lat, 0.5), pct(&mut f_lat, 0.99));
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12}",
        "during swaps, fresh conns",
        f_lat.len(),
        f_failed,
        ms(f50),
        ms(f99)
    );
    println!(
        "{:<28} {:>12} {:>12} {:>11.2}x {:>11.2}x",
        "ratio",
        "",
        "",
        d50.as_secs_f64() / b50.as_secs_f64(),
        d99.as_secs_f64() / b99.as_secs_f64()
    );
    println!();

    for (what, k) in [("keep-alive", &kinds), ("fresh", &f_kinds)] {
        for (kind, n) in k {
            println!("  {what} failure: {n} x {kind}");
        }
    }
    println!();

    // 2. Deploy overhead against the floor.
    let floor_conf = prefix.join("conf.d").join("bench-floor.conf");
    let floor_host = "floor.bench.test";
    let mut berth_times = Vec::new();
    let mut floor_times = Vec::new();
    let mut current = served(&port, host).await.unwrap_or_default();
    for round in 0..ROUNDS {
        let next = tags
            .iter()
            .find(|t| **t != current)
            .copied()
            .unwrap_or("v2");
        let t = Instant::now();
        let id = deploy(next).await?;
        wait_served(&port, host, next).await?;
        berth_times.push(t.elapsed());
        finished(id).await?;
        current = next.to_string();

        // The same steps by hand: run beside, wait for health, point nginx, reload, served.
        let t = Instant::now();
        let name = format!("berth-bench-floor-{round}");
        let _ = docker(&env, &["rm", "-f", &name]);
        docker(
            &env,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-p",
                "127.0.0.1::8080",
                &format!("{image}:{next}"),
            ],
        )?;
        loop {
            let h = docker(&env, &["inspect", "-f", "{{.State.Health.Status}}", &name])?;
            if h == "healthy" {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the floor container never became healthy");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let p = docker(&env, &["port", &name, "8080"])?;
        let hp = p
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .context("no published port")?
            .to_string();
        std::fs::write(
            &floor_conf,
            format!(
                "server {{ listen 127.0.0.1:{port}; server_name {floor_host}; location / {{ proxy_pass http://127.0.0.1:{hp}; }} }}\n"
            ),
        )?;
        let st = Command::new("nginx")
            .args([
                "-p",
                &prefix.display().to_string(),
                "-c",
                &conf,
                "-s",
                "reload",
            ])
            .status()?;
        if !st.success() {
            bail!("nginx reload failed");
        }
        wait_served(&port, floor_host, next).await?;
        floor_times.push(t.elapsed());
        if round > 0 {
            let _ = docker(
                &env,
                &["rm", "-f", &format!("berth-bench-floor-{}", round - 1)],
            );
        }
    }
    let _ = docker(
        &env,
        &["rm", "-f", &format!("berth-bench-floor-{}", ROUNDS - 1)],
    );
    let _ = std::fs::remove_file(&floor_conf);
    let _ = Command::new("nginx")
        .args([
            "-p",
            &prefix.display().to_string(),
            "-c",
            &conf,
            "-s",
            "reload",
        ])
        .status();
    let (bm, fm) = (pct(&mut berth_times, 0.5), pct(&mut floor_times, 0.5));
    println!(
        "deploy overhead: requested → new version served through nginx (median of {ROUNDS}; image cached)"
    );
    println!(
        "{:<28} {:>12}",
        "berth (pull, start, health gate, NPM switch)",
        ms(bm)
    );
    println!("{:<28} {:>12}", "docker CLI + nginx reload (floor)", ms(fm));
    println!(
        "{:<28} {:>11.2}x",
        "ratio",
        bm.as_secs_f64() / fm.as_secs_f64()
    );

    for c in engine.list_managed().await? {
        if c.labels.get("berth.project").map(String::as_str) == Some("bench") {
            let _ = engine.remove(&c.id).await;
        }
    }
    let _ = std::fs::remove_dir_all(&hosts_dir);
    Ok(())
}
