//! The engine's Prometheus metrics, named in the manner of text-generation
//! servers: queue, batches and steps, time to first note, inter-note latency,
//! realtime lateness, sessions by state, loaded models, refusals and restarts.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// A generation worker's labels: its device, and its place among the workers
/// (a CPU has several workers of one device).
pub const WORKER_LABELS: [&str; 2] = ["device", "worker"];

/// Latency buckets, in seconds: from a millisecond to a minute.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

pub struct EngineMetrics {
    /// Requests waiting for capacity.
    pub queue_size: prometheus::IntGauge,
    pub queue_seconds: Histogram,
    /// Rows of one batched step (padding not counted).
    pub batch_size: Histogram,
    pub step_seconds: Histogram,
    /// From the request's arrival to its first note, by pacing.
    pub time_to_first_note: HistogramVec,
    /// Between one note and the next of a session, as generated.
    pub inter_note_seconds: Histogram,
    /// How late a realtime note reached its listener (0 when on time).
    pub realtime_lateness: Histogram,
    /// Sessions by state: `live` (on a worker), `parked` (realtime, ahead of its
    /// listener), `queued` (waiting for capacity).
    pub sessions: IntGaugeVec,
    pub loaded_models: IntGaugeVec,
    pub loaded_model_bytes: IntGaugeVec,
    /// Refused requests by reason.
    pub refusals: IntCounterVec,
    pub worker_restarts: IntCounterVec,
    /// 1 while a worker runs, 0 while it restarts or after it died; by device.
    pub worker_up: IntGaugeVec,
    /// What admission by projected load reads: tokens/s one worker writes, tokens/s
    /// a listener needs (each 0 until measured), listeners admitted.
    pub load: prometheus::GaugeVec,
}

impl EngineMetrics {
    /// The metrics, registered in `registry` (which `/metrics` renders).
    pub fn new(registry: &Registry) -> anyhow::Result<EngineMetrics> {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        };
        let metrics = EngineMetrics {
            queue_size: prometheus::IntGauge::new(
                "fugue_generate_queue_size",
                "Generation requests waiting for capacity",
            )?,
            queue_seconds: histogram(
                "fugue_generate_queue_seconds",
                "Time a generation request waited for capacity",
                LATENCY_BUCKETS.to_vec(),
            )?,
            batch_size: histogram(
                "fugue_generate_batch_size",
                "Sessions stepped together in one batched model step",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            )?,
            step_seconds: histogram(
                "fugue_generate_step_seconds",
                "Duration of one batched model step, masks and sampling included",
                LATENCY_BUCKETS.to_vec(),
            )?,
            time_to_first_note: HistogramVec::new(
                HistogramOpts::new(
                    "fugue_generate_time_to_first_note_seconds",
                    "From a generation request's arrival to its first note",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["pacing"],
            )?,
            inter_note_seconds: histogram(
                "fugue_generate_inter_note_seconds",
                "Time between a session's consecutive notes, as generated",
                LATENCY_BUCKETS.to_vec(),
            )?,
            realtime_lateness: histogram(
                "fugue_generate_realtime_lateness_seconds",
                "How late a realtime note reached its listener",
                LATENCY_BUCKETS.to_vec(),
            )?,
            sessions: IntGaugeVec::new(
                Opts::new("fugue_generate_sessions", "Generation sessions by worker and state"),
                &["worker", "state"],
            )?,
            loaded_models: IntGaugeVec::new(
                Opts::new("fugue_generate_loaded_models", "Models loaded on a generation worker"),
                &WORKER_LABELS,
            )?,
            loaded_model_bytes: IntGaugeVec::new(
                Opts::new(
                    "fugue_generate_loaded_model_bytes",
                    "Parameter bytes loaded on a generation worker",
                ),
                &WORKER_LABELS,
            )?,
            refusals: IntCounterVec::new(
                Opts::new(
                    "fugue_generate_refusals_total",
                    "Generation requests refused for capacity, by reason",
                ),
                &["reason"],
            )?,
            worker_restarts: IntCounterVec::new(
                Opts::new(
                    "fugue_generate_worker_restarts_total",
                    "Generation workers restarted after a failure",
                ),
                &WORKER_LABELS,
            )?,
            worker_up: IntGaugeVec::new(
                Opts::new("fugue_generate_worker_up", "1 while a generation worker runs"),
                &WORKER_LABELS,
            )?,
            load: prometheus::GaugeVec::new(
                Opts::new(
                    "fugue_generate_load",
                    "Admission by projected load: worker tokens/s, listener tokens/s, listeners",
                ),
                &["figure"],
            )?,
        };
        registry.register(Box::new(metrics.queue_size.clone()))?;
        registry.register(Box::new(metrics.queue_seconds.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.step_seconds.clone()))?;
        registry.register(Box::new(metrics.time_to_first_note.clone()))?;
        registry.register(Box::new(metrics.inter_note_seconds.clone()))?;
        registry.register(Box::new(metrics.realtime_lateness.clone()))?;
        registry.register(Box::new(metrics.sessions.clone()))?;
        registry.register(Box::new(metrics.loaded_models.clone()))?;
        registry.register(Box::new(metrics.loaded_model_bytes.clone()))?;
        registry.register(Box::new(metrics.refusals.clone()))?;
        registry.register(Box::new(metrics.worker_restarts.clone()))?;
        registry.register(Box::new(metrics.worker_up.clone()))?;
        registry.register(Box::new(metrics.load.clone()))?;
        Ok(metrics)
    }

    /// Metrics nobody reads (benchmarks and commands run an engine of their own).
    pub fn unregistered() -> EngineMetrics {
        EngineMetrics::new(&Registry::new()).expect("fresh metrics register in a fresh registry")
    }
}
