//! `fugue worker` processes sharing a Postgres queue: killed, frozen, stopped.
//! The server runs in-process without workers; the workers are real processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fugue::store::{EpochRow, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attempts::training_processes;
use crate::jobs::{finished, upload_mini};
use crate::support::{
    Options, TestApp, TestDatabase, ThrowawayPostgres, fast_queue_env, removed_soon, spawn_app,
};

const FUGUE: &str = env!("CARGO_BIN_EXE_fugue");

struct Worker {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Worker {
    fn spawn(app: &TestApp) -> Worker {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(FUGUE)
            .arg("worker")
            .env("DATABASE_URL", &app.database_url)
            .env("FUGUE_DATA_DIR", &app.data_dir)
            .env("FUGUE_TRAIN_WORKERS", "1")
            .env("FUGUE_TRAIN_DEVICES", "cpu")
            .envs(fast_queue_env())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Epochs long enough (about half a second each) to act in the middle of one.
fn slow_job(dataset_id: &str) -> Value {
    json!({
        "dataset_id": dataset_id,
        "preset": "fugue",
        "hyperparameters": {"epochs": 8, "patience": 8, "hidden_size": 256, "layers": 2, "embedding_size": 32,
                            "window": 64, "batch_size": 4, "seed": 3}
    })
}

pub async fn submit(app: &TestApp, body: &Value) -> String {
    let response = app.client.post(app.url("/v1/training-jobs")).json(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Polls the job row until `done` holds (at most a minute).
pub async fn wait_for(
    store: &Store,
    id: &str,
    what: &str,
    done: impl Fn(&fugue::store::JobRow, &[EpochRow]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        let epochs = store.job_epochs(id).await.unwrap();
        if done(&job, &epochs) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn models_of(app: &TestApp, job_id: &str) -> Vec<Value> {
    let models: Value = app.get("/v1/models").await.json().await.unwrap();
    models.as_array().unwrap().iter().filter(|m| m["job_id"] == job_id).cloned().collect()
}

fn model_dirs(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("models"))
        .into_iter()
        .flatten()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn postgres_app() -> (TestApp, Store) {
    let app = spawn_app(Options { database: TestDatabase::postgres().await, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    (app, store)
}

#[tokio::test]
async fn a_killed_worker_s_job_resumes_on_another_from_its_checkpoint() {
    let (app, store) = postgres_app().await;
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &slow_job(&dataset)).await;
    let first = Worker::spawn(&app);
    wait_for(&store, &id, "two epochs on the first worker", |_, epochs| epochs.len() >= 2).await;
    let job = store.job(&id).await.unwrap().unwrap();
    assert!(job.worker.as_deref().unwrap().contains(&first.pid()), "{job:?}");
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL, in the middle of an epoch
    let killed_at = Instant::now();
    first.child.wait().unwrap();
    let recorded_at_kill = store.job_epochs(&id).await.unwrap().len();
    // Its training process sees its stdin end and stops before its next batch,
    // instead of training on alone (and renewing the lease with every epoch).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !training_processes(&id).is_empty() {
        assert!(Instant::now() < deadline, "the orphaned training process went on:\n{}", first.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<EpochRow> = store.job_epochs(&id).await.unwrap();
    assert!(before.len() <= recorded_at_kill + 1, "at most the epoch it was validating: {before:?}");

    let second = Worker::spawn(&app);
    wait_for(&store, &id, "the second attempt", |job, _| job.attempt == 2 && job.state.as_str() == "running")
        .await;
    let requeued_after = killed_at.elapsed();
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2);
    assert!(done["worker"].as_str().unwrap().contains(&second.pid()));

    let after = store.job_epochs(&id).await.unwrap();
    assert_eq!(after.iter().map(|e| e.epoch).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let resumed_at = after.iter().find(|e| e.attempt == 2).unwrap().epoch;
    let last_before = before.last().unwrap().epoch;
    assert!(resumed_at > 1, "the second attempt resumed instead of starting over");
    assert!(
        resumed_at <= last_before + 1,
        "it resumed from the last checkpoint ({resumed_at} vs {last_before})"
    );
    let redone = before.iter().filter(|e| after[(e.epoch - 1) as usize].attempt == 2).count();
    eprintln!(
        "kill -9 mid-epoch: requeued and claimed after {} ms (lease timeout 1500 ms); {} of {} recorded epochs redone",
        requeued_after.as_millis(),
        redone,
        before.len()
    );
    assert!(redone <= 1, "at most the epoch whose checkpoint was not yet written is redone");

    let models = models_of(&app, &id).await;
    assert_eq!(models.len(), 1, "exactly one model: {models:?}");
    assert_eq!(model_dirs(&app.data_dir), [models[0]["id"].as_str().unwrap()]);
    // The worker removes the checkpoint once the success is committed.
    assert!(
        removed_soon(&app.data_dir.join("checkpoints").join(&id)).await,
        "the checkpoint is never removed"
    );
}

#[tokio::test]
async fn a_frozen_worker_that_lost_its_lease_writes_nothing_when_it_wakes() {
    let (app, store) = postgres_app().await;
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &slow_job(&dataset)).await;
    let frozen = Worker::spawn(&app);
    wait_for(&store, &id, "an epoch on the first worker", |_, epochs| !epochs.is_empty()).await;
    frozen.signal("-STOP");

    let second = Worker::spawn(&app);
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["worker"].as_str().unwrap().contains(&second.pid()));
    let job_then = store.job(&id).await.unwrap();
    let epochs_then = store.job_epochs(&id).await.unwrap();
    let models_then = models_of(&app, &id).await;
    assert_eq!(models_then.len(), 1);

    frozen.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !frozen.log().contains("lease lost") {
        assert!(Instant::now() < deadline, "the woken worker never noticed:\n{}", frozen.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.job(&id).await.unwrap(), job_then, "the job row is untouched");
    assert_eq!(store.job_epochs(&id).await.unwrap(), epochs_then, "no epoch was written");
    assert_eq!(models_of(&app, &id).await, models_then, "no second model");
    assert_eq!(model_dirs(&app.data_dir), [models_then[0]["id"].as_str().unwrap()], "no stray artifact");
}

#[tokio::test]
async fn a_worker_told_to_stop_gives_its_job_back_at_once() {
    let (app, store) = postgres_app().await;
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &slow_job(&dataset)).await;
    let mut worker = Worker::spawn(&app);
    wait_for(&store, &id, "an epoch", |_, epochs| !epochs.is_empty()).await;
    worker.signal("-TERM");
    let status = worker.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", worker.log());
    let job = store.job(&id).await.unwrap().unwrap();
    assert_eq!(job.state.as_str(), "queued", "back in the queue without waiting for the lease: {job:?}");
    assert_eq!(job.attempt, 0, "a clean stop does not use up an attempt");

    let next = Worker::spawn(&app);
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "succeeded");
    assert!(done["worker"].as_str().unwrap().contains(&next.pid()));
}

#[tokio::test]
async fn a_job_survives_a_postgres_restart() {
    let database = TestDatabase::Throwaway(ThrowawayPostgres::start());
    let app = spawn_app(Options { database, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &slow_job(&dataset)).await;
    let worker = Worker::spawn(&app);
    wait_for(&store, &id, "an epoch", |_, epochs| !epochs.is_empty()).await;
    let TestDatabase::Throwaway(cluster) = &app.database else { unreachable!() };
    let before = store.job_epochs(&id).await.unwrap().len();
    assert!(before < 8, "the restart comes in the middle of the job");
    cluster.run("pg_ctl", &["-D", "data", "-l", "log", "-m", "immediate", "-w", "restart"]);
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{}", worker.log());
    assert_eq!(done["epochs"].as_array().unwrap().len(), 8);
    assert_eq!(models_of(&app, &id).await.len(), 1, "exactly one model");
}
