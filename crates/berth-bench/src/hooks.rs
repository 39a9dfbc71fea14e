//! `berth-bench hooks`: 1,000 webhook deliveries for 10 projects, sent within 10 seconds
//! (bounded in count and time) through the real router on 127.0.0.1: how many were accepted,
//! recorded as duplicates, lost; how many deploys they queued (one per stage is the goal);
//! and the time from delivery to deploy queued (the `202` answers after the deploy is
//! recorded), against `GET /api/health` on the same server in the same run.

use anyhow::{Context, bail};
use berth_config::seed::Seed;
use berth_crypto::{Keyring, SecretString};
use berth_store::Store;
use futures::StreamExt;
use std::time::{Duration, Instant};

const PROJECTS: usize = 10;
const DELIVERIES: usize = 1000;
const CONCURRENCY: usize = 16;
const BUDGET: Duration = Duration::from_secs(10);

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut seed = String::from("projects:\n");
    for i in 0..PROJECTS {
        seed.push_str(&format!(
            "  app{i}:\n    image: registry.bench.test/team/app{i}\n    port: 8080\n    stages:\n      dev:\n        tag_pattern: '*'\n        auto_deploy: true\n"
        ));
    }
    let store = Store::open(
        &format!("sqlite://{}/b.db", dir.path().display()),
        Keyring::new(berth_crypto::Key::generate(), vec![]),
    )
    .await?;
    store.initialize(Some(&Seed::parse(&seed)?), None).await?;
    let secret = "bench-hook-secret-0123456789abcdef";
    store
        .set_hook_secret("generic", &SecretString::new(secret))
        .await?;
    // No engine: the deploys this queues fail at their pull; what is measured ends earlier.
    let base = crate::serve_in_process(store.clone(), dir.path()).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    // Baseline: the same number of requests to the health check.
    let mut health = Vec::new();
    for _ in 0..DELIVERIES {
        let t = Instant::now();
        client.get(format!("{base}/api/health")).send().await?;
        health.push(t.elapsed());
    }

    // 100 deliveries per project (a registry that notifies several times for one push),
    // interleaved, 16 at a time, within the budget.
    let url = format!("{base}/api/hooks/generic/{secret}");
    let started = Instant::now();
    let results: Vec<(u16, Duration, String)> = futures::stream::iter(0..DELIVERIES)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let p = i % PROJECTS;
            async move {
                if started.elapsed() > BUDGET {
                    return (
                        0,
                        Duration::ZERO,
                        "not sent: over the time budget".to_string(),
                    );
                }
                let body = serde_json::json!({
                    "image": format!("registry.bench.test/team/app{p}:v1"),
                    "digest": format!("sha256:{:064x}", p + 1),
                });
                let t = Instant::now();
                match client.post(&url).json(&body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let outcome = r
                            .json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|v| v["outcome"].as_str().map(String::from))
                            .unwrap_or_default();
                        (status, t.elapsed(), outcome)
                    }
                    Err(e) => (0, t.elapsed(), format!("error: {e}")),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();

    let count = |o: &str| results.iter().filter(|r| r.2 == o).count();
    let (accepted, duplicate) = (count("accepted"), count("duplicate"));
    let failed: Vec<&(u16, Duration, String)> = results
        .iter()
        .filter(|r| r.2 != "accepted" && r.2 != "duplicate")
        .collect();
    let recorded = store.deliveries(Some("generic"), 1000).await?.len();
    let deploys = store.list_deploys(None, 1000).await.context("deploys")?;
    let mut per_stage = std::collections::BTreeMap::<String, usize>::new();
    for d in &deploys {
        *per_stage
            .entry(format!("{}/{}", d.project, d.stage))
            .or_default() += 1;
    }
    let mut all: Vec<Duration> = results.iter().map(|r| r.1).collect();
    let mut queued: Vec<Duration> = results
        .iter()
        .filter(|r| r.2 == "accepted")
        .map(|r| r.1)
        .collect();
    if queued.is_empty() {
        bail!(
            "no delivery was accepted: {:?}",
            &results[..3.min(results.len())]
        );
    }

    println!(
        "berth webhook benchmark: {DELIVERIES} deliveries for {PROJECTS} projects, {CONCURRENCY} at a time, through the real router on 127.0.0.1"
    );
    println!();
    println!(
        "sent in                        {:.2} s (budget {} s)",
        took.as_secs_f64(),
        BUDGET.as_secs()
    );
    println!("accepted                       {accepted}");
    println!("recorded as duplicates         {duplicate}");
    println!("failed or not sent             {}", failed.len());
    println!(
        "recorded deliveries            {recorded} of {DELIVERIES} (lost: {})",
        DELIVERIES.saturating_sub(recorded)
    );
    println!(
        "deploys queued                 {} for {} stages (most for one stage: {})",
        deploys.len(),
        per_stage.len(),
        per_stage.values().max().copied().unwrap_or(0)
    );
    println!();
    let (h50, h99) = (pct(&mut health, 0.5), pct(&mut health, 0.99));
    let (a50, a99) = (pct(&mut all, 0.5), pct(&mut all, 0.99));
    let (q50, q99) = (pct(&mut queued, 0.5), pct(&mut queued, 0.99));
    println!("                                     p50          p99    ratio p50/p99 to health");
    println!(
        "GET /api/health (baseline)    {:>12} {:>12}",
        ms(h50),
        ms(h99)
    );
    println!(
        "every delivery                {:>12} {:>12}    {:.1}x / {:.1}x",
        ms(a50),
        ms(a99),
        a50.as_secs_f64() / h50.as_secs_f64(),
        a99.as_secs_f64() / h99.as_secs_f64()
    );
    println!(
        "delivery → deploy queued      {:>12} {:>12}    {:.1}x / {:.1}x",
        ms(q50),
        ms(q99),
        q50.as_secs_f64() / h50.as_secs_f64(),
        q99.as_secs_f64() / h99.as_secs_f64()
    );
    for f in failed.iter().take(5) {
        println!("  failure: {} {}", f.0, f.2);
    }
    Ok(())
}
