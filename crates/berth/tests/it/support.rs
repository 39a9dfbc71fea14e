use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// The test environment from `scripts/testenv`, or `None` (skip) outside CI.
pub fn testenv() -> Option<HashMap<String, String>> {
    let vars: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BERTH_TEST_"))
        .collect();
    if vars.contains_key("BERTH_TEST_DOCKER_HOST") {
        return Some(vars);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the test environment is not up (BERTH_TEST_DOCKER_HOST unset): run scripts/test, or eval \"$(scripts/testenv up)\""
        );
    }
    eprintln!("skipped: no test environment (run scripts/testenv up and export its variables)");
    None
}

/// A running `berth serve`, killed on drop.
pub struct Berth {
    pub child: Child,
    pub url: String,
    pub data: tempfile::TempDir,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

pub struct Options {
    pub env: Vec<(String, String)>,
    pub data: Option<tempfile::TempDir>,
}

impl Options {
    pub fn new() -> Self {
        Self {
            env: Vec::new(),
            data: None,
        }
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

pub fn berth_command(data: &std::path::Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BERTH_DATA_DIR", data)
        .env("BERTH_LISTEN", "127.0.0.1:0")
        .env("BERTH_LOG_FORMAT", "json")
        .env("BERTH_SEED_FILE", "")
        .current_dir(data);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Berth {
    pub fn start(opts: Options) -> Berth {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = opts.data.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let mut env = vec![(
            "BERTH_ADMIN_PASSWORD".to_string(),
            ADMIN_PASSWORD.to_string(),
        )];
        env.extend(opts.env);
        let mut child = berth_command(data.path(), &env)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(listen) = v.get("listen").and_then(|l| l.as_str())
                {
                    let _ = tx.send(listen.to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let listen = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "berth did not start listening:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        Berth {
            child,
            url: format!("http://{listen}"),
            data,
            stderr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Logs in as the admin and returns the session cookie.
    pub async fn login(&self) -> String {
        let res = self
            .client
            .post(format!("{}/api/auth/login", self.url))
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let cookie = res.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, cookie: &str) -> (u16, serde_json::Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn health(&self) -> serde_json::Value {
        self.client
            .get(format!("{}/api/health", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls until `f` holds or `timeout` passes.
    pub async fn wait_for<F, Fut>(&self, timeout: Duration, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("timed out waiting for {what}\nberth log:\n{}", self.log());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(Instant::now() < end, "berth did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn data_path(&self) -> PathBuf {
        self.data.path().to_path_buf()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Docker CLI against the test engine (for test set-up only; berth itself never shells out).
pub fn docker(env: &HashMap<String, String>, args: &[&str]) -> String {
    let cli = if std::path::Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let out = Command::new(cli)
        .env("DOCKER_HOST", &env["BERTH_TEST_DOCKER_HOST"])
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
