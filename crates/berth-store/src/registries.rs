//! Registries as records: URL, kind, username, and a sealed password or token that is never
//! shown back.

use crate::config::RegistryRow;
use crate::{Result, SecretUpdate, Store, StoreError, now};
use berth_domain::model::{RegistryKind, RegistrySpec};
use serde::Serialize;

/// A registry as the API shows it: the secret only as "is set".
#[derive(Debug, Clone, Serialize)]
pub struct RegistryView {
    pub name: String,
    pub kind: RegistryKind,
    pub url: String,
    pub username: Option<String>,
    pub has_secret: bool,
    /// Projects pulling through it.
    pub projects: Vec<String>,
}

impl Store {
    pub async fn list_registries(&self) -> Result<Vec<RegistryView>> {
        let rows: Vec<RegistryRow> = sqlx::query_as(
            "SELECT id, name, kind, url, username, secret_id FROM registries ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let users: Vec<(i64, String)> = sqlx::query_as(
            "SELECT registry_id, name FROM projects WHERE registry_id IS NOT NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RegistryView {
                    kind: r
                        .kind
                        .parse()
                        .map_err(|e| StoreError::Malformed(format!("registry kind: {e}")))?,
                    projects: users
                        .iter()
                        .filter(|(id, _)| *id == r.id)
                        .map(|(_, p)| p.clone())
                        .collect(),
                    name: r.name,
                    url: r.url,
                    username: r.username,
                    has_secret: r.secret_id.is_some(),
                })
            })
            .collect()
    }

    /// A registry with its secret opened (for pulls and connection tests).
    pub async fn registry(&self, name: &str) -> Result<Option<RegistrySpec>> {
        self.export_registry(name).await
    }

    pub async fn create_registry(&self, r: &RegistrySpec) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let secret_id = match &r.secret {
            Some(s) => Some(
                self.insert_secret(&mut tx, &format!("registry:{}", r.name), s)
                    .await?,
            ),
            None => None,
        };
        let t = now();
        sqlx::query(
            "INSERT INTO registries (name, kind, url, username, secret_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.name)
        .bind(r.kind.as_str())
        .bind(&r.url)
        .bind(&r.username)
        .bind(secret_id)
        .bind(&t)
        .bind(&t)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("a registry named {} already exists", r.name))
            }
            _ => e.into(),
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Updates a registry (`r.secret` is ignored: `secret` says what happens to it).
    pub async fn update_registry(&self, r: &RegistrySpec, secret: SecretUpdate) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, secret_id FROM registries WHERE name = ?")
                .bind(&r.name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, old)) = row else {
            return Err(StoreError::NotFound(format!(
                "no registry named {}",
                r.name
            )));
        };
        let secret_id = match &secret {
            SecretUpdate::Keep => old,
            SecretUpdate::Clear => None,
            SecretUpdate::Replace(s) => Some(
                self.insert_secret(&mut tx, &format!("registry:{}", r.name), s)
                    .await?,
            ),
        };
        sqlx::query(
            "UPDATE registries SET kind = ?, url = ?, username = ?, secret_id = ?, updated_at = ? WHERE id = ?",
        )
        .bind(r.kind.as_str())
        .bind(&r.url)
        .bind(&r.username)
        .bind(secret_id)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(old) = old
            && Some(old) != secret_id
        {
            Store::delete_secret(&mut tx, old).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a registry no project pulls through.
    pub async fn delete_registry(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, secret_id FROM registries WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, secret)) = row else {
            return Err(StoreError::NotFound(format!("no registry named {name}")));
        };
        let users: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM projects WHERE registry_id = ? ORDER BY name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|(n,)| n).collect();
            return Err(StoreError::Conflict(format!(
                "projects pull through {name}: {}",
                names.join(", ")
            )));
        }
        sqlx::query("DELETE FROM registries WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(s) = secret {
            Store::delete_secret(&mut tx, s).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;
    use berth_crypto::SecretString;

    fn spec(secret: Option<&str>) -> RegistrySpec {
        RegistrySpec {
            name: "ghcr".into(),
            kind: RegistryKind::Ghcr,
            url: "https://ghcr.io".into(),
            username: Some("bot".into()),
            secret: secret.map(SecretString::new),
        }
    }

    #[tokio::test]
    async fn registries_keep_replace_and_clear_their_secret() {
        let s = test_store().await;
        s.create_registry(&spec(Some("tok-1"))).await.unwrap();
        assert!(matches!(
            s.create_registry(&spec(None)).await,
            Err(StoreError::Conflict(_))
        ));
        let v = s.list_registries().await.unwrap();
        assert!(v[0].has_secret);
        s.update_registry(&spec(None), SecretUpdate::Keep)
            .await
            .unwrap();
        assert_eq!(
            s.registry("ghcr")
                .await
                .unwrap()
                .unwrap()
                .secret
                .unwrap()
                .expose(),
            "tok-1"
        );
        s.update_registry(
            &spec(None),
            SecretUpdate::Replace(SecretString::new("tok-2")),
        )
        .await
        .unwrap();
        assert_eq!(
            s.registry("ghcr")
                .await
                .unwrap()
                .unwrap()
                .secret
                .unwrap()
                .expose(),
            "tok-2"
        );
        s.update_registry(&spec(None), SecretUpdate::Clear)
            .await
            .unwrap();
        assert!(s.registry("ghcr").await.unwrap().unwrap().secret.is_none());
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "replaced and cleared secrets are deleted");
        s.delete_registry("ghcr").await.unwrap();
        assert!(matches!(
            s.delete_registry("ghcr").await,
            Err(StoreError::NotFound(_))
        ));
    }
}
