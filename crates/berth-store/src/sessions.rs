//! Sessions: browser logins and script tokens, stored by the SHA-256 of their secret.

use crate::{Result, Store, StoreError, User, now};
use berth_domain::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// A cookie in a browser.
    Browser,
    /// A bearer token for scripts.
    Script,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Browser => "browser",
            SessionKind::Script => "script",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The hash, which identifies the session without revealing its secret.
    pub token_hash: String,
    pub kind: SessionKind,
    pub created_at: String,
    pub expires_at: String,
    pub last_seen_at: String,
}

/// A session or token as its owner (or an admin) lists it. `id` is the first 16 hex digits of
/// the secret's hash: enough to name it, useless to log in with.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionInfo {
    pub id: String,
    pub kind: String,
    /// A token's name.
    pub name: Option<String>,
    /// A token's role cap (null: the user's role).
    pub role: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// When it was last used (kept to the minute).
    pub last_seen_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The public id of a session: a prefix of its hash.
pub fn session_id(token_hash: &str) -> &str {
    &token_hash[..token_hash.len().min(16)]
}

impl Store {
    /// A named API token with a role cap (`role` at most the user's; the caller checks).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        user_id: i64,
        token_hash: &str,
        name: &str,
        role: Role,
        ttl: Duration,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Session> {
        self.insert_session(
            user_id,
            token_hash,
            SessionKind::Script,
            ttl,
            ip,
            user_agent,
            Some((name, role)),
        )
        .await
    }

    /// A user's live sessions and tokens, newest first.
    pub async fn user_sessions(&self, user_id: i64) -> Result<Vec<SessionInfo>> {
        Ok(sqlx::query_as(
            "SELECT substr(token_hash, 1, 16) AS id, kind, name, role, created_at, expires_at, last_seen_at, ip, user_agent
             FROM sessions WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC",
        )
        .bind(user_id)
        .bind(now())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends one of a user's sessions by its public id; false when there is none.
    pub async fn delete_user_session(&self, user_id: i64, id: &str) -> Result<bool> {
        if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let r =
            sqlx::query("DELETE FROM sessions WHERE user_id = ? AND substr(token_hash, 1, 16) = ?")
                .bind(user_id)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends every session and token of a user; returns how many.
    pub async fn delete_user_sessions(&self, user_id: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        kind: SessionKind,
        ttl: Duration,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Session> {
        self.insert_session(user_id, token_hash, kind, ttl, ip, user_agent, None)
            .await
    }

    /// One row, with a token's name and role cap when `token` is given.
    #[allow(clippy::too_many_arguments)]
    async fn insert_session(
        &self,
        user_id: i64,
        token_hash: &str,
        kind: SessionKind,
        ttl: Duration,
        ip: Option<&str>,
        user_agent: Option<&str>,
        token: Option<(&str, Role)>,
    ) -> Result<Session> {
        let created = Utc::now();
        let expires =
            created + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7));
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, kind, created_at, expires_at, last_seen_at, ip, user_agent, name, role)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(fmt(created))
        .bind(fmt(expires))
        .bind(fmt(created))
        .bind(ip)
        .bind(user_agent.map(|u| u.chars().take(256).collect::<String>()))
        .bind(token.map(|(name, _)| name))
        .bind(token.map(|(_, role)| role.as_str()))
        .execute(&self.pool)
        .await?;
        Ok(Session {
            token_hash: token_hash.to_string(),
            kind,
            created_at: fmt(created),
            expires_at: fmt(expires),
            last_seen_at: fmt(created),
        })
    }

    /// The user behind a live session: not expired, user not disabled. Marks it seen, but
    /// writes `last_seen_at` at most once a minute: SQLite serialises writers, and every
    /// authenticated request passes here.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>> {
        let now_t = chrono::Utc::now();
        let t = now_t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT s.user_id, s.last_seen_at, s.role FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(&t)
        .fetch_optional(&self.pool)
        .await?;
        let Some((uid, last_seen, cap)) = row else {
            return Ok(None);
        };
        let stale = DateTime::parse_from_rfc3339(&last_seen)
            .map(|seen| now_t.signed_duration_since(seen) > chrono::Duration::seconds(60))
            .unwrap_or(true);
        if stale {
            sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?")
                .bind(&t)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
        }
        match self.user(uid).await {
            Ok(mut u) => {
                // A token acts with the lower of its own role and its user's.
                if let Some(cap) = cap.as_deref().and_then(|c| c.parse::<Role>().ok()) {
                    u.role = u.role.min(cap);
                }
                Ok(Some(u))
            }
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes expired sessions; returns how many.
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;
    use berth_domain::{Role, Username};

    #[tokio::test]
    async fn lifecycle() {
        let s = test_store().await;
        let u = s
            .create_user(&Username::parse("u").unwrap(), "h", Role::Viewer)
            .await
            .unwrap();
        s.create_session(
            u.id,
            "h1",
            SessionKind::Browser,
            Duration::from_secs(60),
            Some("127.0.0.1"),
            None,
        )
        .await
        .unwrap();
        s.create_session(
            u.id,
            "h2",
            SessionKind::Script,
            Duration::from_millis(1),
            None,
            None,
        )
        .await
        .unwrap();
        assert_eq!(s.session_user("h1").await.unwrap().unwrap().id, u.id);
        assert!(s.session_user("nope").await.unwrap().is_none());
        // A fresh session is not rewritten on every request; a stale one is.
        let seen = || async {
            let (t,): (String,) =
                sqlx::query_as("SELECT last_seen_at FROM sessions WHERE token_hash = 'h1'")
                    .fetch_one(&s.pool)
                    .await
                    .unwrap();
            t
        };
        let before = seen().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.session_user("h1").await.unwrap().unwrap();
        assert_eq!(seen().await, before);
        sqlx::query(
            "UPDATE sessions SET last_seen_at = '2000-01-01T00:00:00.000Z' WHERE token_hash = 'h1'",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.session_user("h1").await.unwrap().unwrap();
        assert!(seen().await > before);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            s.session_user("h2").await.unwrap().is_none(),
            "expired session accepted"
        );
        assert_eq!(s.purge_expired_sessions().await.unwrap(), 1);

        // Disabled users lose their sessions at once.
        sqlx::query("UPDATE users SET disabled = 1")
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(s.session_user("h1").await.unwrap().is_none());
        sqlx::query("UPDATE users SET disabled = 0")
            .execute(&s.pool)
            .await
            .unwrap();

        // A password change ends the other sessions.
        s.create_session(
            u.id,
            "h3",
            SessionKind::Browser,
            Duration::from_secs(60),
            None,
            None,
        )
        .await
        .unwrap();
        s.set_password(u.id, "h-new", Some("h3")).await.unwrap();
        assert!(s.session_user("h1").await.unwrap().is_none());
        assert!(s.session_user("h3").await.unwrap().is_some());
        assert!(s.delete_session("h3").await.unwrap());
        assert!(!s.delete_session("h3").await.unwrap());
    }
}
