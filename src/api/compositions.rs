//! Stored compositions: list, read, download as MIDI, delete.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::accept::{Binary, OCTET_STREAM, label, preferred};
use super::error::{ApiError, ErrorBody};
use crate::generate::compose::Composition;

/// Most compositions listed at once.
pub const MAX_LISTED_COMPOSITIONS: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, newest first (1 to 500, default 50).
    limit: Option<i64>,
}

/// List compositions, newest first.
#[utoipa::path(get, path = "/v1/compositions", tag = "generate",
    params(ListQuery),
    responses(
        (status = 200, description = "The compositions, with their notes", body = Vec<Composition>),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 422, description = "`limit` out of range", body = ErrorBody),
    ))]
pub async fn list_compositions(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<Composition>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LISTED_COMPOSITIONS).contains(&limit) {
        return Err(ApiError::Validation {
            field: "limit".to_owned(),
            message: format!("must be 1 to {MAX_LISTED_COMPOSITIONS}"),
        });
    }
    Ok(Json(state.composer.recent(limit).await?))
}

/// One composition.
#[utoipa::path(get, path = "/v1/compositions/{id}", tag = "generate",
    params(("id" = String, Path, description = "Composition id")),
    responses(
        (status = 200, description = "The composition", body = Composition),
        (status = 404, description = "No such composition", body = ErrorBody),
    ))]
pub async fn get_composition(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Composition>, ApiError> {
    let (composition, _) = state.composer.composition(&id).await?.ok_or_else(|| no_composition(&id))?;
    Ok(Json(composition))
}

/// Delete a composition. Its MIDI file goes with it, unless another composition or
/// a dataset file holds the same bytes.
#[utoipa::path(delete, path = "/v1/compositions/{id}", tag = "generate",
    params(("id" = String, Path, description = "Composition id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such composition", body = ErrorBody),
    ))]
pub async fn delete_composition(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.composer.delete(&id).await? { Ok(StatusCode::NO_CONTENT) } else { Err(no_composition(&id)) }
}

/// Download a composition as a standard MIDI file.
///
/// Labelled `audio/midi`, or `application/octet-stream` when the `Accept` header
/// prefers that: the same bytes either way.
#[utoipa::path(get, path = "/v1/compositions/{id}/midi", tag = "generate",
    params(("id" = String, Path, description = "Composition id")),
    responses(
        (status = 200, description = "The MIDI file", content(
            (Binary = "audio/midi"),
            (Binary = "application/octet-stream"),
        )),
        (status = 404, description = "No such composition", body = ErrorBody),
    ))]
pub async fn composition_midi(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, hash) = state.composer.composition(&id).await?.ok_or_else(|| no_composition(&id))?;
    let mut response = midi_response(state.composer.midi(&hash).await?, &id);
    label(&mut response, preferred(&headers, &["audio/midi", OCTET_STREAM]));
    Ok(response)
}

/// A MIDI file as a download named after the composition.
pub fn midi_response(bytes: Vec<u8>, id: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/midi"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"fugue-{id}.mid\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

fn no_composition(id: &str) -> ApiError {
    ApiError::NotFound(format!("no composition `{id}`"))
}
