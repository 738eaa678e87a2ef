//! Logs and metrics: tracing set-up, per-request ids, and Prometheus counters.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber with a `tracing` filter such as `info` or
/// `fugue=debug`. Logs go to stderr so that commands printing documents to stdout
/// (`fugue openapi`) stay clean.
pub fn init_tracing(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("FUGUE_LOG is not a valid filter: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
    Ok(())
}

/// Request counters and latency histograms, labelled by method, route template and status.
///
/// Each app owns its registry (no global recorder), so several servers can live in
/// one process, as they do in the tests.
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    pub fn new() -> anyhow::Result<Arc<HttpMetrics>> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("fugue_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("fugue_http_request_duration_seconds", "Time to answer an HTTP request")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Arc::new(HttpMetrics { registry, requests, latency }))
    }

    /// The registry `/metrics` renders, for other parts' metrics (the engine's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding into a Vec cannot fail: this is a bug");
        String::from_utf8(buffer).expect("the text encoder writes UTF-8: this is a bug")
    }
}

/// Middleware recording every request. Unknown paths share one label, `unmatched`,
/// so that scanners cannot blow up the label set.
pub async fn track_requests(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics.requests.with_label_values(&[&method, &route, &status]).inc();
    metrics.latency.with_label_values(&[&method, &route]).observe(started.elapsed().as_secs_f64());
    response
}
