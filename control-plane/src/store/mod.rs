//! The control plane's store: one [`Store`] type over SQLite (the default, a file) or
//! PostgreSQL (`database_url = "postgres://..."`).
//!
//! Both backends run the same SQL through sqlx's `Any` driver: `$n` placeholders, unix
//! millisecond `BIGINT` times, 0/1 integer flags. Only the schema differs per backend; it is
//! embedded from `migrations/{sqlite,postgres}/` and applied by [`Store::migrate`].
//!
//! Layout: [`users`] (users, sessions), [`channels`] (channels, stream keys), [`nodes`],
//! [`live`] (channel → origin registry), [`recordings`] (the recordings catalog),
//! [`signing`] (playback-token signing keys).

pub mod channels;
pub mod live;
pub mod nodes;
pub mod recordings;
pub mod signing;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite:` or `postgres:`.
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// A unique constraint refused the write (e.g. a taken name).
    #[error("already exists")]
    Conflict,
    /// A row the operation needs does not exist.
    #[error("not found")]
    NotFound,
    /// Applying a schema migration failed.
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    /// Any other database error.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::RowNotFound => StoreError::NotFound,
            _ => StoreError::Database(e),
        }
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One schema migration: a version and its SQL for each backend.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../../migrations/sqlite/0002_recordings.sql"),
        postgres: include_str!("../../migrations/postgres/0002_recordings.sql"),
    },
];

/// The store: a connection pool and the backend it talks to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let opts = AnyConnectOptions::from_str(url)?;
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        if backend == Backend::Sqlite {
            // Kept in the database file: readers never block the writer (nor it them), so
            // concurrent reports from nodes wait for each other instead of failing "locked".
            sqlx::raw_sql("PRAGMA journal_mode=WAL").execute(&pool).await?;
        }
        Ok(Store { pool, backend })
    }

    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock at its start (`BEGIN
    /// IMMEDIATE`), waiting for another writer under the busy timeout: a deferred transaction
    /// that reads and then writes fails at once with "database is locked" when another
    /// connection wrote in between (WAL cannot upgrade its stale snapshot).
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Applies every migration not applied yet, each in its own transaction.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in MIGRATIONS {
            let fail = |source| StoreError::Migration { version: m.version, source };
            let mut tx = self.pool.begin().await.map_err(fail)?;
            if self.backend == Backend::Postgres {
                // Serialises control planes migrating one database at the same time.
                sqlx::raw_sql("SELECT pg_advisory_xact_lock(72657301)")
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            let done = sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?
                .try_get::<i64, _>("n")
                .map_err(fail)?;
            if done > 0 {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            tracing::info!(version = m.version, "applied store migration");
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Wall-clock unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}
