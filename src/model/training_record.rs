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
    /// The rate the schedule starts from (warm-up and cosine: its peak).
    pub learning_rate: f64,
    /// The learning rate is multiplied by this after every epoch (exponential schedule).
    pub learning_rate_decay: f64,
    pub schedule: LearningRateSchedule,
    /// Training stops once its epochs have taken this long, all attempts together.
    pub budget_seconds: f64,
    /// Training returns after this epoch, as if it were the last, to be resumed
    /// from its checkpoint later with a later one (a search's rung); the learning
    /// rate still follows the schedule of `epochs`.
    pub pause_after: Option<u32>,
    /// Plan the epochs from the pace measured: after every epoch, those done and
    /// what the rest of the budget holds, at most `epochs`
    /// ([`crate::model::recipe::planned_epochs`]).
    #[serde(default)]
    pub plan_epochs: bool,
    /// Times the run may go back to its best weights at [`LEARNING_RATE_DROP`]×
    /// the rate when its patience runs out, instead of stopping.
    #[serde(default)]
    pub learning_rate_drops: u32,
}

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LearningRateSchedule {
    /// The preset's rate, times the decay after every epoch.
    #[default]
    Exponential,
    /// Up from 0 over the first [`WARMUP_SHARE`] of the planned steps, then a cosine
    /// down to 0 at the last planned step.
    WarmupCosine,
}

/// Share of a warm-up-and-cosine run's planned steps spent warming up.
pub const WARMUP_SHARE: f64 = 0.05;

/// What a drop multiplies the learning rate by ([`FitConfig::learning_rate_drops`]).
pub const LEARNING_RATE_DROP: f64 = 0.3;

impl LearningRateSchedule {
    /// The rate after `done` of `planned` steps, from the preset's `base` (the
    /// exponential schedule moves per epoch, in the loop, and keeps `base` here).
    pub fn rate(self, base: f64, done: u64, planned: u64) -> f64 {
        match self {
            LearningRateSchedule::Exponential => base,
            LearningRateSchedule::WarmupCosine => {
                let progress = done as f64 / planned.max(1) as f64;
                if progress < WARMUP_SHARE {
                    base * (done + 1) as f64 / (WARMUP_SHARE * planned as f64).max(1.0)
                } else {
                    let cosine = (progress - WARMUP_SHARE) / (1.0 - WARMUP_SHARE);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * cosine.min(1.0)).cos())
                }
            }
        }
    }
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

#[cfg(test)]
impl EpochMetrics {
    /// An epoch of `seconds` at `samples_per_second`, with losses of 9, a rate of
    /// 2e-3 and none of the optional figures: the fixture of the tests that read
    /// only the epoch, its time and its pace.
    pub fn timed(epoch: u32, seconds: f64, samples_per_second: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 9.0,
            valid_loss: 9.0,
            train_accuracy: None,
            valid_accuracy: None,
            valid_precision: None,
            valid_recall: None,
            valid_density: None,
            valid_true_density: None,
            samples_per_second,
            learning_rate: 2e-3,
            seconds,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOutcome {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: u32,
    pub best_valid_loss: f64,
    pub stopped_early: bool,
    /// The time budget ran out (the last epoch may be cut short).
    #[serde(default)]
    pub budget_spent: bool,
    /// The epochs the run last planned from its pace, when it planned them
    /// ([`FitConfig::plan_epochs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_epochs: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_a_cosine_to_zero() {
        let schedule = LearningRateSchedule::WarmupCosine;
        let rates: Vec<f64> =
            [0, 49, 50, 525, 999].iter().map(|&done| schedule.rate(1.0, done, 1000)).collect();
        assert!((rates[0] - 0.02).abs() < 1e-9, "the first step is 1/50 of the way up: {rates:?}");
        assert!((rates[1] - 1.0).abs() < 1e-9, "{rates:?}");
        assert!((rates[2] - 1.0).abs() < 1e-9, "the peak: {rates:?}");
        assert!((rates[3] - 0.5).abs() < 1e-9, "halfway down: {rates:?}");
        assert!(rates[4] < 1e-4, "0 at the end: {rates:?}");
        assert_eq!(LearningRateSchedule::Exponential.rate(0.3, 500, 1000), 0.3);
    }
}
