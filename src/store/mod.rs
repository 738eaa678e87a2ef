//! Storage: the only module with SQL.
//!
//! Postgres is the production database and SQLite the embedded default; both sit
//! behind [`Store`] through sqlx's `Any` driver, so a query is written once with
//! `$n` placeholders and portable SQL. Where the dialects must differ (the job queue
//! claim, for one), a method branches on [`Backend`]. Values crossing the boundary
//! are the types both agree on: TEXT, BIGINT and DOUBLE PRECISION. Times are Unix
//! milliseconds; flags are BIGINT 0/1, as the Any driver cannot decode SQLite booleans.

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

mod blobs;
mod compositions;
mod datasets;
mod jobs;
mod models;

pub use compositions::{CompositionDeletion, CompositionRow};
pub use datasets::{DatasetDeletion, DatasetFileRow, DatasetRow};
pub use jobs::{
    Claim, Enqueued, EpochRow, JobChannel, JobKind, JobNotifications, JobRow, JobState, JobWork, LeaseCheck,
    NewJob, Reaped,
};
pub use models::{ModelDeletion, ModelRow};

/// One folder for both databases: the schema is written in the SQL they share.
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            bail!("unsupported database URL scheme (expected postgres:// or sqlite://)")
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects and brings the schema up to date. A SQLite file and its parent
    /// directory are created when missing.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a database another process has opened (and migrated) already,
    /// as a training attempt does. SQLite waits up to five seconds (sqlx's busy
    /// timeout) for the other process's writes instead of failing as busy.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = match backend {
            Backend::Postgres => AnyConnectOptions::from_str(url)?,
            Backend::Sqlite => sqlite_options(url)?,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the {backend:?} database"))?;
        Ok(Store { pool, backend })
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Sqlite {
            // WAL lets readers proceed while a writer commits; it persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&self.pool).await?;
        }
        MIGRATIONS.run(&self.pool).await.context("applying database migrations")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The newest applied migration.
    pub async fn schema_version(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("version")?.unwrap_or(0))
    }

    /// The newest migration this build knows; the schema is current when they match.
    pub fn expected_schema_version(&self) -> i64 {
        MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }

    pub async fn setting(&self, key: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// Inserts or replaces a setting in one statement.
    pub async fn put_setting(&self, key: &str, value: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), where waiting for a busy database works; a deferred one
    /// that reads first and then writes fails with "database is locked" as soon as
    /// another connection wrote in between.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_options(url: &str) -> anyhow::Result<AnyConnectOptions> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path != ":memory:"
        && let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the data directory {}", parent.display()))?;
    }
    let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
    Ok(AnyConnectOptions::from_str(&url)?)
}

/// Whether a second process can open the database at `url`: any but an in-memory
/// SQLite one, which lives and dies with its connections.
pub fn shared_between_processes(url: &str) -> bool {
    !(url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")))
}

/// Whether any dataset file or composition references the blob.
async fn blob_in_use(tx: &mut sqlx::Transaction<'static, sqlx::Any>, hash: &str) -> sqlx::Result<bool> {
    let used = sqlx::query(
        "SELECT 1 AS used FROM dataset_files WHERE sha256 = $1 \
         UNION ALL SELECT 1 AS used FROM compositions WHERE midi_sha256 = $1 LIMIT 1",
    )
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(used.is_some())
}

pub fn now_ms() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// A row's `preset` column as a [`Preset`]; a name fugue does not know is a
/// decode error naming it, never a default.
fn decode_preset(row: &sqlx::any::AnyRow) -> sqlx::Result<crate::shared::Preset> {
    let name: String = row.try_get("preset")?;
    name.parse().map_err(|unknown: crate::shared::UnknownPreset| sqlx::Error::Decode(unknown.into()))
}
