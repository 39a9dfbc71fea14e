//! A container plan: everything the engine needs to start one instance of a project in a
//! stage at a tag, derived purely from the configuration. The deployer executes it; tests
//! check it without an engine.

use crate::model::{EnvValue, GlobalSettings, HealthCheck, ProjectSpec, StageSpec, VolumeMode};
use crate::subdomain::{dns_label, render};
use std::collections::BTreeMap;

/// The labels every berth container carries, so state can be rebuilt from the engine.
pub mod labels {
    pub const PROJECT: &str = "berth.project";
    pub const STAGE: &str = "berth.stage";
    pub const DEPLOY: &str = "berth.deploy";
    pub const TAG: &str = "berth.tag";
    pub const DIGEST: &str = "berth.digest";
    pub const INSTANCE: &str = "berth.instance";
    pub const MANAGED: &str = "berth.managed";
    /// The installation that started the container: berth only ever removes its own.
    pub const OWNER: &str = "berth.owner";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

impl Bind {
    /// Docker's `-v` syntax: `source:target[:ro]`.
    pub fn spec(&self) -> String {
        format!(
            "{}:{}{}",
            self.source,
            self.target,
            if self.read_only { ":ro" } else { "" }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    /// Container name: also its host name on the shared network, so one DNS label.
    pub name: String,
    /// What to run: pinned by digest when it is known.
    pub image: String,
    /// Project env with the stage's overrides applied, sorted by name.
    pub env: Vec<(String, EnvValue)>,
    pub labels: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    pub port: u16,
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    pub network: String,
    pub health: HealthCheck,
}

/// Which instance a plan is for.
pub struct Target<'a> {
    pub tag: &'a str,
    pub digest: Option<&'a str>,
    pub deploy_id: &'a str,
    pub instance_id: &'a str,
    /// The installation id (`berth.owner`).
    pub owner: &'a str,
}

impl ContainerPlan {
    pub fn new(
        project: &ProjectSpec,
        stage: &StageSpec,
        global: &GlobalSettings,
        t: &Target<'_>,
    ) -> Self {
        let p = project.name.as_str();
        let s = stage.name.as_str();
        let alnum: Vec<char> = t
            .instance_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let short: String = alnum[alnum.len().saturating_sub(6)..].iter().collect();
        let name = dns_label(&format!("berth-{p}-{s}-{}-{short}", t.tag));
        let image = match t.digest {
            Some(d) => format!("{}@{d}", project.image.name()),
            None => format!("{}:{}", project.image.name(), t.tag),
        };
        let mut env: BTreeMap<String, EnvValue> = project.env.clone();
        env.extend(stage.env.clone());
        let mut labels = project.labels.clone();
        for (k, v) in [
            (labels::PROJECT, p),
            (labels::STAGE, s),
            (labels::DEPLOY, t.deploy_id),
            (labels::TAG, t.tag),
            (labels::INSTANCE, t.instance_id),
            (labels::MANAGED, "true"),
            (labels::OWNER, t.owner),
        ] {
            labels.insert(k.to_string(), v.to_string());
        }
        if let Some(d) = t.digest {
            labels.insert(labels::DIGEST.to_string(), d.to_string());
        }
        let binds = project
            .volumes
            .iter()
            .map(|v| Bind {
                source: match v.mode {
                    VolumeMode::Shared => v.source.clone(),
                    VolumeMode::Isolated => {
                        format!("{}/{s}-{}", v.source.trim_end_matches('/'), t.tag)
                    }
                },
                target: v.target.clone(),
                read_only: v.read_only,
            })
            .collect();
        Self {
            name,
            image,
            env: env.into_iter().collect(),
            labels,
            binds,
            port: project.port,
            memory_bytes: project.memory_bytes,
            nano_cpus: project.cpus.map(|c| (c * 1e9).round() as i64),
            network: global.network.clone(),
            health: project.health.clone(),
        }
    }
}

/// The subdomain that follows a stage's newest live instance.
pub fn stage_subdomain(
    project: &ProjectSpec,
    stage: &StageSpec,
    global: &GlobalSettings,
) -> String {
    match &stage.subdomain {
        Some(custom) => custom.clone(),
        None => render(
            &global.subdomain_pattern,
            project.name.as_str(),
            stage.name.as_str(),
            None,
        ),
    }
}

/// The subdomain of one tag, for stages that run several (`max_instances > 1`).
pub fn tag_subdomain(
    project: &ProjectSpec,
    stage: &StageSpec,
    global: &GlobalSettings,
    tag: &str,
) -> String {
    match &stage.subdomain {
        Some(custom) => dns_label(&format!("{custom}-{tag}")),
        None => render(
            &global.subdomain_pattern,
            project.name.as_str(),
            stage.name.as_str(),
            Some(tag),
        ),
    }
}

/// `label.domain`, or the label alone when no domain is set.
pub fn fqdn(label: &str, global: &GlobalSettings) -> String {
    match &global.domain {
        Some(d) => format!("{label}.{d}"),
        None => label.to_string(),
    }
}

/// The host an instance is served at: the stage's subdomain for a single-instance stage
/// (it follows the newest live instance), the instance's own tag subdomain otherwise.
pub fn instance_host(
    project: &ProjectSpec,
    stage: &StageSpec,
    global: &GlobalSettings,
    instance_subdomain: &str,
) -> String {
    if stage.max_instances > 1 {
        fqdn(instance_subdomain, global)
    } else {
        fqdn(&stage_subdomain(project, stage, global), global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VolumeSpec;
    use crate::{ImageRef, ProjectName, StageName, TagPattern};
    use berth_crypto::SecretString;

    fn project() -> ProjectSpec {
        ProjectSpec {
            name: ProjectName::parse("web-app-launcher").unwrap(),
            registry: None,
            image: ImageRef::parse("git.example.com/alexei/web-app-launcher").unwrap(),
            port: 3000,
            health: HealthCheck::http("/api/health"),
            env: BTreeMap::from([
                ("NODE_ENV".into(), EnvValue::Plain("production".into())),
                (
                    "SECRET_KEY".into(),
                    EnvValue::Secret(SecretString::new("s3cr3t")),
                ),
            ]),
            volumes: vec![
                VolumeSpec {
                    source: "/data/app/uploads".into(),
                    target: "/app/uploads".into(),
                    mode: VolumeMode::Shared,
                    read_only: false,
                },
                VolumeSpec {
                    source: "/data/app/data/".into(),
                    target: "/app/data".into(),
                    mode: VolumeMode::Isolated,
                    read_only: true,
                },
            ],
            memory_bytes: Some(512 << 20),
            cpus: Some(1.5),
            labels: BTreeMap::from([("com.example.team".into(), "web".into())]),
            poll_interval_secs: None,
            stages: vec![],
        }
    }

    fn stage(name: &str, subdomain: Option<&str>) -> StageSpec {
        StageSpec {
            name: StageName::parse(name).unwrap(),
            tag_pattern: TagPattern::parse("*").unwrap(),
            auto_deploy: true,
            max_instances: 1,
            promote_from: None,
            confirm: false,
            subdomain: subdomain.map(String::from),
            env: BTreeMap::from([("NODE_ENV".into(), EnvValue::Plain("development".into()))]),
        }
    }

    #[test]
    fn a_plan_from_the_configuration() {
        let g = GlobalSettings {
            domain: Some("example.com".into()),
            ..Default::default()
        };
        let digest = format!("sha256:{}", "ab".repeat(32));
        let t = Target {
            tag: "v1.2.0",
            digest: Some(&digest),
            deploy_id: "dep-1",
            instance_id: "0192f1c2-aaaa-bbbb-cccc-1234567890ab",
            owner: "0011223344556677",
        };
        let plan = ContainerPlan::new(&project(), &stage("dev", None), &g, &t);
        assert_eq!(plan.name, "berth-web-app-launcher-dev-v1-2-0-7890ab");
        assert!(plan.name.len() <= 63);
        assert_eq!(
            plan.image,
            format!("git.example.com/alexei/web-app-launcher@{digest}")
        );
        let env: BTreeMap<_, _> = plan.env.iter().cloned().collect();
        assert_eq!(
            env["NODE_ENV"],
            EnvValue::Plain("development".into()),
            "the stage overrides the project"
        );
        assert!(matches!(env["SECRET_KEY"], EnvValue::Secret(_)));
        for (k, v) in [
            ("berth.project", "web-app-launcher"),
            ("berth.stage", "dev"),
            ("berth.deploy", "dep-1"),
            ("berth.tag", "v1.2.0"),
            ("berth.managed", "true"),
            ("berth.owner", "0011223344556677"),
            ("com.example.team", "web"),
        ] {
            assert_eq!(plan.labels[k], v, "{k}");
        }
        assert_eq!(plan.labels["berth.digest"], digest);
        assert_eq!(plan.binds[0].spec(), "/data/app/uploads:/app/uploads");
        assert_eq!(
            plan.binds[1].spec(),
            "/data/app/data/dev-v1.2.0:/app/data:ro",
            "isolated: one directory per stage and tag"
        );
        assert_eq!(plan.nano_cpus, Some(1_500_000_000));
        assert_eq!(plan.network, "berth");
    }

    #[test]
    fn without_a_digest_the_tag_is_used() {
        let g = GlobalSettings::default();
        let t = Target {
            tag: "dev-abc",
            digest: None,
            deploy_id: "d",
            instance_id: "i1",
            owner: "o",
        };
        let plan = ContainerPlan::new(&project(), &stage("dev", None), &g, &t);
        assert_eq!(
            plan.image,
            "git.example.com/alexei/web-app-launcher:dev-abc"
        );
        assert!(!plan.labels.contains_key("berth.digest"));
    }

    #[test]
    fn subdomains_as_seed_002_names_them() {
        let g = GlobalSettings {
            domain: Some("example.com".into()),
            ..Default::default()
        };
        let p = project();
        assert_eq!(
            stage_subdomain(&p, &stage("dev", None), &g),
            "stage-dev-web-app-launcher"
        );
        assert_eq!(
            tag_subdomain(&p, &stage("rel", None), &g, "v1.2.0"),
            "stage-rel-web-app-launcher-v1-2-0"
        );
        let prod = stage("prod", Some("launcher"));
        assert_eq!(
            fqdn(&stage_subdomain(&p, &prod, &g), &g),
            "launcher.example.com"
        );
        assert_eq!(tag_subdomain(&p, &prod, &g, "v2"), "launcher-v2");
        assert_eq!(fqdn("x", &GlobalSettings::default()), "x");
    }
}
