//! Liveness, readiness and metrics: open even when API keys are required.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::generate::engine::{WorkerState, WorkerStatus};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The server is alive", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// True when every check passed.
    pub ready: bool,
    /// Each check by name: `ok`, or what is wrong.
    #[schema(example = json!({"database": "ok", "default_model": "ok"}))]
    pub checks: BTreeMap<String, String>,
    /// Each generation worker: its device, whether it runs, restarts after a
    /// failure, or died, and its live sessions.
    pub workers: Vec<WorkerStatus>,
}

/// Readiness: the database answers with the current schema, the default model is
/// present, and a generation worker runs (each worker's state is listed).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Some check failed; `checks` says which", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut checks = BTreeMap::new();
    checks.insert("database".to_owned(), database_check(&state).await);
    checks.insert("default_model".to_owned(), state.models.default_model_check().await);
    let workers = state.composer.engine.workers();
    let generation = if workers.iter().any(|worker| worker.state == WorkerState::Running) {
        "ok".to_owned()
    } else {
        let states: Vec<String> = workers
            .iter()
            .map(|worker| format!("{} {:?}", worker.device, worker.state).to_lowercase())
            .collect();
        format!("no generation worker is running ({})", states.join(", "))
    };
    checks.insert("generation".to_owned(), generation);
    let ready = checks.values().all(|outcome| outcome == "ok");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, checks, workers }))
}

async fn database_check(state: &AppState) -> String {
    let store = &state.store;
    match store.schema_version().await {
        Ok(version) if version == store.expected_schema_version() => "ok".to_owned(),
        Ok(version) => {
            format!("schema version {version}, this build expects {}", store.expected_schema_version())
        }
        Err(error) => {
            tracing::warn!(error = ?error, "readiness: database check failed");
            "database unreachable".to_owned()
        }
    }
}

/// Prometheus metrics: request counts and latency histograms per route.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
