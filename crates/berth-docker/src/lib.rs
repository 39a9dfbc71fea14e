//! The container-engine port ([`berth_domain::ports::ContainerEngine`]) implemented with
//! bollard, plus the monitor that keeps berth's view of the engine current: berth serves
//! whether or not the engine is up, reports it in `/api/health`, and reconnects by itself.
//!
//! Architecture invariant: typed bollard calls only; no shell commands, no `docker` CLI.
//! Nothing outside this crate names bollard.

use berth_domain::model::EnvValue;
use berth_domain::plan::{ContainerPlan, labels};
use berth_domain::ports::{
    ContainerEngine, ContainerStatus, ContainerSummary, EngineError, EngineStatus, ImageInfo,
    Publish, PullProgress, RegistryAuth,
};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters as q;
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a connected engine is pinged, and the back-off range while it is unreachable.
const PING_EVERY: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A Docker engine reached through `DOCKER_HOST` (or the default socket).
pub struct DockerEngine {
    host: String,
    state: RwLock<State>,
    /// Woken when a call fails for want of a connection, so the monitor retries at once.
    nudge: tokio::sync::Notify,
    /// Serialises network creation: engines before API 1.44 accept duplicate names, and two
    /// deploys starting at once would each create one.
    network_lock: tokio::sync::Mutex<()>,
}

struct State {
    status: EngineStatus,
    client: Option<Docker>,
}

fn describe(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::SocketNotFoundError(p) => format!("no Docker socket at {p}"),
        E::DockerResponseServerError {
            status_code,
            message,
        } => format!("{status_code}: {message}"),
        other => other.to_string(),
    }
}

impl DockerEngine {
    /// `host` is `DOCKER_HOST` (`unix:///…`, `tcp://…`); `None` means the default socket.
    pub fn new(host: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            host: host.unwrap_or_else(|| "unix:///var/run/docker.sock".to_string()),
            state: RwLock::new(State {
                status: EngineStatus::Connecting,
                client: None,
            }),
            nudge: tokio::sync::Notify::new(),
            network_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// One attempt: connect, negotiate the API version down to what the engine speaks, and
    /// read its version. Updates the status either way.
    pub async fn connect(&self) -> EngineStatus {
        let result = async {
            // tcp:// is spoken as plain HTTP by bollard; TLS engines are a later adapter.
            let host = self.host.replacen("tcp://", "http://", 1);
            let docker = Docker::connect_with_host(&host).map_err(|e| describe(&e))?;
            let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
                .await
                .map_err(|_| "the engine did not answer within 5 s".to_string())?
                .map_err(|e| describe(&e))?;
            let v = docker.version().await.map_err(|e| describe(&e))?;
            Ok::<_, String>((docker, v))
        }
        .await;
        let mut st = self.state.write().expect("engine state lock");
        match result {
            Ok((docker, v)) => {
                st.status = EngineStatus::Connected {
                    engine_version: v.version.unwrap_or_default(),
                    api_version: docker.client_version().to_string(),
                    os: v.os.unwrap_or_default(),
                };
                st.client = Some(docker);
            }
            Err(error) => {
                st.status = EngineStatus::Unavailable { error };
                st.client = None;
            }
        }
        st.status.clone()
    }

    /// Keeps the status current until cancelled: pings a connected engine, retries an
    /// unreachable one with back-off, and logs each change once.
    pub async fn monitor(self: Arc<Self>, cancel: CancellationToken) {
        let mut backoff = RETRY_MIN;
        let mut last_connected: Option<bool> = None;
        loop {
            let status = match self.client() {
                Ok(c) => match tokio::time::timeout(Duration::from_secs(5), c.ping()).await {
                    Ok(Ok(_)) => self.status(),
                    _ => self.connect().await,
                },
                Err(_) => self.connect().await,
            };
            let connected = status.is_connected();
            if last_connected != Some(connected) {
                match &status {
                    EngineStatus::Connected {
                        engine_version,
                        api_version,
                        ..
                    } => tracing::info!(
                        docker.host = %self.host, engine.version = %engine_version, api.version = %api_version,
                        "container engine connected"
                    ),
                    EngineStatus::Unavailable { error } => tracing::warn!(
                        docker.host = %self.host, error = %error,
                        "container engine unavailable; berth keeps serving and retries"
                    ),
                    EngineStatus::Connecting => {}
                }
                last_connected = Some(connected);
            }
            let wait = if connected {
                backoff = RETRY_MIN;
                PING_EVERY
            } else {
                let w = backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                w
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.nudge.notified() => {}
            }
        }
    }

    /// The current client, or why there is none.
    pub fn client(&self) -> Result<Docker, EngineError> {
        let st = self.state.read().expect("engine state lock");
        match (&st.client, &st.status) {
            (Some(c), _) => Ok(c.clone()),
            (None, EngineStatus::Unavailable { error }) => {
                Err(EngineError::Unavailable(error.clone()))
            }
            (None, _) => Err(EngineError::Unavailable("not connected yet".into())),
        }
    }

    /// Maps a failed call; a transport failure marks the engine unavailable at once.
    fn fail(&self, e: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            E::DockerResponseServerError { message, .. } => EngineError::Engine(message),
            other => {
                let error = describe(&other);
                let mut st = self.state.write().expect("engine state lock");
                st.status = EngineStatus::Unavailable {
                    error: error.clone(),
                };
                st.client = None;
                drop(st);
                self.nudge.notify_one();
                EngineError::Unavailable(error)
            }
        }
    }
}

fn summary(s: bollard::models::ContainerSummary) -> ContainerSummary {
    ContainerSummary {
        id: s.id.unwrap_or_default(),
        name: s
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: s.image.unwrap_or_default(),
        state: s.state.map(|st| st.to_string()).unwrap_or_default(),
        status: s.status.unwrap_or_default(),
        created: s.created.unwrap_or_default(),
        labels: s.labels.unwrap_or_default().into_iter().collect(),
    }
}

impl DockerEngine {
    async fn list(&self, managed_only: bool) -> Result<Vec<ContainerSummary>, EngineError> {
        let c = self.client()?;
        let mut b = q::ListContainersOptionsBuilder::default().all(true);
        if managed_only {
            b = b.filters(&HashMap::from([(
                "label",
                vec![format!("{}=true", labels::MANAGED)],
            )]));
        }
        let list = c
            .list_containers(Some(b.build()))
            .await
            .map_err(|e| self.fail(e))?;
        Ok(list.into_iter().map(summary).collect())
    }
}

impl ContainerEngine for DockerEngine {
    fn status(&self) -> EngineStatus {
        self.state.read().expect("engine state lock").status.clone()
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<ContainerSummary>, EngineError>> {
        Box::pin(self.list(false))
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerSummary>, EngineError>> {
        Box::pin(self.list(true))
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        auth: Option<&'a RegistryAuth>,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let creds = auth.map(|a| bollard::auth::DockerCredentials {
                username: Some(a.username.clone()),
                password: Some(a.password.expose().to_string()),
                serveraddress: Some(a.server.clone()),
                ..Default::default()
            });
            let opts = q::CreateImageOptionsBuilder::default()
                .from_image(image)
                .build();
            let mut stream = c.create_image(Some(opts), None, creds);
            // The stream must be read to the end; errors arrive as items.
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| self.fail(e))?;
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    return Err(EngineError::Engine(err));
                }
                if let Some(status) = info.status {
                    let d = info.progress_detail.unwrap_or_default();
                    progress(PullProgress {
                        layer: info.id.unwrap_or_default(),
                        status,
                        current: d.current.map(|v| v.max(0) as u64),
                        total: d.total.map(|v| v.max(0) as u64),
                    });
                }
            }
            Ok(())
        })
    }

    fn image_digest<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let inspect = c.inspect_image(image).await.map_err(|e| self.fail(e))?;
            let repo = image.split('@').next().unwrap_or(image);
            let repo = match repo.rfind(':') {
                Some(i) if !repo[i..].contains('/') => &repo[..i],
                _ => repo,
            };
            Ok(inspect
                .repo_digests
                .unwrap_or_default()
                .into_iter()
                .find(|d| d.split('@').next() == Some(repo))
                .and_then(|d| d.split('@').nth(1).map(str::to_string)))
        })
    }

    fn image_info<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageInfo, EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let inspect = c.inspect_image(image).await.map_err(|e| self.fail(e))?;
            let config = inspect.config.unwrap_or_default();
            let mut exposed_tcp_ports: Vec<u16> = config
                .exposed_ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    let (port, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                    (proto == "tcp").then(|| port.parse().ok()).flatten()
                })
                .collect();
            exposed_tcp_ports.sort_unstable();
            exposed_tcp_ports.dedup();
            let healthcheck = config
                .healthcheck
                .and_then(|h| h.test)
                .is_some_and(|t| t.first().map(String::as_str) != Some("NONE") && !t.is_empty());
            Ok(ImageInfo {
                exposed_tcp_ports,
                healthcheck,
                labels: config.labels.unwrap_or_default().into_iter().collect(),
            })
        })
    }

    fn prune_images<'a>(
        &'a self,
        repository: &'a str,
        keep: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let images = c
                .list_images(Some(
                    q::ListImagesOptionsBuilder::default().all(false).build(),
                ))
                .await
                .map_err(|e| self.fail(e))?;
            let (tag_prefix, digest_prefix) = (format!("{repository}:"), format!("{repository}@"));
            let mut removed = Vec::new();
            for image in images {
                let digests: Vec<&String> = image
                    .repo_digests
                    .iter()
                    .filter(|r| r.starts_with(&digest_prefix))
                    .collect();
                let unknown_or_kept = digests.is_empty()
                    || digests
                        .iter()
                        .any(|r| keep.iter().any(|k| r.ends_with(&format!("@{k}"))));
                if unknown_or_kept {
                    continue;
                }
                let refs = image
                    .repo_tags
                    .iter()
                    .filter(|r| r.starts_with(&tag_prefix))
                    .chain(digests);
                for r in refs {
                    let opts = q::RemoveImageOptionsBuilder::default()
                        .force(false)
                        .noprune(false)
                        .build();
                    match c.remove_image(r, Some(opts), None).await {
                        Ok(_) => removed.push(r.clone()),
                        // In use by a container (409), or already gone (404): leave it.
                        Err(bollard::errors::Error::DockerResponseServerError {
                            status_code: 404 | 409,
                            ..
                        }) => break,
                        Err(e) => return Err(self.fail(e)),
                    }
                }
            }
            Ok(removed)
        })
    }

    fn ensure_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let _one_at_a_time = self.network_lock.lock().await;
            let opts = q::ListNetworksOptionsBuilder::default()
                .filters(&HashMap::from([("name", vec![name.to_string()])]))
                .build();
            let mut same: Vec<_> = c
                .list_networks(Some(opts))
                .await
                .map_err(|e| self.fail(e))?
                .into_iter()
                .filter(|n| n.name.as_deref() == Some(name))
                .collect();
            if !same.is_empty() {
                // Duplicates (made by an older engine's race): keep the oldest, remove empty extras.
                same.sort_by(|a, b| a.created.cmp(&b.created));
                for extra in same.iter().skip(1) {
                    if let Some(id) = &extra.id {
                        let _ = c.remove_network(id).await;
                    }
                }
                return Ok(());
            }
            let req = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(
                    labels::MANAGED.to_string(),
                    "true".to_string(),
                )])),
                ..Default::default()
            };
            match c.create_network(req).await {
                Ok(_) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(()),
                Err(e) => Err(self.fail(e)),
            }
        })
    }

    fn run<'a>(
        &'a self,
        plan: &'a ContainerPlan,
        publish: Publish,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let port = format!("{}/tcp", plan.port);
            let env = plan
                .env
                .iter()
                .map(|(k, v)| match v {
                    EnvValue::Plain(s) => format!("{k}={s}"),
                    // The one place a secret value leaves berth: into the container's env.
                    EnvValue::Secret(s) => format!("{k}={}", s.expose()),
                })
                .collect();
            let port_bindings = match publish {
                Publish::No => None,
                Publish::Loopback => Some(HashMap::from([(
                    port.clone(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
            };
            let host_config = HostConfig {
                binds: Some(plan.binds.iter().map(|b| b.spec()).collect()),
                port_bindings,
                memory: plan.memory_bytes.map(|m| m as i64),
                nano_cpus: plan.nano_cpus,
                network_mode: Some(plan.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(plan.image.clone()),
                env: Some(env),
                labels: Some(plan.labels.clone().into_iter().collect()),
                exposed_ports: Some(vec![port]),
                host_config: Some(host_config),
                ..Default::default()
            };
            let opts = q::CreateContainerOptionsBuilder::default()
                .name(&plan.name)
                .build();
            let created = c
                .create_container(Some(opts), body)
                .await
                .map_err(|e| self.fail(e))?;
            if let Err(e) = c
                .start_container(&created.id, None::<q::StartContainerOptions>)
                .await
            {
                let _ = self.remove(&created.id).await;
                return Err(self.fail(e));
            }
            Ok(created.id)
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStatus, EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let i = c
                .inspect_container(id, None::<q::InspectContainerOptions>)
                .await
                .map_err(|e| self.fail(e))?;
            let state = i.state.unwrap_or_default();
            let ns = i.network_settings.unwrap_or_default();
            let published_port = ns
                .ports
                .unwrap_or_default()
                .into_values()
                .flatten()
                .flatten()
                .find_map(|b| b.host_port.and_then(|p| p.parse().ok()));
            let networks = ns
                .networks
                .unwrap_or_default()
                .into_iter()
                .map(|(name, ep)| (name, ep.ip_address.unwrap_or_default()))
                .collect();
            Ok(ContainerStatus {
                id: i.id.unwrap_or_default(),
                name: i
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                running: state.running.unwrap_or(false),
                state: state.status.map(|s| s.to_string()).unwrap_or_default(),
                health: state
                    .health
                    .and_then(|h| h.status)
                    .map(|s| s.to_string())
                    .filter(|s| !s.is_empty() && s != "none"),
                exit_code: state.exit_code,
                published_port,
                networks,
                labels: i
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            })
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            match c
                .start_container(id, None::<q::StartContainerOptions>)
                .await
            {
                Ok(()) => Ok(()),
                // 304: already running.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(self.fail(e)),
            }
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let opts = q::StopContainerOptionsBuilder::default()
                .t(grace.as_secs() as i32)
                .build();
            match c.stop_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(self.fail(e)),
            }
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let c = self.client()?;
            let opts = q::RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match c.remove_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(()),
                Err(e) => Err(self.fail(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_reported_not_fatal() {
        let e = DockerEngine::new(Some("unix:///nonexistent/berth-test.sock".into()));
        let st = e.connect().await;
        match st {
            EngineStatus::Unavailable { error } => {
                assert!(error.contains("nonexistent"), "{error}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        assert!(matches!(
            e.list_containers().await,
            Err(EngineError::Unavailable(_))
        ));
    }
}
