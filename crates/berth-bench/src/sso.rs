//! `berth-bench sso`: single sign-on through the real test provider (web/tests/oidc/idp.mjs,
//! panva's oidc-provider) against password login and `GET /api/health` on the same server in
//! the same run. 100 sign-ins of each kind, one after another, within 60 s.
//!
//! berth's share of a sign-in is its two requests: the redirect to the provider (discovery is
//! cached) and the callback (code exchange and userinfo at the provider, ID token checks, the
//! user and the session). The provider's own pages are timed apart.

use anyhow::{Context, bail};
use berth_crypto::{Keyring, SecretString};
use berth_domain::{Role, Username};
use berth_store::Store;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 100;
const BUDGET: Duration = Duration::from_secs(60);
const PASSWORD: &str = "bench-password-1";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cookies(h: &reqwest::header::HeaderMap, jar: &mut HashMap<String, String>) {
    for v in h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if let Some((k, v)) = v.split(';').next().and_then(|kv| kv.split_once('=')) {
            jar.insert(k.to_string(), v.to_string());
        }
    }
}

fn jar_header(jar: &HashMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &format!("sqlite://{}/b.db", dir.path().display()),
        Keyring::new(berth_crypto::Key::generate(), vec![]),
    )
    .await?;
    let hash = berth_auth::hash_password(&SecretString::new(PASSWORD))?;
    let admin = store
        .create_user(&Username::parse("admin")?, &hash, Role::Admin)
        .await?;
    let token = berth_auth::SessionSecret::generate("bt_");
    store
        .create_session(
            admin.id,
            &token.hash,
            berth_store::SessionKind::Script,
            Duration::from_secs(3600),
            None,
            None,
        )
        .await?;
    let base = crate::serve_in_process(store, dir.path()).await?;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/tests/oidc/idp.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .env("IDP_PORT", "0")
        .env(
            "IDP_REDIRECT_URIS",
            format!("{base}/api/auth/oidc/callback"),
        )
        .env("IDP_CLIENT_SECRET", "bench-client-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("node must run web/tests/oidc/idp.mjs (npm ci in web/ first)")?;
    let mut out = BufReader::new(child.stdout.take().context("idp stdout")?);
    let _idp = Kill(child);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let issuer = serde_json::from_str::<serde_json::Value>(&line)
        .context("the test provider did not start")?["issuer"]
        .as_str()
        .context("no issuer")?
        .to_string();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = client
        .put(format!("{base}/api/settings/oidc"))
        .bearer_auth(token.secret.expose())
        .json(&serde_json::json!({
            "display_name": "Bench IdP", "issuer": issuer, "client_id": "berth",
            "client_secret": "bench-client-secret", "public_url": base,
            "scopes": ["profile", "email", "groups"],
            "role_rules": [{"value": "berth-admins", "role": "admin"}]
        }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("configuring single sign-on: {}", r.text().await?);
    }

    let started = Instant::now();
    let mut health = Vec::with_capacity(N);
    let mut password = Vec::with_capacity(N);
    let (mut berth_side, mut idp_side, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        if started.elapsed() > BUDGET {
            bail!("over the {BUDGET:?} budget after {i} rounds");
        }
        let t = Instant::now();
        client.get(format!("{base}/api/health")).send().await?;
        health.push(t.elapsed());

        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await?;
        if r.status() != 200 {
            bail!("password login: {}", r.status());
        }
        password.push(t.elapsed());

        // One sign-in, each round in a fresh browser (no provider session to reuse).
        let mut jar = HashMap::new();
        let t_all = Instant::now();
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/auth/oidc/login"))
            .send()
            .await?;
        let mut ours = t.elapsed();
        let binding = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("berth_oidc="))
            .and_then(|v| v.split(';').next())
            .context("no binding cookie")?
            .to_string();
        let mut url = r
            .headers()
            .get("location")
            .context("no redirect")?
            .to_str()?
            .to_string();
        let t_idp = Instant::now();
        let callback = loop {
            let full = if url.starts_with('/') {
                format!("{issuer}{url}")
            } else {
                url.clone()
            };
            if full.starts_with(&base) {
                break full;
            }
            let mut req = client.get(&full).header("cookie", jar_header(&jar));
            if url.contains("/interaction/") {
                req = client
                    .post(&full)
                    .header("cookie", jar_header(&jar))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("login=alice&password=wonderland");
            }
            let r = req.send().await?;
            cookies(r.headers(), &mut jar);
            url = r
                .headers()
                .get("location")
                .with_context(|| format!("the provider did not redirect from {full}"))?
                .to_str()?
                .to_string();
        };
        idp_side.push(t_idp.elapsed());
        let t = Instant::now();
        let r = client
            .get(&callback)
            .header("cookie", format!("berth_oidc={binding}"))
            .send()
            .await?;
        ours += t.elapsed();
        let ok = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.starts_with("berth_session=bs_"));
        if !ok {
            bail!(
                "sign-in {i} failed: {:?}",
                r.headers().get_all("set-cookie")
            );
        }
        berth_side.push(ours);
        whole.push(t_all.elapsed());
    }

    println!(
        "single sign-on: {N} sign-ins through oidc-provider on 127.0.0.1, each beside a password login and a health check"
    );
    println!(
        "{:<52} {:>10} {:>10} {:>16}",
        "figure", "p50", "p99", "p50 vs health"
    );
    let h50 = pct(&mut health, 0.5);
    let row = |name: &str, v: &mut Vec<Duration>| {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        println!(
            "{:<52} {:>10} {:>10} {:>15.1}x",
            name,
            ms(p50),
            ms(p99),
            p50.as_secs_f64() / h50.as_secs_f64()
        );
        p50
    };
    row("GET /api/health (baseline)", &mut health);
    let pw = row("password login (argon2id)", &mut password);
    let ours = row("sign-in, berth's two requests", &mut berth_side);
    row("sign-in, the provider's pages", &mut idp_side);
    row("sign-in, whole browser round trip", &mut whole);
    println!(
        "berth's share of a sign-in vs a password login: {:.2}x",
        ours.as_secs_f64() / pw.as_secs_f64()
    );
    Ok(())
}
