//! Model evaluations: queue one for a model, read it, cancel it, follow it live.

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::ValidJson;
use crate::jobs::evaluation::{EvaluateError, EvaluationEvent, EvaluationJob, EvaluationRequest};
use crate::jobs::event_stream::follow;

/// Evaluate a model: queue an evaluation job.
///
/// The model generates `pieces` pieces of `notes` notes, with seeds `seed`,
/// `seed + 1`, …, and they are compared with its held-out files, feature by
/// feature (as `fugue evaluate` does). The job runs on a server's generation
/// engine; its progress follows on `GET /v1/evaluation-jobs/{id}/events`, and
/// its result becomes the model's `music_evaluation`. Only a model trained on
/// MIDI files (with held-out statistics) can be evaluated.
#[utoipa::path(post, path = "/v1/models/{id}/evaluations", tag = "models",
    params(("id" = String, Path, description = "Model id")),
    request_body(content = EvaluationRequest, example = json!({"pieces": 20, "notes": 256, "seed": 1})),
    responses(
        (status = 202, description = "Queued", body = EvaluationJob),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "`pieces` (1 to 64), `notes` (1 to 2000) or `seed` out of range, or a `model` without held-out statistics; `details.field` names it", body = ErrorBody),
        (status = 429, description = "The queue is full; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
pub async fn create_evaluation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ValidJson(request): ValidJson<EvaluationRequest>,
) -> Result<(StatusCode, Json<EvaluationJob>), ApiError> {
    let job = state.evaluations.submit(&id, &request, state.max_queued_jobs).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// One evaluation job, with its progress and, once done, its result.
#[utoipa::path(get, path = "/v1/evaluation-jobs/{id}", tag = "models",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = EvaluationJob),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn get_evaluation_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EvaluationJob>, ApiError> {
    state.jobs.evaluation(&id).await?.map(Json).ok_or_else(|| no_job(&id))
}

/// Cancel an evaluation job: a queued one at once, a running one within a
/// heartbeat (`FUGUE_HEARTBEAT_MS`).
#[utoipa::path(post, path = "/v1/evaluation-jobs/{id}/cancel", tag = "models",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancelled, or cancellation requested", body = EvaluationJob),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has already ended", body = ErrorBody),
    ))]
pub async fn cancel_evaluation_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<EvaluationJob>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.evaluations.cancel(&id).await?)))
}

/// Follow an evaluation job live.
///
/// A WebSocket (send the upgrade headers) or Server-Sent Events (`Accept:
/// text/event-stream`). Either way the messages are `EvaluationEvent`s as JSON:
/// a `snapshot` of the job, then `state` and `progress` (pieces generated)
/// messages as they happen, `evaluated` with the result, and `end` once the job
/// is over, after which the stream closes.
#[utoipa::path(get, path = "/v1/evaluation-jobs/{id}/events", tag = "models",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 101, description = "WebSocket: one `EvaluationEvent` per text message"),
        (status = 200, description = "Server-Sent Events: one `EvaluationEvent` per `data:` line", content_type = "text/event-stream", body = EvaluationEvent),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 406, description = "Neither a WebSocket upgrade nor `Accept: text/event-stream`", body = ErrorBody),
    ))]
pub async fn evaluation_job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let wanted = super::job_events::wanted(&headers, upgrade)?;
    let job = state.jobs.evaluation(&id).await?.ok_or_else(|| no_job(&id))?;
    Ok(super::job_events::respond(wanted, follow(state.jobs.clone(), job)))
}

/// How a refused evaluation answers over HTTP.
impl From<EvaluateError> for ApiError {
    fn from(error: EvaluateError) -> ApiError {
        match error {
            missing @ EvaluateError::NoModel(_) => ApiError::NotFound(missing.to_string()),
            EvaluateError::Refused(refused) => refused.into(),
        }
    }
}

fn no_job(id: &str) -> ApiError {
    ApiError::NotFound(format!("no evaluation job `{id}`"))
}
