//! The job queue: training jobs and evaluation jobs, one table with a kind.
//!
//! A worker claims the oldest due job and gets a fresh lease token. Every write it
//! makes afterwards names the token in its `WHERE` clause, so once the lease has
//! passed to someone else (the reaper requeued the job, another worker claimed it)
//! the stale worker's heartbeats, epoch metrics and finished model all match no
//! row and are rejected. No transaction stays open while a job trains.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::models::{ModelRow, insert_model};
use super::{Backend, Store, now_ms};
use crate::shared::Preset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// The kinds of job the queue holds; a worker claims jobs of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Training,
    Evaluation,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Training => "training",
            JobKind::Evaluation => "evaluation",
        }
    }
}

/// What a job does, with what only its kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum JobWork {
    /// Train a model of `preset` on a dataset, with the request's hyperparameter
    /// overrides as JSON (none for jobs from before recipes), and the search asked
    /// for as JSON (none for a job that trains one model).
    Training { dataset_id: String, preset: Preset, overrides: Option<String>, search: Option<String> },
    /// Evaluate a model (bundled or trained).
    Evaluation { model_id: String },
}

impl JobWork {
    pub fn kind(&self) -> JobKind {
        match self {
            JobWork::Training { .. } => JobKind::Training,
            JobWork::Evaluation { .. } => JobKind::Evaluation,
        }
    }

    fn dataset_id(&self) -> Option<&str> {
        match self {
            JobWork::Training { dataset_id, .. } => Some(dataset_id),
            JobWork::Evaluation { .. } => None,
        }
    }

    fn overrides(&self) -> Option<&str> {
        match self {
            JobWork::Training { overrides, .. } => overrides.as_deref(),
            JobWork::Evaluation { .. } => None,
        }
    }

    fn search(&self) -> Option<&str> {
        match self {
            JobWork::Training { search, .. } => search.as_deref(),
            JobWork::Evaluation { .. } => None,
        }
    }
}

/// A job as submitted.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub name: String,
    pub work: JobWork,
    /// Resolved parameters as JSON: a training job's hyperparameters, an
    /// evaluation's settings.
    pub parameters: String,
    pub idempotency_key: Option<String>,
    pub request_sha256: String,
    pub max_attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub work: JobWork,
    pub parameters: String,
    pub state: JobState,
    pub attempt: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub worker: Option<String>,
    pub device: Option<String>,
    pub heartbeat_at: Option<i64>,
    pub cancel_requested: bool,
    /// Training: the running epoch's progress as JSON, as the training process
    /// last wrote it.
    pub progress: Option<String>,
    /// Evaluation: pieces generated so far in this attempt.
    pub pieces_done: i64,
    /// Training with a search: what the search has done so far, as JSON, as the
    /// training process last wrote it.
    pub search_record: Option<String>,
    pub error: Option<String>,
    /// Training: the model it registered.
    pub model_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

/// The columns a running job's process writes under its lease.
#[derive(Debug, Clone, Copy)]
enum LeasedColumn {
    Parameters,
    Progress,
    PiecesDone,
    SearchRecord,
}

impl LeasedColumn {
    fn name(self) -> &'static str {
        match self {
            LeasedColumn::Parameters => "parameters",
            LeasedColumn::Progress => "progress",
            LeasedColumn::PiecesDone => "pieces_done",
            LeasedColumn::SearchRecord => "search_record",
        }
    }
}

const JOB_COLUMNS: &str = "id, kind, name, dataset_id, preset, parameters, evaluated_model_id, overrides, \
    search, state, attempt, max_attempts, run_after, worker, device, heartbeat_at, cancel_requested, progress, \
    pieces_done, search_record, error, model_id, created_at, started_at, finished_at, updated_at";

impl JobRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<JobRow> {
        let state: String = row.try_get("state")?;
        let kind: String = row.try_get("kind")?;
        let work = match kind.as_str() {
            "training" => JobWork::Training {
                dataset_id: row.try_get("dataset_id")?,
                preset: super::decode_preset(row)?,
                overrides: row.try_get("overrides")?,
                search: row.try_get("search")?,
            },
            "evaluation" => JobWork::Evaluation { model_id: row.try_get("evaluated_model_id")? },
            _ => return Err(sqlx::Error::Decode(format!("unknown job kind `{kind}`").into())),
        };
        Ok(JobRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            work,
            parameters: row.try_get("parameters")?,
            state: JobState::parse(&state)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown job state `{state}`").into()))?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            worker: row.try_get("worker")?,
            device: row.try_get("device")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            progress: row.try_get("progress")?,
            pieces_done: row.try_get("pieces_done")?,
            search_record: row.try_get("search_record")?,
            error: row.try_get("error")?,
            model_id: row.try_get("model_id")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// One finished epoch of a job: its trial (0 for a job that trains one model),
/// which attempt ran it, and its metrics as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRow {
    pub trial: i64,
    pub epoch: i64,
    pub attempt: i64,
    pub metrics: String,
}

impl EpochRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<EpochRow> {
        Ok(EpochRow {
            trial: row.try_get("trial")?,
            epoch: row.try_get("epoch")?,
            attempt: row.try_get("attempt")?,
            metrics: row.try_get("metrics")?,
        })
    }
}

/// What submitting did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created(JobRow),
    /// The idempotency key was used before, with the same request: that job.
    Existing(JobRow),
    /// The idempotency key was used before with a different request.
    KeyReused(JobRow),
    /// The training job's dataset does not exist (any more).
    NoDataset,
    /// The queue already holds this many jobs.
    QueueFull(i64),
}

/// A claimed job and the lease token that guards every write about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub job: JobRow,
    pub token: String,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCheck {
    Held {
        cancel_requested: bool,
    },
    /// The lease is gone (expired and taken, or the job ended): stop, write nothing.
    Lost,
}

impl LeaseCheck {
    /// Held, with the row's `cancel_requested`, when an update under the lease
    /// returned a row; lost otherwise.
    fn of(row: Option<&AnyRow>) -> sqlx::Result<LeaseCheck> {
        Ok(match row {
            Some(row) => {
                LeaseCheck::Held { cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0 }
            }
            None => LeaseCheck::Lost,
        })
    }
}

/// A job whose lease expired and what the reaper made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub id: String,
    pub state: JobState,
    pub run_after: i64,
}

/// Postgres channel that tells event followers, on every node, that a job changed
/// (its state, or a new epoch); the payload is the job's id.
const JOB_EVENTS_CHANNEL: &str = "fugue_job_events";

/// Postgres channel that wakes idle workers when a job becomes due.
const JOBS_CHANNEL: &str = "fugue_training_jobs";

/// What a node listens to Postgres for.
#[derive(Debug, Clone, Copy)]
pub enum JobChannel {
    /// A job changed: its event followers read it again.
    Changed,
    /// A job was queued (sent in the enqueueing transaction): idle workers wake.
    Queued,
}

/// Postgres notifications on one [`JobChannel`].
pub struct JobNotifications {
    listener: sqlx::postgres::PgListener,
}

impl JobNotifications {
    pub async fn connect(database_url: &str, channel: JobChannel) -> sqlx::Result<JobNotifications> {
        let mut listener = sqlx::postgres::PgListener::connect(database_url).await?;
        listener
            .listen(match channel {
                JobChannel::Changed => JOB_EVENTS_CHANNEL,
                JobChannel::Queued => JOBS_CHANNEL,
            })
            .await?;
        Ok(JobNotifications { listener })
    }

    /// The next notification's payload (the job's id); an error means the
    /// connection dropped (notifications sent meanwhile are lost).
    pub async fn next(&mut self) -> sqlx::Result<String> {
        self.listener.recv().await.map(|notification| notification.payload().to_owned())
    }
}

impl Store {
    /// Tells event followers that job `id` changed, when the transaction commits
    /// (Postgres; on SQLite followers poll).
    async fn notify_followers(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
    ) -> sqlx::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(JOB_EVENTS_CHANNEL)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// [`Store::notify_followers`] after a write outside a transaction; a failure
    /// only delays followers until their next poll.
    async fn notify_followers_now(&self, id: &str) {
        if self.backend == Backend::Postgres {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(JOB_EVENTS_CHANNEL)
                .bind(id)
                .execute(&self.pool)
                .await;
            if let Err(error) = sent {
                tracing::warn!(job = id, %error, "could not notify the job's followers");
            }
        }
    }

    /// Inserts a queued job, or finds the one its idempotency key already made.
    /// Refused when `max_queued` jobs are already waiting.
    pub async fn enqueue_job(&self, job: NewJob, max_queued: i64) -> anyhow::Result<Enqueued> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(dataset_id) = job.work.dataset_id() {
            // FOR SHARE makes a concurrent dataset deletion wait for this submission.
            let lock = if self.backend == Backend::Postgres { " FOR SHARE" } else { "" };
            let dataset =
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM datasets WHERE id = $1{lock}")))
                    .bind(dataset_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if dataset.is_none() {
                return Ok(Enqueued::NoDataset);
            }
        }
        let queued: i64 = sqlx::query("SELECT COUNT(*) AS queued FROM jobs WHERE state = 'queued'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("queued")?;
        let key_known = match &job.idempotency_key {
            Some(key) => sqlx::query("SELECT 1 AS known FROM jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
                .is_some(),
            None => false,
        };
        if queued >= max_queued && !key_known {
            return Ok(Enqueued::QueueFull(queued));
        }
        let (preset, evaluated_model_id) = match &job.work {
            JobWork::Training { preset, .. } => (Some(preset.name()), None),
            JobWork::Evaluation { model_id } => (None, Some(model_id.as_str())),
        };
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, kind, name, dataset_id, preset, parameters, evaluated_model_id, overrides, \
             search, idempotency_key, request_sha256, state, attempt, max_attempts, run_after, cancel_requested, \
             pieces_done, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', 0, $12, $13, 0, 0, $13, $13) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&job.id)
        .bind(job.work.kind().as_str())
        .bind(&job.name)
        .bind(job.work.dataset_id())
        .bind(preset)
        .bind(&job.parameters)
        .bind(evaluated_model_id)
        .bind(job.work.overrides())
        .bind(job.work.search())
        .bind(&job.idempotency_key)
        .bind(&job.request_sha256)
        .bind(job.max_attempts)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            self.notify_workers(&mut tx, &job.id).await?;
            tx.commit().await?;
            let created = self.job(&job.id).await?.ok_or_else(|| anyhow::anyhow!("job vanished"))?;
            return Ok(Enqueued::Created(created));
        }
        tx.rollback().await?;
        let sql = format!("SELECT {JOB_COLUMNS}, request_sha256 FROM jobs WHERE idempotency_key = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&job.idempotency_key).fetch_one(&self.pool).await?;
        let earlier = JobRow::from_row(&row)?;
        let same_request = row.try_get::<String, _>("request_sha256")? == job.request_sha256;
        Ok(if same_request { Enqueued::Existing(earlier) } else { Enqueued::KeyReused(earlier) })
    }

    async fn notify_workers(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
    ) -> sqlx::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)").bind(JOBS_CHANNEL).bind(id).execute(&mut **tx).await?;
        }
        Ok(())
    }

    pub async fn job(&self, id: &str) -> anyhow::Result<Option<JobRow>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(JobRow::from_row).transpose()?)
    }

    /// Jobs of one kind, newest first, optionally only those in `state`, at most
    /// `limit`, each with its epochs: two queries, however many jobs.
    pub async fn jobs(
        &self,
        kind: JobKind,
        state: Option<JobState>,
        limit: i64,
    ) -> anyhow::Result<Vec<(JobRow, Vec<EpochRow>)>> {
        const CHOSEN: &str = "FROM jobs WHERE kind = $1 AND ($2 = '' OR state = $2) \
            ORDER BY created_at DESC, id LIMIT $3";
        let state = state.map_or("", JobState::as_str);
        let jobs = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} {CHOSEN}")))
            .bind(kind.as_str())
            .bind(state)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let epochs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT job_id, trial, epoch, attempt, metrics FROM job_epochs \
             WHERE job_id IN (SELECT id {CHOSEN}) ORDER BY job_id, trial, epoch"
        )))
        .bind(kind.as_str())
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut by_job: std::collections::HashMap<String, Vec<EpochRow>> = std::collections::HashMap::new();
        for row in &epochs {
            by_job.entry(row.try_get("job_id")?).or_default().push(EpochRow::from_row(row)?);
        }
        jobs.iter()
            .map(|row| {
                let job = JobRow::from_row(row)?;
                let epochs = by_job.remove(&job.id).unwrap_or_default();
                Ok((job, epochs))
            })
            .collect()
    }

    /// Every recorded epoch of a job, in order (by trial, then epoch).
    pub async fn job_epochs(&self, id: &str) -> anyhow::Result<Vec<EpochRow>> {
        let rows = sqlx::query(
            "SELECT trial, epoch, attempt, metrics FROM job_epochs WHERE job_id = $1 ORDER BY trial, epoch",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(EpochRow::from_row).collect::<sqlx::Result<_>>()?)
    }

    /// Takes the oldest due queued job of `kind`, if any, under a fresh lease
    /// `token`; its progress starts again from nothing.
    pub async fn claim_job(
        &self,
        kind: JobKind,
        worker: &str,
        device: &str,
        token: &str,
    ) -> anyhow::Result<Option<Claim>> {
        let now = now_ms();
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = $1, worker = $2, \
             device = $3, heartbeat_at = $4, started_at = COALESCE(started_at, $4), updated_at = $4, \
             progress = NULL, pieces_done = 0 \
             WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE kind = $5 AND state = 'queued' \
             AND run_after <= $4 ORDER BY run_after, created_at, id LIMIT 1{lock}) RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .bind(worker)
            .bind(device)
            .bind(now)
            .bind(kind.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let claimed = row.as_ref().map(JobRow::from_row).transpose()?;
        if let Some(job) = &claimed {
            self.notify_followers(&mut tx, &job.id).await?;
        }
        tx.commit().await?;
        Ok(claimed.map(|job| Claim { job, token: token.to_owned() }))
    }

    /// Renews the lease and reports whether cancellation was asked for.
    pub async fn heartbeat(&self, id: &str, token: &str) -> anyhow::Result<LeaseCheck> {
        let row = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $3, updated_at = $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(id)
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(LeaseCheck::of(row.as_ref())?)
    }

    /// Records an epoch's metrics (of `trial`, 0 for a job that trains one model;
    /// replacing a redone epoch) and renews the lease, in one transaction; nothing
    /// is written when the lease is lost.
    pub async fn record_epoch(
        &self,
        id: &str,
        token: &str,
        trial: i64,
        epoch: i64,
        metrics: &str,
    ) -> anyhow::Result<LeaseCheck> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $3, updated_at = $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING attempt, cancel_requested",
        )
        .bind(id)
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(LeaseCheck::Lost) };
        sqlx::query(
            "INSERT INTO job_epochs (job_id, trial, epoch, attempt, metrics) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job_id, trial, epoch) DO UPDATE SET attempt = excluded.attempt, metrics = excluded.metrics",
        )
        .bind(id)
        .bind(trial)
        .bind(epoch)
        .bind(row.try_get::<i64, _>("attempt")?)
        .bind(metrics)
        .execute(&mut *tx)
        .await?;
        self.notify_followers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(LeaseCheck::of(Some(&row))?)
    }

    /// Records the hyperparameters (JSON) a job's training process planned for its
    /// corpus and renews the lease; nothing is written when the lease is lost.
    pub async fn record_hyperparameters(
        &self,
        id: &str,
        token: &str,
        hyperparameters: &str,
    ) -> anyhow::Result<LeaseCheck> {
        self.write_under_lease(id, token, LeasedColumn::Parameters, hyperparameters.to_owned()).await
    }

    /// Records the running epoch's progress (JSON) and renews the lease; nothing is
    /// written when the lease is lost.
    pub async fn record_progress(&self, id: &str, token: &str, progress: &str) -> anyhow::Result<LeaseCheck> {
        self.write_under_lease(id, token, LeasedColumn::Progress, progress.to_owned()).await
    }

    /// Records what a search has done (JSON) and renews the lease; nothing is
    /// written when the lease is lost.
    pub async fn record_search(&self, id: &str, token: &str, record: &str) -> anyhow::Result<LeaseCheck> {
        self.write_under_lease(id, token, LeasedColumn::SearchRecord, record.to_owned()).await
    }

    /// Records an evaluation's progress (pieces generated) and renews the lease;
    /// nothing is written when the lease is lost.
    pub async fn record_pieces_done(
        &self,
        id: &str,
        token: &str,
        pieces_done: i64,
    ) -> anyhow::Result<LeaseCheck> {
        self.write_under_lease(id, token, LeasedColumn::PiecesDone, pieces_done).await
    }

    /// Writes `value` into `column` of a running job whose lease `token` holds,
    /// renewing the lease and telling the job's followers.
    async fn write_under_lease<V>(
        &self,
        id: &str,
        token: &str,
        column: LeasedColumn,
        value: V,
    ) -> anyhow::Result<LeaseCheck>
    where
        V: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        let sql = format!(
            "UPDATE jobs SET {} = $3, heartbeat_at = $4, updated_at = $4 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING cancel_requested",
            column.name()
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(token)
            .bind(value)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(LeaseCheck::Lost) };
        self.notify_followers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(LeaseCheck::of(Some(&row))?)
    }

    /// Stores an evaluation with its model and marks its job succeeded, in one
    /// transaction guarded by the lease. False (and nothing written) when the
    /// lease is lost.
    pub async fn complete_evaluation(
        &self,
        id: &str,
        token: &str,
        model_id: &str,
        evaluation: &str,
    ) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', lease_token = NULL, finished_at = $3, updated_at = $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(token)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO model_evaluations (job_id, model_id, evaluation, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(model_id)
        .bind(evaluation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.notify_followers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// What an evaluation job stored (JSON), once it succeeded.
    pub async fn job_evaluation(&self, job_id: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT evaluation FROM model_evaluations WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("evaluation")).transpose()?)
    }

    /// Registers the trained model and marks the job succeeded, in one transaction
    /// guarded by the lease. False (and nothing written) when the lease is lost.
    pub async fn complete_job(&self, id: &str, token: &str, model: &ModelRow) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', model_id = $3, lease_token = NULL, \
             finished_at = $4, updated_at = $4 WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(token)
        .bind(&model.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        insert_model(&mut tx, &ModelRow { created_at: now, ..model.clone() }).await?;
        self.notify_followers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt: the job goes back to the queue `backoff_ms` from now,
    /// or, once it has used its attempts (or cancellation was asked for), ends as
    /// failed (or cancelled). The error is kept either way. `None` when the lease is lost.
    pub async fn fail_attempt(
        &self,
        id: &str,
        token: &str,
        error: &str,
        backoff_ms: i64,
    ) -> anyhow::Result<Option<JobState>> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET \
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled' \
                          WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END, \
             finished_at = CASE WHEN cancel_requested = 1 OR attempt >= max_attempts THEN $4 ELSE NULL END, \
             error = $3, run_after = $4 + $5, lease_token = NULL, heartbeat_at = NULL, updated_at = $4 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING state",
        )
        .bind(id)
        .bind(token)
        .bind(error)
        .bind(now)
        .bind(backoff_ms)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            self.notify_followers_now(id).await;
        }
        row.map(|row| {
            let state: String = row.try_get("state")?;
            JobState::parse(&state).ok_or_else(|| anyhow::anyhow!("unknown job state `{state}`"))
        })
        .transpose()
    }

    /// Ends a running job as failed or cancelled. False when the lease is lost.
    pub async fn end_job(
        &self,
        id: &str,
        token: &str,
        state: JobState,
        error: Option<&str>,
    ) -> anyhow::Result<bool> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE jobs SET state = $3, error = $4, lease_token = NULL, finished_at = $5, updated_at = $5 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(token)
        .bind(state.as_str())
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 1 {
            self.notify_followers_now(id).await;
        }
        Ok(updated.rows_affected() == 1)
    }

    /// Gives a running job back to the queue at once, without counting the attempt
    /// (a worker shutting down cleanly). False when the lease is lost.
    pub async fn release_job(&self, id: &str, token: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempt = attempt - 1, lease_token = NULL, worker = NULL, \
             device = NULL, heartbeat_at = NULL, run_after = $3, updated_at = $3 \
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(token)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.notify_workers(&mut tx, id).await?;
        self.notify_followers(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Cancels a queued job at once; asks a running one to stop (its worker sees
    /// the request at its next heartbeat). Returns the job as it now stands.
    pub async fn request_cancel(&self, id: &str) -> anyhow::Result<Option<JobRow>> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET \
             cancel_requested = CASE WHEN state = 'running' THEN 1 ELSE cancel_requested END, \
             finished_at = CASE WHEN state = 'queued' THEN $2 ELSE finished_at END, \
             state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, \
             updated_at = $2 WHERE id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.notify_followers_now(id).await;
        self.job(id).await
    }

    /// Running jobs whose last heartbeat is older than `lease_timeout_ms`: each goes
    /// back to the queue after `backoff(attempt)` ms, or ends as failed once it has
    /// used its attempts, or as cancelled when cancellation was asked for.
    pub async fn reap_expired_leases(
        &self,
        lease_timeout_ms: i64,
        backoff: impl Fn(i64) -> i64,
    ) -> anyhow::Result<Vec<Reaped>> {
        let now = now_ms();
        let expired = sqlx::query(
            "SELECT id, lease_token, attempt, max_attempts, cancel_requested FROM jobs \
             WHERE state = 'running' AND heartbeat_at < $1",
        )
        .bind(now - lease_timeout_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut reaped = Vec::new();
        for row in expired {
            let (id, token): (String, String) = (row.try_get("id")?, row.try_get("lease_token")?);
            let attempt: i64 = row.try_get("attempt")?;
            let (state, error) = if row.try_get::<i64, _>("cancel_requested")? != 0 {
                (JobState::Cancelled, None)
            } else if attempt >= row.try_get::<i64, _>("max_attempts")? {
                let error = format!("the worker stopped responding on each of {attempt} attempts");
                (JobState::Failed, Some(error))
            } else {
                (JobState::Queued, None)
            };
            let run_after = now + backoff(attempt);
            let finished_at = state.is_terminal().then_some(now);
            let mut tx = self.begin_write().await?;
            // Guarded by the token read above: a heartbeat or another reaper in between wins.
            let updated = sqlx::query(
                "UPDATE jobs SET state = $3, error = $4, run_after = $5, finished_at = $6, \
                 lease_token = NULL, worker = NULL, heartbeat_at = NULL, updated_at = $7 \
                 WHERE id = $1 AND lease_token = $2 AND state = 'running' AND heartbeat_at < $8",
            )
            .bind(&id)
            .bind(&token)
            .bind(state.as_str())
            .bind(error)
            .bind(run_after)
            .bind(finished_at)
            .bind(now)
            .bind(now - lease_timeout_ms)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 1 {
                self.notify_workers(&mut tx, &id).await?;
                self.notify_followers(&mut tx, &id).await?;
                reaped.push(Reaped { id, state, run_after });
            }
            tx.commit().await?;
        }
        Ok(reaped)
    }
}
