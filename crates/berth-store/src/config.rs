//! The configuration in the database: first-start initialisation (seed import and first
//! admin, in one transaction), export back to a [`Seed`], and project listings.

use crate::settings::{GLOBAL, INITIALIZED};
use crate::{Result, Store, StoreError, now};
use berth_config::seed::{IncludeSecrets, Seed};
use berth_crypto::SecretString;
use berth_domain::model::{
    EnvValue, HealthCheck, NpmSettings, ProjectSpec, RegistrySpec, StageSpec, UpstreamMode,
    VolumeMode, VolumeSpec,
};
use berth_domain::{ImageRef, ProjectName, Role, StageName, TagPattern, Username};
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;
use std::collections::BTreeMap;

const NPM: &str = "npm";

/// NPM settings as stored (the password as a secret id).
#[derive(Serialize, Deserialize)]
struct NpmRow {
    url: String,
    email: String,
    password_secret_id: Option<i64>,
    upstream: UpstreamMode,
    certificate_id: Option<u32>,
    websockets: bool,
}

/// The NPM connection as the API shows it: the password only as "is set".
#[derive(Debug, Clone, Serialize)]
pub struct NpmView {
    pub url: String,
    pub email: String,
    pub has_password: bool,
    pub upstream: UpstreamMode,
    pub certificate_id: Option<u32>,
    pub websockets: bool,
}

/// What to do with a stored secret on update.
#[derive(Debug, Clone)]
pub enum SecretUpdate {
    Keep,
    Replace(SecretString),
    Clear,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RegistryRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) url: String,
    pub(crate) username: Option<String>,
    pub(crate) secret_id: Option<i64>,
}

/// A project as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub image: String,
    pub port: u16,
    pub stages: Vec<StageSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub tag_pattern: String,
    pub auto_deploy: bool,
    pub max_instances: u32,
    pub promote_from: Option<String>,
    pub confirm: bool,
}

fn malformed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Malformed(format!("{what}: {e}"))
}

impl Store {
    /// Runs the first start once: imports `seed` (if any) and creates the first admin (if
    /// there are no users), all in one transaction, then marks the database initialised.
    /// Returns false, doing nothing, if it already ran.
    pub async fn initialize(
        &self,
        seed: Option<&Seed>,
        admin: Option<(&Username, &str)>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = ?")
            .bind(INITIALIZED)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            return Ok(false);
        }
        if let Some(seed) = seed {
            self.import(&mut tx, seed).await?;
        }
        if let Some((name, hash)) = admin {
            let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await?;
            if users == 0 {
                let t = now();
                sqlx::query("INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(name.as_str())
                    .bind(hash)
                    .bind(Role::Admin.as_str())
                    .bind(&t)
                    .bind(&t)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Self::put_setting(&mut *tx, INITIALIZED, &now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn import(&self, conn: &mut SqliteConnection, seed: &Seed) -> Result<()> {
        Self::put_setting(&mut *conn, GLOBAL, &seed.global).await?;
        if let Some(n) = &seed.npm {
            let password_secret_id = match &n.password {
                Some(p) => Some(self.insert_secret(conn, "npm:password", p).await?),
                None => None,
            };
            let row = NpmRow {
                url: n.url.clone(),
                email: n.email.clone(),
                password_secret_id,
                upstream: n.upstream,
                certificate_id: n.certificate_id,
                websockets: n.websockets,
            };
            Self::put_setting(&mut *conn, NPM, &row).await?;
        }
        let t = now();
        let mut registry_ids = BTreeMap::new();
        for r in &seed.registries {
            let secret_id = match &r.secret {
                Some(s) => Some(
                    self.insert_secret(conn, &format!("registry:{}", r.name), s)
                        .await?,
                ),
                None => None,
            };
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO registries (name, kind, url, username, secret_id, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&r.name)
            .bind(r.kind.as_str())
            .bind(&r.url)
            .bind(&r.username)
            .bind(secret_id)
            .bind(&t)
            .bind(&t)
            .fetch_one(&mut *conn)
            .await?;
            registry_ids.insert(r.name.clone(), id);
        }
        for p in &seed.projects {
            let registry_id = p
                .registry
                .as_ref()
                .and_then(|n| registry_ids.get(n))
                .copied();
            self.insert_project(conn, p, registry_id).await?;
        }
        Ok(())
    }

    pub(crate) async fn load_env(
        &self,
        conn: &mut SqliteConnection,
        project_id: i64,
        stage_id: Option<i64>,
        include: IncludeSecrets,
    ) -> Result<BTreeMap<String, EnvValue>> {
        let rows: Vec<(String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT key, value, secret_id FROM env_vars WHERE project_id = ? AND stage_id IS ? ORDER BY key",
        )
        .bind(project_id)
        .bind(stage_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = BTreeMap::new();
        for (k, value, secret_id) in rows {
            let v = match (value, secret_id, include) {
                (Some(v), _, _) => EnvValue::Plain(v),
                (None, Some(id), IncludeSecrets::Yes) => {
                    EnvValue::Secret(self.open_secret(conn, id).await?)
                }
                // The value stays sealed: callers only learn that a secret exists.
                (None, _, _) => EnvValue::Secret(SecretString::default()),
            };
            out.insert(k, v);
        }
        Ok(out)
    }

    /// The whole configuration as a seed. Secrets are opened only with `IncludeSecrets::Yes`.
    pub async fn export_seed(&self, include: IncludeSecrets) -> Result<Seed> {
        let global = self.global_settings().await?;
        let npm_row = self.get_setting::<NpmRow>(NPM).await?;
        let mut conn = self.pool.acquire().await?;
        let npm = match npm_row {
            None => None,
            Some(n) => Some(NpmSettings {
                password: match (n.password_secret_id, include) {
                    (Some(id), IncludeSecrets::Yes) => Some(self.open_secret(&mut conn, id).await?),
                    _ => None,
                },
                url: n.url,
                email: n.email,
                upstream: n.upstream,
                certificate_id: n.certificate_id,
                websockets: n.websockets,
            }),
        };
        let regs: Vec<RegistryRow> = sqlx::query_as(
            "SELECT id, name, kind, url, username, secret_id FROM registries ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut registries = Vec::new();
        let mut reg_names = BTreeMap::new();
        for r in regs {
            reg_names.insert(r.id, r.name.clone());
            registries.push(RegistrySpec {
                kind: r.kind.parse().map_err(|e| malformed("registry kind", e))?,
                secret: match (r.secret_id, include) {
                    (Some(sid), IncludeSecrets::Yes) => {
                        Some(self.open_secret(&mut conn, sid).await?)
                    }
                    _ => None,
                },
                name: r.name,
                url: r.url,
                username: r.username,
            });
        }
        let projects = self
            .load_projects(&mut conn, None, include, &reg_names)
            .await?;
        Ok(Seed {
            global,
            npm,
            registries,
            projects,
        })
    }

    /// The NPM connection, if configured (the password stays sealed).
    pub async fn npm_settings(&self) -> Result<Option<NpmView>> {
        Ok(self.get_setting::<NpmRow>(NPM).await?.map(|n| NpmView {
            url: n.url,
            email: n.email,
            has_password: n.password_secret_id.is_some(),
            upstream: n.upstream,
            certificate_id: n.certificate_id,
            websockets: n.websockets,
        }))
    }

    /// The NPM connection with its password opened, for the NPM client.
    pub async fn npm_connection(&self) -> Result<Option<NpmSettings>> {
        let Some(n) = self.get_setting::<NpmRow>(NPM).await? else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let password = match n.password_secret_id {
            Some(id) => Some(self.open_secret(&mut conn, id).await?),
            None => None,
        };
        Ok(Some(NpmSettings {
            url: n.url,
            email: n.email,
            password,
            upstream: n.upstream,
            certificate_id: n.certificate_id,
            websockets: n.websockets,
        }))
    }

    /// Stores the NPM connection (`settings.password` is ignored; `password` says what to do
    /// with the stored one), in one transaction; an old sealed password is deleted.
    pub async fn set_npm_settings(
        &self,
        settings: &NpmSettings,
        password: SecretUpdate,
    ) -> Result<()> {
        let old = self.get_setting::<NpmRow>(NPM).await?;
        let mut tx = self.pool.begin().await?;
        let old_secret = old.as_ref().and_then(|o| o.password_secret_id);
        let password_secret_id = match password {
            SecretUpdate::Keep => old_secret,
            SecretUpdate::Clear => None,
            SecretUpdate::Replace(p) => {
                Some(self.insert_secret(&mut tx, "npm:password", &p).await?)
            }
        };
        if let Some(id) = old_secret
            && Some(id) != password_secret_id
        {
            Store::delete_secret(&mut tx, id).await?;
        }
        let row = NpmRow {
            url: settings.url.clone(),
            email: settings.email.clone(),
            password_secret_id,
            upstream: settings.upstream,
            certificate_id: settings.certificate_id,
            websockets: settings.websockets,
        };
        Self::put_setting(&mut *tx, NPM, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the NPM connection and its password.
    pub async fn delete_npm_settings(&self) -> Result<bool> {
        let Some(old) = self.get_setting::<NpmRow>(NPM).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(NPM)
            .execute(&mut *tx)
            .await?;
        if let Some(id) = old.password_secret_id {
            Store::delete_secret(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Projects (all, or the one named `only`) with stages, env, volumes.
    pub(crate) async fn load_projects(
        &self,
        conn: &mut SqliteConnection,
        only: Option<&str>,
        include: IncludeSecrets,
        reg_names: &BTreeMap<i64, String>,
    ) -> Result<Vec<ProjectSpec>> {
        #[derive(sqlx::FromRow)]
        struct P {
            id: i64,
            name: String,
            registry_id: Option<i64>,
            image: String,
            port: i64,
            health: String,
            memory_bytes: Option<i64>,
            cpus: Option<f64>,
            labels: String,
            poll_interval_secs: Option<i64>,
        }
        let rows: Vec<P> = sqlx::query_as(
            "SELECT id, name, registry_id, image, port, health, memory_bytes, cpus, labels, poll_interval_secs FROM projects
             WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )
        .bind(only)
        .fetch_all(&mut *conn)
        .await?;
        let mut projects = Vec::new();
        for p in rows {
            #[derive(sqlx::FromRow)]
            struct S {
                id: i64,
                name: String,
                tag_pattern: String,
                auto_deploy: bool,
                max_instances: i64,
                promote_from: Option<String>,
                confirm: bool,
                subdomain: Option<String>,
            }
            let srows: Vec<S> = sqlx::query_as(
                "SELECT id, name, tag_pattern, auto_deploy, max_instances, promote_from, confirm, subdomain
                 FROM stages WHERE project_id = ? ORDER BY name",
            )
            .bind(p.id)
            .fetch_all(&mut *conn)
            .await?;
            let mut stages = Vec::new();
            for s in srows {
                stages.push(StageSpec {
                    name: StageName::parse(s.name).map_err(|e| malformed("stage", e))?,
                    tag_pattern: TagPattern::parse(s.tag_pattern)
                        .map_err(|e| malformed("tag pattern", e))?,
                    auto_deploy: s.auto_deploy,
                    max_instances: s.max_instances as u32,
                    promote_from: s
                        .promote_from
                        .map(StageName::parse)
                        .transpose()
                        .map_err(|e| malformed("stage", e))?,
                    confirm: s.confirm,
                    subdomain: s.subdomain,
                    env: self.load_env(conn, p.id, Some(s.id), include).await?,
                });
            }
            let vols: Vec<(String, String, String, bool)> =
                sqlx::query_as("SELECT source, target, mode, read_only FROM volumes WHERE project_id = ? ORDER BY position")
                    .bind(p.id)
                    .fetch_all(&mut *conn)
                    .await?;
            let volumes = vols
                .into_iter()
                .map(|(source, target, mode, read_only)| VolumeSpec {
                    source,
                    target,
                    mode: if mode == "isolated" {
                        VolumeMode::Isolated
                    } else {
                        VolumeMode::Shared
                    },
                    read_only,
                })
                .collect();
            projects.push(ProjectSpec {
                name: ProjectName::parse(p.name).map_err(|e| malformed("project", e))?,
                registry: p.registry_id.and_then(|id| reg_names.get(&id).cloned()),
                image: ImageRef::parse(&p.image).map_err(|e| malformed("image", e))?,
                port: p.port as u16,
                health: serde_json::from_str::<HealthCheck>(&p.health)
                    .map_err(|e| malformed("health", e))?,
                env: self.load_env(conn, p.id, None, include).await?,
                volumes,
                memory_bytes: p.memory_bytes.map(|b| b as u64),
                cpus: p.cpus,
                labels: serde_json::from_str(&p.labels).map_err(|e| malformed("labels", e))?,
                poll_interval_secs: p.poll_interval_secs.map(|s| s as u64),
                stages,
            });
        }
        Ok(projects)
    }

    /// One project, ready to deploy: its secrets opened (they go into containers' env), and
    /// the credentials of its registry if it names one.
    pub async fn project_for_deploy(
        &self,
        name: &str,
    ) -> Result<Option<(ProjectSpec, Option<RegistrySpec>)>> {
        let mut conn = self.pool.acquire().await?;
        let regs: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM registries")
            .fetch_all(&mut *conn)
            .await?;
        let reg_names: BTreeMap<i64, String> = regs.into_iter().collect();
        let Some(project) = self
            .load_projects(&mut conn, Some(name), IncludeSecrets::Yes, &reg_names)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        drop(conn);
        let registry = match &project.registry {
            Some(r) => self.export_registry(r).await?,
            None => None,
        };
        Ok(Some((project, registry)))
    }

    pub(crate) async fn export_registry(&self, name: &str) -> Result<Option<RegistrySpec>> {
        let row: Option<RegistryRow> = sqlx::query_as(
            "SELECT id, name, kind, url, username, secret_id FROM registries WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let secret = match r.secret_id {
            Some(id) => Some(self.open_secret(&mut conn, id).await?),
            None => None,
        };
        Ok(Some(RegistrySpec {
            name: r.name,
            kind: r.kind.parse().map_err(|e| malformed("registry kind", e))?,
            url: r.url,
            username: r.username,
            secret,
        }))
    }

    /// Every project with its stages, by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectSummary>> {
        let rows: Vec<(i64, String, String, i64)> =
            sqlx::query_as("SELECT id, name, image, port FROM projects ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        #[derive(sqlx::FromRow)]
        struct S {
            project_id: i64,
            name: String,
            tag_pattern: String,
            auto_deploy: bool,
            max_instances: i64,
            promote_from: Option<String>,
            confirm: bool,
        }
        let stages: Vec<S> = sqlx::query_as(
            "SELECT project_id, name, tag_pattern, auto_deploy, max_instances, promote_from, confirm FROM stages ORDER BY project_id, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, image, port)| ProjectSummary {
                id,
                name,
                image,
                port: port as u16,
                stages: stages
                    .iter()
                    .filter(|s| s.project_id == id)
                    .map(|s| StageSummary {
                        name: s.name.clone(),
                        tag_pattern: s.tag_pattern.clone(),
                        auto_deploy: s.auto_deploy,
                        max_instances: s.max_instances as u32,
                        promote_from: s.promote_from.clone(),
                        confirm: s.confirm,
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    const EXAMPLE: &str = include_str!("../../../seed.example.yaml");

    #[tokio::test]
    async fn first_start_imports_once_and_exports_back() {
        let s = test_store().await;
        let seed = Seed::parse(EXAMPLE).unwrap();
        let admin = Username::parse("admin").unwrap();
        assert!(
            s.initialize(Some(&seed), Some((&admin, "$argon2id$h")))
                .await
                .unwrap()
        );
        assert!(
            !s.initialize(Some(&seed), Some((&admin, "$argon2id$h")))
                .await
                .unwrap(),
            "ran twice"
        );
        assert_eq!(s.count_users().await.unwrap(), 1);
        assert!(s.initialized_at().await.unwrap().is_some());

        let full = s.export_seed(IncludeSecrets::Yes).await.unwrap();
        assert_eq!(full, seed);

        let hidden = s.export_seed(IncludeSecrets::No).await.unwrap();
        let yaml = hidden.to_yaml(IncludeSecrets::No);
        assert!(!yaml.contains("change-me"), "{yaml}");
        assert!(!yaml.contains("s3cr3t-session-key"), "{yaml}");

        let list = s.list_projects().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].stages.len(), 3);
    }

    #[tokio::test]
    async fn npm_settings_keep_replace_and_clear_the_password() {
        let s = test_store().await;
        assert!(s.npm_settings().await.unwrap().is_none());
        let mut n = NpmSettings {
            url: "http://npm:81".into(),
            email: "berth@example.com".into(),
            password: None,
            upstream: UpstreamMode::HostPort,
            certificate_id: None,
            websockets: false,
        };
        s.set_npm_settings(&n, SecretUpdate::Replace(SecretString::new("pw-one")))
            .await
            .unwrap();
        assert!(s.npm_settings().await.unwrap().unwrap().has_password);
        n.url = "http://npm2:81".into();
        s.set_npm_settings(&n, SecretUpdate::Keep).await.unwrap();
        let c = s.npm_connection().await.unwrap().unwrap();
        assert_eq!(
            (c.url.as_str(), c.password.unwrap().expose()),
            ("http://npm2:81", "pw-one")
        );
        s.set_npm_settings(&n, SecretUpdate::Replace(SecretString::new("pw-two")))
            .await
            .unwrap();
        assert_eq!(
            s.npm_connection()
                .await
                .unwrap()
                .unwrap()
                .password
                .unwrap()
                .expose(),
            "pw-two"
        );
        let (secrets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(secrets, 1, "the replaced password must be deleted");
        s.set_npm_settings(&n, SecretUpdate::Clear).await.unwrap();
        assert!(!s.npm_settings().await.unwrap().unwrap().has_password);
        assert!(s.delete_npm_settings().await.unwrap());
        assert!(s.npm_settings().await.unwrap().is_none());
        let (secrets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(secrets, 0);
    }

    #[tokio::test]
    async fn a_failed_import_leaves_nothing_behind() {
        let s = test_store().await;
        let mut seed = Seed::parse(EXAMPLE).unwrap();
        // Two projects with one name: the second insert fails inside the transaction.
        seed.projects.push(seed.projects[0].clone());
        let admin = Username::parse("admin").unwrap();
        let e = s
            .initialize(Some(&seed), Some((&admin, "h")))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert!(s.list_projects().await.unwrap().is_empty());
        assert_eq!(s.count_users().await.unwrap(), 0);
        assert!(s.initialized_at().await.unwrap().is_none());
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
