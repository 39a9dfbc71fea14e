//! Local users.

use crate::{Result, Store, StoreError, now};
use berth_domain::{Role, Username};
use serde::Serialize;

/// A user as the rest of berth sees one (the password hash stays in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    role: String,
    disabled: bool,
    created_at: String,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            role: r.role.parse().map_err(StoreError::Malformed)?,
            id: r.id,
            username: r.username,
            disabled: r.disabled,
            created_at: r.created_at,
        })
    }
}

macro_rules! cols {
    () => {
        "id, username, role, disabled, created_at"
    };
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Creates a user; a taken name (case-insensitively) is a `Conflict`.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
    ) -> Result<User> {
        let t = now();
        let row: UserRow = sqlx::query_as(concat!(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING ",
            cols!()
        ))
        .bind(username.as_str())
        .bind(password_hash)
        .bind(role.as_str())
        .bind(&t)
        .bind(&t)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("a user named {username} already exists"))
            }
            _ => e.into(),
        })?;
        row.try_into()
    }

    /// A user and their password hash, by name (case-insensitive), for login.
    pub async fn user_for_login(&self, username: &str) -> Result<Option<(User, Option<String>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: Option<String>,
        }
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            cols!(),
            ", password_hash FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.user.try_into()?, r.password_hash)))
            .transpose()
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        let row: Option<UserRow> =
            sqlx::query_as(concat!("SELECT ", cols!(), " FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.ok_or_else(|| StoreError::NotFound(format!("no user with id {id}")))?
            .try_into()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> =
            sqlx::query_as(concat!("SELECT ", cols!(), " FROM users ORDER BY username"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Replaces a user's password hash and ends all their sessions but `keep_session`.
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(password_hash)
            .bind(now())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no user with id {user_id}")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?")
            .bind(user_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn create_find_and_conflict() {
        let s = test_store().await;
        assert_eq!(s.count_users().await.unwrap(), 0);
        let u = s
            .create_user(
                &Username::parse("Alice").unwrap(),
                "$argon2id$x",
                Role::Admin,
            )
            .await
            .unwrap();
        assert_eq!(u.role, Role::Admin);
        let (found, hash) = s.user_for_login("alice").await.unwrap().unwrap();
        assert_eq!(found.id, u.id);
        assert_eq!(hash.as_deref(), Some("$argon2id$x"));
        assert!(s.user_for_login("bob").await.unwrap().is_none());
        let e = s
            .create_user(&Username::parse("ALICE").unwrap(), "h", Role::Viewer)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert_eq!(s.list_users().await.unwrap().len(), 1);
        assert_eq!(s.user(u.id).await.unwrap().username, "Alice");
        assert!(matches!(s.user(999).await, Err(StoreError::NotFound(_))));
    }
}
