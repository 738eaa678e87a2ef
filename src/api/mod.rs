//! The HTTP API: one file per resource; this module assembles the routes and the
//! OpenAPI document from the `#[utoipa::path]` annotations next to each handler.

mod accept;
pub mod audio;
mod compositions;
mod datasets;
pub mod error;
mod evaluations;
mod generate;
mod health;
mod job_events;
pub mod json;
mod models;
mod system;
mod training_jobs;

use std::sync::Arc;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ErrorBody;
use crate::datasets::Datasets;
use crate::devices::DeviceReport;
use crate::generate::compose::Composer;
use crate::jobs::Jobs;
use crate::jobs::evaluation::Evaluations;
use crate::model::registry::ModelRegistry;
use crate::observability::HttpMetrics;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub datasets: Datasets,
    pub metrics: Arc<HttpMetrics>,
    pub models: ModelRegistry,
    pub jobs: Jobs,
    /// Evaluation jobs: submitted here, run by the server's evaluation worker.
    pub evaluations: Evaluations,
    pub composer: Composer,
    pub devices: DeviceReport,
    /// Most queued jobs before submissions answer 429.
    pub max_queued_jobs: i64,
    /// SoundFonts and audio renders.
    pub audio: audio::AudioService,
}

/// The WebSocket subprotocol that carries an API key: `Sec-WebSocket-Protocol:
/// bearer, <key>` (browsers cannot set headers on a WebSocket).
pub const WEBSOCKET_AUTH_PROTOCOL: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fugue",
        description = "Train LSTM music models on MIDI corpora and serve compositions.\n\n\
            Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}`. When the \
            server runs with `FUGUE_API_KEYS`, every `/v1` route needs `Authorization: Bearer <key>`.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(
        ErrorBody,
        crate::jobs::event_stream::JobEvent,
        crate::jobs::evaluation::EvaluationEvent,
        generate::StreamMessage
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "system", description = "What this server runs on"),
        (name = "datasets", description = "Corpora of MIDI files to train on"),
        (name = "training", description = "Training jobs: queued, leased to workers, resumable, followable live"),
        (name = "models", description = "Trained and bundled models, the default, and their evaluations"),
        (name = "generate", description = "Compositions: generated over REST or streamed over a WebSocket, downloadable as MIDI or audio; the SoundFont for the page"),
    )
)]
struct ApiDoc;

/// Declares the bearer scheme that `/v1` routes list under `security`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every documented route, with its part of the OpenAPI document.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(system::system))
        .routes(routes!(datasets::create_dataset, datasets::list_datasets))
        .routes(routes!(datasets::get_dataset, datasets::delete_dataset))
        .routes(routes!(training_jobs::create_training_job, training_jobs::list_training_jobs))
        .routes(routes!(training_jobs::get_training_job))
        .routes(routes!(training_jobs::cancel_training_job))
        .routes(routes!(training_jobs::training_job_events))
        .routes(routes!(models::list_models))
        .routes(routes!(models::get_model, models::delete_model))
        .routes(routes!(models::set_default_model))
        .routes(routes!(evaluations::create_evaluation))
        .routes(routes!(evaluations::get_evaluation_job))
        .routes(routes!(evaluations::cancel_evaluation_job))
        .routes(routes!(evaluations::evaluation_job_events))
        .routes(routes!(generate::generate))
        .routes(routes!(generate::generate_stream))
        .routes(routes!(compositions::list_compositions))
        .routes(routes!(compositions::get_composition, compositions::delete_composition))
        .routes(routes!(compositions::composition_midi))
        .routes(routes!(audio::composition_audio))
        .routes(routes!(audio::soundfont))
}

/// The OpenAPI document served at `/openapi.json` and printed by `fugue openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = routes().split_for_parts().1;
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    require_bearer(&mut document);
    state_hyperparameter_ranges(&mut document);
    document
}

/// Every `/v1` operation takes the bearer key (when the server has keys) and may
/// answer 401: said here once, not on each handler.
fn require_bearer(document: &mut utoipa::openapi::OpenApi) {
    let unauthorized = ResponseBuilder::new()
        .description("Missing or unknown API key")
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        )
        .build();
    for (_, item) in document.paths.paths.iter_mut().filter(|(path, _)| path.starts_with("/v1/")) {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            operation.responses.responses.insert("401".to_owned(), unauthorized.clone().into());
        }
    }
}

/// The `minimum`/`maximum` of each hyperparameter, from the one table validation
/// uses, so the document and generated SDKs never disagree with the server.
fn state_hyperparameter_ranges(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};

    use crate::model::hyperparameters::{Low, ranges};
    let number = |value: f64| {
        if value.fract() == 0.0 { utoipa::Number::Int(value as isize) } else { utoipa::Number::Float(value) }
    };
    let Some(components) = document.components.as_mut() else { return };
    let Some(RefOr::T(Schema::Object(overrides))) = components.schemas.get_mut("HyperparameterOverrides")
    else {
        return;
    };
    for (field, range) in ranges() {
        let Some(RefOr::T(Schema::Object(property))) = overrides.properties.get_mut(field) else { continue };
        (property.minimum, property.exclusive_minimum) = match range.low {
            Low::From(low) => (Some(number(low)), None),
            Low::Above(low) => (None, Some(number(low))),
        };
        property.maximum = Some(number(range.high));
    }
}
