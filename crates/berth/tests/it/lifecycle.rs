//! The binary's life: first start, seed import, keys, export, health check, shutdown.
//! These need no engine (berth points at a socket that does not exist).

use crate::support::{ADMIN_PASSWORD, Berth, Options, berth_command};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

const NO_ENGINE: &str = "unix:///nonexistent/berth-e2e.sock";
const SEED: &str = include_str!("../../../../seed.example.yaml");

fn opts() -> Options {
    Options::new().env("DOCKER_HOST", NO_ENGINE)
}

#[tokio::test]
async fn first_start_prints_a_generated_password_once() {
    let data = tempfile::tempdir().unwrap();
    let run = |data: &std::path::Path| {
        let child = berth_command(data, &[("DOCKER_HOST".into(), NO_ENGINE.into())])
            .arg("serve")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run(data.path());
    let password = first
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed:\n{first}"))
        .to_string();
    assert_eq!(password.len(), 24);
    assert_eq!(
        first.matches(&password).count(),
        1,
        "the password must appear exactly once"
    );
    assert!(first.contains("generated a new encryption key"));
    let key = data.path().join("encryption.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data.path().join("berth.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let second = run(data.path());
    assert!(
        !second.contains(&password),
        "the password was printed again"
    );
    assert!(!second.contains("password:"));
    assert!(
        !second.contains("generated a new encryption key"),
        "the key must be reused"
    );

    // The printed password works.
    let berth = Berth::start(Options {
        data: Some(data),
        ..opts()
    });
    let res = berth
        .client
        .post(format!("{}/api/auth/login", berth.url))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_bad_seed_is_refused_whole_and_a_good_one_imported() {
    let data = tempfile::tempdir().unwrap();
    let bad = data.path().join("bad.yaml");
    std::fs::write(
        &bad,
        SEED.replace("promote_from: rel", "promote_from: staging"),
    )
    .unwrap();
    let out = berth_command(
        data.path(),
        &[
            ("DOCKER_HOST".into(), NO_ENGINE.into()),
            ("BERTH_SEED_FILE".into(), bad.display().to_string()),
            ("BERTH_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ],
    )
    .arg("serve")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("projects.web-app-launcher.stages.prod.promote_from"),
        "{err}"
    );
    assert!(err.contains("line "), "{err}");
    assert!(err.contains("staging"), "{err}");

    // Nothing was half-done: the next start with a good seed imports it and makes the admin.
    let good = data.path().join("good.yaml");
    std::fs::write(&good, SEED).unwrap();
    let berth = Berth::start(Options {
        data: Some(data),
        ..opts().env("BERTH_SEED_FILE", good.to_str().unwrap())
    });
    let cookie = berth.login().await;
    let (status, projects) = berth.get("/api/projects", &cookie).await;
    assert_eq!(status, 200);
    assert_eq!(projects[0]["name"], "web-app-launcher");
    assert!(berth.log().contains("seed imported"));
    for secret in [
        "change-me-npm-password",
        "change-me-gitea-token",
        "s3cr3t-session-key",
    ] {
        assert!(!berth.log().contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn a_malformed_key_stops_start_up_saying_what_a_key_looks_like() {
    let data = tempfile::tempdir().unwrap();
    let out = berth_command(
        data.path(),
        &[
            ("DOCKER_HOST".into(), NO_ENGINE.into()),
            ("BERTH_ENCRYPTION_KEY".into(), "not-a-key".into()),
        ],
    )
    .arg("serve")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BERTH_ENCRYPTION_KEY"), "{err}");
    assert!(err.contains("32 random bytes"), "{err}");
    assert!(
        !err.contains("not-a-key"),
        "the key text itself must not be echoed: {err}"
    );
}

fn gen_key() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("gen-key")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn keys_rotate_through_old_keys() {
    let data = tempfile::tempdir().unwrap();
    let seed = data.path().join("seed.yaml");
    std::fs::write(&seed, SEED).unwrap();
    let (a, b) = (gen_key(), gen_key());
    let mut berth = Berth::start(Options {
        data: Some(data),
        ..opts()
            .env("BERTH_ENCRYPTION_KEY", &a)
            .env("BERTH_SEED_FILE", seed.to_str().unwrap())
    });
    assert!(berth.terminate().success());
    let data = std::mem::replace(&mut berth.data, tempfile::tempdir().unwrap());
    drop(berth);

    // A new key alone cannot open the stored secrets: start-up stops and says what to do.
    let out = berth_command(
        data.path(),
        &[
            ("DOCKER_HOST".into(), NO_ENGINE.into()),
            ("BERTH_ENCRYPTION_KEY".into(), b.clone()),
        ],
    )
    .arg("serve")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BERTH_ENCRYPTION_OLD_KEYS"), "{err}");

    // New key plus the old one: values are re-encrypted...
    let mut berth = Berth::start(Options {
        data: Some(data),
        ..opts()
            .env("BERTH_ENCRYPTION_KEY", &b)
            .env("BERTH_ENCRYPTION_OLD_KEYS", &a)
    });
    assert!(
        berth.log().contains("re-encrypted stored values"),
        "{}",
        berth.log()
    );
    assert!(berth.terminate().success());
    let data = std::mem::replace(&mut berth.data, tempfile::tempdir().unwrap());
    drop(berth);

    // ...so the old key can go, and the secrets still open.
    let out = berth_command(
        data.path(),
        &[
            ("DOCKER_HOST".into(), NO_ENGINE.into()),
            ("BERTH_ENCRYPTION_KEY".into(), b),
        ],
    )
    .args(["export", "--include-secrets"])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("change-me-npm-password"));
}

#[tokio::test]
async fn export_writes_yaml_without_secrets_unless_asked() {
    let data = tempfile::tempdir().unwrap();
    let seed = data.path().join("seed.yaml");
    std::fs::write(&seed, SEED).unwrap();
    let mut berth = Berth::start(Options {
        data: Some(data),
        ..opts().env("BERTH_SEED_FILE", seed.to_str().unwrap())
    });
    // berth export runs beside a live server (WAL allows it).
    let env = [("DOCKER_HOST".to_string(), NO_ENGINE.to_string())];
    let out = berth_command(&berth.data_path(), &env)
        .arg("export")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("web-app-launcher") && yaml.contains("secret: true"));
    assert!(!yaml.contains("change-me"));
    let file = berth.data_path().join("export.yaml");
    let out = berth_command(&berth.data_path(), &env)
        .args(["export", "--include-secrets", "-o", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("change-me-npm-password")
    );
    assert!(berth.terminate().success());
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_healthcheck_follows() {
    let mut berth = Berth::start(opts());
    let listen = berth.url.trim_start_matches("http://").to_string();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("healthcheck")
            .env("BERTH_LISTEN", &listen)
            .status()
            .unwrap()
    };
    assert!(
        check().success(),
        "healthcheck failed against a running berth"
    );
    let status = berth.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", berth.log());
    let log = berth.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    // Every log line is one JSON object.
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(!check().success(), "healthcheck passed with berth stopped");
}
