//! Datasets: upload MIDI files or zips, read the ingest report, list, delete.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::datasets::{CreateError, Dataset, IngestError, Upload};
use crate::store::DatasetDeletion;

/// Longest accepted dataset name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The multipart form of `POST /v1/datasets` (documentation only: the handler
/// reads the parts as they stream in).
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the multipart form in the OpenAPI document")]
pub struct DatasetUpload {
    /// 1 to 200 characters.
    name: String,
    /// One or more `.mid`/`.midi` files or `.zip` archives of them.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
    /// Keep drum parts (channel 10). Default false.
    include_drums: Option<bool>,
}

/// Upload a dataset.
///
/// Files that cannot be used are listed in `report.rejected` with their reasons;
/// the dataset is created from the rest. When no file is usable, nothing is
/// created and the answer is 422 with the report in `details`.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets",
    request_body(content = DatasetUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Created, with its ingest report", body = Dataset),
        (status = 400, description = "Not a multipart form", body = ErrorBody),
        (status = 413, description = "Request body over the limit", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid, a limit was exceeded, or no file was accepted", body = ErrorBody),
    ))]
pub async fn create_dataset(
    State(state): State<AppState>,
    mut form: Multipart,
) -> Result<(StatusCode, Json<Dataset>), ApiError> {
    let (mut name, mut uploads, mut include_drums) = (None, Vec::new(), false);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "name" => name = Some(text(field).await?),
            "include_drums" => include_drums = boolean(field).await?,
            "files" => {
                let file_name = field.file_name().unwrap_or("unnamed").to_owned();
                let bytes = field.bytes().await.map_err(multipart_error)?.to_vec();
                uploads.push(Upload { file_name, bytes });
            }
            other => return Err(invalid(other, "unknown form field (expected name, files, include_drums)")),
        }
    }
    let name = name.map(|name| name.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("name", &format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if uploads.is_empty() {
        return Err(invalid("files", "at least one file is required"));
    }
    let dataset = state.datasets.create(name, uploads, include_drums).await?;
    Ok((StatusCode::CREATED, Json(dataset)))
}

/// List datasets, newest first (without their reports).
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets",
    responses(
        (status = 200, description = "Every dataset", body = Vec<Dataset>),
    ))]
pub async fn list_datasets(State(state): State<AppState>) -> Result<Json<Vec<Dataset>>, ApiError> {
    Ok(Json(state.datasets.list().await?))
}

/// One dataset, with its ingest report.
#[utoipa::path(get, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The dataset", body = Dataset),
        (status = 404, description = "No such dataset", body = ErrorBody),
    ))]
pub async fn get_dataset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Dataset>, ApiError> {
    let dataset = state.datasets.get(&id).await?;
    dataset.map(Json).ok_or_else(|| ApiError::NotFound(format!("no dataset `{id}`")))
}

/// Delete a dataset and the files no other dataset uses.
#[utoipa::path(delete, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such dataset", body = ErrorBody),
        (status = 409, description = "A queued or running training job needs it", body = ErrorBody),
    ))]
pub async fn delete_dataset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.datasets.delete(&id).await? {
        DatasetDeletion::Deleted { .. } => Ok(StatusCode::NO_CONTENT),
        DatasetDeletion::NotFound => Err(ApiError::NotFound(format!("no dataset `{id}`"))),
        DatasetDeletion::InUse => Err(ApiError::Conflict(format!(
            "dataset `{id}` is used by a queued or running training job; cancel it first"
        ))),
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation { field: field.to_owned(), message: message.to_owned() }
}

async fn text(field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    field.text().await.map_err(|_| invalid(&name, "must be UTF-8 text"))
}

async fn boolean(field: Field<'_>) -> Result<bool, ApiError> {
    // Any case: generated clients send Python's `True`.
    match text(field).await?.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(invalid("include_drums", "must be true or false")),
    }
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(error.body_text())
    } else {
        ApiError::BadRequest { code: "invalid_multipart", message: error.body_text(), details: None }
    }
}

impl From<CreateError> for ApiError {
    fn from(error: CreateError) -> ApiError {
        match error {
            CreateError::Refused(refusal) => {
                let limit = match &refusal {
                    IngestError::TooManyFiles { limit } | IngestError::TooManyEntries { limit, .. } => {
                        *limit as u64
                    }
                    IngestError::TooManyBytes { limit } => *limit,
                };
                ApiError::Unprocessable {
                    code: "limit_exceeded",
                    message: refusal.to_string(),
                    details: json!({ "field": "files", "limit": limit }),
                }
            }
            CreateError::NothingAccepted(report) => ApiError::Unprocessable {
                code: "nothing_accepted",
                message: "no file was accepted; the report says why".to_owned(),
                details: json!({ "field": "files", "report": report }),
            },
            CreateError::Internal(error) => ApiError::Internal(error),
        }
    }
}
