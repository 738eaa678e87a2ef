//! Training jobs: submit (idempotently), list, read, cancel, and follow live over a
//! WebSocket or Server-Sent Events.

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::ValidJson;
use crate::jobs::event_stream::{JobEvent, follow};
use crate::jobs::{
    CancelError, MAX_IDEMPOTENCY_KEY_CHARS, MAX_LISTED_JOBS, Submission, SubmitError, TrainingJob,
    TrainingJobRequest,
};
use crate::store::JobState;

/// Submit a training job.
///
/// With an `Idempotency-Key` header, submitting the same request again returns
/// the job the first submission made (202, same id); the same key with a
/// different request is refused (409). Progress follows on
/// `GET /v1/training-jobs/{id}/events`.
#[utoipa::path(post, path = "/v1/training-jobs", tag = "training",
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 200 characters; makes retries safe")),
    request_body(content = TrainingJobRequest, example = json!({"dataset_id": "5b0f4c8e-…", "preset": "fugue", "hyperparameters": {"epochs": 20}, "name": "chorales"})),
    responses(
        (status = 202, description = "Queued (or the job this idempotency key made earlier)", body = TrainingJob),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with a different request", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid or out of range, or the dataset does not exist; `details.field` names it", body = ErrorBody),
        (status = 429, description = "The queue is full; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn create_training_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    ValidJson(request): ValidJson<TrainingJobRequest>,
) -> Result<(StatusCode, Json<TrainingJob>), ApiError> {
    let submission = Submission { idempotency_key: idempotency_key(&headers)?, request };
    let job = state.jobs.submit(&submission, state.max_queued_jobs).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// How a refused cancellation answers over HTTP.
impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> ApiError {
        match error {
            missing @ CancelError::NotFound { .. } => ApiError::NotFound(missing.to_string()),
            ended @ CancelError::Ended { .. } => ApiError::Conflict(ended.to_string()),
            CancelError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// How a refused submission answers over HTTP.
impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> ApiError {
        match error {
            SubmitError::Invalid { field, message } => ApiError::Validation { field, message },
            reused @ SubmitError::KeyReused { .. } => ApiError::Conflict(reused.to_string()),
            full @ SubmitError::QueueFull { .. } => {
                ApiError::TooManyRequests { message: full.to_string(), retry_after_secs: 60 }
            }
            SubmitError::Internal(error) => ApiError::Internal(error),
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let invalid = || ApiError::Validation {
        field: "Idempotency-Key".to_owned(),
        message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"),
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state.
    state: Option<JobState>,
    /// At most this many, newest first (1 to 500, default 100).
    limit: Option<i64>,
}

/// List training jobs, newest first.
#[utoipa::path(get, path = "/v1/training-jobs", tag = "training",
    params(ListQuery),
    responses(
        (status = 200, description = "The jobs", body = Vec<TrainingJob>),
        (status = 400, description = "A malformed query string (an unknown state, a limit that is not a number)", body = ErrorBody),
        (status = 422, description = "`limit` out of range", body = ErrorBody),
    ))]
pub async fn list_training_jobs(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<TrainingJob>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LISTED_JOBS).contains(&limit) {
        return Err(ApiError::Validation {
            field: "limit".to_owned(),
            message: format!("must be 1 to {MAX_LISTED_JOBS}"),
        });
    }
    Ok(Json(state.jobs.list(query.state, limit).await?))
}

/// One training job, with its metrics so far.
#[utoipa::path(get, path = "/v1/training-jobs/{id}", tag = "training",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = TrainingJob),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn get_training_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TrainingJob>, ApiError> {
    state.jobs.view(&id).await?.map(Json).ok_or_else(|| no_job(&id))
}

/// Cancel a training job.
///
/// A queued job is cancelled at once. A running one stops within one heartbeat
/// (`FUGUE_HEARTBEAT_MS`) and then reads `cancelled`; until then it shows
/// `cancel_requested`.
#[utoipa::path(post, path = "/v1/training-jobs/{id}/cancel", tag = "training",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancelled, or cancellation requested", body = TrainingJob),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has already ended", body = ErrorBody),
    ))]
pub async fn cancel_training_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TrainingJob>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.jobs.cancel(&id).await?)))
}

/// Follow a training job live.
///
/// A WebSocket (send the upgrade headers) or Server-Sent Events (`Accept:
/// text/event-stream`). Either way the messages are `JobEvent`s as JSON: first a
/// `snapshot` of the job, then `state` and `epoch` messages as they happen, and
/// `end` once the job is over, after which the stream closes.
#[utoipa::path(get, path = "/v1/training-jobs/{id}/events", tag = "training",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 101, description = "WebSocket: one `JobEvent` per text message"),
        (status = 200, description = "Server-Sent Events: one `JobEvent` per `data:` line", content_type = "text/event-stream", body = JobEvent),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 406, description = "Neither a WebSocket upgrade nor `Accept: text/event-stream`", body = ErrorBody),
    ))]
pub async fn training_job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let wanted = super::job_events::wanted(&headers, upgrade)?;
    let job = state.jobs.view(&id).await?.ok_or_else(|| no_job(&id))?;
    Ok(super::job_events::respond(wanted, follow(state.jobs.clone(), job)))
}

fn no_job(id: &str) -> ApiError {
    ApiError::NotFound(format!("no training job `{id}`"))
}
