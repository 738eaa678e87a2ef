//! Registered (trained) models. A row is written only together with its job's
//! success (see `complete_job`), after the artifact is in place on disk.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::shared::Preset;

/// The settings key naming the default model (a JSON string).
const DEFAULT_MODEL_SETTING: &str = "default_model";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub preset: Preset,
    pub job_id: Option<String>,
    pub dataset_id: Option<String>,
    /// Headline figures as JSON.
    pub summary: String,
    pub created_at: i64,
}

const MODEL_COLUMNS: &str = "id, name, preset, job_id, dataset_id, summary, created_at";

impl ModelRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<ModelRow> {
        Ok(ModelRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            preset: super::decode_preset(row)?,
            job_id: row.try_get("job_id")?,
            dataset_id: row.try_get("dataset_id")?,
            summary: row.try_get("summary")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub(super) async fn insert_model(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    model: &ModelRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO models (id, name, preset, job_id, dataset_id, summary, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&model.id)
    .bind(&model.name)
    .bind(model.preset.name())
    .bind(&model.job_id)
    .bind(&model.dataset_id)
    .bind(&model.summary)
    .bind(model.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Newest first.
    pub async fn models(&self) -> anyhow::Result<Vec<ModelRow>> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(ModelRow::from_row).collect::<sqlx::Result<_>>()?)
    }

    pub async fn model(&self, id: &str) -> anyhow::Result<Option<ModelRow>> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(ModelRow::from_row).transpose()?)
    }

    /// Makes `id` the default model. A trained model (`registered`) must still have
    /// its row, checked in the same transaction as the write, so a model deleted
    /// meanwhile never becomes the default. False when it has no row.
    pub async fn set_default_model(&self, id: &str, registered: bool) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        if registered {
            let exists = sqlx::query("SELECT 1 AS present FROM models WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(DEFAULT_MODEL_SETTING)
        .bind(serde_json::to_string(id)?)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The model chosen with `set_default_model`, if any.
    pub async fn default_model(&self) -> anyhow::Result<Option<String>> {
        let value = self.setting(DEFAULT_MODEL_SETTING).await?;
        Ok(value.and_then(|value| serde_json::from_str(&value).ok()))
    }

    /// The newest evaluation an evaluation job stored for a model (JSON).
    pub async fn model_evaluation(&self, model_id: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT evaluation FROM model_evaluations WHERE model_id = $1 \
             ORDER BY created_at DESC, job_id DESC LIMIT 1",
        )
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("evaluation")).transpose()?)
    }

    /// Deletes the row unless the model is the default (the setting `default_model`),
    /// checked in the same transaction. True when a row was deleted.
    pub async fn delete_model_unless_default(&self, id: &str) -> anyhow::Result<ModelDeletion> {
        let mut tx = self.begin_write().await?;
        let default = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(DEFAULT_MODEL_SETTING)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<String, _>("value"))
            .transpose()?;
        if default.and_then(|value| serde_json::from_str::<String>(&value).ok()).as_deref() == Some(id) {
            return Ok(ModelDeletion::IsDefault);
        }
        // The row is locked before the holds are counted, and a new hold takes a
        // share lock on it first (`hold_model`): one of the two waits for the other.
        if self.backend == super::Backend::Postgres {
            sqlx::query("SELECT id FROM models WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
        }
        let held =
            sqlx::query("SELECT 1 AS held FROM model_holds WHERE model_id = $1 AND expires_at > $2 LIMIT 1")
                .bind(id)
                .bind(super::now_ms())
                .fetch_optional(&mut *tx)
                .await?;
        if held.is_some() {
            return Ok(ModelDeletion::InUse);
        }
        let deleted = sqlx::query("DELETE FROM models WHERE id = $1").bind(id).execute(&mut *tx).await?;
        // Its evaluations go with it (a later model may not take them over by its id).
        sqlx::query("DELETE FROM model_evaluations WHERE model_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(if deleted.rows_affected() == 1 { ModelDeletion::Deleted } else { ModelDeletion::NotFound })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelDeletion {
    Deleted,
    NotFound,
    IsDefault,
    /// A live hold (a generation session on some node) names it.
    InUse,
}

impl Store {
    /// Holds a model for a generation session until `expires_at` (renewed by
    /// `renew_holds`). A trained model (`registered`) must still have its row,
    /// share-locked while the hold is written, so a concurrent deletion either sees
    /// the hold or makes this return false.
    pub async fn hold_model(
        &self,
        hold: &str,
        model: &str,
        node: &str,
        expires_at: i64,
        registered: bool,
    ) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        if registered {
            let lock = match self.backend {
                super::Backend::Postgres => "SELECT 1 AS present FROM models WHERE id = $1 FOR SHARE",
                super::Backend::Sqlite => "SELECT 1 AS present FROM models WHERE id = $1",
            };
            if sqlx::query(lock).bind(model).fetch_optional(&mut *tx).await?.is_none() {
                return Ok(false);
            }
        }
        sqlx::query("INSERT INTO model_holds (id, model_id, node, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hold)
            .bind(model)
            .bind(node)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn release_hold(&self, hold: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM model_holds WHERE id = $1").bind(hold).execute(&self.pool).await?;
        Ok(())
    }

    /// Extends every hold of `node`, and clears holds that lapsed (their node died,
    /// or could not renew in time). Returns the holds of `node` it extended: one
    /// of its holds missing here was cleared as lapsed by some node.
    pub async fn renew_holds(&self, node: &str, expires_at: i64) -> anyhow::Result<HashSet<String>> {
        let renewed = sqlx::query("UPDATE model_holds SET expires_at = $1 WHERE node = $2 RETURNING id")
            .bind(expires_at)
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        sqlx::query("DELETE FROM model_holds WHERE expires_at < $1")
            .bind(super::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(renewed.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?)
    }
}
