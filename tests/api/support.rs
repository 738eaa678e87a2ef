//! Starting the real server and giving each test a database of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fugue::app::App;
use std::time::Duration;

use fugue::config::{
    AudioSettings, DEFAULT_MAX_BODY_BYTES, GenerationSettings, QueueSettings, Settings, StorageSettings,
    TrainingSettings,
};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use tempfile::TempDir;

/// The Postgres server tests may create databases on. `make test` sets it (see
/// scripts/with-postgres.sh); run alone, the tests expect the local server.
pub fn postgres_admin_url() -> String {
    std::env::var("FUGUE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database made for one test and dropped after it, whatever the outcome.
pub enum TestDatabase {
    Sqlite {
        _dir: TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
    /// A whole cluster of the test's own.
    Throwaway(ThrowawayPostgres),
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("nested").join("fugue.db").display());
        TestDatabase::Sqlite { _dir: dir, url }
    }

    pub async fn postgres() -> TestDatabase {
        let admin_url = postgres_admin_url();
        let name = format!("fugue_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("Postgres at {admin_url} is needed (make test provides one): {error}")
        });
        // `name` is our own hex uuid: safe to splice.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        TestDatabase::Postgres { admin_url, name, url }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
            TestDatabase::Throwaway(cluster) => &cluster.url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Postgres { admin_url, name, .. } = self else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread
        // with its own small runtime does the clean-up.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                            .execute(&mut admin)
                            .await;
                }
            });
        })
        .join()
        .expect("dropping the test database");
    }
}

/// How a test wants its server.
pub struct Options {
    pub database: TestDatabase,
    pub api_keys: Vec<String>,
    pub max_body_bytes: usize,
    /// Write a readable default model artifact into the models directory.
    pub with_default_model: bool,
    /// In-process training workers (0: jobs stay queued).
    pub train_workers: usize,
    pub max_queued_jobs: i64,
    /// Serve the project's own `models/` (the bundled default and benchmark models).
    pub bundled_models: bool,
    pub max_sessions_per_worker: usize,
    pub max_fast_sessions_per_worker: usize,
    /// CPU generation workers (the tests' capacities are per worker).
    pub generation_workers: usize,
    /// Generation requests that may wait for a place, and for how long.
    pub queue_max_waiting: usize,
    pub queue_max_wait: Duration,
    /// `s3://bucket/prefix` (the test's S3 server, see `objects.rs`), else the data dir.
    pub object_store: Option<String>,
    pub object_store_options: Vec<(String, String)>,
    /// The SoundFonts and render limits (default: the project's `soundfonts/`).
    pub audio: AudioSettings,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            database: TestDatabase::sqlite(),
            api_keys: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            with_default_model: false,
            train_workers: 0,
            max_queued_jobs: 100,
            bundled_models: false,
            max_sessions_per_worker: 64,
            max_fast_sessions_per_worker: 64,
            generation_workers: 1,
            queue_max_waiting: 1024,
            queue_max_wait: Duration::from_secs(10),
            object_store: None,
            object_store_options: Vec::new(),
            audio: installed_audio(),
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database: TestDatabase,
    pub models_dir: PathBuf,
    settings: Settings,
    /// None only while restarting.
    server: Option<RunningServer>,
    _dir: TempDir,
}

/// A server running on the test's runtime, and the way to stop it.
struct RunningServer {
    stop: tokio::sync::oneshot::Sender<()>,
    stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    async fn start(settings: Settings) -> (SocketAddr, RunningServer) {
        let app = App::build(settings).await.expect("the server starts");
        let addr = app.local_addr();
        let (stop, told) = tokio::sync::oneshot::channel::<()>();
        let stopped = tokio::spawn(app.run(async {
            let _ = told.await;
        }));
        (addr, RunningServer { stop, stopped })
    }
}

impl TestApp {
    /// Stops the server as SIGTERM would (its workers give their jobs back), then
    /// starts a new one on the same database and data dir, on a new port.
    pub async fn restart(&mut self) {
        let old = self.server.take().expect("a server is running");
        let _ = old.stop.send(());
        old.stopped.await.expect("the server task ends").expect("the server stops cleanly");
        let (addr, server) = RunningServer::start(self.settings.clone()).await;
        (self.addr, self.server) = (addr, Some(server));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request reaches the server")
    }

    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client.post(self.url(path)).multipart(form).send().await.expect("request reaches the server")
    }

    /// Every file under the data dir's blob store.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() { walk(&path, found) } else { found.push(path) }
            }
        }
        let mut found = Vec::new();
        walk(&self.data_dir.join("blobs"), &mut found);
        found
    }
}

pub async fn spawn_app(options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let models_dir = if options.bundled_models { project_path("models") } else { dir.path().join("models") };
    if options.with_default_model {
        assert!(!options.bundled_models, "the project's bundled models are never overwritten");
        write_model(&models_dir, "default");
    }
    let settings = settings(&options, dir.path(), models_dir);
    let data_dir = settings.storage.data_dir.clone();
    let (addr, server) = RunningServer::start(settings.clone()).await;
    let database_url = options.database.url().to_owned();
    TestApp {
        addr,
        client: reqwest::Client::new(),
        data_dir,
        database_url,
        database: options.database,
        models_dir: settings.storage.models_dir.clone(),
        settings,
        server: Some(server),
        _dir: dir,
    }
}

/// The server's settings for `options`, its state under `dir`.
fn settings(options: &Options, dir: &Path, models_dir: PathBuf) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        storage: StorageSettings {
            data_dir: dir.join("data"),
            database_url: Some(options.database.url().to_owned()),
            models_dir,
            default_model: "default".to_owned(),
            object_store: options.object_store.clone(),
            object_store_options: options.object_store_options.clone(),
            // Unreferenced blobs go at once, as the tests of deletions expect.
            blob_grace: Duration::ZERO,
            model_file_cache_bytes: 64 * 1024 * 1024,
        },
        static_dir: project_path("static"),
        api_keys: options.api_keys.clone(),
        max_body_bytes: options.max_body_bytes,
        request_timeout: Duration::from_secs(30),
        training: TrainingSettings {
            workers: options.train_workers,
            devices: Vec::new(),
            threads: 1,
            // The server runs inside this test binary; its attempts run in `fugue`.
            attempt_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_fugue"))),
            attempt_env: Vec::new(),
        },
        queue: fast_queue(),
        max_queued_jobs: options.max_queued_jobs,
        generation: GenerationSettings {
            // As many workers as asked, whatever the machine's cores. (`binary::`
            // serves the default, a worker per core.)
            devices: vec![fugue::devices::DeviceName(tch::Device::Cpu); options.generation_workers],
            max_sessions_per_worker: options.max_sessions_per_worker,
            max_fast_sessions_per_worker: options.max_fast_sessions_per_worker,
            queue_max_waiting: options.queue_max_waiting,
            queue_max_wait: options.queue_max_wait,
            model_cache_bytes: 256 * 1024 * 1024,
            realtime_lookahead: fugue::generate::engine::REALTIME_LOOKAHEAD,
            // The server's default, so the tests serve as it does.
            weights: fugue::devices::WeightFormat::default(),
        },
        audio: options.audio.clone(),
    }
}

/// The fonts `scripts/setup-soundfont.sh` installs (`make test` runs it), by
/// absolute path, with the default limits.
pub fn installed_audio() -> AudioSettings {
    let installed = AudioSettings::installed();
    AudioSettings {
        soundfont: project_path(&installed.soundfont.to_string_lossy()),
        page_soundfont: project_path(&installed.page_soundfont.to_string_lossy()),
        ..installed
    }
}

/// Queue timings for tests: leases of 1.5 s, heartbeats every 200 ms.
pub fn fast_queue() -> QueueSettings {
    QueueSettings {
        lease_timeout: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(200),
        poll: Duration::from_millis(200),
        max_attempts: 3,
        retry_backoff: Duration::from_millis(100),
    }
}

/// The same timings as `fugue` environment variables, for worker processes.
pub fn fast_queue_env() -> Vec<(&'static str, String)> {
    let queue = fast_queue();
    let ms = |duration: Duration| duration.as_millis().to_string();
    vec![
        ("FUGUE_LEASE_TIMEOUT_MS", ms(queue.lease_timeout)),
        ("FUGUE_HEARTBEAT_MS", ms(queue.heartbeat)),
        ("FUGUE_QUEUE_POLL_MS", ms(queue.poll)),
        ("FUGUE_MAX_ATTEMPTS", queue.max_attempts.to_string()),
        ("FUGUE_RETRY_BACKOFF_MS", ms(queue.retry_backoff)),
    ]
}

/// A real, tiny, untrained piano-roll model artifact.
pub fn write_model(models_dir: &Path, name: &str) {
    use fugue::model::artifact::{self, ArtifactMeta, Corpus, DataSource, Network, Representation};
    use fugue::model::roll_net::{RollNet, RollNetConfig, RollOutput};
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let config = RollNetConfig::plain(4, 1, RollOutput::Independent);
    RollNet::new(&vs.root(), config.clone());
    let meta = ArtifactMeta {
        format: artifact::FORMAT,
        fugue_version: "test".into(),
        created_at: "2026-11-21T00:00:00Z".into(),
        preset: fugue::shared::Preset::PianorollLstm,
        representation: Representation::Pianoroll { grid: Default::default() },
        network: Network::Roll(config),
        hyperparameters: serde_json::json!({}),
        data: DataSource { source: Corpus::Path("none".into()), sha256: String::new() },
        training: fugue::train::FitOutcome {
            history: vec![],
            best_epoch: 0,
            best_valid_loss: 0.0,
            stopped_early: false,
            budget_spent: false,
            planned_epochs: None,
        },
        evaluation: Default::default(),
        originality_index: None,
        held_out_statistics: None,
        music_evaluation: None,
        search: None,
    };
    artifact::save(&models_dir.join(name), &meta, &vs, None).unwrap();
}

pub fn project_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The parsed JSON error body, after checking the shared shape.
pub async fn error_body(response: reqwest::Response) -> serde_json::Value {
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "content type {content_type}");
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    let error = &body["error"];
    assert!(error["code"].is_string(), "no error.code in {body}");
    assert!(error["message"].is_string(), "no error.message in {body}");
    body
}

/// A path under the shared data folder that sits beside the project.
pub fn shared_data(relative: &str) -> PathBuf {
    project_path("../shared/data").join(relative)
}

/// Every `.mid` file in a folder, sorted by name.
pub fn midi_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "mid"))
        .collect();
    files.sort();
    files
}

/// The project's Python (the one `make test` installs test tools into).
pub fn venv_python() -> PathBuf {
    project_path(".venv/bin/python3")
}

/// A Postgres cluster of the test's own (initdb + pg_ctl in a temp dir), for tests
/// that restart the database. Stopped and removed on drop.
pub struct ThrowawayPostgres {
    bin: PathBuf,
    dir: TempDir,
    pub url: String,
}

impl ThrowawayPostgres {
    pub fn start() -> ThrowawayPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql is installed (make test installs it when missing)")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster =
            ThrowawayPostgres { bin, url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir };
        if cluster.as_root() {
            let status = std::process::Command::new("chown").arg("postgres").arg(cluster.dir.path()).status();
            assert!(status.unwrap().success(), "chown to postgres");
        }
        cluster.run("initdb", &["-D", "data", "-U", "postgres", "--auth=trust"]);
        let options = format!("-c listen_addresses=127.0.0.1 -p {port} -k {}", cluster.dir.path().display());
        cluster.run("pg_ctl", &["-D", "data", "-l", "log", "-w", "-o", &options, "start"]);
        cluster
    }

    fn as_root(&self) -> bool {
        std::env::var("USER").map(|user| user == "root").unwrap_or(false)
            || std::fs::read_to_string("/proc/self/status")
                .is_ok_and(|status| status.lines().any(|line| line.starts_with("Uid:\t0\t")))
    }

    /// A Postgres tool to run in the cluster's directory (as the postgres user when
    /// root: initdb refuses root, and the cluster's files belong to postgres).
    fn tool(&self, tool: &str) -> std::process::Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            std::process::Command::new(&program)
        };
        command.current_dir(self.dir.path());
        command
    }

    /// Runs a Postgres tool; a server it starts must log to a file (`-l`), or it
    /// would hold this call's output pipes open.
    pub fn run(&self, tool: &str, args: &[&str]) {
        let output = self.tool(tool).args(args).output().expect("running a Postgres tool");
        assert!(output.status.success(), "{tool}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = self.tool("pg_ctl").args(["-D", "data", "-m", "immediate", "stop"]).output();
    }
}

/// An S3-compatible server for the tests: `FUGUE_TEST_S3_ENDPOINT` when set (make
/// test starts `moto_server`, see scripts/with-s3.sh), else a `moto_server` from
/// the project's venv started once for this test process (and stopped when it
/// exits).
pub fn s3_endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("FUGUE_TEST_S3_ENDPOINT") {
                return endpoint;
            }
            let moto = project_path(".venv/bin/moto_server");
            assert!(moto.exists(), "{} is needed (make test installs moto[server])", moto.display());
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            // A watchdog shell stops the server once this test process is gone.
            let script = format!(
                "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
                moto.display(),
                std::process::id()
            );
            let mut watchdog =
                std::process::Command::new("bash").args(["-c", &script]).spawn().expect("starting moto_server");
            std::thread::spawn(move || watchdog.wait());
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "moto_server did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            format!("http://127.0.0.1:{port}")
        })
        .clone()
}

/// The standard `AWS_*` settings for the test server, by variable name.
pub fn s3_env() -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", s3_endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A fresh bucket on the test server, as `s3://bucket/prefix`.
pub async fn s3_bucket() -> String {
    let bucket = format!("fugue-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3_endpoint()))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(response.status().is_success(), "creating bucket {bucket}: {}", response.status());
    format!("s3://{bucket}/fugue")
}

/// Waits up to 10 s for `path` to be removed: a worker removes a finished job's
/// checkpoint just after it commits the job's end, so a test that sees the end may
/// still see the checkpoint for a moment.
pub async fn removed_soon(path: &Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while path.exists() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The address a spawned `fugue serve` (logging JSON to a piped stderr) says it
/// listens on; its stderr is drained from then on, so it never blocks on a full pipe.
pub fn listening_addr(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if event["message"] == "listening" {
            addr = event["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    addr.expect("the server logs where it listens")
}

/// Every message of a job's event stream at `url` (Server-Sent Events) until it ends.
pub async fn sse_messages(url: String) -> Vec<serde_json::Value> {
    let response =
        reqwest::Client::new().get(url).header("Accept", "text/event-stream").send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(120), response.text()).await.unwrap().unwrap();
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}
