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
pub mod search;
pub mod seq2seq_training;
pub mod token_training;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Tensor;
use tch::nn::VarStore;

use self::checkpoint::Checkpoint;
use self::progress::StepProgress;
use crate::model::hyperparameters::Hyperparameters;
use crate::model::optim::Optimizer;
use crate::model::recipe;
use crate::model::training_record::LEARNING_RATE_DROP;
pub use crate::model::training_record::{EpochMetrics, FitConfig, FitOutcome, LearningRateSchedule};

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
    /// Sees the hyperparameters the run trains with, once its corpus is read and
    /// before the first epoch (the job runner records them). An error ends the run.
    pub planned: &'a mut dyn FnMut(&Hyperparameters) -> anyhow::Result<()>,
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

/// The training loss stopped being a number; the last checkpoint stands.
#[derive(Debug, thiserror::Error)]
#[error("training diverged at epoch {epoch} (the loss is not finite); lower the learning rate")]
pub struct Diverged {
    pub epoch: u32,
}

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

/// Trains until `config.epochs` (with `config.plan_epochs`, the epochs planned
/// from the pace after every epoch, at most those), until validation stops
/// improving (after `config.learning_rate_drops` returns to the best weights at a
/// lower rate), or until the epochs' training time reaches `config.budget_seconds`
/// (the epoch running then ends at once, and is validated and recorded), keeping
/// the best weights in `vs` at the end. With a checkpoint in `dir`, resumes from it.
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
    // Training time so far, every attempt's epochs together.
    let spent_before = |state: &Checkpoint| state.history.iter().map(|m| m.seconds).sum::<f64>();
    let mut budget_spent = spent_before(&state) >= config.budget_seconds;
    // The epochs planned from the pace so far (or as configured), re-planned after every epoch.
    let plan = |state: &Checkpoint| match config.plan_epochs {
        true => recipe::planned_epochs(
            config.epochs,
            state.history.len() as u32,
            spent_before(state),
            config.budget_seconds,
        ),
        false => config.epochs,
    };
    let mut epochs = plan(&state);
    let last_epoch = |epochs: u32| config.pause_after.map_or(epochs, |pause| pause.min(epochs));
    while state.next_epoch <= last_epoch(epochs) && !state.out_of_patience(config.patience) && !budget_spent {
        let epoch = state.next_epoch;
        tch::manual_seed((config.seed + u64::from(epoch)) as i64);
        let started = Instant::now();
        let budget_left = config.budget_seconds - spent_before(&state);
        let mut train = Tally::default();
        let batches = train_batches(epoch);
        let steps = batches.len();
        let planned_steps = steps as u64 * u64::from(epochs);
        for (step, batch) in batches.into_iter().enumerate() {
            if control.stop.load(Ordering::Relaxed) {
                return Err(Interrupted.into());
            }
            if started.elapsed().as_secs_f64() >= budget_left {
                budget_spent = true;
                break;
            }
            let done = u64::from(epoch - 1) * steps as u64 + step as u64;
            if config.schedule == LearningRateSchedule::WarmupCosine {
                let dropped = LEARNING_RATE_DROP.powi(state.learning_rate_drops as i32);
                optimizer.set_learning_rate(
                    config.schedule.rate(config.learning_rate, done, planned_steps) * dropped,
                );
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
        if train.items == 0 {
            // The budget ran out before this epoch's first step: nothing to validate.
            break;
        }
        if !train.sum.is_finite() {
            return Err(Diverged { epoch }.into());
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
        if config.schedule == LearningRateSchedule::Exponential {
            optimizer.set_learning_rate(optimizer.learning_rate() * config.learning_rate_decay);
        }
        if state.out_of_patience(config.patience) && state.learning_rate_drops < config.learning_rate_drops {
            // Patience ran out: go on from the best weights, slower, rather than stop.
            state.restore_best(dir, vs)?;
            optimizer.restart_average();
            optimizer.set_learning_rate(optimizer.learning_rate() * LEARNING_RATE_DROP);
            state.learning_rate_drops += 1;
            state.epochs_since_best = 0;
        }
        state.learning_rate = optimizer.learning_rate();
        state.save(dir, vs, optimizer)?;
        if let Some(checkpointed) = control.checkpointed.as_mut() {
            checkpointed(dir)?;
        }
        epochs = plan(&state);
    }
    state.restore_best(dir, vs)?;
    Ok(FitOutcome {
        stopped_early: state.next_epoch <= config.epochs,
        budget_spent,
        planned_epochs: config.plan_epochs.then_some(epochs),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tch::nn::{self, VarStore};
    use tch::{Device, Kind};

    use super::*;
    use crate::model::optim::{OptimizerConfig, OptimizerKind};

    /// One weight pulled towards 3, and validated against `valid_target`; each
    /// batch takes `pause`.
    struct Toy {
        vs: VarStore,
        optimizer: Optimizer,
        valid_target: f64,
    }

    impl Toy {
        fn new() -> Toy {
            Toy::validated_against(3.0)
        }

        fn validated_against(valid_target: f64) -> Toy {
            let vs = VarStore::new(Device::Cpu);
            let _weight = vs.root().var("w", &[1], nn::Init::Const(0.0));
            let config = OptimizerConfig {
                kind: OptimizerKind::Adam,
                learning_rate: 0.1,
                weight_decay: 0.0,
                clip_grad_norm: None,
                weight_averaging: 0.0,
            };
            let optimizer = Optimizer::new(&vs, config);
            Toy { vs, optimizer, valid_target }
        }

        fn fit(&mut self, config: &FitConfig, pause: Duration) -> FitOutcome {
            let dir = tempfile::tempdir().unwrap();
            self.fit_in(dir.path(), config, pause)
        }

        /// Trains with its checkpoints in `dir`, resuming from one there.
        fn fit_in(&mut self, dir: &Path, config: &FitConfig, pause: Duration) -> FitOutcome {
            let weight = self.vs.variables()["w"].shallow_clone();
            let valid_target = self.valid_target;
            let loss = |_: &(), train: bool| {
                std::thread::sleep(pause);
                let target = if train { 3.0 } else { valid_target };
                let sum = (&weight - target).square().sum(Kind::Float);
                BatchLoss { sum, items: 1, correct: None, keys: None }
            };
            let never = AtomicBool::new(false);
            let control = &mut Control {
                planned: &mut |_| Ok(()),
                progress: &mut |_| Ok(()),
                step: &mut |_| Ok(()),
                stop: &never,
                checkpointed: None,
            };
            let batches = |_epoch: u32| vec![(); 20];
            fit(&self.vs, &mut self.optimizer, config, &batches, &[()], &loss, dir, control).unwrap()
        }
    }

    fn config(schedule: LearningRateSchedule, budget_seconds: f64) -> FitConfig {
        FitConfig {
            epochs: 5,
            patience: 5,
            seed: 1,
            learning_rate: 0.1,
            learning_rate_decay: 0.5,
            schedule,
            budget_seconds,
            pause_after: None,
            plan_epochs: false,
            learning_rate_drops: 0,
        }
    }

    #[test]
    fn a_spent_budget_ends_the_epoch_at_once_and_keeps_the_best() {
        // 20 batches of 20 ms an epoch; the budget ends the first after some 5.
        let outcome =
            Toy::new().fit(&config(LearningRateSchedule::Exponential, 0.1), Duration::from_millis(20));
        assert!(outcome.budget_spent && outcome.stopped_early);
        assert_eq!(outcome.history.len(), 1, "the cut epoch is validated and recorded");
        assert_eq!(outcome.best_epoch, 1);
        let seconds = outcome.history[0].seconds;
        assert!((0.1..0.4).contains(&seconds), "{seconds}: the budget and one batch at most");
    }

    #[test]
    fn epochs_planned_from_the_pace_leave_the_end_to_the_budget() {
        // 20 batches of 10 ms an epoch, some 0.2 s; a budget of 0.5 s holds 2½ of the 50.
        let planned =
            FitConfig { epochs: 50, plan_epochs: true, ..config(LearningRateSchedule::Exponential, 0.5) };
        let outcome = Toy::new().fit(&planned, Duration::from_millis(10));
        assert!(outcome.budget_spent, "the budget, not the plan, ends the run: {:?}", outcome.planned_epochs);
        let run = outcome.history.len() as u32;
        assert!((2..=3).contains(&run), "{run} epochs");
        assert_eq!(outcome.planned_epochs, Some(run), "the last plan is the epochs run");
        let seconds: f64 = outcome.history.iter().map(|m| m.seconds).sum();
        assert!(seconds >= 0.5, "{seconds}: the whole budget");

        // Without the plan, the run holds its configured epochs and plans none.
        let unplanned = Toy::new().fit(&config(LearningRateSchedule::Exponential, 1e9), Duration::ZERO);
        assert_eq!((unplanned.history.len(), unplanned.planned_epochs), (5, None));
    }

    /// A search's rung: the run returns after `pause_after`, and a later run from
    /// its checkpoint ends exactly as one that never paused, on the same schedule.
    #[test]
    fn a_paused_run_resumes_to_the_end_of_one_that_never_paused() {
        // To 12 digits: the epochs before the pause come back from the checkpoint's
        // JSON, whose reading may be off in the last bit.
        let losses = |outcome: &FitOutcome| -> Vec<String> {
            let history = outcome.history.iter();
            history
                .map(|m| format!("{:.12e} {:.12e} {:.12e}", m.train_loss, m.valid_loss, m.learning_rate))
                .collect()
        };
        for schedule in [LearningRateSchedule::Exponential, LearningRateSchedule::WarmupCosine] {
            let whole = Toy::new().fit(&config(schedule, 1e9), Duration::ZERO);
            let dir = tempfile::tempdir().unwrap();
            let paused = FitConfig { pause_after: Some(2), ..config(schedule, 1e9) };
            let first = Toy::new().fit_in(dir.path(), &paused, Duration::ZERO);
            assert_eq!(losses(&first), losses(&whole)[..2], "{schedule:?}");
            let resumed = Toy::new().fit_in(dir.path(), &config(schedule, 1e9), Duration::ZERO);
            assert_eq!(losses(&resumed), losses(&whole), "{schedule:?}");
        }
    }

    #[test]
    fn the_schedules_set_the_rate_each_epoch_ends_with() {
        let unbounded = 1e9;
        let rates = |schedule| {
            let outcome = Toy::new().fit(&config(schedule, unbounded), Duration::ZERO);
            assert!(!outcome.budget_spent);
            outcome.history.iter().map(|m| m.learning_rate).collect::<Vec<f64>>()
        };
        let exponential = rates(LearningRateSchedule::Exponential);
        assert_eq!(exponential, [0.1, 0.05, 0.025, 0.0125, 0.00625]);
        // Steps 20, 40, … of 100: past the warm-up (5), down the cosine to near 0.
        let cosine = rates(LearningRateSchedule::WarmupCosine);
        let expected: Vec<f64> = [19, 39, 59, 79, 99]
            .iter()
            .map(|&done| LearningRateSchedule::WarmupCosine.rate(0.1, done, 100))
            .collect();
        assert_eq!(cosine, expected);
        assert!(cosine.windows(2).all(|pair| pair[1] < pair[0]) && cosine[4] < 1e-3, "{cosine:?}");
    }

    /// Training overshoots what validation wants, so patience runs out: the run
    /// goes back to its best weights at 0.3× the rate, and stops once its drops
    /// are spent; a run resumed across the drops ends as one that never paused.
    #[test]
    fn a_run_out_of_patience_goes_back_to_its_best_weights_at_a_lower_rate() {
        let overshooting = FitConfig {
            epochs: 100,
            patience: 2,
            learning_rate: 0.1,
            learning_rate_decay: 1.0,
            learning_rate_drops: 2,
            ..config(LearningRateSchedule::Exponential, 1e9)
        };
        let whole = Toy::validated_against(1.0).fit(&overshooting, Duration::ZERO);
        let rates: Vec<String> = whole.history.iter().map(|m| format!("{:.4}", m.learning_rate)).collect();
        // The best is epoch 1; two epochs worse, a drop; twice; then the end.
        assert_eq!(rates, ["0.1000", "0.1000", "0.1000", "0.0300", "0.0300", "0.0090", "0.0090"]);
        assert_eq!((whole.best_epoch, whole.stopped_early), (1, true));
        let train: Vec<f64> = whole.history.iter().map(|m| m.train_loss).collect();
        assert!(
            train[3] > train[2] && train[5] > train[4],
            "each drop starts from epoch 1's weights: {train:?}"
        );

        let without = FitConfig { learning_rate_drops: 0, ..overshooting.clone() };
        assert_eq!(Toy::validated_against(1.0).fit(&without, Duration::ZERO).history.len(), 3);

        let dir = tempfile::tempdir().unwrap();
        let paused = FitConfig { pause_after: Some(3), ..overshooting.clone() };
        Toy::validated_against(1.0).fit_in(dir.path(), &paused, Duration::ZERO);
        let resumed = Toy::validated_against(1.0).fit_in(dir.path(), &overshooting, Duration::ZERO);
        let losses = |outcome: &FitOutcome| -> Vec<String> {
            outcome.history.iter().map(|m| format!("{:.9} {:.9}", m.train_loss, m.valid_loss)).collect()
        };
        assert_eq!(losses(&resumed), losses(&whole));
    }
}
