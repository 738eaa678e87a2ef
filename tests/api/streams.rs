//! Endless, steerable realtime streams: the engine writes a realtime session only
//! a little ahead of its listener, so a steer is heard within that lookahead, and
//! an endless piece plays until the listener stops.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::generate::{bundled, generate, messages, open_stream};
use crate::support::error_body;

/// Reads the stream's messages for `wait`, returning the notes and other messages.
async fn read_for<S>(socket: &mut S, wait: Duration) -> (Vec<Value>, Vec<Value>)
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let (mut notes, mut others) = (Vec::new(), Vec::new());
    let until = Instant::now() + wait;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until.into(), socket.next()).await {
        if let Message::Text(text) = message {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "notes" {
                notes.extend(message["notes"].as_array().unwrap().iter().cloned());
            } else {
                others.push(message);
            }
        }
    }
    (notes, others)
}

#[tokio::test]
async fn an_endless_stream_plays_until_cancelled_and_a_steer_is_heard_within_the_lookahead() {
    let app = bundled(64).await;
    let before: Vec<Value> = app.get("/v1/compositions").await.json().await.unwrap();
    // Slow music (60 bpm): the engine writes it many times faster than it plays, so
    // only parking keeps it near its listener.
    let request = json!({"length": {"endless": true}, "pacing": "realtime", "tempo_bpm": 60, "seed": 2});
    let mut socket = open_stream(&app, &request).await;
    let (first, others) = read_for(&mut socket, Duration::from_secs(3)).await;
    assert_eq!(others[0]["type"], "start", "{others:?}");
    assert!(first.len() >= 4, "notes keep coming: {}", first.len());

    // A steer that is refused names its field, and the music plays on.
    socket
        .send(Message::Text(json!({"type": "control", "temperature": 9}).to_string().into()))
        .await
        .unwrap();
    let steered_at = Instant::now();
    socket
        .send(Message::Text(
            json!({"type": "control", "key": "C", "scale": "major", "pitch_range": [60, 72]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let (later, others) = read_for(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0]["error"]["details"]["field"], "temperature");
    // The steer reaches the session at once; what was written before it is at most
    // the lookahead (1.5 s) ahead of the listener. Notes from 2.5 s after it obey it.
    let playing_at = |note: &Value| note["start_seconds"].as_f64().unwrap();
    let heard_from = playing_at(first.last().unwrap()) + steered_at.elapsed().as_secs_f64().min(0.1) + 2.5;
    let after: Vec<&Value> = later.iter().filter(|note| playing_at(note) >= heard_from).collect();
    assert!(after.len() >= 3, "{} notes after the steer took hold", after.len());
    for note in after {
        let pitch = note["pitch"].as_u64().unwrap();
        assert!((60..=72).contains(&pitch) && [0, 2, 4, 5, 7, 9, 11].contains(&(pitch % 12)), "{note}");
    }

    socket.send(Message::Text(json!({"type": "cancel"}).to_string().into())).await.unwrap();
    let (_, closing) = read_for(&mut socket, Duration::from_secs(5)).await;
    assert!(closing.iter().all(|m| m["type"] != "end"), "an endless stream stores nothing: {closing:?}");
    let after: Vec<Value> = app.get("/v1/compositions").await.json().await.unwrap();
    assert_eq!(after.len(), before.len());
}

#[tokio::test]
async fn an_endless_piece_is_refused_over_rest_and_without_realtime_pacing() {
    let app = bundled(64).await;
    let rest = generate(&app, &json!({"length": {"endless": true}, "pacing": "realtime"})).await;
    assert_eq!(rest.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(rest).await["error"]["details"]["field"], "length.endless");
    let fast = messages(&app, &json!({"length": {"endless": true}})).await;
    assert_eq!(fast[0]["error"]["details"]["field"], "length.endless");
    let untrue = messages(&app, &json!({"length": {"endless": false}, "pacing": "realtime"})).await;
    assert_eq!(untrue[0]["error"]["details"]["field"], "length.endless");
}
