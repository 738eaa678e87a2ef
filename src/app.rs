//! The server: router, middleware stack, listener and graceful shutdown.
//!
//! [`App::build`] binds the listener (port 0 in tests) and exposes the bound address,
//! so tests start the real server and learn where it listens.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::error::{ApiError, json_error_layer};
use crate::api::{self, AppState, WEBSOCKET_AUTH_PROTOCOL};
use crate::config::Settings;
use crate::datasets::{BlobStore, Datasets, IngestLimits};
use crate::devices::DeviceReport;
use crate::devices::{default_generation_devices, usable_cores};
use crate::generate::admission::QueueLimits;
use crate::generate::compose::Composer;
use crate::generate::engine::{Engine, EngineConfig, ModelToLoad};
use crate::generate::metrics::EngineMetrics;
use crate::jobs::Jobs;
use crate::jobs::evaluation::Evaluations;
use crate::jobs::event_stream::JobChanges;
use crate::jobs::worker::{WorkerContext, run_pool, worker_devices, worker_name};
use crate::model::registry::ModelRegistry;
use crate::objects::BundleCache;
use crate::observability::{HttpMetrics, track_requests};
use crate::store::Store;

pub struct App {
    listener: TcpListener,
    router: Router,
    store: Store,
    /// The training workers (when the server runs any) and the evaluation worker,
    /// and the signal that stops them.
    workers: (watch::Sender<bool>, tokio::task::JoinSet<()>),
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl App {
    /// Opens the database (migrating it), builds the router and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let args = &settings;
        // The process's libtorch threads, for generation too (a server that trains
        // nothing would otherwise spin OpenMP threads on a shared machine).
        tch::set_num_threads(args.training.threads.max(1));
        let store = Store::open(&args.storage.database_url()).await?;
        let devices = DeviceReport::probe();
        if !devices.cuda_library_loaded {
            tracing::warn!("libtorch_cuda.so is not loaded: CUDA devices cannot be used by this build");
        }
        let storage = &args.storage;
        let objects = storage.objects()?;
        tracing::info!(location = objects.location(), "object store");
        let blobs = BlobStore::new(objects.clone()).with_grace(storage.blob_grace);
        let datasets = Datasets::new(store.clone(), blobs, IngestLimits::default());
        tokio::spawn(collect_garbage_every_minute(datasets.clone()));
        let mut jobs = Jobs::new(store.clone(), args.queue.clone());
        if let Some(url) = storage.postgres_url() {
            jobs.changes = JobChanges::listen(url);
        }
        let cache = BundleCache::new(
            objects.clone(),
            storage.data_dir.join("cache").join("models"),
            storage.model_file_cache_bytes,
        );
        let models =
            ModelRegistry::new(store.clone(), &storage.models_dir, objects, cache, &storage.default_model);
        let metrics = HttpMetrics::new()?;
        let engine_metrics = Arc::new(EngineMetrics::new(metrics.registry())?);
        let default_model = default_model(&models).await;
        let composer = Composer {
            engine: Engine::start(&engine_config(
                args,
                devices.cuda_device_count,
                default_model.clone(),
                engine_metrics,
            )),
            models: models.clone(),
            store: store.clone(),
            datasets: datasets.clone(),
            indexes: Default::default(),
        };
        if let Some(model) = default_model {
            // Its originality index too (a tenth of a second for the bundled
            // default's), in the background rather than in its first request.
            let indexes = composer.indexes.clone();
            tokio::spawn(async move {
                if let Err(error) = indexes.of(&model.model_dir).await {
                    tracing::warn!(
                        model = model.model_id,
                        error = format!("{error:#}"),
                        "could not read an originality index"
                    );
                }
            });
        }
        let evaluations = Evaluations { jobs: jobs.clone(), composer: composer.clone() };
        let state = AppState {
            store: store.clone(),
            datasets: datasets.clone(),
            metrics,
            models,
            jobs: jobs.clone(),
            evaluations: evaluations.clone(),
            composer,
            devices,
            max_queued_jobs: args.max_queued_jobs,
            audio: api::audio::AudioService::new(&args.audio),
        };
        let router = router(state, args);
        // Checked before binding: a database the training processes cannot share is refused.
        let worker_context = (args.training.workers > 0)
            .then(|| WorkerContext::new(jobs, storage, &args.training))
            .transpose()?;
        let listener =
            TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
        let (stop, stopped) = watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        let training_pool = worker_context.is_some();
        if let Some(context) = worker_context {
            let devices = worker_devices(&args.training);
            let postgres = storage.postgres_url();
            workers.spawn(run_pool(context, devices, args.training.workers, postgres, stopped.clone()));
        }
        // Every server evaluates models on its own engine, and reaps unless its
        // training pool does.
        let name = format!("{}/evaluation", worker_name());
        workers.spawn(crate::jobs::evaluation::run_worker(
            evaluations,
            name,
            storage.postgres_url(),
            !training_pool,
            stopped,
        ));
        Ok(App { listener, router, store, workers: (stop, workers) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address: this is a bug")
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), database = ?self.store.backend(), "listening");
        // Notes go out as many small WebSocket frames: without TCP_NODELAY, Nagle's
        // algorithm holds each one back until the client's delayed ACK (about 40 ms).
        let listener = self.listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
            }
        });
        axum::serve(listener, self.router).with_graceful_shutdown(shutdown).await.context("serving HTTP")?;
        let (stop, mut workers) = self.workers;
        let _ = stop.send(true);
        while workers.join_next().await.is_some() {}
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The default model, for every generation worker to load as it starts; none
/// when it cannot be found now (its first request will say why).
async fn default_model(models: &ModelRegistry) -> Option<ModelToLoad> {
    let model_id = models.default_id().await.ok()?;
    let (model_dir, _) = models.path(&model_id).await.ok()??;
    Some(ModelToLoad { model_id, model_dir })
}

fn engine_config(
    settings: &Settings,
    cuda_device_count: usize,
    default_model: Option<ModelToLoad>,
    metrics: Arc<EngineMetrics>,
) -> EngineConfig {
    let args = &settings.generation;
    let devices = if args.devices.is_empty() {
        let threads = usize::try_from(settings.training.threads).unwrap_or(1);
        default_generation_devices(cuda_device_count, usable_cores(), threads)
    } else {
        args.devices.clone()
    };
    EngineConfig {
        devices,
        max_sessions_per_worker: args.max_sessions_per_worker.max(1),
        max_fast_sessions_per_worker: args.max_fast_sessions_per_worker.max(1),
        queue: QueueLimits { max_waiting: args.queue_max_waiting, max_wait: args.queue_max_wait },
        cache_bytes: args.model_cache_bytes,
        realtime_lookahead: args.realtime_lookahead,
        weights: args.weights,
        preload: default_model.into_iter().collect(),
        metrics,
    }
}

fn router(state: AppState, args: &Settings) -> Router {
    let (api_routes, openapi) = api::routes().split_for_parts();
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .merge(api_routes)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback_service(ServeDir::new(&args.static_dir))
        // The body limit of the service layers is the one limit; axum's own 2 MB
        // default would undercut it.
        .layer(DefaultBodyLimit::disable())
        // Inside the router, so that the matched route template is known.
        .layer(middleware::from_fn_with_state(metrics, track_requests))
        .with_state(state);
    with_service_layers(routes, args)
}

/// The middleware every request passes, outermost first: it gets an id before it
/// is traced, and every answer, whichever layer produced it, leaves in the JSON
/// error shape.
fn with_service_layers(routes: Router, args: &Settings) -> Router {
    let api_keys: Arc<[String]> = args.api_keys.iter().filter(|key| !key.is_empty()).cloned().collect();
    let layers = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id =
                request.headers().get(REQUEST_ID).and_then(|value| value.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(middleware::map_response(json_error_layer))
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, args.request_timeout))
        .layer(middleware::from_fn_with_state(api_keys, require_api_key))
        // Innermost: it changes the request body type, which only the router accepts.
        .layer(RequestBodyLimitLayer::new(args.max_body_bytes));
    routes.layer(layers)
}

/// With API keys configured, every `/v1` path (known or not) needs a bearer token:
/// in `Authorization: Bearer <key>`, or, for browsers' WebSockets (which cannot set
/// headers), as the subprotocols `bearer, <key>` (`Sec-WebSocket-Protocol`), which
/// unlike a query parameter stays out of the request logs.
async fn require_api_key(State(keys): State<Arc<[String]>>, request: Request, next: Next) -> Response {
    let guarded = request.uri().path() == "/v1" || request.uri().path().starts_with("/v1/");
    if keys.is_empty() || !guarded {
        return next.run(request).await;
    }
    // Decided before awaiting: a borrow of the request must not live across `.await`.
    let authorized = {
        let header = |name| request.headers().get(name).and_then(|value| value.to_str().ok());
        let presented =
            header(header::AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer ")).or_else(|| {
                let mut offered = header(header::SEC_WEBSOCKET_PROTOCOL)?.split(',').map(str::trim);
                (offered.next() == Some(WEBSOCKET_AUTH_PROTOCOL)).then(|| offered.next()).flatten()
            });
        presented
            .is_some_and(|token| keys.iter().any(|key| constant_time_eq(key.as_bytes(), token.as_bytes())))
    };
    if authorized { next.run(request).await } else { ApiError::Unauthorized.into_response() }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Collects unreferenced blobs past their grace period (deletions collect at once
/// what is already due; this takes the rest).
async fn collect_garbage_every_minute(datasets: Datasets) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        let removed = datasets.collect_garbage().await;
        if removed > 0 {
            tracing::info!(removed, "unreferenced blobs collected");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::{get, post};
    use clap::Parser;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// Server settings as the command line would give them.
    fn serve_args(extra: &[&str]) -> Settings {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: crate::cli::args::ServeArgs,
        }
        Wrapper::parse_from(std::iter::once("fugue").chain(extra.iter().copied())).args.settings()
    }

    async fn call(router: Router, request: axum::http::Request<Body>) -> (StatusCode, Value) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_with_json_408() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
        let router = with_service_layers(slow, &serve_args(&["--request-timeout-secs", "5"]));
        let request = axum::http::Request::get("/slow").body(Body::empty()).unwrap();
        let (status, body) = call(router, request).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "request_timeout");
    }

    #[derive(serde::Deserialize)]
    struct Named {
        #[allow(dead_code, reason = "only its presence in the JSON matters here")]
        name: String,
    }

    fn json_route() -> Router {
        let route = Router::new().route("/named", post(|_: axum::Json<Named>| async { "ok" }));
        with_service_layers(route, &serve_args(&[]))
    }

    fn post_named(content_type: &str, body: &'static str) -> axum::http::Request<Body> {
        axum::http::Request::post("/named")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn malformed_json_answers_json_400() {
        let (status, body) = call(json_route(), post_named("application/json", "{\"name\": ")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(body["error"]["message"].as_str().unwrap().contains("EOF"), "{body}");
    }

    #[tokio::test]
    async fn json_of_the_wrong_shape_answers_json_422_naming_the_field() {
        let (status, body) = call(json_route(), post_named("application/json", "{\"name\": 7}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["message"].as_str().unwrap().contains("name"), "{body}");
    }

    #[tokio::test]
    async fn a_wrong_content_type_answers_json_415() {
        let (status, body) = call(json_route(), post_named("text/plain", "{\"name\": \"x\"}")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }

    #[tokio::test]
    async fn panics_answer_json_500_without_the_panic_message() {
        let panicking = Router::new().route(
            "/boom",
            get(|| async {
                if true {
                    panic!("secret detail");
                }
                "unreachable"
            }),
        );
        let router = with_service_layers(panicking, &serve_args(&[]));
        let (status, body) =
            call(router, axum::http::Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("secret detail"), "{body}");
    }

    #[test]
    fn keys_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
