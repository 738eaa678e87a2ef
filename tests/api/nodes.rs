//! Several nodes on one machine: two `fugue serve` (API and generation, training
//! nothing) and two `fugue worker` processes, each with a data dir of its own,
//! sharing one Postgres and one S3 endpoint (moto). Nothing but the database and
//! the object store connects them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use fugue::objects::Objects;
use fugue::store::Store;

use crate::jobs::{tiny_job, upload_mini};
use crate::support::{
    Options, TestDatabase, fast_queue_env, listening_addr, midi_files, s3_bucket, s3_env, shared_data,
    spawn_app, sse_messages,
};
use crate::workers::submit;

const FUGUE: &str = env!("CARGO_BIN_EXE_fugue");

/// A `fugue` process of the cluster, killed when dropped.
struct Node {
    child: Child,
    /// `host:port` for servers.
    addr: Option<String>,
    _dir: tempfile::TempDir,
}

struct Cluster {
    database_url: String,
    object_store: String,
}

impl Cluster {
    fn command(&self, subcommand: &str, dir: &Path) -> Command {
        let mut command = Command::new(FUGUE);
        command
            .arg(subcommand)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("FUGUE_OBJECT_STORE", &self.object_store)
            .envs(s3_env())
            .env("FUGUE_DATA_DIR", dir.join("data"))
            .env("FUGUE_MODELS_DIR", dir.join("models"))
            .env("FUGUE_LOG_FORMAT", "json")
            .envs(fast_queue_env());
        command
    }

    /// `fugue serve` on a free port, with no training workers of its own.
    fn serve(&self) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut child = self
            .command("serve", dir.path())
            .env("FUGUE_ADDR", "127.0.0.1:0")
            .env("FUGUE_TRAIN_WORKERS", "0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = listening_addr(&mut child);
        Node { child, addr: Some(addr), _dir: dir }
    }

    fn worker(&self) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let child = self
            .command("worker", dir.path())
            .env("FUGUE_TRAIN_WORKERS", "1")
            .env("FUGUE_TRAIN_DEVICES", "cpu")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Node { child, addr: None, _dir: dir }
    }
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.as_deref().unwrap())
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process id in a worker's name (`host:pid/slot`).
fn pid_of(worker: &str) -> String {
    worker.rsplit_once(':').map_or("", |(_, rest)| rest).split('/').next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn two_servers_and_two_workers_share_one_database_and_one_object_store() {
    let database = TestDatabase::postgres().await;
    let cluster = Cluster { database_url: database.url().to_owned(), object_store: s3_bucket().await };
    let (a, b) = (cluster.serve(), cluster.serve());
    let workers = [cluster.worker(), cluster.worker()];
    let client = reqwest::Client::new();
    let store = Store::connect(database.url()).await.unwrap();

    // Upload through A.
    let mut form = Form::new().text("name", "mini");
    for path in midi_files(&shared_data("jsb-mini/train")) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        form = form.part("files", Part::bytes(std::fs::read(&path).unwrap()).file_name(name));
    }
    let response = client.post(a.url("/v1/datasets")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let dataset = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // Train through A, epochs long enough (about half a second) to kill one midway.
    let job = json!({"dataset_id": dataset, "preset": "fugue", "name": "nodes",
        "hyperparameters": {"epochs": 8, "patience": 8, "hidden_size": 256, "layers": 2, "embedding_size": 32,
                            "window": 64, "batch_size": 4, "seed": 3}});
    let response = client.post(a.url("/v1/training-jobs")).json(&job).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // Its events, followed on both nodes.
    let on_a = tokio::spawn(sse_messages(a.url(&format!("/v1/training-jobs/{id}/events"))));
    let on_b = tokio::spawn(sse_messages(b.url(&format!("/v1/training-jobs/{id}/events"))));

    // Two epochs in, kill -9 the worker that runs it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.job_epochs(&id).await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no two epochs: {:?}", store.job(&id).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = store.job(&id).await.unwrap().unwrap();
    let owner = running.worker.clone().unwrap();
    let (mut killed, survivor): (Vec<Node>, Vec<Node>) =
        workers.into_iter().partition(|worker| pid_of(&owner) == worker.pid());
    assert_eq!(killed.len(), 1, "one of the two workers runs it: {owner}");
    killed[0].child.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    killed[0].child.wait().unwrap();
    let before = store.job_epochs(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.job(&id).await.unwrap().unwrap();
        if job.attempt == 2 && job.state.as_str() == "running" {
            assert_eq!(pid_of(&job.worker.unwrap()), survivor[0].pid());
            break;
        }
        assert!(Instant::now() < deadline, "never requeued: {job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requeued_after = killed_at.elapsed();

    let (events_a, events_b) = (on_a.await.unwrap(), on_b.await.unwrap());
    for events in [&events_a, &events_b] {
        assert_eq!(events.first().unwrap()["type"], "snapshot");
        assert_eq!(events.last().unwrap(), &json!({"type": "end", "state": "succeeded"}));
        let epochs: Vec<u64> = events
            .iter()
            .filter(|e| e["type"] == "epoch")
            .map(|e| e["metrics"]["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(epochs.last(), Some(&8), "{events:?}");
    }
    let done: Value =
        client.get(b.url(&format!("/v1/training-jobs/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    let after = store.job_epochs(&id).await.unwrap();
    assert_eq!(after.iter().map(|e| e.epoch).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let resumed_at = after.iter().find(|e| e.attempt == 2).unwrap().epoch;
    assert!(resumed_at > 1, "the second attempt resumed from the stored checkpoint instead of starting over");
    let redone = before.iter().filter(|e| after[(e.epoch - 1) as usize].attempt == 2).count();

    // Exactly one model, in the database and in the object store.
    let models: Value = client.get(b.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    let models: Vec<&Value> =
        models.as_array().unwrap().iter().filter(|m| m["job_id"] == id.as_str()).collect();
    let options: Vec<(String, String)> =
        s3_env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let objects =
        Objects::open_with(Some(&cluster.object_store), Path::new("/nonexistent"), &options).unwrap();
    let manifests: Vec<String> = objects
        .list("models")
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.ends_with("/manifest.json"))
        .collect();
    let lost = usize::from(done["state"] != "succeeded");
    eprintln!(
        "multi-node: kill -9 of the worker mid-epoch; requeued and claimed by the other after {} ms \
         (lease timeout 1500 ms); jobs lost {lost}; epochs redone {redone} of {} recorded; models {} \
         (duplicates {}); manifests in the store {}",
        requeued_after.as_millis(),
        before.len(),
        models.len(),
        models.len().saturating_sub(1),
        manifests.len()
    );
    assert!(redone <= 1, "at most the epoch under way is redone: {redone}");
    assert_eq!(models.len(), 1, "{models:?}");
    let model = models[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(manifests, [format!("models/{model}/manifest.json")]);
    // The worker removes the checkpoint once the success is committed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !objects.list(&format!("checkpoints/{id}")).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the checkpoint is never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Generate with it from B, which never saw it trained.
    let generated = client
        .post(b.url("/v1/generate"))
        .json(&json!({"model": model, "length": {"notes": 16}, "seed": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(generated.status(), StatusCode::CREATED, "{}", generated.text().await.unwrap());

    // Streams on B hold the model: deleting it through A is a conflict. B's
    // streams of one model share one hold (one row), kept until the last ends.
    let url = format!("ws://{}/v1/generate/stream", b.addr.as_deref().unwrap());
    let mut sockets = Vec::new();
    for seed in [2, 3] {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let request = json!({"model": model, "length": {"notes": 2000}, "pacing": "realtime", "seed": seed});
        socket.send(Message::Text(request.to_string().into())).await.unwrap();
        let first = socket.next().await.unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(first.to_text().unwrap()).unwrap()["type"], "start");
        sockets.push(socket);
    }
    assert_eq!(holds(database.url(), &model).await, 1, "two streams on one node, one hold");
    let refused = client.delete(a.url(&format!("/v1/models/{model}"))).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT, "{}", refused.text().await.unwrap());
    // One stream ends; the other still holds the model.
    let mut first = sockets.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = client.delete(a.url(&format!("/v1/models/{model}"))).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT, "{}", refused.text().await.unwrap());
    // Once the last stream ends, the deletion goes through.
    let mut socket = sockets.remove(0);
    socket.close(None).await.unwrap();
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.delete(a.url(&format!("/v1/models/{model}"))).send().await.unwrap();
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(Instant::now() < deadline, "the stream's hold was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(objects.manifest(&format!("models/{model}")).await.unwrap().is_none());
    let gone = client.get(b.url(&format!("/v1/models/{model}"))).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    store.close().await;
}

/// The rows holding `model` against deletion.
async fn holds(url: &str, model: &str) -> i64 {
    use sqlx::{Connection, Row};
    let mut connection = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let row = sqlx::query("SELECT count(*) AS holds FROM model_holds WHERE model_id = $1")
        .bind(model)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    row.get::<i64, _>("holds")
}

/// Transactions committed in the test's database so far (Postgres counts each
/// statement outside a transaction as one).
async fn commits(url: &str) -> i64 {
    use sqlx::{Connection, Row};
    let mut connection = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let row = sqlx::query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    row.get::<i64, _>("xact_commit")
}

/// 50 clients follow a job's events: the server waits for Postgres to notify it
/// that the job changed (reading every 10 s in case a notification was lost)
/// instead of reading the job for every follower every 250 ms.
#[tokio::test]
async fn fifty_event_followers_wait_for_notifications_instead_of_polling() {
    let app = spawn_app(Options { database: TestDatabase::postgres().await, ..Options::default() }).await;
    let dataset = upload_mini(&app).await;
    let id = submit(&app, &tiny_job(&dataset, 2)).await; // stays queued: no workers
    let followers: Vec<_> = (0..50)
        .map(|_| tokio::spawn(sse_messages(app.url(&format!("/v1/training-jobs/{id}/events")))))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(6);
    let before = commits(&app.database_url).await;
    tokio::time::sleep(window).await;
    let after = commits(&app.database_url).await;
    let rate = (after - before - 1) as f64 / window.as_secs_f64();

    // A change reaches every follower at once, not at the next poll.
    let cancelled_at = Instant::now();
    let response = app.client.post(app.url(&format!("/v1/training-jobs/{id}/cancel"))).send().await.unwrap();
    assert!(response.status().is_success());
    for follower in followers {
        let events = follower.await.unwrap();
        assert_eq!(events.last().unwrap(), &json!({"type": "end", "state": "cancelled"}));
    }
    let ended_after = cancelled_at.elapsed();
    eprintln!(
        "50 event followers of a queued job: {rate:.1} database transactions/s; \
         all 50 saw the cancellation within {} ms",
        ended_after.as_millis()
    );
    assert!(rate < 25.0, "{rate:.1} transactions/s for 50 idle followers");
    assert!(ended_after < Duration::from_secs(5), "{ended_after:?}: a poll, not a notification");
}
