//! Projects and stages: list, read, create, replace, delete; and what an operator does to one
//! instance (stop, start, restart, remove).
//!
//! A project travels in the seed's shape (`projects.<name>` of seed.example.yaml, as JSON,
//! plus `name`), validated by the same code as a seed file, so the API, the seed and
//! `berth export` never disagree. Secret env values are write-only: they read back as
//! `{"secret": true}`, and sending that back keeps the stored value. Changing a project
//! changes what the next deploy starts; running containers are left as they are.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use berth_config::seed::{project_from_json, project_to_json};
use berth_deployer::{InstanceAction, OpError};
use berth_domain::model::ProjectSpec;
use berth_store::{InstanceRecord, ProjectSummary};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound(m) => ApiError::NotFound(m),
            OpError::Conflict(m) => ApiError::Conflict(m),
            OpError::Failed(m) => ApiError::BadGateway(m),
            OpError::Store(s) => s.into(),
        }
    }
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Vec<ProjectSummary>>> {
    Ok(Json(st.store.list_projects().await?))
}

/// A project with its instances per stage.
#[derive(Serialize)]
pub struct ProjectDetail {
    project: Value,
    instances: BTreeMap<String, Vec<InstanceRecord>>,
    /// The host each instance is (or would be) served at, by instance id.
    hosts: BTreeMap<String, String>,
    /// The registry poller's last look at the project (null before the first).
    source: Option<berth_store::PollStatus>,
    /// Stages that have a webhook of their own (its secret is never shown again).
    stage_webhooks: Vec<String>,
}

async fn detail(st: &AppState, name: &str) -> ApiResult<ProjectDetail> {
    let p = load(st, name).await?;
    let global = st.store.global_settings().await?;
    let mut instances = BTreeMap::new();
    let mut hosts = BTreeMap::new();
    for s in &p.stages {
        if let Some((_, sid)) = st.store.stage_ids(name, s.name.as_str()).await? {
            let list = st.store.stage_instances(sid).await?;
            for i in &list {
                hosts.insert(
                    i.id.clone(),
                    berth_domain::plan::instance_host(&p, s, &global, &i.subdomain),
                );
            }
            instances.insert(s.name.to_string(), list);
        }
    }
    Ok(ProjectDetail {
        project: project_to_json(&p),
        instances,
        hosts,
        source: st.store.poll_status(name).await?,
        stage_webhooks: st.store.stages_with_webhooks(name).await?,
    })
}

async fn load(st: &AppState, name: &str) -> ApiResult<ProjectSpec> {
    st.store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {name}")))
}

/// Validates a project body; errors name the field.
async fn parse(st: &AppState, body: Value) -> ApiResult<ProjectSpec> {
    let names = st.store.registry_names().await?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    project_from_json(body, &names)
        .map_err(|e| ApiError::BadRequest(format!("{}: {}", e.field, e.message)))
}

pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProjectDetail>> {
    Ok(Json(detail(&st, &name).await?))
}

/// `POST /api/projects`: creates a project (`201` with its detail).
pub async fn create(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<ProjectDetail>)> {
    let p = parse(&st, body).await?;
    st.store.create_project(&p).await?;
    st.store
        .audit(
            &me.user.username,
            "project.created",
            Some(p.name.as_str()),
            Some(&addr),
            None,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&st, p.name.as_str()).await?),
    ))
}

/// Sets the body's `name` from the path, refusing a different one (renames are not edits).
fn with_name(mut body: Value, name: &str, what: &str) -> ApiResult<Value> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(format!(
            "(body): {what} is a JSON object"
        )));
    };
    match map.get("name") {
        None => {
            map.insert("name".into(), name.into());
        }
        Some(Value::String(n)) if n == name => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "name: {other} differs from {name:?} in the path; names cannot be changed"
            )));
        }
    }
    Ok(body)
}

/// `PUT /api/projects/{project}`: replaces the configuration (stages matched by name).
pub async fn update(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<ProjectDetail>> {
    load(&st, &name).await?;
    let p = parse(&st, with_name(body, &name, "a project")?).await?;
    st.store.update_project(&p).await?;
    st.store
        .audit(
            &me.user.username,
            "project.updated",
            Some(&name),
            Some(&addr),
            None,
        )
        .await?;
    Ok(Json(detail(&st, &name).await?))
}

#[derive(Serialize)]
pub struct Removed {
    removed_instances: usize,
}

/// `DELETE /api/projects/{project}`: removes its containers and routes, then its records.
pub async fn delete(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(name): Path<String>,
) -> ApiResult<Json<Removed>> {
    let p = load(&st, &name).await?;
    let mut removed = 0;
    for s in &p.stages {
        removed += st
            .deployer
            .retire_stage(&name, s.name.as_str(), &me.user.username)
            .await?;
    }
    st.store.delete_project(&name).await?;
    st.store
        .audit(
            &me.user.username,
            "project.deleted",
            Some(&name),
            Some(&addr),
            Some(serde_json::json!({"removed_instances": removed})),
        )
        .await?;
    Ok(Json(Removed {
        removed_instances: removed,
    }))
}

/// The project as JSON with one stage set (or removed, with `None`), validated whole.
async fn with_stage(
    st: &AppState,
    project: &str,
    stage: &str,
    body: Option<Value>,
) -> ApiResult<ProjectSpec> {
    let mut json = project_to_json(&load(st, project).await?);
    let stages = json["stages"]
        .as_object_mut()
        .expect("a project's stages are an object");
    match body {
        Some(b) => {
            stages.insert(stage.to_string(), b);
        }
        None => {
            stages.remove(stage);
        }
    }
    // Errors name the field inside the project (`stages.qa.tag_pattern`): say so plainly.
    parse(st, json).await
}

fn stage_body(mut body: Value, path_name: Option<&str>) -> ApiResult<(String, Value)> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "(body): a stage is a JSON object".into(),
        ));
    };
    let name = match (map.remove("name"), path_name) {
        (Some(Value::String(n)), Some(p)) if n != p => {
            return Err(ApiError::BadRequest(format!(
                "name: {n:?} differs from {p:?} in the path; names cannot be changed"
            )));
        }
        (Some(Value::String(n)), _) => n,
        (None, Some(p)) => p.to_string(),
        (Some(other), _) => {
            return Err(ApiError::BadRequest(format!(
                "name: {other} is not a string"
            )));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "name: required: the stage's name".into(),
            ));
        }
    };
    berth_domain::StageName::parse(&name)
        .map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
    Ok((name, body))
}

/// `POST /api/projects/{project}/stages`: adds a stage (`{"name": …, "tag_pattern": …}`).
pub async fn add_stage(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<ProjectDetail>)> {
    let (stage, body) = stage_body(body, None)?;
    if st.store.stage_ids(&project, &stage).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "project {project} already has a stage {stage}"
        )));
    }
    let p = with_stage(&st, &project, &stage, Some(body)).await?;
    st.store.update_project(&p).await?;
    st.store
        .audit(
            &me.user.username,
            "stage.created",
            Some(&format!("{project}/{stage}")),
            Some(&addr),
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(detail(&st, &project).await?)))
}

/// `PUT /api/projects/{project}/stages/{stage}`: replaces one stage's configuration.
pub async fn update_stage(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<ProjectDetail>> {
    if st.store.stage_ids(&project, &stage).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "project {project} has no stage {stage}"
        )));
    }
    let (_, body) = stage_body(body, Some(&stage))?;
    let p = with_stage(&st, &project, &stage, Some(body)).await?;
    st.store.update_project(&p).await?;
    st.store
        .audit(
            &me.user.username,
            "stage.updated",
            Some(&format!("{project}/{stage}")),
            Some(&addr),
            None,
        )
        .await?;
    Ok(Json(detail(&st, &project).await?))
}

/// `DELETE /api/projects/{project}/stages/{stage}`: removes its containers and routes, then
/// the stage. The last stage of a project cannot go (delete the project instead), nor one
/// another stage promotes from.
pub async fn delete_stage(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<Json<Removed>> {
    if st.store.stage_ids(&project, &stage).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "project {project} has no stage {stage}"
        )));
    }
    // Validate the project without the stage before touching any container.
    let p = with_stage(&st, &project, &stage, None)
        .await
        .map_err(|e| match e {
            ApiError::BadRequest(m) => {
                ApiError::Conflict(format!("cannot delete stage {stage}: {m}"))
            }
            other => other,
        })?;
    let removed = st
        .deployer
        .retire_stage(&project, &stage, &me.user.username)
        .await?;
    st.store.update_project(&p).await?;
    st.store
        .audit(
            &me.user.username,
            "stage.deleted",
            Some(&format!("{project}/{stage}")),
            Some(&addr),
            Some(serde_json::json!({"removed_instances": removed})),
        )
        .await?;
    Ok(Json(Removed {
        removed_instances: removed,
    }))
}

async fn act(
    st: AppState,
    me: CurrentUser,
    addr: String,
    (project, stage, instance): (String, String, String),
    action: InstanceAction,
) -> ApiResult<Json<InstanceRecord>> {
    let r = st
        .deployer
        .instance_action(&project, &stage, &instance, action, &me.user.username)
        .await?;
    st.store
        .audit(
            &me.user.username,
            &format!("instance.{}", format!("{action:?}").to_lowercase()),
            Some(&format!("{project}/{stage}/{instance}")),
            Some(&addr),
            None,
        )
        .await?;
    Ok(Json(r))
}

type InstancePath = Path<(String, String, String)>;

pub async fn stop(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(p): InstancePath,
) -> ApiResult<Json<InstanceRecord>> {
    act(st, me, addr, p, InstanceAction::Stop).await
}

pub async fn start(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(p): InstancePath,
) -> ApiResult<Json<InstanceRecord>> {
    act(st, me, addr, p, InstanceAction::Start).await
}

pub async fn restart(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(p): InstancePath,
) -> ApiResult<Json<InstanceRecord>> {
    act(st, me, addr, p, InstanceAction::Restart).await
}

pub async fn remove(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path(p): InstancePath,
) -> ApiResult<Json<InstanceRecord>> {
    act(st, me, addr, p, InstanceAction::Remove).await
}
