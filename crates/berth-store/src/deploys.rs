//! Deploy records (state, steps with timings, log lines) and instances.

use crate::{Result, Store, StoreError, now};
use berth_domain::deploy::{DeployState, Trigger};
use serde::Serialize;

/// A deploy as the API and the deployer see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeployRecord {
    pub id: String,
    pub project: String,
    pub stage: String,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub stage_id: i64,
    pub trigger: String,
    pub actor: String,
    pub image: String,
    pub tag: String,
    pub digest: Option<String>,
    pub state: String,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StepRecord {
    pub step: String,
    pub state: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogLine {
    pub id: i64,
    pub at: String,
    pub level: String,
    pub line: String,
}

/// An instance: one container of a project in a stage.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InstanceRecord {
    pub id: String,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub stage_id: i64,
    pub deploy_id: Option<String>,
    pub container_id: Option<String>,
    pub container_name: String,
    pub tag: String,
    pub digest: Option<String>,
    pub subdomain: String,
    /// starting, live, kept, stopped, removed, failed
    pub status: String,
    pub route_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

macro_rules! deploy_cols {
    () => {
        "d.id, p.name AS project, s.name AS stage, d.project_id, d.stage_id, d.trigger, d.actor, d.image, d.tag, d.digest, d.state, d.error, d.created_at, d.started_at, d.finished_at"
    };
}
macro_rules! instance_cols {
    () => {
        "id, project_id, stage_id, deploy_id, container_id, container_name, tag, digest, subdomain, status, route_id, created_at, updated_at"
    };
}

/// New deploy's fields.
pub struct NewDeploy<'a> {
    pub project_id: i64,
    pub stage_id: i64,
    pub trigger: Trigger,
    pub actor: &'a str,
    pub image: &'a str,
    pub tag: &'a str,
}

impl Store {
    /// The ids of a project and one of its stages.
    pub async fn stage_ids(&self, project: &str, stage: &str) -> Result<Option<(i64, i64)>> {
        Ok(sqlx::query_as("SELECT p.id, s.id FROM projects p JOIN stages s ON s.project_id = p.id WHERE p.name = ? AND s.name = ?")
            .bind(project)
            .bind(stage)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records a queued deploy and supersedes the stage's other queued ones, in one
    /// transaction; returns the new id and the superseded ids.
    pub async fn queue_deploy(&self, d: &NewDeploy<'_>) -> Result<(String, Vec<String>)> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        let superseded: Vec<(String,)> = sqlx::query_as(
            "UPDATE deploys SET state = 'superseded', finished_at = ?, error = ? WHERE stage_id = ? AND state = 'queued' RETURNING id",
        )
        .bind(now())
        .bind(format!("superseded by deploy {id} ({})", d.tag))
        .bind(d.stage_id)
        .fetch_all(&mut *tx)
        .await?;
        let trigger = serde_json::to_value(d.trigger)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO deploys (id, project_id, stage_id, trigger, actor, image, tag, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
        )
        .bind(&id)
        .bind(d.project_id)
        .bind(d.stage_id)
        .bind(trigger)
        .bind(d.actor)
        .bind(d.image)
        .bind(d.tag)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, superseded.into_iter().map(|(i,)| i).collect()))
    }

    /// Takes a queued deploy to `resolving`, atomically: false if it is no longer queued
    /// (superseded or cancelled meanwhile). A deploy is either claimed or superseded, never both.
    pub async fn claim_deploy(&self, id: &str) -> Result<bool> {
        let t = now();
        let done = sqlx::query("UPDATE deploys SET state = 'resolving', started_at = ? WHERE id = ? AND state = 'queued'")
            .bind(&t)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn deploy(&self, id: &str) -> Result<DeployRecord> {
        let row: Option<DeployRecord> = sqlx::query_as(concat!(
            "SELECT ",
            deploy_cols!(),
            " FROM deploys d JOIN projects p ON p.id = d.project_id JOIN stages s ON s.id = d.stage_id WHERE d.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| StoreError::NotFound(format!("no deploy {id}")))
    }

    /// Newest first, optionally for one project.
    pub async fn list_deploys(
        &self,
        project: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeployRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            deploy_cols!(),
            " FROM deploys d JOIN projects p ON p.id = d.project_id JOIN stages s ON s.id = d.stage_id
              WHERE ?1 IS NULL OR p.name = ?1 ORDER BY d.id DESC LIMIT ?2"
        ))
        .bind(project)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deploys not in a terminal state (for start-up reconciliation), oldest first.
    pub async fn unfinished_deploys(&self) -> Result<Vec<DeployRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            deploy_cols!(),
            " FROM deploys d JOIN projects p ON p.id = d.project_id JOIN stages s ON s.id = d.stage_id
              WHERE d.state NOT IN ('succeeded', 'failed', 'rolled_back', 'cancelled', 'superseded') ORDER BY d.id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Moves a deploy to `state` (the caller checked the transition); terminal states set
    /// `finished_at`, leaving `queued` sets `started_at`.
    pub async fn set_deploy_state(
        &self,
        id: &str,
        state: DeployState,
        error: Option<&str>,
    ) -> Result<()> {
        let t = now();
        sqlx::query(
            "UPDATE deploys SET state = ?, error = COALESCE(?, error),
               started_at = CASE WHEN started_at IS NULL AND ? <> 'queued' THEN ? ELSE started_at END,
               finished_at = CASE WHEN ? THEN ? ELSE finished_at END
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(state.as_str())
        .bind(&t)
        .bind(state.is_terminal())
        .bind(&t)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_deploy_digest(&self, id: &str, digest: &str) -> Result<()> {
        sqlx::query("UPDATE deploys SET digest = ? WHERE id = ?")
            .bind(digest)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a step; returns its row id.
    pub async fn start_step(&self, deploy: &str, step: DeployState) -> Result<i64> {
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO deploy_steps (deploy_id, step, state, started_at) VALUES (?, ?, 'running', ?) RETURNING id")
                .bind(deploy)
                .bind(step.as_str())
                .bind(now())
                .fetch_one(&self.pool)
                .await?;
        Ok(id)
    }

    /// Ends a step: `done`, `failed` or `skipped`, with a message.
    pub async fn finish_step(
        &self,
        step_id: i64,
        state: &str,
        message: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE deploy_steps SET state = ?, finished_at = ?, message = ? WHERE id = ?")
            .bind(state)
            .bind(now())
            .bind(message)
            .bind(step_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn deploy_steps(&self, deploy: &str) -> Result<Vec<StepRecord>> {
        Ok(sqlx::query_as("SELECT step, state, started_at, finished_at, message FROM deploy_steps WHERE deploy_id = ? ORDER BY id")
            .bind(deploy)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn deploy_log(&self, deploy: &str, level: &str, line: &str) -> Result<()> {
        sqlx::query("INSERT INTO deploy_logs (deploy_id, at, level, line) VALUES (?, ?, ?, ?)")
            .bind(deploy)
            .bind(now())
            .bind(level)
            .bind(line)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Log lines after `after` (an id), oldest first.
    pub async fn deploy_logs(&self, deploy: &str, after: i64) -> Result<Vec<LogLine>> {
        Ok(sqlx::query_as("SELECT id, at, level, line FROM deploy_logs WHERE deploy_id = ? AND id > ? ORDER BY id LIMIT 5000")
            .bind(deploy)
            .bind(after)
            .fetch_all(&self.pool)
            .await?)
    }

    // ----- instances -----

    pub async fn create_instance(&self, i: &InstanceRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, project_id, stage_id, deploy_id, container_id, container_name, tag, digest, subdomain, status, route_id, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&i.id)
        .bind(i.project_id)
        .bind(i.stage_id)
        .bind(&i.deploy_id)
        .bind(&i.container_id)
        .bind(&i.container_name)
        .bind(&i.tag)
        .bind(&i.digest)
        .bind(&i.subdomain)
        .bind(&i.status)
        .bind(i.route_id)
        .bind(&i.created_at)
        .bind(&i.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_instance(
        &self,
        id: &str,
        status: &str,
        container_id: Option<&str>,
        route_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET status = ?, container_id = COALESCE(?, container_id), route_id = COALESCE(?, route_id), updated_at = ? WHERE id = ?",
        )
        .bind(status)
        .bind(container_id)
        .bind(route_id)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            instance_cols!(),
            " FROM instances WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A stage's instances that still have a container (not removed), newest first.
    pub async fn stage_instances(&self, stage_id: i64) -> Result<Vec<InstanceRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            instance_cols!(),
            " FROM instances WHERE stage_id = ? AND status <> 'removed' ORDER BY id DESC"
        ))
        .bind(stage_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The image digests of `repository` (`registry/org/app`) that something still needs: an
    /// instance that is not removed, or a deploy that has not finished (rollbacks and
    /// promotions are pinned to one), across every project using the repository.
    pub async fn digests_in_use(&self, repository: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT i.digest FROM instances i JOIN projects p ON p.id = i.project_id
              WHERE p.image = ? AND i.status <> 'removed' AND i.digest IS NOT NULL
             UNION
             SELECT d.digest FROM deploys d JOIN projects p ON p.id = d.project_id
              WHERE p.image = ? AND d.finished_at IS NULL AND d.digest IS NOT NULL",
        )
        .bind(repository)
        .bind(repository)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Every instance id berth still knows (any status but removed): reconciliation removes
    /// containers labelled with an instance id not in this list.
    pub async fn known_instance_ids(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM instances WHERE status <> 'removed'")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(i,)| i).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;
    use berth_config::seed::Seed;

    const EXAMPLE: &str = include_str!("../../../seed.example.yaml");

    #[tokio::test]
    async fn queue_supersede_steps_logs_and_instances() {
        let s = test_store().await;
        s.initialize(Some(&Seed::parse(EXAMPLE).unwrap()), None)
            .await
            .unwrap();
        let (pid, sid) = s
            .stage_ids("web-app-launcher", "dev")
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.stage_ids("web-app-launcher", "nope")
                .await
                .unwrap()
                .is_none()
        );
        let new = |tag: &'static str| NewDeploy {
            project_id: pid,
            stage_id: sid,
            trigger: Trigger::Webhook,
            actor: "ci",
            image: "r/a",
            tag,
        };
        let (a, sup) = s.queue_deploy(&new("dev-1")).await.unwrap();
        assert!(sup.is_empty());
        let (b, sup) = s.queue_deploy(&new("dev-2")).await.unwrap();
        assert_eq!(
            sup,
            vec![a.clone()],
            "a newer image supersedes the queued one"
        );
        assert_eq!(s.deploy(&a).await.unwrap().state, "superseded");
        assert!(s.deploy(&a).await.unwrap().finished_at.is_some());
        // A claimed (running) deploy is not superseded, and a superseded one cannot be claimed.
        assert!(!s.claim_deploy(&a).await.unwrap());
        assert!(s.claim_deploy(&b).await.unwrap());
        assert!(!s.claim_deploy(&b).await.unwrap());
        let (c, sup) = s.queue_deploy(&new("dev-3")).await.unwrap();
        assert!(sup.is_empty());
        assert_eq!(s.unfinished_deploys().await.unwrap().len(), 2);
        assert!(b < c, "UUIDv7 ids sort by creation");

        let step = s.start_step(&b, DeployState::Pulling).await.unwrap();
        s.finish_step(step, "done", Some("pulled in 0.2 s"))
            .await
            .unwrap();
        s.deploy_log(&b, "info", "pulling r/a:dev-2").await.unwrap();
        s.set_deploy_digest(&b, "sha256:abc").await.unwrap();
        s.set_deploy_state(&b, DeployState::Failed, Some("health check failed"))
            .await
            .unwrap();
        let d = s.deploy(&b).await.unwrap();
        assert_eq!(
            (d.state.as_str(), d.error.as_deref(), d.digest.as_deref()),
            ("failed", Some("health check failed"), Some("sha256:abc"))
        );
        assert!(d.started_at.is_some() && d.finished_at.is_some());
        assert_eq!(
            s.deploy_steps(&b).await.unwrap()[0].message.as_deref(),
            Some("pulled in 0.2 s")
        );
        let logs = s.deploy_logs(&b, 0).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert!(s.deploy_logs(&b, logs[0].id).await.unwrap().is_empty());
        let list = s.list_deploys(Some("web-app-launcher"), 10).await.unwrap();
        assert_eq!(list[0].id, c, "newest first");
        assert_eq!(list[0].project, "web-app-launcher");

        let t = now();
        let inst = InstanceRecord {
            id: "i-1".into(),
            project_id: pid,
            stage_id: sid,
            deploy_id: Some(b.clone()),
            container_id: None,
            container_name: "berth-x".into(),
            tag: "dev-2".into(),
            digest: None,
            subdomain: "stage-dev-x".into(),
            status: "starting".into(),
            route_id: None,
            created_at: t.clone(),
            updated_at: t,
        };
        s.create_instance(&inst).await.unwrap();
        s.set_instance("i-1", "live", Some("cid"), Some(7))
            .await
            .unwrap();
        let got = s.instance("i-1").await.unwrap().unwrap();
        assert_eq!(
            (
                got.status.as_str(),
                got.container_id.as_deref(),
                got.route_id
            ),
            ("live", Some("cid"), Some(7))
        );
        assert_eq!(s.stage_instances(sid).await.unwrap().len(), 1);
        s.set_instance("i-1", "removed", None, None).await.unwrap();
        assert!(s.stage_instances(sid).await.unwrap().is_empty());
        assert!(s.known_instance_ids().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_project_loads_with_its_secrets_for_deploying() {
        let s = test_store().await;
        s.initialize(Some(&Seed::parse(EXAMPLE).unwrap()), None)
            .await
            .unwrap();
        let (p, reg) = s
            .project_for_deploy("web-app-launcher")
            .await
            .unwrap()
            .unwrap();
        match &p.env["SECRET_KEY"] {
            berth_domain::model::EnvValue::Secret(v) => {
                assert_eq!(v.expose(), "s3cr3t-session-key")
            }
            other => panic!("{other:?}"),
        }
        let reg = reg.unwrap();
        assert_eq!(reg.secret.unwrap().expose(), "change-me-gitea-token");
        assert!(s.project_for_deploy("nope").await.unwrap().is_none());
    }
}

/// The registry poller's view of one project.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PollStatus {
    pub last_checked: Option<String>,
    pub last_error: Option<String>,
    pub failures: i64,
    pub next_check: String,
}

impl Store {
    /// The poller's status of a project, if it has looked at it.
    pub async fn poll_status(&self, project: &str) -> Result<Option<PollStatus>> {
        Ok(sqlx::query_as(
            "SELECT s.last_checked, s.last_error, s.failures, s.next_check
               FROM poll_status s JOIN projects p ON p.id = s.project_id WHERE p.name = ?",
        )
        .bind(project)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a poll of a project.
    pub async fn set_poll_status(&self, project: &str, s: &PollStatus) -> Result<()> {
        sqlx::query(
            "INSERT INTO poll_status (project_id, last_checked, last_error, failures, next_check)
             SELECT id, ?, ?, ?, ? FROM projects WHERE name = ?
             ON CONFLICT (project_id) DO UPDATE SET last_checked = excluded.last_checked,
               last_error = excluded.last_error, failures = excluded.failures, next_check = excluded.next_check",
        )
        .bind(&s.last_checked)
        .bind(&s.last_error)
        .bind(s.failures)
        .bind(&s.next_check)
        .bind(project)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest deploy of a stage (any state).
    pub async fn last_deploy(&self, stage_id: i64) -> Result<Option<DeployRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            deploy_cols!(),
            " FROM deploys d JOIN projects p ON p.id = d.project_id JOIN stages s ON s.id = d.stage_id WHERE d.stage_id = ? ORDER BY d.id DESC LIMIT 1"
        ))
        .bind(stage_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}
