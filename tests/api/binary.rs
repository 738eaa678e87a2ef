//! The built `fugue` binary as a user runs it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::listening_addr;

const FUGUE: &str = env!("CARGO_BIN_EXE_fugue");

#[test]
fn generation_settings_outside_their_ranges_stop_the_server_before_it_starts() {
    let cases = [
        ("--realtime-lookahead-ms", "100..=60000", ["99", "60001"], "100"),
        ("--max-sessions-per-worker", "1..=65536", ["0", "65537"], "65536"),
        ("--generate-queue", "0..=100000", ["-1", "100001"], "0"),
        ("--generate-queue-wait-ms", "0..=60000", ["-1", "60001"], "60000"),
    ];
    for (flag, range, refused, accepted) in cases {
        for (value, ok) in [(refused[0], false), (refused[1], false), (accepted, true)] {
            // `--help` after the flag: the value is checked, then nothing is started.
            let output = Command::new(FUGUE)
                .args(["serve", &format!("{flag}={value}"), "--help"])
                .env_clear()
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.success(), ok, "{flag} {value}: {stderr}");
            if !ok && value != "-1" {
                assert!(stderr.contains(flag) && stderr.contains(range), "{flag} {value}: {stderr}");
            }
        }
    }
}

#[test]
fn runs_without_ld_library_path_and_loads_cuda_support() {
    // A clean environment: only the rpath can lead the loader to libtorch.
    let output = Command::new(FUGUE).arg("devices").env_clear().output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["cuda_library_loaded"], true, "{report}");
    assert!(report["devices"].as_array().is_some_and(|devices| !devices.is_empty()));
}

#[test]
fn dynamic_section_needs_libtorch_cuda_and_names_the_rpath() {
    let output = Command::new("readelf").args(["-d", FUGUE]).output().unwrap();
    assert!(output.status.success());
    let dynamic = String::from_utf8_lossy(&output.stdout);
    assert!(dynamic.contains("Shared library: [libtorch_cuda.so]"), "{dynamic}");
    assert!(dynamic.contains("Shared library: [libtorch_cpu.so]"), "{dynamic}");
    let rpath_line = dynamic
        .lines()
        .find(|line| line.contains("(RUNPATH)") || line.contains("(RPATH)"))
        .unwrap_or_else(|| panic!("no rpath in {dynamic}"));
    assert!(rpath_line.contains("torch/lib"), "{rpath_line}");
}

#[test]
fn serve_help_documents_every_environment_variable() {
    let output = Command::new(FUGUE).args(["serve", "--help"]).output().unwrap();
    // clap wraps lines; compare with the whitespace collapsed.
    let help = String::from_utf8_lossy(&output.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    for var in [
        "FUGUE_ADDR",
        "FUGUE_DATA_DIR",
        "DATABASE_URL",
        "FUGUE_MODELS_DIR",
        "FUGUE_DEFAULT_MODEL",
        "FUGUE_STATIC_DIR",
        "FUGUE_API_KEYS",
        "FUGUE_MAX_BODY_BYTES",
        "FUGUE_REQUEST_TIMEOUT_SECS",
        "FUGUE_LOG_FORMAT",
        "FUGUE_LOG",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var} missing from:\n{help}");
    }
}

#[test]
fn a_worker_without_a_usable_database_says_why_and_exits() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(FUGUE)
        .arg("worker")
        .env("DATABASE_URL", "mysql://127.0.0.1/fugue")
        .env("FUGUE_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL scheme"));
}

#[test]
fn training_workers_refuse_an_in_memory_database_their_training_processes_cannot_open() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(FUGUE)
        .arg("worker")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("FUGUE_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("an in-memory SQLite database"), "{stderr}");
}

#[test]
fn openapi_command_prints_the_served_document() {
    let output = Command::new(FUGUE).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, serde_json::to_value(fugue::api::openapi()).unwrap());
}

/// A `fugue serve` process on a free port with its own data dir and JSON logs.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(FUGUE)
            .arg("serve")
            .env_clear()
            .env("FUGUE_ADDR", "127.0.0.1:0")
            .env("FUGUE_DATA_DIR", data_dir)
            .env("FUGUE_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = listening_addr(&mut child);
        Server { child, addr }
    }

    /// Sends SIGTERM and waits, at most `limit`, for the process to exit.
    fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "still running {limit:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A test that fails before it stops its server leaves none running (one would
/// hold the test's output open).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serves_the_embedded_default_and_stops_cleanly_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(data_dir.path());
    let health = reqwest::get(format!("http://{}/health", server.addr)).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    // The embedded default: a SQLite file in the data dir, made on first start.
    assert!(data_dir.path().join("fugue.db").exists());
    // With no GPU, a generation worker per core (each on one libtorch thread).
    let ready: serde_json::Value =
        reqwest::get(format!("http://{}/ready", server.addr)).await.unwrap().json().await.unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let devices: Vec<&str> = ready["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| worker["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, vec!["cpu"; cores], "{ready}");
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn benchmarks_print_their_figures() {
    let data = crate::support::shared_data("jsb-mini/train");
    let output =
        Command::new(FUGUE).args(["bench", "ingest", "--repeat", "1", "--data"]).arg(&data).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("8 files") && printed.contains("files/s") && printed.contains("MB/s"),
        "{printed}"
    );

    let output = Command::new(FUGUE)
        .args(["bench", "train", "--sizes", "1x8", "--batch", "2", "--seq", "4", "--steps", "2"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.starts_with("train 1x8 batch 2 seq 4: fugue ") && printed.contains("samples/s"),
        "{printed}"
    );
}
