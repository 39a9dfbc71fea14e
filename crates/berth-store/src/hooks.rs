//! The webhook gateway's records: a sealed secret per source, and every delivery.

use crate::{Result, Store, StoreError, now};
use berth_crypto::SecretString;
use serde::Serialize;

/// A delivery as recorded.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub source: String,
    pub delivery_id: Option<String>,
    pub received_at: String,
    /// accepted, ignored, rejected or duplicate.
    pub outcome: String,
    pub reason: Option<String>,
    pub image: Option<String>,
    pub digest: Option<String>,
    /// JSON array of the deploy ids it queued.
    pub deploys: String,
    pub ip: Option<String>,
}

/// What to record.
#[derive(Debug, Clone, Default)]
pub struct NewDelivery<'a> {
    pub source: &'a str,
    pub delivery_id: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub image: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub deploys: &'a [String],
    pub ip: Option<&'a str>,
}

/// A source as the settings show it.
#[derive(Debug, Clone, Serialize)]
pub struct HookSourceView {
    pub source: String,
    pub updated_at: String,
}

impl Store {
    /// The secret of a source, opened, if one was set.
    pub async fn hook_secret(&self, source: &str) -> Result<Option<SecretString>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT secret_id FROM hook_sources WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
        let Some((id,)) = row else { return Ok(None) };
        let mut conn = self.pool.acquire().await?;
        Ok(Some(self.open_secret(&mut conn, id).await?))
    }

    /// Sets (or replaces) a source's secret; the old one stops working at once.
    pub async fn set_hook_secret(&self, source: &str, secret: &SecretString) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let old: Option<(i64,)> =
            sqlx::query_as("SELECT secret_id FROM hook_sources WHERE source = ?")
                .bind(source)
                .fetch_optional(&mut *tx)
                .await?;
        let id = self
            .insert_secret(&mut tx, &format!("hook:{source}"), secret)
            .await?;
        let t = now();
        sqlx::query(
            "INSERT INTO hook_sources (source, secret_id, created_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (source) DO UPDATE SET secret_id = excluded.secret_id, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(id)
        .bind(&t)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        if let Some((old,)) = old {
            Store::delete_secret(&mut tx, old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sources that have a secret.
    pub async fn hook_sources(&self) -> Result<Vec<HookSourceView>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT source, updated_at FROM hook_sources ORDER BY source")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(source, updated_at)| HookSourceView { source, updated_at })
            .collect())
    }

    /// Records a delivery. A sender's retry of a delivery already taken (same source and
    /// delivery id) is a [`StoreError::Conflict`].
    pub async fn record_delivery(&self, d: &NewDelivery<'_>) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO deliveries (source, delivery_id, received_at, outcome, reason, image, digest, deploys, ip)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(d.source)
        .bind(d.delivery_id)
        .bind(now())
        .bind(d.outcome)
        .bind(d.reason)
        .bind(d.image)
        .bind(d.digest)
        .bind(serde_json::to_string(d.deploys).expect("strings serialise"))
        .bind(d.ip)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                format!("delivery {} was already received", d.delivery_id.unwrap_or("")),
            ),
            _ => e.into(),
        })?;
        Ok(id)
    }

    /// Sets what became of a delivery recorded (claimed) before it was processed.
    pub async fn update_delivery(&self, id: i64, d: &NewDelivery<'_>) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET outcome = ?, reason = ?, image = ?, digest = ?, deploys = ? WHERE id = ?",
        )
        .bind(d.outcome)
        .bind(d.reason)
        .bind(d.image)
        .bind(d.digest)
        .bind(serde_json::to_string(d.deploys).expect("strings serialise"))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the same image and digest was accepted since `since` (RFC 3339): registries
    /// that notify twice for one push (and forges that send two events) deploy once.
    pub async fn accepted_since(&self, image: &str, digest: &str, since: &str) -> Result<bool> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM deliveries WHERE image = ? AND digest = ? AND outcome = 'accepted' AND received_at >= ?",
        )
        .bind(image)
        .bind(digest)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Recent deliveries, newest first, optionally of one source.
    pub async fn deliveries(&self, source: Option<&str>, limit: i64) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "SELECT id, source, delivery_id, received_at, outcome, reason, image, digest, deploys, ip
               FROM deliveries WHERE (? IS NULL OR source = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(source)
        .bind(source)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn secrets_replace_and_deliveries_deduplicate() {
        let s = test_store().await;
        assert!(s.hook_secret("github").await.unwrap().is_none());
        s.set_hook_secret("github", &SecretString::new("one"))
            .await
            .unwrap();
        s.set_hook_secret("github", &SecretString::new("two"))
            .await
            .unwrap();
        assert_eq!(
            s.hook_secret("github").await.unwrap().unwrap().expose(),
            "two"
        );
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "the replaced secret is deleted");
        assert_eq!(s.hook_sources().await.unwrap()[0].source, "github");

        let d = |outcome: &'static str| NewDelivery {
            source: "github",
            delivery_id: Some("abc"),
            outcome,
            image: Some("ghcr.io/a/b:v1"),
            digest: Some("sha256:1"),
            ..Default::default()
        };
        // A rejected delivery does not block the sender's valid retry…
        s.record_delivery(&d("rejected")).await.unwrap();
        s.record_delivery(&d("accepted")).await.unwrap();
        // …but a taken one does.
        let e = s.record_delivery(&d("accepted")).await.unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert!(
            s.accepted_since("ghcr.io/a/b:v1", "sha256:1", "2000-01-01")
                .await
                .unwrap()
        );
        assert!(
            !s.accepted_since("ghcr.io/a/b:v1", "sha256:2", "2000-01-01")
                .await
                .unwrap()
        );
        assert!(
            !s.accepted_since("ghcr.io/a/b:v1", "sha256:1", "2999-01-01")
                .await
                .unwrap()
        );
        let list = s.deliveries(Some("github"), 10).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].outcome, "accepted");
        assert!(s.deliveries(Some("quay"), 10).await.unwrap().is_empty());
    }
}
