//! The configuration model: global settings, projects and stages, as validated values.
//! The seed file, the store and the API all speak these types.

use crate::{ImageRef, ProjectName, StageName, TagPattern};
use berth_crypto::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings that apply to every project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalSettings {
    /// The base domain; subdomains are `<label>.<domain>`.
    pub domain: Option<String>,
    /// The host's public address, shown to operators (DNS is theirs to point at it).
    pub server_ip: Option<String>,
    /// The Docker network berth attaches containers to (shared with the proxy).
    pub network: String,
    /// How a stage's subdomain is built: `{stage}`, `{project}` and optionally `{tag}`.
    pub subdomain_pattern: String,
    /// A URL berth POSTs deploy outcomes to.
    pub notification_url: Option<String>,
    /// How often the registry poller looks for new tags, in seconds; 0: not at all.
    pub poll_interval_secs: u64,
    /// Registry/namespace patterns (`ghcr.io/my-org/*`) whose images may be deployed
    /// without a project (auto-created). Empty: only known projects are deployed.
    pub image_allowlist: Vec<String>,
    /// How many previous releases per stage are kept (stopped) for rollback.
    pub keep_releases: u32,
    /// How long the old instance keeps serving after the proxy switched, in seconds.
    pub drain_secs: u64,
    /// How long a new release is watched after going live, in seconds.
    pub watch_secs: u64,
    /// After a deploy, remove local images of the project's repository that no live or kept
    /// instance and no unfinished deploy uses.
    pub prune_images: bool,
}

impl Default for GlobalSettings {
    fn default() -> Self {
        Self {
            domain: None,
            server_ip: None,
            network: "berth".to_string(),
            subdomain_pattern: "stage-{stage}-{project}".to_string(),
            notification_url: None,
            poll_interval_secs: 300,
            image_allowlist: Vec::new(),
            keep_releases: 3,
            drain_secs: 5,
            watch_secs: 60,
            prune_images: true,
        }
    }
}

/// How berth decides that a container is ready and stays healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HealthCheck {
    /// An HTTP GET on the container port.
    Http {
        path: String,
        #[serde(default = "default_status")]
        expected_status: u16,
        #[serde(default = "default_interval")]
        interval_secs: u32,
        #[serde(default = "default_timeout")]
        timeout_secs: u32,
        #[serde(default = "default_retries")]
        retries: u32,
        #[serde(default)]
        start_period_secs: u32,
    },
    /// A TCP connect to the container port.
    Tcp {
        #[serde(default = "default_interval")]
        interval_secs: u32,
        #[serde(default = "default_timeout")]
        timeout_secs: u32,
        #[serde(default = "default_retries")]
        retries: u32,
        #[serde(default)]
        start_period_secs: u32,
    },
    /// The image's own HEALTHCHECK, as the engine reports it.
    Image,
    /// Running is enough.
    None,
}

fn default_status() -> u16 {
    200
}
fn default_interval() -> u32 {
    2
}
fn default_timeout() -> u32 {
    5
}
fn default_retries() -> u32 {
    15
}

impl HealthCheck {
    pub fn http(path: &str) -> Self {
        HealthCheck::Http {
            path: path.to_string(),
            expected_status: default_status(),
            interval_secs: default_interval(),
            timeout_secs: default_timeout(),
            retries: default_retries(),
            start_period_secs: 0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let HealthCheck::Http {
            path,
            expected_status,
            ..
        } = self
        {
            if !path.starts_with('/') {
                return Err(format!("health check path {path:?} must start with '/'"));
            }
            if !(100..=599).contains(expected_status) {
                return Err(format!(
                    "expected_status {expected_status} is not an HTTP status"
                ));
            }
        }
        Ok(())
    }
}

/// Whether all instances share a volume's host path, or each gets its own subdirectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeMode {
    /// All instances mount the same host path.
    Shared,
    /// Each instance mounts `{source}/{stage}-{tag}/`.
    Isolated,
}

impl VolumeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeMode::Shared => "shared",
            VolumeMode::Isolated => "isolated",
        }
    }
}

/// A bind mount of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub source: String,
    pub target: String,
    #[serde(default = "shared")]
    pub mode: VolumeMode,
    #[serde(default)]
    pub read_only: bool,
}

fn shared() -> VolumeMode {
    VolumeMode::Shared
}

impl VolumeSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (what, p) in [("source", &self.source), ("target", &self.target)] {
            if !p.starts_with('/') {
                return Err(format!("volume {what} {p:?} must be an absolute path"));
            }
            if p.split('/').any(|c| c == "..") {
                return Err(format!("volume {what} {p:?} must not contain '..'"));
            }
        }
        Ok(())
    }
}

/// An environment value; secrets are encrypted at rest and never shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretString),
}

/// Checks an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
pub fn validate_env_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= 128
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "environment variable name {k:?} must be letters, digits and '_', not starting with a digit"
        ))
    }
}

/// A stage of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpec {
    pub name: StageName,
    pub tag_pattern: TagPattern,
    pub auto_deploy: bool,
    pub max_instances: u32,
    pub promote_from: Option<StageName>,
    pub confirm: bool,
    pub subdomain: Option<String>,
    pub env: BTreeMap<String, EnvValue>,
}

/// A project: one image repository and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSpec {
    pub name: ProjectName,
    pub registry: Option<String>,
    /// The image repository, without tag or digest.
    pub image: ImageRef,
    pub port: u16,
    pub health: HealthCheck,
    pub env: BTreeMap<String, EnvValue>,
    pub volumes: Vec<VolumeSpec>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU limit in (fractions of) cores.
    pub cpus: Option<f64>,
    pub labels: BTreeMap<String, String>,
    /// How often the poller looks at the registry for this project, in seconds; `None`:
    /// the global `poll_interval_secs`.
    pub poll_interval_secs: Option<u64>,
    pub stages: Vec<StageSpec>,
}

/// The kind of a registry, which decides how berth talks to it (auth flow, webhook format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// Any OCI distribution v2 registry.
    Generic,
    Dockerhub,
    Ghcr,
    Gitea,
    Forgejo,
    Gitlab,
    Harbor,
    Quay,
}

impl RegistryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryKind::Generic => "generic",
            RegistryKind::Dockerhub => "dockerhub",
            RegistryKind::Ghcr => "ghcr",
            RegistryKind::Gitea => "gitea",
            RegistryKind::Forgejo => "forgejo",
            RegistryKind::Gitlab => "gitlab",
            RegistryKind::Harbor => "harbor",
            RegistryKind::Quay => "quay",
        }
    }
}

impl std::str::FromStr for RegistryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| format!("unknown registry type {s:?} (generic, dockerhub, ghcr, gitea, forgejo, gitlab, harbor, quay)"))
    }
}

/// A registry berth pulls from and polls: where it is and how to log in.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySpec {
    pub name: String,
    pub kind: RegistryKind,
    pub url: String,
    pub username: Option<String>,
    /// A password or token; encrypted at rest, never shown.
    pub secret: Option<SecretString>,
}

/// `host[:port]` of a registry URL (`https://ghcr.io/` → `ghcr.io`), as images name it.
pub fn registry_host(url: &str) -> &str {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

impl RegistrySpec {
    /// `host[:port]` of its URL.
    pub fn host(&self) -> &str {
        registry_host(&self.url)
    }

    /// The login to send to `server`, if a password or token is stored.
    pub fn auth_for(&self, server: &str) -> Option<crate::ports::RegistryAuth> {
        self.secret
            .clone()
            .map(|password| crate::ports::RegistryAuth {
                server: server.to_string(),
                username: self.username.clone().unwrap_or_default(),
                password,
            })
    }
}

/// How NPM reaches a container: by its name on the shared network, or by a port on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamMode {
    #[default]
    ContainerName,
    HostPort,
}

/// The Nginx Proxy Manager connection.
#[derive(Debug, Clone, PartialEq)]
pub struct NpmSettings {
    pub url: String,
    pub email: String,
    pub password: Option<SecretString>,
    pub upstream: UpstreamMode,
    pub certificate_id: Option<u32>,
    pub websockets: bool,
}

/// Checks a URL is http(s)://host…; returns a message naming the problem.
pub fn validate_http_url(what: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{what} {url:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.chars().any(|c| c.is_whitespace()) {
        return Err(format!("{what} {url:?} has no host"));
    }
    Ok(())
}

/// Parses a memory size like `512m`, `1g`, `256MiB`, `1048576`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("memory {s:?} must be a number with an optional unit (k, m, g)"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "memory {s:?}: unknown unit {unit:?} (use k, m or g)"
            ));
        }
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("memory {s:?} is too large"))?;
    if bytes < 6 << 20 {
        return Err(format!("memory {s:?} is below Docker's minimum of 6m"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert!(parse_memory("1x").is_err());
        assert!(parse_memory("1k").unwrap_err().contains("minimum"));
    }

    #[test]
    fn env_keys() {
        validate_env_key("NODE_ENV").unwrap();
        validate_env_key("_X1").unwrap();
        assert!(validate_env_key("1X").is_err());
        assert!(validate_env_key("A-B").is_err());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let v = EnvValue::Secret(SecretString::new("hunter2"));
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    #[test]
    fn volumes() {
        let mut v = VolumeSpec {
            source: "/data/a".into(),
            target: "/app".into(),
            mode: VolumeMode::Isolated,
            read_only: false,
        };
        v.validate().unwrap();
        v.source = "data".into();
        assert!(v.validate().is_err());
        v.source = "/data/../etc".into();
        assert!(v.validate().is_err());
    }
}

impl GlobalSettings {
    /// Whether a webhook may create a project for this repository (`registry/org/app`):
    /// some `image_allowlist` pattern (`*` and `?` wildcards) matches it.
    pub fn allows_image(&self, repository: &str) -> bool {
        self.image_allowlist
            .iter()
            .any(|p| wildmatch::WildMatch::new(p).matches(repository))
    }
}

impl ProjectSpec {
    /// The defaults a project gets from its image alone (a webhook for an allow-listed image
    /// berth has no project for): the lowest EXPOSEd TCP port (or `berth.port` label), the
    /// image's HEALTHCHECK if it has one (else a TCP check), one stage `dev` that takes every
    /// tag automatically. `None` when the image says nothing about its port.
    pub fn from_image(
        name: crate::ProjectName,
        image: &ImageRef,
        info: &crate::ports::ImageInfo,
    ) -> Option<ProjectSpec> {
        let port = info
            .labels
            .get("berth.port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0)
            .or_else(|| info.exposed_tcp_ports.first().copied())?;
        let health = match info.labels.get("berth.health").map(String::as_str) {
            Some(path) if path.starts_with('/') => HealthCheck::http(path),
            _ if info.healthcheck => HealthCheck::Image,
            _ => HealthCheck::Tcp {
                interval_secs: default_interval(),
                timeout_secs: default_timeout(),
                retries: default_retries(),
                start_period_secs: 0,
            },
        };
        Some(ProjectSpec {
            name,
            registry: None,
            image: ImageRef {
                tag: None,
                digest: None,
                ..image.clone()
            },
            port,
            health,
            env: BTreeMap::new(),
            volumes: Vec::new(),
            memory_bytes: None,
            cpus: None,
            labels: BTreeMap::new(),
            poll_interval_secs: None,
            stages: vec![StageSpec {
                name: crate::StageName::parse("dev").expect("a valid stage name"),
                tag_pattern: crate::TagPattern::parse("*").expect("a valid pattern"),
                auto_deploy: true,
                max_instances: 1,
                promote_from: None,
                confirm: false,
                subdomain: None,
                env: BTreeMap::new(),
            }],
        })
    }
}

#[cfg(test)]
mod from_image_tests {
    use super::*;
    use crate::ports::ImageInfo;

    fn info(ports: &[u16], healthcheck: bool, labels: &[(&str, &str)]) -> ImageInfo {
        ImageInfo {
            exposed_tcp_ports: ports.to_vec(),
            healthcheck,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn defaults_come_from_what_the_image_declares() {
        let image = ImageRef::parse("ghcr.io/acme/shop:v1").unwrap();
        let name = crate::ProjectName::parse("shop").unwrap();
        let p =
            ProjectSpec::from_image(name.clone(), &image, &info(&[8080, 9090], true, &[])).unwrap();
        assert_eq!(p.port, 8080);
        assert_eq!(p.health, HealthCheck::Image);
        assert_eq!(p.image.name(), "ghcr.io/acme/shop");
        assert_eq!(p.image.tag, None);
        assert_eq!(p.stages.len(), 1);
        assert!(p.stages[0].auto_deploy);
        assert!(p.stages[0].tag_pattern.matches("anything"));

        let p = ProjectSpec::from_image(name.clone(), &image, &info(&[80], false, &[])).unwrap();
        assert!(matches!(p.health, HealthCheck::Tcp { .. }));

        let labelled = info(
            &[80],
            true,
            &[("berth.port", "3000"), ("berth.health", "/up")],
        );
        let p = ProjectSpec::from_image(name.clone(), &image, &labelled).unwrap();
        assert_eq!(p.port, 3000);
        assert_eq!(p.health, HealthCheck::http("/up"));

        assert!(ProjectSpec::from_image(name, &image, &info(&[], true, &[])).is_none());
    }

    #[test]
    fn the_allowlist_matches_repositories_by_wildcard() {
        let g = GlobalSettings {
            image_allowlist: vec!["ghcr.io/acme/*".into(), "127.0.0.1:15000/auto-?".into()],
            ..Default::default()
        };
        assert!(g.allows_image("ghcr.io/acme/shop"));
        assert!(g.allows_image("127.0.0.1:15000/auto-a"));
        assert!(!g.allows_image("ghcr.io/other/shop"));
        assert!(!g.allows_image("docker.io/library/nginx"));
        assert!(!GlobalSettings::default().allows_image("ghcr.io/acme/shop"));
    }
}
