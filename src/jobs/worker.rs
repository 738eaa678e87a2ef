//! Training workers: each takes one job at a time from the queue and trains it on
//! its device, in `fugue serve` (`--train-workers`) or alone (`fugue worker`).
//!
//! Life of a claim:
//! 1. claim the oldest due job under a fresh lease token;
//! 2. train on a blocking thread, resuming from the job's checkpoint directory if
//!    an earlier attempt left one, while a heartbeat task renews the lease;
//! 3. every epoch's metrics are written under the lease *before* the epoch is
//!    checkpointed, so a worker that lost its lease stops without touching the
//!    checkpoint the new owner resumes from;
//! 4. the artifact goes to a fresh directory (staged, synced, renamed), then the
//!    model row and the job's success commit in one transaction under the lease.
//!    A fenced worker removes its artifact again: exactly one model per job.
//!
//! A heartbeat that finds the lease gone or cancellation asked for stops training
//! before the next batch. A crashed worker simply stops heartbeating; the reaper
//! (every pool runs one) requeues its job after the lease timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use super::Jobs;
use crate::config::{TrainingSettings, WorkerSettings};
use crate::datasets::{BlobStore, Datasets, IngestLimits};
use crate::devices::{DeviceName, default_devices};
use crate::model::artifact;
use crate::model::hyperparameters::Hyperparameters;
use crate::model::registry::{ModelSummary, trained_models_dir};
use crate::shared::rfc3339;
use crate::store::{Claim, JobNotifications, JobState, LeaseCheck, ModelRow, Store};
use crate::train::run::{TrainingRun, train};
use crate::train::{Control, EpochMetrics, Interrupted};

/// What every worker of a pool shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub jobs: Jobs,
    pub datasets: Datasets,
    pub data_dir: PathBuf,
    /// `host:pid`, so operators can tell workers apart in job views.
    pub name: String,
}

/// The configured devices, else every CUDA device, else the CPU; sets libtorch's
/// CPU thread count for the process.
pub fn worker_devices(settings: &TrainingSettings) -> Vec<DeviceName> {
    tch::set_num_threads(settings.threads.max(1));
    if settings.devices.is_empty() {
        default_devices(usize::try_from(tch::Cuda::device_count()).unwrap_or(0))
    } else {
        settings.devices.clone()
    }
}

/// `host:pid`.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

/// `fugue worker`: a pool without the HTTP server, until SIGINT or SIGTERM.
pub async fn run_standalone(args: WorkerSettings) -> anyhow::Result<()> {
    let store = Store::open(&args.storage.database_url()).await?;
    let datasets =
        Datasets::new(store.clone(), BlobStore::new(&args.storage.data_dir), IngestLimits::default());
    let jobs = Jobs::new(store.clone(), args.queue.clone());
    let context =
        WorkerContext { jobs, datasets, data_dir: args.storage.data_dir.clone(), name: worker_name() };
    let (stop, stopped) = watch::channel(false);
    let devices = worker_devices(&args.training);
    let pool = tokio::spawn(run_pool(
        context,
        devices,
        args.training.workers.max(1),
        args.storage.postgres_url(),
        stopped,
    ));
    crate::shared::shutdown_signal().await;
    let _ = stop.send(true);
    pool.await?;
    store.close().await;
    Ok(())
}

/// The lease was lost while training: another worker owns the job now.
#[derive(Debug, thiserror::Error)]
#[error("the lease on this job was lost")]
struct LeaseLost;

/// Runs `workers` workers, spread over `devices` in turn, plus one reaper and (on
/// Postgres) a listener that wakes idle workers, until `shutdown` turns true.
/// A job running at shutdown goes back to the queue at once.
pub async fn run_pool(
    context: WorkerContext,
    devices: Vec<DeviceName>,
    workers: usize,
    database_url: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(reap(context.jobs.clone(), shutdown.clone()));
    if let Some(url) = database_url {
        tasks.spawn(listen(url, context.jobs.wake.clone(), shutdown.clone()));
    }
    for slot in 0..workers {
        let device = devices[slot % devices.len()];
        tasks.spawn(work(context.clone(), slot, device, shutdown.clone()));
    }
    tracing::info!(workers, devices = ?devices.iter().map(ToString::to_string).collect::<Vec<_>>(), "training workers started");
    let _ = shutdown.wait_for(|stop| *stop).await;
    while tasks.join_next().await.is_some() {}
}

async fn work(context: WorkerContext, slot: usize, device: DeviceName, mut shutdown: watch::Receiver<bool>) {
    let worker = format!("{}/{slot}", context.name);
    while !*shutdown.borrow() {
        let token = uuid::Uuid::new_v4().to_string();
        match context.jobs.store.claim_job(&worker, &device.to_string(), &token).await {
            Ok(Some(claim)) => {
                tracing::info!(job = %claim.job.id, attempt = claim.job.attempt, %device, "claimed a training job");
                run_claim(&context, claim, device, shutdown.clone()).await;
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "could not poll the job queue"),
        }
        tokio::select! {
            () = context.jobs.wake.notified() => {}
            () = tokio::time::sleep(context.jobs.config.poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Requeues (or fails, or cancels) jobs whose worker stopped heartbeating.
async fn reap(jobs: Jobs, mut shutdown: watch::Receiver<bool>) {
    let timeout_ms = i64::try_from(jobs.config.lease_timeout.as_millis()).unwrap_or(i64::MAX);
    // Checking at a fraction of the lease keeps the requeue delay near the timeout.
    let period = (jobs.config.lease_timeout / 4).max(Duration::from_millis(50));
    while !*shutdown.borrow() {
        match jobs.store.reap_expired_leases(timeout_ms, |attempt| jobs.config.backoff_ms(attempt)).await {
            Ok(reaped) => {
                for job in &reaped {
                    tracing::warn!(job = %job.id, state = job.state.as_str(), next_attempt_at = %rfc3339(job.run_after),
                        "a training job's worker stopped heartbeating");
                }
                if !reaped.is_empty() {
                    jobs.wake.notify_waiters();
                }
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "could not reap expired leases"),
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Wakes idle workers on Postgres notifications. Notifications sent while the
/// connection is down are lost, which is why workers also poll.
async fn listen(url: String, wake: Arc<tokio::sync::Notify>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let listening = async {
            let mut notifications = JobNotifications::connect(&url).await?;
            loop {
                notifications.next().await?;
                wake.notify_waiters();
            }
        };
        let outcome: sqlx::Result<()> = tokio::select! {
            outcome = listening => outcome,
            _ = shutdown.changed() => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, "job notifications interrupted; polling until they are back");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Why training stopped before the end, as the heartbeat saw it.
#[derive(Default)]
struct Signals {
    stop: AtomicBool,
    cancel: AtomicBool,
    lease_lost: AtomicBool,
    shutdown: AtomicBool,
}

async fn run_claim(
    context: &WorkerContext,
    claim: Claim,
    device: DeviceName,
    shutdown: watch::Receiver<bool>,
) {
    let Claim { job, token } = claim;
    let store = &context.jobs.store;
    let signals = Arc::new(Signals::default());
    let heartbeat = tokio::spawn(heartbeat(
        context.jobs.clone(),
        job.id.clone(),
        token.clone(),
        signals.clone(),
        shutdown,
    ));
    let checkpoints = context.data_dir.join("checkpoints").join(&job.id);
    let model_id = uuid::Uuid::new_v4().to_string();
    let model_dir = trained_models_dir(&context.data_dir).join(&model_id);
    let outcome =
        train_claimed(context, &job, &token, device, &checkpoints, &model_dir, signals.clone()).await;
    heartbeat.abort();
    let (id, token) = (job.id.as_str(), token.as_str());
    let ended = match outcome {
        Ok(meta) => {
            let row = ModelRow {
                id: model_id,
                name: job.name.clone(),
                preset: job.preset,
                job_id: Some(job.id.clone()),
                dataset_id: Some(job.dataset_id.clone()),
                summary: serde_json::to_string(&ModelSummary::of(&meta)).unwrap_or_default(),
                created_at: 0,
            };
            let registered =
                retry(context.jobs.config.lease_timeout, || store.complete_job(id, token, &row)).await;
            if registered == Some(true) {
                tracing::info!(job = id, model = %row.id, "training job succeeded");
                Some(true)
            } else {
                tracing::warn!(job = id, "lease lost before the model could be registered; discarding it");
                remove_dir(&model_dir).await;
                None
            }
        }
        Err(error) if signals.lease_lost.load(Ordering::Relaxed) || error.is::<LeaseLost>() => {
            tracing::warn!(job = id, "lease lost; another worker owns this job now");
            None
        }
        Err(error) if error.is::<Interrupted>() && signals.cancel.load(Ordering::Relaxed) => {
            tracing::info!(job = id, "training job cancelled");
            retry(context.jobs.config.lease_timeout, || store.end_job(id, token, JobState::Cancelled, None))
                .await
        }
        Err(error) if error.is::<Interrupted>() && signals.shutdown.load(Ordering::Relaxed) => {
            tracing::info!(job = id, "worker shutting down; job back in the queue");
            let _ = retry(Duration::from_secs(5), || store.release_job(id, token)).await;
            None
        }
        Err(error) => {
            let message = format!("{error:#}");
            let backoff = context.jobs.config.backoff_ms(job.attempt);
            let recorded =
                retry(context.jobs.config.lease_timeout, || store.fail_attempt(id, token, &message, backoff))
                    .await;
            match recorded {
                // The write was fenced: a successor owns the job, and this attempt's
                // error (often its checkpoints vanishing under it) is not the job's.
                Some(None) => {
                    tracing::warn!(job = id, error = %message, "lease lost; another worker owns this job now");
                    None
                }
                next => {
                    let next = next.flatten();
                    tracing::warn!(job = id, error = %message, attempt = job.attempt, next = ?next, "training attempt failed");
                    next.map(JobState::is_terminal)
                }
            }
        }
    };
    if ended == Some(true) {
        remove_dir(&checkpoints).await;
    }
}

/// Loads the data and trains on a blocking thread; the artifact is written to
/// `model_dir` before returning.
async fn train_claimed(
    context: &WorkerContext,
    job: &crate::store::JobRow,
    token: &str,
    device: DeviceName,
    checkpoints: &Path,
    model_dir: &Path,
    signals: Arc<Signals>,
) -> anyhow::Result<artifact::ArtifactMeta> {
    let preset = job.preset;
    let hyperparameters: Hyperparameters =
        serde_json::from_str(&job.hyperparameters).context("reading the job's hyperparameters")?;
    let data = context
        .datasets
        .training_data(&job.dataset_id)
        .await?
        .with_context(|| format!("dataset `{}` no longer exists", job.dataset_id))?;
    let runtime = tokio::runtime::Handle::current();
    let (store, id, token) = (context.jobs.store.clone(), job.id.clone(), token.to_owned());
    let lease_timeout = context.jobs.config.lease_timeout;
    let (checkpoints, model_dir) = (checkpoints.to_owned(), model_dir.to_owned());
    let training = tokio::task::spawn_blocking(move || {
        let mut progress = |metrics: &EpochMetrics| {
            let json = serde_json::to_string(metrics)?;
            let recorded = runtime.block_on(retry(lease_timeout, || {
                store.record_epoch(&id, &token, i64::from(metrics.epoch), &json)
            }));
            match recorded {
                Some(LeaseCheck::Held { cancel_requested }) => {
                    if cancel_requested {
                        signals.cancel.store(true, Ordering::Relaxed);
                        signals.stop.store(true, Ordering::Relaxed);
                    }
                    Ok(())
                }
                _ => {
                    signals.lease_lost.store(true, Ordering::Relaxed);
                    Err(LeaseLost.into())
                }
            }
        };
        let run =
            TrainingRun { preset, hyperparameters, data: &data, device: device.0, checkpoints: &checkpoints };
        let trained = train(&run, &mut Control { progress: &mut progress, stop: &signals.stop })?;
        artifact::save(&model_dir, &trained.meta, &trained.vs)?;
        Ok(trained.meta)
    });
    match training.await {
        Ok(outcome) => outcome,
        Err(join) => Err(anyhow::anyhow!("training crashed: {}", panic_message(join))),
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned()),
        Err(join) => join.to_string(),
    }
}

/// Renews the lease every heartbeat until the job ends; stops training when the
/// lease is lost, cancellation is asked for, or the worker shuts down.
async fn heartbeat(
    jobs: Jobs,
    id: String,
    token: String,
    signals: Arc<Signals>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_held = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(jobs.config.heartbeat) => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                signals.shutdown.store(true, Ordering::Relaxed);
                signals.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
        match jobs.store.heartbeat(&id, &token).await {
            Ok(LeaseCheck::Held { cancel_requested }) => {
                last_held = Instant::now();
                if cancel_requested {
                    signals.cancel.store(true, Ordering::Relaxed);
                    signals.stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
            Ok(LeaseCheck::Lost) => {
                signals.lease_lost.store(true, Ordering::Relaxed);
                signals.stop.store(true, Ordering::Relaxed);
                return;
            }
            // The database may be restarting: keep training, keep trying. Past the
            // lease timeout the job may be someone else's; the next write will tell.
            Err(error) => tracing::warn!(job = %id, error = format!("{error:#}"),
                unreachable_for_ms = last_held.elapsed().as_millis() as u64, "heartbeat failed"),
        }
    }
}

/// Retries a store write through database outages for up to `patience`; `None`
/// when it never got through.
async fn retry<T, F, Fut>(patience: Duration, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(error) if started.elapsed() < patience => {
                tracing::warn!(error = format!("{error:#}"), "database write failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "database write failed; giving up");
                return None;
            }
        }
    }
}

/// Removes a model or checkpoint directory on a blocking thread (checkpoints of a
/// large model are many megabytes).
async fn remove_dir(dir: &Path) {
    let owned = dir.to_owned();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(owned)).await;
    if let Ok(Err(error)) = removed
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "could not remove a directory");
    }
}
