//! The audit log: who did what, when, from where. Never secret values.

use crate::{Result, Store, now};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    /// Records an action. `detail` must hold no secrets (callers pass ids and names).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        ip: Option<&str>,
        detail: Option<serde_json::Value>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (at, actor, action, target, ip, detail) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(now())
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(ip)
            .bind(detail.map(|d| d.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest entries first.
    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as("SELECT id, at, actor, action, target, ip, detail FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;

    #[tokio::test]
    async fn newest_first() {
        let s = test_store().await;
        s.audit("alice", "login.succeeded", None, Some("127.0.0.1"), None)
            .await
            .unwrap();
        s.audit(
            "alice",
            "settings.updated",
            Some("global"),
            None,
            Some(serde_json::json!({"fields": ["domain"]})),
        )
        .await
        .unwrap();
        let e = s.audit_entries(10).await.unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].action, "settings.updated");
        assert_eq!(e[1].ip.as_deref(), Some("127.0.0.1"));
    }
}
