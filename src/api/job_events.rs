//! A job's events to a client that follows it: over a WebSocket, or as
//! Server-Sent Events for `Accept: text/event-stream`; the same for every kind of
//! job.

use std::convert::Infallible;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;

/// How the client asked to follow: a WebSocket upgrade, or Server-Sent Events.
pub enum Wanted {
    Socket(WebSocketUpgrade),
    ServerSentEvents,
}

/// 406 unless the request is a WebSocket upgrade or accepts `text/event-stream`.
pub fn wanted(
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Wanted, ApiError> {
    let wants_sse =
        super::accept::preferred(headers, &["application/json", "text/event-stream"]) == "text/event-stream";
    match upgrade {
        Ok(upgrade) => Ok(Wanted::Socket(upgrade)),
        Err(_) if wants_sse => Ok(Wanted::ServerSentEvents),
        Err(_) => Err(ApiError::NotAcceptable(
            "open a WebSocket, or send `Accept: text/event-stream` for Server-Sent Events".to_owned(),
        )),
    }
}

/// Sends `events` as JSON, one per WebSocket text message or SSE `data:` line,
/// and closes when they end.
pub fn respond<E: Serialize + Send + 'static>(wanted: Wanted, events: mpsc::Receiver<E>) -> Response {
    match wanted {
        Wanted::Socket(upgrade) => upgrade
            .protocols([super::WEBSOCKET_AUTH_PROTOCOL])
            .on_upgrade(move |socket| stream_to_socket(socket, events))
            .into_response(),
        Wanted::ServerSentEvents => {
            let stream = ReceiverStream::new(events)
                .map(|event| Ok::<_, Infallible>(Event::default().json_data(event).unwrap_or_default()));
            Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
        }
    }
}

async fn stream_to_socket<E: Serialize>(mut socket: WebSocket, mut events: mpsc::Receiver<E>) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let Ok(text) = serde_json::to_string(&event) else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
