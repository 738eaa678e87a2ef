//! Model evaluations over HTTP: a queued job that generates pieces on the server's
//! engine, compares them with the model's held-out files, and stores the result
//! with the model; its progress and result as job events; its bounds.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    Options, TestApp, TestDatabase, error_body, fast_queue_env, listening_addr, project_path, spawn_app,
};

async fn evaluate(app: &TestApp, model: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(&format!("/v1/models/{model}/evaluations"))).json(body).send().await.unwrap()
}

/// Every event of a job's Server-Sent Events stream, to its end.
async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    crate::support::sse_messages(app.url(&format!("/v1/evaluation-jobs/{id}/events"))).await
}

/// What `fugue evaluate --dry-run` finds for the same model, pieces and seeds.
fn evaluated_by_the_command(pieces: u32, notes: u32, seed: u64) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fugue"))
        .args(["evaluate", "--model"])
        .arg(project_path("models/default"))
        .args(["--pieces", &pieces.to_string(), "--notes", &notes.to_string(), "--seed", &seed.to_string()])
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn an_evaluation_runs_and_its_result_is_the_models(database: TestDatabase) {
    let app = spawn_app(Options { database, bundled_models: true, ..Options::default() }).await;
    let bundled: Value = app.get("/v1/models/default").await.json().await.unwrap();
    assert_eq!(bundled["music_evaluation"]["pieces"], 20, "what the bundled default ships with");

    let submitted = evaluate(&app, "default", &json!({"pieces": 3, "notes": 48, "seed": 5})).await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    let job: Value = submitted.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["model_id"], "default");
    assert_eq!(job["parameters"], json!({"pieces": 3, "notes_per_piece": 48, "first_seed": 5}));

    let events = events(&app, id).await;
    let kinds: Vec<&str> = events.iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"snapshot"), "{kinds:?}");
    assert_eq!(events.last().unwrap(), &json!({"type": "end", "state": "succeeded"}));
    let progress: Vec<i64> = events
        .iter()
        .filter(|event| event["type"] == "progress")
        .map(|event| event["pieces_done"].as_i64().unwrap())
        .collect();
    assert_eq!(progress.last(), Some(&3), "progress up to every piece: {kinds:?}");
    let evaluated = events.iter().find(|event| event["type"] == "evaluated").expect("the result as an event");

    let done: Value = app.get(&format!("/v1/evaluation-jobs/{id}")).await.json().await.unwrap();
    assert_eq!((done["state"].as_str(), done["pieces_done"].as_i64()), (Some("succeeded"), Some(3)));
    assert_eq!(done["evaluation"], evaluated["evaluation"]);

    // Stored with the model: its evaluation now, in place of the bundled one.
    let model: Value = app.get("/v1/models/default").await.json().await.unwrap();
    assert_eq!(model["music_evaluation"], done["evaluation"]);
    assert_eq!(model["music_evaluation"]["pieces"], 3);
    assert_eq!(model["music_evaluation"]["notes_per_piece"], 48);
    assert_eq!(model["music_evaluation"]["first_seed"], 5);
    // The same pieces, features and copies as `fugue evaluate` on its own engine.
    assert_eq!(model["music_evaluation"], evaluated_by_the_command(3, 48, 5));

    // An evaluation job is not a training job, nor the other way round.
    assert_eq!(app.get(&format!("/v1/training-jobs/{id}")).await.status(), StatusCode::NOT_FOUND);
    let listed: Value = app.get("/v1/training-jobs").await.json().await.unwrap();
    assert_eq!(listed, json!([]));
    assert_eq!(app.get("/v1/evaluation-jobs/nope").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_evaluation_job_runs_and_its_result_is_the_models_sqlite() {
    an_evaluation_runs_and_its_result_is_the_models(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn an_evaluation_job_runs_and_its_result_is_the_models_postgres() {
    an_evaluation_runs_and_its_result_is_the_models(TestDatabase::postgres().await).await;
}

/// Polls an evaluation job until `done` says so (at most `limit`).
async fn wait_for(base: &str, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let job: Value =
            reqwest::get(format!("{base}/v1/evaluation-jobs/{id}")).await.unwrap().json().await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "waited {limit:?}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Eight pieces of 300 notes: several seconds on a test server of the debug
/// build, long enough to be caught running.
const LONG: fn() -> Value = || json!({"pieces": 8, "notes": 300, "seed": 1});

#[tokio::test]
async fn a_server_that_stops_gives_its_evaluation_back_and_the_next_one_finishes_it() {
    let mut app = spawn_app(Options { bundled_models: true, ..Options::default() }).await;
    let job: Value = evaluate(&app, "default", &LONG()).await.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&app.url(""), &id, Duration::from_secs(30), |job| job["state"] == "running").await;
    app.restart().await;
    let given_back: Value = app.get(&format!("/v1/evaluation-jobs/{id}")).await.json().await.unwrap();
    assert!(["queued", "running"].contains(&given_back["state"].as_str().unwrap()), "{given_back}");
    let done = wait_for(&app.url(""), &id, Duration::from_secs(120), |job| job["state"] == "succeeded").await;
    // Given back at shutdown without using up an attempt.
    assert_eq!(done["attempt"], 1, "{done}");
    assert_eq!(done["evaluation"]["pieces"], 8);
}

/// `fugue serve` as a process of its own, so that it can be killed; killed when
/// dropped, whatever the test's outcome.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server with the bundled models, on `data_dir`'s SQLite file, with the
/// tests' short leases.
fn serve(data_dir: &std::path::Path) -> (Server, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fugue"))
        .arg("serve")
        .env_clear()
        .env("FUGUE_ADDR", "127.0.0.1:0")
        .env("FUGUE_DATA_DIR", data_dir)
        .env("FUGUE_MODELS_DIR", project_path("models"))
        .env("FUGUE_TRAIN_WORKERS", "0")
        .env("FUGUE_LOG_FORMAT", "json")
        .envs(fast_queue_env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    (Server(child), format!("http://{addr}"))
}

#[tokio::test]
async fn an_evaluation_whose_server_dies_is_taken_up_by_another_after_its_lease() {
    let data_dir = tempfile::tempdir().unwrap();
    let (first, base) = serve(data_dir.path());
    let client = reqwest::Client::new();
    let submitted = client.post(format!("{base}/v1/models/default/evaluations")).json(&LONG()).send();
    let job: Value = submitted.await.unwrap().json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for(&base, &id, Duration::from_secs(30), |job| job["state"] == "running").await;
    drop(first);

    let (_second, base) = serve(data_dir.path());
    let done = wait_for(&base, &id, Duration::from_secs(120), |job| job["state"] == "succeeded").await;
    // The dead server's attempt counts: its lease ran out and the reaper requeued it.
    assert_eq!(done["attempt"], 2, "{done}");
    let model: Value = reqwest::get(format!("{base}/v1/models/default")).await.unwrap().json().await.unwrap();
    assert_eq!(model["music_evaluation"], done["evaluation"]);
}

#[tokio::test]
async fn a_bad_evaluation_request_is_refused_naming_the_field() {
    let app = spawn_app(Options { bundled_models: true, ..Options::default() }).await;
    for (body, field) in [
        (json!({"pieces": 0}), "pieces"),
        (json!({"pieces": 65}), "pieces"),
        (json!({"pieces": -1}), "pieces"),
        (json!({"pieces": "many"}), "pieces"),
        (json!({"notes": 0}), "notes"),
        (json!({"notes": 2001}), "notes"),
        (json!({"seed": u64::MAX}), "seed"),
        (json!({"piece": 3}), "piece"),
    ] {
        let refused = evaluate(&app, "default", &body).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_body(refused).await["error"]["details"]["field"], field, "{body}");
    }
    assert_eq!(
        evaluate(&app, "default", &json!({"pieces": 64, "notes": 1})).await.status(),
        StatusCode::ACCEPTED
    );
    let missing = evaluate(&app, "no-such-model", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A model trained on a benchmark JSON has no held-out files to compare with.
    let unfit = evaluate(&app, "jsb-pianoroll", &json!({})).await;
    assert_eq!(unfit.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(unfit).await["error"]["details"]["field"], "model");
}
