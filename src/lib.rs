//! fugue: train LSTM music models on MIDI corpora and serve compositions.
//!
//! Eight layers, top first; a module imports its own layer and those below it,
//! never one above (`tests/api/architecture.rs` holds the crate to this):
//! 1. HTTP and commands: `app`, `api`, `cli`, `observability`;
//! 2. services: `datasets`, `jobs`, `generate`;
//! 3. the trainer: `train`;
//! 4. networks, artifacts and their registry: `model`;
//! 5. representations: `repr`;
//! 6. analysis of what was made: `analysis`;
//! 7. MIDI and audio: `midi`, `audio`;
//! 8. storage, settings and leaf helpers: `store`, `objects`, `config`, `devices`, `shared`.

// 1. HTTP and commands
/// HTTP handlers, one file per resource, the HTTP error type and the OpenAPI document.
pub mod api;
/// Router, middleware, listener and graceful shutdown.
pub mod app;
/// The command line: its argument tree and the commands outside the server.
pub mod cli;
/// Tracing set-up and Prometheus metrics.
pub mod observability;

// 2. Services
/// Datasets: ingest of uploaded MIDI files and zips, reports, storage.
pub mod datasets;
/// Generation: requests, constrained decoding, the batching device engine.
pub mod generate;
/// Training jobs: the queue's workers and the job views clients follow.
pub mod jobs;

// 3. The trainer
/// Training: the loop, checkpoints, early stopping, the piano-roll benchmark.
pub mod train;

// 4. Networks, artifacts and their registry
/// Model networks, presets, hyperparameters, artifacts on disk and the model registry.
pub mod model;

// 5. Representations
/// Representations: Score ⇄ training sequences.
pub mod repr;

// 6. Analysis
/// Originality (copies of training pieces) and musical statistics of a piece.
pub mod analysis;

// 7. MIDI and audio
/// A score played through a General MIDI SoundFont, as a WAV stream.
pub mod audio;
/// MIDI files in and out, and the Score they are read into.
pub mod midi;

// 8. Storage, settings and leaf helpers
/// The settings a server or worker pool is built from.
pub mod config;
/// Compute devices: CPU and CUDA, as libtorch sees them.
pub mod devices;
/// Object storage: blobs, compositions, model artifacts, checkpoints; local or S3.
pub mod objects;
/// Leaf helpers every layer may use: time stamps, hashes, the shutdown signal.
pub mod shared;
/// Storage: Postgres or SQLite, the only place with SQL.
pub mod store;
