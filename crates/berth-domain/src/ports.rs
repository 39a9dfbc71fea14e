//! Ports: the small traits through which berth's services reach the outside world.
//! Adapter crates implement them (`berth-docker` for the engine); services hold them as
//! `Arc<dyn …>` so that tests and other adapters can stand in.

use crate::plan::ContainerPlan;
use berth_crypto::SecretString;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::BTreeMap;

/// What berth last learned about the container engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EngineStatus {
    /// Not contacted yet.
    Connecting,
    /// Reachable; the versions are the engine's.
    Connected {
        engine_version: String,
        api_version: String,
        os: String,
    },
    /// Not reachable; berth keeps trying.
    Unavailable { error: String },
}

impl EngineStatus {
    pub fn is_connected(&self) -> bool {
        matches!(self, EngineStatus::Connected { .. })
    }
}

/// One container as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub status: String,
    pub created: i64,
    pub labels: BTreeMap<String, String>,
}

/// Errors from the engine, in words an operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("the container engine is unavailable: {0}")]
    Unavailable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the container engine refused: {0}")]
    Engine(String),
}

/// What an image declares about itself (its config), for a project's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// `EXPOSE`d TCP ports, ascending.
    pub exposed_tcp_ports: Vec<u16>,
    /// The image has its own HEALTHCHECK (and it is not `NONE`).
    pub healthcheck: bool,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Progress of one layer of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    pub layer: String,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Credentials for a registry, sent to the engine for a pull (never on a command line).
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    pub server: String,
    pub username: String,
    pub password: SecretString,
}

/// Whether a container's port is published on the host (for a proxy that reaches containers
/// by a host port rather than by name on a shared network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    No,
    /// On 127.0.0.1, a port the engine picks.
    Loopback,
}

/// One container as an inspection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// created, running, exited, …
    pub state: String,
    /// The engine's health (`starting`, `healthy`, `unhealthy`), when the image has a check.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// The host port the container port is published on, if it is.
    pub published_port: Option<u16>,
    /// Network name → the container's address on it.
    pub networks: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// The container engine, as berth needs it.
pub trait ContainerEngine: Send + Sync {
    /// The last known status (cheap; no I/O).
    fn status(&self) -> EngineStatus;
    /// All containers, running or not.
    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<ContainerSummary>, EngineError>>;
    /// The containers berth made (label `berth.managed=true`), running or not.
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerSummary>, EngineError>>;
    /// Pulls `image` (with a tag or digest), reporting each layer's progress.
    fn pull<'a>(
        &'a self,
        image: &'a str,
        auth: Option<&'a RegistryAuth>,
        progress: &'a (dyn Fn(PullProgress) + Send + Sync),
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// The registry digest of a pulled image (`sha256:…`), if the engine knows it.
    fn image_digest<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, EngineError>>;
    /// What a pulled image declares: exposed ports, whether it has a HEALTHCHECK, labels.
    fn image_info<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<ImageInfo, EngineError>>;
    /// Removes this installation's local copies of `repository` whose registry digest is not
    /// in `keep`: their tag and digest references are removed, and the image with them when
    /// nothing else refers to it. Images a container uses (running or stopped) and images
    /// with no registry digest are left alone. Returns the references removed.
    fn prune_images<'a>(
        &'a self,
        repository: &'a str,
        keep: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, EngineError>>;
    /// Creates the network if it does not exist.
    fn ensure_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Creates and starts a container from a plan; returns its id. Leaves nothing behind on
    /// failure.
    fn run<'a>(
        &'a self,
        plan: &'a ContainerPlan,
        publish: Publish,
    ) -> BoxFuture<'a, Result<String, EngineError>>;
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStatus, EngineError>>;
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Stops with SIGTERM, then SIGKILL after `grace`.
    fn stop<'a>(
        &'a self,
        id: &'a str,
        grace: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Removes (forcibly); a container that is already gone is not an error.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
}

/// What berth asks of the reverse proxy for one live subdomain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The full domain (`stage-dev-web.example.com`).
    pub domain: String,
    /// Where the proxy sends traffic: a container name on the shared network, or a host
    /// address with a published port.
    pub forward_host: String,
    pub forward_port: u16,
    pub certificate_id: Option<u32>,
    pub websockets: bool,
}

/// A route as the proxy has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The proxy's id for it (NPM's proxy host id).
    pub id: i64,
    pub domains: Vec<String>,
    pub forward_host: String,
    pub forward_port: u16,
    pub enabled: bool,
}

/// What a connection test learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyInfo {
    pub version: String,
    pub user: String,
}

/// Failures of the proxy manager, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("Nginx Proxy Manager is unreachable: {0}")]
    Unreachable(String),
    #[error("Nginx Proxy Manager refused berth's credentials: {0}")]
    Auth(String),
    #[error("Nginx Proxy Manager rejected the change: {0}")]
    Rejected(String),
    #[error("nginx did not accept the new configuration: {0}")]
    Nginx(String),
    #[error("Nginx Proxy Manager answered unexpectedly: {0}")]
    Protocol(String),
}

/// The reverse proxy, as the deployer needs it.
pub trait ProxyManager: Send + Sync {
    /// Reaches the proxy and logs in.
    fn check(&self) -> BoxFuture<'_, Result<ProxyInfo, ProxyError>>;
    /// The route serving `domain`, if any.
    fn find_route<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<Option<Route>, ProxyError>>;
    /// Makes `spec.domain` route to the spec's upstream: updates the route that already serves
    /// the domain (adopting one made outside berth), or creates one. Fails unless nginx
    /// accepted the configuration.
    fn ensure_route<'a>(&'a self, spec: &'a RouteSpec) -> BoxFuture<'a, Result<Route, ProxyError>>;
    /// Removes a route; one that is already gone is not an error.
    fn remove_route(&self, id: i64) -> BoxFuture<'_, Result<(), ProxyError>>;
}

/// Makes a proxy-manager client from stored settings (the settings change at run time).
pub trait ProxyConnector: Send + Sync {
    fn connect(&self, settings: &crate::model::NpmSettings) -> std::sync::Arc<dyn ProxyManager>;
}

/// An image as its registry describes it, read without a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteImage {
    pub info: ImageInfo,
    /// Creation time (RFC 3339), when the config says it.
    pub created: Option<String>,
    /// The manifest digest read (the platform's, for multi-platform images).
    pub digest: String,
}

/// A container registry's API, as berth needs it: tags and image configs without a pull.
/// Errors are sentences for the operator ("the registry refused the credentials (401)").
pub trait ImageRegistry: Send + Sync {
    /// Every tag of `image`'s repository.
    fn tags<'a>(
        &'a self,
        image: &'a crate::ImageRef,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<Vec<String>, String>>;
    /// The digest of the tag's manifest (of its index, for multi-platform images): the
    /// digest the engine records when it pulls the tag.
    fn digest<'a>(
        &'a self,
        image: &'a crate::ImageRef,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<String, String>>;
    /// Checks that `registry` (`host[:port]`) answers and accepts the credentials; with a
    /// repository, that they may pull it.
    fn check<'a>(
        &'a self,
        registry: &'a str,
        repository: Option<&'a str>,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// The config of `image` (tag or digest) for the engine's platform.
    fn inspect<'a>(
        &'a self,
        image: &'a crate::ImageRef,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<RemoteImage, String>>;
}
