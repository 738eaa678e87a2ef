//! The command line: every subcommand's flags, and the settings they make.
//!
//! Every flag can also be given as an environment variable (`FUGUE_*`, plus the
//! conventional `DATABASE_URL`); a flag on the command line wins over the variable.
//! This is the only module that knows clap's argument tree; the server and the
//! workers are built from plain [`crate::config`] settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    DEFAULT_MAX_BODY_BYTES, GenerationSettings, QueueSettings, Settings, StorageSettings, TrainingSettings,
    WorkerSettings,
};
use crate::devices::WeightFormat;
use crate::jobs::attempt::AttemptSettings;
use crate::model::hyperparameters::{self, Declared, HyperparameterOverrides};
use crate::model::search::{SearchRequest, Space};
use crate::observability::LogFormat;

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
    Serve(Box<ServeArgs>),
    /// Run training workers alone, taking jobs from the shared queue (scale-out).
    Worker(WorkerArgs),
    /// Train a model on a folder of MIDI files or a benchmark JSON, with progress.
    Train(Box<TrainArgs>),
    /// Generate a composition from the command line and write it as a MIDI file.
    Generate(GenerateArgs),
    /// Render a MIDI file as audio (WAV or FLAC) through a General MIDI SoundFont.
    Render(RenderArgs),
    /// Score a model on a benchmark split; prints one JSON line.
    Eval(EvalArgs),
    /// Print the tokens a token preset makes of MIDI files, as JSON.
    Tokens(TokensArgs),
    /// (Re)build a model's originality index and held-out statistics from the
    /// corpus it was trained on, with the training run's own split, without
    /// retraining it.
    Index(IndexArgs),
    /// Generate pieces with a fixed list of seeds and compare their musical
    /// statistics with the model's held-out files; stored with the model.
    Evaluate(EvaluateArgs),
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
    pub hyperparameters: HyperparameterFlags,
    /// Search: train this many variants (2 to 32) by successive halving and keep
    /// the best by validation loss. With `--search-budget-minutes`.
    #[arg(long, requires = "search_budget_minutes")]
    pub search_trials: Option<u32>,
    /// The minutes of training a search's trials share (1 to 10080).
    #[arg(long, requires = "search_trials")]
    pub search_budget_minutes: Option<f64>,
    /// The space a search draws from: `dropout=0.1..0.5,learning_rate=1e-4..1e-2:log`,
    /// or as the API's JSON: `{"dropout": {"low": 0.1, "high": 0.5}, "learning_rate":
    /// {"low": 1e-4, "high": 1e-2, "scale": "log"}}`. Default: the preset's.
    #[arg(long, requires = "search_trials", value_parser = parse_space)]
    pub search_space: Option<Space>,
}

impl TrainArgs {
    /// The search the flags ask for, if any.
    pub fn search(&self) -> Option<SearchRequest> {
        Some(SearchRequest {
            trials: self.search_trials?,
            budget_minutes: self.search_budget_minutes?,
            space: self.search_space.clone(),
        })
    }
}

fn parse_space(text: &str) -> Result<Space, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|error| format!("not a search space: {error}"))
    } else {
        crate::model::search::parse_space_flag(text)
    }
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

macro_rules! hyperparameter_flags {
    ($($(#[$attribute:meta])* $name:ident: $type:ty, $meaning:literal, $range:expr;)*) => {
        /// Every hyperparameter as a flag of `fugue train` (`--hidden-size 128`),
        /// from the one table in `model::hyperparameters`.
        #[derive(Debug, Clone, Default, Args)]
        pub struct HyperparameterFlags {
            $(#[arg(long, help = flag_help(stringify!($name)))] pub $name: Option<$type>,)*
        }

        impl HyperparameterFlags {
            pub fn overrides(&self) -> HyperparameterOverrides {
                HyperparameterOverrides { $($name: self.$name.clone(),)* }
            }
        }
    };
}

crate::for_each_hyperparameter!(hyperparameter_flags);

/// A hyperparameter's meaning and, for numbers, its range, as `--help` shows it.
fn flag_help(name: &str) -> String {
    let declared = hyperparameters::DECLARED.iter().find(|declared| declared.name == name);
    match declared {
        Some(Declared { meaning, range: Some(range), .. }) => format!("{meaning} Allowed: {range}."),
        Some(Declared { meaning, range: None, .. }) => (*meaning).to_owned(),
        None => String::new(),
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

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The MIDI file to render.
    pub midi: PathBuf,
    /// The file to write: WAV, or FLAC when it ends in `.flac` (44.1 kHz, 16-bit stereo).
    #[arg(long)]
    pub out: PathBuf,
    /// The General MIDI `.sf2` SoundFont.
    #[arg(long, env = "FUGUE_SOUNDFONT", default_value = crate::config::DEFAULT_SOUNDFONT)]
    pub soundfont: PathBuf,
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
pub struct IndexArgs {
    /// The model artifact directory (its `originality.json` and `meta.json` are replaced).
    #[arg(long)]
    pub model: PathBuf,
    /// The folder of MIDI files it was trained on; default: the path its meta.json
    /// names. Refused unless its content hash is the one the model recorded.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// The model artifact directory (an `events` model with held-out statistics;
    /// its `meta.json` gets the result).
    #[arg(long)]
    pub model: PathBuf,
    /// Pieces to generate, with seeds S to S + N - 1 (1 to 64: one batch of the engine).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pieces: u32,
    /// The first piece's seed, S.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Notes per piece (1 to 2000).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub notes: u32,
    /// Print the result without storing it in the model's meta.json.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Many WebSocket sessions against a real `fugue serve` on loopback: outcomes,
    /// time to first note, realtime lateness, notes/s, and the server's RSS and CPU.
    Load(LoadBenchArgs),
    /// The originality index over the chorales: build time, size, the time to look
    /// up 500-note pieces (median, p99), and the copy guard's cost per note.
    Originality(OriginalityBenchArgs),
    /// Harmonizing the held-out chorales from their sopranos, forced and looking
    /// ahead: the NLL of Bach's lower voices and part-writing faults per 100 notes.
    Harmonize(HarmonizeBenchArgs),
    /// Audio rendering of a four-part piece through the SoundFont on one core:
    /// seconds of audio per second of rendering (the real-time factor).
    Render(RenderBenchArgs),
    /// One endless session with its clock simulated: RSS at checkpoints over
    /// thousands of notes, then a stop and the bars it would store.
    Endless(EndlessBenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct EndlessBenchArgs {
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Notes to stream before stopping.
    #[arg(long, default_value_t = 20_000)]
    pub notes: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also print a JSON summary line (for tests).
    #[arg(long)]
    pub json: bool,
    /// libtorch CPU threads. 1 avoids OpenMP spin-waiting when the machine is shared.
    #[arg(long, env = "FUGUE_TORCH_THREADS", default_value_t = 1)]
    pub threads: i32,
}

#[derive(Debug, Clone, Args)]
pub struct HarmonizeBenchArgs {
    /// A four-part chorale model (events with parts).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// The folder the model was trained on: its held-out files are harmonized.
    #[arg(long, env = "FUGUE_BENCH_DATA", default_value = "../shared/data/bach-chorales-midi")]
    pub data: PathBuf,
    /// Most held-out chorales to harmonize.
    #[arg(long, default_value_t = 1000)]
    pub pieces: usize,
    /// Harmonizations per chorale and way of decoding.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub seeds: u64,
    /// How the model keeps its weights, for the likelihoods and the harmonizing
    /// alike: run once with each to see what fp16 costs the model.
    #[arg(long, env = "FUGUE_GENERATE_WEIGHTS", value_enum, default_value_t)]
    pub weights: WeightFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RenderBenchArgs {
    /// The General MIDI `.sf2` SoundFont.
    #[arg(long, env = "FUGUE_SOUNDFONT", default_value = crate::config::DEFAULT_SOUNDFONT)]
    pub soundfont: PathBuf,
    /// A MIDI file to render instead of the generated four-part piece.
    #[arg(long)]
    pub midi: Option<PathBuf>,
    /// Bars of the generated piece (4/4 at 100 bpm: 2.4 s each).
    #[arg(long, default_value_t = 100)]
    pub bars: u32,
    /// Timed runs; the best counts.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
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
    /// The engine's workers, sharing `--threads` as `fugue serve` shares its
    /// cores: each steps on threads ÷ workers libtorch threads. Default: one per
    /// thread, the server's default on that many cores.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub engine_workers: Option<u32>,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

impl GenerateBenchArgs {
    /// The engine's workers, and the libtorch threads each steps on.
    pub fn engine_layout(&self) -> (usize, i32) {
        let threads = self.reference.threads.max(1);
        let workers = self.engine_workers.map_or(threads, |workers| workers as i32);
        (workers as usize, (threads / workers).max(1))
    }
}

#[derive(Debug, Clone, Args)]
pub struct LoadBenchArgs {
    /// Sessions in all, opened evenly over `--ramp-secs`.
    #[arg(long, default_value_t = 1000)]
    pub sessions: u32,
    #[arg(long, default_value_t = 5.0)]
    pub ramp_secs: f64,
    /// Notes each session asks for.
    #[arg(long, default_value_t = 32)]
    pub notes: u32,
    #[arg(long, default_value = "realtime", value_parser = ["realtime", "fast"])]
    pub pacing: String,
    /// The pieces' tempo (the request's `tempo_bpm`), which sets how many notes a
    /// second each listener hears; the model's when omitted.
    #[arg(long)]
    pub tempo_bpm: Option<f64>,
    /// A model id; the server's default when omitted.
    #[arg(long)]
    pub model: Option<String>,
    /// A running server (`http://host:port`); by default one is spawned from this binary.
    #[arg(long)]
    pub server: Option<String>,
    /// The running server's process id, for its RSS and CPU figures.
    #[arg(long, requires = "server")]
    pub server_pid: Option<u32>,
    /// The models directory of a spawned server.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// A session still open after this long counts as timed out.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// The network `fugue bench train` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainHead {
    Token,
    Nade,
}

#[derive(Debug, Clone, Args)]
pub struct TrainBenchArgs {
    /// The model trained: `token` (embedding → LSTM → dense, the tutorials'
    /// next-token model) or `nade` (piano-roll frames → LSTM → NADE over the 88
    /// keys, the `pianoroll-nade` preset's network, next to `bench/pytorch_nade.py`).
    #[arg(long, value_enum, default_value_t = TrainHead::Token)]
    pub head: TrainHead,
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
    /// Hidden units of the NADE (`--head nade`).
    #[arg(long, default_value_t = 150)]
    pub nade_hidden: i64,
    /// The Python script of the NADE reference loop (`--head nade`).
    #[arg(long, default_value = "bench/pytorch_nade.py")]
    pub nade_reference: PathBuf,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct OriginalityBenchArgs {
    /// Folder of MIDI files: the training pieces indexed.
    #[arg(long, env = "FUGUE_BENCH_DATA", default_value = "../shared/data/bach-chorales-midi")]
    pub data: PathBuf,
    /// Notes per query piece.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(2..))]
    pub notes: u16,
    /// Query pieces timed of each kind (stitched from the training pieces, random walks).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..))]
    pub queries: u16,
    /// The copy guard's limit, for its cost per note.
    #[arg(long, default_value_t = 4)]
    pub max_copied_notes: u32,
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

impl LoggingArgs {
    /// These flags as the environment variables that give them to a process
    /// started from this one (a training attempt).
    pub fn env(&self) -> Vec<(String, String)> {
        let format = self.log_format.to_possible_value().map(|value| value.get_name().to_owned());
        let mut env = vec![("FUGUE_LOG".to_owned(), self.log.clone())];
        env.extend(format.map(|format| ("FUGUE_LOG_FORMAT".to_owned(), format)));
        env
    }
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
    /// Where blobs, compositions, trained models and checkpoints live:
    /// `s3://bucket/prefix` (endpoint, region and credentials from the `AWS_*`
    /// variables). Unset: the data directory.
    #[arg(long, env = "FUGUE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Seconds an unreferenced blob (an uploaded file or a composition's MIDI)
    /// stays in the object store before it is removed, so that an upload of the
    /// same bytes on another node is never left without its file.
    #[arg(long, env = "FUGUE_BLOB_GRACE_SECS", default_value_t = 600)]
    pub blob_grace_secs: u64,
    /// Disk space for the local copies of trained models that generation loads.
    #[arg(long, env = "FUGUE_MODEL_FILE_CACHE_MB", default_value_t = 4096)]
    pub model_file_cache_mb: u64,
}

impl StorageArgs {
    pub fn settings(&self) -> StorageSettings {
        StorageSettings {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            models_dir: self.models_dir.clone(),
            default_model: self.default_model.clone(),
            object_store: self.object_store.clone().filter(|url| !url.is_empty()),
            object_store_options: Vec::new(),
            blob_grace: Duration::from_secs(self.blob_grace_secs),
            model_file_cache_bytes: self.model_file_cache_mb.saturating_mul(1024 * 1024),
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
    #[command(flatten)]
    pub audio: AudioArgs,
}

/// Audio: the SoundFonts and the limits of rendering.
#[derive(Debug, Clone, Args)]
pub struct AudioArgs {
    /// The General MIDI `.sf2` SoundFont audio is rendered with.
    #[arg(long, env = "FUGUE_SOUNDFONT", default_value = crate::config::DEFAULT_SOUNDFONT)]
    pub soundfont: PathBuf,
    /// The SoundFont served to the page when `--soundfont` is over 32 MiB.
    #[arg(long, env = "FUGUE_PAGE_SOUNDFONT", default_value = crate::config::DEFAULT_PAGE_SOUNDFONT)]
    pub page_soundfont: PathBuf,
    /// Audio renders at once; more answer 429.
    #[arg(long, env = "FUGUE_MAX_RENDERS", default_value_t = crate::config::DEFAULT_MAX_RENDERS)]
    pub max_renders: usize,
    /// Longest audio rendered for a request, in seconds; longer answers 422.
    #[arg(long, env = "FUGUE_MAX_AUDIO_SECONDS", default_value_t = crate::config::DEFAULT_MAX_AUDIO_SECONDS)]
    pub max_audio_seconds: f64,
}

/// The generation engine: its devices and limits.
#[derive(Debug, Clone, Args)]
pub struct GenerationArgs {
    /// Comma-separated devices, one generation worker each (`cpu,cpu` is two CPU
    /// workers). Default: every CUDA device, else a CPU worker per core (per
    /// `FUGUE_TORCH_THREADS` cores).
    #[arg(long, env = "FUGUE_GENERATE_DEVICES", value_delimiter = ',')]
    pub generate_devices: Vec<crate::devices::DeviceName>,
    /// Live generation sessions per worker (1 to 65,536); more wait in the queue.
    /// This bounds memory (about 0.3 MB a session): a realtime stream holds its
    /// place while it plays, but is parked (costs nothing) when ahead, and realtime
    /// streams are admitted by projected load.
    #[arg(long, env = "FUGUE_MAX_SESSIONS_PER_WORKER", default_value_t = 2048,
        value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_sessions_per_worker: u64,
    /// Live fast sessions (REST, `"pacing": "fast"`) per worker (1 to 65,536),
    /// counted over all the workers; more wait in the queue. Past a few full
    /// batches, more fast sessions at once only make each slower.
    #[arg(long, env = "FUGUE_MAX_FAST_SESSIONS_PER_WORKER", default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_fast_sessions_per_worker: u64,
    /// Most generation requests waiting for a place at once (0 to 100,000); more
    /// answer 429.
    #[arg(long, env = "FUGUE_GENERATE_QUEUE", default_value_t = 1024,
        value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub generate_queue: u64,
    /// Longest a generation request waits for a place, in milliseconds (0 to
    /// 60,000); then it answers 429.
    #[arg(long, env = "FUGUE_GENERATE_QUEUE_WAIT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub generate_queue_wait_ms: u64,
    /// Model parameters each generation worker keeps loaded, in MiB (least recently used go first).
    #[arg(long, env = "FUGUE_MODEL_CACHE_MB", default_value_t = 1024)]
    pub model_cache_mb: u64,
    /// How far ahead of its listener a realtime stream is written, in milliseconds;
    /// further ahead, it waits and leaves the device to others.
    #[arg(long, env = "FUGUE_REALTIME_LOOKAHEAD_MS", default_value_t = 1500,
        value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub realtime_lookahead_ms: u64,
    /// How loaded models keep their weights for generation: fp16 (packed by
    /// fbgemm, CPU only; on CUDA or a CPU without AVX2 they stay fp32) or fp32.
    #[arg(long, env = "FUGUE_GENERATE_WEIGHTS", value_enum, default_value_t)]
    pub generate_weights: WeightFormat,
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
    /// Default: this executable.
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
    /// The local data dir (the object store when none is configured).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// `s3://bucket/prefix`; empty or unset: the local filesystem under the data dir.
    #[arg(long, env = "FUGUE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// A local working directory for the checkpoint and the artifact.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// The checkpoint's bundle in the object store: resumed from, written after every epoch.
    #[arg(long)]
    pub checkpoint_key: String,
    /// The fresh bundle the artifact goes to.
    #[arg(long)]
    pub model_key: String,
    #[arg(long)]
    pub device: crate::devices::DeviceName,
    /// libtorch CPU threads.
    #[arg(long)]
    pub threads: i32,
    /// How long an epoch's record is retried through database outages.
    #[arg(long)]
    pub lease_timeout_ms: u64,
}

impl TrainAttemptArgs {
    pub fn settings(&self) -> AttemptSettings {
        AttemptSettings {
            job: self.job.clone(),
            lease_token: self.lease_token.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            object_store: self.object_store.clone().filter(|url| !url.is_empty()),
            work_dir: self.work_dir.clone(),
            checkpoint_key: self.checkpoint_key.clone(),
            model_key: self.model_key.clone(),
            device: self.device,
            threads: self.threads,
            lease_timeout: Duration::from_millis(self.lease_timeout_ms),
        }
    }
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

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            addr: self.addr,
            storage: self.storage.settings(),
            static_dir: self.static_dir.clone(),
            api_keys: self.api_keys.clone(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            training: self.workers.settings(),
            queue: self.queue.settings(),
            generation: GenerationSettings {
                devices: self.generation.generate_devices.clone(),
                max_sessions_per_worker: self.generation.max_sessions_per_worker as usize,
                max_fast_sessions_per_worker: self.generation.max_fast_sessions_per_worker as usize,
                queue_max_waiting: self.generation.generate_queue as usize,
                queue_max_wait: Duration::from_millis(self.generation.generate_queue_wait_ms),
                model_cache_bytes: self.generation.model_cache_mb.saturating_mul(1024 * 1024),
                realtime_lookahead: Duration::from_millis(self.generation.realtime_lookahead_ms),
                weights: self.generation.generate_weights,
            },
            max_queued_jobs: self.max_queued_jobs,
            audio: crate::config::AudioSettings {
                soundfont: self.audio.soundfont.clone(),
                page_soundfont: self.audio.page_soundfont.clone(),
                max_renders: self.audio.max_renders,
                max_seconds: self.audio.max_audio_seconds,
            },
        }
    }
}

impl WorkerArgs {
    pub fn settings(&self) -> WorkerSettings {
        WorkerSettings {
            storage: self.storage.settings(),
            training: self.workers.settings(),
            queue: self.queue.settings(),
        }
    }
}

impl TrainWorkerArgs {
    fn settings(&self) -> TrainingSettings {
        TrainingSettings {
            workers: self.train_workers,
            devices: self.train_devices.clone(),
            threads: self.threads,
            attempt_program: self.train_attempt_program.clone(),
            attempt_env: Vec::new(),
        }
    }
}

impl QueueArgs {
    fn settings(&self) -> QueueSettings {
        QueueSettings {
            lease_timeout: Duration::from_millis(self.lease_timeout_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            poll: Duration::from_millis(self.queue_poll_ms),
            max_attempts: i64::from(self.max_attempts),
            retry_backoff: Duration::from_millis(self.retry_backoff_ms),
        }
    }
}
