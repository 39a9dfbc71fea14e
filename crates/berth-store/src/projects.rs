//! Projects and stages as the API edits them: create, replace (stages matched by name, so
//! their deploy history stays), delete. Every write is one transaction, and validation that
//! needs the database (a secret to keep, a stage still running) refuses before anything
//! changes.

use crate::{Result, Store, StoreError, now};
use berth_config::seed::IncludeSecrets;
use berth_domain::model::{EnvValue, ProjectSpec};
use sqlx::SqliteConnection;
use std::collections::BTreeMap;

/// Instances that still hold a container (anything but removed).
const ACTIVE_INSTANCES: &str =
    "SELECT COUNT(*) FROM instances WHERE stage_id = ? AND status <> 'removed'";
/// Deploys that have not finished (queued or running).
const OPEN_DEPLOYS: &str =
    "SELECT COUNT(*) FROM deploys WHERE stage_id = ? AND finished_at IS NULL";

/// Whose env rows.
#[derive(Clone, Copy)]
enum Owner {
    Stage,
    Project,
}

impl Store {
    /// Names a project may use as its `registry`.
    pub async fn registry_names(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM registries ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// The registry (with its secret opened) whose URL names `host` (`ghcr.io`,
    /// `127.0.0.1:15001`), for pulling an image no project names yet.
    pub async fn registry_for_host(
        &self,
        host: &str,
    ) -> Result<Option<berth_domain::model::RegistrySpec>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, url FROM registries")
            .fetch_all(&self.pool)
            .await?;
        let found = rows
            .into_iter()
            .find(|(_, url)| berth_domain::model::registry_host(url).eq_ignore_ascii_case(host));
        match found {
            Some((name, _)) => self.export_registry(&name).await,
            None => Ok(None),
        }
    }

    /// The login for an image on `host`, from the stored registry whose URL names it.
    pub async fn registry_auth_for_host(
        &self,
        host: &str,
    ) -> Result<Option<berth_domain::ports::RegistryAuth>> {
        Ok(self
            .registry_for_host(host)
            .await?
            .and_then(|r| r.auth_for(host)))
    }

    /// One project as the API shows it: secret env values sealed (empty).
    pub async fn project(&self, name: &str) -> Result<Option<ProjectSpec>> {
        let mut conn = self.pool.acquire().await?;
        let regs: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM registries")
            .fetch_all(&mut *conn)
            .await?;
        let reg_names: BTreeMap<i64, String> = regs.into_iter().collect();
        Ok(self
            .load_projects(&mut conn, Some(name), IncludeSecrets::No, &reg_names)
            .await?
            .pop())
    }

    async fn registry_id(conn: &mut SqliteConnection, p: &ProjectSpec) -> Result<Option<i64>> {
        let Some(name) = &p.registry else {
            return Ok(None);
        };
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM registries WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|(id,)| Some(id))
            .ok_or_else(|| StoreError::Invalid(format!("registry: no registry named {name:?}")))
    }

    /// Creates a project with its stages. A project of that name already existing is a
    /// conflict; an empty secret ("keep the stored one") is invalid, there is none.
    pub async fn create_project(&self, p: &ProjectSpec) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let registry_id = Self::registry_id(&mut tx, p).await?;
        let id = self.insert_project(&mut tx, p, registry_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn insert_project(
        &self,
        conn: &mut SqliteConnection,
        p: &ProjectSpec,
        registry_id: Option<i64>,
    ) -> Result<i64> {
        let t = now();
        let (pid,): (i64,) = sqlx::query_as(
            "INSERT INTO projects (name, registry_id, image, port, health, memory_bytes, cpus, labels, poll_interval_secs, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(p.name.as_str())
        .bind(registry_id)
        .bind(p.image.name())
        .bind(p.port as i64)
        .bind(serde_json::to_string(&p.health).expect("health serialises"))
        .bind(p.memory_bytes.map(|b| b as i64))
        .bind(p.cpus)
        .bind(serde_json::to_string(&p.labels).expect("labels serialise"))
        .bind(p.poll_interval_secs.map(|s| s as i64))
        .bind(&t)
        .bind(&t)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("a project named {} already exists", p.name))
            }
            _ => e.into(),
        })?;
        self.write_env(conn, pid, None, &p.env).await?;
        self.write_volumes(conn, pid, p).await?;
        for s in &p.stages {
            let sid = Self::insert_stage(conn, pid, s, &t).await?;
            self.write_env(conn, pid, Some(sid), &s.env).await?;
        }
        Ok(pid)
    }

    async fn insert_stage(
        conn: &mut SqliteConnection,
        pid: i64,
        s: &berth_domain::model::StageSpec,
        t: &str,
    ) -> Result<i64> {
        let (sid,): (i64,) = sqlx::query_as(
            "INSERT INTO stages (project_id, name, tag_pattern, auto_deploy, max_instances, promote_from, confirm, subdomain, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(pid)
        .bind(s.name.as_str())
        .bind(s.tag_pattern.as_str())
        .bind(s.auto_deploy)
        .bind(s.max_instances as i64)
        .bind(s.promote_from.as_ref().map(|n| n.as_str()))
        .bind(s.confirm)
        .bind(&s.subdomain)
        .bind(t)
        .bind(t)
        .fetch_one(&mut *conn)
        .await?;
        Ok(sid)
    }

    async fn write_volumes(
        &self,
        conn: &mut SqliteConnection,
        pid: i64,
        p: &ProjectSpec,
    ) -> Result<()> {
        sqlx::query("DELETE FROM volumes WHERE project_id = ?")
            .bind(pid)
            .execute(&mut *conn)
            .await?;
        for (i, v) in p.volumes.iter().enumerate() {
            sqlx::query("INSERT INTO volumes (project_id, position, source, target, mode, read_only) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(pid)
                .bind(i as i64)
                .bind(&v.source)
                .bind(&v.target)
                .bind(v.mode.as_str())
                .bind(v.read_only)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Replaces the env of one scope (the project's, or a stage's overrides). An empty secret
    /// keeps the stored secret of that key; secrets no longer used are deleted, so no
    /// ciphertext outlives its variable.
    async fn write_env(
        &self,
        conn: &mut SqliteConnection,
        project_id: i64,
        stage_id: Option<i64>,
        env: &BTreeMap<String, EnvValue>,
    ) -> Result<()> {
        let old: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT key, secret_id FROM env_vars WHERE project_id = ? AND stage_id IS ?",
        )
        .bind(project_id)
        .bind(stage_id)
        .fetch_all(&mut *conn)
        .await?;
        let old: BTreeMap<String, Option<i64>> = old.into_iter().collect();
        sqlx::query("DELETE FROM env_vars WHERE project_id = ? AND stage_id IS ?")
            .bind(project_id)
            .bind(stage_id)
            .execute(&mut *conn)
            .await?;
        let mut reused = Vec::new();
        for (k, v) in env {
            let (value, secret_id) = match v {
                EnvValue::Plain(s) => (Some(s.clone()), None),
                EnvValue::Secret(s) if s.expose().is_empty() => match old.get(k) {
                    Some(Some(id)) => {
                        reused.push(*id);
                        (None, Some(*id))
                    }
                    _ => {
                        return Err(StoreError::Invalid(format!(
                            "env {k}: there is no stored secret to keep; give its value"
                        )));
                    }
                },
                EnvValue::Secret(s) => (
                    None,
                    Some(self.insert_secret(conn, &format!("env:{k}"), s).await?),
                ),
            };
            sqlx::query("INSERT INTO env_vars (project_id, stage_id, key, value, secret_id) VALUES (?, ?, ?, ?, ?)")
                .bind(project_id)
                .bind(stage_id)
                .bind(k)
                .bind(value)
                .bind(secret_id)
                .execute(&mut *conn)
                .await?;
        }
        for id in old.values().flatten().filter(|id| !reused.contains(id)) {
            Store::delete_secret(&mut *conn, *id).await?;
        }
        Ok(())
    }

    /// Replaces a project's configuration. Stages are matched by name: kept stages keep their
    /// deploys and instances; new ones are added; a stage left out is deleted, which is
    /// refused while it still has instances or unfinished deploys.
    pub async fn update_project(&self, p: &ProjectSpec) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM projects WHERE name = ?")
            .bind(p.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((pid,)) = row else {
            return Err(StoreError::NotFound(format!("no project named {}", p.name)));
        };
        let registry_id = Self::registry_id(&mut tx, p).await?;
        let t = now();
        sqlx::query(
            "UPDATE projects SET registry_id = ?, image = ?, port = ?, health = ?, memory_bytes = ?, cpus = ?, labels = ?, poll_interval_secs = ?, updated_at = ? WHERE id = ?",
        )
        .bind(registry_id)
        .bind(p.image.name())
        .bind(p.port as i64)
        .bind(serde_json::to_string(&p.health).expect("health serialises"))
        .bind(p.memory_bytes.map(|b| b as i64))
        .bind(p.cpus)
        .bind(serde_json::to_string(&p.labels).expect("labels serialise"))
        .bind(p.poll_interval_secs.map(|s| s as i64))
        .bind(&t)
        .bind(pid)
        .execute(&mut *tx)
        .await?;
        self.write_env(&mut tx, pid, None, &p.env).await?;
        self.write_volumes(&mut tx, pid, p).await?;

        let existing: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM stages WHERE project_id = ?")
                .bind(pid)
                .fetch_all(&mut *tx)
                .await?;
        for (sid, name) in &existing {
            if !p.stages.iter().any(|s| s.name.as_str() == name) {
                Self::delete_stage_rows(&mut tx, p.name.as_str(), *sid, name).await?;
            }
        }
        for s in &p.stages {
            let sid = match existing.iter().find(|(_, n)| n == s.name.as_str()) {
                Some((sid, _)) => {
                    sqlx::query(
                        "UPDATE stages SET tag_pattern = ?, auto_deploy = ?, max_instances = ?, promote_from = ?, confirm = ?, subdomain = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(s.tag_pattern.as_str())
                    .bind(s.auto_deploy)
                    .bind(s.max_instances as i64)
                    .bind(s.promote_from.as_ref().map(|n| n.as_str()))
                    .bind(s.confirm)
                    .bind(&s.subdomain)
                    .bind(&t)
                    .bind(sid)
                    .execute(&mut *tx)
                    .await?;
                    *sid
                }
                None => Self::insert_stage(&mut tx, pid, s, &t).await?,
            };
            self.write_env(&mut tx, pid, Some(sid), &s.env).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a stage's rows (its deploys and instances go with it), refusing while it
    /// still runs anything.
    async fn delete_stage_rows(
        conn: &mut SqliteConnection,
        project: &str,
        sid: i64,
        name: &str,
    ) -> Result<()> {
        let (active,): (i64,) = sqlx::query_as(ACTIVE_INSTANCES)
            .bind(sid)
            .fetch_one(&mut *conn)
            .await?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "stage {project}/{name} still has {active} instance(s): remove them first"
            )));
        }
        let (open,): (i64,) = sqlx::query_as(OPEN_DEPLOYS)
            .bind(sid)
            .fetch_one(&mut *conn)
            .await?;
        if open > 0 {
            return Err(StoreError::Conflict(format!(
                "stage {project}/{name} has a deploy queued or running"
            )));
        }
        Self::delete_env_rows(conn, Owner::Stage, sid).await?;
        sqlx::query("DELETE FROM stages WHERE id = ?")
            .bind(sid)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Deletes env rows and then their secrets (the other order would null the rows'
    /// `secret_id` first, which the table's CHECK refuses).
    async fn delete_env_rows(conn: &mut SqliteConnection, of: Owner, id: i64) -> Result<()> {
        let (select, delete) = match of {
            Owner::Stage => (
                "SELECT secret_id FROM env_vars WHERE stage_id = ? AND secret_id IS NOT NULL",
                "DELETE FROM env_vars WHERE stage_id = ?",
            ),
            Owner::Project => (
                "SELECT secret_id FROM env_vars WHERE project_id = ? AND secret_id IS NOT NULL",
                "DELETE FROM env_vars WHERE project_id = ?",
            ),
        };
        let ids: Vec<(i64,)> = sqlx::query_as(select)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        sqlx::query(delete).bind(id).execute(&mut *conn).await?;
        for (sid,) in ids {
            Store::delete_secret(&mut *conn, sid).await?;
        }
        Ok(())
    }

    /// Deletes a project and its records, refusing while any stage still runs anything.
    pub async fn delete_project(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM projects WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((pid,)) = row else {
            return Err(StoreError::NotFound(format!("no project named {name}")));
        };
        let stages: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM stages WHERE project_id = ?")
                .bind(pid)
                .fetch_all(&mut *tx)
                .await?;
        for (sid, sname) in &stages {
            Self::delete_stage_rows(&mut tx, name, *sid, sname).await?;
        }
        Self::delete_env_rows(&mut tx, Owner::Project, pid).await?;
        sqlx::query("DELETE FROM projects WHERE id = ?")
            .bind(pid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;
    use berth_config::seed::project_from_json;
    use berth_domain::model::EnvValue;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> berth_domain::model::ProjectSpec {
        project_from_json(v, &[]).unwrap()
    }

    fn shop() -> serde_json::Value {
        json!({
            "name": "shop",
            "image": "registry.test/shop",
            "port": 8080,
            "env": {"TOKEN": {"value": "t0ken-value", "secret": true}, "MODE": "prod"},
            "volumes": [{"source": "/srv/shop", "target": "/data", "mode": "shared"}],
            "stages": {
                "dev": {"tag_pattern": "dev-*", "env": {"PASS": {"value": "dev-pass", "secret": true}}},
                "prod": {"tag_pattern": "v*"}
            }
        })
    }

    async fn secret_count(s: &crate::Store) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        n
    }

    #[tokio::test]
    async fn create_read_update_delete_keeps_secrets_sealed_and_tidy() {
        let s = test_store().await;
        s.create_project(&spec(shop())).await.unwrap();
        let e = s.create_project(&spec(shop())).await.unwrap_err();
        assert!(matches!(e, crate::StoreError::Conflict(_)), "{e}");
        assert_eq!(secret_count(&s).await, 2);

        let shown = s.project("shop").await.unwrap().unwrap();
        match &shown.env["TOKEN"] {
            EnvValue::Secret(v) => assert!(v.expose().is_empty(), "sealed in views"),
            other => panic!("{other:?}"),
        }

        // Keep TOKEN as stored (redacted), drop the dev secret, drop stage prod, add qa.
        let mut v = shop();
        v["env"]["TOKEN"] = json!({"secret": true});
        v["port"] = 9090.into();
        v["stages"] = json!({"dev": {"tag_pattern": "dev-*"}, "qa": {"tag_pattern": "qa-*"}});
        let dev_id = s.stage_ids("shop", "dev").await.unwrap().unwrap().1;
        s.update_project(&spec(v)).await.unwrap();
        assert_eq!(
            s.stage_ids("shop", "dev").await.unwrap().unwrap().1,
            dev_id,
            "a kept stage keeps its id (and so its history)"
        );
        assert!(s.stage_ids("shop", "prod").await.unwrap().is_none());
        assert!(s.stage_ids("shop", "qa").await.unwrap().is_some());
        let (full, _) = s.project_for_deploy("shop").await.unwrap().unwrap();
        assert_eq!(full.port, 9090);
        match &full.env["TOKEN"] {
            EnvValue::Secret(v) => assert_eq!(v.expose(), "t0ken-value", "kept"),
            other => panic!("{other:?}"),
        }
        assert_eq!(secret_count(&s).await, 1, "the dropped secret is deleted");

        // Keeping a secret that does not exist is refused, and nothing changes.
        let mut bad = shop();
        bad["env"]["NEW"] = json!({"secret": true});
        let e = s.update_project(&spec(bad)).await.unwrap_err();
        assert!(matches!(e, crate::StoreError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("NEW"), "{e}");
        assert_eq!(
            s.project_for_deploy("shop").await.unwrap().unwrap().0.port,
            9090
        );

        s.delete_project("shop").await.unwrap();
        assert!(s.project("shop").await.unwrap().is_none());
        assert_eq!(secret_count(&s).await, 0);
        let e = s.delete_project("shop").await.unwrap_err();
        assert!(matches!(e, crate::StoreError::NotFound(_)), "{e}");
    }

    #[tokio::test]
    async fn a_stage_with_instances_is_not_deleted() {
        let s = test_store().await;
        s.create_project(&spec(shop())).await.unwrap();
        let (pid, sid) = s.stage_ids("shop", "prod").await.unwrap().unwrap();
        s.create_instance(&crate::InstanceRecord {
            id: "i-1".into(),
            project_id: pid,
            stage_id: sid,
            deploy_id: None,
            container_id: Some("c".into()),
            container_name: "berth-shop-prod-v1".into(),
            tag: "v1".into(),
            digest: None,
            subdomain: "shop".into(),
            status: "live".into(),
            route_id: None,
            created_at: crate::now(),
            updated_at: crate::now(),
        })
        .await
        .unwrap();
        let mut v = shop();
        v["stages"].as_object_mut().unwrap().remove("prod");
        let e = s.update_project(&spec(v)).await.unwrap_err();
        assert!(e.to_string().contains("still has 1 instance"), "{e}");
        assert!(s.stage_ids("shop", "prod").await.unwrap().is_some());
        let e = s.delete_project("shop").await.unwrap_err();
        assert!(matches!(e, crate::StoreError::Conflict(_)), "{e}");
        s.set_instance("i-1", "removed", None, None).await.unwrap();
        s.delete_project("shop").await.unwrap();
    }
}
