//! What a training run is asked to do and what it did, as a model artifact keeps
//! it (`meta.json`) and the registry shows it. The loop itself is in `train`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub epochs: u32,
    /// Stop after this many epochs without a better validation loss.
    pub patience: u32,
    pub seed: u64,
    /// The learning rate is multiplied by this after every epoch.
    pub learning_rate_decay: f64,
}

/// What one epoch measured. Losses are per item: per frame (nats) for piano rolls,
/// per token for token models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub train_loss: f64,
    pub valid_loss: f64,
    /// Next-token accuracy (arg-max), for token models.
    pub train_accuracy: Option<f64>,
    pub valid_accuracy: Option<f64>,
    /// Of the keys predicted on (probability above one half), the share that are on,
    /// for piano-roll seq2seq models.
    pub valid_precision: Option<f64>,
    /// Of the keys that are on, the share predicted on.
    pub valid_recall: Option<f64>,
    /// Keys predicted on per frame (the data's own density is `valid_true_density`).
    pub valid_density: Option<f64>,
    pub valid_true_density: Option<f64>,
    /// Items (frames or tokens) trained on per second.
    pub samples_per_second: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOutcome {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: u32,
    pub best_valid_loss: f64,
    pub stopped_early: bool,
}
