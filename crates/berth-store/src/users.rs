//! Local users.

use crate::{Result, Store, StoreError, now};
use berth_domain::{Role, Username};
use serde::Serialize;

/// A user as an admin's list shows one.
#[derive(Debug, Clone, Serialize)]
pub struct UserAdminView {
    #[serde(flatten)]
    pub user: User,
    /// Can log in with a password (else only through the identity provider).
    pub has_password: bool,
    /// Has signed in through the identity provider.
    pub sso: bool,
    /// Live sessions and tokens.
    pub sessions: i64,
    pub last_seen_at: Option<String>,
}

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

/// True for a row whose change leaves an enabled admin: it is not one, or another exists.
/// Binds one parameter, the row's id.
macro_rules! keeps_an_admin {
    () => {
        "role <> 'admin' OR disabled = 1 OR (SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id <> ?) > 0"
    };
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
        let mut conn = self.pool.acquire().await?;
        Self::insert_user(&mut conn, username, Some(password_hash), role).await
    }

    /// Creates a user who signs in only through the identity provider.
    pub async fn create_user_without_password(
        &self,
        username: &Username,
        role: Role,
    ) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_user(&mut conn, username, None, role).await
    }

    pub(crate) async fn insert_user(
        conn: &mut sqlx::SqliteConnection,
        username: &Username,
        password_hash: Option<&str>,
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
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("a user named {username} already exists"))
            }
            _ => e.into(),
        })?;
        row.try_into()
    }

    /// Every user with what an admin needs to manage them.
    pub async fn list_users_admin(&self) -> Result<Vec<UserAdminView>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            has_password: bool,
            sso: bool,
            sessions: i64,
            last_seen_at: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT u.id, u.username, u.role, u.disabled, u.created_at,
               u.password_hash IS NOT NULL AS has_password,
               EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id) AS sso,
               (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > ?) AS sessions,
               (SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id) AS last_seen_at
             FROM users u ORDER BY u.username",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(UserAdminView {
                    user: r.user.try_into()?,
                    has_password: r.has_password,
                    sso: r.sso,
                    sessions: r.sessions,
                    last_seen_at: r.last_seen_at,
                })
            })
            .collect()
    }

    /// Changes a user's role. Refused if it would leave no enabled admin (checked in the
    /// same statement, so two admins demoting each other cannot both succeed).
    pub async fn set_user_role(&self, id: i64, role: Role) -> Result<User> {
        let done = sqlx::query(concat!(
            "UPDATE users SET role = ?, updated_at = ? WHERE id = ? AND (? = 'admin' OR ",
            keeps_an_admin!(),
            ")"
        ))
        .bind(role.as_str())
        .bind(now())
        .bind(id)
        .bind(role.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.user(id).await?;
            return Err(crate::sso::last_admin());
        }
        self.user(id).await
    }

    /// Disables (ending every session and token) or enables a user. Disabling the last
    /// enabled admin is refused.
    pub async fn set_user_disabled(&self, id: i64, disabled: bool) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(concat!(
            "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ? AND (? = 0 OR ",
            keeps_an_admin!(),
            ")"
        ))
        .bind(disabled)
        .bind(now())
        .bind(id)
        .bind(disabled)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            self.user(id).await?;
            return Err(crate::sso::last_admin());
        }
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await
    }

    /// Deletes a user with their sessions, tokens and identities. Deleting the last enabled
    /// admin is refused.
    pub async fn delete_user(&self, id: i64) -> Result<User> {
        let user = self.user(id).await?;
        let done = sqlx::query(concat!(
            "DELETE FROM users WHERE id = ? AND (",
            keeps_an_admin!(),
            ")"
        ))
        .bind(id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(crate::sso::last_admin());
        }
        Ok(user)
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

    #[tokio::test]
    async fn the_last_enabled_admin_stays() {
        let s = test_store().await;
        let name = |n: &str| Username::parse(n).unwrap();
        let a = s.create_user(&name("a"), "h", Role::Admin).await.unwrap();
        let b = s.create_user(&name("b"), "h", Role::Viewer).await.unwrap();
        for e in [
            s.set_user_role(a.id, Role::Deployer).await.unwrap_err(),
            s.set_user_disabled(a.id, true).await.unwrap_err(),
            s.delete_user(a.id).await.unwrap_err(),
        ] {
            assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        }
        assert_eq!(s.user(a.id).await.unwrap().role, Role::Admin);
        assert!(!s.user(a.id).await.unwrap().disabled);
        assert!(matches!(
            s.set_user_role(999, Role::Admin).await,
            Err(StoreError::NotFound(_))
        ));
        // With a second admin, the first may go; disabling ends sessions.
        s.set_user_role(b.id, Role::Admin).await.unwrap();
        s.create_session(
            a.id,
            "hash-a",
            crate::SessionKind::Browser,
            std::time::Duration::from_secs(60),
            None,
            None,
        )
        .await
        .unwrap();
        assert!(s.set_user_disabled(a.id, true).await.unwrap().disabled);
        assert!(s.session_user("hash-a").await.unwrap().is_none());
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
        // b is now the only enabled admin.
        assert!(s.set_user_role(b.id, Role::Viewer).await.is_err());
        s.set_user_disabled(a.id, false).await.unwrap();
        s.delete_user(b.id).await.unwrap();
        let list = s.list_users_admin().await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].has_password && !list[0].sso);
    }
}
