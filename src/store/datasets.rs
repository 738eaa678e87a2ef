//! Dataset rows: a dataset and its ordered files, written in one transaction.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    pub id: String,
    pub name: String,
    pub include_drums: bool,
    pub file_count: i64,
    pub note_count: i64,
    /// The ingest report as JSON text.
    pub report: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFileRow {
    pub file_name: String,
    pub sha256: String,
    pub bytes: i64,
}

impl DatasetRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<DatasetRow> {
        Ok(DatasetRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            include_drums: row.try_get::<i64, _>("include_drums")? != 0,
            file_count: row.try_get("file_count")?,
            note_count: row.try_get("note_count")?,
            report: row.try_get("report")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const DATASET_COLUMNS: &str = "id, name, include_drums, file_count, note_count, report, created_at";

impl Store {
    /// Inserts the dataset and its files atomically; `created_at` is set here.
    pub async fn insert_dataset(
        &self,
        dataset: DatasetRow,
        files: &[DatasetFileRow],
    ) -> anyhow::Result<DatasetRow> {
        let dataset = DatasetRow { created_at: now_ms(), ..dataset };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO datasets (id, name, include_drums, file_count, note_count, report, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&dataset.id)
        .bind(&dataset.name)
        .bind(i64::from(dataset.include_drums))
        .bind(dataset.file_count)
        .bind(dataset.note_count)
        .bind(&dataset.report)
        .bind(dataset.created_at)
        .execute(&mut *tx)
        .await?;
        for (position, file) in (0i64..).zip(files) {
            sqlx::query(
                "INSERT INTO dataset_files (dataset_id, position, file_name, sha256, bytes) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&dataset.id)
            .bind(position)
            .bind(&file.file_name)
            .bind(&file.sha256)
            .bind(file.bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dataset)
    }

    /// Newest first.
    pub async fn datasets(&self) -> anyhow::Result<Vec<DatasetRow>> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY created_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(DatasetRow::from_row).collect::<sqlx::Result<_>>()?)
    }

    pub async fn dataset(&self, id: &str) -> anyhow::Result<Option<DatasetRow>> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(DatasetRow::from_row).transpose()?)
    }

    /// In upload order.
    pub async fn dataset_files(&self, id: &str) -> anyhow::Result<Vec<DatasetFileRow>> {
        let rows = sqlx::query(
            "SELECT file_name, sha256, bytes FROM dataset_files WHERE dataset_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let file = |row: &AnyRow| -> sqlx::Result<DatasetFileRow> {
            Ok(DatasetFileRow {
                file_name: row.try_get("file_name")?,
                sha256: row.try_get("sha256")?,
                bytes: row.try_get("bytes")?,
            })
        };
        Ok(rows.iter().map(file).collect::<sqlx::Result<_>>()?)
    }

    /// Deletes the dataset and its file rows in one transaction, unless a queued or
    /// running training job needs it. Reports the blobs no dataset references any more.
    pub async fn delete_dataset(&self, id: &str) -> anyhow::Result<DatasetDeletion> {
        let mut tx = self.begin_write().await?;
        let hashes: Vec<String> =
            sqlx::query("SELECT DISTINCT sha256 FROM dataset_files WHERE dataset_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("sha256"))
                .collect::<sqlx::Result<_>>()?;
        // The row goes first: on Postgres this waits for a job submission that holds
        // the dataset row (FOR SHARE), so the check below sees that job.
        let deleted = sqlx::query("DELETE FROM datasets WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Ok(DatasetDeletion::NotFound);
        }
        let needed = sqlx::query(
            "SELECT 1 AS needed FROM jobs WHERE dataset_id = $1 AND state IN ('queued', 'running') LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if needed.is_some() {
            return Ok(DatasetDeletion::InUse);
        }
        sqlx::query("DELETE FROM dataset_files WHERE dataset_id = $1").bind(id).execute(&mut *tx).await?;
        let mut orphans = Vec::new();
        for hash in hashes {
            if !super::blob_in_use(&mut tx, &hash).await? {
                orphans.push(hash);
            }
        }
        super::blobs::mark_in(&mut tx, &orphans, super::now_ms()).await?;
        tx.commit().await?;
        Ok(DatasetDeletion::Deleted { orphans })
    }
}

/// What deleting a dataset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetDeletion {
    NotFound,
    /// A queued or running training job needs it; nothing was deleted.
    InUse,
    /// Deleted; these blobs are no longer referenced by any dataset or composition.
    Deleted {
        orphans: Vec<String>,
    },
}
