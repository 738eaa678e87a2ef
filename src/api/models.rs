//! The model registry: list, read, delete, and choose the default.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::model::registry::{ModelDetail, ModelInfo, RegistryError};

/// List models: trained ones newest first, then the bundled ones.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses(
        (status = 200, description = "Every model", body = Vec<ModelInfo>),
    ))]
pub async fn list_models(State(state): State<AppState>) -> Result<Json<Vec<ModelInfo>>, ApiError> {
    Ok(Json(state.models.list().await?))
}

/// One model: metadata, per-epoch metrics, dataset and preset.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model", body = ModelDetail),
        (status = 404, description = "No such model", body = ErrorBody),
    ))]
pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelDetail>, ApiError> {
    state.models.get(&id).await?.map(Json).ok_or_else(|| ApiError::from(RegistryError::NotFound(id)))
}

/// Delete a trained model and its files.
///
/// Refused (409) for the default model, a model a generation session is using,
/// and bundled models.
#[utoipa::path(delete, path = "/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "Model id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The default, in use, or bundled", body = ErrorBody),
    ))]
pub async fn delete_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.models.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make a model the default: the one generation uses when a request names none.
#[utoipa::path(put, path = "/v1/models/{id}/default", tag = "models",
    params(("id" = String, Path, description = "Model id")),
    responses(
        (status = 200, description = "It is the default now", body = ModelDetail),
        (status = 404, description = "No such model", body = ErrorBody),
    ))]
pub async fn set_default_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelDetail>, ApiError> {
    state.models.set_default(&id).await?;
    state.models.get(&id).await?.map(Json).ok_or_else(|| ApiError::from(RegistryError::NotFound(id)))
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        match error {
            RegistryError::NotFound(id) => ApiError::NotFound(format!("no model `{id}`")),
            RegistryError::Conflict(message) => ApiError::Conflict(message),
            RegistryError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
