//! `GET /api/overview`: what the dashboard shows in one call. Every project with its stages;
//! per stage the instances counted by health (read from the engine, not only from berth's
//! records, so a container that died or turned unhealthy shows as failing) and the latest
//! deploy.

use crate::AppState;
use crate::error::{ApiResult, Json};
use axum::extract::State;
use berth_domain::plan::{fqdn, instance_host};
use berth_domain::ports::ContainerSummary;
use berth_store::{DeployRecord, InstanceRecord};
use serde::Serialize;
use std::collections::HashMap;

/// Instances of a stage by health.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub healthy: u32,
    pub starting: u32,
    pub failing: u32,
    pub stopped: u32,
    /// Stopped releases kept for rollback.
    pub kept: u32,
}

/// A live (or starting) instance as the dashboard lists it.
#[derive(Debug, Serialize)]
pub struct LiveInstance {
    pub id: String,
    pub tag: String,
    pub digest: Option<String>,
    pub subdomain: String,
    /// The host it is served at (`<subdomain>.<domain>`).
    pub host: String,
    /// healthy, starting or failing.
    pub health: &'static str,
    /// What the engine says (e.g. "Up 5 minutes (healthy)"), when it knows the container.
    pub engine_status: Option<String>,
    pub since: String,
}

#[derive(Debug, Serialize)]
pub struct StageOverview {
    pub name: String,
    pub tag_pattern: String,
    pub counts: Counts,
    pub live: Vec<LiveInstance>,
    pub latest_deploy: Option<DeployRecord>,
}

#[derive(Debug, Serialize)]
pub struct ProjectOverview {
    pub name: String,
    pub image: String,
    pub stages: Vec<StageOverview>,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub projects: Vec<ProjectOverview>,
    /// Set when the engine could not be asked: health is then berth's last record only.
    pub engine_error: Option<String>,
}

/// The health of a live or starting instance, from its container as the engine lists it.
pub fn health_of(i: &InstanceRecord, c: Option<&ContainerSummary>) -> &'static str {
    if i.status == "starting" {
        return "starting";
    }
    let Some(c) = c else {
        return "failing";
    };
    if c.state != "running" || c.status.contains("(unhealthy)") {
        "failing"
    } else if c.status.contains("(health: starting)") {
        "starting"
    } else {
        "healthy"
    }
}

pub async fn get(State(st): State<AppState>) -> ApiResult<Json<Overview>> {
    let (containers, engine_error) = match st.engine.list_managed().await {
        Ok(cs) => (Some(cs), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let by_id: HashMap<&str, &ContainerSummary> = containers
        .iter()
        .flatten()
        .map(|c| (c.id.as_str(), c))
        .collect();
    let global = st.store.global_settings().await?;
    let mut projects = Vec::new();
    for p in st.store.list_projects().await? {
        let spec = st.store.project(&p.name).await?;
        let mut stages = Vec::new();
        for s in &p.stages {
            let stage_spec = spec
                .as_ref()
                .and_then(|sp| sp.stages.iter().find(|x| x.name.as_str() == s.name));
            let Some((_, sid)) = st.store.stage_ids(&p.name, &s.name).await? else {
                continue;
            };
            let mut counts = Counts::default();
            let mut live = Vec::new();
            for i in st.store.stage_instances(sid).await? {
                match i.status.as_str() {
                    "live" | "starting" => {
                        let c = i
                            .container_id
                            .as_deref()
                            .and_then(|id| by_id.get(id).copied());
                        let health = match (&containers, c) {
                            // Without the engine, trust the record.
                            (None, _) if i.status == "live" => "healthy",
                            _ => health_of(&i, c),
                        };
                        match health {
                            "healthy" => counts.healthy += 1,
                            "starting" => counts.starting += 1,
                            _ => counts.failing += 1,
                        }
                        let host = match (&spec, stage_spec) {
                            (Some(sp), Some(ss)) => instance_host(sp, ss, &global, &i.subdomain),
                            _ => fqdn(&i.subdomain, &global),
                        };
                        live.push(LiveInstance {
                            host,
                            engine_status: c.map(|c| c.status.clone()),
                            id: i.id,
                            tag: i.tag,
                            digest: i.digest,
                            subdomain: i.subdomain,
                            health,
                            since: i.created_at,
                        });
                    }
                    "stopped" => counts.stopped += 1,
                    "kept" => counts.kept += 1,
                    _ => {}
                }
            }
            stages.push(StageOverview {
                name: s.name.clone(),
                tag_pattern: s.tag_pattern.clone(),
                counts,
                live,
                latest_deploy: st.store.last_deploy(sid).await?,
            });
        }
        projects.push(ProjectOverview {
            name: p.name,
            image: p.image,
            stages,
        });
    }
    Ok(Json(Overview {
        projects,
        engine_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn instance(status: &str) -> InstanceRecord {
        InstanceRecord {
            id: "i".into(),
            project_id: 1,
            stage_id: 1,
            deploy_id: None,
            container_id: Some("c".into()),
            container_name: "n".into(),
            tag: "v1".into(),
            digest: None,
            subdomain: "s".into(),
            status: status.into(),
            route_id: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn container(state: &str, status: &str) -> ContainerSummary {
        ContainerSummary {
            id: "c".into(),
            name: "n".into(),
            image: "i".into(),
            state: state.into(),
            status: status.into(),
            created: 0,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn health_reads_the_engine_not_only_the_record() {
        let live = instance("live");
        let c = |s, t| container(s, t);
        assert_eq!(
            health_of(&live, Some(&c("running", "Up 2 minutes"))),
            "healthy"
        );
        assert_eq!(
            health_of(&live, Some(&c("running", "Up 2 minutes (healthy)"))),
            "healthy"
        );
        assert_eq!(
            health_of(
                &live,
                Some(&c("running", "Up 3 seconds (health: starting)"))
            ),
            "starting"
        );
        assert_eq!(
            health_of(&live, Some(&c("running", "Up 9 minutes (unhealthy)"))),
            "failing"
        );
        assert_eq!(
            health_of(&live, Some(&c("exited", "Exited (1) 4 seconds ago"))),
            "failing"
        );
        assert_eq!(
            health_of(&live, None),
            "failing",
            "a live record without a container"
        );
        assert_eq!(health_of(&instance("starting"), None), "starting");
    }
}
