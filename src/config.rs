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
    /// Run a training worker that takes jobs from the shared queue.
    Worker,
    /// Train a model on a folder of MIDI files or a benchmark JSON, with progress.
    Train(Box<TrainArgs>),
    /// Generate a composition from the command line and write it as a MIDI file.
    Generate(GenerateArgs),
    /// Score a model on a benchmark split; prints one JSON line.
    Eval(EvalArgs),
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

/// Any preset hyperparameter, by name.
#[derive(Debug, Clone, Default, Args)]
pub struct HyperparameterOverrides {
    #[arg(long)]
    pub epochs: Option<u32>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub learning_rate_decay: Option<f64>,
    #[arg(long, value_enum)]
    pub optimizer: Option<crate::model::optim::OptimizerKind>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub layers: Option<i64>,
    #[arg(long)]
    pub hidden_size: Option<i64>,
    #[arg(long)]
    pub nade_hidden_size: Option<i64>,
    #[arg(long)]
    pub embedding_size: Option<i64>,
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long)]
    pub dropout: Option<f64>,
    #[arg(long)]
    pub transpose: Option<u8>,
    #[arg(long)]
    pub teacher_forcing: Option<f64>,
    #[arg(long)]
    pub teacher_forcing_decay: Option<f64>,
    #[arg(long)]
    pub focal_gamma: Option<f64>,
    #[arg(long)]
    pub focal_alpha: Option<f64>,
    #[arg(long)]
    pub patience: Option<u32>,
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
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
    #[arg(long, env = "FUGUE_TORCH_THREADS", default_value_t = 1)]
    pub threads: i32,
    /// Python with torch 2.13.0, to run the reference in the same run.
    #[arg(long, env = "FUGUE_BENCH_PYTHON")]
    pub python: Option<PathBuf>,
    #[arg(long, default_value = "../shared/bench/pytorch_reference.py")]
    pub reference: PathBuf,
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
}

/// 64 MiB: a zipped corpus of a few thousand MIDI files fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

impl ServeArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}
