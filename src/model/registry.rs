//! The model registry: which models exist, which one is the default, and which
//! are in use.
//!
//! Two sources, one namespace of ids:
//! - bundled models: directories of the models directory (`FUGUE_MODELS_DIR`),
//!   read-only, their id is the directory name;
//! - trained models: rows of the `models` table, written when a training job
//!   succeeds, with the artifact in the object store (`models/<id>/`, manifest
//!   last), fetched into this node's bounded local cache on first use.
//!
//! Holds (a live generation session's claim on its model, which blocks deletion)
//! are rows of the database with an expiry, renewed while they live, so a
//! deletion on one node sees the sessions of every other; a node that dies
//! stops renewing, and its holds lapse.
//!
//! The default is the `default_model` setting (`PUT /v1/models/{id}/default`),
//! else `FUGUE_DEFAULT_MODEL`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use utoipa::ToSchema;

use super::artifact::{ArtifactMeta, IndexSummary, MusicEvaluation, Representation, read_meta};
use super::meta_cache::MetaCache;
use super::search::SearchRecord;
use super::training_record::EpochMetrics;
use crate::analysis::statistics::SetStatistics;
use crate::objects::{BundleCache, Objects};
use crate::repr::events::CorpusPart;
use crate::shared::LockSurvivingPanics;
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
    /// Pieces it generated against its held-out files: the newest evaluation job's
    /// result (`POST /v1/models/{id}/evaluations`), else what `fugue evaluate`
    /// stored in its artifact.
    pub music_evaluation: Option<MusicEvaluation>,
    /// The search it won, for a model a search job trained: every trial's drawn
    /// values, rungs and best loss; null otherwise.
    pub search: Option<SearchRecord>,
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
    objects: Objects,
    cache: BundleCache,
    fallback_default: String,
    /// This process, as the `node` of its holds.
    node: String,
    /// Holds to release, for the task that also renews them.
    release: tokio::sync::mpsc::UnboundedSender<String>,
    held: Held,
    metas: MetaCache,
}

/// This node's live hold of each model in use, by model: every session of a
/// model shares it, so a session adds no database write once its model is held.
type Held = Arc<Mutex<HashMap<String, Weak<ModelUse>>>>;

/// How long a hold lasts unless renewed; renewed every third of it.
pub const HOLD_TTL: Duration = Duration::from_secs(30);

/// Keeps a model from being deleted, on any node, while it lives (one row of
/// the database, shared by this node's sessions of the model).
pub struct ModelUse {
    hold: String,
    release: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Drop for ModelUse {
    fn drop(&mut self) {
        // Released by the registry's task (this may run on an engine thread).
        let _ = self.release.send(std::mem::take(&mut self.hold));
    }
}

/// Where a trained model's artifact lives in the object store.
pub fn model_key(id: &str) -> String {
    format!("models/{id}")
}

impl ModelRegistry {
    /// Starts the task that renews this node's holds and releases dropped ones
    /// (call on a Tokio runtime).
    pub fn new(
        store: Store,
        bundled_dir: &Path,
        objects: Objects,
        cache: BundleCache,
        fallback_default: &str,
    ) -> ModelRegistry {
        let (release, released) = tokio::sync::mpsc::unbounded_channel();
        let node = format!("{}:{}", uuid::Uuid::new_v4().simple(), std::process::id());
        let held = Held::default();
        tokio::spawn(keep_holds(store.clone(), node.clone(), released, held.clone()));
        ModelRegistry {
            store,
            bundled_dir: bundled_dir.to_owned(),
            objects,
            cache,
            fallback_default: fallback_default.to_owned(),
            node,
            release,
            held,
            metas: MetaCache::default(),
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
            let mut dir = self.cache.fetch(&model_key(id), id).await?;
            // Registered, so complete: a model stored before manifests existed.
            if dir.is_none() && self.objects.adopt_bundle(&model_key(id)).await? {
                dir = self.cache.fetch(&model_key(id), id).await?;
            }
            let dir = dir.with_context(|| {
                format!("model `{id}` is registered but its artifact is not in the store")
            })?;
            return Ok(Some((dir, Some(row))));
        }
        let bundled = self.bundled_dir.join(id);
        Ok(bundled.join(super::artifact::META_FILE).is_file().then_some((bundled, None)))
    }

    /// The metadata of the artifact in `dir` (a directory [`Self::path`] gave).
    pub async fn meta(&self, dir: &Path) -> anyhow::Result<Arc<ArtifactMeta>> {
        self.metas.get(dir).await
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
        let meta = self.meta(&dir).await?;
        let default = self.default_id().await?;
        let music_evaluation = match self.store.model_evaluation(id).await? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .with_context(|| format!("model `{id}`: its stored evaluation does not decode"))?,
            ),
            None => meta.music_evaluation.clone(),
        };
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
            music_evaluation,
            search: meta.search.clone(),
        }))
    }

    pub async fn set_default(&self, id: &str) -> Result<(), RegistryError> {
        // Whether it exists, without fetching a trained model's files.
        let registered = valid_id(id) && self.store.model(id).await?.is_some();
        let bundled = !registered
            && valid_id(id)
            && self.bundled_dir.join(id).join(super::artifact::META_FILE).is_file();
        if !registered && !bundled {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        if self.store.set_default_model(id, registered).await? {
            Ok(())
        } else {
            Err(RegistryError::NotFound(id.to_owned()))
        }
    }

    /// Holds `id` against deletion, on every node, until the returned guard
    /// drops; `None` when a trained model was deleted meanwhile. While this node
    /// holds `id` already, the guard is that hold's: a held model cannot have
    /// been deleted.
    pub async fn hold_in_use(&self, id: &str, trained: bool) -> anyhow::Result<Option<Arc<ModelUse>>> {
        if let Some(live) = self.held().get(id).and_then(Weak::upgrade) {
            return Ok(Some(live));
        }
        let hold = uuid::Uuid::new_v4().to_string();
        let expires_at = crate::store::now_ms() + HOLD_TTL.as_millis() as i64;
        if !self.store.hold_model(&hold, id, &self.node, expires_at, trained).await? {
            return Ok(None);
        }
        let guard = Arc::new(ModelUse { hold, release: self.release.clone() });
        let mut held = self.held();
        held.retain(|_, hold| hold.strong_count() > 0);
        // Two first sessions at once each write a hold; the later is shared, and
        // the earlier is released with its session.
        held.insert(id.to_owned(), Arc::downgrade(&guard));
        Ok(Some(guard))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<ModelUse>>> {
        self.held.lock_surviving_panics()
    }

    /// Deletes a trained model: not the default, not one in use on any node, never
    /// a bundled one. The row goes first (the model is gone for every node), then
    /// the artifact, manifest first.
    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        if !valid_id(id) {
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        if self.store.model(id).await?.is_none() {
            if self.bundled_dir.join(id).join(super::artifact::META_FILE).is_file() {
                return Err(RegistryError::Conflict(format!(
                    "model `{id}` is bundled with the server (read-only); remove its directory instead"
                )));
            }
            return Err(RegistryError::NotFound(id.to_owned()));
        }
        if self.default_id().await? == id {
            return Err(default_conflict(id));
        }
        match self.store.delete_model_unless_default(id).await? {
            ModelDeletion::Deleted => {
                self.cache.forget(id);
                if let Err(error) = self.objects.delete_bundle(&model_key(id)).await {
                    tracing::warn!(
                        model = id,
                        error = format!("{error:#}"),
                        "could not remove a deleted model's files"
                    );
                }
                Ok(())
            }
            ModelDeletion::NotFound => Err(RegistryError::NotFound(id.to_owned())),
            ModelDeletion::IsDefault => Err(default_conflict(id)),
            ModelDeletion::InUse => {
                Err(RegistryError::Conflict(format!("model `{id}` is in use by a generation session")))
            }
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
            Ok(Some((dir, _))) => match self.meta(&dir).await {
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

/// Renews this node's holds every third of [`HOLD_TTL`] and releases the ones
/// dropped; a failed write is retried at the next turn (a hold that cannot be
/// released expires).
async fn keep_holds(
    store: Store,
    node: String,
    mut released: tokio::sync::mpsc::UnboundedReceiver<String>,
    held: Held,
) {
    let mut renew = tokio::time::interval(HOLD_TTL / 3);
    loop {
        tokio::select! {
            hold = released.recv() => match hold {
                Some(hold) => {
                    if let Err(error) = store.release_hold(&hold).await {
                        tracing::warn!(error = format!("{error:#}"), "could not release a model hold; it will expire");
                    }
                }
                None => return,
            },
            _ = renew.tick() => {
                let expires_at = crate::store::now_ms() + HOLD_TTL.as_millis() as i64;
                match store.renew_holds(&node, expires_at).await {
                    Ok(renewed) => forget_lapsed(&held, &renewed),
                    Err(error) => tracing::warn!(error = format!("{error:#}"), "could not renew model holds"),
                }
            }
        }
    }
}

/// Forgets the holds of `held` that are not among those just `renewed`: another
/// node cleared them as lapsed (this one could not renew them in time), so they
/// keep nothing from deletion and the model's next session must write a new one
/// rather than share them. The sessions already under way play on from memory.
/// A hold written between the renewal and this is forgotten too; its model's
/// next session then writes one more hold, which is released as any other.
fn forget_lapsed(held: &Held, renewed: &HashSet<String>) {
    held.lock_surviving_panics().retain(|model, hold| {
        let live = hold.upgrade().is_some_and(|hold| renewed.contains(&hold.hold));
        if !live && hold.strong_count() > 0 {
            tracing::warn!(
                model,
                "a model hold lapsed and was cleared; the next session holds the model anew"
            );
        }
        live
    });
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

    #[test]
    fn a_hold_that_was_not_renewed_is_no_longer_shared() {
        let (release, _released) = tokio::sync::mpsc::unbounded_channel();
        let hold = |id: &str| Arc::new(ModelUse { hold: id.to_owned(), release: release.clone() });
        let (kept, lapsed) = (hold("h1"), hold("h2"));
        let held = Held::default();
        held.lock_surviving_panics().extend([
            ("bach".to_owned(), Arc::downgrade(&kept)),
            ("folk".to_owned(), Arc::downgrade(&lapsed)),
        ]);
        forget_lapsed(&held, &HashSet::from(["h1".to_owned()]));
        let models: Vec<String> = held.lock_surviving_panics().keys().cloned().collect();
        assert_eq!(models, ["bach"]);
    }
}
