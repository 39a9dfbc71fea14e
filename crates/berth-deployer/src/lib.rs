//! The deployer: brings a tag live in a stage with zero downtime, or leaves the stage as it
//! was.
//!
//! `submit` records a queued deploy (superseding the stage's other queued ones) and spawns a
//! task that waits for the stage's lock, so one deploy runs per stage at a time and a burst of
//! pushes ends with the newest image live. A deploy then walks the state machine of
//! [`berth_domain::deploy`]: resolve → pull → start the new container beside the old one →
//! health-gate it → switch the proxy → drain → stop the old one (kept for rollback) → watch →
//! succeeded; a failure before the switch removes the new container, a failure after it
//! switches back. Every step is recorded with its timing and log lines, and published as an
//! event. `reconcile` settles what a crash left unfinished.
//!
//! Architecture invariant: the deployer reaches the world only through ports (engine, proxy)
//! and the store; it knows no HTTP server, SQL or bollard.

use berth_domain::deploy::{DeployState, Recovery, Trigger};
use berth_domain::model::{GlobalSettings, NpmSettings, ProjectSpec, StageSpec, UpstreamMode};
use berth_domain::plan::{ContainerPlan, Target, fqdn, labels, stage_subdomain, tag_subdomain};
use berth_domain::ports::{
    ContainerEngine, ProxyConnector, ProxyManager, Publish, PullProgress, RegistryAuth, RouteSpec,
};
use berth_store::{DeployRecord, InstanceRecord, NewDeploy, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

mod health;
mod notify;
mod ops;
mod poller;
pub use health::Probe;
pub use notify::{ATTEMPTS as NOTIFY_ATTEMPTS, Notification};
pub use ops::{InstanceAction, OpError};
pub use poller::Poller;

/// A request to bring `tag` live in a stage.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub project: String,
    pub stage: String,
    pub tag: String,
    pub trigger: Trigger,
    pub actor: String,
    /// Deploy exactly this image digest (rollbacks and promotions); else the tag's current one.
    pub digest: Option<String>,
    /// The operator confirmed (stages with `confirm: true` require it).
    pub confirmed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no project named {0}")]
    UnknownProject(String),
    #[error("project {0} has no stage {1}")]
    UnknownStage(String, String),
    #[error("tag {tag:?} does not match stage {stage}'s pattern {pattern:?}")]
    TagMismatch {
        tag: String,
        stage: String,
        pattern: String,
    },
    #[error("tag {0:?} is not a valid image tag")]
    BadTag(String),
    #[error("stage {0} needs an explicit confirmation: send \"confirm\": true")]
    NeedsConfirmation(String),
    #[error("stage {stage} only takes tags live in {source_stage}, and {tag} is not live there")]
    NotInSource {
        stage: String,
        source_stage: String,
        tag: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Published on every state change and log line of a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct DeployEvent {
    pub deploy: String,
    pub project: String,
    pub stage: String,
    pub state: String,
    pub message: Option<String>,
    /// Set for an instance's change outside a deploy (stopped, started, removed…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Set on `progress` events: one layer of an image pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<LayerProgress>,
}

/// A layer's pull progress, published (as a `progress` event, not logged) when its status
/// changes and at most every [`PROGRESS_EVERY`] while it downloads or extracts.
#[derive(Debug, Clone, Serialize)]
pub struct LayerProgress {
    pub layer: String,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// The shortest gap between two progress events of one layer with the same status.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Timing knobs (tests shorten them).
#[derive(Debug, Clone)]
pub struct Options {
    /// Grace period when stopping a container.
    pub stop_grace: Duration,
    /// How often the watch window looks at the new instance.
    pub watch_every: Duration,
    /// The first wait between notification attempts (doubling after each).
    pub notify_backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stop_grace: Duration::from_secs(10),
            watch_every: Duration::from_secs(1),
            notify_backoff: Duration::from_secs(2),
        }
    }
}

pub struct Deployer {
    store: Store,
    engine: Arc<dyn ContainerEngine>,
    proxy: Arc<dyn ProxyConnector>,
    http: reqwest::Client,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    events: broadcast::Sender<DeployEvent>,
    tracker: TaskTracker,
    options: Options,
    /// Serialises creating projects from images, so two webhooks for one new image make one.
    create_lock: tokio::sync::Mutex<()>,
    /// Held shared from a pull until its container exists, exclusively to prune images, so
    /// berth never removes an image it just pulled for another deploy.
    images: tokio::sync::RwLock<()>,
}

/// Why a deploy stopped short, and in which state it ended.
struct Stop {
    outcome: DeployState,
    reason: String,
}

/// Everything a running deploy needs, loaded once at `resolving`.
struct Ctx {
    project: ProjectSpec,
    stage: StageSpec,
    global: GlobalSettings,
    npm: Option<NpmSettings>,
    auth: Option<RegistryAuth>,
    /// This installation's id, for the `berth.owner` label.
    owner: String,
}

impl Deployer {
    pub fn new(
        store: Store,
        engine: Arc<dyn ContainerEngine>,
        proxy: Arc<dyn ProxyConnector>,
        options: Options,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Arc::new(Self {
            store,
            engine,
            proxy,
            http,
            locks: Mutex::default(),
            events: broadcast::channel(1024).0,
            tracker: TaskTracker::new(),
            options,
            create_lock: tokio::sync::Mutex::default(),
            images: tokio::sync::RwLock::default(),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DeployEvent> {
        self.events.subscribe()
    }

    /// Deploys in flight (for shutdown: wait on this).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn lock_for(&self, stage_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("locks")
            .entry(stage_id)
            .or_default()
            .clone()
    }

    fn emit(&self, d: &DeployRecord, state: &str, message: Option<String>) {
        self.publish(d, state, message, None);
    }

    fn publish(
        &self,
        d: &DeployRecord,
        state: &str,
        message: Option<String>,
        progress: Option<LayerProgress>,
    ) {
        let _ = self.events.send(DeployEvent {
            deploy: d.id.clone(),
            project: d.project.clone(),
            stage: d.stage.clone(),
            state: state.into(),
            message,
            instance: None,
            progress,
        });
    }

    async fn log(&self, d: &DeployRecord, level: &str, line: &str) {
        tracing::info!(deploy.id = %d.id, project = %d.project, stage = %d.stage, "{line}");
        if let Err(e) = self.store.deploy_log(&d.id, level, line).await {
            tracing::warn!(deploy.id = %d.id, error = %e, "could not record a deploy log line");
        }
        self.emit(d, "log", Some(line.to_string()));
    }

    /// Records a queued deploy and starts it as soon as the stage is free.
    pub async fn submit(self: &Arc<Self>, req: DeployRequest) -> Result<String, SubmitError> {
        let Some((project, _)) = self.store.project_for_deploy(&req.project).await? else {
            return Err(SubmitError::UnknownProject(req.project));
        };
        let Some(stage) = project.stages.iter().find(|s| s.name.as_str() == req.stage) else {
            return Err(SubmitError::UnknownStage(req.project, req.stage));
        };
        let image = project.image.with_tag(&req.tag);
        if berth_domain::ImageRef::parse(&image.to_string())
            .map(|r| r.tag.as_deref() != Some(req.tag.as_str()))
            .unwrap_or(true)
        {
            return Err(SubmitError::BadTag(req.tag));
        }
        if !stage.tag_pattern.matches(&req.tag) && req.trigger != Trigger::Rollback {
            return Err(SubmitError::TagMismatch {
                tag: req.tag,
                stage: req.stage,
                pattern: stage.tag_pattern.to_string(),
            });
        }
        if stage.confirm && !req.confirmed {
            return Err(SubmitError::NeedsConfirmation(req.stage));
        }
        let mut digest = req.digest.clone();
        if let Some(source) = &stage.promote_from
            && req.trigger != Trigger::Rollback
        {
            // Promotion: the tag must be live in the source stage, and the same image (by
            // digest) is what goes live here.
            let (_, source_id) = self
                .store
                .stage_ids(&req.project, source.as_str())
                .await?
                .ok_or_else(|| {
                    SubmitError::UnknownStage(req.project.clone(), source.to_string())
                })?;
            let live = self
                .store
                .stage_instances(source_id)
                .await?
                .into_iter()
                .find(|i| i.status == "live" && i.tag == req.tag);
            match live {
                Some(i) => digest = digest.or(i.digest),
                None => {
                    return Err(SubmitError::NotInSource {
                        stage: req.stage,
                        source_stage: source.to_string(),
                        tag: req.tag,
                    });
                }
            }
        }
        let (project_id, stage_id) = self
            .store
            .stage_ids(&req.project, &req.stage)
            .await?
            .ok_or_else(|| SubmitError::UnknownStage(req.project.clone(), req.stage.clone()))?;
        let (id, superseded) = self
            .store
            .queue_deploy(&NewDeploy {
                project_id,
                stage_id,
                trigger: req.trigger,
                actor: &req.actor,
                image: &image.to_string(),
                tag: &req.tag,
            })
            .await?;
        if let Some(dg) = &digest {
            self.store.set_deploy_digest(&id, dg).await?;
        }
        for s in superseded {
            if let Ok(d) = self.store.deploy(&s).await {
                self.emit(&d, "superseded", d.error.clone());
            }
        }
        let d = self.store.deploy(&id).await?;
        self.emit(&d, "queued", None);
        let me = self.clone();
        let run_id = id.clone();
        self.tracker
            .spawn(async move { me.run_queued(stage_id, &run_id).await });
        Ok(id)
    }

    async fn run_queued(&self, stage_id: i64, id: &str) {
        let lock = self.lock_for(stage_id);
        let _stage = lock.lock().await;
        // Claim it atomically: a newer push may have superseded it while it waited.
        match self.store.claim_deploy(id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(deploy.id = %id, error = %e, "could not start a deploy");
                return;
            }
        }
        match self.store.deploy(id).await {
            Ok(d) => self.execute(d).await,
            Err(e) => tracing::error!(deploy.id = %id, error = %e, "a claimed deploy vanished"),
        }
    }

    async fn set_state(&self, d: &DeployRecord, s: DeployState, error: Option<&str>) {
        if let Err(e) = self.store.set_deploy_state(&d.id, s, error).await {
            tracing::error!(deploy.id = %d.id, error = %e, "could not record a deploy state");
        }
        self.emit(d, s.as_str(), error.map(String::from));
        self.notify(d, s, error).await;
    }

    /// Runs one step: records its start and end, moves the deploy's state.
    async fn step<T, F>(&self, d: &DeployRecord, state: DeployState, f: F) -> Result<T, Stop>
    where
        F: std::future::Future<Output = Result<(T, String), String>>,
    {
        self.set_state(d, state, None).await;
        let step = self.store.start_step(&d.id, state).await.ok();
        let t0 = Instant::now();
        let r = f.await;
        let ms = t0.elapsed().as_millis();
        match r {
            Ok((v, msg)) => {
                if let Some(id) = step {
                    let _ = self
                        .store
                        .finish_step(id, "done", Some(&format!("{msg} ({ms} ms)")))
                        .await;
                }
                Ok(v)
            }
            Err(reason) => {
                if let Some(id) = step {
                    let _ = self.store.finish_step(id, "failed", Some(&reason)).await;
                }
                self.log(d, "error", &format!("{}: {reason}", state.as_str()))
                    .await;
                let outcome = if state.is_visible() {
                    DeployState::RolledBack
                } else {
                    DeployState::Failed
                };
                Err(Stop {
                    outcome,
                    reason: format!("{}: {reason}", state.as_str()),
                })
            }
        }
    }

    async fn load(&self, d: &DeployRecord) -> Result<Ctx, String> {
        self.load_stage(&d.project, &d.stage).await
    }

    async fn load_stage(&self, project: &str, stage: &str) -> Result<Ctx, String> {
        let (project, registry) = self
            .store
            .project_for_deploy(project)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the project was deleted")?;
        let stage = project
            .stages
            .iter()
            .find(|s| s.name.as_str() == stage)
            .cloned()
            .ok_or("the stage was deleted")?;
        let global = self
            .store
            .global_settings()
            .await
            .map_err(|e| e.to_string())?;
        let npm = self
            .store
            .npm_connection()
            .await
            .map_err(|e| e.to_string())?;
        let auth = registry.and_then(|r| r.auth_for(r.host()));
        let owner = self
            .store
            .installation_id()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Ctx {
            project,
            stage,
            global,
            npm,
            auth,
            owner,
        })
    }

    fn proxy_for(&self, ctx: &Ctx) -> Option<Arc<dyn ProxyManager>> {
        ctx.npm
            .as_ref()
            .filter(|n| n.password.is_some())
            .map(|n| self.proxy.connect(n))
    }

    /// The upstream the proxy should use for a container, and where berth probes it.
    async fn upstream(
        &self,
        ctx: &Ctx,
        container: &str,
        name: &str,
    ) -> Result<(String, u16, Probe), String> {
        let st = self
            .engine
            .inspect(container)
            .await
            .map_err(|e| e.to_string())?;
        let port = ctx.project.port;
        match ctx.npm.as_ref().map(|n| n.upstream) {
            Some(UpstreamMode::HostPort) => {
                let p = st
                    .published_port
                    .ok_or("the container has no published port")?;
                Ok((
                    "127.0.0.1".into(),
                    p,
                    Probe {
                        host: "127.0.0.1".into(),
                        port: p,
                    },
                ))
            }
            _ => {
                let ip = st
                    .networks
                    .get(&ctx.global.network)
                    .cloned()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| name.to_string());
                Ok((name.to_string(), port, Probe { host: ip, port }))
            }
        }
    }

    fn route_spec(ctx: &Ctx, domain: String, host: String, port: u16) -> RouteSpec {
        let n = ctx.npm.as_ref();
        RouteSpec {
            domain,
            forward_host: host,
            forward_port: port,
            certificate_id: n.and_then(|n| n.certificate_id),
            websockets: n.is_some_and(|n| n.websockets),
        }
    }

    async fn execute(&self, d: DeployRecord) {
        let started = Instant::now();
        match self.run_steps(&d).await {
            Ok(()) => {
                self.set_state(&d, DeployState::Succeeded, None).await;
                self.log(
                    &d,
                    "info",
                    &format!(
                        "{} is live in {} ({} ms)",
                        d.tag,
                        d.stage,
                        started.elapsed().as_millis()
                    ),
                )
                .await;
                self.prune_images(&d).await;
            }
            Err(stop) => {
                self.set_state(&d, stop.outcome, Some(&stop.reason)).await;
            }
        }
    }

    async fn run_steps(&self, d: &DeployRecord) -> Result<(), Stop> {
        let ctx = self
            .step(d, DeployState::Resolving, async {
                self.load(d)
                    .await
                    .map(|c| (c, "configuration loaded".to_string()))
            })
            .await?;
        // A deploy pinned to a digest (promotion, rollback) pulls exactly that image.
        let image = match &d.digest {
            Some(dg) => format!("{}@{dg}", ctx.project.image.name()),
            None => format!("{}:{}", ctx.project.image.name(), d.tag),
        };

        let pulled = self.images.read().await;
        let digest = self
            .step(d, DeployState::Pulling, async {
                let done = Mutex::new(Vec::<String>::new());
                let last = Mutex::new(HashMap::<String, (String, std::time::Instant)>::new());
                let progress = |p: PullProgress| {
                    // Layers have hex ids; "Pulling from …" comes with the tag as its id.
                    if !p.layer.is_empty() && p.layer.chars().all(|c| c.is_ascii_hexdigit()) {
                        let now = std::time::Instant::now();
                        let due = {
                            let mut last = last.lock().expect("pull progress");
                            let due = match last.get(&p.layer) {
                                Some((status, at)) => {
                                    *status != p.status || now.duration_since(*at) >= PROGRESS_EVERY
                                }
                                None => true,
                            };
                            if due {
                                last.insert(p.layer.clone(), (p.status.clone(), now));
                            }
                            due
                        };
                        if due {
                            let layer = LayerProgress {
                                layer: p.layer.clone(),
                                status: p.status.clone(),
                                current: p.current,
                                total: p.total,
                            };
                            self.publish(d, "progress", None, Some(layer));
                        }
                    }
                    // One log line per layer milestone, not per progress tick.
                    if matches!(p.status.as_str(), "Pull complete" | "Already exists")
                        || p.status.starts_with("Digest:")
                        || p.status.starts_with("Status:")
                    {
                        done.lock().expect("pull log").push(if p.layer.is_empty() {
                            p.status
                        } else {
                            format!("{}: {}", p.layer, p.status)
                        });
                    }
                };
                self.engine
                    .pull(&image, ctx.auth.as_ref(), &progress)
                    .await
                    .map_err(|e| e.to_string())?;
                for line in done.into_inner().expect("pull log") {
                    self.log(d, "info", &line).await;
                }
                let digest = self
                    .engine
                    .image_digest(&image)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(dg) = &digest {
                    let _ = self.store.set_deploy_digest(&d.id, dg).await;
                }
                Ok((
                    digest.clone(),
                    format!(
                        "pulled {image}{}",
                        digest.map(|x| format!(" ({x})")).unwrap_or_default()
                    ),
                ))
            })
            .await?;

        let instance_id = uuid::Uuid::now_v7().to_string();
        let publish = match ctx.npm.as_ref().map(|n| n.upstream) {
            Some(UpstreamMode::HostPort) => Publish::Loopback,
            _ => Publish::No,
        };
        let plan = ContainerPlan::new(
            &ctx.project,
            &ctx.stage,
            &ctx.global,
            &Target {
                tag: &d.tag,
                digest: digest.as_deref(),
                deploy_id: &d.id,
                instance_id: &instance_id,
                owner: &ctx.owner,
            },
        );
        let subdomain = if ctx.stage.max_instances > 1 {
            tag_subdomain(&ctx.project, &ctx.stage, &ctx.global, &d.tag)
        } else {
            stage_subdomain(&ctx.project, &ctx.stage, &ctx.global)
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let record = InstanceRecord {
            id: instance_id.clone(),
            project_id: d.project_id,
            stage_id: d.stage_id,
            deploy_id: Some(d.id.clone()),
            container_id: None,
            container_name: plan.name.clone(),
            tag: d.tag.clone(),
            digest: digest.clone(),
            subdomain,
            status: "starting".into(),
            route_id: None,
            created_at: now.clone(),
            updated_at: now,
        };
        self.store
            .create_instance(&record)
            .await
            .map_err(|e| Stop {
                outcome: DeployState::Failed,
                reason: e.to_string(),
            })?;

        let container = self
            .step(d, DeployState::Starting, async {
                self.engine
                    .ensure_network(&ctx.global.network)
                    .await
                    .map_err(|e| e.to_string())?;
                let id = self
                    .engine
                    .run(&plan, publish)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = self
                    .store
                    .set_instance(&instance_id, "starting", Some(&id), None)
                    .await;
                Ok((id, format!("started {}", plan.name)))
            })
            .await;
        drop(pulled);
        let container = match container {
            Ok(c) => c,
            Err(stop) => {
                let _ = self
                    .store
                    .set_instance(&instance_id, "removed", None, None)
                    .await;
                return Err(stop);
            }
        };

        // Until the switch, a failure removes the new container and changes nothing users see.
        let before_switch = async {
            let (host, port, probe) = self
                .step(d, DeployState::HealthChecking, async {
                    let up = self.upstream(&ctx, &container, &plan.name).await?;
                    let took = health::gate(
                        self.engine.as_ref(),
                        &self.http,
                        &ctx.project.health,
                        &container,
                        &up.2,
                    )
                    .await?;
                    Ok((up, format!("healthy after {} ms", took.as_millis())))
                })
                .await?;
            Ok::<_, Stop>((host, port, probe))
        }
        .await;
        let (host, port, probe) = match before_switch {
            Ok(v) => v,
            Err(stop) => {
                let _ = self.engine.remove(&container).await;
                let _ = self
                    .store
                    .set_instance(&instance_id, "failed", None, None)
                    .await;
                self.log(
                    d,
                    "info",
                    "removed the new container; the previous version keeps serving",
                )
                .await;
                return Err(stop);
            }
        };

        // The instances the new one replaces (blue-green) or joins (several per stage).
        let previous: Vec<InstanceRecord> = self
            .store
            .stage_instances(d.stage_id)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.id != instance_id && i.status == "live")
            .collect();

        let proxy = self.proxy_for(&ctx);
        let stage_domain = fqdn(
            &stage_subdomain(&ctx.project, &ctx.stage, &ctx.global),
            &ctx.global,
        );
        let switched = self
            .step(d, DeployState::Switching, async {
                let Some(proxy) = &proxy else {
                    return Ok((
                        None,
                        "no proxy configured: the container runs without a route".to_string(),
                    ));
                };
                let route = proxy
                    .ensure_route(&Self::route_spec(
                        &ctx,
                        stage_domain.clone(),
                        host.clone(),
                        port,
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                if ctx.stage.max_instances > 1 {
                    let own = fqdn(&record.subdomain, &ctx.global);
                    proxy
                        .ensure_route(&Self::route_spec(&ctx, own, host.clone(), port))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok((Some(route.id), format!("{stage_domain} → {host}:{port}")))
            })
            .await;
        let route_id = match switched {
            Ok(r) => r,
            Err(stop) => {
                self.switch_back(d, &ctx, proxy.as_deref(), &stage_domain, previous.first())
                    .await;
                let _ = self.engine.remove(&container).await;
                let _ = self
                    .store
                    .set_instance(&instance_id, "failed", None, None)
                    .await;
                return Err(stop);
            }
        };
        let _ = self
            .store
            .set_instance(&instance_id, "live", None, route_id)
            .await;

        self.step(d, DeployState::Draining, async {
            tokio::time::sleep(Duration::from_secs(ctx.global.drain_secs)).await;
            let mut stopped = Vec::new();
            if ctx.stage.max_instances <= 1 {
                for old in &previous {
                    if let Some(cid) = &old.container_id {
                        let _ = self.engine.stop(cid, self.options.stop_grace).await;
                    }
                    let _ = self.store.set_instance(&old.id, "kept", None, None).await;
                    stopped.push(old.tag.clone());
                }
            }
            self.retire(&ctx, d.stage_id, proxy.as_deref()).await;
            let msg = if stopped.is_empty() {
                format!("drained {} s", ctx.global.drain_secs)
            } else {
                format!(
                    "drained {} s, stopped {} (kept for rollback)",
                    ctx.global.drain_secs,
                    stopped.join(", ")
                )
            };
            Ok(((), msg))
        })
        .await?;

        let watched = self
            .step(d, DeployState::Watching, async {
                let end = Instant::now() + Duration::from_secs(ctx.global.watch_secs);
                let mut w = health::Watch::new();
                while Instant::now() < end {
                    w.still_healthy(
                        self.engine.as_ref(),
                        &self.http,
                        &ctx.project.health,
                        &container,
                        &probe,
                    )
                    .await?;
                    tokio::time::sleep(self.options.watch_every).await;
                }
                Ok(((), format!("healthy for {} s", ctx.global.watch_secs)))
            })
            .await;
        if let Err(stop) = watched {
            self.log(
                d,
                "warn",
                "the new version turned unhealthy: switching back",
            )
            .await;
            let kept = self
                .store
                .stage_instances(d.stage_id)
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|i| i.status == "kept");
            self.switch_back(d, &ctx, proxy.as_deref(), &stage_domain, kept.as_ref())
                .await;
            let _ = self.engine.remove(&container).await;
            let _ = self
                .store
                .set_instance(&instance_id, "failed", None, None)
                .await;
            return Err(stop);
        }
        Ok(())
    }

    /// Brings `old` back (start, health gate) and points the stage's route at it again.
    async fn switch_back(
        &self,
        d: &DeployRecord,
        ctx: &Ctx,
        proxy: Option<&dyn ProxyManager>,
        domain: &str,
        old: Option<&InstanceRecord>,
    ) {
        let Some(old) = old else {
            self.log(d, "warn", "no previous instance to switch back to")
                .await;
            return;
        };
        let Some(cid) = &old.container_id else { return };
        if let Err(e) = self.engine.start(cid).await {
            self.log(
                d,
                "error",
                &format!("could not restart {}: {e}", old.container_name),
            )
            .await;
            return;
        }
        let up = match self.upstream(ctx, cid, &old.container_name).await {
            Ok(u) => u,
            Err(e) => {
                self.log(d, "error", &format!("previous instance unreachable: {e}"))
                    .await;
                return;
            }
        };
        if let Err(e) = health::gate(
            self.engine.as_ref(),
            &self.http,
            &ctx.project.health,
            cid,
            &up.2,
        )
        .await
        {
            self.log(
                d,
                "error",
                &format!("previous instance {} is not healthy either: {e}", old.tag),
            )
            .await;
        }
        if let Some(p) = proxy
            && let Err(e) = p
                .ensure_route(&Self::route_spec(
                    ctx,
                    domain.to_string(),
                    up.0.clone(),
                    up.1,
                ))
                .await
        {
            self.log(d, "error", &format!("could not point {domain} back: {e}"))
                .await;
            return;
        }
        let _ = self.store.set_instance(&old.id, "live", None, None).await;
        self.log(d, "info", &format!("{domain} points at {} again", old.tag))
            .await;
    }

    /// Removes local images of the deploy's repository that nothing live, kept or in flight
    /// uses (setting `prune_images`). Skipped, not waited for, while another deploy is between
    /// its pull and its container: the next deploy prunes instead.
    async fn prune_images(&self, d: &DeployRecord) {
        let Ok(global) = self.store.global_settings().await else {
            return;
        };
        if !global.prune_images {
            return;
        }
        let Ok(_exclusive) = self.images.try_write() else {
            return;
        };
        let Ok(repository) = berth_domain::ImageRef::parse(&d.image).map(|i| i.name()) else {
            return;
        };
        let keep = match self.store.digests_in_use(&repository).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the digests in use; not pruning");
                return;
            }
        };
        match self.engine.prune_images(&repository, &keep).await {
            Ok(removed) if removed.is_empty() => {}
            Ok(removed) => {
                self.log(
                    d,
                    "info",
                    &format!("pruned unused images: {}", removed.join(", ")),
                )
                .await
            }
            Err(e) => {
                self.log(d, "warn", &format!("could not prune images: {e}"))
                    .await
            }
        }
    }

    /// Removes kept releases beyond the retention, and live instances beyond `max_instances`.
    async fn retire(&self, ctx: &Ctx, stage_id: i64, proxy: Option<&dyn ProxyManager>) {
        let all = self
            .store
            .stage_instances(stage_id)
            .await
            .unwrap_or_default();
        let kept: Vec<_> = all.iter().filter(|i| i.status == "kept").collect();
        let live: Vec<_> = all.iter().filter(|i| i.status == "live").collect();
        let extra_kept = kept.iter().skip(ctx.global.keep_releases as usize);
        let extra_live = live.iter().skip(ctx.stage.max_instances.max(1) as usize);
        for i in extra_kept.chain(extra_live) {
            if let Some(cid) = &i.container_id {
                let _ = self.engine.remove(cid).await;
            }
            if ctx.stage.max_instances > 1
                && i.status == "live"
                && let Some(p) = proxy
                && let Ok(Some(r)) = p.find_route(&fqdn(&i.subdomain, &ctx.global)).await
            {
                let _ = p.remove_route(r.id).await;
            }
            let _ = self.store.set_instance(&i.id, "removed", None, None).await;
        }
    }

    /// Settles what a crash or restart left behind: unfinished deploys are finished, rolled
    /// back or re-run; containers berth made but no longer knows are removed.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), StoreError> {
        for d in self.store.unfinished_deploys().await? {
            let state: DeployState = d.state.parse().unwrap_or(DeployState::Failed);
            tracing::info!(deploy.id = %d.id, state = %d.state, "reconciling an unfinished deploy");
            match state.recovery() {
                Recovery::None => {}
                Recovery::Requeue => {
                    let me = self.clone();
                    let (sid, id) = (d.stage_id, d.id.clone());
                    self.tracker
                        .spawn(async move { me.run_queued(sid, &id).await });
                }
                Recovery::AbandonBeforeSwitch => {
                    self.remove_deploy_instances(&d).await;
                    self.log(&d, "warn", "interrupted by a restart before it went live; the previous version kept serving").await;
                    self.set_state(
                        &d,
                        DeployState::Failed,
                        Some("interrupted by a restart before it went live"),
                    )
                    .await;
                }
                Recovery::SettleSwitch | Recovery::FinishOrRollBack => {
                    self.settle_visible(&d).await
                }
            }
        }
        self.remove_orphans().await;
        self.check_routes().await;
        Ok(())
    }

    async fn remove_deploy_instances(&self, d: &DeployRecord) {
        for i in self
            .store
            .stage_instances(d.stage_id)
            .await
            .unwrap_or_default()
        {
            if i.deploy_id.as_deref() == Some(d.id.as_str())
                && i.status != "live"
                && i.status != "kept"
            {
                if let Some(cid) = &i.container_id {
                    let _ = self.engine.remove(cid).await;
                } else if let Ok(list) = self.engine.list_managed().await {
                    for c in list
                        .iter()
                        .filter(|c| c.labels.get(labels::INSTANCE) == Some(&i.id))
                    {
                        let _ = self.engine.remove(&c.id).await;
                    }
                }
                let _ = self.store.set_instance(&i.id, "removed", None, None).await;
            }
        }
    }

    /// A deploy interrupted at or after the switch: keep the new version if it is healthy,
    /// otherwise go back to the previous one.
    async fn settle_visible(&self, d: &DeployRecord) {
        let Ok(ctx) = self.load(d).await else {
            self.set_state(
                d,
                DeployState::Failed,
                Some("interrupted, and its project is gone"),
            )
            .await;
            return;
        };
        let all = self
            .store
            .stage_instances(d.stage_id)
            .await
            .unwrap_or_default();
        let new = all
            .iter()
            .find(|i| i.deploy_id.as_deref() == Some(d.id.as_str()));
        let old = all.iter().find(|i| {
            i.deploy_id.as_deref() != Some(d.id.as_str())
                && (i.status == "live" || i.status == "kept")
        });
        let proxy = self.proxy_for(&ctx);
        let domain = fqdn(
            &stage_subdomain(&ctx.project, &ctx.stage, &ctx.global),
            &ctx.global,
        );
        let healthy_new = match new.and_then(|n| n.container_id.clone().map(|c| (n, c))) {
            Some((n, cid)) => match self.upstream(&ctx, &cid, &n.container_name).await {
                Ok(up) => {
                    let ok = health::gate(
                        self.engine.as_ref(),
                        &self.http,
                        &ctx.project.health,
                        &cid,
                        &up.2,
                    )
                    .await
                    .is_ok();
                    ok.then_some((n, cid, up))
                }
                Err(_) => None,
            },
            None => None,
        };
        match healthy_new {
            Some((n, _cid, (host, port, _))) => {
                if let Some(p) = &proxy
                    && let Err(e) = p
                        .ensure_route(&Self::route_spec(&ctx, domain.clone(), host, port))
                        .await
                {
                    self.log(
                        d,
                        "error",
                        &format!("could not route {domain} after a restart: {e}"),
                    )
                    .await;
                }
                let _ = self.store.set_instance(&n.id, "live", None, None).await;
                if let Some(o) = old.filter(|_| ctx.stage.max_instances <= 1) {
                    if let Some(c) = &o.container_id {
                        let _ = self.engine.stop(c, self.options.stop_grace).await;
                    }
                    let _ = self.store.set_instance(&o.id, "kept", None, None).await;
                }
                self.log(
                    d,
                    "info",
                    "finished after a restart: the new version is healthy",
                )
                .await;
                self.set_state(d, DeployState::Succeeded, None).await;
            }
            None => {
                self.switch_back(d, &ctx, proxy.as_deref(), &domain, old)
                    .await;
                self.remove_deploy_instances(d).await;
                if let Some(n) = new
                    && let Some(c) = &n.container_id
                {
                    let _ = self.engine.remove(c).await;
                    let _ = self.store.set_instance(&n.id, "removed", None, None).await;
                }
                self.set_state(
                    d,
                    DeployState::RolledBack,
                    Some("interrupted by a restart, and the new version was not healthy"),
                )
                .await;
            }
        }
    }

    /// Removes this installation's containers that no instance record knows (left by a crash
    /// between starting a container and recording it). Containers of another installation on
    /// the same engine carry another `berth.owner` and are never touched.
    async fn remove_orphans(&self) {
        let (Ok(owner), Ok(known), Ok(list)) = (
            self.store.installation_id().await,
            self.store.known_instance_ids().await,
            self.engine.list_managed().await,
        ) else {
            return;
        };
        for c in list
            .into_iter()
            .filter(|c| c.labels.get(labels::OWNER) == Some(&owner))
        {
            match c.labels.get(labels::INSTANCE) {
                Some(i) if known.contains(i) => {}
                _ => {
                    tracing::info!(container.name = %c.name, "removing a berth container that no instance record knows");
                    let _ = self.engine.remove(&c.id).await;
                }
            }
        }
    }
}
