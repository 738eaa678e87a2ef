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

/// A hyperparameter outside its range: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OutOfRange {
    pub field: &'static str,
    pub message: String,
}

impl HyperparameterOverrides {
    /// The first value outside its documented range, if any.
    pub fn validate(&self) -> Result<(), OutOfRange> {
        fn check<T: PartialOrd + Copy + std::fmt::Display>(
            field: &'static str,
            value: Option<T>,
            low: T,
            high: T,
            low_inclusive: bool,
        ) -> Result<(), OutOfRange> {
            let Some(value) = value else { return Ok(()) };
            let above_low = if low_inclusive { value >= low } else { value > low };
            if above_low && value <= high {
                return Ok(());
            }
            let from = if low_inclusive { "from" } else { "above" };
            Err(OutOfRange { field, message: format!("must be {from} {low} up to {high}, got {value}") })
        }
        let float = |value: Option<f64>| value.map(|v| if v.is_finite() { v } else { f64::NAN });
        check("epochs", self.epochs, 1, 1000, true)?;
        check("batch_size", self.batch_size, 1, 1024, true)?;
        check("learning_rate", float(self.learning_rate), 0.0, 1.0, false)?;
        check("learning_rate_decay", float(self.learning_rate_decay), 0.0, 1.0, false)?;
        check("weight_decay", float(self.weight_decay), 0.0, 1.0, true)?;
        check("weight_averaging", float(self.weight_averaging), 0.0, 0.9999, true)?;
        check("layers", self.layers, 1, 8, true)?;
        check("hidden_size", self.hidden_size, 1, 4096, true)?;
        check("nade_hidden_size", self.nade_hidden_size, 1, 4096, true)?;
        check("embedding_size", self.embedding_size, 1, 2048, true)?;
        check("window", self.window, 2, 2048, true)?;
        check("dropout", float(self.dropout), 0.0, 0.9, true)?;
        check("recurrent_dropout", float(self.recurrent_dropout), 0.0, 0.9, true)?;
        check("position_period", self.position_period, 0, 64, true)?;
        check("transpose", self.transpose, 0, 12, true)?;
        check("teacher_forcing", float(self.teacher_forcing), 0.0, 1.0, true)?;
        check("teacher_forcing_decay", float(self.teacher_forcing_decay), 0.0, 1.0, true)?;
        check("focal_gamma", float(self.focal_gamma), 0.0, 10.0, true)?;
        check("focal_alpha", float(self.focal_alpha), 0.0, 1.0, true)?;
        check("patience", self.patience, 1, 1000, true)?;
        check("validation_fraction", float(self.validation_fraction), 0.0, 0.5, false)
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

    /// Each documented range, at its last allowed value and its first refused one.
    #[test]
    fn every_hyperparameter_range_holds_at_its_edges() {
        let edges = [
            ("epochs", json!(1000), json!(1001)),
            ("batch_size", json!(1024), json!(0)),
            ("learning_rate", json!(1.0), json!(0.0)),
            ("learning_rate_decay", json!(1.0), json!(1.01)),
            ("weight_decay", json!(1.0), json!(1.5)),
            ("weight_averaging", json!(0.9999), json!(0.99995)),
            ("layers", json!(8), json!(9)),
            ("hidden_size", json!(4096), json!(4097)),
            ("nade_hidden_size", json!(1), json!(0)),
            ("embedding_size", json!(2048), json!(2049)),
            ("window", json!(2), json!(1)),
            ("dropout", json!(0.9), json!(0.95)),
            ("recurrent_dropout", json!(0.9), json!(0.95)),
            ("position_period", json!(64), json!(65)),
            ("transpose", json!(12), json!(13)),
            ("teacher_forcing", json!(1.0), json!(1.1)),
            ("teacher_forcing_decay", json!(0.0), json!(-0.1)),
            ("focal_gamma", json!(10.0), json!(10.5)),
            ("focal_alpha", json!(1.0), json!(1.1)),
            ("patience", json!(1), json!(0)),
            ("validation_fraction", json!(0.5), json!(0.0)),
        ];
        for (field, allowed, refused) in edges {
            assert_eq!(overrides(field, allowed.clone()).validate(), Ok(()), "{field} = {allowed}");
            let error = overrides(field, refused.clone()).validate().unwrap_err();
            assert_eq!(error.field, field, "{field} = {refused}");
        }
    }
}
