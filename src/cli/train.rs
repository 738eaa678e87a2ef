//! `fugue train`: every preset family, from a folder, a dataset or a benchmark JSON,
//! with a line per epoch on stderr.

use std::sync::atomic::AtomicBool;

use anyhow::Context;

use super::corpus::training_data;
use crate::cli::args::TrainArgs;
use crate::model::artifact;
use crate::train::run::{TrainingRun, train as run_training};
use crate::train::{Control, EpochMetrics};

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let device = args.torch.apply();
    let overrides = args.hyperparameters.overrides();
    overrides.validate()?;
    let hyperparameters = overrides.apply_to(args.preset.defaults());
    let epochs = hyperparameters.epochs;
    let checkpoints = args.checkpoint_dir.clone().unwrap_or_else(|| args.out.with_extension("checkpoint"));
    eprintln!(
        "fugue train: preset {} on {device:?}, checkpoints in {}",
        args.preset.name(),
        checkpoints.display()
    );
    let data = training_data(args)?;
    let run =
        TrainingRun { preset: args.preset, hyperparameters, data: &data, device, checkpoints: &checkpoints };
    let never = AtomicBool::new(false);
    let mut progress = |metrics: &EpochMetrics| {
        print_epoch(metrics, epochs);
        Ok(())
    };
    let trained =
        run_training(&run, &mut Control { progress: &mut progress, stop: &never, checkpointed: None })?;
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

fn print_epoch(metrics: &EpochMetrics, epochs: u32) {
    let accuracy =
        metrics.valid_accuracy.map(|a| format!("  accuracy {:.1}%", a * 100.0)).unwrap_or_default();
    eprintln!(
        "epoch {:>3}/{epochs}  train {:.4}  valid {:.4}{accuracy}  {:>8.0} items/s  lr {:.2e}  {:.1}s",
        metrics.epoch,
        metrics.train_loss,
        metrics.valid_loss,
        metrics.samples_per_second,
        metrics.learning_rate,
        metrics.seconds
    );
}
