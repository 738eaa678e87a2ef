//! Hyperparameter searches: a training job that trains several trials by
//! successive halving and registers the best, through the HTTP API.

use fugue::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::attempts::training_processes;
use crate::jobs::{finished, upload_mini};
use crate::support::{Options, TestDatabase, error_body, removed_soon, spawn_app, sse_messages};
use crate::training::{meta, train_command};
use crate::workers::{submit, wait_for};

/// A two-trial search of a tiny `fugue` network on jsb-mini: its learning rate
/// drawn from four decades, so the trials' losses differ plainly. `epochs` per
/// trial at most: the first rung trains each to half of them.
fn two_trial_search(dataset_id: &str, epochs: u32, hidden_size: u32) -> Value {
    json!({
        "dataset_id": dataset_id,
        "preset": "fugue",
        "hyperparameters": {"epochs": epochs, "patience": epochs, "hidden_size": hidden_size, "layers": 1,
                            "embedding_size": 8, "window": 16, "batch_size": 8, "seed": 3},
        "search": {"trials": 2, "budget_minutes": 1,
                   "space": {"learning_rate": {"low": 1e-5, "high": 1e-1, "scale": "log"}}}
    })
}

/// Each trial's (number, drawn learning rate, stopped, best loss, epochs).
fn trials(job: &Value) -> Vec<(u64, f64, bool, f64, usize)> {
    job["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trial| {
            (
                trial["trial"].as_u64().unwrap(),
                trial["hyperparameters"]["learning_rate"].as_f64().unwrap(),
                trial["stopped"].as_bool().unwrap(),
                trial["best_valid_loss"].as_f64().unwrap(),
                trial["epochs"].as_array().unwrap().len(),
            )
        })
        .collect()
}

async fn a_two_trial_search_registers_the_better_trial(database: TestDatabase) {
    let app = spawn_app(Options { database, train_workers: 1, ..Options::default() }).await;
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &two_trial_search(&dataset, 2, 16)).await;
    let events = sse_messages(app.url(&format!("/v1/training-jobs/{id}/events"))).await;
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["search"]["trials"], 2);
    assert_eq!(done["epochs"], json!([]), "a search's epochs are its trials'");

    // Both trials trained the first rung (one epoch); the better went on to the second.
    let found = trials(&done);
    assert_eq!(found.len(), 2, "{done}");
    let winner = done["winner"].as_u64().expect("a winner");
    let (better, worse) =
        if found[0].3 < found[1].3 { (&found[0], &found[1]) } else { (&found[1], &found[0]) };
    assert_eq!(better.0, winner, "the better by validation loss won: {found:?}");
    assert_eq!((better.2, better.4), (false, 2), "the winner trained both rungs: {found:?}");
    assert_eq!((worse.2, worse.4), (true, 1), "the other stopped after the first: {found:?}");
    assert_ne!(better.1, worse.1, "two draws of the learning rate");

    // The registered model is the winner's, and says so.
    let model_id = done["model_id"].as_str().unwrap();
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(app.data_dir.join("models").join(model_id).join("meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["search"]["winner"], winner);
    let model: Value = app.get(&format!("/v1/models/{model_id}")).await.json().await.unwrap();
    assert_eq!(model["search"], meta["search"], "the model's page carries its search");
    assert_eq!(meta["hyperparameters"]["learning_rate"].as_f64(), Some(better.1));
    assert_eq!(done["hyperparameters"], meta["hyperparameters"], "the job's are the winner's too");
    let losses: Vec<f64> = meta["search"]["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["best_valid_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 2);
    assert_eq!(losses[worse.0 as usize], worse.3, "the other trial's best loss is recorded");
    assert_eq!(meta["training"]["best_valid_loss"].as_f64(), Some(better.3));
    assert!(removed_soon(&app.data_dir.join("checkpoints").join(&id)).await, "every trial's checkpoint goes");

    // The events carry each trial's epochs with its hyperparameters and rung, and
    // the halving's verdict.
    let trial_events: Vec<&Value> = events.iter().filter(|event| event["type"] == "trial").collect();
    for (number, rate, _, _, epochs) in &found {
        let of_trial: Vec<&&Value> =
            trial_events.iter().filter(|event| event["trial"]["trial"] == *number).collect();
        let streamed: Vec<u64> =
            of_trial.iter().filter_map(|event| event["metrics"]["epoch"].as_u64()).collect();
        assert_eq!(streamed.len(), *epochs, "trial {number}: {of_trial:?}");
        assert!(of_trial.iter().all(|event| event["trial"]["hyperparameters"]["learning_rate"] == *rate));
        assert!(of_trial.iter().all(|event| event["trial"]["rung"].is_u64()));
    }
    let stopped = trial_events
        .iter()
        .any(|event| event["trial"]["trial"] == worse.0 && event["trial"]["stopped"] == true);
    assert!(stopped, "the stop is streamed: {trial_events:?}");
}

#[tokio::test]
async fn a_two_trial_search_registers_the_better_trial_on_sqlite() {
    a_two_trial_search_registers_the_better_trial(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn a_two_trial_search_registers_the_better_trial_on_postgres() {
    a_two_trial_search_registers_the_better_trial(TestDatabase::postgres().await).await;
}

/// Progress within an epoch names the trial it is of: each progress event comes
/// while that trial's epoch runs, before its `trial` event.
#[tokio::test]
async fn a_search_streams_progress_within_each_epoch_naming_its_trial() {
    let app = spawn_app(Options { train_workers: 1, ..Options::default() }).await;
    let dataset = upload_mini(&app).await;
    // Epochs of a few seconds, of some 250 quick steps, as in `jobs::`.
    let mut body = two_trial_search(&dataset, 2, 256);
    body["hyperparameters"]["batch_size"] = json!(1);
    let id = submit(&app, &body).await;
    let events = sse_messages(app.url(&format!("/v1/training-jobs/{id}/events"))).await;
    assert_eq!(finished(&app, &id).await["state"], "succeeded");
    let mut epochs_done: Vec<(u64, u64)> = Vec::new();
    let mut progressed = Vec::new();
    for event in &events {
        match event["type"].as_str().unwrap() {
            "progress" => {
                let progress = &event["progress"];
                let of = (progress["trial"].as_u64().expect("a trial"), progress["epoch"].as_u64().unwrap());
                assert!(!epochs_done.contains(&of), "progress of a finished epoch: {event}");
                progressed.push(of);
            }
            "trial" => {
                if let Some(epoch) = event["metrics"]["epoch"].as_u64() {
                    epochs_done.push((event["trial"]["trial"].as_u64().unwrap(), epoch));
                }
            }
            _ => {}
        }
    }
    // Three epochs in all (each trial's first, the winner's second), each with progress.
    assert_eq!(epochs_done.len(), 3, "{epochs_done:?}");
    for epoch in &epochs_done {
        assert!(
            progressed.contains(epoch),
            "no progress within trial {} epoch {}: {progressed:?}",
            epoch.0,
            epoch.1
        );
    }
}

/// The job's trials as they end, with the attempt that ran each epoch.
async fn epochs_by_trial(store: &Store, id: &str) -> Vec<(i64, i64, i64, String)> {
    let epochs = store.job_epochs(id).await.unwrap();
    epochs.into_iter().map(|row| (row.trial, row.epoch, row.attempt, row.metrics)).collect()
}

#[tokio::test]
async fn a_search_killed_mid_trial_resumes_that_trial_and_ends_as_an_uninterrupted_one() {
    let app = spawn_app(Options { train_workers: 1, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    let dataset = upload_mini(&app).await;
    // Epochs of a few tenths of a second: four per trial, two in the first rung.
    let body = two_trial_search(&dataset, 4, 256);
    let whole = finished(&app, &submit(&app, &body).await).await;
    assert_eq!(whole["state"], "succeeded", "{whole}");

    let id = submit(&app, &body).await;
    // The drawn trials are the job's from the start: trial 0's first epoch shows
    // before its rung ends.
    wait_for(&store, &id, "trial 0's first epoch", |_, epochs| !epochs.is_empty()).await;
    let early: Value = app.get(&format!("/v1/training-jobs/{id}")).await.json().await.unwrap();
    assert_eq!(early["trials"].as_array().unwrap().len(), 2, "{early}");
    assert!(!early["trials"][0]["epochs"].as_array().unwrap().is_empty(), "{early}");
    // Trial 0 has ended its rung; trial 1 has checkpointed the first of its two epochs.
    let checkpoint = app.data_dir.join(format!("checkpoints/{id}/trial-1/manifest.json"));
    wait_for(&store, &id, "trial 1's first checkpoint", |_, _| checkpoint.exists()).await;
    let pids = training_processes(&id);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let status = std::process::Command::new("kill").args(["-KILL", &pids[0]]).status();
    assert!(status.unwrap().success());
    let before = epochs_by_trial(&store, &id).await;
    assert!(before.iter().all(|(trial, _, attempt, _)| *trial <= 1 && *attempt == 1), "{before:?}");

    let resumed = finished(&app, &id).await;
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    assert_eq!(resumed["attempt"], 2, "the kill cost one attempt");
    let after = epochs_by_trial(&store, &id).await;
    // The last epoch recorded may not have been checkpointed yet: it is trained again.
    for epoch in &before[..before.len() - 1] {
        assert!(after.contains(epoch), "epoch {epoch:?} was kept, not trained again: {after:?}");
    }
    let trial_1_epoch_1 = after.iter().find(|(trial, epoch, ..)| (*trial, *epoch) == (1, 1));
    assert_eq!(trial_1_epoch_1.map(|e| e.2), Some(1), "trial 1 resumed from its checkpoint: {after:?}");
    let resumed_trial_1 = after.iter().any(|(trial, _, attempt, _)| (*trial, *attempt) == (1, 2));
    assert!(resumed_trial_1, "the second attempt trained the rest of trial 1: {after:?}");
    assert_eq!(trials(&resumed), trials(&whole), "the same trials, losses and verdicts");
    assert_eq!(resumed["winner"], whole["winner"]);
}

#[tokio::test]
async fn bad_searches_name_the_field_at_fault() {
    let app = spawn_app(Options::default()).await;
    let dataset = upload_mini(&app).await;
    let search = |search: Value| json!({"dataset_id": dataset, "preset": "fugue", "search": search});
    let space = |space: Value| search(json!({"trials": 4, "budget_minutes": 10, "space": space}));
    let cases = [
        (search(json!({"trials": 1, "budget_minutes": 10})), "search.trials"),
        (search(json!({"trials": 33, "budget_minutes": 10})), "search.trials"),
        (search(json!({"trials": "four", "budget_minutes": 10})), "search.trials"),
        (search(json!({"trials": 4, "budget_minutes": 0.5})), "search.budget_minutes"),
        (search(json!({"trials": 4, "budget_minutes": 10081})), "search.budget_minutes"),
        (search(json!({"trials": 4})), "search.budget_minutes"),
        (search(json!({"trials": 4, "budget_minutes": 10, "rungs": 3})), "search.rungs"),
        (space(json!({"depth": {"low": 1, "high": 2}})), "search.space.depth"),
        (space(json!({"nade_hidden_size": {"low": 8, "high": 16}})), "search.space.nade_hidden_size"),
        (
            space(json!({"validation_fraction": {"low": 0.1, "high": 0.2}})),
            "search.space.validation_fraction",
        ),
        (space(json!({"dropout": {"low": 0.5, "high": 0.2}})), "search.space.dropout"),
        (space(json!({"dropout": {"low": 0.2, "high": 0.2}})), "search.space.dropout"),
        (space(json!({"dropout": {"low": 0.1, "high": 0.95}})), "search.space.dropout"),
        (
            space(json!({"weight_decay": {"low": 0, "high": 0.1, "scale": "log"}})),
            "search.space.weight_decay",
        ),
        (space(json!({"hidden_size": {"low": 8.5, "high": 16}})), "search.space.hidden_size"),
        (
            space(json!({"dropout": {"low": 0.1, "high": 0.3, "scale": "cubic"}})),
            "search.space.dropout.scale",
        ),
        (
            json!({"dataset_id": dataset, "preset": "fugue", "hyperparameters": {"dropout": 0.3},
                   "search": {"trials": 4, "budget_minutes": 10, "space": {"dropout": {"low": 0.1, "high": 0.3}}}}),
            "search.space.dropout",
        ),
        (
            json!({"dataset_id": dataset, "preset": "fugue", "hyperparameters": {"budget_minutes": 30},
                   "search": {"trials": 4, "budget_minutes": 10}}),
            "hyperparameters.budget_minutes",
        ),
    ];
    for (body, field) in cases {
        let response = app.client.post(app.url("/v1/training-jobs")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = error_body(response).await;
        assert_eq!(error["error"]["details"]["field"], field, "{body}: {error}");
    }
    let jobs: Value = app.get("/v1/training-jobs").await.json().await.unwrap();
    assert_eq!(jobs, json!([]), "nothing was queued");

    // The edges are allowed; the job shows the space it searches, the preset's
    // default less what the request sets.
    let allowed = json!({"dataset_id": dataset, "preset": "fugue", "hyperparameters": {"hidden_size": 16},
                         "search": {"trials": 32, "budget_minutes": 10080}});
    let response = app.client.post(app.url("/v1/training-jobs")).json(&allowed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    let names: Vec<&String> = job["search"]["space"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["dropout", "embedding_size", "learning_rate"]);
    assert_eq!(job["trials"], json!([]), "none drawn before a worker starts it");
}

#[test]
fn fugue_train_searches_from_its_flags_and_writes_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let mut command = train_command("pianoroll-lstm", &model, 2);
    command.args(["--search-trials", "3", "--search-budget-minutes", "1", "--search-space"]);
    command.arg("learning_rate=1e-5..0.1:log");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("trial 2  epoch   1/2"), "{stderr}");
    let search = &meta(&model)["search"];
    let winner = search["winner"].as_u64().expect("a winner");
    let trials = search["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    // Three trials: two rungs, the first training all three, the second the best.
    let best = trials.iter().min_by(|a, b| {
        a["best_valid_loss"].as_f64().unwrap().total_cmp(&b["best_valid_loss"].as_f64().unwrap())
    });
    assert_eq!(best.unwrap()["trial"], winner, "{search}");
    let stopped = trials.iter().filter(|trial| trial["stopped"] == true).count();
    assert_eq!(stopped, 2, "{search}");
    assert!(!dir.path().join("model.checkpoint").exists(), "every trial's checkpoint is removed");

    let mut refused = train_command("pianoroll-lstm", &dir.path().join("x"), 2);
    refused.args(["--search-trials", "33", "--search-budget-minutes", "1"]);
    let output = refused.output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("search.trials: must be 2 to 32"));
}

#[tokio::test]
async fn a_cancelled_search_stops_and_leaves_no_checkpoint_of_any_trial() {
    let app = spawn_app(Options { train_workers: 1, ..Options::default() }).await;
    let store = Store::open(&app.database_url).await.unwrap();
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &two_trial_search(&dataset, 40, 256)).await;
    let checkpoint = app.data_dir.join(format!("checkpoints/{id}/trial-0/manifest.json"));
    wait_for(&store, &id, "trial 0's first checkpoint", |_, _| checkpoint.exists()).await;
    let cancel = app.client.post(app.url(&format!("/v1/training-jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!((&done["model_id"], &done["winner"]), (&Value::Null, &Value::Null), "{done}");
    let trials = done["trials"].as_array().unwrap().iter();
    let trained: usize = trials.map(|trial| trial["epochs"].as_array().unwrap().len()).sum();
    assert!(trained < 40, "stopped long before the search's end: {done}");
    assert!(removed_soon(&app.data_dir.join("checkpoints").join(&id)).await, "every trial's checkpoint goes");
}
