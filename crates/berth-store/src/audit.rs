//! The audit log: who did what, when, from where. Never secret values.

use crate::{Result, Store, now};
use serde::Serialize;

/// What to look for in the audit log; every field optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Exactly this actor (case-insensitive).
    pub actor: Option<String>,
    /// Actions starting with this (`login.` finds every login).
    pub action: Option<String>,
    /// RFC 3339 times: at or after `since`, before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Entries older than this id (the next page).
    pub before: Option<i64>,
}

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
        self.audit_search(&AuditFilter::default(), limit).await
    }

    /// The newest entries matching `f` first.
    pub async fn audit_search(&self, f: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        let like = |v: &Option<String>| {
            v.as_ref()
                .map(|v| format!("{}%", v.replace(['%', '_'], "")))
        };
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, target, ip, detail FROM audit_log
             WHERE (?1 IS NULL OR actor = ?1 COLLATE NOCASE)
               AND (?2 IS NULL OR action LIKE ?2)
               AND (?3 IS NULL OR at >= ?3)
               AND (?4 IS NULL OR at < ?4)
               AND (?5 IS NULL OR id < ?5)
             ORDER BY id DESC LIMIT ?6",
        )
        .bind(&f.actor)
        .bind(like(&f.action))
        .bind(&f.since)
        .bind(&f.until)
        .bind(f.before)
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
