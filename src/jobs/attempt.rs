//! `fugue train-attempt`: one attempt at a claimed training job, in a process of its
//! own. A worker starts it and watches over it ([`super::supervisor`]); this is the
//! other end.
//!
//! The process opens the database and the dataset itself, trains, records every
//! epoch's metrics under the job's lease before checkpointing the epoch (locally,
//! then to the object store, so a later attempt resumes from it on any machine),
//! writes the artifact to the object store (manifest last), and reports how it ended as one
//! JSON line on stdout (an [`Outcome`]). Logs go to stderr.
//!
//! It stops before its next batch once its stdin reaches its end: the worker closes
//! it to stop the attempt, and the kernel closes it when the worker dies, so an
//! attempt never trains on as an orphan.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use super::retry::retry;
use crate::datasets::{BlobStore, Datasets, IngestLimits};
use crate::devices::DeviceName;
use crate::model::artifact;
use crate::model::hyperparameters::{HyperparameterOverrides, Hyperparameters};
use crate::model::registry::ModelSummary;
use crate::model::search::{SearchRecord, SearchRequest};
use crate::objects::Objects;
use crate::store::{JobRow, JobWork, LeaseCheck, Store};
use crate::train::data::TrainingData;
use crate::train::progress::{JOB_PROGRESS_INTERVAL, StepProgress, Throttle};
use crate::train::run::{TrainingRun, train};
use crate::train::search::{SearchControl, trial_dir};
use crate::train::{Control, EpochMetrics, Interrupted};

/// What a worker tells the process it starts for one attempt (as `train-attempt`
/// flags; the lease token and database URL through the environment, which other
/// users cannot read, unlike a command line).
#[derive(Debug, Clone)]
pub struct AttemptSettings {
    /// The claimed job.
    pub job: String,
    pub lease_token: String,
    pub database_url: String,
    /// The local data dir (the object store's root when none is configured).
    pub data_dir: PathBuf,
    /// `s3://bucket/prefix`, or `None` for the local filesystem under `data_dir`.
    pub object_store: Option<String>,
    /// A local working directory: the checkpoint is fetched from the store into it,
    /// written there after every epoch and copied to the store
    /// ([`checkpoint_key`](Self::checkpoint_key)); the artifact is staged in it.
    pub work_dir: PathBuf,
    /// The checkpoint's bundle in the object store (`checkpoints/<job>`).
    pub checkpoint_key: String,
    /// The artifact's bundle in the object store (`models/<id>`), fresh.
    pub model_key: String,
    pub device: DeviceName,
    /// libtorch CPU threads.
    pub threads: i32,
    /// How long an epoch's record is retried through database outages.
    pub lease_timeout: Duration,
}

/// How an attempt ended, as the training process reports it to its worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The artifact is in the object store, manifest and all.
    Trained { summary: ModelSummary },
    /// Stopped as asked (stdin closed); the last epoch's checkpoint stands.
    Stopped,
    /// An epoch's record found cancellation asked for, and training stopped.
    Cancelled,
    /// An epoch's record was refused: another worker owns the job now, and
    /// nothing of that epoch was written.
    LeaseLost,
    /// Training failed, for the reason given; the last checkpoint stands.
    Failed { error: String },
}

/// The lease was lost while training: another worker owns the job now.
#[derive(Debug, thiserror::Error)]
#[error("the lease on this job was lost")]
struct LeaseLost;

/// Runs the attempt to its end and reports the outcome on stdout.
pub fn run(args: &AttemptSettings) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    stop_when_stdin_ends(stop.clone());
    tch::set_num_threads(args.threads.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = attempt(&runtime, args, &stop);
    let mut stdout = std::io::stdout().lock();
    // A worker that died reads nothing; there is no one else to tell.
    let _ = writeln!(stdout, "{}", serde_json::to_string(&outcome)?).and_then(|()| stdout.flush());
    Ok(())
}

/// Sets `stop` once stdin ends: the worker closed it, or died.
fn stop_when_stdin_ends(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        stop.store(true, Ordering::Relaxed);
    });
}

fn attempt(runtime: &Runtime, args: &AttemptSettings, stop: &AtomicBool) -> Outcome {
    let cancelled = AtomicBool::new(false);
    match train_job(runtime, args, stop, &cancelled) {
        Ok(summary) => Outcome::Trained { summary },
        Err(error) if error.is::<LeaseLost>() => Outcome::LeaseLost,
        Err(error) if error.is::<Interrupted>() && cancelled.load(Ordering::Relaxed) => Outcome::Cancelled,
        Err(error) if error.is::<Interrupted>() => Outcome::Stopped,
        Err(error) => Outcome::Failed { error: format!("{error:#}") },
    }
}

/// Trains the job, recording each epoch under the lease; the artifact is written to
/// the model directory before returning.
fn train_job(
    runtime: &Runtime,
    args: &AttemptSettings,
    stop: &AtomicBool,
    cancelled: &AtomicBool,
) -> anyhow::Result<ModelSummary> {
    let objects = Objects::open(args.object_store.as_deref(), &args.data_dir)?;
    let (store, job, data) = runtime.block_on(load(args, &objects))?;
    // Resume from the checkpoint in the store, wherever the last attempt ran.
    let checkpoint_dir = args.work_dir.join("checkpoint");
    // A checkpoint written before checkpoints had manifests: its state file, the
    // last one written, says it is whole.
    let legacy_state = format!("{}/{}", args.checkpoint_key, crate::train::checkpoint::STATE_FILE);
    if runtime.block_on(objects.manifest(&args.checkpoint_key))?.is_none()
        && runtime.block_on(objects.exists(&legacy_state))?
    {
        runtime.block_on(objects.adopt_bundle(&args.checkpoint_key))?;
    }
    if let Some(manifest) = runtime.block_on(objects.get_bundle(&args.checkpoint_key, &checkpoint_dir))? {
        tracing::info!(job = %args.job, files = manifest.files.len(), "resuming from the stored checkpoint");
    }
    let patience = args.lease_timeout;
    let JobWork::Training { preset, overrides, search, .. } = job.work else {
        bail!("job `{}` is not a training job", args.job)
    };
    let search: Option<SearchRequest> =
        search.as_deref().map(serde_json::from_str).transpose().context("reading the job's search")?;
    // A search's trials checkpoint in folders of their own, each a bundle of its own.
    for trial in 0..search.as_ref().map_or(0, |search| search.trials) {
        let dir = trial_dir(&checkpoint_dir, trial);
        runtime.block_on(objects.get_bundle(&bundle_key(args, &checkpoint_dir, &dir), &dir))?;
    }
    let hyperparameters: Hyperparameters =
        serde_json::from_str(&job.parameters).context("reading the job's hyperparameters")?;
    let recipe: Option<HyperparameterOverrides> = overrides
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("reading the job's hyperparameter overrides")?;
    // What the recipe chose for the corpus replaces the job's hyperparameters.
    let mut planned = |hyperparameters: &Hyperparameters| {
        let json = serde_json::to_string(hyperparameters)?;
        let recorded = runtime
            .block_on(retry(patience, || store.record_hyperparameters(&args.job, &args.lease_token, &json)));
        heed(recorded.unwrap_or(LeaseCheck::Lost), cancelled, stop)
    };
    let mut progress = |trial: u32, metrics: &EpochMetrics| {
        let json = serde_json::to_string(metrics)?;
        let (trial, epoch) = (i64::from(trial), i64::from(metrics.epoch));
        let recorded = runtime.block_on(retry(patience, || {
            store.record_epoch(&args.job, &args.lease_token, trial, epoch, &json)
        }));
        // Past the lease timeout without the database, the job may be someone else's.
        heed(recorded.unwrap_or(LeaseCheck::Lost), cancelled, stop)
    };
    // The running epoch's progress, at most every JOB_PROGRESS_INTERVAL, best effort:
    // a write the database refuses for a moment is skipped, not retried.
    let mut throttle = Throttle::new(JOB_PROGRESS_INTERVAL);
    let mut step = |progress: &StepProgress| {
        if !throttle.due() {
            return Ok(());
        }
        let json = serde_json::to_string(progress)?;
        match runtime.block_on(store.record_progress(&args.job, &args.lease_token, &json)) {
            Ok(check) => heed(check, cancelled, stop),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "could not record the epoch's progress");
                Ok(())
            }
        }
    };
    let run = TrainingRun {
        preset,
        hyperparameters,
        recipe,
        data: &data,
        device: args.device.0,
        checkpoints: &checkpoint_dir,
        rung: None,
    };
    // Every epoch's checkpoint goes to the store, so another machine can resume.
    let mut checkpointed = |dir: &Path| {
        runtime.block_on(objects.put_bundle(&bundle_key(args, &checkpoint_dir, dir), dir)).map(drop)
    };
    let trained = match &search {
        None => train(
            &run,
            &mut Control {
                planned: &mut planned,
                progress: &mut |metrics| progress(0, metrics),
                step: &mut step,
                stop,
                checkpointed: Some(&mut checkpointed),
            },
        )?,
        Some(request) => {
            let mut record = |record: &SearchRecord| {
                let json = serde_json::to_string(record)?;
                let recorded = runtime
                    .block_on(retry(patience, || store.record_search(&args.job, &args.lease_token, &json)));
                heed(recorded.unwrap_or(LeaseCheck::Lost), cancelled, stop)
            };
            let control = &mut SearchControl {
                planned: &mut planned,
                progress: &mut progress,
                record: &mut record,
                step: &mut step,
                stop,
                checkpointed: Some(&mut checkpointed),
            };
            crate::train::search::search(&run, request, control)?
        }
    };
    let model_dir = args.work_dir.join("model");
    artifact::save(&model_dir, &trained.meta, &trained.vs, trained.originality.as_ref())?;
    runtime.block_on(objects.put_bundle(&args.model_key, &model_dir))?;
    runtime.block_on(store.close());
    Ok(ModelSummary::of(&trained.meta))
}

/// The object-store bundle of a checkpoint folder: the job's, or under it, a
/// search's trial's (named as its folder is).
fn bundle_key(args: &AttemptSettings, root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root).ok().and_then(|below| below.to_str()).filter(|below| !below.is_empty()) {
        Some(below) => format!("{}/{below}", args.checkpoint_key),
        None => args.checkpoint_key.clone(),
    }
}

/// Acts on what a write under the lease learned: a lost lease ends the run; asked
/// cancellation stops it before its next batch.
fn heed(check: LeaseCheck, cancelled: &AtomicBool, stop: &AtomicBool) -> anyhow::Result<()> {
    match check {
        LeaseCheck::Held { cancel_requested } => {
            if cancel_requested {
                cancelled.store(true, Ordering::Relaxed);
                stop.store(true, Ordering::Relaxed);
            }
            Ok(())
        }
        LeaseCheck::Lost => Err(LeaseLost.into()),
    }
}

/// The database, the job and its training data.
async fn load(args: &AttemptSettings, objects: &Objects) -> anyhow::Result<(Store, JobRow, TrainingData)> {
    let store = Store::connect(&args.database_url).await?;
    let job = store.job(&args.job).await?.with_context(|| format!("no training job `{}`", args.job))?;
    let JobWork::Training { dataset_id, .. } = &job.work else {
        bail!("job `{}` is not a training job", args.job)
    };
    let datasets = Datasets::new(store.clone(), BlobStore::new(objects.clone()), IngestLimits::default());
    let data = datasets
        .training_data(dataset_id)
        .await?
        .with_context(|| format!("dataset `{dataset_id}` no longer exists"))?;
    Ok((store, job, data))
}
