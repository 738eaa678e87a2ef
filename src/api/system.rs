//! What this server runs on: version, database, devices and the default model.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::devices::DeviceReport;
use crate::store::Backend;

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemInfo {
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    pub database: Backend,
    /// The newest applied migration.
    pub schema_version: i64,
    pub devices: DeviceReport,
    /// Name of the model that serves when a request names none.
    #[schema(example = "default")]
    pub default_model: String,
}

/// Version, database backend, compute devices and the default model of this server.
#[utoipa::path(get, path = "/v1/system", tag = "system",
    responses(
        (status = 200, description = "This server", body = SystemInfo),
    ))]
pub async fn system(State(state): State<AppState>) -> Result<Json<SystemInfo>, ApiError> {
    Ok(Json(SystemInfo {
        version: env!("CARGO_PKG_VERSION"),
        database: state.store.backend(),
        schema_version: state.store.schema_version().await?,
        devices: state.devices.clone(),
        default_model: state.models.default_id().await?,
    }))
}
