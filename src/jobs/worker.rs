//! Training workers: each takes one job at a time from the queue and trains it on
//! its device, in `fugue serve` (`--train-workers`) or alone (`fugue worker`).
//!
//! Each attempt at a job trains in a child process of its own (`fugue
//! train-attempt`, see [`super::attempt`]), which the worker starts and watches
//! over ([`super::supervisor`]). libtorch's process-wide state (the random
//! generator every epoch reseeds, the thread count) and any crash or abort inside
//! libtorch then belong to one attempt only: jobs trained side by side resume
//! exactly, and a segfault fails one attempt, not every job of the server.
//!
//! Life of a claim:
//! 1. claim the oldest due job under a fresh lease token;
//! 2. start the training process, which resumes from the job's checkpoint
//!    directory if an earlier attempt left one, while a heartbeat task here renews
//!    the lease;
//! 3. the training process writes every epoch's metrics to the database under the
//!    lease *before* the epoch is checkpointed, so an attempt whose lease was lost
//!    stops without touching the checkpoint the new owner resumes from;
//! 4. it writes the artifact to a fresh directory (staged, synced, renamed) and
//!    reports how it ended as one JSON line on stdout; then the worker commits the
//!    model row and the job's success in one transaction under the lease. A fenced
//!    worker removes the artifact again: exactly one model per job.
//!
//! Progress goes through the database, not through a pipe to the worker: the
//! epoch's write is the one that must be fenced by the lease (in the same
//! statement, so a stale attempt cannot write after losing it), and the job event
//! streams clients follow already read the database, so the worker relays nothing
//! and a worker that is frozen or gone cannot hold progress back. The pipes carry
//! only the end: the report on stdout, logs on stderr (passed on to the worker's
//! stderr; their last lines go into the error of an attempt that died).
//!
//! Stopping: a heartbeat that finds cancellation asked for, or a worker shutting
//! down, closes the training process's stdin; it stops before its next batch,
//! keeping its last checkpoint, and is killed if it has not ended within a grace
//! period. A lost lease kills it at once. Should the worker itself die, the kernel
//! closes the pipe, and the orphan stops the same way. A training process that
//! dies (a signal, an abort, an exit without a report) fails its attempt like a
//! training error: the job goes back to the queue with backoff and resumes from
//! its checkpoint. A crashed worker simply stops heartbeating; the reaper (every
//! pool runs one) requeues its job after the lease timeout.
//!
//! The training process opens the database on its own, so it must be one that two
//! processes can share: Postgres, or a SQLite file (in WAL mode, with a busy
//! timeout); an in-memory SQLite database is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;

use super::Jobs;
use super::attempt::{AttemptSettings, Outcome};
use super::retry::retry;
use super::supervisor::{self, Ending, StopReason};
use crate::config::{StorageSettings, TrainingSettings, WorkerSettings};
use crate::devices::{DeviceName, default_devices};
use crate::model::registry::{ModelSummary, model_key};
use crate::objects::Objects;
use crate::shared::rfc3339;
use crate::store::{
    self, Claim, JobChannel, JobKind, JobNotifications, JobRow, JobState, JobWork, LeaseCheck, ModelRow,
    Store,
};

/// What every worker of a pool shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub jobs: Jobs,
    /// Local working directories of attempts live under `<data dir>/work`.
    pub data_dir: PathBuf,
    /// Checkpoints and artifacts live here, so any machine can resume or serve them.
    pub objects: Objects,
    /// The store's URL as the training processes are told it.
    pub object_store: Option<String>,
    /// `host:pid`, so operators can tell workers apart in job views.
    pub name: String,
    /// Each training process opens the database itself.
    pub database_url: String,
    /// The executable each attempt runs as (`<program> train-attempt …`).
    pub program: PathBuf,
    /// libtorch CPU threads of each training process.
    pub threads: i32,
    /// Environment each training process gets besides this one's.
    pub attempt_env: Vec<(String, String)>,
}

impl WorkerContext {
    /// Refuses a database the training processes could not open: in-memory SQLite.
    pub fn new(
        jobs: Jobs,
        storage: &StorageSettings,
        training: &TrainingSettings,
    ) -> anyhow::Result<WorkerContext> {
        let database_url = storage.database_url();
        if !store::shared_between_processes(&database_url) {
            bail!(
                "training workers need a database their training processes can open as well, \
                 which an in-memory SQLite database is not: use a SQLite file or Postgres, \
                 or run no training workers here (--train-workers 0)"
            );
        }
        let program = match &training.attempt_program {
            Some(program) => program.clone(),
            None => std::env::current_exe().context("finding this executable to run training attempts")?,
        };
        Ok(WorkerContext {
            jobs,
            data_dir: storage.data_dir.clone(),
            objects: storage.objects()?,
            object_store: storage.object_store.clone(),
            name: worker_name(),
            database_url,
            program,
            threads: training.threads,
            // S3 settings given by name reach the training processes as `AWS_*` variables.
            attempt_env: training
                .attempt_env
                .iter()
                .cloned()
                .chain(
                    storage
                        .object_store_options
                        .iter()
                        .map(|(name, value)| (name.to_ascii_uppercase(), value.clone())),
                )
                .collect(),
        })
    }
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
    let jobs = Jobs::new(store.clone(), args.queue.clone());
    let context = WorkerContext::new(jobs, &args.storage, &args.training)?;
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
    // Checking at a fraction of the lease keeps the requeue delay near the timeout.
    tasks.spawn(reap(context.jobs.clone(), context.jobs.config.lease_timeout / 4, shutdown.clone()));
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
        match context.jobs.store.claim_job(JobKind::Training, &worker, &device.to_string(), &token).await {
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

/// Requeues (or fails, or cancels) jobs of every kind whose worker stopped
/// heartbeating, looking every `period`.
pub(super) async fn reap(jobs: Jobs, period: Duration, mut shutdown: watch::Receiver<bool>) {
    let timeout_ms = i64::try_from(jobs.config.lease_timeout.as_millis()).unwrap_or(i64::MAX);
    let period = period.max(Duration::from_millis(50));
    while !*shutdown.borrow() {
        match jobs.store.reap_expired_leases(timeout_ms, |attempt| jobs.config.backoff_ms(attempt)).await {
            Ok(reaped) => {
                for job in &reaped {
                    tracing::warn!(job = %job.id, state = job.state.as_str(), next_attempt_at = %rfc3339(job.run_after),
                        "a job's worker stopped heartbeating");
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
pub(super) async fn listen(url: String, wake: Arc<tokio::sync::Notify>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let listening = async {
            let mut notifications = JobNotifications::connect(&url, JobChannel::Queued).await?;
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

async fn run_claim(
    context: &WorkerContext,
    claim: Claim,
    device: DeviceName,
    shutdown: watch::Receiver<bool>,
) {
    let Claim { job, token } = claim;
    let (stop, stop_reason) = watch::channel(None);
    let heartbeat =
        tokio::spawn(heartbeat(context.jobs.clone(), job.id.clone(), token.clone(), stop, shutdown));
    let model_id = uuid::Uuid::new_v4().to_string();
    let attempt = AttemptSettings {
        job: job.id.clone(),
        lease_token: token.clone(),
        database_url: context.database_url.clone(),
        data_dir: context.data_dir.clone(),
        object_store: context.object_store.clone(),
        work_dir: context.data_dir.join("work").join(format!("{}-{}", job.id, uuid::Uuid::new_v4().simple())),
        checkpoint_key: checkpoint_key(&job.id),
        model_key: model_key(&model_id),
        device,
        threads: context.threads,
        lease_timeout: context.jobs.config.lease_timeout,
    };
    let ending = match supervisor::start(&context.program, &context.attempt_env, &attempt) {
        Ok(child) => {
            tracing::info!(job = %job.id, pid = child.id(), "training process started");
            supervisor::supervise(child, stop_reason.clone()).await
        }
        Err(error) => Ending::Died(format!(
            "the training process ({}) could not be started: {error}",
            context.program.display()
        )),
    };
    heartbeat.abort();
    let reason = *stop_reason.borrow();
    let state = settle(context, &job, &token, ending, reason, model_id).await;
    if state != Some(JobState::Succeeded) {
        remove_bundle(&context.objects, &attempt.model_key).await;
    }
    if state.is_some_and(JobState::is_terminal) {
        remove_bundle(&context.objects, &attempt.checkpoint_key).await;
    }
    remove_dir(&attempt.work_dir).await;
}

/// Where a job's checkpoint lives in the object store.
pub fn checkpoint_key(job: &str) -> String {
    format!("checkpoints/{job}")
}

/// Removes a bundle from the object store, manifest first; a failure is logged
/// (the files are only wasted space, invisible without their manifest).
async fn remove_bundle(objects: &Objects, key: &str) {
    if let Err(error) = objects.delete_bundle(key).await {
        tracing::warn!(key, error = format!("{error:#}"), "could not remove from the object store");
    }
}

/// Writes how the attempt ended, under the lease: the state the job is left in,
/// or `None` when it is no longer this worker's to say (the lease was lost, or
/// the database stayed out of reach).
async fn settle(
    context: &WorkerContext,
    job: &JobRow,
    token: &str,
    ending: Ending,
    reason: Option<StopReason>,
    model_id: String,
) -> Option<JobState> {
    let store = &context.jobs.store;
    let patience = context.jobs.config.lease_timeout;
    let id = job.id.as_str();
    match (ending, reason) {
        (Ending::Reported(Outcome::Trained { summary }), _) => {
            let JobWork::Training { dataset_id, preset, .. } = &job.work else {
                return fail(&context.jobs, job, token, "a training worker claimed a job of another kind")
                    .await;
            };
            let row = ModelRow {
                id: model_id,
                name: job.name.clone(),
                preset: *preset,
                job_id: Some(job.id.clone()),
                dataset_id: Some(dataset_id.clone()),
                summary: serde_json::to_string::<ModelSummary>(&summary).unwrap_or_default(),
                created_at: 0,
            };
            if retry(patience, || store.complete_job(id, token, &row)).await == Some(true) {
                tracing::info!(job = id, model = %row.id, "training job succeeded");
                Some(JobState::Succeeded)
            } else {
                tracing::warn!(job = id, "lease lost before the model could be registered; discarding it");
                None
            }
        }
        (Ending::Reported(Outcome::LeaseLost), _) | (_, Some(StopReason::LeaseLost)) => {
            tracing::warn!(job = id, "lease lost; another worker owns this job now");
            None
        }
        (Ending::Reported(Outcome::Cancelled), _)
        | (Ending::Reported(Outcome::Stopped) | Ending::Died(_), Some(StopReason::Cancel)) => {
            tracing::info!(job = id, "training job cancelled");
            let ended = retry(patience, || store.end_job(id, token, JobState::Cancelled, None)).await;
            (ended == Some(true)).then_some(JobState::Cancelled)
        }
        (Ending::Reported(Outcome::Stopped) | Ending::Died(_), Some(StopReason::Shutdown)) => {
            tracing::info!(job = id, "worker shutting down; job back in the queue");
            let released = retry(Duration::from_secs(5), || store.release_job(id, token)).await;
            (released == Some(true)).then_some(JobState::Queued)
        }
        (Ending::Reported(Outcome::Failed { error }), _) | (Ending::Died(error), None) => {
            fail(&context.jobs, job, token, &error).await
        }
        (Ending::Reported(Outcome::Stopped), None) => {
            fail(&context.jobs, job, token, "the training process stopped without being asked to").await
        }
    }
}

/// Records a failed attempt (of a job of any kind): the job goes back to the queue
/// with backoff, or fails for good once it has used its attempts.
pub(super) async fn fail(jobs: &Jobs, job: &JobRow, token: &str, message: &str) -> Option<JobState> {
    let (store, id) = (&jobs.store, job.id.as_str());
    let backoff = jobs.config.backoff_ms(job.attempt);
    let recorded = retry(jobs.config.lease_timeout, || store.fail_attempt(id, token, message, backoff)).await;
    match recorded {
        // The write was fenced: a successor owns the job, and this attempt's
        // error (often its checkpoints vanishing under it) is not the job's.
        Some(None) => {
            tracing::warn!(job = id, error = %message, "lease lost; another worker owns this job now");
            None
        }
        next => {
            let next = next.flatten();
            tracing::warn!(job = id, error = %message, attempt = job.attempt, next = ?next, "attempt failed");
            next
        }
    }
}

/// Renews the lease every heartbeat until the job ends; tells whoever runs the
/// attempt to stop it when the lease is lost, cancellation is asked for, or the
/// worker shuts down.
pub(super) async fn heartbeat(
    jobs: Jobs,
    id: String,
    token: String,
    stop: watch::Sender<Option<StopReason>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_held = Instant::now();
    let reason = loop {
        tokio::select! {
            () = tokio::time::sleep(jobs.config.heartbeat) => {}
            _ = shutdown.wait_for(|stop| *stop) => break StopReason::Shutdown,
        }
        match jobs.store.heartbeat(&id, &token).await {
            Ok(LeaseCheck::Held { cancel_requested: true }) => break StopReason::Cancel,
            Ok(LeaseCheck::Held { cancel_requested: false }) => last_held = Instant::now(),
            Ok(LeaseCheck::Lost) => break StopReason::LeaseLost,
            // The database may be restarting: keep training, keep trying. Past the
            // lease timeout the job may be someone else's; the next write will tell.
            Err(error) => tracing::warn!(job = %id, error = format!("{error:#}"),
                unreachable_for_ms = last_held.elapsed().as_millis() as u64, "heartbeat failed"),
        }
    };
    let _ = stop.send(Some(reason));
}

/// Removes an attempt's working directory on a blocking thread (checkpoints of a
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
