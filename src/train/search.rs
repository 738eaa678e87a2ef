//! A hyperparameter search by successive halving: `K` trials drawn from the space
//! with the run's seed all train for a first rung; the best 1/[`ETA`] of them by
//! validation loss go on, resuming from their own checkpoints, for a rung twice
//! as long; and so on until one is left, whose model is the search's.
//!
//! The schedule ([`schedule`]), for `K` trials and a budget of `B` seconds:
//! - `S + 1` rungs, `S = ⌊log₂ K⌋`; rung `s` trains `⌊K / 2^s⌋` trials, the last one;
//! - each rung gets `B / (S + 1)` of the budget, shared equally by its trials, so
//!   every trial's epochs together take at most `B`; the winner's share (its
//!   rungs' slices summed) is the budget its recipe plans epochs for (`E`);
//! - rung `s` trains each of its trials to epoch `⌈E / 2^(S − s)⌉` (the last to
//!   `E`), or until its share of the budget (every rung so far's, summed) is
//!   spent, or its patience runs out.
//!
//! Every trial keeps the run's seed: the same validation split, the same initial
//! draw, so the trials differ only in what the space drew for them.
//!
//! Resuming: each trial checkpoints into its own folder ([`trial_dir`]) after
//! every epoch, and the [`SearchRecord`] (every finished rung's result) is written
//! to [`STATE_FILE`] after each trial's rung, its commit point. A resumed search
//! skips the rungs the record says are done and resumes a trial cut short from its
//! checkpoint; the survivors it picks are the ones the record implies, so it ends
//! as an uninterrupted search does.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use super::progress::StepProgress;
use super::run::{RungLimit, Trained, TrainingRun, train};
use super::{Checkpointed, Control, Diverged, EpochMetrics};
use crate::model::hyperparameters::{HyperparameterOverrides, Hyperparameters};
use crate::model::search::{self, RungResult, SearchRecord, SearchRequest};
use crate::model::weights::write_atomically;

/// Each rung keeps the best 1/`ETA` of its trials. Two: up to 32 trials, that is
/// up to six rungs, and the last rung trains exactly one trial.
pub const ETA: u32 = 2;

/// The search's record in the root checkpoint folder.
pub const STATE_FILE: &str = "search.json";

/// One rung of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// Trials trained in it.
    pub trials: u32,
    /// Seconds of training each of them gets in it.
    pub seconds_each: f64,
}

/// The rungs for `trials` trials sharing `budget_seconds` (see the module's doc).
pub fn schedule(trials: u32, budget_seconds: f64) -> Vec<Rung> {
    let last = trials.max(1).ilog(ETA);
    let share = budget_seconds / f64::from(last + 1);
    (0..=last)
        .map(|rung| {
            let trials = trials / ETA.pow(rung);
            Rung { trials, seconds_each: share / f64::from(trials) }
        })
        .collect()
}

/// The epoch rung `rung` of `rungs` trains to, of a trial planned for `epochs`.
pub fn rung_epochs(epochs: u32, rung: usize, rungs: usize) -> u32 {
    let below_last = u32::try_from(rungs.saturating_sub(rung + 1)).unwrap_or(u32::MAX);
    epochs.div_ceil(ETA.saturating_pow(below_last)).max(1)
}

/// The `keep` best trials of `losses` (trial, best validation loss), in trial
/// order; a trial without a loss (it diverged) ranks last, ties go to the lower trial.
pub fn survivors(losses: &[(u32, Option<f64>)], keep: usize) -> Vec<u32> {
    let mut ranked = losses.to_vec();
    ranked.sort_by(|(a, a_loss), (b, b_loss)| {
        let (a_loss, b_loss) = (a_loss.unwrap_or(f64::INFINITY), b_loss.unwrap_or(f64::INFINITY));
        a_loss.total_cmp(&b_loss).then(a.cmp(b))
    });
    let mut kept: Vec<u32> = ranked.into_iter().take(keep).map(|(trial, _)| trial).collect();
    kept.sort_unstable();
    kept
}

/// Where trial `trial` checkpoints, under the search's folder.
pub fn trial_dir(root: &Path, trial: u32) -> PathBuf {
    root.join(format!("trial-{trial}"))
}

/// How the caller follows and stops a search; as [`Control`], with each epoch's
/// trial, and the record whenever it changes.
pub struct SearchControl<'a> {
    /// Sees the hyperparameters the winner trains with (its recipe's), as its
    /// last rung starts.
    pub planned: &'a mut dyn FnMut(&Hyperparameters) -> anyhow::Result<()>,
    /// Each trial's epochs as they end, before their checkpoints are written.
    pub progress: &'a mut dyn FnMut(u32, &EpochMetrics) -> anyhow::Result<()>,
    /// The record whenever it changes (a trial's rung ended, the survivors were
    /// picked), before it is written to the checkpoint folder.
    pub record: &'a mut dyn FnMut(&SearchRecord) -> anyhow::Result<()>,
    pub step: &'a mut dyn FnMut(&StepProgress) -> anyhow::Result<()>,
    pub stop: &'a AtomicBool,
    /// Called with a folder (the search's, or a trial's) once a checkpoint in it
    /// is written whole.
    pub checkpointed: Option<&'a mut Checkpointed<'a>>,
}

/// The winner's model, with the search's record in its metadata.
pub fn search(
    run: &TrainingRun<'_>,
    request: &SearchRequest,
    control: &mut SearchControl<'_>,
) -> anyhow::Result<Trained> {
    let mut train_rung = |trial_run: &TrainingRun<'_>, trial: u32, control: &mut SearchControl<'_>| {
        let model = train_trial(trial_run, trial, control)?;
        Ok((RungResult::of(&model.meta.training), model))
    };
    let (mut trained, record) = halve(run, request, control, &mut train_rung)?;
    trained.meta.search = Some(record);
    Ok(trained)
}

/// Trains one trial (`TrainingRun::rung` says how far) and returns how its rung
/// ended, with what it made.
type TrainRung<'t, M> =
    dyn FnMut(&TrainingRun<'_>, u32, &mut SearchControl<'_>) -> anyhow::Result<(RungResult, M)> + 't;

/// The successive halving, each trial's rung trained by `train_rung`: the last
/// rung's model (or, when that trial diverged, [`fallback`]'s) and the finished
/// record.
fn halve<M>(
    run: &TrainingRun<'_>,
    request: &SearchRequest,
    control: &mut SearchControl<'_>,
    train_rung: &mut TrainRung<'_, M>,
) -> anyhow::Result<(M, SearchRecord)> {
    let base = run.recipe.clone().unwrap_or_default();
    let request = request.clone().resolved(run.preset, &base);
    let rungs = schedule(request.trials, request.budget_minutes * 60.0);
    let mut record = started(run, &request, rungs.len())?;
    // The trials, drawn, are the job's before the first of them trains.
    commit(&record, run.checkpoints, control)?;
    // What the winner gets in all: the budget its recipe plans epochs for.
    let winner_minutes = rungs.iter().map(|rung| rung.seconds_each).sum::<f64>() / 60.0;
    // Each rung's limit: every rung's share so far, together.
    let limits: Vec<RungLimit> = rungs
        .iter()
        .scan(0.0, |budget_seconds, rung| {
            *budget_seconds += rung.seconds_each;
            Some(*budget_seconds)
        })
        .enumerate()
        .map(|(rung, budget_seconds)| RungLimit {
            rung,
            rungs: rungs.len(),
            budget_seconds,
            registers: rung + 1 == rungs.len(),
        })
        .collect();
    let trials = Trials { run, base: &base, winner_minutes };
    let mut standing: Vec<u32> = (0..request.trials).collect();
    let mut trained = None;
    for (index, rung) in rungs.iter().enumerate() {
        if index > 0 {
            standing = keep_the_best(&mut record, &standing, index, rung.trials);
            commit(&record, run.checkpoints, control)?;
        }
        let limit = limits[index];
        for &trial in &standing {
            let entry = &record.trials[trial as usize];
            // The last rung's trial trains again when it is done (and ends at
            // once): its model is the search's.
            if entry.rungs.len() > index && !limit.is_last() {
                continue;
            }
            let (result, error) = match trials.train(&record, trial, limit, control, train_rung) {
                Ok((result, model)) => {
                    if limit.is_last() {
                        trained = Some(model);
                    }
                    (result, None)
                }
                Err(error) if error.is::<Diverged>() => {
                    let epochs = entry.rungs.last().map_or(0, |result| result.epochs);
                    (RungResult { epochs, best_valid_loss: None }, Some(format!("{error:#}")))
                }
                Err(error) => return Err(error),
            };
            record.trials[trial as usize].finish_rung(index, result, error);
            commit(&record, run.checkpoints, control)?;
        }
    }
    let (winner, trained) = match trained {
        Some(model) => (standing[0], model),
        None => {
            let winner = fallback(&record).context("every trial diverged: no model to register")?;
            let limit =
                RungLimit { registers: true, ..limits[record.trials[winner as usize].rungs.len() - 1] };
            (winner, trials.train(&record, winner, limit, control, train_rung)?.1)
        }
    };
    record.winner = Some(winner);
    commit(&record, run.checkpoints, control)?;
    Ok((trained, record))
}

/// The search's trials: how each is run.
struct Trials<'r, 'a> {
    run: &'r TrainingRun<'a>,
    /// The recipe the space's draws override.
    base: &'r HyperparameterOverrides,
    /// Minutes of training the winner gets in all.
    winner_minutes: f64,
}

impl Trials<'_, '_> {
    /// Trains trial `trial`, from its checkpoint, to `limit`.
    fn train<M>(
        &self,
        record: &SearchRecord,
        trial: u32,
        limit: RungLimit,
        control: &mut SearchControl<'_>,
        train_rung: &mut TrainRung<'_, M>,
    ) -> anyhow::Result<(RungResult, M)> {
        let drawn = search::with_drawn(self.base, &record.trials[trial as usize].hyperparameters)?;
        let overrides = HyperparameterOverrides { budget_minutes: Some(self.winner_minutes), ..drawn };
        let dir = trial_dir(self.run.checkpoints, trial);
        let trial_run = TrainingRun {
            hyperparameters: overrides.apply_to(self.run.hyperparameters.clone()),
            recipe: Some(overrides),
            checkpoints: &dir,
            rung: Some(limit),
            ..self.run.clone()
        };
        train_rung(&trial_run, trial, control)
    }
}

/// When the last rung's trial diverged: the trial with the best validation loss
/// of the others, whose model is taken as its last rung left it (it trains no
/// further, so the search keeps to its budget); `None` when every trial diverged.
fn fallback(record: &SearchRecord) -> Option<u32> {
    let losses: Vec<(u32, Option<f64>)> = record
        .trials
        .iter()
        .filter(|entry| entry.best_valid_loss.is_some())
        .map(|entry| (entry.trial, entry.best_valid_loss))
        .collect();
    survivors(&losses, 1).first().copied()
}

/// The search's record from its checkpoint folder, or, on its first start, every
/// trial drawn with the run's seed.
fn started(run: &TrainingRun<'_>, request: &SearchRequest, rungs: usize) -> anyhow::Result<SearchRecord> {
    let state = run.checkpoints.join(STATE_FILE);
    if state.exists() {
        let text = std::fs::read_to_string(&state).with_context(|| format!("reading {}", state.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("reading {}", state.display()));
    }
    let space = request.space.clone().unwrap_or_default();
    let drawn = search::draw(run.preset, &space, request.trials, run.hyperparameters.seed);
    Ok(SearchRecord::fresh(drawn, ETA, rungs as u32))
}

/// The trials of `standing` that go on to rung `rung` (`keep` of them, by their
/// previous rung's best loss); the others are marked stopped.
fn keep_the_best(record: &mut SearchRecord, standing: &[u32], rung: usize, keep: u32) -> Vec<u32> {
    let losses: Vec<(u32, Option<f64>)> = standing
        .iter()
        .map(|&trial| (trial, record.trials[trial as usize].rungs[rung - 1].best_valid_loss))
        .collect();
    let next = survivors(&losses, keep as usize);
    for &trial in standing {
        let entry = &mut record.trials[trial as usize];
        entry.stopped = !next.contains(&trial);
        if !entry.stopped {
            entry.rung = rung as u32;
        }
    }
    next
}

/// Trains one trial for its rung, its epochs and steps reported as the trial's.
fn train_trial(
    run: &TrainingRun<'_>,
    trial: u32,
    control: &mut SearchControl<'_>,
) -> anyhow::Result<Trained> {
    let progress = &mut *control.progress;
    let registers = run.rung.is_some_and(|limit| limit.registers);
    // The winner's hyperparameters, as its last rung plans them, are the search's.
    let mut planned = |hyperparameters: &Hyperparameters| {
        if registers { (control.planned)(hyperparameters) } else { Ok(()) }
    };
    let mut trial_progress = |metrics: &EpochMetrics| progress(trial, metrics);
    let step = &mut *control.step;
    let mut trial_step = |progress: &StepProgress| step(&progress.clone().of_trial(trial));
    let checkpointed =
        control.checkpointed.as_mut().map(|checkpointed| &mut **checkpointed as &mut Checkpointed<'_>);
    let mut trial_control = Control {
        planned: &mut planned,
        progress: &mut trial_progress,
        step: &mut trial_step,
        stop: control.stop,
        checkpointed,
    };
    train(run, &mut trial_control)
}

/// Tells the caller the record, then writes it (atomically) as the search's
/// checkpoint.
fn commit(record: &SearchRecord, root: &Path, control: &mut SearchControl<'_>) -> anyhow::Result<()> {
    (control.record)(record)?;
    std::fs::create_dir_all(root)?;
    write_atomically(&root.join(STATE_FILE), serde_json::to_string_pretty(record)?.as_bytes())?;
    if let Some(checkpointed) = control.checkpointed.as_mut() {
        checkpointed(root)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rung_halves_the_trials_and_the_budget_is_shared_out_whole() {
        assert_eq!(
            schedule(2, 240.0),
            [Rung { trials: 2, seconds_each: 60.0 }, Rung { trials: 1, seconds_each: 120.0 }]
        );
        for trials in search_trials() {
            let rungs = schedule(trials, 600.0);
            assert_eq!(rungs[0].trials, trials);
            assert_eq!(rungs.last().unwrap().trials, 1, "{trials}: one trial in the last rung");
            assert!(rungs.windows(2).all(|pair| pair[1].trials == pair[0].trials / ETA), "{rungs:?}");
            let spent: f64 = rungs.iter().map(|rung| rung.seconds_each * f64::from(rung.trials)).sum();
            assert!((spent - 600.0).abs() < 1e-9, "{trials}: {spent}");
        }
        assert_eq!(schedule(32, 600.0).len(), 6);
    }

    fn search_trials() -> std::ops::RangeInclusive<u32> {
        crate::model::search::MIN_TRIALS..=crate::model::search::MAX_TRIALS
    }

    #[test]
    fn each_rung_trains_twice_the_epochs_of_the_one_before_up_to_the_planned() {
        let epochs: Vec<u32> = (0..4).map(|rung| rung_epochs(40, rung, 4)).collect();
        assert_eq!(epochs, [5, 10, 20, 40]);
        let few: Vec<u32> = (0..4).map(|rung| rung_epochs(3, rung, 4)).collect();
        assert_eq!(few, [1, 1, 2, 3], "at least one epoch a rung");
    }

    /// A rung a trial trained: the trial, its limit, its recipe's budget in minutes.
    type RungTrained = (u32, RungLimit, Option<f64>);

    /// A search of `trials` trials over 8 minutes whose rungs `loss(trial, rung)`
    /// decides, `None` for a trial that diverges there: what it returned, and each
    /// rung it trained with the run it was given (its limit and its recipe's budget).
    fn halved(
        trials: u32,
        loss: impl Fn(u32, usize) -> Option<f64>,
    ) -> (anyhow::Result<(u32, SearchRecord)>, Vec<RungTrained>) {
        let data = crate::train::data::TrainingData::Benchmark(PathBuf::from("never-read.json"));
        let dir = tempfile::tempdir().unwrap();
        let preset = crate::shared::Preset::Fugue;
        let run = TrainingRun {
            preset,
            hyperparameters: preset.defaults(),
            recipe: None,
            data: &data,
            device: tch::Device::Cpu,
            checkpoints: dir.path(),
            rung: None,
        };
        let request = SearchRequest { trials, budget_minutes: 8.0, space: None };
        let never = AtomicBool::new(false);
        let control = &mut SearchControl {
            planned: &mut |_| Ok(()),
            progress: &mut |_, _| Ok(()),
            record: &mut |_| Ok(()),
            step: &mut |_| Ok(()),
            stop: &never,
            checkpointed: None,
        };
        let mut trained = Vec::new();
        let mut train_rung = |run: &TrainingRun<'_>, trial: u32, _: &mut SearchControl<'_>| {
            let limit = run.rung.expect("a trial trains a rung");
            trained.push((trial, limit, run.recipe.as_ref().and_then(|recipe| recipe.budget_minutes)));
            match loss(trial, limit.rung) {
                Some(loss) => {
                    Ok((RungResult { epochs: limit.rung as u32 + 1, best_valid_loss: Some(loss) }, trial))
                }
                None => Err(Diverged { epoch: limit.rung as u32 + 1 }.into()),
            }
        };
        let result = halve(&run, &request, control, &mut train_rung);
        (result, trained)
    }

    #[test]
    fn a_trial_that_diverges_is_recorded_with_its_error_and_never_goes_on() {
        // Trial 0 would be the best, but diverges in the first rung.
        let (result, trained) =
            halved(4, |trial, rung| (trial != 0).then(|| f64::from(trial) - rung as f64 * 0.1));
        let (model, record) = result.unwrap();
        assert_eq!((model, record.winner), (1, Some(1)), "the best of those that did not diverge");
        let diverged = &record.trials[0];
        assert!(diverged.stopped && diverged.best_valid_loss.is_none(), "{diverged:?}");
        assert!(diverged.error.as_deref().is_some_and(|error| error.contains("diverged")), "{diverged:?}");
        assert_eq!(diverged.rungs, [RungResult { epochs: 0, best_valid_loss: None }]);
        let of_trial = |wanted: u32| trained.iter().filter(|(trial, ..)| *trial == wanted).count();
        assert_eq!([of_trial(0), of_trial(1), of_trial(2), of_trial(3)], [1, 3, 2, 1], "{trained:?}");
    }

    #[test]
    fn when_the_last_trial_diverges_the_best_of_the_others_is_registered_as_it_stands() {
        // Trial 0 leads every rung, then diverges in the last (rung 2); trial 1
        // (0.9 after rung 1) is the best of the others, trial 2 (2.0) next.
        let (result, trained) =
            halved(4, |trial, rung| (trial != 0 || rung < 2).then(|| f64::from(trial) - rung as f64 * 0.1));
        let (model, record) = result.unwrap();
        assert_eq!((model, record.winner), (1, Some(1)), "{record:?}");
        assert!(record.trials[0].error.as_deref().is_some_and(|error| error.contains("diverged")));
        // Its model is taken where its last rung (1, 120 s in all) left it, and
        // it registers: no trial trains past the budget.
        let (trial, limit, _) = trained.last().unwrap();
        assert_eq!((*trial, limit.rung, limit.budget_seconds, limit.registers), (1, 1, 120.0, true));
        let registering: Vec<u32> =
            trained.iter().filter(|(_, limit, _)| limit.registers).map(|(trial, ..)| *trial).collect();
        assert_eq!(registering, [0, 1], "the last rung's trial, then the one taken instead");

        let (result, _) = halved(2, |_, _| None);
        let error = format!("{:#}", result.unwrap_err());
        assert!(error.contains("every trial diverged: no model to register"), "{error}");
    }

    /// A rung the budget cuts short resumes in the next with the budget left: each
    /// rung's limit is every rung's share so far together.
    #[test]
    fn each_rung_may_spend_the_shares_of_every_rung_so_far() {
        let (result, trained) = halved(4, |trial, _| Some(f64::from(trial)));
        assert_eq!(result.unwrap().0, 0);
        // 480 s over three rungs of 160: 4 × 40 s, 2 × 80 s, 1 × 160 s.
        let limits: Vec<(usize, f64)> =
            trained.iter().map(|(_, limit, _)| (limit.rung, limit.budget_seconds)).collect();
        let registering = trained.iter().filter(|(_, limit, _)| limit.registers).count();
        assert_eq!(registering, 1, "only the last rung's trial registers: {trained:?}");
        let mut expected = vec![(0, 40.0); 4];
        expected.extend([(1, 120.0), (1, 120.0), (2, 280.0)]);
        assert_eq!(limits, expected);
        assert!(trained.iter().all(|(_, limit, _)| limit.rungs == 3));
        // Every trial's recipe plans for what the winner gets in all.
        assert!(trained.iter().all(|(.., minutes)| *minutes == Some(280.0 / 60.0)), "{trained:?}");
    }

    #[test]
    fn the_best_go_on_and_a_diverged_trial_never_does() {
        let losses = [(0, Some(2.0)), (1, None), (2, Some(1.5)), (3, Some(2.0)), (4, Some(3.0))];
        assert_eq!(survivors(&losses, 2), [0, 2], "the tie goes to the lower trial");
        assert_eq!(survivors(&losses, 4), [0, 2, 3, 4]);
        assert_eq!(survivors(&[(0, None), (1, None)], 1), [0]);
    }
}
