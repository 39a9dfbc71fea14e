//! The registry poller: for every project with a stage that deploys automatically, list the
//! repository's tags, take the newest one each stage's pattern matches (by version when tags
//! are versions, else by image creation time), and hand it to the deployer when it is new
//! or when its tag was re-pushed with another digest. Never queues a digest already live, or
//! the same tag and digest as the stage's last deploy (in flight, done, or failed: a failed
//! image is not retried every interval). Registry errors back off exponentially; the status
//! is recorded per project (`poll_status`) for the API and the UI.

use crate::{DeployRequest, Deployer};
use berth_domain::ImageRef;
use berth_domain::deploy::Trigger;
use berth_domain::ports::{ImageRegistry, RegistryAuth};
use berth_store::{PollStatus, Store};
use chrono::{SecondsFormat, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// At most this many non-version tags are inspected to order them by creation time.
const MAX_INSPECTED: usize = 50;
/// The longest wait after failures.
const MAX_BACKOFF_SECS: u64 = 3600;

pub struct Poller {
    deployer: Arc<Deployer>,
    store: Store,
    registry: Arc<dyn ImageRegistry>,
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Poller {
    pub fn new(deployer: Arc<Deployer>, store: Store, registry: Arc<dyn ImageRegistry>) -> Self {
        Self {
            deployer,
            store,
            registry,
        }
    }

    /// Polls every project when it is due, until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            let Ok(projects) = self.store.list_projects().await else {
                continue;
            };
            let now = rfc3339(Utc::now());
            let global_interval = self
                .store
                .global_settings()
                .await
                .map(|g| g.poll_interval_secs)
                .unwrap_or(0);
            for p in projects {
                // The cheap check first: most projects are not due on most ticks.
                let due = match self.store.poll_status(&p.name).await {
                    Ok(Some(s)) => s.next_check <= now,
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !due || cancel.is_cancelled() {
                    continue;
                }
                // 0 turns polling off, globally or for one project.
                let interval = match self.store.project(&p.name).await {
                    Ok(Some(spec)) => spec.poll_interval_secs.unwrap_or(global_interval),
                    _ => 0,
                };
                if interval != 0 {
                    let _ = self.poll(&p.name).await;
                }
            }
        }
    }

    /// Looks at one project now; returns the deploys it queued, or the registry's error
    /// (recorded, with the next look backed off).
    pub async fn poll(&self, project: &str) -> Result<Vec<String>, String> {
        let global = self
            .store
            .global_settings()
            .await
            .map_err(|e| e.to_string())?;
        let previous = self.store.poll_status(project).await.ok().flatten();
        let interval = self
            .store
            .project(project)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.poll_interval_secs)
            .unwrap_or(global.poll_interval_secs);
        let outcome = self.look(project).await;
        let now = Utc::now();
        let status = match &outcome {
            Ok(_) => PollStatus {
                last_checked: Some(rfc3339(now)),
                last_error: None,
                failures: 0,
                next_check: rfc3339(now + chrono::Duration::seconds(interval as i64)),
            },
            Err(e) => {
                let failures = previous.map(|p| p.failures).unwrap_or(0) + 1;
                let wait = interval
                    .saturating_mul(1 << failures.min(16))
                    .min(MAX_BACKOFF_SECS.max(interval));
                tracing::warn!(project, error = %e, failures, retry.secs = wait, "polling the registry failed");
                PollStatus {
                    last_checked: Some(rfc3339(now)),
                    last_error: Some(e.clone()),
                    failures,
                    next_check: rfc3339(now + chrono::Duration::seconds(wait as i64)),
                }
            }
        };
        let _ = self.store.set_poll_status(project, &status).await;
        outcome
    }

    async fn look(&self, project: &str) -> Result<Vec<String>, String> {
        let (spec, registry) = self
            .store
            .project_for_deploy(project)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the project was deleted")?;
        let stages: Vec<_> = spec
            .stages
            .iter()
            .filter(|s| s.auto_deploy && s.promote_from.is_none() && !s.confirm)
            .collect();
        if stages.is_empty() {
            return Ok(vec![]);
        }
        let auth = match registry.and_then(|r| r.auth_for(&spec.image.registry)) {
            Some(a) => Some(a),
            None => self
                .store
                .registry_auth_for_host(&spec.image.registry)
                .await
                .map_err(|e| e.to_string())?,
        };
        let tags = self.registry.tags(&spec.image, auth.as_ref()).await?;
        let mut queued = Vec::new();
        for stage in stages {
            let matching: Vec<String> = tags
                .iter()
                .filter(|t| stage.tag_pattern.matches(t))
                .cloned()
                .collect();
            let Some(newest) = self.newest(&spec.image, matching, auth.as_ref()).await? else {
                continue;
            };
            let digest = self
                .registry
                .digest(&spec.image.with_tag(&newest), auth.as_ref())
                .await?;
            let Some((_, stage_id)) = self
                .store
                .stage_ids(project, stage.name.as_str())
                .await
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            let live = self
                .store
                .stage_instances(stage_id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .any(|i| i.status == "live" && i.digest.as_deref() == Some(digest.as_str()));
            if live {
                continue;
            }
            if let Some(last) = self
                .store
                .last_deploy(stage_id)
                .await
                .map_err(|e| e.to_string())?
                && last.tag == newest
                && last.digest.as_deref() == Some(digest.as_str())
            {
                continue;
            }
            let id = self
                .deployer
                .submit(DeployRequest {
                    project: project.to_string(),
                    stage: stage.name.to_string(),
                    tag: newest.clone(),
                    trigger: Trigger::Poll,
                    actor: "poller".into(),
                    digest: Some(digest),
                    confirmed: false,
                })
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(project, stage = %stage.name, tag = %newest, deploy.id = %id, "the poller found a new image");
            queued.push(id);
        }
        Ok(queued)
    }

    /// The newest of `tags`: by version when they all read as versions, else by the image's
    /// creation time (the last [`MAX_INSPECTED`] the registry lists).
    async fn newest(
        &self,
        image: &ImageRef,
        mut tags: Vec<String>,
        auth: Option<&RegistryAuth>,
    ) -> Result<Option<String>, String> {
        if tags.is_empty() {
            return Ok(None);
        }
        if tags.iter().all(|t| berth_domain::tags::is_version(t)) {
            berth_domain::tags::newest_first(&mut tags);
            return Ok(tags.into_iter().next());
        }
        let mut dated = Vec::new();
        for t in tags.iter().rev().take(MAX_INSPECTED) {
            let r = self.registry.inspect(&image.with_tag(t), auth).await?;
            dated.push((r.created.unwrap_or_default(), t.clone()));
        }
        dated.sort();
        Ok(dated.pop().map(|(_, t)| t))
    }
}
