use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Options, project_path, spawn_app};

#[test]
fn committed_document_matches_the_code() {
    let generated = serde_json::to_value(fugue::api::openapi()).unwrap();
    let path = project_path("openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == generated,
        "openapi.json is stale: run `target/debug/fugue openapi > openapi.json` and commit it"
    );
}

#[tokio::test]
async fn served_document_is_openapi_3_1_with_every_route() {
    let app = spawn_app(Options::default()).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/health", "/ready", "/metrics", "/v1/system"] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
}
