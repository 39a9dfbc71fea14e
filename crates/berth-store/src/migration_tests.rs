//! A database made by the first migration upgrades to the newest schema, keeping its data.

use crate::{MIGRATOR, Store};
use berth_crypto::Keyring;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;

#[tokio::test]
async fn first_migration_database_upgrades_to_newest() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "expected several migrations");
    assert_eq!(files.len(), MIGRATOR.iter().count());

    // A database as the first release made it.
    let old = tempfile::tempdir().unwrap();
    std::fs::copy(&files[0], old.path().join(files[0].file_name().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db", dir.path().display());
    let pool = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true),
    )
    .await
    .unwrap();
    Migrator::new(old.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES ('old-admin', 'h', 'admin', 't', 't')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ('global', '{\"domain\":\"old.example\"}', 't')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The current binary opens it: every later migration applies, the data stays.
    let store = Store::open(&url, Keyring::for_tests()).await.unwrap();
    let (user,) = sqlx::query_as::<_, (String,)>("SELECT username FROM users")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(user, "old-admin");
    assert_eq!(
        store.global_settings().await.unwrap().domain.as_deref(),
        Some("old.example")
    );
    let (applied,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(applied as usize, MIGRATOR.iter().count());
    assert!(
        store.list_projects().await.unwrap().is_empty(),
        "new tables usable"
    );
}
