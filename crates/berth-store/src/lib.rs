//! The store: SQLite through sqlx. The only crate that holds SQL.
//!
//! Queries are runtime-checked (`sqlx::query_as` with `FromRow`), not `query!` macros, so the
//! build needs neither a database nor committed `.sqlx` data; every query is exercised by a
//! test in this crate instead. Migrations live in `migrations/` at the workspace root, are
//! embedded with `sqlx::migrate!`, and run at start-up before the listener binds.
//! Multi-statement writes run in one transaction. Secret values are sealed with the
//! [`Keyring`] before they reach SQL and opened only on explicit request.
//!
//! Architecture invariant: nothing outside this crate writes SQL; nothing in it knows HTTP.

use berth_crypto::Keyring;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

mod audit;
mod config;
mod deploys;
mod hooks;
mod projects;
mod registries;
mod secrets;
mod sessions;
mod settings;
mod sso;
mod users;

pub use audit::{AuditEntry, AuditFilter};
pub use config::{NpmView, ProjectSummary, SecretUpdate};
pub use deploys::{DeployRecord, InstanceRecord, LogLine, NewDeploy, PollStatus, StepRecord};
pub use hooks::{Delivery, HookSourceView, NewDelivery};
pub use registries::RegistryView;
pub use sessions::{Session, SessionInfo, SessionKind, session_id};
pub use sso::OidcView;
pub use users::{User, UserAdminView};

/// The embedded migrations, newest last.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Store errors: the HTTP layer maps `Conflict` and `NotFound` to 4xx, the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (e.g. keep a secret that was never set).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Open(#[from] berth_crypto::OpenError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is malformed: {0}")]
    Malformed(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    keyring: Keyring,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating if needed) the database at `url`, with WAL, foreign keys and a busy
    /// timeout, and applies pending migrations.
    pub async fn open(url: &str, keyring: Keyring) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, keyring })
    }

    /// A fresh in-memory database (tests): one connection, so all queries see the same data.
    pub async fn open_in_memory(keyring: Keyring) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, keyring })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Closes the pool (on shutdown), checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
pub(crate) async fn test_store() -> Store {
    Store::open_in_memory(Keyring::for_tests()).await.unwrap()
}

#[cfg(test)]
mod migration_tests;
