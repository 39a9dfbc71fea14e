//! Sealed values in the `secrets` table, and key rotation.

use crate::{Result, Store, now};
use berth_crypto::{Sealed, SecretString};
use sqlx::SqliteConnection;

impl Store {
    /// Seals `value` under the current key and stores it; returns its id.
    pub(crate) async fn insert_secret(
        &self,
        conn: &mut SqliteConnection,
        context: &str,
        value: &SecretString,
    ) -> Result<i64> {
        let sealed = self.keyring.seal_str(context, value);
        let t = now();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO secrets (context, key_id, blob, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(context)
        .bind(&sealed.key_id)
        .bind(&sealed.blob)
        .bind(&t)
        .bind(&t)
        .fetch_one(&mut *conn)
        .await?;
        Ok(id)
    }

    /// Removes a stored secret (its owner no longer refers to it).
    pub(crate) async fn delete_secret(conn: &mut SqliteConnection, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM secrets WHERE id = ?")
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Opens a stored secret. Call only where the value must leave berth (to an engine, a
    /// registry, NPM, an explicit export).
    pub(crate) async fn open_secret(
        &self,
        conn: &mut SqliteConnection,
        id: i64,
    ) -> Result<SecretString> {
        let (context, key_id, blob): (String, String, Vec<u8>) =
            sqlx::query_as("SELECT context, key_id, blob FROM secrets WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
        Ok(self.keyring.open(&context, &Sealed { key_id, blob })?)
    }

    /// Key ids that sealed stored values but that the keyring does not hold. Non-empty means
    /// the configured key is wrong: start-up stops rather than fail later, value by value.
    pub async fn unknown_key_ids(&self) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT key_id FROM secrets")
            .fetch_all(&self.pool)
            .await?;
        Ok(ids
            .into_iter()
            .map(|(k,)| k)
            .filter(|k| !self.keyring.knows(k))
            .collect())
    }

    /// Re-seals every value sealed with an old key under the current key, in one
    /// transaction. Returns how many were re-sealed.
    pub async fn reseal_all(&self) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, String, String, Vec<u8>)> =
            sqlx::query_as("SELECT id, context, key_id, blob FROM secrets WHERE key_id <> ?")
                .bind(self.keyring.current_id())
                .fetch_all(&mut *tx)
                .await?;
        let n = rows.len() as u64;
        for (id, context, key_id, blob) in rows {
            let plain = self.keyring.open(&context, &Sealed { key_id, blob })?;
            let sealed = self.keyring.seal_str(&context, &plain);
            sqlx::query("UPDATE secrets SET key_id = ?, blob = ?, updated_at = ? WHERE id = ?")
                .bind(&sealed.key_id)
                .bind(&sealed.blob)
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use berth_crypto::{Key, Keyring, SecretString};

    #[tokio::test]
    async fn seal_open_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let old = Key::generate();
        let s = Store::open(&url, Keyring::new(old.clone(), vec![]))
            .await
            .unwrap();
        let mut c = s.pool.acquire().await.unwrap();
        let id = s
            .insert_secret(&mut c, "credential:x", &SecretString::new("pw-1"))
            .await
            .unwrap();
        let (blob,): (Vec<u8>,) = sqlx::query_as("SELECT blob FROM secrets")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert!(!blob.windows(4).any(|w| w == b"pw-1"), "stored in clear");
        drop(c);
        s.close().await;

        // A new key without the old one: start-up must be able to tell.
        let wrong = Store::open(&url, Keyring::new(Key::generate(), vec![]))
            .await
            .unwrap();
        assert_eq!(
            wrong.unknown_key_ids().await.unwrap(),
            vec![old.id().to_string()]
        );
        wrong.close().await;

        // A new key with the old one: values are re-sealed, then the old key can go.
        let new = Key::generate();
        let s = Store::open(&url, Keyring::new(new.clone(), vec![old]))
            .await
            .unwrap();
        assert!(s.unknown_key_ids().await.unwrap().is_empty());
        assert_eq!(s.reseal_all().await.unwrap(), 1);
        assert_eq!(s.reseal_all().await.unwrap(), 0);
        s.close().await;
        let s = Store::open(&url, Keyring::new(new, vec![])).await.unwrap();
        let mut c = s.pool.acquire().await.unwrap();
        assert_eq!(s.open_secret(&mut c, id).await.unwrap().expose(), "pw-1");
    }
}
