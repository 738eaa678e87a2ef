//! Evaluation jobs: a model generates pieces with a run of seeds, and they are
//! compared with its held-out files (`generate::evaluation`, as `fugue evaluate`
//! does). They wait in the same queue as training jobs, with the same leases,
//! heartbeats, retries and cancellation; every `fugue serve` runs one evaluation
//! worker, which generates through the server's own engine (batched with the
//! other sessions). The result is stored with the model, in the job's success.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::event_stream::Followed;
use super::retry::retry;
use super::supervisor::StopReason;
use super::worker::{fail, heartbeat, listen, reap};
use super::{CancelError, Jobs, SubmitError};
use crate::generate::Piece;
use crate::generate::admission::Refusal;
use crate::generate::compose::{ComposeError, Composer, OpenSession};
use crate::generate::engine::SessionEvent;
use crate::generate::evaluation::{music_evaluation, piece_request};
use crate::generate::request::GenerateRequest;
use crate::model::artifact::{MusicEvaluation, load_meta};
use crate::shared::rfc3339;
use crate::store::{Claim, Enqueued, JobKind, JobRow, JobState, JobWork, LeaseCheck, NewJob};

/// Most pieces one evaluation generates: one batch of the engine.
pub const MAX_EVALUATION_PIECES: u32 = 64;
/// Most notes asked of each piece (as `POST /v1/generate` allows).
pub const MAX_EVALUATION_NOTES: u32 = 2000;
/// How long the worker waits for the engine to have room for a piece.
const ENGINE_FULL_PAUSE: Duration = Duration::from_millis(200);
/// How often an idle evaluation worker that Postgres notifies of new jobs looks
/// for due ones all the same; a server keeps its database nearly idle when idle.
pub const NOTIFIED_POLL: Duration = Duration::from_secs(10);

/// `POST /v1/models/{id}/evaluations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRequest {
    /// Pieces to generate, 1 to 64 (default 20).
    #[schema(example = 20)]
    pub pieces: Option<u32>,
    /// Notes asked of each piece, 1 to 2000 (default 256).
    #[schema(example = 256)]
    pub notes: Option<u32>,
    /// The first piece's seed; piece i has seed + i (default 1, as `fugue evaluate`).
    #[schema(example = 1)]
    pub seed: Option<u64>,
}

/// An evaluation's settings, resolved, as its job keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationParameters {
    pub pieces: u32,
    pub notes_per_piece: u32,
    pub first_seed: u64,
}

impl EvaluationRequest {
    /// The settings with their defaults, each checked against its bound.
    fn resolve(&self) -> Result<EvaluationParameters, SubmitError> {
        let invalid =
            |field: &str, message: String| SubmitError::Invalid { field: field.to_owned(), message };
        let pieces = self.pieces.unwrap_or(20);
        if !(1..=MAX_EVALUATION_PIECES).contains(&pieces) {
            return Err(invalid("pieces", format!("must be 1 to {MAX_EVALUATION_PIECES}")));
        }
        let notes_per_piece = self.notes.unwrap_or(256);
        if !(1..=MAX_EVALUATION_NOTES).contains(&notes_per_piece) {
            return Err(invalid("notes", format!("must be 1 to {MAX_EVALUATION_NOTES}")));
        }
        let first_seed = self.seed.unwrap_or(1);
        if first_seed.checked_add(u64::from(pieces)).is_none() {
            return Err(invalid("seed", format!("must leave room for {pieces} seeds below 2^64")));
        }
        Ok(EvaluationParameters { pieces, notes_per_piece, first_seed })
    }
}

/// An evaluation job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"id": "0c4e…", "model_id": "default", "parameters": {"pieces": 20, "notes_per_piece": 256,
    "first_seed": 1}, "state": "running", "attempt": 1, "max_attempts": 3, "worker": "node-1:4242/evaluation",
    "cancel_requested": false, "pieces_done": 7, "error": null, "evaluation": null,
    "created_at": "2026-12-06T07:00:00.000Z", "started_at": "2026-12-06T07:00:01.000Z", "finished_at": null,
    "updated_at": "2026-12-06T07:00:09.000Z", "next_attempt_at": null}))]
pub struct EvaluationJob {
    pub id: String,
    /// The model evaluated.
    pub model_id: String,
    pub parameters: EvaluationParameters,
    pub state: JobState,
    /// Claims so far (more than 1 after a worker stopped or an attempt failed).
    pub attempt: i64,
    pub max_attempts: i64,
    /// The worker of the current or last attempt.
    pub worker: Option<String>,
    pub cancel_requested: bool,
    /// Pieces generated so far in the current attempt.
    pub pieces_done: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// What it found, once succeeded (also the model's `music_evaluation`).
    pub evaluation: Option<MusicEvaluation>,
    /// RFC 3339 times.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    /// When a requeued job becomes due again (after a failed attempt, with backoff).
    pub next_attempt_at: Option<String>,
}

impl EvaluationJob {
    /// The view of an evaluation job's row and its stored result (JSON). A row
    /// that does not decode is an error naming the job.
    fn of(row: JobRow, evaluation: Option<String>) -> anyhow::Result<EvaluationJob> {
        let JobWork::Evaluation { model_id } = row.work else {
            anyhow::bail!("job {} is not an evaluation job", row.id);
        };
        let parameters = serde_json::from_str(&row.parameters).map_err(|error| {
            anyhow::anyhow!("evaluation job {}: its parameters do not decode: {error}", row.id)
        })?;
        let evaluation = evaluation.map(|json| serde_json::from_str(&json)).transpose().map_err(|error| {
            anyhow::anyhow!("evaluation job {}: its result does not decode: {error}", row.id)
        })?;
        Ok(EvaluationJob {
            next_attempt_at: (row.state == JobState::Queued && row.attempt > 0)
                .then(|| rfc3339(row.run_after)),
            id: row.id,
            model_id,
            parameters,
            state: row.state,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            worker: row.worker,
            cancel_requested: row.cancel_requested,
            pieces_done: row.pieces_done,
            error: row.error,
            evaluation,
            created_at: rfc3339(row.created_at),
            started_at: row.started_at.map(rfc3339),
            finished_at: row.finished_at.map(rfc3339),
            updated_at: rfc3339(row.updated_at),
        })
    }
}

/// One message of `GET /v1/evaluation-jobs/{id}/events`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvaluationEvent {
    /// The job as it stands when following starts.
    Snapshot { job: Box<EvaluationJob> },
    /// The job changed state or attempt, or cancellation was asked for.
    State { state: JobState, attempt: i64, cancel_requested: bool, error: Option<String> },
    /// Another piece is generated (a new attempt counts from 0 again).
    Progress { attempt: i64, pieces_done: i64, pieces: u32 },
    /// The result, stored with the model; `end` follows.
    Evaluated { evaluation: Box<MusicEvaluation> },
    /// The stream ends after this: the job reached a final state.
    End { state: JobState },
}

impl Followed for EvaluationJob {
    type Event = EvaluationEvent;

    async fn read(jobs: &Jobs, id: &str) -> anyhow::Result<Option<EvaluationJob>> {
        jobs.evaluation(id).await
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn state(&self) -> JobState {
        self.state
    }

    fn snapshot(&self) -> EvaluationEvent {
        EvaluationEvent::Snapshot { job: Box::new(self.clone()) }
    }

    fn changes(&self, before: &EvaluationJob) -> Vec<EvaluationEvent> {
        let mut events = Vec::new();
        if (self.pieces_done, self.attempt) != (before.pieces_done, before.attempt) && self.pieces_done > 0 {
            events.push(EvaluationEvent::Progress {
                attempt: self.attempt,
                pieces_done: self.pieces_done,
                pieces: self.parameters.pieces,
            });
        }
        let state = |job: &EvaluationJob| (job.state, job.attempt, job.cancel_requested, job.error.clone());
        if state(self) != state(before) {
            events.push(EvaluationEvent::State {
                state: self.state,
                attempt: self.attempt,
                cancel_requested: self.cancel_requested,
                error: self.error.clone(),
            });
        }
        if let (Some(evaluation), None) = (&self.evaluation, &before.evaluation) {
            events.push(EvaluationEvent::Evaluated { evaluation: Box::new(evaluation.clone()) });
        }
        events
    }

    fn end(state: JobState) -> EvaluationEvent {
        EvaluationEvent::End { state }
    }
}

/// Why an evaluation was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("no model `{0}`")]
    NoModel(String),
    #[error(transparent)]
    Refused(#[from] SubmitError),
}

impl From<anyhow::Error> for EvaluateError {
    fn from(error: anyhow::Error) -> EvaluateError {
        EvaluateError::Refused(SubmitError::Internal(error))
    }
}

/// Submitting, reading and running evaluation jobs.
#[derive(Clone)]
pub struct Evaluations {
    pub jobs: Jobs,
    pub composer: Composer,
}

impl Evaluations {
    /// Checks the request and the model (it must exist and have held-out
    /// statistics to compare with), queues the job, wakes idle workers.
    pub async fn submit(
        &self,
        model_id: &str,
        request: &EvaluationRequest,
        max_queued: i64,
    ) -> Result<EvaluationJob, EvaluateError> {
        let parameters = request.resolve()?;
        let Some((dir, _)) = self.composer.models.path(model_id).await? else {
            return Err(EvaluateError::NoModel(model_id.to_owned()));
        };
        let meta = load_meta(dir).await?;
        if meta.held_out_statistics.is_none() {
            return Err(SubmitError::Invalid {
                field: "model".to_owned(),
                message: format!(
                    "model `{model_id}` has no held-out statistics to compare with (it was not trained on MIDI files)"
                ),
            }
            .into());
        }
        let parameters = serde_json::to_string(&parameters).map_err(anyhow::Error::from)?;
        let job = NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            name: format!("evaluation of {model_id}"),
            request_sha256: format!("{:x}", Sha256::digest(format!("{model_id}\n{parameters}"))),
            work: JobWork::Evaluation { model_id: model_id.to_owned() },
            parameters,
            idempotency_key: None,
            max_attempts: self.jobs.config.max_attempts,
        };
        let id = match self.jobs.store.enqueue_job(job, max_queued).await? {
            Enqueued::Created(row) => {
                self.jobs.wake.notify_waiters();
                row.id
            }
            Enqueued::QueueFull(queued) => return Err(SubmitError::QueueFull { queued }.into()),
            other => return Err(anyhow::anyhow!("an evaluation was enqueued as {other:?}").into()),
        };
        Ok(self.jobs.evaluation(&id).await?.ok_or_else(|| anyhow::anyhow!("job `{id}` vanished"))?)
    }

    /// Cancels a queued evaluation at once, or asks a running one to stop.
    pub async fn cancel(&self, id: &str) -> Result<EvaluationJob, CancelError> {
        self.jobs.request_cancel(id, JobKind::Evaluation).await?;
        let not_found = || CancelError::NotFound { kind: JobKind::Evaluation, id: id.to_owned() };
        self.jobs.evaluation(id).await?.ok_or_else(not_found)
    }
}

impl Jobs {
    /// An evaluation job; `None` for no job, or a job of another kind.
    pub async fn evaluation(&self, id: &str) -> anyhow::Result<Option<EvaluationJob>> {
        let Some(row) = self.store.job(id).await?.filter(|row| row.work.kind() == JobKind::Evaluation) else {
            return Ok(None);
        };
        let evaluation = match row.state {
            JobState::Succeeded => self.store.job_evaluation(id).await?,
            _ => None,
        };
        Ok(Some(EvaluationJob::of(row, evaluation)?))
    }
}

/// The evaluation worker of a server: claims evaluation jobs one at a time until
/// `shutdown` turns true (a job running then goes back to the queue).
///
/// With `reap_too`, it also requeues jobs of every kind whose worker stopped
/// heartbeating, every lease timeout: the server runs no training pool, whose
/// reaper would do it every quarter lease, and a job of a server that died must
/// not wait on a node that may not exist. (Slower than a pool's reaper, so that an
/// idle server keeps its database idle; a job is then requeued within two lease
/// timeouts.)
///
/// On Postgres (`postgres_url`) it waits for the queue's notifications and looks
/// for due jobs only every [`NOTIFIED_POLL`] besides (a job requeued with backoff
/// becomes due without a notification); elsewhere every `FUGUE_QUEUE_POLL_MS`.
pub async fn run_worker(
    evaluations: Evaluations,
    worker: String,
    postgres_url: Option<String>,
    reap_too: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let jobs = &evaluations.jobs;
    let mut helpers = tokio::task::JoinSet::new();
    if reap_too {
        helpers.spawn(reap(jobs.clone(), jobs.config.lease_timeout, shutdown.clone()));
    }
    let poll = match postgres_url {
        Some(url) => {
            helpers.spawn(listen(url, jobs.wake.clone(), shutdown.clone()));
            NOTIFIED_POLL.max(jobs.config.poll)
        }
        None => jobs.config.poll,
    };
    while !*shutdown.borrow() {
        let token = uuid::Uuid::new_v4().to_string();
        match jobs.store.claim_job(JobKind::Evaluation, &worker, "engine", &token).await {
            Ok(Some(claim)) => {
                tracing::info!(job = %claim.job.id, attempt = claim.job.attempt, "claimed an evaluation job");
                run_claim(&evaluations, claim, shutdown.clone()).await;
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "could not poll the job queue"),
        }
        tokio::select! {
            () = jobs.wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
    while helpers.join_next().await.is_some() {}
}

/// How an attempt at an evaluation ended.
enum Ending {
    Evaluated(Box<MusicEvaluation>),
    /// Told to stop (cancelled, shutting down, the lease lost).
    Stopped(StopReason),
    Failed(String),
}

async fn run_claim(evaluations: &Evaluations, claim: Claim, shutdown: watch::Receiver<bool>) {
    let Claim { job, token } = claim;
    let jobs = &evaluations.jobs;
    let JobWork::Evaluation { model_id } = &job.work else {
        fail(jobs, &job, &token, "an evaluation worker claimed a job of another kind").await;
        return;
    };
    let (stop, mut stop_reason) = watch::channel(None);
    let heartbeat = tokio::spawn(heartbeat(jobs.clone(), job.id.clone(), token.clone(), stop, shutdown));
    let ending = tokio::select! {
        ending = evaluate(evaluations, &job, model_id, &token) => ending,
        reason = stop_reason.wait_for(Option::is_some) => {
            Ending::Stopped(reason.ok().and_then(|reason| *reason).unwrap_or(StopReason::Shutdown))
        }
    };
    heartbeat.abort();
    let (store, id, patience) = (&jobs.store, job.id.as_str(), jobs.config.lease_timeout);
    match ending {
        Ending::Evaluated(evaluation) => {
            let json = serde_json::to_string(&evaluation).unwrap_or_default();
            if retry(patience, || store.complete_evaluation(id, &token, model_id, &json)).await == Some(true)
            {
                tracing::info!(job = id, model = %model_id, "evaluation job succeeded");
            } else {
                tracing::warn!(job = id, "lease lost before the evaluation could be stored; discarding it");
            }
        }
        Ending::Stopped(StopReason::Cancel) => {
            tracing::info!(job = id, "evaluation job cancelled");
            retry(patience, || store.end_job(id, &token, JobState::Cancelled, None)).await;
        }
        Ending::Stopped(StopReason::Shutdown) => {
            tracing::info!(job = id, "server shutting down; evaluation job back in the queue");
            retry(Duration::from_secs(5), || store.release_job(id, &token)).await;
        }
        Ending::Stopped(StopReason::LeaseLost) => {
            tracing::warn!(job = id, "lease lost; another worker owns this evaluation job now");
        }
        Ending::Failed(error) => {
            fail(jobs, &job, &token, &error).await;
        }
    }
}

/// Generates the job's pieces on the server's engine, recording each one under
/// the lease, and compares them with the model's held-out files.
async fn evaluate(evaluations: &Evaluations, job: &JobRow, model_id: &str, token: &str) -> Ending {
    match generate_and_compare(evaluations, job, model_id, token).await {
        Ok(ending) => ending,
        Err(error) => Ending::Failed(format!("{error:#}")),
    }
}

async fn generate_and_compare(
    evaluations: &Evaluations,
    job: &JobRow,
    model_id: &str,
    token: &str,
) -> anyhow::Result<Ending> {
    let parameters: EvaluationParameters = serde_json::from_str(&job.parameters)?;
    let composer = &evaluations.composer;
    let (dir, _) = composer
        .models
        .path(model_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no model `{model_id}` any more"))?;
    let meta = load_meta(dir.clone()).await?;
    let reference = meta
        .held_out_statistics
        .ok_or_else(|| anyhow::anyhow!("model `{model_id}` has no held-out statistics to compare with"))?;
    let index = composer.indexes.of(&dir).await?;
    let first = parameters.first_seed;
    let mut sessions = Vec::new();
    for seed in first..first + u64::from(parameters.pieces) {
        sessions.push(start(composer, model_id, parameters.notes_per_piece, seed).await?);
    }
    let mut pieces = Vec::new();
    for session in &mut sessions {
        pieces.push(finish(session).await?);
        let pieces_done = i64::try_from(pieces.len())?;
        let patience = evaluations.jobs.config.lease_timeout;
        match retry(patience, || evaluations.jobs.store.record_pieces_done(&job.id, token, pieces_done)).await
        {
            Some(LeaseCheck::Held { cancel_requested: false }) => {}
            Some(LeaseCheck::Held { cancel_requested: true }) => {
                return Ok(Ending::Stopped(StopReason::Cancel));
            }
            Some(LeaseCheck::Lost) | None => return Ok(Ending::Stopped(StopReason::LeaseLost)),
        }
    }
    let evaluation = music_evaluation(
        &pieces,
        reference,
        index.as_deref(),
        parameters.notes_per_piece,
        parameters.first_seed,
    );
    Ok(Ending::Evaluated(Box::new(evaluation)))
}

/// Starts one piece, waiting while every generation worker and the queue are full
/// (or it waited its longest in the queue).
async fn start(composer: &Composer, model_id: &str, notes: u32, seed: u64) -> anyhow::Result<OpenSession> {
    let request: GenerateRequest = serde_json::from_value(piece_request(Some(model_id), notes, seed))?;
    loop {
        match composer.start(request.clone()).await {
            Ok(session) => return Ok(session),
            Err(ComposeError::Busy(refused)) if refused.reason != Refusal::NoWorker => {
                tokio::time::sleep(ENGINE_FULL_PAUSE).await;
            }
            Err(error) => anyhow::bail!("piece {seed}: {error}"),
        }
    }
}

async fn finish(session: &mut OpenSession) -> anyhow::Result<Piece> {
    loop {
        match session.events.recv().await {
            Some(SessionEvent::Notes(_)) => {}
            Some(SessionEvent::Finished(piece)) => return Ok(piece),
            Some(SessionEvent::Failed(message)) => anyhow::bail!(message),
            None => anyhow::bail!("the generation worker stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(request: EvaluationRequest) -> Option<String> {
        match request.resolve() {
            Err(SubmitError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn each_setting_has_its_bound_and_its_default() {
        let defaults = EvaluationRequest::default().resolve().unwrap();
        assert_eq!(defaults, EvaluationParameters { pieces: 20, notes_per_piece: 256, first_seed: 1 });
        for pieces in [0, MAX_EVALUATION_PIECES + 1] {
            assert_eq!(
                field(EvaluationRequest { pieces: Some(pieces), ..Default::default() }).as_deref(),
                Some("pieces")
            );
        }
        assert_eq!(
            field(EvaluationRequest { pieces: Some(MAX_EVALUATION_PIECES), ..Default::default() }),
            None
        );
        for notes in [0, MAX_EVALUATION_NOTES + 1] {
            assert_eq!(
                field(EvaluationRequest { notes: Some(notes), ..Default::default() }).as_deref(),
                Some("notes")
            );
        }
        assert_eq!(
            field(EvaluationRequest { seed: Some(u64::MAX - 19), ..Default::default() }).as_deref(),
            Some("seed")
        );
        assert_eq!(field(EvaluationRequest { seed: Some(u64::MAX - 20), ..Default::default() }), None);
    }
}
