//! The model registry: which models exist, which one is the default, and which
//! are in use.
//!
//! Two sources, one namespace of ids:
//! - bundled models: directories of the models directory (`FUGUE_MODELS_DIR`),
//!   read-only, their id is the directory name;
//! - trained models: rows of the `models` table, written when a training job
//!   succeeds, with the artifact in `<data dir>/models/<id>`.
//!
//! The default is the `default_model` setting (`PUT /v1/models/{id}/default`),
//! else `FUGUE_DEFAULT_MODEL`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use utoipa::ToSchema;

use super::artifact::{ArtifactMeta, IndexSummary, MusicEvaluation, Representation, load_meta, read_meta};
use super::training_record::EpochMetrics;
use crate::analysis::statistics::SetStatistics;
use crate::repr::events::CorpusPart;
use crate::shared::Preset;
use crate::store::{ModelDeletion, ModelRow, Store};

/// Longest model id, in characters.
pub const MAX_MODEL_ID_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    /// Shipped in the models directory; read-only.
    Bundled,
    /// Trained by a job on this service.
    Trained,
}

/// A model as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "default", "name": "default", "source": "bundled", "preset": "fugue", "is_default": true,
    "job_id": null, "dataset_id": null, "created_at": "2026-11-21T12:00:00Z",
    "summary": {"best_epoch": 20, "best_valid_loss": 0.765, "best_valid_accuracy": 0.769, "epochs_run": 25,
        "evaluation": {"valid_loss": 0.765}}}))]
pub struct ModelInfo {
    #[schema(example = "default")]
    pub id: String,
    pub name: String,
    pub source: ModelSource,
    #[schema(example = "fugue")]
    pub preset: Preset,
    pub is_default: bool,
    /// The training job that made it (trained models).
    pub job_id: Option<String>,
    /// The dataset it was trained on (trained models).
    pub dataset_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub summary: ModelSummary,
}

/// Headline figures of a model, from its training history.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ModelSummary {
    pub best_epoch: u32,
    /// Validation loss at the best epoch (nats per item).
    pub best_valid_loss: f64,
    /// Validation accuracy at the best epoch, for token models.
    pub best_valid_accuracy: Option<f64>,
    pub epochs_run: usize,
    /// Other held-out scores by name (for example `test_nll`).
    #[schema(value_type = Object)]
    pub evaluation: serde_json::Map<String, serde_json::Value>,
}

impl ModelSummary {
    pub fn of(meta: &ArtifactMeta) -> ModelSummary {
        let training = &meta.training;
        let best = training.history.iter().find(|metrics| metrics.epoch == training.best_epoch);
        ModelSummary {
            best_epoch: training.best_epoch,
            best_valid_loss: training.best_valid_loss,
            best_valid_accuracy: best.and_then(|metrics| metrics.valid_accuracy),
            epochs_run: training.history.len(),
            evaluation: meta.evaluation.clone(),
        }
    }
}

/// A model with everything its artifact says.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub info: ModelInfo,
    /// The hyperparameters as trained.
    #[schema(value_type = Object)]
    pub hyperparameters: serde_json::Value,
    /// The representation's kind (`events`, `note-chord`, `melody-chords`, `pianoroll`).
    pub representation: String,
    /// The parts a model trained with parts knows, the most common first: what a
    /// generation request's `parts` may name. Empty for a model without parts.
    pub parts: Vec<CorpusPart>,
    /// What it was trained on: a dataset or a path, and the content hash.
    pub data_source: String,
    pub data_sha256: String,
    /// Every epoch's metrics.
    pub history: Vec<EpochMetrics>,
    pub fugue_version: String,
    /// Its originality index (the training split's notes), which every
    /// composition's copied runs are looked up in and `max_copied_notes` needs;
    /// null for a model without one.
    pub originality_index: Option<IndexSummary>,
    /// Musical statistics of its held-out files (MGEval-style features).
    pub held_out_statistics: Option<SetStatistics>,
    /// `fugue evaluate`: pieces it generated against its held-out files.
    pub music_evaluation: Option<MusicEvaluation>,
}

/// Why a model could not be deleted or made the default.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no model `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct ModelRegistry {
    store: Store,
    bundled_dir: PathBuf,
    trained_dir: PathBuf,
    fallback_default: String,
    /// Models held by live generation sessions (count per id), and ids being deleted.
    uses: Arc<Mutex<Uses>>,
}

#[derive(Default)]
struct Uses {
    holders: HashMap<String, usize>,
    deleting: Vec<String>,
}

/// Keeps a model from being deleted while it lives.
pub struct ModelUse {
    id: String,
    uses: Arc<Mutex<Uses>>,
}

impl Drop for ModelUse {
    fn drop(&mut self) {
        let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = uses.holders.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                uses.holders.remove(&self.id);
            }
        }
    }
}

/// Where trained models live under the data dir.
pub fn trained_models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

impl ModelRegistry {
    pub fn new(store: Store, bundled_dir: &Path, data_dir: &Path, fallback_default: &str) -> ModelRegistry {
        ModelRegistry {
            store,
            bundled_dir: bundled_dir.to_owned(),
            trained_dir: trained_models_dir(data_dir),
            fallback_default: fallback_default.to_owned(),
            uses: Arc::default(),
        }
    }

    /// The default model's id.
    pub async fn default_id(&self) -> anyhow::Result<String> {
        Ok(self.store.default_model().await?.unwrap_or_else(|| self.fallback_default.clone()))
    }

    /// Where `id`'s artifact is, if it exists.
    pub async fn path(&self, id: &str) -> anyhow::Result<Option<(PathBuf, Option<ModelRow>)>> {
        if !valid_id(id) {
            return Ok(None);
        }
        if let Some(row) = self.store.model(id).await? {
            return Ok(Some((self.trained_dir.join(id), Some(row))));
        }
        let bundled = self.bundled_dir.join(id);
        Ok(bundled.join(super::artifact::META_FILE).is_file().then_some((bundled, None)))
    }

    /// Every model: trained ones newest first, then bundled ones by name.
    pub async fn list(&self) -> anyhow::Result<Vec<ModelInfo>> {
        let default = self.default_id().await?;
        let mut models: Vec<ModelInfo> =
            self.store.models().await?.into_iter().map(|row| trained_info(row, &default)).collect();
        let trained: Vec<String> = models.iter().map(|model| model.id.clone()).collect();
        let bundled_dir = self.bundled_dir.clone();
        // Directory reads, off the async runtime.
        let bundled = tokio::task::spawn_blocking(move || {
            let mut ids: Vec<String> = std::fs::read_dir(&bundled_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| valid_id(name) && !trained.contains(name))
                .collect();
            ids.sort();
            ids.into_iter()
                .filter_map(|id| read_meta(&bundled_dir.join(&id)).ok().map(|meta| (id, meta)))
                .collect::<Vec<_>>()
        })
        .await?;
        models.extend(bundled.iter().map(|(id, meta)| bundled_info(id, meta, &default)));
        Ok(models)
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Option<ModelDetail>> {
        let Some((dir, row)) = self.path(id).await? else { return Ok(None) };
        let meta = load_meta(dir).await?;
        let default = self.default_id().await?;
        let info = match row {
            Some(row) => trained_info(row, &default),
            None => bundled_info(id, &meta, &default),
        };
        Ok(Some(ModelDetail {
            info,
            hyperparameters: meta.hyperparameters.clone(),
            representation: representation_kind(&meta),
            parts: match &meta.representation {
                Representation::Events { config, parts, .. } if config.max_parts > 0 => parts.clone(),
                _ => Vec::new(),
            },
            data_source: meta.data.source.to_string(),
            data_sha256: meta.data.sha256.clone(),
            history: meta.training.history.clone(),
            fugue_version: meta.fugue_version.clone(),
            originality_index: meta.originality_index.clone(),
            held_out_statistics: meta.held_out_statistics.clone(),
            music_evaluation: meta.music_evaluation.clone(),
        }))
    }

    pub async fn set_default(&self, id: &str) -> Result<(), RegistryError> {
        let Some((_, row)) = self.path(id).await? else { return Err(RegistryError::NotFound(id.to_owned())) };
        if self.store.set_default_model(id, row.is_some()).await? {
            Ok(())
        } else {
            Err(RegistryError::NotFound(id.to_owned()))
        }
    }

    /// Holds `id` against deletion until the returned guard drops; `None` while the
    /// model is being deleted.
    pub fn hold_in_use(&self, id: &str) -> Option<ModelUse> {
        let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        if uses.deleting.iter().any(|deleting| deleting == id) {
            return None;
        }
        *uses.holders.entry(id.to_owned()).or_default() += 1;
        Some(ModelUse { id: id.to_owned(), uses: self.uses.clone() })
    }

    /// Deletes a trained model: not the default, not one in use, never a bundled one.
    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let Some((dir, row)) = self.path(id).await? else {
            return Err(RegistryError::NotFound(id.to_owned()));
        };
        if row.is_none() {
            return Err(RegistryError::Conflict(format!(
                "model `{id}` is bundled with the server (read-only); remove its directory instead"
            )));
        }
        if self.default_id().await? == id {
            return Err(default_conflict(id));
        }
        {
            let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
            if uses.holders.contains_key(id) {
                return Err(RegistryError::Conflict(format!(
                    "model `{id}` is in use by a generation session"
                )));
            }
            uses.deleting.push(id.to_owned());
        }
        let deletion = self.store.delete_model_unless_default(id).await;
        self.uses.lock().unwrap_or_else(PoisonError::into_inner).deleting.retain(|deleting| deleting != id);
        match deletion? {
            ModelDeletion::Deleted => {
                tokio::task::spawn_blocking(move || remove_artifact(&dir))
                    .await
                    .map_err(anyhow::Error::from)?;
                Ok(())
            }
            ModelDeletion::NotFound => Err(RegistryError::NotFound(id.to_owned())),
            ModelDeletion::IsDefault => Err(default_conflict(id)),
        }
    }

    /// `ok` when the default model's artifact is present and its metadata readable,
    /// else what is wrong, for `/ready`.
    pub async fn default_model_check(&self) -> String {
        let id = match self.default_id().await {
            Ok(id) => id,
            Err(error) => return format!("default model: {error:#}"),
        };
        match self.path(&id).await {
            Ok(Some((dir, _))) => match load_meta(dir).await {
                Ok(_) => "ok".to_owned(),
                Err(reason) => format!("default model `{id}`: {reason:#}"),
            },
            Ok(None) => format!(
                "default model `{id}`: not found (no trained model `{id}`, no {})",
                self.bundled_dir.join(&id).join(super::artifact::META_FILE).display()
            ),
            Err(error) => format!("default model `{id}`: {error:#}"),
        }
    }
}

fn default_conflict(id: &str) -> RegistryError {
    RegistryError::Conflict(format!("model `{id}` is the default; make another model the default first"))
}

/// Moves the directory aside in one step, then removes it; a failure leaves at most
/// an ignored `.deleted-*` directory, never half a model under its id.
fn remove_artifact(dir: &Path) {
    let Some(parent) = dir.parent() else { return };
    let aside = parent.join(format!(".deleted-{}", uuid::Uuid::new_v4().simple()));
    let removed = std::fs::rename(dir, &aside).and_then(|()| std::fs::remove_dir_all(&aside));
    if let Err(error) = removed {
        tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted model's files");
    }
}

/// Ids are directory names: no separators, no leading dot, bounded length.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_MODEL_ID_CHARS
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn trained_info(row: ModelRow, default: &str) -> ModelInfo {
    let summary = serde_json::from_str(&row.summary).unwrap_or(ModelSummary {
        best_epoch: 0,
        best_valid_loss: f64::NAN,
        best_valid_accuracy: None,
        epochs_run: 0,
        evaluation: Default::default(),
    });
    ModelInfo {
        is_default: row.id == default,
        name: row.name,
        source: ModelSource::Trained,
        preset: row.preset,
        job_id: row.job_id,
        dataset_id: row.dataset_id,
        created_at: crate::shared::rfc3339(row.created_at),
        summary,
        id: row.id,
    }
}

fn bundled_info(id: &str, meta: &ArtifactMeta, default: &str) -> ModelInfo {
    ModelInfo {
        id: id.to_owned(),
        name: id.to_owned(),
        source: ModelSource::Bundled,
        preset: meta.preset,
        is_default: id == default,
        job_id: None,
        dataset_id: None,
        created_at: meta.created_at.clone(),
        summary: ModelSummary::of(meta),
    }
}

fn representation_kind(meta: &ArtifactMeta) -> String {
    use super::artifact::Representation;
    match meta.representation {
        Representation::Pianoroll { .. } => "pianoroll",
        Representation::Events { .. } => "events",
        Representation::NoteChord { .. } => "note-chord",
        Representation::MelodyChords { .. } => "melody-chords",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_their_directory() {
        for id in ["default", "jsb-pianoroll", "4f0c1a2e-9d", "v1.2_b"] {
            assert!(valid_id(id), "{id}");
        }
        for id in ["", "..", ".hidden", "a/b", "a\\b", "ümlaut", &"x".repeat(129)] {
            assert!(!valid_id(id), "{id}");
        }
    }
}
