//! The nginx side: each enabled proxy host becomes `<hosts_dir>/<id>.conf`, applied the way NPM
//! does (`nginx -t`, write, `nginx -t` again, reload). Several doubles may share one nginx, so
//! every change holds an exclusive lock on a file beside the configs.

use serde_json::{Map, Value, json};
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// The nginx binary.
    pub bin: PathBuf,
    /// `nginx -p`.
    pub prefix: PathBuf,
    /// `nginx -c`: the main config, which must include `<hosts_dir>/*.conf`.
    pub conf: PathBuf,
    /// Where this double writes `<id>.conf`.
    pub hosts_dir: PathBuf,
    /// What the server blocks listen on (NPM: `80`; tests: `127.0.0.1:<port>`).
    pub listen: String,
    /// The lock serialising config changes across doubles sharing this nginx.
    pub lock: PathBuf,
}

fn s(row: &Map<String, Value>, k: &str) -> String {
    match row.get(k) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn flag(row: &Map<String, Value>, k: &str) -> bool {
    row.get(k) == Some(&Value::Bool(true))
}

impl NginxConfig {
    fn file(&self, id: i64) -> PathBuf {
        self.hosts_dir.join(format!("{id}.conf"))
    }

    fn run(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new(&self.bin)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn locked(&self) -> File {
        std::fs::create_dir_all(&self.hosts_dir).expect("hosts dir");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .expect("lock file");
        f.lock().expect("lock");
        f
    }

    /// Renders a host as NPM's `proxy_host.conf` template does (the parts that matter here).
    pub fn render(&self, row: &Map<String, Value>) -> String {
        let id = s(row, "id");
        let domains: Vec<String> = row["domain_names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut c = String::new();
        c += "# ------------------------------------------------------------\n";
        c += &format!("# {}\n", domains.join(", "));
        c += "# ------------------------------------------------------------\n\n";
        c += "server {\n";
        c += &format!("  set $forward_scheme {};\n", s(row, "forward_scheme"));
        c += &format!("  set $server         \"{}\";\n", s(row, "forward_host"));
        c += &format!("  set $port           {};\n\n", s(row, "forward_port"));
        c += &format!("  listen {};\n", self.listen);
        c += &format!("  server_name {};\n\n", domains.join(" "));
        let logs = self.prefix.join("logs");
        c += &format!(
            "  access_log {}/proxy-host-{id}_access.log;\n",
            logs.display()
        );
        c += &format!(
            "  error_log {}/proxy-host-{id}_error.log warn;\n\n",
            logs.display()
        );
        if flag(row, "block_exploits") {
            c += "  # block_exploits: NPM includes conf.d/include/block-exploits.conf here\n";
        }
        let advanced = s(row, "advanced_config");
        if !advanced.is_empty() {
            c += &format!("  {advanced}\n\n");
        }
        let proxy = |scheme: &str, host: &str, port: &str, path: &str| {
            let mut b = String::new();
            b += "    proxy_set_header Host $host;\n";
            b += "    proxy_set_header X-Forwarded-Scheme $scheme;\n";
            b += "    proxy_set_header X-Forwarded-Proto $scheme;\n";
            b += "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n";
            b += "    proxy_set_header X-Real-IP $remote_addr;\n";
            if flag(row, "allow_websocket_upgrade") {
                b += "    proxy_set_header Upgrade $http_upgrade;\n";
                b += "    proxy_set_header Connection $http_connection;\n";
                b += "    proxy_http_version 1.1;\n";
            }
            if host.is_empty() {
                b += &format!("    proxy_pass {scheme}://$server:$port{path};\n");
            } else {
                b += &format!("    proxy_pass {scheme}://{host}:{port}{path};\n");
            }
            b
        };
        if let Some(locs) = row.get("locations").and_then(Value::as_array) {
            for l in locs {
                let lo = l.as_object().cloned().unwrap_or_default();
                c += &format!("  location {} {{\n", s(&lo, "path"));
                c += &proxy(
                    &s(&lo, "forward_scheme"),
                    &s(&lo, "forward_host"),
                    &s(&lo, "forward_port"),
                    &s(&lo, "forward_path"),
                );
                let adv = s(&lo, "advanced_config");
                if !adv.is_empty() {
                    c += &format!("    {adv}\n");
                }
                c += "  }\n";
            }
        }
        c += "  location / {\n";
        c += &proxy("$forward_scheme", "", "", "$request_uri");
        c += "  }\n}\n";
        c
    }

    /// Creates or updates a host's config. `None`: nginx was already broken (NPM answers 500).
    pub fn apply(&self, row: &Map<String, Value>) -> Option<Value> {
        let id = row["id"].as_i64().unwrap_or(0);
        let _lock = self.locked();
        if self.run(&["-t"]).is_err() {
            return None;
        }
        let file = self.file(id);
        if std::fs::write(&file, self.render(row)).is_err() {
            return None;
        }
        if let Err(stderr) = self.run(&["-t"]) {
            let _ = std::fs::remove_file(&file);
            return Some(json!({"nginx_online": false, "nginx_err": stderr}));
        }
        match self.run(&["-s", "reload"]) {
            Ok(()) => Some(json!({"nginx_online": true, "nginx_err": null})),
            Err(e) => Some(json!({"nginx_online": false, "nginx_err": e})),
        }
    }

    /// Removes a host's config and reloads.
    pub fn remove(&self, id: i64) {
        let _lock = self.locked();
        let _ = std::fs::remove_file(self.file(id));
        if self.run(&["-t"]).is_ok() {
            let _ = self.run(&["-s", "reload"]);
        }
    }
}
