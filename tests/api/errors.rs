use reqwest::StatusCode;

use crate::support::{Options, error_body, spawn_app};

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app(Options::default()).await;
    for path in ["/v1/nothing-here", "/nothing.html"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = error_body(response).await;
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn wrong_method_answers_json_405() {
    let app = spawn_app(Options::default()).await;
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_body(response).await["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn oversized_bodies_answer_json_413() {
    let app = spawn_app(Options { max_body_bytes: 1024, ..Options::default() }).await;
    let response = app
        .client
        .post(app.url("/v1/system"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_body(response).await["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app(Options::default()).await;
    let generated = app.get("/health").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let echoed =
        app.client.get(app.url("/no/such/route")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
}
