//! What an operator does to instances outside a deploy: stop, start, restart, remove one;
//! retire a whole stage before it (or its project) is deleted. Each runs under the stage's
//! lock, so it never interleaves with a deploy of the same stage.

use crate::{Ctx, DeployEvent, Deployer, health};
use berth_domain::model::ProjectSpec;
use berth_domain::plan::instance_host;
use berth_domain::subdomain::dns_label;
use berth_domain::{ImageRef, ProjectName};
use berth_store::{InstanceRecord, StoreError};

/// An operator's action on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAction {
    Stop,
    Start,
    Restart,
    Remove,
}

impl InstanceAction {
    fn past(self) -> &'static str {
        match self {
            InstanceAction::Stop => "stopped",
            InstanceAction::Start => "started",
            InstanceAction::Restart => "restarted",
            InstanceAction::Remove => "removed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    /// The action does not fit the instance's state (e.g. start a kept release).
    #[error("{0}")]
    Conflict(String),
    /// The engine or the proxy failed; the message says which and why.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Deployer {
    async fn stage_ctx(&self, project: &str, stage: &str) -> Result<(Ctx, i64), OpError> {
        let (_, stage_id) =
            self.store.stage_ids(project, stage).await?.ok_or_else(|| {
                OpError::NotFound(format!("project {project} has no stage {stage}"))
            })?;
        let ctx = self
            .load_stage(project, stage)
            .await
            .map_err(OpError::Failed)?;
        Ok((ctx, stage_id))
    }

    fn emit_instance(&self, ctx: &Ctx, i: &InstanceRecord, state: &str, message: String) {
        let _ = self.events.send(DeployEvent {
            deploy: i.deploy_id.clone().unwrap_or_default(),
            project: ctx.project.name.to_string(),
            stage: ctx.stage.name.to_string(),
            state: format!("instance.{state}"),
            message: Some(message),
            instance: Some(i.id.clone()),
            progress: None,
        });
    }

    /// The domain an instance is served at (a live instance's route), if it has one.
    fn instance_domain(ctx: &Ctx, i: &InstanceRecord) -> String {
        instance_host(&ctx.project, &ctx.stage, &ctx.global, &i.subdomain)
    }

    /// Stops, starts, restarts or removes one instance of a stage; returns it as it is after.
    ///
    /// - stop: a live instance's container stops; its route stays (the subdomain answers 502
    ///   until it is started again or another version is deployed).
    /// - start: a stopped instance starts, passes its health check and gets its route back;
    ///   refused when another instance has gone live in its place (roll back instead).
    /// - restart: a live instance restarts and must pass its health check again.
    /// - remove: the container goes, and the route if this instance was serving it.
    pub async fn instance_action(
        &self,
        project: &str,
        stage: &str,
        instance: &str,
        action: InstanceAction,
        actor: &str,
    ) -> Result<InstanceRecord, OpError> {
        let (ctx, stage_id) = self.stage_ctx(project, stage).await?;
        let lock = self.lock_for(stage_id);
        let _stage = lock.lock().await;
        let all = self.store.stage_instances(stage_id).await?;
        let i = all
            .iter()
            .find(|i| i.id == instance)
            .cloned()
            .ok_or_else(|| {
                OpError::NotFound(format!(
                    "stage {project}/{stage} has no instance {instance}"
                ))
            })?;
        let cid = i.container_id.clone().ok_or_else(|| {
            OpError::Conflict(format!("instance {instance} never got a container"))
        })?;
        let proxy = self.proxy_for(&ctx);
        let domain = Self::instance_domain(&ctx, &i);
        let new_status = match action {
            InstanceAction::Stop => {
                if i.status != "live" {
                    return Err(OpError::Conflict(format!(
                        "instance {instance} is {}, not live",
                        i.status
                    )));
                }
                self.engine
                    .stop(&cid, self.options.stop_grace)
                    .await
                    .map_err(|e| OpError::Failed(format!("stopping the container: {e}")))?;
                "stopped"
            }
            InstanceAction::Start | InstanceAction::Restart => {
                match (action, i.status.as_str()) {
                    (InstanceAction::Start, "stopped") => {
                        if ctx.stage.max_instances <= 1
                            && let Some(other) = all.iter().find(|o| o.status == "live")
                        {
                            return Err(OpError::Conflict(format!(
                                "{} is live in {stage} now; roll back to {} instead",
                                other.tag, i.tag
                            )));
                        }
                    }
                    (InstanceAction::Start, "kept") => {
                        return Err(OpError::Conflict(format!(
                            "instance {instance} is a kept release: roll back to it instead"
                        )));
                    }
                    (InstanceAction::Restart, "live") => {
                        self.engine
                            .stop(&cid, self.options.stop_grace)
                            .await
                            .map_err(|e| OpError::Failed(format!("stopping the container: {e}")))?;
                    }
                    (_, other) => {
                        return Err(OpError::Conflict(format!(
                            "instance {instance} is {other}; only a {} instance can be {}",
                            if action == InstanceAction::Start {
                                "stopped"
                            } else {
                                "live"
                            },
                            action.past()
                        )));
                    }
                }
                self.engine
                    .start(&cid)
                    .await
                    .map_err(|e| OpError::Failed(format!("starting the container: {e}")))?;
                let (host, port, probe) = self
                    .upstream(&ctx, &cid, &i.container_name)
                    .await
                    .map_err(OpError::Failed)?;
                health::gate(
                    self.engine.as_ref(),
                    &self.http,
                    &ctx.project.health,
                    &cid,
                    &probe,
                )
                .await
                .map_err(|e| OpError::Failed(format!("started, but not healthy: {e}")))?;
                // Host ports change when a container restarts: point the route again.
                if let Some(p) = &proxy {
                    p.ensure_route(&Self::route_spec(&ctx, domain.clone(), host, port))
                        .await
                        .map_err(|e| OpError::Failed(format!("routing {domain}: {e}")))?;
                }
                "live"
            }
            InstanceAction::Remove => {
                if i.status == "live"
                    && let Some(p) = &proxy
                {
                    match p.find_route(&domain).await {
                        Ok(Some(r)) => p
                            .remove_route(r.id)
                            .await
                            .map_err(|e| OpError::Failed(format!("removing the route: {e}")))?,
                        Ok(None) => {}
                        Err(e) => {
                            return Err(OpError::Failed(format!("looking up the route: {e}")));
                        }
                    }
                }
                match self.engine.remove(&cid).await {
                    Ok(()) | Err(berth_domain::ports::EngineError::NotFound(_)) => {}
                    Err(e) => return Err(OpError::Failed(format!("removing the container: {e}"))),
                }
                "removed"
            }
        };
        self.store
            .set_instance(&i.id, new_status, None, None)
            .await?;
        let line = format!(
            "{actor} {} {} ({} in {project}/{stage})",
            action.past(),
            i.container_name,
            i.tag
        );
        tracing::info!(instance.id = %i.id, "{line}");
        self.emit_instance(&ctx, &i, action.past(), line);
        Ok(InstanceRecord {
            status: new_status.to_string(),
            ..i
        })
    }

    /// Removes every container and route of a stage, so it (or its project) can be deleted.
    /// Refused while a deploy of the stage is queued or running.
    pub async fn retire_stage(
        &self,
        project: &str,
        stage: &str,
        actor: &str,
    ) -> Result<usize, OpError> {
        let (ctx, stage_id) = self.stage_ctx(project, stage).await?;
        let lock = self.lock_for(stage_id);
        let _stage = lock.lock().await;
        if self
            .store
            .unfinished_deploys()
            .await?
            .iter()
            .any(|d| d.stage_id == stage_id)
        {
            return Err(OpError::Conflict(format!(
                "a deploy of {project}/{stage} is queued or running; wait for it to finish"
            )));
        }
        let proxy = self.proxy_for(&ctx);
        let mut removed = 0;
        for i in self.store.stage_instances(stage_id).await? {
            if i.status == "live"
                && let Some(p) = &proxy
            {
                let domain = Self::instance_domain(&ctx, &i);
                match p.find_route(&domain).await {
                    Ok(Some(r)) => {
                        p.remove_route(r.id).await.map_err(|e| {
                            OpError::Failed(format!("removing the route of {domain}: {e}"))
                        })?;
                    }
                    Ok(None) => {}
                    Err(e) => return Err(OpError::Failed(format!("looking up {domain}: {e}"))),
                }
            }
            if let Some(cid) = &i.container_id {
                match self.engine.remove(cid).await {
                    Ok(()) | Err(berth_domain::ports::EngineError::NotFound(_)) => {}
                    Err(e) => {
                        return Err(OpError::Failed(format!(
                            "removing {}: {e}",
                            i.container_name
                        )));
                    }
                }
            }
            self.store
                .set_instance(&i.id, "removed", None, None)
                .await?;
            self.emit_instance(
                &ctx,
                &i,
                "removed",
                format!("{actor} retired {project}/{stage}"),
            );
            removed += 1;
        }
        Ok(removed)
    }

    /// Creates a project for an image berth has none for, from what the image declares
    /// (see [`ProjectSpec::from_image`]): pulls it (with a stored registry's credentials when
    /// one names its host), inspects it, picks a free name from the repository's last part.
    pub async fn create_from_image(&self, image: &ImageRef) -> Result<ProjectSpec, OpError> {
        let _one_at_a_time = self.create_lock.lock().await;
        // Another webhook for the same image may have created it while this one waited.
        if let Some(existing) = self
            .store
            .list_projects()
            .await?
            .into_iter()
            .find(|p| p.image == image.name())
            && let Some(p) = self.store.project(&existing.name).await?
        {
            return Ok(p);
        }
        let auth = self.store.registry_auth_for_host(&image.registry).await?;
        let reference = image.to_string();
        self.engine
            .pull(&reference, auth.as_ref(), &|_| {})
            .await
            .map_err(|e| OpError::Failed(format!("pulling {reference}: {e}")))?;
        let info = self
            .engine
            .image_info(&reference)
            .await
            .map_err(|e| OpError::Failed(format!("inspecting {reference}: {e}")))?;
        let base = dns_label(image.short_name());
        for n in 1..=20 {
            let candidate = if n == 1 {
                base.clone()
            } else {
                dns_label(&format!("{base}-{n}"))
            };
            let Ok(name) = ProjectName::parse(&candidate) else {
                break;
            };
            if self.store.project(name.as_str()).await?.is_some() {
                continue;
            }
            let spec = ProjectSpec::from_image(name, image, &info).ok_or_else(|| {
                OpError::Conflict(format!(
                    "{} declares no port (EXPOSE or a berth.port label): create its project by hand",
                    image.name()
                ))
            })?;
            self.store.create_project(&spec).await?;
            return Ok(spec);
        }
        Err(OpError::Conflict(format!(
            "no free project name for {}: create its project by hand",
            image.name()
        )))
    }

    /// Makes every live instance's route point where the instance is now: after a host
    /// reboot published ports change, and an NPM restored from an old backup may have lost
    /// hosts. Returns how many routes were (re)made. Stops at the first proxy error (NPM
    /// unreachable), logging it: serving continues as it was.
    pub async fn check_routes(&self) -> usize {
        let Ok(projects) = self.store.list_projects().await else {
            return 0;
        };
        let mut fixed = 0;
        for p in projects {
            for s in &p.stages {
                let Ok((ctx, stage_id)) = self.stage_ctx(&p.name, &s.name).await else {
                    continue;
                };
                let Some(proxy) = self.proxy_for(&ctx) else {
                    return fixed; // no proxy configured: nothing to check
                };
                let lock = self.lock_for(stage_id);
                let _stage = lock.lock().await;
                let live: Vec<_> = self
                    .store
                    .stage_instances(stage_id)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|i| i.status == "live")
                    .take(ctx.stage.max_instances.max(1) as usize)
                    .collect();
                for i in live {
                    let Some(cid) = &i.container_id else { continue };
                    let Ok((host, port, _)) = self.upstream(&ctx, cid, &i.container_name).await
                    else {
                        continue;
                    };
                    let domain = Self::instance_domain(&ctx, &i);
                    let current = match proxy.find_route(&domain).await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not check routes");
                            return fixed;
                        }
                    };
                    if current.as_ref().is_some_and(|r| {
                        r.enabled && r.forward_host == host && r.forward_port == port
                    }) {
                        continue;
                    }
                    match proxy
                        .ensure_route(&Self::route_spec(&ctx, domain.clone(), host, port))
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(domain = %domain, instance.id = %i.id, "routed {domain} to its live instance again");
                            fixed += 1;
                        }
                        Err(e) => {
                            tracing::warn!(domain = %domain, error = %e, "could not route a live instance");
                            return fixed;
                        }
                    }
                }
            }
        }
        fixed
    }
}
