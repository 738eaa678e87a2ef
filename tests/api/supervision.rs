//! A generation worker that fails while stepping fails its sessions with an error,
//! restarts with its models reloaded, frees every place its sessions held, and
//! serves the next requests; `/ready` and the metrics say it restarted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::generate::{composed, messages, open_stream};
use crate::support::{Options, error_body, project_path, spawn_app};

/// A copy of the bundled default model, as `name`.
fn copy_default_model(models_dir: &Path, name: &str) -> PathBuf {
    let dir = models_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["meta.json", "model.safetensors", "originality.json"] {
        std::fs::copy(project_path("models/default").join(file), dir.join(file)).unwrap();
    }
    dir
}

/// A copy of the bundled default model that loads, but whose every step fails:
/// its vocabulary lacks the last token its network writes, so the mask the
/// decoder builds does not fit the network's output.
fn write_failing_model(models_dir: &Path, name: &str) {
    let dir = copy_default_model(models_dir, name);
    let mut meta: Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    meta["representation"]["vocabulary"].as_array_mut().unwrap().pop();
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

#[tokio::test]
async fn a_failed_worker_fails_its_sessions_restarts_and_serves_again() {
    let app =
        spawn_app(Options { max_sessions_per_worker: 2, queue_max_waiting: 0, ..Options::default() }).await;
    let models = app.models_dir.clone();
    copy_default_model(&models, "default");
    write_failing_model(&models, "failing");

    // A long piece is under way on the worker when the failing model steps there.
    let mut long = open_stream(&app, &json!({"length": {"notes": 2000}, "seed": 1})).await;
    let start: Value = serde_json::from_str(long.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(start["type"], "start");
    let failed = messages(&app, &json!({"model": "failing", "length": {"notes": 8}})).await;
    let error = &failed.last().unwrap()["error"];
    assert_eq!(error["code"], "unavailable", "{failed:?}");
    assert!(error["message"].as_str().unwrap().contains("failed"), "{error}");

    // The long piece failed with it, with the same error, and stored nothing.
    let mut ended_with = Value::Null;
    while let Some(Ok(Message::Text(text))) =
        tokio::time::timeout(Duration::from_secs(30), long.next()).await.unwrap()
    {
        ended_with = serde_json::from_str(&text).unwrap();
        if ended_with["type"] != "notes" {
            break;
        }
    }
    assert_eq!(ended_with["type"], "error", "{ended_with}");
    assert_eq!(ended_with["error"]["code"], "unavailable");
    let stored: Value = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(stored.as_array().unwrap().len(), 0);

    // The worker restarted: both places are free again (no queue here, so a
    // place still held would answer 429), and pieces are made as before.
    // While it reloads, /ready says so; then it runs again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let ready: Value = app.get("/ready").await.json().await.unwrap();
        if ready["workers"][0]["state"] != "restarting" {
            break ready;
        }
        assert_eq!(ready["checks"]["generation"], "no generation worker is running (cpu restarting)");
        assert!(std::time::Instant::now() < deadline, "the worker never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["checks"]["generation"], "ok", "{ready}");
    assert_eq!(ready["workers"][0]["restarts"], 1, "{ready}");
    assert_eq!(ready["workers"][0]["state"], "running", "{ready}");
    assert_eq!(ready["workers"][0]["live"], 0, "{ready}");
    let request = json!({"length": {"notes": 16}, "seed": 3});
    let (one, two) = tokio::join!(
        app.client.post(app.url("/v1/generate")).json(&request).send(),
        app.client.post(app.url("/v1/generate")).json(&request).send(),
    );
    assert_eq!(one.unwrap().status(), StatusCode::CREATED);
    assert_eq!(two.unwrap().status(), StatusCode::CREATED);
    assert_eq!(composed(&app, &request).await["notes"].as_array().unwrap().len(), 16);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"fugue_generate_worker_restarts_total{device="cpu",worker="0"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"fugue_generate_worker_up{device="cpu",worker="0"} 1"#), "{metrics}");

    // The failing model fails again, over REST too, and the server stays up.
    let response =
        app.client.post(app.url("/v1/generate")).json(&json!({"model": "failing"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_body(response).await["error"]["code"], "unavailable");
}
