//! Marks for blob garbage collection across nodes.
//!
//! A mark says "this blob may have no reference": a deletion marks the blobs it
//! orphaned, in its own transaction, and a writer marks the blobs it is about to
//! store *before* it looks them up in the object store (refreshing any older
//! mark). A collector takes only marks older than the grace period, one at a
//! time, in a transaction that deletes the mark (locking it), checks that no row
//! references the blob, and removes the object before committing. So:
//! - a writer that marked a blob before the collector looked sees a fresh mark,
//!   and the blob stays;
//! - a writer that marks it while the collector holds the mark waits for the
//!   collector's commit, then finds the object gone and writes it again;
//! - a writer's rows committed before the collector looked make the blob in use.
//!
//! The grace period bounds how long a writer may take from its mark to its rows.

use sqlx::Row;

use super::Store;

/// Marks `hashes` at `at` (Unix ms) in `tx`, replacing older marks.
pub(super) async fn mark_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    hashes: &[String],
    at: i64,
) -> sqlx::Result<()> {
    for hash in hashes {
        sqlx::query(
            "INSERT INTO blob_marks (sha256, marked_at) VALUES ($1, $2) \
             ON CONFLICT (sha256) DO UPDATE SET marked_at = excluded.marked_at",
        )
        .bind(hash)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Marks blobs a writer is about to store (see the module's comment).
    pub async fn mark_blobs(&self, hashes: &[String], at: i64) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        mark_in(&mut tx, hashes, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Blobs marked before `cutoff`, oldest first: candidates for [`Store::collect_blob`].
    pub async fn blobs_marked_before(&self, cutoff: i64, limit: i64) -> anyhow::Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT sha256 FROM blob_marks WHERE marked_at < $1 ORDER BY marked_at LIMIT $2")
                .bind(cutoff)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|row| row.try_get("sha256")).collect::<sqlx::Result<_>>()?)
    }

    /// Collects one blob if its mark is older than `cutoff` and no row references
    /// it: `remove` deletes the object while the mark is held, and the mark goes
    /// when it succeeded. A blob still in use only loses its mark. True when the
    /// blob was removed.
    pub async fn collect_blob<F, Fut>(&self, hash: &str, cutoff: i64, remove: F) -> anyhow::Result<bool>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut tx = self.begin_write().await?;
        let taken =
            sqlx::query("DELETE FROM blob_marks WHERE sha256 = $1 AND marked_at < $2 RETURNING sha256")
                .bind(hash)
                .bind(cutoff)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_none() {
            return Ok(false);
        }
        if super::blob_in_use(&mut tx, hash).await? {
            tx.commit().await?;
            return Ok(false);
        }
        // Dropping the transaction on failure rolls back: the mark stays for later.
        remove().await?;
        tx.commit().await?;
        Ok(true)
    }
}
