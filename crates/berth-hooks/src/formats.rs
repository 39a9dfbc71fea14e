//! One reader per sender's body format. Each returns the pushes a body reports, or why it is
//! not a push; none trusts a field to exist or to have a type.

use crate::{HookError, Outcome, Push};
use berth_domain::ImageRef;
use serde_json::Value;

type R = Result<Outcome, HookError>;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn bad(m: impl Into<String>) -> HookError {
    HookError::Malformed(m.into())
}

/// `registry/org/app` as an engine names it (Docker Hub's short names completed).
fn repository(name: &str) -> Result<String, HookError> {
    ImageRef::parse(&name.to_ascii_lowercase())
        .map(|r| r.name())
        .map_err(|e| bad(e.to_string()))
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().filter(|h| !h.is_empty())
}

fn push(repo: &str, tag: &str, digest: Option<&str>) -> Result<Push, HookError> {
    Ok(Push {
        repository: repository(repo)?,
        tag: tag.to_string(),
        digest: digest
            .filter(|d| d.starts_with("sha256:"))
            .map(String::from),
    })
}

/// `{"image": "registry/org/app:tag"}`, optionally with `"digest"`.
pub fn generic(v: &Value) -> R {
    let image =
        s(v, &["image"]).ok_or_else(|| bad("image: required, like registry/org/app:tag"))?;
    let r = ImageRef::parse(image).map_err(|e| bad(format!("image: {e}")))?;
    let tag = r
        .tag
        .clone()
        .ok_or_else(|| bad(format!("image: {image:?} names no tag")))?;
    let digest = s(v, &["digest"]).or(r.digest.as_deref());
    Ok(Outcome::Pushes(vec![push(&r.name(), &tag, digest)?]))
}

/// Docker Hub: `push_data.tag` and `repository.repo_name`; no digest, no signature.
pub fn dockerhub(v: &Value) -> R {
    let repo = s(v, &["repository", "repo_name"])
        .ok_or_else(|| bad("repository.repo_name: required (a Docker Hub push)"))?;
    let tag = s(v, &["push_data", "tag"]).ok_or_else(|| bad("push_data.tag: required"))?;
    Ok(Outcome::Pushes(vec![push(repo, tag, None)?]))
}

/// GitHub `package` and `registry_package` events for container images (GHCR).
pub fn github(event: Option<&str>, v: &Value) -> R {
    let event = event.ok_or_else(|| bad("X-GitHub-Event: required"))?;
    let key = match event {
        "ping" => return Ok(Outcome::Ignored("ping".into())),
        "package" => "package",
        "registry_package" => "registry_package",
        other => {
            return Ok(Outcome::Ignored(format!(
                "{other} events are not image pushes"
            )));
        }
    };
    let action = s(v, &["action"]).unwrap_or("");
    if action != "published" && action != "updated" {
        return Ok(Outcome::Ignored(format!("package {action}")));
    }
    let p = v.get(key).ok_or_else(|| bad(format!("{key}: required")))?;
    let kind = |f: &str| s(p, &[f]).map(str::to_ascii_lowercase);
    let container = [kind("package_type"), kind("ecosystem")]
        .iter()
        .flatten()
        .any(|k| k == "container" || k == "docker");
    if !container {
        return Ok(Outcome::Ignored("not a container package".into()));
    }
    let version = p
        .get("package_version")
        .ok_or_else(|| bad(format!("{key}.package_version: required")))?;
    let tag = s(version, &["container_metadata", "tag", "name"]);
    let Some(tag) = tag else {
        return Ok(Outcome::Ignored(
            "an untagged version (a digest only)".into(),
        ));
    };
    let digest = s(version, &["container_metadata", "tag", "digest"])
        .or_else(|| s(version, &["container_metadata", "manifest", "digest"]));
    // `package_url` is `ghcr.io/owner/name:tag`; else build it from the namespace.
    let repo = match s(version, &["package_url"]).and_then(|u| ImageRef::parse(u).ok()) {
        Some(r) => r.name(),
        None => {
            let owner = s(p, &["namespace"])
                .or_else(|| s(p, &["owner", "login"]))
                .ok_or_else(|| bad(format!("{key}.namespace: required")))?;
            let name = s(p, &["name"]).ok_or_else(|| bad(format!("{key}.name: required")))?;
            format!("ghcr.io/{owner}/{name}")
        }
    };
    Ok(Outcome::Pushes(vec![push(&repo, tag, digest)?]))
}

/// Gitea and Forgejo `package` events (`created`) for container packages; the registry is
/// the forge's own host.
pub fn gitea(event: Option<&str>, v: &Value) -> R {
    match event {
        Some("package") | None => {}
        Some(other) => {
            return Ok(Outcome::Ignored(format!(
                "{other} events are not image pushes"
            )));
        }
    }
    let p = v.get("package").ok_or_else(|| bad("package: required"))?;
    let action = s(v, &["action"]).unwrap_or("");
    if action != "created" {
        return Ok(Outcome::Ignored(format!("package {action}")));
    }
    if s(p, &["type"]) != Some("container") {
        return Ok(Outcome::Ignored("not a container package".into()));
    }
    let version = s(p, &["version"]).ok_or_else(|| bad("package.version: required"))?;
    if version.starts_with("sha256:") {
        return Ok(Outcome::Ignored("a digest version, not a tag".into()));
    }
    let name = s(p, &["name"]).ok_or_else(|| bad("package.name: required"))?;
    let owner = s(p, &["owner", "login"])
        .or_else(|| s(p, &["owner", "username"]))
        .ok_or_else(|| bad("package.owner.login: required"))?;
    let host = s(p, &["html_url"])
        .and_then(host_of)
        .ok_or_else(|| bad("package.html_url: required (it names the registry's host)"))?;
    Ok(Outcome::Pushes(vec![push(
        &format!("{host}/{owner}/{name}"),
        version,
        None,
    )?]))
}

/// GitLab sends no registry events of its own: a pipeline posts the generic body, or the
/// self-managed registry its distribution notifications; either with `X-Gitlab-Token`.
pub fn gitlab(v: &Value) -> R {
    if v.get("events").is_some() {
        return distribution(v);
    }
    if let Some(kind) = s(v, &["object_kind"]) {
        return Ok(Outcome::Ignored(format!(
            "GitLab {kind} events are not image pushes: post {{\"image\": …}} from the pipeline"
        )));
    }
    generic(v)
}

/// Harbor: the default format (`type: PUSH_ARTIFACT`, `event_data`) and CloudEvents
/// (`type: harbor.artifact.pushed`, `data`).
pub fn harbor(v: &Value) -> R {
    let kind = s(v, &["type"]).ok_or_else(|| bad("type: required (a Harbor event)"))?;
    let data = if v.get("specversion").is_some() {
        if kind != "harbor.artifact.pushed" {
            return Ok(Outcome::Ignored(format!("{kind} is not a push")));
        }
        v.get("data")
    } else {
        if kind != "PUSH_ARTIFACT" {
            return Ok(Outcome::Ignored(format!("{kind} is not a push")));
        }
        v.get("event_data")
    }
    .ok_or_else(|| bad("event_data (or data): required"))?;
    let resources = data
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("resources: required"))?;
    let mut pushes = Vec::new();
    for r in resources {
        let url =
            s(r, &["resource_url"]).ok_or_else(|| bad("resources[].resource_url: required"))?;
        let image = ImageRef::parse(url).map_err(|e| bad(format!("resource_url: {e}")))?;
        let Some(tag) = s(r, &["tag"]).or(image.tag.as_deref()) else {
            continue; // pushed by digest only
        };
        pushes.push(push(&image.name(), tag, s(r, &["digest"]))?);
    }
    Ok(Outcome::Pushes(pushes))
}

/// Quay's repository push: `docker_url` and `updated_tags`, a list of tags or an object
/// keyed by tag.
pub fn quay(v: &Value) -> R {
    let repo = s(v, &["docker_url"])
        .ok_or_else(|| bad("docker_url: required (a Quay repository push)"))?;
    let tags: Vec<&str> = match v.get("updated_tags") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::Object(o)) => o.keys().map(String::as_str).collect(),
        _ => return Err(bad("updated_tags: required, a list of tags")),
    };
    let pushes = tags
        .into_iter()
        .map(|t| push(repo, t, None))
        .collect::<Result<_, _>>()?;
    Ok(Outcome::Pushes(pushes))
}

/// The distribution registry's notification envelope (`…events.v1+json` and `v2`): manifest
/// pushes with a tag; pulls, deletes, blob pushes and digest-only pushes are not deploys.
pub fn distribution(v: &Value) -> R {
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("events: required (a registry notification envelope)"))?;
    let mut pushes = Vec::new();
    let mut other = Vec::new();
    for e in events {
        let action = s(e, &["action"]).unwrap_or("");
        let media = s(e, &["target", "mediaType"]).unwrap_or("");
        let tag = s(e, &["target", "tag"]);
        let is_manifest = media.contains("manifest") || media.contains("image.index");
        match (action, is_manifest, tag) {
            ("push", true, Some(tag)) => {
                let name = s(e, &["target", "repository"])
                    .ok_or_else(|| bad("events[].target.repository: required"))?;
                let host = s(e, &["target", "url"])
                    .and_then(host_of)
                    .or_else(|| s(e, &["request", "host"]))
                    .ok_or_else(|| bad("events[].target.url: required (it names the registry)"))?;
                pushes.push(push(
                    &format!("{host}/{name}"),
                    tag,
                    s(e, &["target", "digest"]),
                )?);
            }
            _ => other.push(format!(
                "{action} {}",
                if is_manifest { "manifest" } else { "blob" }
            )),
        }
    }
    if pushes.is_empty() {
        other.dedup();
        return Ok(Outcome::Ignored(format!(
            "no tagged manifest push ({})",
            if other.is_empty() {
                "no events".into()
            } else {
                other.join(", ")
            }
        )));
    }
    Ok(Outcome::Pushes(pushes))
}
