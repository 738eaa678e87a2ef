//! The training loop: epochs over shuffled batches, validation, early stopping on
//! validation loss, a learning-rate schedule, and a checkpoint after every epoch
//! from which a killed run resumes exactly.
//!
//! Randomness is derived from (seed, epoch): `tch::manual_seed(seed + epoch)` opens
//! every epoch, so a resumed epoch draws the same dropout masks and batch order as
//! an uninterrupted one, with no generator state to save.

pub mod checkpoint;
pub mod data;
pub mod progress;
pub mod roll_training;
pub mod run;
pub mod seq2seq_training;
pub mod token_training;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Tensor;
use tch::nn::VarStore;

use self::checkpoint::Checkpoint;
use self::progress::StepProgress;
use crate::model::optim::Optimizer;
pub use crate::model::training_record::{EpochMetrics, FitConfig, FitOutcome};

/// A batch's summed loss, how many items it covers, and how many of them the
/// model predicted right (for models with a notion of accuracy).
pub struct BatchLoss {
    pub sum: Tensor,
    pub items: i64,
    pub correct: Option<i64>,
    pub keys: Option<KeyCounts>,
}

/// Piano-roll keys: predicted on and truly on, and the overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub predicted: i64,
    pub actual: i64,
    pub both: i64,
}

pub type LossFn<'a, B> = &'a dyn Fn(&B, bool) -> BatchLoss;

/// How the caller follows and stops a run.
pub struct Control<'a> {
    /// Sees every epoch as it ends, before its checkpoint is written. An error
    /// ends the run there, and that epoch is not checkpointed: the job runner
    /// uses this to stop a worker that lost its lease from writing anything.
    pub progress: &'a mut dyn FnMut(&EpochMetrics) -> anyhow::Result<()>,
    /// Sees every training step's [`StepProgress`] (callers throttle it with a
    /// [`progress::Throttle`]). An error ends the run there.
    pub step: &'a mut dyn FnMut(&StepProgress) -> anyhow::Result<()>,
    /// Checked before every batch; once set, the run ends with [`Interrupted`].
    pub stop: &'a AtomicBool,
    /// Called with the checkpoint directory after each epoch's checkpoint is
    /// written whole (the job runner copies it to the object store). An error
    /// ends the run.
    pub checkpointed: Option<&'a mut Checkpointed<'a>>,
}

/// See [`Control::checkpointed`].
pub type Checkpointed<'a> = dyn FnMut(&Path) -> anyhow::Result<()> + 'a;

/// The run was stopped through [`Control::stop`]; its last checkpoint stands.
#[derive(Debug, thiserror::Error)]
#[error("training was stopped")]
pub struct Interrupted;

/// Running totals over an epoch's batches.
#[derive(Default)]
struct Tally {
    sum: f64,
    items: i64,
    correct: Option<i64>,
    keys: Option<KeyCounts>,
}

impl Tally {
    fn add(&mut self, batch: &BatchLoss) -> anyhow::Result<()> {
        self.sum += f64::try_from(&batch.sum)?;
        self.items += batch.items;
        if let Some(correct) = batch.correct {
            self.correct = Some(self.correct.unwrap_or(0) + correct);
        }
        if let Some(keys) = batch.keys {
            let total = self.keys.get_or_insert_with(KeyCounts::default);
            total.predicted += keys.predicted;
            total.actual += keys.actual;
            total.both += keys.both;
        }
        Ok(())
    }

    fn key_ratio(&self, ratio: impl Fn(KeyCounts) -> (i64, i64)) -> Option<f64> {
        self.keys.map(ratio).map(|(part, whole)| part as f64 / whole.max(1) as f64)
    }

    fn loss(&self) -> f64 {
        self.sum / self.items.max(1) as f64
    }

    fn accuracy(&self) -> Option<f64> {
        self.correct.map(|correct| correct as f64 / self.items.max(1) as f64)
    }
}

/// Trains until `config.epochs`, or until validation stops improving, keeping the
/// best weights in `vs` at the end. With a checkpoint in `dir`, resumes from it.
#[allow(clippy::too_many_arguments, reason = "each argument is one independent part of a run")]
pub fn fit<B>(
    vs: &VarStore,
    optimizer: &mut Optimizer,
    config: &FitConfig,
    train_batches: &dyn Fn(u32) -> Vec<B>,
    valid_batches: &[B],
    loss: LossFn<'_, B>,
    dir: &Path,
    control: &mut Control<'_>,
) -> anyhow::Result<FitOutcome> {
    let mut state = match Checkpoint::load(dir, vs, optimizer)? {
        Some(state) => state,
        None => Checkpoint::fresh(optimizer.learning_rate()),
    };
    optimizer.set_learning_rate(state.learning_rate);
    while state.next_epoch <= config.epochs && state.epochs_since_best < config.patience.max(1) {
        let epoch = state.next_epoch;
        tch::manual_seed((config.seed + u64::from(epoch)) as i64);
        let started = Instant::now();
        let mut train = Tally::default();
        let batches = train_batches(epoch);
        let steps = batches.len();
        for (step, batch) in batches.into_iter().enumerate() {
            if control.stop.load(Ordering::Relaxed) {
                return Err(Interrupted.into());
            }
            let batch_loss = loss(&batch, true);
            if batch_loss.items == 0 {
                continue;
            }
            optimizer.backward_step(&(&batch_loss.sum / batch_loss.items as f64));
            train.add(&batch_loss)?;
            (control.step)(&StepProgress::of(epoch, step + 1, steps, started.elapsed(), train.loss()))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        if !train.sum.is_finite() {
            anyhow::bail!(
                "training diverged at epoch {epoch} (the loss is not finite); lower the learning rate"
            );
        }
        // Validation (and the best model) use the averaged weights when averaging is on.
        optimizer.swap_averaged();
        let valid = tally(valid_batches, loss)?;
        let metrics = EpochMetrics {
            epoch,
            train_loss: train.loss(),
            valid_loss: valid.loss(),
            train_accuracy: train.accuracy(),
            valid_accuracy: valid.accuracy(),
            valid_precision: valid.key_ratio(|k| (k.both, k.predicted)),
            valid_recall: valid.key_ratio(|k| (k.both, k.actual)),
            valid_density: valid.key_ratio(|k| (k.predicted, valid.items)),
            valid_true_density: valid.key_ratio(|k| (k.actual, valid.items)),
            samples_per_second: train.items as f64 / seconds.max(1e-9),
            learning_rate: optimizer.learning_rate(),
            seconds,
        };
        (control.progress)(&metrics)?;
        if state.record(metrics) {
            state.save_best(dir, vs)?;
        }
        optimizer.swap_averaged();
        optimizer.set_learning_rate(optimizer.learning_rate() * config.learning_rate_decay);
        state.learning_rate = optimizer.learning_rate();
        state.save(dir, vs, optimizer)?;
        if let Some(checkpointed) = control.checkpointed.as_mut() {
            checkpointed(dir)?;
        }
    }
    state.restore_best(dir, vs)?;
    Ok(FitOutcome {
        stopped_early: state.next_epoch <= config.epochs,
        best_epoch: state.best_epoch,
        best_valid_loss: state.best_valid_loss,
        history: state.history,
    })
}

/// A random order of `n` items from libtorch's generator, which `fit` seeds per epoch.
pub fn shuffled(n: usize) -> Vec<usize> {
    let permutation = Tensor::randperm(n as i64, (tch::Kind::Int64, tch::Device::Cpu));
    Vec::<i64>::try_from(permutation).unwrap_or_default().into_iter().map(|i| i as usize).collect()
}

/// Mean loss per item over the batches, without gradients or dropout.
pub fn evaluate<B>(batches: &[B], loss: LossFn<'_, B>) -> anyhow::Result<f64> {
    Ok(tally(batches, loss)?.loss())
}

fn tally<B>(batches: &[B], loss: LossFn<'_, B>) -> anyhow::Result<Tally> {
    tch::no_grad(|| {
        let mut tally = Tally::default();
        for batch in batches {
            tally.add(&loss(batch, false))?;
        }
        Ok(tally)
    })
}
