//! Crash safety: berth killed with SIGKILL in the middle of a deploy, then started again,
//! settles it: a terminal record, no orphan container, the route on a healthy instance.

use crate::deploy::{npm_double, served};
use crate::support::{Berth, Options, docker, testenv};
use serde_json::json;
use std::time::{Duration, Instant};

async fn deploy(berth: &Berth, cookie: &str, project: &str, tag: &str) -> String {
    let r = berth
        .client
        .post(format!(
            "{}/api/projects/{project}/stages/dev/deploys",
            berth.url
        ))
        .header("cookie", cookie)
        .json(&json!({"tag": tag}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<serde_json::Value>().await.unwrap()["deploy"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_state(berth: &Berth, cookie: &str, id: &str, want: &[&str]) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, d) = berth.get(&format!("/api/deploys/{id}"), cookie).await;
        if want.contains(&d["state"].as_str().unwrap_or("")) {
            return d;
        }
        assert!(Instant::now() < end, "deploy never reached {want:?}: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn clear(env: &std::collections::HashMap<String, String>, project: &str) {
    for id in docker(
        env,
        &[
            "ps",
            "-aq",
            "--filter",
            &format!("label=berth.project={project}"),
        ],
    )
    .lines()
    {
        docker(env, &["rm", "-f", id]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_each_step_is_settled_on_restart() {
    let Some(env) = testenv() else { return };
    let (npm_url, hosts_dir) = npm_double(&env, "e2e-crash").await;
    let project = "crashy";
    clear(&env, project);
    let data = tempfile::tempdir().unwrap();
    let seed = data.path().join("seed.yaml");
    // Slow enough to be caught in each step: the `slow` image starts after 4 s, drain 3 s,
    // watch 4 s.
    std::fs::write(
        &seed,
        format!(
            "global:\n  domain: crash.berth.test\n  network: berth-e2e\n  drain_secs: 3\n  watch_secs: 4\n  prune_images: false\n  poll_interval_secs: 0\n\
             projects:\n  {project}:\n    image: {image}\n    port: 8080\n    healthcheck: {{type: http, path: /health, interval_secs: 1, retries: 30}}\n\
             \x20   stages:\n      dev:\n        tag_pattern: '*'\n        auto_deploy: true\n",
            image = env["BERTH_TEST_IMAGE"]
        ),
    )
    .unwrap();
    let domain = format!("stage-dev-{project}.crash.berth.test");
    let mut data = Some(data);
    let start = |data: tempfile::TempDir| {
        Berth::start(Options {
            data: Some(data),
            ..Options::new()
                .env("DOCKER_HOST", &env["BERTH_TEST_DOCKER_HOST"])
                .env("BERTH_SEED_FILE", seed.to_str().unwrap())
        })
    };

    // A live v1 first.
    let mut berth = start(data.take().unwrap());
    let cookie = berth.login().await;
    let c = berth.client.clone();
    let r = c
        .put(format!("{}/api/npm", berth.url))
        .header("cookie", &cookie)
        .json(&json!({"url": npm_url, "email": "berth@e2e.test", "password": "npm-secret-pw", "upstream": "host_port"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = deploy(&berth, &cookie, project, "v1").await;
    wait_state(&berth, &cookie, &id, &["succeeded"]).await;
    assert_eq!(served(&env, &domain).await, "200 v1");

    for (step, tag) in [
        ("health_checking", "slow"),
        ("draining", "v2"),
        ("watching", "v3"),
    ] {
        let before = served(&env, &domain).await;
        let id = deploy(&berth, &cookie, project, tag).await;
        wait_state(&berth, &cookie, &id, &[step]).await;
        berth.child.kill().unwrap(); // SIGKILL
        berth.child.wait().unwrap();
        let d = std::mem::replace(&mut berth.data, tempfile::tempdir().unwrap());
        drop(berth);

        berth = start(d);
        let cookie2 = berth.login().await;
        let settled = wait_state(
            &berth,
            &cookie2,
            &id,
            &["succeeded", "failed", "rolled_back"],
        )
        .await;
        let now_served = served(&env, &domain).await;
        match step {
            // Before the switch: the new version never went live; the old one still serves.
            "health_checking" => {
                assert_eq!(settled["state"], "failed", "{settled}");
                assert!(
                    settled["error"].as_str().unwrap().contains("restart"),
                    "{settled}"
                );
                assert_eq!(now_served, before);
            }
            // After the switch, the new version is healthy: it is finished.
            _ => {
                assert_eq!(settled["state"], "succeeded", "{step}: {settled}");
                assert_eq!(now_served, format!("200 {tag}"));
            }
        }
        // No orphans: every berth container of the project has an instance record.
        let (_, instances) = berth
            .get(
                &format!("/api/projects/{project}/stages/dev/instances"),
                &cookie2,
            )
            .await;
        let known: Vec<String> = instances
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        let labels = docker(
            &env,
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label=berth.project={project}"),
                "--format",
                "{{.Label \"berth.instance\"}}",
            ],
        );
        for l in labels.lines() {
            assert!(
                known.contains(&l.to_string()),
                "{step}: container of instance {l} has no record ({known:?})"
            );
        }
        let running = docker(
            &env,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("label=berth.project={project}"),
            ],
        );
        assert_eq!(
            running.lines().count(),
            1,
            "{step}: exactly one live container"
        );
    }
    clear(&env, project);
    let _ = std::fs::remove_dir_all(hosts_dir);
}
