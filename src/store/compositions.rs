//! Composition rows. The MIDI blob is written before the row, so a row always
//! points at a file.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositionRow {
    pub id: String,
    pub model_id: String,
    /// Stored as decimal text: seeds span all of u64, beyond SQL's BIGINT.
    pub seed: u64,
    pub request: String,
    pub notes: String,
    pub stats: String,
    pub midi_sha256: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, model_id, seed, request, notes, stats, midi_sha256, created_at";

impl CompositionRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<CompositionRow> {
        Ok(CompositionRow {
            id: row.try_get("id")?,
            model_id: row.try_get("model_id")?,
            seed: decode_seed(row)?,
            request: row.try_get("request")?,
            notes: row.try_get("notes")?,
            stats: row.try_get("stats")?,
            midi_sha256: row.try_get("midi_sha256")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The `seed` column as the u64 it was written from; anything else is a decode error.
fn decode_seed(row: &AnyRow) -> sqlx::Result<u64> {
    let text: String = row.try_get("seed")?;
    text.parse().map_err(|_| sqlx::Error::Decode(format!("seed `{text}` is not a u64").into()))
}

impl Store {
    /// Inserts the row; `created_at` is set here.
    pub async fn insert_composition(&self, row: CompositionRow) -> anyhow::Result<CompositionRow> {
        let row = CompositionRow { created_at: now_ms(), ..row };
        sqlx::query(
            "INSERT INTO compositions (id, model_id, seed, request, notes, stats, midi_sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.model_id)
        .bind(row.seed.to_string())
        .bind(&row.request)
        .bind(&row.notes)
        .bind(&row.stats)
        .bind(&row.midi_sha256)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    pub async fn composition(&self, id: &str) -> anyhow::Result<Option<CompositionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM compositions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(CompositionRow::from_row).transpose()?)
    }

    /// Deletes the row; the MIDI blob is an orphan when no other composition and no
    /// dataset file references it.
    pub async fn delete_composition(&self, id: &str) -> anyhow::Result<CompositionDeletion> {
        let mut tx = self.begin_write().await?;
        let hash: Option<String> = sqlx::query("SELECT midi_sha256 FROM compositions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("midi_sha256"))
            .transpose()?;
        let Some(hash) = hash else { return Ok(CompositionDeletion::NotFound) };
        sqlx::query("DELETE FROM compositions WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let orphan = if super::blob_in_use(&mut tx, &hash).await? { None } else { Some(hash) };
        super::blobs::mark_in(&mut tx, orphan.as_slice(), super::now_ms()).await?;
        tx.commit().await?;
        Ok(CompositionDeletion::Deleted { orphan })
    }

    /// Newest first, at most `limit`.
    pub async fn compositions(&self, limit: i64) -> anyhow::Result<Vec<CompositionRow>> {
        let sql = format!("SELECT {COLUMNS} FROM compositions ORDER BY created_at DESC, id LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(CompositionRow::from_row).collect::<sqlx::Result<_>>()?)
    }
}

/// What deleting a composition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompositionDeletion {
    NotFound,
    /// Deleted; its MIDI blob, when nothing else references it.
    Deleted {
        orphan: Option<String>,
    },
}
