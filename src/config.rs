//! Command line and environment configuration.
//!
//! Every flag can also be given as an environment variable (`FUGUE_*`, plus the
//! conventional `DATABASE_URL`); a flag on the command line wins over the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "fugue", version, about = "Train music models on MIDI corpora and serve compositions")]
pub struct Cli {
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the browser page and the generation engine.
    Serve(ServeArgs),
    /// Run training workers alone, taking jobs from the shared queue (scale-out).
    Worker(WorkerArgs),
    /// Train a model on a folder of MIDI files or a benchmark JSON, with progress.
    Train(Box<TrainArgs>),
    /// Generate a composition from the command line and write it as a MIDI file.
    Generate(GenerateArgs),
    /// Score a model on a benchmark split; prints one JSON line.
    Eval(EvalArgs),
    /// Print the tokens a token preset makes of MIDI files, as JSON.
    Tokens(TokensArgs),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Run the side-by-side speed benchmarks.
    Bench(BenchArgs),
    /// List the compute devices libtorch sees, and whether CUDA support is loaded.
    Devices,
    /// One attempt at a claimed training job, in a process of its own; started by a
    /// training worker, never by hand.
    #[command(hide = true)]
    TrainAttempt(TrainAttemptArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[arg(long, value_enum)]
    pub preset: crate::model::presets::Preset,
    /// A folder of MIDI files (and zips), or a piano-roll benchmark JSON with
    /// `train` and `valid` splits.
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// An uploaded dataset's id, read from the database and data dir (see `--data-dir`).
    #[arg(long)]
    pub dataset: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Where the model artifact is written (replaced atomically when it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Device to train on: `cpu` or `cuda:N`. Default: `cuda:0` when present, else `cpu`.
    #[command(flatten)]
    pub torch: TorchArgs,
    /// Checkpoints go here; a run finds its checkpoint and resumes. Default: `<out>.checkpoint`.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: HyperparameterOverrides,
}

/// Where and how libtorch computes, for the commands that run models.
#[derive(Debug, Clone, Args)]
pub struct TorchArgs {
    /// `cpu` or `cuda:N`. Default: `cuda:0` when present, else `cpu`.
    #[arg(long, env = "FUGUE_DEVICE")]
    pub device: Option<crate::devices::DeviceName>,
    /// libtorch CPU threads. 1 avoids OpenMP spin-waiting when the machine is shared.
    #[arg(long, env = "FUGUE_TORCH_THREADS", default_value_t = 1)]
    pub threads: i32,
}

/// Any preset hyperparameter, by name: flags of `fugue train`, and the
/// `hyperparameters` object of `POST /v1/training-jobs`. Each has a range
/// ([`HyperparameterOverrides::validate`]); unknown names are refused.
#[derive(Debug, Clone, Default, PartialEq, Args, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HyperparameterOverrides {
    /// 1 to 1000.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// 1 to 1024.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Above 0, at most 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Multiplies the learning rate after every epoch: above 0, at most 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate_decay: Option<f64>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<crate::model::optim::OptimizerKind>,
    /// 0 to 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Decay of the weights' moving average used for validation and the saved
    /// model: 0 (off) to 0.9999.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_averaging: Option<f64>,
    /// 1 to 8.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<i64>,
    /// 1 to 4096.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<i64>,
    /// 1 to 4096 (piano-roll NADE only).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nade_hidden_size: Option<i64>,
    /// 1 to 2048.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<i64>,
    /// 2 to 2048.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// 0 to 0.9.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// DropConnect on the LSTMs' recurrent weights: 0 to 0.9.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrent_dropout: Option<f64>,
    /// Frames in the position cycle the piano-roll LSTM and NADE read (0 for none): 0 to 64.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_period: Option<i64>,
    /// 0 to 12 semitones.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transpose: Option<u8>,
    /// 0 to 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_forcing: Option<f64>,
    /// 0 to 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_forcing_decay: Option<f64>,
    /// 0 to 10.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_gamma: Option<f64>,
    /// 0 to 1.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_alpha: Option<f64>,
    /// 1 to 1000 epochs.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    /// Above 0, at most 0.5.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_fraction: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<crate::repr::pianoroll::Grid>,
}

/// Where a hyperparameter's allowed values start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Low {
    From(f64),
    Above(f64),
}

impl Low {
    fn admits(self, value: f64) -> bool {
        match self {
            Low::From(low) => value >= low,
            Low::Above(low) => value > low,
        }
    }
}

impl std::fmt::Display for Low {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Low::From(low) => write!(f, "from {low}"),
            Low::Above(low) => write!(f, "above {low}"),
        }
    }
}

/// Every ranged hyperparameter: (name, lowest, highest allowed). Validation, the
/// `minimum`/`maximum` of the OpenAPI document and the README's limits table all
/// follow this one table (a test holds the README and the document to it).
pub const HYPERPARAMETER_RANGES: [(&str, Low, f64); 21] = [
    ("epochs", Low::From(1.0), 1000.0),
    ("batch_size", Low::From(1.0), 1024.0),
    ("learning_rate", Low::Above(0.0), 1.0),
    ("learning_rate_decay", Low::Above(0.0), 1.0),
    ("weight_decay", Low::From(0.0), 1.0),
    ("weight_averaging", Low::From(0.0), 0.9999),
    ("layers", Low::From(1.0), 8.0),
    ("hidden_size", Low::From(1.0), 4096.0),
    ("nade_hidden_size", Low::From(1.0), 4096.0),
    ("embedding_size", Low::From(1.0), 2048.0),
    ("window", Low::From(2.0), 2048.0),
    ("dropout", Low::From(0.0), 0.9),
    ("recurrent_dropout", Low::From(0.0), 0.9),
    ("position_period", Low::From(0.0), 64.0),
    ("transpose", Low::From(0.0), 12.0),
    ("teacher_forcing", Low::From(0.0), 1.0),
    ("teacher_forcing_decay", Low::From(0.0), 1.0),
    ("focal_gamma", Low::From(0.0), 10.0),
    ("focal_alpha", Low::From(0.0), 1.0),
    ("patience", Low::From(1.0), 1000.0),
    ("validation_fraction", Low::Above(0.0), 0.5),
];

/// A hyperparameter outside its range: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OutOfRange {
    pub field: &'static str,
    pub message: String,
}

impl HyperparameterOverrides {
    /// The first value outside its range in [`HYPERPARAMETER_RANGES`], if any.
    pub fn validate(&self) -> Result<(), OutOfRange> {
        // By name, as the request and the table spell them. A float that is not
        // finite serializes as null: present but not a number, so refused.
        let values = serde_json::to_value(self).unwrap_or_default();
        for &(field, low, high) in &HYPERPARAMETER_RANGES {
            let Some(value) = values.get(field) else { continue };
            let allowed = value.as_f64().is_some_and(|value| low.admits(value) && value <= high);
            if !allowed {
                let shown =
                    if value.is_null() { "not a finite number".to_owned() } else { value.to_string() };
                return Err(OutOfRange {
                    field,
                    message: format!("must be {low} up to {high}, got {shown}"),
                });
            }
        }
        Ok(())
    }

    /// The preset's hyperparameters with these overrides in place.
    pub fn apply_to(
        &self,
        mut hp: crate::model::presets::Hyperparameters,
    ) -> crate::model::presets::Hyperparameters {
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(value) = self.$field { hp.$field = value; })* };
        }
        set!(
            epochs,
            batch_size,
            learning_rate,
            learning_rate_decay,
            optimizer,
            weight_decay,
            weight_averaging,
            layers,
            hidden_size,
            nade_hidden_size,
            embedding_size,
            window,
            dropout,
            recurrent_dropout,
            position_period,
            transpose,
            teacher_forcing,
            teacher_forcing_decay,
            focal_gamma,
            focal_alpha,
            patience,
            validation_fraction,
            seed,
            grid
        );
        hp
    }
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The model artifact directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The MIDI file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Length in tokens, or frames for piano-roll models.
    #[arg(long, default_value_t = 64)]
    pub length: u32,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tempo of the written file, in beats per minute.
    #[arg(long, default_value_t = 100.0)]
    pub tempo_bpm: f64,
    #[command(flatten)]
    pub torch: TorchArgs,
}

/// Longest `fugue generate --length`.
pub const MAX_GENERATE_LENGTH: u32 = 10_000;

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The model artifact directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A piano-roll benchmark JSON (`train`, `valid`, `test`).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    #[command(flatten)]
    pub torch: TorchArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    /// A preset with a token representation: fugue, play-bach or classical-piano.
    #[arg(long, value_enum)]
    pub preset: crate::model::presets::Preset,
    /// MIDI files, or folders of them (`.mid`, `.midi`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Split {
    Train,
    Valid,
    Test,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Dataset ingest (read + every representation): files/s and MB/s, and the
    /// tutorials' music21 loop side by side.
    Ingest(IngestBenchArgs),
    /// Training steps of an embedding → LSTM → dense next-token model: samples/s
    /// next to the plain PyTorch loop (`pytorch_reference.py train`) in the same run.
    Train(TrainBenchArgs),
    /// Generation steps of a 2×512 next-token model at several batch sizes: the
    /// hand-written LSTM cell against libtorch's fused op, the engine serving the
    /// bundled model, and the PyTorch reference (`gen`, `gen-window`) in the same run.
    Generate(GenerateBenchArgs),
}

/// The PyTorch reference run side by side, and libtorch's CPU threads for both.
#[derive(Debug, Clone, Args)]
pub struct ReferenceArgs {
    #[arg(long, env = "FUGUE_TORCH_THREADS", default_value_t = 1)]
    pub threads: i32,
    /// Python with torch 2.13.0, to run the reference in the same run.
    #[arg(long, env = "FUGUE_BENCH_PYTHON")]
    pub python: Option<PathBuf>,
    #[arg(long = "reference", default_value = "../shared/bench/pytorch_reference.py")]
    pub script: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateBenchArgs {
    /// Comma-separated batch sizes (streams stepped together).
    #[arg(long, default_value = "1,4,16,64", value_delimiter = ',')]
    pub batches: Vec<i64>,
    #[arg(long, default_value_t = 2)]
    pub layers: i64,
    #[arg(long, default_value_t = 512)]
    pub hidden: i64,
    #[arg(long, default_value_t = 130)]
    pub vocab: i64,
    #[arg(long, default_value_t = 64)]
    pub embed: i64,
    /// Timed steps per measurement (after 20 warm-up steps).
    #[arg(long, default_value_t = 300)]
    pub steps: u32,
    /// The model the engine serves for its end-to-end figure.
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TrainBenchArgs {
    #[arg(long, default_value_t = 64)]
    pub batch: i64,
    /// Window length of one sample.
    #[arg(long, default_value_t = 40)]
    pub seq: i64,
    /// Comma-separated layers x hidden sizes to measure, e.g. `2x300,2x512`.
    #[arg(long, default_value = "2x300,2x512", value_delimiter = ',')]
    pub sizes: Vec<String>,
    #[arg(long, default_value_t = 130)]
    pub vocab: i64,
    #[arg(long, default_value_t = 64)]
    pub embed: i64,
    /// Timed training steps per size (after 5 warm-up steps).
    #[arg(long, default_value_t = 25)]
    pub steps: u32,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// Folder of MIDI files to ingest.
    #[arg(long, env = "FUGUE_BENCH_DATA", default_value = "../shared/data/bach-chorales-midi")]
    pub data: PathBuf,
    /// Timed runs; the best is reported.
    #[arg(long, env = "FUGUE_BENCH_REPEAT", default_value_t = 5)]
    pub repeat: u32,
    /// Python with music21 installed, to time the tutorials' ingest in the same run.
    #[arg(long, env = "FUGUE_BENCH_MUSIC21_PYTHON")]
    pub music21_python: Option<PathBuf>,
    /// How many of the files music21 parses (it manages a few per second).
    #[arg(long, env = "FUGUE_BENCH_MUSIC21_FILES", default_value_t = 60)]
    pub music21_files: usize,
}

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log line format.
    #[arg(long, env = "FUGUE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, for example `info` or `fugue=debug,tower_http=info`.
    #[arg(long, env = "FUGUE_LOG", default_value = "info", global = true)]
    pub log: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where fugue keeps its state.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the embedded database, datasets, checkpoints and compositions.
    #[arg(long, env = "FUGUE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`. Unset: `sqlite://<data dir>/fugue.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of bundled and registered model artifacts.
    #[arg(long, env = "FUGUE_MODELS_DIR", default_value = "./models")]
    pub models_dir: PathBuf,
    /// Name of the model in the models directory that serves when a request names none.
    #[arg(long, env = "FUGUE_DEFAULT_MODEL", default_value = "default")]
    pub default_model: String,
}

impl StorageArgs {
    /// The database URL when it is Postgres (for LISTEN/NOTIFY).
    pub fn postgres_url(&self) -> Option<String> {
        self.database_url
            .clone()
            .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }

    /// The database URL in force: the configured one, else the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("fugue.db").display()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, env = "FUGUE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Directory of the browser page served at `/`.
    #[arg(long, env = "FUGUE_STATIC_DIR", default_value = "./static")]
    pub static_dir: PathBuf,
    /// Comma-separated bearer tokens. When set, every `/v1` route requires one.
    #[arg(long, env = "FUGUE_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "FUGUE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered 408, in seconds.
    /// WebSocket streams are not bound by it once upgraded.
    #[arg(long, env = "FUGUE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    #[command(flatten)]
    pub workers: TrainWorkerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub generation: GenerationArgs,
    /// Most jobs waiting in the queue; a submission over it answers 429.
    #[arg(long, env = "FUGUE_MAX_QUEUED_JOBS", default_value_t = 100)]
    pub max_queued_jobs: i64,
}

/// The generation engine: its devices and limits.
#[derive(Debug, Clone, Args)]
pub struct GenerationArgs {
    /// Comma-separated devices, one generation worker each. Default: every CUDA
    /// device, else the CPU.
    #[arg(long, env = "FUGUE_GENERATE_DEVICES", value_delimiter = ',')]
    pub generate_devices: Vec<crate::devices::DeviceName>,
    /// Live generation sessions per worker; more answer 429.
    #[arg(long, env = "FUGUE_MAX_SESSIONS_PER_WORKER", default_value_t = 64)]
    pub max_sessions_per_worker: usize,
    /// Model parameters each generation worker keeps loaded, in MiB (least recently used go first).
    #[arg(long, env = "FUGUE_MODEL_CACHE_MB", default_value_t = 1024)]
    pub model_cache_mb: u64,
}

/// `fugue worker`: training workers without the HTTP server, sharing the database
/// and the data dir (datasets, checkpoints, models) with the servers.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub workers: TrainWorkerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// How many training workers run here, and on which devices.
#[derive(Debug, Clone, Args)]
pub struct TrainWorkerArgs {
    /// Training workers in this process; 0 runs none (jobs wait for `fugue worker`s).
    #[arg(long, env = "FUGUE_TRAIN_WORKERS", default_value_t = 1)]
    pub train_workers: usize,
    /// Comma-separated devices the workers take in turn, e.g. `cuda:0,cuda:1`.
    /// Default: every CUDA device, else the CPU.
    #[arg(long, env = "FUGUE_TRAIN_DEVICES", value_delimiter = ',')]
    pub train_devices: Vec<crate::devices::DeviceName>,
    /// libtorch CPU threads. 1 avoids OpenMP spin-waiting when the machine is shared.
    #[arg(long, env = "FUGUE_TORCH_THREADS", default_value_t = 1)]
    pub threads: i32,
    /// The program each training attempt runs as (`<program> train-attempt …`).
    /// Default: this executable. Tests, whose server runs inside the test binary, name `fugue`.
    #[arg(long, hide = true)]
    pub train_attempt_program: Option<PathBuf>,
}

/// `fugue train-attempt`: what a worker tells the process it starts for one attempt.
/// The lease token and the database URL come through the environment, which other
/// users cannot read, unlike a command line.
#[derive(Debug, Clone, Args)]
pub struct TrainAttemptArgs {
    /// The claimed job.
    #[arg(long)]
    pub job: String,
    #[arg(long, env = "FUGUE_LEASE_TOKEN", hide_env_values = true)]
    pub lease_token: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Datasets are read from here.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Resumed from, and written after every epoch.
    #[arg(long)]
    pub checkpoint_dir: PathBuf,
    /// The fresh directory the artifact goes to.
    #[arg(long)]
    pub model_dir: PathBuf,
    #[arg(long)]
    pub device: crate::devices::DeviceName,
    /// libtorch CPU threads.
    #[arg(long)]
    pub threads: i32,
    /// How long an epoch's record is retried through database outages.
    #[arg(long)]
    pub lease_timeout_ms: u64,
}

/// The job queue's timing: leases, heartbeats, polling and retries.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// A running job whose worker has not heartbeaten for this long is requeued.
    #[arg(long, env = "FUGUE_LEASE_TIMEOUT_MS", default_value_t = 30_000)]
    pub lease_timeout_ms: u64,
    /// How often a worker renews its lease (and sees cancellation).
    #[arg(long, env = "FUGUE_HEARTBEAT_MS", default_value_t = 5_000)]
    pub heartbeat_ms: u64,
    /// How often idle workers look for work when no notification wakes them.
    #[arg(long, env = "FUGUE_QUEUE_POLL_MS", default_value_t = 2_000)]
    pub queue_poll_ms: u64,
    /// Attempts a job gets (worker crashes and training errors alike) before it fails for good.
    #[arg(long, env = "FUGUE_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Wait before the first retry after a crash; doubled for each later one (at most 10 minutes).
    #[arg(long, env = "FUGUE_RETRY_BACKOFF_MS", default_value_t = 5_000)]
    pub retry_backoff_ms: u64,
}

/// 64 MiB: a zipped corpus of a few thousand MIDI files fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

impl ServeArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn overrides(field: &str, value: serde_json::Value) -> HyperparameterOverrides {
        serde_json::from_value(json!({ field: value })).unwrap()
    }

    /// Each range of the table, at its last allowed values and its first refused ones.
    #[test]
    fn every_hyperparameter_range_holds_at_its_edges() {
        for &(field, low, high) in &HYPERPARAMETER_RANGES {
            let integral = high.fract() == 0.0 && !matches!(low, Low::Above(_));
            let step = if integral { 1.0 } else { 1e-6 };
            let (lowest, below) = match low {
                Low::From(low) => (low, low - step),
                Low::Above(low) => (low + step, low),
            };
            let number = |value: f64| if integral { json!(value as i64) } else { json!(value) };
            for allowed in [lowest, high] {
                assert_eq!(overrides(field, number(allowed)).validate(), Ok(()), "{field} = {allowed}");
            }
            for refused in [below, high + step] {
                // Unsigned fields cannot even hold -1: serde refuses it before validation.
                let Ok(parsed) =
                    serde_json::from_value::<HyperparameterOverrides>(json!({field: number(refused)}))
                else {
                    continue;
                };
                assert_eq!(parsed.validate().unwrap_err().field, field, "{field} = {refused}");
            }
        }
        let not_finite = HyperparameterOverrides { learning_rate: Some(f64::NAN), ..Default::default() };
        assert_eq!(not_finite.validate().unwrap_err().field, "learning_rate");
    }
}
