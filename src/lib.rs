//! fugue: train LSTM music models on MIDI corpora and serve compositions.

/// HTTP handlers, one file per resource, and the OpenAPI document.
pub mod api;
/// Router, middleware, listener and graceful shutdown.
pub mod app;
/// Side-by-side speed benchmarks (`fugue bench`).
pub mod bench;
/// `fugue train` and `fugue eval`.
pub mod cli;
/// Command line and `FUGUE_*` environment configuration.
pub mod config;
/// Datasets: ingest of uploaded MIDI files and zips, reports, storage.
pub mod datasets;
/// Compute devices: CPU and CUDA, as libtorch sees them.
pub mod devices;
/// The JSON error shape of every failed request.
pub mod error;
/// Generation: requests, constrained decoding, the batching device engine.
pub mod generate;
/// Training jobs: the queue's workers and the job views clients follow.
pub mod jobs;
/// MIDI files in and out, and the Score they are read into.
pub mod midi;
/// Model artifacts on disk and the model registry.
pub mod model;
/// Tracing set-up and Prometheus metrics.
pub mod observability;
/// Representations: Score ⇄ training sequences.
pub mod repr;
/// Leaf helpers every layer may use: time stamps, hashes, the shutdown signal.
pub mod shared;
/// Storage: Postgres or SQLite, the only place with SQL.
pub mod store;
/// Training: the loop, checkpoints, early stopping, the piano-roll benchmark.
pub mod train;
