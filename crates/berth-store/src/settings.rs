//! Settings: JSON values by key. Global settings, NPM connection, first-start marker.

use crate::{Result, Store, StoreError, now};
use berth_domain::model::GlobalSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) const GLOBAL: &str = "global";
pub(crate) const INITIALIZED: &str = "initialized_at";
const WEBHOOK_SECRET: &str = "webhook_secret";
const INSTALLATION: &str = "installation_id";

impl Store {
    pub(crate) async fn get_setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(v,)| {
            serde_json::from_str(&v)
                .map_err(|e| StoreError::Malformed(format!("setting {key}: {e}")))
        })
        .transpose()
    }

    pub(crate) async fn put_setting<'c, E, T>(exec: E, key: &str, value: &T) -> Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
        T: Serialize,
    {
        let json = serde_json::to_string(value).expect("settings serialise");
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(json)
        .bind(now())
        .execute(exec)
        .await?;
        Ok(())
    }

    /// The global settings (defaults where never set).
    pub async fn global_settings(&self) -> Result<GlobalSettings> {
        Ok(self.get_setting(GLOBAL).await?.unwrap_or_default())
    }

    pub async fn set_global_settings(&self, g: &GlobalSettings) -> Result<()> {
        Self::put_setting(&self.pool, GLOBAL, g).await
    }

    /// The secret of `POST /api/webhook/<secret>`, made on first use.
    pub async fn webhook_secret(&self) -> Result<String> {
        if let Some(s) = self.get_setting::<String>(WEBHOOK_SECRET).await? {
            return Ok(s);
        }
        self.regenerate_webhook_secret().await
    }

    /// A new webhook secret; the old one stops working at once.
    pub async fn regenerate_webhook_secret(&self) -> Result<String> {
        use std::fmt::Write;
        let bytes = berth_crypto::random_bytes::<24>();
        let secret = bytes.iter().fold(String::with_capacity(48), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        Self::put_setting(&self.pool, WEBHOOK_SECRET, &secret).await?;
        Ok(secret)
    }

    /// This installation's id, made once and kept: it labels every container berth starts
    /// (`berth.owner`), so two installations sharing one engine never touch each other's.
    pub async fn installation_id(&self) -> Result<String> {
        use std::fmt::Write;
        let bytes = berth_crypto::random_bytes::<8>();
        let id = bytes.iter().fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        // Insert-if-absent, then read: concurrent first calls agree on one id.
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(INSTALLATION)
        .bind(serde_json::to_string(&id).expect("string serialises"))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.get_setting(INSTALLATION)
            .await?
            .ok_or_else(|| StoreError::Malformed("installation id vanished".into()))
    }

    /// When berth finished its first start (seed import, first admin), if it has.
    pub async fn initialized_at(&self) -> Result<Option<String>> {
        self.get_setting(INITIALIZED).await
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;

    #[tokio::test]
    async fn global_settings_default_and_round_trip() {
        let s = test_store().await;
        let mut g = s.global_settings().await.unwrap();
        assert_eq!(g.network, "berth");
        g.domain = Some("example.test".into());
        s.set_global_settings(&g).await.unwrap();
        assert_eq!(s.global_settings().await.unwrap(), g);
        assert!(s.initialized_at().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn webhook_secret_is_stable_until_regenerated() {
        let s = test_store().await;
        let a = s.webhook_secret().await.unwrap();
        assert_eq!(a.len(), 48);
        assert_eq!(s.webhook_secret().await.unwrap(), a);
        let b = s.regenerate_webhook_secret().await.unwrap();
        assert_ne!(a, b);
        assert_eq!(s.webhook_secret().await.unwrap(), b);
    }

    #[tokio::test]
    async fn installation_id_is_made_once_and_differs_between_stores() {
        let s = test_store().await;
        let (a, b) = tokio::join!(s.installation_id(), s.installation_id());
        let a = a.unwrap();
        assert_eq!(a, b.unwrap(), "concurrent first calls agree");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s.installation_id().await.unwrap(), a);
        let other = test_store().await;
        assert_ne!(other.installation_id().await.unwrap(), a);
    }
}
