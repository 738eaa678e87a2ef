//! `fugue train`: every preset family, from a folder, a dataset or a benchmark JSON,
//! with a line per epoch on stderr, and the running epoch's progress between them:
//! one line redrawn in place on a terminal, a plain line every
//! [`PLAIN_PROGRESS_INTERVAL`] otherwise (a log file, a pipe).

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;

use super::corpus::training_data;
use crate::cli::args::TrainArgs;
use crate::model::artifact;
use crate::model::hyperparameters::Hyperparameters;
use crate::model::search::SearchRecord;
use crate::train::progress::{StepProgress, Throttle};
use crate::train::run::{TrainingRun, train as run_training};
use crate::train::search::{SearchControl, search as run_search};
use crate::train::{Control, EpochMetrics};

/// How often the progress line is redrawn on a terminal.
const TERMINAL_PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// How often a progress line is written when stderr is not a terminal.
const PLAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let overrides = args.hyperparameters.overrides();
    overrides.validate(args.preset)?;
    let search = args.search();
    if let Some(search) = &search {
        search.check(args.preset, &overrides)?;
    }
    let hyperparameters = overrides.apply_to(args.preset.defaults());
    // The recipe's epochs, once the corpus is read.
    let epochs = Cell::new(hyperparameters.epochs);
    let checkpoints = args.checkpoint_dir.clone().unwrap_or_else(|| args.out.with_extension("checkpoint"));
    eprintln!(
        "fugue train: preset {} on {device:?}, checkpoints in {}",
        args.preset.name(),
        checkpoints.display()
    );
    let data = training_data(args)?;
    let run = TrainingRun {
        preset: args.preset,
        hyperparameters,
        recipe: Some(overrides),
        data: &data,
        device,
        checkpoints: &checkpoints,
        rung: None,
    };
    let never = AtomicBool::new(false);
    let terminal = std::io::stderr().is_terminal();
    let mut throttle =
        Throttle::new(if terminal { TERMINAL_PROGRESS_INTERVAL } else { PLAIN_PROGRESS_INTERVAL });
    let mut planned = |hyperparameters: &Hyperparameters| {
        epochs.set(hyperparameters.epochs);
        print_recipe(hyperparameters);
        Ok(())
    };
    let progress = |trial: Option<u32>, metrics: &EpochMetrics| {
        print_epoch(trial, metrics, epochs.get(), terminal);
        Ok(())
    };
    let mut step = |progress: &StepProgress| {
        if throttle.due() {
            print_step(progress, epochs.get(), terminal);
        }
        Ok(())
    };
    let trained = match &search {
        None => {
            let control = &mut Control {
                planned: &mut planned,
                progress: &mut |metrics| progress(None, metrics),
                step: &mut step,
                stop: &never,
                checkpointed: None,
            };
            run_training(&run, control)?
        }
        Some(request) => {
            let control = &mut SearchControl {
                planned: &mut planned,
                progress: &mut |trial, metrics| progress(Some(trial), metrics),
                record: &mut |_| Ok(()),
                step: &mut step,
                stop: &never,
                checkpointed: None,
            };
            let trained = run_search(&run, request, control)?;
            print_search(trained.meta.search.as_ref());
            trained
        }
    };
    artifact::save(&args.out, &trained.meta, &trained.vs, trained.originality.as_ref())?;
    std::fs::remove_dir_all(&checkpoints).with_context(|| format!("removing {}", checkpoints.display()))?;
    eprintln!(
        "fugue train: best validation loss {:.4} at epoch {}; model in {}",
        trained.meta.training.best_valid_loss,
        trained.meta.training.best_epoch,
        args.out.display()
    );
    Ok(())
}

/// What the recipe chose for the corpus, and why, a line each.
fn print_recipe(hyperparameters: &Hyperparameters) {
    let values = serde_json::to_value(hyperparameters).unwrap_or_default();
    for (name, reason) in hyperparameters.recipe.iter().flatten() {
        eprintln!("recipe: {name} = {}  ({reason})", values[name]);
    }
}

/// Clears the line being redrawn, on a terminal.
const CLEAR_LINE: &str = "\r\x1b[K";

/// `epoch   3/400  train …`, after `trial 2  ` for a search's trial.
fn print_epoch(trial: Option<u32>, metrics: &EpochMetrics, epochs: u32, terminal: bool) {
    let accuracy =
        metrics.valid_accuracy.map(|a| format!("  accuracy {:.1}%", a * 100.0)).unwrap_or_default();
    let clear = if terminal { CLEAR_LINE } else { "" };
    let trial = trial.map(|trial| format!("trial {trial}  ")).unwrap_or_default();
    eprintln!(
        "{clear}{trial}epoch {:>3}/{epochs}  train {:.4}  valid {:.4}{accuracy}  {:>8.0} items/s  lr {:.2e}  {:.1}s",
        metrics.epoch,
        metrics.train_loss,
        metrics.valid_loss,
        metrics.samples_per_second,
        metrics.learning_rate,
        metrics.seconds
    );
}

/// Each trial's drawn values, best validation loss and fate, a line each.
fn print_search(record: Option<&SearchRecord>) {
    let Some(record) = record else { return };
    for trial in &record.trials {
        let loss = trial.best_valid_loss.map_or_else(|| "diverged".to_owned(), |loss| format!("{loss:.4}"));
        let fate = if record.winner == Some(trial.trial) {
            "the winner".to_owned()
        } else {
            format!("stopped after rung {}", trial.rung + 1)
        };
        let drawn = serde_json::to_string(&trial.hyperparameters).unwrap_or_default();
        eprintln!("search: trial {} {drawn}: best validation loss {loss}, {fate}", trial.trial);
    }
}

/// `epoch   3/400  step 120/800 (15%)  4.2 steps/s  train 7.9123  epoch ends in 2m42s`
fn print_step(progress: &StepProgress, epochs: u32, terminal: bool) {
    let trial = progress.trial.map(|trial| format!("trial {trial}  ")).unwrap_or_default();
    let line = format!(
        "{trial}epoch {:>3}/{epochs}  step {}/{} ({:.0}%)  {:.1} steps/s  train {:.4}  epoch ends in {}",
        progress.epoch,
        progress.step,
        progress.steps,
        progress.fraction() * 100.0,
        progress.steps_per_second,
        progress.train_loss,
        minutes_and_seconds(progress.eta_seconds),
    );
    let mut stderr = std::io::stderr().lock();
    // A progress line that cannot be written is no reason to stop training.
    let _ = if terminal { write!(stderr, "{CLEAR_LINE}{line}") } else { writeln!(stderr, "{line}") };
    let _ = stderr.flush();
}

fn minutes_and_seconds(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds / 60 {
        0 => format!("{seconds}s"),
        minutes => format!("{minutes}m{:02}s", seconds % 60),
    }
}
