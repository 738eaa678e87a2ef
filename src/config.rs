//! The settings a server or a worker pool is built from: plain values, whoever
//! filled them in. The command line (`cli::args`, with its `FUGUE_*` variables)
//! is one source; tests build them directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::devices::DeviceName;
use crate::devices::WeightFormat;
use crate::objects::Objects;

/// Everything `App::build` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port 0 picks a free port.
    pub addr: SocketAddr,
    pub storage: StorageSettings,
    /// The browser page served at `/`.
    pub static_dir: PathBuf,
    /// Bearer tokens; when any is set, every `/v1` route requires one.
    pub api_keys: Vec<String>,
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 408 (WebSockets excepted once upgraded).
    pub request_timeout: Duration,
    pub training: TrainingSettings,
    pub queue: QueueSettings,
    pub generation: GenerationSettings,
    /// Most jobs waiting in the queue; a submission over it answers 429.
    pub max_queued_jobs: i64,
    pub audio: AudioSettings,
}

/// `fugue worker`: training workers sharing the database and data dir with servers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub storage: StorageSettings,
    pub training: TrainingSettings,
    pub queue: QueueSettings,
}

/// Where fugue keeps its state.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The embedded database, datasets, checkpoints and compositions.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; `None` is `sqlite://<data dir>/fugue.db`.
    pub database_url: Option<String>,
    /// Bundled and registered model artifacts.
    pub models_dir: PathBuf,
    /// The model in `models_dir` that serves when a request names none.
    pub default_model: String,
    /// `s3://bucket/prefix` for blobs, compositions, trained models and
    /// checkpoints; `None` keeps them under `data_dir`.
    pub object_store: Option<String>,
    /// S3 settings by name (`aws_endpoint_url`, …) over the `AWS_*` environment.
    pub object_store_options: Vec<(String, String)>,
    /// How long an unreferenced blob stays before it is collected (protects
    /// writers on other nodes; see `store::blobs`).
    pub blob_grace: Duration,
    /// Disk for the local copies of trained models (`<data dir>/cache/models`).
    pub model_file_cache_bytes: u64,
}

impl StorageSettings {
    /// The database URL when it is Postgres (for LISTEN/NOTIFY).
    pub fn postgres_url(&self) -> Option<String> {
        self.database_url
            .clone()
            .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }

    /// The object store in force.
    pub fn objects(&self) -> anyhow::Result<Objects> {
        Objects::open_with(self.object_store.as_deref(), &self.data_dir, &self.object_store_options)
    }

    /// The database URL in force: the configured one, else the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("fugue.db").display()),
        }
    }
}

/// How many training workers run in this process, and on which devices.
#[derive(Debug, Clone)]
pub struct TrainingSettings {
    /// 0 runs none: jobs wait for `fugue worker`s.
    pub workers: usize,
    /// Taken in turn by the workers; empty means every CUDA device, else the CPU.
    pub devices: Vec<DeviceName>,
    /// libtorch CPU threads of each training process.
    pub threads: i32,
    /// The program each training attempt runs as (`<program> train-attempt …`);
    /// `None` is this executable. Tests, whose server runs inside the test binary,
    /// name `fugue`.
    pub attempt_program: Option<PathBuf>,
    /// Environment each training process gets besides this one's: the command
    /// line's logging flags, so that its lines match the worker's.
    pub attempt_env: Vec<(String, String)>,
}

/// The job queue's timing: leases, heartbeats, polling and retries.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// A running job whose worker has not heartbeaten for this long is requeued.
    pub lease_timeout: Duration,
    /// How often a worker renews its lease (and sees cancellation).
    pub heartbeat: Duration,
    /// How often idle workers look for work when no notification wakes them.
    pub poll: Duration,
    /// Attempts a job gets (crashes and training errors alike) before it fails for good.
    pub max_attempts: i64,
    /// The first retry waits this long; each later one twice as long, up to 10 minutes.
    pub retry_backoff: Duration,
}

impl QueueSettings {
    /// Milliseconds a job waits before its next attempt, after `attempt` attempts.
    pub fn backoff_ms(&self, attempt: i64) -> i64 {
        const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
        let base = i64::try_from(self.retry_backoff.as_millis()).unwrap_or(MAX_BACKOFF_MS);
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        base.saturating_mul(1 << doublings).min(MAX_BACKOFF_MS)
    }
}

/// The generation engine: its devices and limits.
#[derive(Debug, Clone)]
pub struct GenerationSettings {
    /// One generation worker each; empty means every CUDA device, else a CPU
    /// worker per core (per `threads` of [`TrainingSettings`]: the process's).
    pub devices: Vec<DeviceName>,
    /// Live sessions per worker; more wait in the queue.
    pub max_sessions_per_worker: usize,
    /// Live fast sessions per worker (of all the workers', in all); more wait in
    /// the queue.
    pub max_fast_sessions_per_worker: usize,
    /// Most requests waiting for a place at once; more answer 429.
    pub queue_max_waiting: usize,
    /// Longest a request waits for a place; then it answers 429.
    pub queue_max_wait: std::time::Duration,
    /// Model parameters each worker keeps loaded (least recently used go first).
    pub model_cache_bytes: u64,
    /// How far ahead of its listener a realtime stream is written; further ahead,
    /// it waits.
    pub realtime_lookahead: std::time::Duration,
    /// How loaded models keep their weights for generation.
    pub weights: WeightFormat,
}

/// Audio: the SoundFonts and the limits of rendering.
#[derive(Debug, Clone)]
pub struct AudioSettings {
    /// The General MIDI `.sf2` font the server renders audio with.
    pub soundfont: PathBuf,
    /// A smaller font (`.sf2` or `.sf3`) for the page, served when `soundfont` is
    /// larger than a browser should load.
    pub page_soundfont: PathBuf,
    /// Renders running at once; more answer 429.
    pub max_renders: usize,
    /// Longest audio a request may ask for, in seconds; longer answers 422.
    pub max_seconds: f64,
}

impl AudioSettings {
    /// What `./soundfonts` holds after `scripts/setup-soundfont.sh`, and the default limits.
    pub fn installed() -> AudioSettings {
        AudioSettings {
            soundfont: PathBuf::from(DEFAULT_SOUNDFONT),
            page_soundfont: PathBuf::from(DEFAULT_PAGE_SOUNDFONT),
            max_renders: DEFAULT_MAX_RENDERS,
            max_seconds: DEFAULT_MAX_AUDIO_SECONDS,
        }
    }
}

/// Where `scripts/setup-soundfont.sh` puts FluidR3 GM (MIT, 148 MB).
pub const DEFAULT_SOUNDFONT: &str = "soundfonts/FluidR3_GM.sf2";
/// Where it puts FluidR3 Mono GM (MIT, 23 MB, Ogg-compressed samples), for the page.
pub const DEFAULT_PAGE_SOUNDFONT: &str = "soundfonts/FluidR3Mono_GM.sf3";
/// Renders at once: each keeps a core busy for a hundredth of the audio's length.
pub const DEFAULT_MAX_RENDERS: usize = 2;
/// 30 minutes: about 300 MB of WAV, rendered in seconds.
pub const DEFAULT_MAX_AUDIO_SECONDS: f64 = 1800.0;

/// 64 MiB: a zipped corpus of a few thousand MIDI files fits.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(backoff_ms: u64) -> QueueSettings {
        QueueSettings {
            lease_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(2),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(backoff_ms),
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_and_is_capped() {
        let doubling = queue(1000);
        assert_eq!([1, 2, 3, 4].map(|attempt| doubling.backoff_ms(attempt)), [1000, 2000, 4000, 8000]);
        assert_eq!(doubling.backoff_ms(40), 600_000);
        assert_eq!(queue(0).backoff_ms(5), 0);
    }
}
