use reqwest::StatusCode;

use crate::support::{Options, error_body, spawn_app};

async fn keyed_app() -> crate::support::TestApp {
    spawn_app(Options { api_keys: vec!["alpha".into(), "beta".into()], ..Options::default() }).await
}

#[tokio::test]
async fn v1_needs_a_key_when_keys_are_configured() {
    let app = keyed_app().await;
    for path in ["/v1/system", "/v1/not-a-route", "/v1"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_body(response).await["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_any_right_one_admitted() {
    let app = keyed_app().await;
    let wrong = app.client.get(app.url("/v1/system")).bearer_auth("alph").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let basic = app.client.get(app.url("/v1/system")).basic_auth("alpha", Some("x")).send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    for key in ["alpha", "beta"] {
        let right = app.client.get(app.url("/v1/system")).bearer_auth(key).send().await.unwrap();
        assert_eq!(right.status(), StatusCode::OK, "{key}");
    }
}

#[tokio::test]
async fn operations_docs_and_page_stay_open() {
    let app = keyed_app().await;
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs/", "/"] {
        let status = app.get(path).await.status();
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn without_keys_v1_is_open() {
    let app = spawn_app(Options::default()).await;
    assert_eq!(app.get("/v1/system").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn browsers_websockets_carry_the_key_as_a_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = keyed_app().await;
    let url = format!("ws://{}/v1/generate/stream", app.addr);
    let refused = tokio_tungstenite::connect_async(url.clone()).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "bearer, gamma".parse().unwrap());
    let wrong = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(wrong.to_string().contains("401"), "{wrong}");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "bearer, beta".parse().unwrap());
    let (_, response) = tokio_tungstenite::connect_async(request).await.expect("the key opens the socket");
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
}
