//! Jobs: submission, the views clients read, and the workers that run them.
//!
//! One queue holds jobs of two kinds (`store::JobKind`): training a model, and
//! evaluating one ([`evaluation`]). The queue itself (claims, leases, fencing,
//! reaping) is SQL in `store::jobs`, the same for both; [`worker`] runs claimed
//! training jobs on devices, each attempt in a training process ([`attempt`])
//! that a [`supervisor`] watches over; [`evaluation`] runs evaluation jobs on the
//! server's generation engine; [`event_stream`] follows a job for clients.

pub mod attempt;
pub mod evaluation;
pub mod event_stream;
mod retry;
mod supervisor;
pub mod worker;

use anyhow::Context;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::config::QueueSettings;
use crate::model::hyperparameters::HyperparameterOverrides;
use crate::model::presets::Preset;
use crate::model::search::{SearchRecord, SearchRequest, TrialRecord};
use crate::shared::rfc3339;
use crate::store::{Enqueued, EpochRow, JobKind, JobRow, JobState, JobWork, NewJob, Store};
use crate::train::EpochMetrics;
use crate::train::progress::StepProgress;

/// Longest job name, in characters.
pub const MAX_JOB_NAME_CHARS: usize = 200;
/// Longest `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;
/// Most jobs listed at once.
pub const MAX_LISTED_JOBS: i64 = 500;

/// `POST /v1/training-jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingJobRequest {
    /// The dataset to train on.
    pub dataset_id: String,
    /// The recipe: representation, network and default hyperparameters.
    #[schema(example = "fugue")]
    pub preset: Preset,
    /// Overrides of the preset's hyperparameters, by name.
    pub hyperparameters: Option<HyperparameterOverrides>,
    /// 1 to 200 characters; default: the preset and dataset.
    pub name: Option<String>,
    /// Train this many variants of the preset instead of one, by successive
    /// halving within the search's budget, and register the best by validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchRequest>,
}

/// A training job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"id": "9b1c…", "name": "chorales", "dataset_id": "5b0f…", "preset": "fugue",
    "hyperparameters": {"epochs": 20, "batch_size": 32, "hidden_size": 256}, "state": "running", "attempt": 1,
    "max_attempts": 3, "worker": "gpu-1:4242/0", "device": "cuda:0", "cancel_requested": false,
    "epochs": [{"epoch": 1, "train_loss": 2.91, "valid_loss": 2.55, "train_accuracy": 0.41, "valid_accuracy": 0.46,
        "valid_precision": null, "valid_recall": null, "valid_density": null, "valid_true_density": null,
        "samples_per_second": 5200.0, "learning_rate": 0.002, "seconds": 42.0}],
    "trials": [], "winner": null, "epochs_planned": 20, "eta_seconds": 798.0,
    "progress": {"epoch": 2, "step": 120, "steps": 400, "steps_per_second": 9.5, "eta_seconds": 29.5, "train_loss": 2.48}, "error": null, "model_id": null,
    "created_at": "2026-11-22T03:00:00.000Z", "started_at": "2026-11-22T03:00:01.000Z", "finished_at": null,
    "updated_at": "2026-11-22T03:00:43.000Z", "next_attempt_at": null}))]
pub struct TrainingJob {
    pub id: String,
    pub name: String,
    pub dataset_id: String,
    #[schema(example = "fugue")]
    pub preset: Preset,
    /// The hyperparameters in force: the preset's, with the request's overrides;
    /// once training has read the corpus, what the corpus's recipe chose around
    /// the overrides, with `recipe` naming the reason for each choice.
    #[schema(value_type = Object)]
    pub hyperparameters: serde_json::Value,
    pub state: JobState,
    /// Claims so far (1 on the first run; more after a worker crashed).
    pub attempt: i64,
    pub max_attempts: i64,
    /// The worker and device of the current or last attempt.
    pub worker: Option<String>,
    pub device: Option<String>,
    pub cancel_requested: bool,
    /// Every finished epoch's metrics, in order (none for a search: its epochs
    /// are its trials').
    pub epochs: Vec<EpochMetrics>,
    /// The search, for a job that searches: as asked, with the space it searches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchRequest>,
    /// A search's trials, once its training process has drawn them: each one's
    /// drawn hyperparameters, rung, best validation loss, whether successive
    /// halving stopped it, and its epochs.
    pub trials: Vec<TrialView>,
    /// The trial whose model was registered, once a search has ended.
    pub winner: Option<u32>,
    /// The most epochs it will run (early stopping may end it sooner).
    pub epochs_planned: u32,
    /// Seconds until the last planned epoch at the pace so far, or until the
    /// budget ends the run if sooner, while running.
    pub eta_seconds: Option<f64>,
    /// How far the running epoch is (steps done of its steps, pace, its end),
    /// while running; recorded at most every 500 ms.
    pub progress: Option<StepProgress>,
    /// Why it failed.
    pub error: Option<String>,
    /// The registered model, once succeeded.
    pub model_id: Option<String>,
    /// RFC 3339 times.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    /// When a requeued job becomes due again (after a crash, with backoff).
    pub next_attempt_at: Option<String>,
}

impl TrainingJob {
    /// The view of a job's rows. A row that does not decode is an error naming the
    /// job and the column, never a view with its fields quietly emptied.
    pub fn of(row: JobRow, epochs: &[EpochRow]) -> anyhow::Result<TrainingJob> {
        let JobWork::Training { dataset_id, preset, search, .. } = row.work else {
            anyhow::bail!("job {} is not a training job", row.id);
        };
        let search: Option<SearchRequest> = search
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("training job {}: its search does not decode", row.id))?;
        let record: Option<SearchRecord> = row
            .search_record
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("training job {}: its search record does not decode", row.id))?;
        let hyperparameters: serde_json::Value = serde_json::from_str(&row.parameters)
            .with_context(|| format!("training job {}: its hyperparameters are not JSON", row.id))?;
        let epochs_planned = hyperparameters
            .get("epochs")
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("training job {}: its hyperparameters name no epochs", row.id))?
            as u32;
        let decoded = |trial: i64| -> anyhow::Result<Vec<EpochMetrics>> {
            epochs
                .iter()
                .filter(|epoch| epoch.trial == trial)
                .map(|epoch| {
                    serde_json::from_str(&epoch.metrics).with_context(|| {
                        format!("training job {}: the metrics of epoch {} do not decode", row.id, epoch.epoch)
                    })
                })
                .collect()
        };
        let (epochs, trials, winner) = match record {
            Some(record) => {
                let trials = record
                    .trials
                    .into_iter()
                    .map(|record| Ok(TrialView { epochs: decoded(i64::from(record.trial))?, record }))
                    .collect::<anyhow::Result<_>>()?;
                (Vec::new(), trials, record.winner)
            }
            None if search.is_some() => (Vec::new(), Vec::new(), None),
            None => (decoded(0)?, Vec::new(), None),
        };
        let progress = match (&row.progress, row.state) {
            (Some(json), JobState::Running) => {
                let progress: StepProgress = serde_json::from_str(json)
                    .with_context(|| format!("training job {}: its progress does not decode", row.id))?;
                unsuperseded(progress, &epochs, &trials)
            }
            _ => None,
        };
        let budget_minutes = hyperparameters
            .get("budget_minutes")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(crate::model::hyperparameters::DEFAULT_BUDGET_MINUTES);
        let eta_seconds = (row.state == JobState::Running && !epochs.is_empty())
            .then(|| eta(&epochs, epochs_planned, budget_minutes * 60.0));
        Ok(TrainingJob {
            next_attempt_at: (row.state == JobState::Queued && row.attempt > 0)
                .then(|| rfc3339(row.run_after)),
            id: row.id,
            name: row.name,
            dataset_id,
            preset,
            hyperparameters,
            state: row.state,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            worker: row.worker,
            device: row.device,
            cancel_requested: row.cancel_requested,
            epochs,
            search,
            trials,
            winner,
            epochs_planned,
            eta_seconds,
            progress,
            error: row.error,
            model_id: row.model_id,
            created_at: rfc3339(row.created_at),
            started_at: row.started_at.map(rfc3339),
            finished_at: row.finished_at.map(rfc3339),
            updated_at: rfc3339(row.updated_at),
        })
    }
}

/// A running job's progress, unless the epoch it was written in has ended since:
/// that epoch's own metrics (the job's, or its search trial's) supersede it.
fn unsuperseded(
    progress: StepProgress,
    epochs: &[EpochMetrics],
    trials: &[TrialView],
) -> Option<StepProgress> {
    let run_epochs = match progress.trial {
        Some(trial) => {
            trials.iter().find(|view| view.record.trial == trial).map(|view| view.epochs.as_slice())
        }
        None => Some(epochs),
    };
    let last_epoch = run_epochs.and_then(<[EpochMetrics]>::last).map_or(0, |metrics| metrics.epoch);
    (progress.epoch > last_epoch).then_some(progress)
}

/// One trial of a search job: its record and its finished epochs' metrics.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrialView {
    #[serde(flatten)]
    pub record: TrialRecord,
    pub epochs: Vec<EpochMetrics>,
}

/// Submitting and reading jobs; shared by the API and the in-process workers.
#[derive(Clone)]
pub struct Jobs {
    pub store: Store,
    pub config: QueueSettings,
    /// Wakes this process's idle workers when a job is submitted here.
    pub wake: Arc<Notify>,
    /// Jobs that changed, as Postgres notifies them, for this node's event
    /// streams (see [`event_stream`]).
    pub changes: event_stream::JobChanges,
}

/// Why a submission was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is invalid or names nothing there is.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The idempotency key was used for another request, which made this job.
    #[error("Idempotency-Key was already used for job `{job_id}` with a different request")]
    KeyReused { job_id: String },
    /// The queue holds its limit of jobs.
    #[error("{queued} jobs are already queued (the limit); try again later")]
    QueueFull { queued: i64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no {} job `{id}`", kind.as_str())]
    NotFound { kind: JobKind, id: String },
    #[error("job `{id}` has already ended ({})", .state.as_str())]
    Ended { id: String, state: JobState },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A request checked and resolved, ready to enqueue.
pub struct Submission {
    pub request: TrainingJobRequest,
    pub idempotency_key: Option<String>,
}

impl Jobs {
    pub fn new(store: Store, config: QueueSettings) -> Jobs {
        Jobs { store, config, wake: Arc::new(Notify::new()), changes: event_stream::JobChanges::default() }
    }

    /// Checks the request, queues its job (or finds the one its idempotency key made
    /// before), wakes this process's idle workers, and returns the job's view.
    pub async fn submit(&self, submission: &Submission, max_queued: i64) -> Result<TrainingJob, SubmitError> {
        check(&submission.request)?;
        let job = self.new_job(submission)?;
        let row = match self.store.enqueue_job(job, max_queued).await? {
            Enqueued::Created(row) => {
                self.wake.notify_waiters();
                row
            }
            Enqueued::Existing(row) => row,
            Enqueued::KeyReused(row) => return Err(SubmitError::KeyReused { job_id: row.id }),
            Enqueued::NoDataset => {
                let message = format!("no dataset `{}`", submission.request.dataset_id);
                return Err(SubmitError::Invalid { field: "dataset_id".to_owned(), message });
            }
            Enqueued::QueueFull(queued) => return Err(SubmitError::QueueFull { queued }),
        };
        Ok(self.view(&row.id).await?.ok_or_else(|| anyhow::anyhow!("job `{}` vanished", row.id))?)
    }

    fn new_job(&self, submission: &Submission) -> anyhow::Result<NewJob> {
        let request = &submission.request;
        let overrides = request.hyperparameters.clone().unwrap_or_default();
        let mut hyperparameters = overrides.apply_to(request.preset.defaults());
        if let Some(search) = &request.search {
            hyperparameters.budget_minutes = search.budget_minutes;
        }
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| format!("{} on {}", request.preset.name(), request.dataset_id));
        // The space searched is fixed when the job is queued, the preset's default included.
        let search = request.search.clone().map(|search| search.resolved(request.preset, &overrides));
        Ok(NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            work: JobWork::Training {
                dataset_id: request.dataset_id.clone(),
                preset: request.preset,
                overrides: Some(serde_json::to_string(&overrides)?),
                search: search.as_ref().map(serde_json::to_string).transpose()?,
            },
            parameters: serde_json::to_string(&hyperparameters)?,
            idempotency_key: submission.idempotency_key.clone(),
            request_sha256: request_sha256(request)?,
            max_attempts: self.config.max_attempts,
        })
    }

    /// The newest `limit` jobs, in one state or all.
    pub async fn list(&self, state: Option<JobState>, limit: i64) -> anyhow::Result<Vec<TrainingJob>> {
        let rows = self.store.jobs(JobKind::Training, state, limit).await?;
        rows.into_iter().map(|(row, epochs)| TrainingJob::of(row, &epochs)).collect()
    }

    /// Cancels a queued job at once, or asks a running one to stop at its next
    /// heartbeat; the job as it now reads.
    pub async fn cancel(&self, id: &str) -> Result<TrainingJob, CancelError> {
        self.request_cancel(id, JobKind::Training).await?;
        let not_found = || CancelError::NotFound { kind: JobKind::Training, id: id.to_owned() };
        self.view(id).await?.ok_or_else(not_found)
    }

    /// Cancels a queued job of `kind` at once, or asks a running one to stop at
    /// its next heartbeat.
    pub async fn request_cancel(&self, id: &str, kind: JobKind) -> Result<(), CancelError> {
        let Some(before) = self.store.job(id).await?.filter(|row| row.work.kind() == kind) else {
            return Err(CancelError::NotFound { kind, id: id.to_owned() });
        };
        if before.state.is_terminal() {
            return Err(CancelError::Ended { id: id.to_owned(), state: before.state });
        }
        self.store.request_cancel(id).await?;
        Ok(())
    }

    /// A training job; `None` for no job, or a job of another kind.
    pub async fn view(&self, id: &str) -> anyhow::Result<Option<TrainingJob>> {
        let Some(row) = self.store.job(id).await?.filter(|row| row.work.kind() == JobKind::Training) else {
            return Ok(None);
        };
        let epochs = self.store.job_epochs(id).await?;
        Ok(Some(TrainingJob::of(row, &epochs)?))
    }
}

/// The name's length, every hyperparameter's range and the search's fields,
/// naming the field at fault.
fn check(request: &TrainingJobRequest) -> Result<(), SubmitError> {
    if let Some(name) = &request.name
        && (name.trim().is_empty() || name.chars().count() > MAX_JOB_NAME_CHARS)
    {
        let message = format!("must be 1 to {MAX_JOB_NAME_CHARS} characters");
        return Err(SubmitError::Invalid { field: "name".to_owned(), message });
    }
    if let Some(overrides) = &request.hyperparameters {
        overrides.validate(request.preset).map_err(|out_of_range| SubmitError::Invalid {
            field: format!("hyperparameters.{}", out_of_range.field),
            message: out_of_range.message,
        })?;
    }
    if let Some(search) = &request.search {
        let overrides = request.hyperparameters.clone().unwrap_or_default();
        search
            .check(request.preset, &overrides)
            .map_err(|refused| SubmitError::Invalid { field: refused.field, message: refused.message })?;
    }
    Ok(())
}

/// The request's fingerprint for idempotency: its JSON with keys in order.
fn request_sha256(request: &TrainingJobRequest) -> anyhow::Result<String> {
    // serde_json's Value keeps object keys sorted, so equal requests hash equal.
    let canonical = serde_json::to_vec(&serde_json::to_value(request)?)?;
    Ok(format!("{:x}", Sha256::digest(canonical)))
}

/// Seconds until the last of `epochs_planned` at the pace of `epochs` so far, or
/// until the budget's end, whichever comes first: the budget ends a run however
/// many epochs it may run.
fn eta(epochs: &[EpochMetrics], epochs_planned: u32, budget_seconds: f64) -> f64 {
    let spent = epochs.iter().map(|m| m.seconds).sum::<f64>();
    let per_epoch = spent / epochs.len().max(1) as f64;
    let last_epoch = epochs.last().map_or(0, |m| m.epoch);
    let planned = per_epoch * f64::from(epochs_planned.saturating_sub(last_epoch));
    planned.min((budget_seconds - spent).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_eta_is_the_planned_epochs_at_the_pace_so_far_within_the_budget() {
        let epoch = |epoch| EpochMetrics::timed(epoch, 5.0, 3_000.0);
        let two = [epoch(1), epoch(2)];
        assert_eq!(eta(&two, 10, 3_600.0), 40.0, "8 epochs of 5 s");
        assert_eq!(eta(&two, 400, 900.0), 890.0, "the budget ends the run first");
        assert_eq!(eta(&two, 400, 5.0), 0.0);
    }

    #[test]
    fn progress_is_shown_until_its_own_run_records_that_epoch() {
        let during = |epoch, trial| StepProgress {
            trial,
            ..StepProgress::of(epoch, 3, 10, Duration::from_secs(1), 2.0)
        };
        let epoch = |epoch| EpochMetrics::timed(epoch, 5.0, 3_000.0);
        let trial = |trial, epochs: Vec<EpochMetrics>| TrialView {
            record: TrialRecord {
                trial,
                hyperparameters: Default::default(),
                rung: 0,
                rungs: Vec::new(),
                best_valid_loss: None,
                stopped: false,
                error: None,
            },
            epochs,
        };
        let shown = |progress: StepProgress, epochs: &[EpochMetrics], trials: &[TrialView]| {
            unsuperseded(progress, epochs, trials).is_some()
        };
        // A plain job: epoch 2 runs after epoch 1; once epoch 2 is recorded, its
        // progress is stale.
        assert!(shown(during(1, None), &[], &[]));
        assert!(shown(during(2, None), &[epoch(1)], &[]));
        assert!(!shown(during(2, None), &[epoch(1), epoch(2)], &[]));
        // A search: each trial counts its own epochs, not the others'.
        let trials = [trial(0, vec![epoch(1), epoch(2), epoch(3)]), trial(1, vec![epoch(1)])];
        assert!(shown(during(2, Some(1)), &[], &trials), "trial 1 is in its epoch 2");
        assert!(!shown(during(1, Some(1)), &[], &trials), "trial 1 recorded its epoch 1");
        assert!(!shown(during(3, Some(0)), &[], &trials));
        assert!(shown(during(1, Some(2)), &[], &trials), "a trial not yet in the record");
    }

    #[test]
    fn equal_requests_hash_equal_whatever_the_key_order() {
        let a: TrainingJobRequest = serde_json::from_str(
            r#"{"dataset_id":"d","preset":"fugue","hyperparameters":{"epochs":2,"seed":3}}"#,
        )
        .unwrap();
        let b: TrainingJobRequest = serde_json::from_str(
            r#"{"hyperparameters":{"seed":3,"epochs":2},"preset":"fugue","dataset_id":"d"}"#,
        )
        .unwrap();
        let c: TrainingJobRequest =
            serde_json::from_str(r#"{"dataset_id":"d","preset":"fugue","hyperparameters":{"epochs":3}}"#)
                .unwrap();
        assert_eq!(request_sha256(&a).unwrap(), request_sha256(&b).unwrap());
        assert_ne!(request_sha256(&a).unwrap(), request_sha256(&c).unwrap());
    }
}
