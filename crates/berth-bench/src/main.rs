//! `berth-bench`: footprint and latency figures for berth, each beside a baseline measured in
//! the same run. The baseline is `berth-testserver`, a minimal std-only HTTP server, started
//! and measured exactly like berth, so the ratios say what berth's features cost.
//!
//! Usage: `berth-bench <berth binary> <baseline binary>` (scripts/bench builds both in release).
//! Set `DOCKER_HOST` to measure with an engine connected. Every loop is bounded in count and
//! time; traffic goes only to 127.0.0.1.

use anyhow::{Context, bail};

mod deploys;
mod hooks;
mod sso;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 10;
const REQUESTS: usize = 1000;
const CONCURRENCY: usize = 8;
const PASSWORD: &str = "bench-admin-password";

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server and returns it with the time from exec to the first 200 on `probe`.
async fn start(
    kind: &str,
    bin: &str,
    data: Option<tempfile::TempDir>,
    client: &reqwest::Client,
) -> anyhow::Result<(Proc, Duration)> {
    let port = free_port();
    let data = match data {
        Some(d) => d,
        None => tempfile::tempdir()?,
    };
    let mut cmd = Command::new(bin);
    let probe = if kind == "berth" {
        cmd.arg("serve")
            .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("BERTH_DATA_DIR", data.path())
            .env("BERTH_ADMIN_PASSWORD", PASSWORD)
            .env("BERTH_SEED_FILE", "")
            .env("BERTH_LOG", "warn")
            .env(
                "DOCKER_HOST",
                std::env::var("DOCKER_HOST")
                    .unwrap_or_else(|_| "unix:///nonexistent/bench.sock".into()),
            );
        "/api/health"
    } else {
        cmd.args(["--port", &port.to_string(), "--version", "baseline"]);
        "/version"
    };
    let t0 = Instant::now();
    let child = cmd
        .current_dir(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {bin}"))?;
    let url = format!("http://127.0.0.1:{port}");
    let p = Proc {
        child,
        url,
        _data: data,
    };
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}{probe}", p.url)).send().await
            && r.status() == 200
        {
            return Ok((p, t0.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("{kind} did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// berth's router on 127.0.0.1 over `store`, with no engine (deploys it queues fail at
/// their pull); returns its base URL.
pub(crate) async fn serve_in_process(
    store: berth_store::Store,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let engine =
        berth_docker::DockerEngine::new(Some(format!("unix://{}/no-engine.sock", dir.display())));
    let proxy: std::sync::Arc<dyn berth_domain::ports::ProxyConnector> =
        std::sync::Arc::new(berth_npm::NpmConnector);
    let deployer = berth_deployer::Deployer::new(
        store.clone(),
        engine.clone(),
        proxy.clone(),
        berth_deployer::Options::default(),
    );
    let app = std::sync::Arc::new(berth_server::App::new(
        store,
        engine,
        proxy,
        deployer,
        berth_server::ServerSettings::default(),
    ));
    let (router, _) = berth_server::router(app);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", l.local_addr()?);
    tokio::spawn(berth_server::serve(l, router, std::future::pending()));
    Ok(base)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// `REQUESTS` GETs over `CONCURRENCY` connections; latencies and wall time.
async fn load(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let t0 = Instant::now();
    let per = REQUESTS / CONCURRENCY;
    let tasks = (0..CONCURRENCY).map(|_| {
        let (client, url, bearer) = (client.clone(), url.to_string(), bearer.map(str::to_string));
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let s = Instant::now();
                let mut req = client.get(&url);
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                let res = req.send().await?;
                let status = res.status();
                res.bytes().await?;
                if status != 200 {
                    bail!("{url}: {status}");
                }
                lat.push(s.elapsed());
            }
            Ok(lat)
        })
    });
    let mut all = Vec::with_capacity(REQUESTS);
    for r in futures::future::join_all(tasks).await {
        all.extend(r??);
    }
    Ok((all, t0.elapsed()))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("deploys") {
        return deploys::run().await;
    }
    if args.get(1).map(String::as_str) == Some("hooks") {
        return hooks::run().await;
    }
    if args.get(1).map(String::as_str) == Some("sso") {
        return sso::run().await;
    }
    let [_, berth, baseline] = args.as_slice() else {
        bail!("usage: berth-bench <berth binary> <baseline binary>");
    };
    // The servers run in their own directories: make the paths absolute first.
    let berth = &std::fs::canonicalize(berth)
        .with_context(|| format!("cannot find the berth binary {berth}"))?
        .display()
        .to_string();
    let baseline = &std::fs::canonicalize(baseline)
        .with_context(|| format!("cannot find the baseline binary {baseline}"))?
        .display()
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (bs, ts) = (size(berth), size(baseline));
    println!(
        "berth benchmark (baseline: berth-testserver, a std-only static HTTP server, measured the same way)"
    );
    println!(
        "engine: {}",
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "none (unreachable socket)".into())
    );
    println!();
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "figure", "berth", "baseline", "ratio"
    );
    let row =
        |name: &str, a: String, b: String, r: f64| println!("{name:<44} {a:>14} {b:>14} {r:>7.1}x");
    row(
        "binary size",
        format!("{:.1} MiB", bs as f64 / 1048576.0),
        format!("{:.2} MiB", ts as f64 / 1048576.0),
        bs as f64 / ts as f64,
    );

    // Start-up: first start (migrations, key, admin hash) and restart (existing data).
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut base = Vec::new();
    for _ in 0..STARTS {
        let (p, t) = start("berth", berth, None, &client).await?;
        first.push(t);
        let mut p = p;
        let data = std::mem::replace(&mut p._data, tempfile::tempdir()?);
        Command::new("kill")
            .args(["-TERM", &p.child.id().to_string()])
            .status()?;
        let _ = p.child.wait();
        drop(p);
        let (_, t) = start("berth", berth, Some(data), &client).await?;
        again.push(t);
        let (_, t) = start("baseline", baseline, None, &client).await?;
        base.push(t);
    }
    let (f, a, b) = (median(first), median(again), median(base));
    row(
        "start to first 200, first start (median)",
        ms(f),
        ms(b),
        f.as_secs_f64() / b.as_secs_f64(),
    );
    row(
        "start to first 200, restart (median)",
        ms(a),
        ms(b),
        a.as_secs_f64() / b.as_secs_f64(),
    );

    // Memory idle, then after 1,000 authenticated API requests.
    let (b_proc, _) = start("berth", berth, None, &client).await?;
    let (t_proc, _) = start("baseline", baseline, None, &client).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (bpid, tpid) = (b_proc.child.id(), t_proc.child.id());
    let (b_idle, t_idle) = (rss_kib(bpid, "VmRSS:"), rss_kib(tpid, "VmRSS:"));
    row(
        "resident memory, idle",
        format!("{:.1} MiB", b_idle as f64 / 1024.0),
        format!("{:.1} MiB", t_idle as f64 / 1024.0),
        b_idle as f64 / t_idle as f64,
    );

    let token: serde_json::Value = client
        .post(format!("{}/api/auth/token", b_proc.url))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["token"].as_str().context("no token")?.to_string();
    let (b_login, t_now) = (rss_kib(bpid, "VmRSS:"), rss_kib(tpid, "VmRSS:"));
    row(
        "resident memory after one password login",
        format!("{:.1} MiB", b_login as f64 / 1024.0),
        format!("{:.1} MiB", t_now as f64 / 1024.0),
        b_login as f64 / t_now as f64,
    );
    let (mut lat_api, wall_api) = load(
        &client,
        &format!("{}/api/projects", b_proc.url),
        Some(&token),
    )
    .await?;
    let (mut lat_me, _) = load(
        &client,
        &format!("{}/api/auth/me", b_proc.url),
        Some(&token),
    )
    .await?;
    let (mut lat_health, _) = load(&client, &format!("{}/api/health", b_proc.url), None).await?;
    let (mut lat_base, wall_base) = load(&client, &format!("{}/version", t_proc.url), None).await?;
    let (b_load, t_load) = (rss_kib(bpid, "VmRSS:"), rss_kib(tpid, "VmRSS:"));
    let b_peak = rss_kib(bpid, "VmHWM:");
    row(
        &format!("resident memory after {} requests", 3 * REQUESTS),
        format!("{:.1} MiB", b_load as f64 / 1024.0),
        format!("{:.1} MiB", t_load as f64 / 1024.0),
        b_load as f64 / t_load as f64,
    );
    row(
        "peak resident memory (VmHWM)",
        format!("{:.1} MiB", b_peak as f64 / 1024.0),
        format!("{:.1} MiB", rss_kib(tpid, "VmHWM:") as f64 / 1024.0),
        b_peak as f64 / rss_kib(tpid, "VmHWM:") as f64,
    );
    let (b50, t50) = (pct(&mut lat_api, 0.5), pct(&mut lat_base, 0.5));
    row(
        "GET /api/projects (bearer) p50",
        ms(b50),
        ms(t50),
        b50.as_secs_f64() / t50.as_secs_f64(),
    );
    let (b99, t99) = (pct(&mut lat_api, 0.99), pct(&mut lat_base, 0.99));
    row(
        "GET /api/projects (bearer) p99",
        ms(b99),
        ms(t99),
        b99.as_secs_f64() / t99.as_secs_f64(),
    );
    let (m50, h50) = (pct(&mut lat_me, 0.5), pct(&mut lat_health, 0.5));
    row(
        "GET /api/auth/me (bearer) p50",
        ms(m50),
        ms(t50),
        m50.as_secs_f64() / t50.as_secs_f64(),
    );
    row(
        "GET /api/health p50",
        ms(h50),
        ms(t50),
        h50.as_secs_f64() / t50.as_secs_f64(),
    );
    let (rb, rt) = (
        REQUESTS as f64 / wall_api.as_secs_f64(),
        REQUESTS as f64 / wall_base.as_secs_f64(),
    );
    row(
        &format!("throughput, {CONCURRENCY} connections (req/s)"),
        format!("{rb:.0}"),
        format!("{rt:.0}"),
        rb / rt,
    );
    println!();
    println!(
        "(berth keeps connections alive; the baseline closes each one, so its latency includes a TCP connect.\n \
         A password login runs argon2id with 19 MiB of working memory, which the allocator may keep.)"
    );
    Ok(())
}
