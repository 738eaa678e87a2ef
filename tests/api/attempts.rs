//! Every training attempt runs in a process of its own, so jobs trained side by side
//! on one server do not share libtorch's random generator, nor each other's crashes.

use fugue::shared::sha256_hex;
use fugue::store::{EpochRow, Store};
use serde_json::{Value, json};

use crate::jobs::{finished, upload_mini};
use crate::support::{Options, TestApp, TestDatabase, spawn_app};
use crate::workers::{submit, wait_for};

const EPOCHS: usize = 6;

/// A job with dropout and shuffled batches, slow enough (a few tenths of a second
/// an epoch) to be caught in the middle. Two seeds make two jobs whose generator
/// draws would interleave if they shared a process.
fn job(dataset_id: &str, seed: u64) -> Value {
    json!({
        "dataset_id": dataset_id,
        "preset": "fugue",
        "hyperparameters": {"epochs": EPOCHS, "patience": EPOCHS, "hidden_size": 128, "layers": 2,
                            "embedding_size": 16, "window": 32, "batch_size": 4, "dropout": 0.3, "seed": seed}
    })
}

/// What a job's end must not owe to how it was run: its weights file and its losses.
#[derive(Debug, PartialEq)]
struct Trained {
    weights_sha256: String,
    losses: Vec<(f64, f64)>,
}

/// Waits for the job to succeed; its weights (hashed, to keep failures readable) and losses.
async fn trained(app: &TestApp, id: &str) -> Trained {
    let done = finished(app, id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let model = done["model_id"].as_str().unwrap();
    let weights = std::fs::read(app.data_dir.join("models").join(model).join("model.safetensors")).unwrap();
    let losses = done["epochs"].as_array().unwrap().iter();
    let losses = losses.map(|e| (e["train_loss"].as_f64().unwrap(), e["valid_loss"].as_f64().unwrap()));
    Trained { weights_sha256: sha256_hex(&weights), losses: losses.collect() }
}

/// Each job trained uninterrupted and alone on the server, one after the other.
async fn each_alone(app: &TestApp, bodies: &[Value]) -> Vec<Trained> {
    let mut alone = Vec::new();
    for body in bodies {
        let id = submit(app, body).await;
        alone.push(trained(app, &id).await);
    }
    alone
}

/// Submits the jobs together and waits until each has finished an epoch (both
/// are then training at once: the server has a worker for each).
async fn started_together(app: &TestApp, store: &Store, bodies: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(submit(app, body).await);
    }
    for id in &ids {
        wait_for(store, id, "a first epoch", |_, epochs| !epochs.is_empty()).await;
    }
    ids
}

/// The recorded epochs of a job still in the middle of its training.
async fn epochs_mid_training(store: &Store, id: &str) -> Vec<EpochRow> {
    let epochs = store.job_epochs(id).await.unwrap();
    assert!(epochs.len() < EPOCHS, "interrupted before the end: {epochs:?}");
    epochs
}

#[tokio::test]
async fn two_jobs_at_once_interrupted_and_resumed_end_exactly_as_each_alone() {
    let mut app = spawn_app(Options { train_workers: 2, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    let dataset = upload_mini(&app).await;
    let bodies = [job(&dataset, 3), job(&dataset, 4)];
    let alone = each_alone(&app, &bodies).await;
    assert_ne!(alone[0], alone[1], "two seeds, two different runs");

    let ids = started_together(&app, &store, &bodies).await;
    let mut before = Vec::new();
    for id in &ids {
        before.push(epochs_mid_training(&store, id).await);
    }
    // Both jobs go back to the queue; the new server's workers resume them.
    app.restart().await;

    for ((id, alone), before) in ids.iter().zip(&alone).zip(&before) {
        assert_eq!(&trained(&app, id).await, alone, "job {id} ends as it does alone");
        let after = store.job_epochs(id).await.unwrap();
        assert_eq!(&after[..before.len()], before, "resumed from its checkpoint, not redone");
    }
}

/// The pids of the processes training attempts of `job_id` (`fugue train-attempt --job <id>`).
pub fn training_processes(job_id: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let command_line = std::fs::read(entry.path().join("cmdline")).ok()?;
            let words: Vec<&[u8]> = command_line.split(|byte| *byte == 0).collect();
            let is_attempt = words.contains(&b"train-attempt".as_slice());
            let of_job = words.contains(&job_id.as_bytes());
            (is_attempt && of_job).then(|| entry.file_name().into_string().unwrap())
        })
        .collect()
}

/// The pid of the one process training `job_id`.
fn training_process(job_id: &str) -> String {
    let pids = training_processes(job_id);
    assert_eq!(pids.len(), 1, "one training process for job {job_id}: {pids:?}");
    pids[0].clone()
}

#[tokio::test]
async fn a_training_process_killed_by_a_signal_fails_its_own_attempt_only() {
    let database = TestDatabase::postgres().await;
    let app = spawn_app(Options { database, train_workers: 2, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    let dataset = upload_mini(&app).await;
    let bodies = [job(&dataset, 5), job(&dataset, 6)];
    let alone = each_alone(&app, &bodies).await;

    let ids = started_together(&app, &store, &bodies).await;
    let (crashing, bystander) = (&ids[0], &ids[1]);
    wait_for(&store, crashing, "a second epoch", |_, epochs| epochs.len() >= 2).await;
    let before = epochs_mid_training(&store, crashing).await;
    let status = std::process::Command::new("kill").args(["-KILL", &training_process(crashing)]).status();
    assert!(status.unwrap().success());

    assert_eq!(&trained(&app, crashing).await, &alone[0], "the crashed job resumes exactly");
    assert_eq!(&trained(&app, bystander).await, &alone[1], "the other job never noticed");
    let crashed = store.job(crashing).await.unwrap().unwrap();
    assert_eq!(crashed.attempt, 2, "the crash cost one attempt: {crashed:?}");
    let error = crashed.error.unwrap_or_default();
    assert!(error.contains("killed by signal 9"), "the recorded error says how it ended: {error}");
    let after = store.job_epochs(crashing).await.unwrap();
    assert_eq!(&after[..before.len() - 1], &before[..before.len() - 1], "resumed from its checkpoint");
    assert_eq!(store.job(bystander).await.unwrap().unwrap().attempt, 1);
}
