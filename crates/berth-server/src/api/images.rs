//! Images seen through their registries, without a pull: quick-deploy inspection (the
//! defaults a project would get), quick deploy (project created and deployed in one step),
//! and the tag picker of a stage.

use crate::AppState;
use crate::api::deploys::submit_error;
use crate::auth::{ClientAddr, CurrentUser};
use crate::error::{ApiError, ApiResult, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use berth_config::seed::{project_from_json, project_to_json};
use berth_deployer::DeployRequest;
use berth_domain::deploy::Trigger;
use berth_domain::model::ProjectSpec;
use berth_domain::plan::{fqdn, stage_subdomain};
use berth_domain::ports::{RegistryAuth, RemoteImage};
use berth_domain::subdomain::dns_label;
use berth_domain::{ImageRef, ProjectName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectBody {
    /// `registry/org/app:tag`.
    image: String,
}

/// Credentials of a stored registry whose URL names the image's host.
async fn auth_for(st: &AppState, image: &ImageRef) -> ApiResult<Option<RegistryAuth>> {
    Ok(st.store.registry_auth_for_host(&image.registry).await?)
}

fn parse_image(s: &str) -> ApiResult<ImageRef> {
    let image = ImageRef::parse(s).map_err(|e| ApiError::BadRequest(format!("image: {e}")))?;
    if image.tag.is_none() && image.digest.is_none() {
        return Err(ApiError::BadRequest(format!(
            "image: {s:?} names no tag (registry/org/app:tag)"
        )));
    }
    Ok(image)
}

async fn remote(st: &AppState, image: &ImageRef) -> ApiResult<RemoteImage> {
    let auth = auth_for(st, image).await?;
    st.registry
        .inspect(image, auth.as_ref())
        .await
        .map_err(|e| ApiError::BadGateway(format!("{}: {e}", image.registry)))
}

/// A free project name from the repository's last part (`app`, `app-2`, …).
async fn free_name(st: &AppState, image: &ImageRef) -> ApiResult<ProjectName> {
    let base = dns_label(image.short_name());
    for n in 1..=20 {
        let candidate = if n == 1 {
            base.clone()
        } else {
            dns_label(&format!("{base}-{n}"))
        };
        if let Ok(name) = ProjectName::parse(&candidate)
            && st.store.project(name.as_str()).await?.is_none()
        {
            return Ok(name);
        }
    }
    Err(ApiError::Conflict(format!(
        "no free project name for {}",
        image.name()
    )))
}

#[derive(Serialize)]
pub struct Suggestion {
    image: String,
    digest: String,
    created: Option<String>,
    exposed_ports: Vec<u16>,
    healthcheck: bool,
    labels: std::collections::BTreeMap<String, String>,
    /// A project already deploying this repository, if there is one.
    existing_project: Option<String>,
    /// The project quick deploy would create (the API's project shape), or null when the
    /// image declares no port.
    project: Option<Value>,
    /// Where its first stage would be served.
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

async fn suggest(st: &AppState, image: &ImageRef) -> ApiResult<(Suggestion, Option<ProjectSpec>)> {
    let r = remote(st, image).await?;
    let existing = st
        .store
        .list_projects()
        .await?
        .into_iter()
        .find(|p| p.image == image.name())
        .map(|p| p.name);
    let name = free_name(st, image).await?;
    let spec = ProjectSpec::from_image(name, image, &r.info);
    let global = st.store.global_settings().await?;
    let domain = spec
        .as_ref()
        .map(|p| fqdn(&stage_subdomain(p, &p.stages[0], &global), &global));
    Ok((
        Suggestion {
            image: image.to_string(),
            digest: r.digest,
            created: r.created,
            exposed_ports: r.info.exposed_tcp_ports.clone(),
            healthcheck: r.info.healthcheck,
            labels: r.info.labels.clone(),
            existing_project: existing,
            project: spec.as_ref().map(project_to_json),
            domain,
            note: spec.is_none().then(|| {
                "the image declares no port (EXPOSE or a berth.port label): give one".to_string()
            }),
        },
        spec,
    ))
}

/// `POST /api/deploy/inspect {image}`: what berth would make of the image.
pub async fn inspect(
    State(st): State<AppState>,
    Json(body): Json<InspectBody>,
) -> ApiResult<Json<Suggestion>> {
    let image = parse_image(&body.image)?;
    Ok(Json(suggest(&st, &image).await?.0))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickBody {
    image: String,
    /// The project to create (inspect's `project`, edited); inspect's defaults when left out.
    #[schema(value_type = Option<Object>)]
    project: Option<Value>,
}

#[derive(Serialize)]
pub struct QuickAnswer {
    project: Value,
    stage: String,
    deploy: String,
}

/// `POST /api/deploy/quick {image, project?}`: creates the project and deploys the image's
/// tag to its first stage that takes it.
pub async fn quick(
    State(st): State<AppState>,
    me: CurrentUser,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<QuickBody>,
) -> ApiResult<(StatusCode, Json<QuickAnswer>)> {
    let image = parse_image(&body.image)?;
    let tag = image
        .tag
        .clone()
        .ok_or_else(|| ApiError::BadRequest("image: quick deploy needs a tag".into()))?;
    let spec = match body.project {
        Some(p) => {
            let names = st.store.registry_names().await?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let spec = project_from_json(p, &names)
                .map_err(|e| ApiError::BadRequest(format!("project.{}: {}", e.field, e.message)))?;
            if spec.image.name() != image.name() {
                return Err(ApiError::BadRequest(format!(
                    "project.image: {} is not the image's repository {}",
                    spec.image.name(),
                    image.name()
                )));
            }
            spec
        }
        None => suggest(&st, &image)
            .await?
            .1
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "the image declares no port (EXPOSE or a berth.port label): send a project with one"
                        .into(),
                )
            })?,
    };
    let stage = spec
        .stages
        .iter()
        .find(|s| s.tag_pattern.matches(&tag) && s.promote_from.is_none())
        .map(|s| s.name.to_string())
        .ok_or_else(|| {
            ApiError::BadRequest(format!("no stage of the project takes the tag {tag}"))
        })?;
    st.store.create_project(&spec).await?;
    let deploy = st
        .deployer
        .submit(DeployRequest {
            project: spec.name.to_string(),
            stage: stage.clone(),
            tag,
            trigger: Trigger::Quick,
            actor: me.user.username.clone(),
            digest: None,
            confirmed: true,
        })
        .await
        .map_err(submit_error)?;
    st.store
        .audit(
            &me.user.username,
            "project.quick_deployed",
            Some(spec.name.as_str()),
            Some(&addr),
            Some(serde_json::json!({"image": image.to_string(), "deploy": deploy})),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(QuickAnswer {
            project: project_to_json(&spec),
            stage,
            deploy,
        }),
    ))
}

#[derive(Serialize)]
pub struct StageTags {
    /// Deployable tags, newest first.
    tags: Vec<String>,
    /// `registry`, or `promotion` (only tags live in the source stage).
    source: &'static str,
    /// The tag live in this stage now.
    live: Option<String>,
}

async fn live_tags(st: &AppState, project: &str, stage: &str) -> ApiResult<Vec<String>> {
    let Some((_, sid)) = st.store.stage_ids(project, stage).await? else {
        return Ok(vec![]);
    };
    Ok(st
        .store
        .stage_instances(sid)
        .await?
        .into_iter()
        .filter(|i| i.status == "live")
        .map(|i| i.tag)
        .collect())
}

/// `GET /api/projects/{project}/stages/{stage}/tags`: the tags a stage can deploy.
pub async fn stage_tags(
    State(st): State<AppState>,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<Json<StageTags>> {
    let (p, registry) = st
        .store
        .project_for_deploy(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {project}")))?;
    let s = p
        .stages
        .iter()
        .find(|s| s.name.as_str() == stage)
        .ok_or_else(|| ApiError::NotFound(format!("project {project} has no stage {stage}")))?;
    let live = live_tags(&st, &project, &stage).await?.into_iter().next();
    if let Some(from) = &s.promote_from {
        let mut tags = live_tags(&st, &project, from.as_str()).await?;
        tags.retain(|t| s.tag_pattern.matches(t));
        berth_domain::tags::newest_first(&mut tags);
        return Ok(Json(StageTags {
            tags,
            source: "promotion",
            live,
        }));
    }
    let auth = match registry.and_then(|r| r.auth_for(&p.image.registry)) {
        Some(a) => Some(a),
        None => auth_for(&st, &p.image).await?,
    };
    let mut tags = st
        .registry
        .tags(&p.image, auth.as_ref())
        .await
        .map_err(|e| ApiError::BadGateway(format!("{}: {e}", p.image.registry)))?;
    tags.retain(|t| s.tag_pattern.matches(t));
    berth_domain::tags::newest_first(&mut tags);
    Ok(Json(StageTags {
        tags,
        source: "registry",
        live,
    }))
}
