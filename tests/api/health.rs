use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Options, TestDatabase, spawn_app};

#[tokio::test]
async fn health_is_alive() {
    let app = spawn_app(Options::default()).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn ready_reports_a_missing_default_model() {
    let app = spawn_app(Options::default()).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["database"], "ok");
    let model = body["checks"]["default_model"].as_str().unwrap();
    assert!(model.contains("not found") && model.contains("default/meta.json"), "{model}");
}

#[tokio::test]
async fn ready_with_database_and_model_on_sqlite() {
    let app = spawn_app(Options { with_default_model: true, ..Options::default() }).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let workers = serde_json::json!([{"device": "cpu", "state": "running", "restarts": 0, "live": 0}]);
    let checks = serde_json::json!({"database": "ok", "default_model": "ok", "generation": "ok"});
    assert_eq!(body, serde_json::json!({"ready": true, "checks": checks, "workers": workers}));
}

#[tokio::test]
async fn ready_with_database_and_model_on_postgres() {
    let database = TestDatabase::postgres().await;
    let app = spawn_app(Options { database, with_default_model: true, ..Options::default() }).await;
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK);
    let system: Value = app.get("/v1/system").await.json().await.unwrap();
    assert_eq!(system["database"], "postgres");
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let app = spawn_app(Options::default()).await;
    for _ in 0..3 {
        app.get("/health").await;
    }
    app.get("/no/such/page").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"fugue_http_requests_total{method="GET",route="/health",status="200"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"fugue_http_request_duration_seconds_count{method="GET",route="/health"} 3"#));
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
}

#[tokio::test]
async fn system_describes_devices_and_database() {
    let app = spawn_app(Options::default()).await;
    let body: Value = app.get("/v1/system").await.json().await.unwrap();
    assert_eq!(body["database"], "sqlite");
    let migrations = std::fs::read_dir(crate::support::project_path("migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"))
        .count();
    assert_eq!(body["schema_version"], migrations, "every migration applied");
    assert_eq!(body["default_model"], "default");
    assert_eq!(body["devices"]["devices"], serde_json::json!(["cpu"]));
    assert_eq!(body["devices"]["cuda_library_loaded"], true);
}

#[tokio::test]
async fn docs_and_page_are_served() {
    let app = spawn_app(Options::default()).await;
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<title>fugue</title>"));
}
