//! Deploys: the secret webhook, manual deploys, history with steps and logs, instances.

use crate::AppState;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use berth_deployer::{DeployRequest, SubmitError};
use berth_domain::ImageRef;
use berth_domain::deploy::Trigger;
use berth_store::{DeployRecord, InstanceRecord, LogLine, StepRecord};
use serde::{Deserialize, Serialize};

pub(crate) fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::UnknownProject(_) | SubmitError::UnknownStage(..) => {
            ApiError::NotFound(e.to_string())
        }
        SubmitError::NeedsConfirmation(_) | SubmitError::NotInSource { .. } => {
            ApiError::Conflict(e.to_string())
        }
        SubmitError::TagMismatch { .. } | SubmitError::BadTag(_) => {
            ApiError::BadRequest(e.to_string())
        }
        SubmitError::Store(s) => s.into(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// The image that was pushed, with its tag: `registry/org/app:tag`.
    image: String,
}

#[derive(Serialize)]
pub struct Queued {
    stage: String,
    deploy: String,
}

#[derive(Serialize)]
pub struct Skipped {
    stage: String,
    reason: String,
}

#[derive(Serialize)]
pub struct WebhookAnswer {
    project: String,
    /// The project was just created from the image (its repository is allow-listed).
    created: bool,
    tag: String,
    deploys: Vec<Queued>,
    skipped: Vec<Skipped>,
}

impl WebhookAnswer {
    /// The deploys it queued.
    pub fn deploy_ids(&self) -> Vec<String> {
        self.deploys.iter().map(|q| q.deploy.clone()).collect()
    }
}

/// `POST /api/webhook/{secret}` with `{"image": "registry/org/app:tag"}`.
pub async fn webhook(
    State(st): State<AppState>,
    Path(secret): Path<String>,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<WebhookBody>,
) -> ApiResult<(StatusCode, Json<WebhookAnswer>)> {
    let expected = st.store.webhook_secret().await?;
    let only = if berth_crypto::constant_time_eq(secret.as_bytes(), expected.as_bytes()) {
        None
    } else {
        // A stage's own secret: found by its hash, so the lookup reveals nothing by timing.
        match st
            .store
            .stage_for_webhook(&berth_auth::hash_token(&secret))
            .await?
        {
            Some(stage) => Some(stage),
            None => return Err(ApiError::NotFound("no webhook has this secret".into())),
        }
    };
    let image = ImageRef::parse(&body.image).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let answer = match &only {
        None => dispatch(&st, &image, None, "webhook", &addr).await?,
        Some((project, stage)) => {
            let actor = format!("webhook:{project}/{stage}");
            dispatch_to_stage(&st, &image, project, stage, &actor, &addr).await?
        }
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// A stage's id, or a 404 naming the project and stage.
async fn stage_id(st: &AppState, project: &str, stage: &str) -> ApiResult<i64> {
    st.store
        .stage_ids(project, stage)
        .await?
        .map(|(_, sid)| sid)
        .ok_or_else(|| ApiError::NotFound(format!("project {project} has no stage {stage}")))
}

/// Audits a webhook delivery berth refused, with the reason.
async fn rejected(
    st: &AppState,
    actor: &str,
    image: &ImageRef,
    addr: &str,
    reason: &str,
) -> ApiResult<()> {
    st.store
        .audit(
            actor,
            "webhook.rejected",
            Some(&image.to_string()),
            Some(addr),
            Some(serde_json::json!({ "reason": reason })),
        )
        .await?;
    Ok(())
}

/// A stage webhook: the image must be the stage's project's, and only that stage deploys.
async fn dispatch_to_stage(
    st: &AppState,
    image: &ImageRef,
    project: &str,
    stage: &str,
    actor: &str,
    addr: &str,
) -> ApiResult<WebhookAnswer> {
    let p = st
        .store
        .project(project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {project}")))?;
    if p.image.name() != image.name() {
        rejected(st, actor, image, addr, "image of another project").await?;
        return Err(ApiError::Forbidden(format!(
            "this webhook deploys only {project}/{stage}, whose image is {}; it cannot deploy {}",
            p.image.name(),
            image.name()
        )));
    }
    dispatch_stages(st, p, false, image, None, Some(stage), actor, addr).await
}

/// The digest of a stage's newest live instance.
async fn live_digest(st: &AppState, project: &str, stage: &str) -> ApiResult<Option<String>> {
    let Some((_, sid)) = st.store.stage_ids(project, stage).await? else {
        return Ok(None);
    };
    Ok(st
        .store
        .stage_instances(sid)
        .await?
        .into_iter()
        .find(|i| i.status == "live")
        .and_then(|i| i.digest))
}

/// What an "image pushed" means: the project for its repository (created from the image
/// when the allow-list permits), and a deploy for every stage whose pattern matches and that
/// deploys automatically. A digest already live in a stage is not deployed again. The
/// generic webhook and the webhook gateway share it; `actor` names the source.
pub async fn dispatch(
    st: &AppState,
    image: &ImageRef,
    digest: Option<&str>,
    actor: &str,
    addr: &str,
) -> ApiResult<WebhookAnswer> {
    if image.tag.is_none() {
        return Err(ApiError::BadRequest(format!("image {image} names no tag")));
    }
    // The project for this repository: the summary list is cheap, then one project.
    let known = match st
        .store
        .list_projects()
        .await?
        .into_iter()
        .find(|p| p.image == image.name())
    {
        Some(summary) => st.store.project(&summary.name).await?,
        None => None,
    };
    let mut created = false;
    let project = match known {
        Some(p) => p,
        None if st
            .store
            .global_settings()
            .await?
            .allows_image(&image.name()) =>
        {
            // Allow-listed: make the project from what the image declares.
            match st.deployer.create_from_image(image).await {
                Ok(p) => {
                    created = true;
                    st.store
                        .audit(
                            actor,
                            "project.created_from_image",
                            Some(p.name.as_str()),
                            Some(addr),
                            Some(serde_json::json!({"image": image.to_string(), "port": p.port})),
                        )
                        .await?;
                    p
                }
                Err(e) => {
                    rejected(st, actor, image, addr, &e.to_string()).await?;
                    return Err(e.into());
                }
            }
        }
        None => {
            rejected(st, actor, image, addr, "no project for this image").await?;
            return Err(ApiError::NotFound(format!(
                "no project deploys {}; add one (or allow-list it) first",
                image.name()
            )));
        }
    };
    dispatch_stages(st, project, created, image, digest, None, actor, addr).await
}

/// Deploys `image` to the project's stages (or only the stage named `only`) under the
/// webhook rules: tag pattern, auto-deploy, no promotion or confirmation, not already live.
#[allow(clippy::too_many_arguments)]
async fn dispatch_stages(
    st: &AppState,
    project: berth_domain::model::ProjectSpec,
    created: bool,
    image: &ImageRef,
    digest: Option<&str>,
    only: Option<&str>,
    actor: &str,
    addr: &str,
) -> ApiResult<WebhookAnswer> {
    let tag = image
        .tag
        .clone()
        .ok_or_else(|| ApiError::BadRequest(format!("image {image} names no tag")))?;
    let mut answer = WebhookAnswer {
        project: project.name.to_string(),
        created,
        tag: tag.clone(),
        deploys: vec![],
        skipped: vec![],
    };
    for stage in &project.stages {
        let name = stage.name.to_string();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if !stage.tag_pattern.matches(&tag) {
            answer.skipped.push(Skipped {
                stage: name,
                reason: format!("tag does not match {}", stage.tag_pattern),
            });
        } else if !stage.auto_deploy {
            answer.skipped.push(Skipped {
                stage: name,
                reason: "auto_deploy is off: deploy it from the dashboard".into(),
            });
        } else if stage.promote_from.is_some() || stage.confirm {
            answer.skipped.push(Skipped {
                stage: name,
                reason: "this stage deploys only by promotion or with confirmation".into(),
            });
        } else if let Some(dg) = digest
            && live_digest(st, project.name.as_str(), &name)
                .await?
                .as_deref()
                == Some(dg)
        {
            answer.skipped.push(Skipped {
                stage: name,
                reason: format!("{dg} is already live"),
            });
        } else {
            let req = DeployRequest {
                project: project.name.to_string(),
                stage: name.clone(),
                tag: tag.clone(),
                trigger: Trigger::Webhook,
                actor: actor.into(),
                digest: None,
                confirmed: false,
            };
            let id = st.deployer.submit(req).await.map_err(submit_error)?;
            answer.deploys.push(Queued {
                stage: name,
                deploy: id,
            });
        }
    }
    st.store
        .audit(
            actor,
            "webhook.accepted",
            Some(&image.to_string()),
            Some(addr),
            Some(serde_json::json!({"deploys": answer.deploys.len()})),
        )
        .await?;
    Ok(answer)
}

#[derive(Serialize)]
pub struct WebhookUrl {
    /// The path to POST to (prefix it with berth's public URL).
    path: String,
}

pub async fn webhook_url(State(st): State<AppState>) -> ApiResult<Json<WebhookUrl>> {
    Ok(Json(WebhookUrl {
        path: format!("/api/webhook/{}", st.store.webhook_secret().await?),
    }))
}

pub async fn regenerate_webhook(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
) -> ApiResult<Json<WebhookUrl>> {
    let s = st.store.regenerate_webhook_secret().await?;
    st.store
        .audit(
            &me.user.username,
            "webhook.regenerated",
            None,
            Some(&addr),
            None,
        )
        .await?;
    Ok(Json(WebhookUrl {
        path: format!("/api/webhook/{s}"),
    }))
}

#[derive(Serialize)]
pub struct StageWebhook {
    /// The path to POST `{"image": …}` to (prefix it with berth's public URL). Shown once:
    /// berth keeps only a hash of the secret in it.
    path: String,
}

/// `POST /api/projects/{project}/stages/{stage}/webhook`: a new secret for the stage; any
/// earlier one stops working.
pub async fn stage_webhook_create(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<StageWebhook>)> {
    let sid = stage_id(&st, &project, &stage).await?;
    let secret = berth_auth::SessionSecret::generate("wh_");
    st.store
        .set_stage_webhook(sid, &secret.hash, &me.user.username)
        .await?;
    st.store
        .audit(
            &me.user.username,
            "webhook.stage_created",
            Some(&format!("{project}/{stage}")),
            Some(&addr),
            None,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(StageWebhook {
            path: format!("/api/webhook/{}", secret.secret.expose()),
        }),
    ))
}

pub async fn stage_webhook_delete(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let sid = stage_id(&st, &project, &stage).await?;
    if !st.store.delete_stage_webhook(sid).await? {
        return Err(ApiError::NotFound(format!(
            "{project}/{stage} has no webhook of its own"
        )));
    }
    st.store
        .audit(
            &me.user.username,
            "webhook.stage_deleted",
            Some(&format!("{project}/{stage}")),
            Some(&addr),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualDeploy {
    /// The tag to deploy; it must match the stage's tag pattern.
    tag: String,
    /// Required for stages with `confirm: true`.
    #[serde(default)]
    confirm: bool,
}

#[derive(Serialize)]
pub struct DeployId {
    deploy: String,
}

/// `POST /api/projects/{project}/stages/{stage}/deploys` with `{"tag": …}`.
pub async fn manual(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
    Json(body): Json<ManualDeploy>,
) -> ApiResult<(StatusCode, Json<DeployId>)> {
    let req = DeployRequest {
        project: project.clone(),
        stage: stage.clone(),
        tag: body.tag.clone(),
        trigger: Trigger::Manual,
        actor: me.user.username.clone(),
        digest: None,
        confirmed: body.confirm,
    };
    let id = st.deployer.submit(req).await.map_err(submit_error)?;
    st.store
        .audit(
            &me.user.username,
            "deploy.requested",
            Some(&format!("{project}/{stage}:{}", body.tag)),
            Some(&addr),
            Some(serde_json::json!({"deploy": id})),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeployId { deploy: id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    project: Option<String>,
    #[serde(default = "fifty")]
    limit: i64,
}

fn fifty() -> i64 {
    50
}

pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<DeployRecord>>> {
    Ok(Json(
        st.store.list_deploys(q.project.as_deref(), q.limit).await?,
    ))
}

#[derive(Serialize)]
pub struct DeployDetail {
    #[serde(flatten)]
    deploy: DeployRecord,
    steps: Vec<StepRecord>,
}

fn valid_id(id: &str) -> ApiResult<()> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::NotFound(format!("no deploy {id}")))
}

pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeployDetail>> {
    valid_id(&id)?;
    let deploy = st.store.deploy(&id).await?;
    let steps = st.store.deploy_steps(&id).await?;
    Ok(Json(DeployDetail { deploy, steps }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    after: i64,
}

pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Vec<LogLine>>> {
    valid_id(&id)?;
    st.store.deploy(&id).await?;
    Ok(Json(st.store.deploy_logs(&id, q.after).await?))
}

pub async fn instances(
    State(st): State<AppState>,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<Json<Vec<InstanceRecord>>> {
    let sid = stage_id(&st, &project, &stage).await?;
    Ok(Json(st.store.stage_instances(sid).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The kept release to go back to; the newest kept one when left out.
    instance: Option<String>,
}

/// `POST /api/projects/{project}/stages/{stage}/rollback`: redeploys a kept release, pinned to
/// its digest, through the same health-gated swap.
pub async fn rollback(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Path((project, stage)): Path<(String, String)>,
    Json(body): Json<RollbackBody>,
) -> ApiResult<(StatusCode, Json<DeployId>)> {
    let sid = stage_id(&st, &project, &stage).await?;
    let kept: Vec<InstanceRecord> = st
        .store
        .stage_instances(sid)
        .await?
        .into_iter()
        .filter(|i| i.status == "kept")
        .collect();
    let target = match &body.instance {
        Some(id) => kept.iter().find(|i| &i.id == id).ok_or_else(|| {
            ApiError::NotFound(format!("no kept release {id} in {project}/{stage}"))
        })?,
        None => kept.first().ok_or_else(|| {
            ApiError::Conflict(format!(
                "{project}/{stage} has no kept release to roll back to"
            ))
        })?,
    };
    let req = DeployRequest {
        project: project.clone(),
        stage: stage.clone(),
        tag: target.tag.clone(),
        trigger: Trigger::Rollback,
        actor: me.user.username.clone(),
        digest: target.digest.clone(),
        confirmed: true,
    };
    let id = st.deployer.submit(req).await.map_err(submit_error)?;
    st.store
        .audit(
            &me.user.username,
            "deploy.rollback",
            Some(&format!("{project}/{stage}:{}", target.tag)),
            Some(&addr),
            Some(serde_json::json!({"deploy": id, "digest": target.digest})),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeployId { deploy: id })))
}
