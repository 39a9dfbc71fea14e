//! The seed YAML: the "Seed Config Format" of the Docker Watcher plan (seed 002), extended.
//! `seed.example.yaml` at the repository root documents every field.
//!
//! A seed is parsed whole and validated whole before anything is imported: the first problem
//! found is reported with its line and the path of the field (`projects.web.stages.prod…`).
//! [`Seed::to_yaml`] writes a configuration back in the same format (`berth export`).

use berth_crypto::SecretString;
use berth_domain::model::{
    EnvValue, GlobalSettings, HealthCheck, NpmSettings, ProjectSpec, RegistryKind, RegistrySpec,
    StageSpec, UpstreamMode, VolumeSpec, parse_memory, validate_env_key, validate_http_url,
};
use berth_domain::{ImageRef, ProjectName, StageName, TagPattern, subdomain};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// A problem in a seed file: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", line.map(|l| format!("line {l}, ")).unwrap_or_default())]
pub struct SeedError {
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

/// A validated seed: what will be imported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seed {
    pub global: GlobalSettings,
    pub npm: Option<NpmSettings>,
    pub registries: Vec<RegistrySpec>,
    pub projects: Vec<ProjectSpec>,
}

// ----- the YAML shape -----

fn expose<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(v.expose()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    global: GlobalSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    npm: Option<NpmYaml>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    registries: BTreeMap<String, RegistryYaml>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    projects: BTreeMap<ProjectName, ProjectYaml>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NpmYaml {
    url: String,
    email: String,
    #[serde(
        default,
        serialize_with = "expose",
        skip_serializing_if = "Option::is_none"
    )]
    password: Option<SecretString>,
    #[serde(default)]
    upstream: UpstreamMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_id: Option<u32>,
    #[serde(default)]
    websockets: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegistryYaml {
    url: String,
    #[serde(rename = "type", default = "generic")]
    kind: RegistryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// A token or password (the plan calls it `token`; `password` is accepted too).
    #[serde(
        default,
        alias = "password",
        serialize_with = "expose",
        skip_serializing_if = "Option::is_none"
    )]
    token: Option<SecretString>,
}

fn generic() -> RegistryKind {
    RegistryKind::Generic
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum HealthYaml {
    Path(String),
    Full(HealthCheck),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum EnvYaml {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Full {
        #[serde(serialize_with = "expose_some")]
        value: SecretString,
        #[serde(default)]
        secret: bool,
    },
    /// A secret left out of an export: `{secret: true}` with no value.
    Redacted {
        secret: bool,
    },
}

fn expose_some<S: Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose())
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ProjectYaml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registry: Option<String>,
    image: String,
    port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    healthcheck: Option<HealthYaml>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, EnvYaml>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_interval_secs: Option<u64>,
    #[serde(default)]
    stages: BTreeMap<StageName, StageYaml>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StageYaml {
    tag_pattern: TagPattern,
    #[serde(default)]
    auto_deploy: bool,
    #[serde(default = "one")]
    max_instances: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promote_from: Option<StageName>,
    #[serde(default)]
    confirm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subdomain: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, EnvYaml>,
}

fn one() -> u32 {
    1
}

// ----- locating a field's line -----

/// Finds the line of a nested mapping key (`["projects","web","stages"]`) by indentation.
fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let mut depth = 0;
    let mut min_indent = 0usize;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if depth > 0 && indent < min_indent {
            break; // left the parent mapping
        }
        let key = trimmed
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap_or("")
            .trim();
        let key = key.trim_matches(|c| c == '"' || c == '\'');
        if key == path[depth] && trimmed.contains(':') {
            found = Some(i + 1);
            depth += 1;
            min_indent = indent + 1;
        }
    }
    found
}

struct Ctx<'a> {
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: &[&str], message: impl Into<String>) -> SeedError {
        // Point at the deepest part of the path that can be found.
        let line = (1..=path.len())
            .rev()
            .find_map(|n| locate(self.text, &path[..n]));
        SeedError {
            line,
            field: path.join("."),
            message: message.into(),
        }
    }
}

fn env_map(
    ctx: &Ctx,
    base: &[&str],
    env: BTreeMap<String, EnvYaml>,
    redacted: Redacted,
) -> Result<BTreeMap<String, EnvValue>, SeedError> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        let mut path = base.to_vec();
        path.push(&k);
        validate_env_key(&k).map_err(|m| ctx.err(&path, m))?;
        let value = match v {
            EnvYaml::Text(s) => EnvValue::Plain(s),
            EnvYaml::Int(n) => EnvValue::Plain(n.to_string()),
            EnvYaml::Float(f) => EnvValue::Plain(f.to_string()),
            EnvYaml::Bool(b) => EnvValue::Plain(b.to_string()),
            EnvYaml::Full {
                value,
                secret: true,
            } => {
                if value.expose().is_empty() {
                    return Err(ctx.err(&path, "a secret needs a value"));
                }
                EnvValue::Secret(value)
            }
            EnvYaml::Full {
                value,
                secret: false,
            } => EnvValue::Plain(value.expose().to_string()),
            EnvYaml::Redacted { secret: true } if redacted == Redacted::Keep => {
                EnvValue::Secret(SecretString::default())
            }
            EnvYaml::Redacted { .. } => {
                return Err(ctx.err(
                    &path,
                    "a secret without a value (as `berth export` writes them): give `value:` or remove it",
                ));
            }
        };
        let len = match &value {
            EnvValue::Plain(s) => s.len(),
            EnvValue::Secret(s) => s.expose().len(),
        };
        if len > 32 * 1024 {
            return Err(ctx.err(&path, "values are limited to 32 KiB"));
        }
        out.insert(k, value);
    }
    Ok(out)
}

/// What a secret env value without a value (`{secret: true}`, as exports and the API show
/// them) means where it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redacted {
    /// A seed file: an error, there is nothing to keep.
    Refuse,
    /// An API update: keep the stored value, marked as an empty [`SecretString`].
    Keep,
}

fn at<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [base, rest].concat()
}

/// Validates one project entry (`base` is its path, for error messages).
fn project_from_yaml(
    ctx: &Ctx,
    base: &[&str],
    name: ProjectName,
    p: ProjectYaml,
    registries: &[&str],
    redacted: Redacted,
) -> Result<ProjectSpec, SeedError> {
    if let Some(reg) = &p.registry
        && !registries.contains(&reg.as_str())
    {
        return Err(ctx.err(
            &at(base, &["registry"]),
            format!("no registry named {reg:?}"),
        ));
    }
    let image =
        ImageRef::parse(&p.image).map_err(|e| ctx.err(&at(base, &["image"]), e.to_string()))?;
    if image.tag.is_some() || image.digest.is_some() {
        return Err(ctx.err(
            &at(base, &["image"]),
            "give the repository without a tag or digest; stages pick tags by their tag_pattern",
        ));
    }
    if p.port == 0 {
        return Err(ctx.err(&at(base, &["port"]), "must be 1 to 65535"));
    }
    let health = match p.healthcheck {
        None => HealthCheck::Image,
        Some(HealthYaml::Path(path)) => HealthCheck::http(&path),
        Some(HealthYaml::Full(h)) => h,
    };
    health
        .validate()
        .map_err(|m| ctx.err(&at(base, &["healthcheck"]), m))?;
    let env = env_map(ctx, &at(base, &["env"]), p.env, redacted)?;
    for (i, v) in p.volumes.iter().enumerate() {
        v.validate()
            .map_err(|m| ctx.err(&at(base, &["volumes"]), format!("volume {}: {m}", i + 1)))?;
    }
    let memory_bytes = p
        .memory
        .as_deref()
        .map(parse_memory)
        .transpose()
        .map_err(|m| ctx.err(&at(base, &["memory"]), m))?;
    if let Some(c) = p.cpus
        && !(c > 0.0 && c <= 1024.0)
    {
        return Err(ctx.err(&at(base, &["cpus"]), "must be more than 0 and at most 1024"));
    }
    if p.labels.keys().any(|k| k.starts_with("berth.")) {
        return Err(ctx.err(
            &at(base, &["labels"]),
            "labels starting with \"berth.\" are berth's own",
        ));
    }
    if let Some(secs) = p.poll_interval_secs
        && secs != 0
        && !(10..=604_800).contains(&secs)
    {
        return Err(ctx.err(
            &at(base, &["poll_interval_secs"]),
            "must be 0 (no polling) or 10 seconds to 7 days",
        ));
    }
    if p.stages.is_empty() {
        return Err(ctx.err(&at(base, &["stages"]), "a project needs at least one stage"));
    }
    let stage_names: Vec<StageName> = p.stages.keys().cloned().collect();
    let mut stages = Vec::new();
    for (sname, s) in p.stages {
        let spath = at(base, &["stages", sname.as_str()]);
        if !(1..=50).contains(&s.max_instances) {
            return Err(ctx.err(&at(&spath, &["max_instances"]), "must be 1 to 50"));
        }
        if let Some(from) = &s.promote_from {
            if from == &sname {
                return Err(ctx.err(
                    &at(&spath, &["promote_from"]),
                    "a stage cannot promote from itself",
                ));
            }
            if !stage_names.contains(from) {
                return Err(ctx.err(
                    &at(&spath, &["promote_from"]),
                    format!("project {name} has no stage {from}"),
                ));
            }
        }
        if let Some(sub) = &s.subdomain
            && (subdomain::dns_label(sub) != *sub)
        {
            return Err(ctx.err(
                &at(&spath, &["subdomain"]),
                format!(
                    "{sub:?} is not one DNS label (lowercase letters, digits, '-'; at most 63)"
                ),
            ));
        }
        let env = env_map(ctx, &at(&spath, &["env"]), s.env, redacted)?;
        stages.push(StageSpec {
            name: sname,
            tag_pattern: s.tag_pattern,
            auto_deploy: s.auto_deploy,
            max_instances: s.max_instances,
            promote_from: s.promote_from,
            confirm: s.confirm,
            subdomain: s.subdomain,
            env,
        });
    }
    Ok(ProjectSpec {
        name,
        registry: p.registry,
        image,
        port: p.port,
        health,
        env,
        volumes: p.volumes,
        memory_bytes,
        cpus: p.cpus,
        labels: p.labels,
        poll_interval_secs: p.poll_interval_secs,
        stages,
    })
}

fn env_to_yaml(
    m: &BTreeMap<String, EnvValue>,
    include: IncludeSecrets,
) -> BTreeMap<String, EnvYaml> {
    m.iter()
        .map(|(k, v)| {
            let y = match (v, include) {
                (EnvValue::Plain(s), _) => EnvYaml::Text(s.clone()),
                (EnvValue::Secret(s), IncludeSecrets::Yes) => EnvYaml::Full {
                    value: s.clone(),
                    secret: true,
                },
                (EnvValue::Secret(_), IncludeSecrets::No) => EnvYaml::Redacted { secret: true },
            };
            (k.clone(), y)
        })
        .collect()
}

fn project_to_yaml(p: &ProjectSpec, include: IncludeSecrets) -> ProjectYaml {
    ProjectYaml {
        registry: p.registry.clone(),
        image: p.image.name(),
        port: p.port,
        healthcheck: Some(HealthYaml::Full(p.health.clone())),
        env: env_to_yaml(&p.env, include),
        volumes: p.volumes.clone(),
        memory: p.memory_bytes.map(format_memory),
        cpus: p.cpus,
        labels: p.labels.clone(),
        poll_interval_secs: p.poll_interval_secs,
        stages: p
            .stages
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    StageYaml {
                        tag_pattern: s.tag_pattern.clone(),
                        auto_deploy: s.auto_deploy,
                        max_instances: s.max_instances,
                        promote_from: s.promote_from.clone(),
                        confirm: s.confirm,
                        subdomain: s.subdomain.clone(),
                        env: env_to_yaml(&s.env, include),
                    },
                )
            })
            .collect(),
    }
}

/// Memory in the largest unit that states it exactly (`512m`, `2g`, `1536k`, or bytes).
fn format_memory(b: u64) -> String {
    for (shift, unit) in [(30, "g"), (20, "m"), (10, "k")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{}{unit}", b >> shift);
        }
    }
    b.to_string()
}

/// The API's shape of a project: the seed's `projects.<name>` entry as JSON, plus `name`.
/// Secret env values show as `{"secret": true}`.
pub fn project_to_json(p: &ProjectSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(project_to_yaml(p, IncludeSecrets::No))
        .expect("plain data serialises");
    v.as_object_mut()
        .expect("a project is an object")
        .insert("name".into(), p.name.as_str().into());
    v
}

/// Reads a project sent to the API (the shape of [`project_to_json`]), validated like a seed
/// entry. `registries` are the names a project may refer to. A secret env value given as
/// `{"secret": true}` without a value means "keep the stored one": it comes back as an empty
/// [`SecretString`], which the store resolves. Errors name the field (`stages.prod.max_instances`).
pub fn project_from_json(
    value: serde_json::Value,
    registries: &[&str],
) -> Result<ProjectSpec, SeedError> {
    let serde_json::Value::Object(mut map) = value else {
        return Err(SeedError {
            line: None,
            field: "(body)".into(),
            message: "a project is a JSON object".into(),
        });
    };
    let name = match map.remove("name") {
        Some(serde_json::Value::String(n)) => ProjectName::parse(&n).map_err(|e| SeedError {
            line: None,
            field: "name".into(),
            message: e.to_string(),
        })?,
        _ => {
            return Err(SeedError {
                line: None,
                field: "name".into(),
                message: "required: the project's name".into(),
            });
        }
    };
    let yaml: ProjectYaml =
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| SeedError {
            line: None,
            field: "(body)".into(),
            message: e.to_string(),
        })?;
    project_from_yaml(
        &Ctx { text: "" },
        &[],
        name,
        yaml,
        registries,
        Redacted::Keep,
    )
}

/// Checks global settings; on failure names the field and the problem. The seed import and
/// the settings API share it.
pub fn validate_global(g: &GlobalSettings) -> Result<(), (&'static str, String)> {
    if let Some(d) = &g.domain
        && (d.is_empty()
            || d.split('.')
                .any(|l| subdomain::dns_label(l) != l.to_ascii_lowercase()))
    {
        return Err(("domain", format!("{d:?} is not a domain name")));
    }
    if !g.subdomain_pattern.contains("{project}") {
        return Err((
            "subdomain_pattern",
            "must contain {project} (and usually {stage})".into(),
        ));
    }
    // Docker's own rule for network names: [a-zA-Z0-9][a-zA-Z0-9_.-]*
    if g.network.is_empty()
        || g.network.len() > 64
        || !g.network.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !g
            .network
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err((
            "network",
            format!(
                "{:?} is not a Docker network name: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                g.network
            ),
        ));
    }
    if let Some(u) = &g.notification_url {
        validate_http_url("notification_url", u).map_err(|m| ("notification_url", m))?;
    }
    if g.poll_interval_secs != 0 && g.poll_interval_secs < 10 {
        return Err((
            "poll_interval_secs",
            "must be 0 (no polling) or at least 10 seconds".into(),
        ));
    }
    for p in &g.image_allowlist {
        if p.is_empty() || p.contains(char::is_whitespace) {
            return Err((
                "image_allowlist",
                format!("{p:?} is not a pattern like ghcr.io/my-org/*"),
            ));
        }
    }
    if g.keep_releases > 50 {
        return Err(("keep_releases", "must be at most 50".into()));
    }
    if g.drain_secs > 3600 || g.watch_secs > 86_400 {
        return Err((
            "drain_secs",
            "drain_secs is at most 3600 and watch_secs at most 86400".into(),
        ));
    }
    Ok(())
}

impl Seed {
    /// Parses and validates a seed file's text. Nothing is partially accepted.
    pub fn parse(text: &str) -> Result<Seed, SeedError> {
        let ctx = Ctx { text };
        let file: File = serde_norway::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let msg = e.to_string();
            // serde_norway prefixes the path (`projects.web.port: invalid type…`) and appends
            // the location; split them into our fields.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            let (field, message) = match msg.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => ("(document)".to_string(), msg),
            };
            SeedError {
                line,
                field,
                message,
            }
        })?;
        Self::from_file(&ctx, file)
    }

    fn from_file(ctx: &Ctx, file: File) -> Result<Seed, SeedError> {
        let g = file.global;
        validate_global(&g).map_err(|(field, m)| ctx.err(&["global", field], m))?;

        let npm = match file.npm {
            None => None,
            Some(n) => {
                validate_http_url("url", &n.url).map_err(|m| ctx.err(&["npm", "url"], m))?;
                if !n.email.contains('@') {
                    return Err(ctx.err(&["npm", "email"], "NPM logs in with an email address"));
                }
                Some(NpmSettings {
                    url: n.url.trim_end_matches('/').to_string(),
                    email: n.email,
                    password: n.password,
                    upstream: n.upstream,
                    certificate_id: n.certificate_id,
                    websockets: n.websockets,
                })
            }
        };

        let mut registries = Vec::new();
        for (name, r) in file.registries {
            let path = ["registries", name.as_str()];
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ctx.err(
                    &path,
                    "a registry name is 1 to 64 letters, digits, '-' or '_'",
                ));
            }
            validate_http_url("url", &r.url)
                .map_err(|m| ctx.err(&["registries", &name, "url"], m))?;
            registries.push(RegistrySpec {
                name,
                kind: r.kind,
                url: r.url.trim_end_matches('/').to_string(),
                username: r.username,
                secret: r.token,
            });
        }

        let registry_names: Vec<&str> = registries.iter().map(|r| r.name.as_str()).collect();
        let mut projects = Vec::new();
        for (pname, p) in file.projects {
            projects.push(project_from_yaml(
                ctx,
                &["projects", pname.as_str()],
                pname.clone(),
                p,
                &registry_names,
                Redacted::Refuse,
            )?);
        }
        Ok(Seed {
            global: g,
            npm,
            registries,
            projects,
        })
    }

    /// Writes the configuration as seed YAML. Secrets are left out (secret env values become
    /// `{secret: true}`) unless `include_secrets` says otherwise.
    pub fn to_yaml(&self, include_secrets: IncludeSecrets) -> String {
        let keep = |s: &Option<SecretString>| match include_secrets {
            IncludeSecrets::Yes => s.clone(),
            IncludeSecrets::No => None,
        };
        let file = File {
            global: self.global.clone(),
            npm: self.npm.as_ref().map(|n| NpmYaml {
                url: n.url.clone(),
                email: n.email.clone(),
                password: keep(&n.password),
                upstream: n.upstream,
                certificate_id: n.certificate_id,
                websockets: n.websockets,
            }),
            registries: self
                .registries
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        RegistryYaml {
                            url: r.url.clone(),
                            kind: r.kind,
                            username: r.username.clone(),
                            token: keep(&r.secret),
                        },
                    )
                })
                .collect(),
            projects: self
                .projects
                .iter()
                .map(|p| (p.name.clone(), project_to_yaml(p, include_secrets)))
                .collect(),
        };
        let body = serde_norway::to_string(&file).expect("serialising plain data cannot fail");
        let head = match include_secrets {
            IncludeSecrets::No => {
                "# berth configuration export. Secrets are left out: secret env values show as\n# `{secret: true}`, credentials are omitted. Add them before importing this file.\n"
            }
            IncludeSecrets::Yes => {
                "# berth configuration export, WITH SECRETS IN PLAIN TEXT. Store it like a password.\n"
            }
        };
        format!("{head}{body}")
    }
}

/// Whether an export carries secrets in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeSecrets {
    No,
    Yes,
}

#[cfg(test)]
mod tests;
