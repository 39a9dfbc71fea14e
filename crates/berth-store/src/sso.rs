//! Single sign-on: the provider's settings (client secret sealed), the links between
//! provider identities and users, and per-stage webhook secrets (stored hashed).

use crate::{Result, SecretUpdate, Store, StoreError, User, now};
use berth_crypto::SecretString;
use berth_domain::oidc::OidcSettings;
use berth_domain::{Role, Username};
use serde::{Deserialize, Serialize};

const OIDC: &str = "oidc";

#[derive(Serialize, Deserialize)]
struct OidcRow {
    #[serde(flatten)]
    settings: OidcSettings,
    secret_id: Option<i64>,
}

/// The provider's settings as the API shows them: the secret only as "is set".
#[derive(Debug, Clone)]
pub struct OidcView {
    pub settings: OidcSettings,
    pub has_secret: bool,
}

impl Store {
    pub async fn oidc_settings(&self) -> Result<Option<OidcView>> {
        Ok(self.get_setting::<OidcRow>(OIDC).await?.map(|r| OidcView {
            settings: r.settings,
            has_secret: r.secret_id.is_some(),
        }))
    }

    /// The client secret, opened: it leaves berth only towards the provider's token endpoint.
    pub async fn oidc_client_secret(&self) -> Result<Option<SecretString>> {
        let Some(OidcRow {
            secret_id: Some(id),
            ..
        }) = self.get_setting::<OidcRow>(OIDC).await?
        else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        Ok(Some(self.open_secret(&mut conn, id).await?))
    }

    /// Stores the provider's settings and does `secret` to the client secret, in one
    /// transaction; a replaced secret is deleted.
    pub async fn set_oidc_settings(&self, s: &OidcSettings, secret: SecretUpdate) -> Result<()> {
        let old = self
            .get_setting::<OidcRow>(OIDC)
            .await?
            .and_then(|o| o.secret_id);
        let mut tx = self.pool.begin().await?;
        let secret_id = match secret {
            SecretUpdate::Keep => old,
            SecretUpdate::Clear => None,
            SecretUpdate::Replace(p) => Some(
                self.insert_secret(&mut tx, "oidc:client_secret", &p)
                    .await?,
            ),
        };
        if let Some(id) = old
            && Some(id) != secret_id
        {
            Store::delete_secret(&mut tx, id).await?;
        }
        let row = OidcRow {
            settings: s.clone(),
            secret_id,
        };
        Self::put_setting(&mut *tx, OIDC, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_oidc_settings(&self) -> Result<bool> {
        let Some(old) = self.get_setting::<OidcRow>(OIDC).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(OIDC)
            .execute(&mut *tx)
            .await?;
        if let Some(id) = old.secret_id {
            Store::delete_secret(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The user linked to a provider identity, and marks the login.
    pub async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE user_identities SET last_login_at = ? WHERE issuer = ? AND subject = ? RETURNING user_id",
        )
        .bind(now())
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((id,)) => Ok(Some(self.user(id).await?)),
            None => Ok(None),
        }
    }

    /// Links a provider identity to an existing user that has no password and no identity
    /// from this issuer yet (an admin made it for single sign-on). `None` if no such user.
    pub async fn link_sso_user(
        &self,
        username: &Username,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>> {
        let t = now();
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO user_identities (issuer, subject, user_id, created_at, last_login_at)
             SELECT ?, ?, u.id, ?, ? FROM users u
             WHERE u.username = ? AND u.password_hash IS NULL
               AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.issuer = ?)
             RETURNING user_id",
        )
        .bind(issuer)
        .bind(subject)
        .bind(&t)
        .bind(&t)
        .bind(username.as_str())
        .bind(issuer)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((id,)) => Ok(Some(self.user(id).await?)),
            None => Ok(None),
        }
    }

    /// Creates a user without a password, linked to a provider identity, in one transaction.
    pub async fn create_sso_user(
        &self,
        username: &Username,
        role: Role,
        issuer: &str,
        subject: &str,
    ) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let user = Self::insert_user(&mut tx, username, None, role).await?;
        let t = now();
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, created_at, last_login_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user.id)
        .bind(&t)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Whether an enabled admin has signed in through this issuer: local login may be
    /// turned off only then, so someone can still change settings.
    pub async fn sso_admin_exists(&self, issuer: &str) -> Result<bool> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM users u JOIN user_identities i ON i.user_id = u.id
             WHERE i.issuer = ? AND u.role = 'admin' AND u.disabled = 0",
        )
        .bind(issuer)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Gives a stage a new webhook secret (its SHA-256), replacing any earlier one.
    pub async fn set_stage_webhook(
        &self,
        stage_id: i64,
        secret_hash: &str,
        by: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO stage_webhooks (stage_id, secret_hash, created_at, created_by) VALUES (?, ?, ?, ?)
             ON CONFLICT (stage_id) DO UPDATE SET secret_hash = excluded.secret_hash,
               created_at = excluded.created_at, created_by = excluded.created_by",
        )
        .bind(stage_id)
        .bind(secret_hash)
        .bind(now())
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_stage_webhook(&self, stage_id: i64) -> Result<bool> {
        let r = sqlx::query("DELETE FROM stage_webhooks WHERE stage_id = ?")
            .bind(stage_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The project and stage a webhook secret (by its hash) deploys.
    pub async fn stage_for_webhook(&self, secret_hash: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT p.name, s.name FROM stage_webhooks w JOIN stages s ON s.id = w.stage_id
             JOIN projects p ON p.id = s.project_id WHERE w.secret_hash = ?",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The names of a project's stages that have their own webhook.
    pub async fn stages_with_webhooks(&self, project: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT s.name FROM stage_webhooks w JOIN stages s ON s.id = w.stage_id
             JOIN projects p ON p.id = s.project_id WHERE p.name = ? ORDER BY s.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }
}

/// A refusal of a change to users that would leave berth without an enabled admin.
pub(crate) fn last_admin() -> StoreError {
    StoreError::Conflict(
        "that would leave berth without an enabled admin; make another user admin first".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    fn settings() -> OidcSettings {
        serde_json::from_value(serde_json::json!({
            "display_name": "IdP", "issuer": "http://127.0.0.1:1", "client_id": "berth",
            "public_url": "http://127.0.0.1:2"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn oidc_secret_is_sealed_kept_and_replaced() {
        let s = test_store().await;
        assert!(s.oidc_settings().await.unwrap().is_none());
        s.set_oidc_settings(
            &settings(),
            SecretUpdate::Replace(SecretString::new("cs-1")),
        )
        .await
        .unwrap();
        let raw: (String,) = sqlx::query_as("SELECT value FROM settings WHERE key = 'oidc'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert!(!raw.0.contains("cs-1"), "{}", raw.0);
        let mut changed = settings();
        changed.display_name = "Other".into();
        s.set_oidc_settings(&changed, SecretUpdate::Keep)
            .await
            .unwrap();
        let v = s.oidc_settings().await.unwrap().unwrap();
        assert!(v.has_secret);
        assert_eq!(v.settings.display_name, "Other");
        assert_eq!(
            s.oidc_client_secret().await.unwrap().unwrap().expose(),
            "cs-1"
        );
        s.set_oidc_settings(&changed, SecretUpdate::Replace(SecretString::new("cs-2")))
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "the replaced secret is deleted");
        assert!(s.delete_oidc_settings().await.unwrap());
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn identities_link_only_password_less_users() {
        let s = test_store().await;
        let name = |n: &str| Username::parse(n).unwrap();
        s.create_user(&name("local"), "$argon2id$x", Role::Admin)
            .await
            .unwrap();
        assert!(
            s.link_sso_user(&name("local"), "iss", "sub-1")
                .await
                .unwrap()
                .is_none(),
            "a user with a password is never taken over by a provider's name"
        );
        let u = s
            .create_sso_user(&name("alice"), Role::Viewer, "iss", "sub-a")
            .await
            .unwrap();
        assert_eq!(
            s.user_by_identity("iss", "sub-a")
                .await
                .unwrap()
                .unwrap()
                .id,
            u.id
        );
        assert!(
            s.user_by_identity("other", "sub-a")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!s.sso_admin_exists("iss").await.unwrap());
        s.set_user_role(u.id, Role::Admin).await.unwrap();
        assert!(s.sso_admin_exists("iss").await.unwrap());
        // An admin-made SSO user is linked on first sign-in, once.
        let made = s
            .create_user_without_password(&name("bob"), Role::Deployer)
            .await
            .unwrap();
        let linked = s.link_sso_user(&name("bob"), "iss", "sub-b").await.unwrap();
        assert_eq!(linked.unwrap().id, made.id);
        assert!(
            s.link_sso_user(&name("bob"), "iss", "sub-other")
                .await
                .unwrap()
                .is_none()
        );
    }
}
