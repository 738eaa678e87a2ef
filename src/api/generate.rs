//! `POST /v1/generate` and its WebSocket twin, `GET /v1/generate/stream`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::json::{ValidJson, parse};
use crate::generate::compose::{ComposeError, Composer, Composition, OpenSession, StreamPart};
use crate::generate::engine::{SessionEvent, SessionFailure};
use crate::generate::request::{Control, GenerateRequest, Length, Pacing};
use crate::generate::{GeneratedNote, Piece};

/// How long a WebSocket client has to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(10);
/// Largest WebSocket message accepted: a request with the largest primer (1 MiB of
/// MIDI is about 1.4 MB of base64) fits.
const MAX_STREAM_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Generate a composition.
///
/// Answers 201 with the composition (notes in beats and seconds, the seed used,
/// statistics, and where its MIDI file downloads from); with `Accept: audio/midi`
/// the MIDI file itself, with `Accept: audio/wav` or `audio/flac` its audio (as
/// `GET /v1/compositions/{id}/audio` streams it). Same model, seed and request:
/// same notes.
#[utoipa::path(post, path = "/v1/generate", tag = "generate",
    request_body = GenerateRequest,
    responses(
        (status = 201, description = "Composed", content(
                (Composition = "application/json"),
                (super::accept::Binary = "audio/midi"),
                (super::accept::Binary = "audio/wav"),
                (super::accept::Binary = "audio/flac"),
            ),
            headers(("Location" = String, description = "The composition's URL"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid, out of range, or not something the model can do; `details.field` names it", body = ErrorBody),
        (status = 429, description = "Every generation worker is full, or (audio) too many renders run; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "Audio was asked for and no SoundFont is installed; the message says how to install one", body = ErrorBody),
    ))]
pub async fn generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    ValidJson(request): ValidJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    if matches!(request.length, Some(Length::Endless(_))) {
        return Err(ComposeError::Invalid {
            field: "length.endless".to_owned(),
            message: "an endless piece streams: open the WebSocket, /v1/generate/stream".to_owned(),
        }
        .into());
    }
    let offered = ["application/json", "audio/midi", "audio/wav", "audio/flac"];
    let answer = super::accept::preferred(&headers, &offered);
    let audio = super::audio::AudioFormat::of_media_type(answer);
    if audio.is_some() {
        // Refused before composing, not after.
        state.audio.check_font()?;
    }
    let mut session = state.composer.start(request).await?;
    let piece = loop {
        match session.events.recv().await {
            Some(SessionEvent::Notes(_)) => {}
            Some(SessionEvent::Finished(piece)) => break piece,
            Some(SessionEvent::Failed(failure)) => return Err(ComposeError::from(failure).into()),
            None => return Err(anyhow::anyhow!("the generation worker stopped").into()),
        }
    };
    let (composition, midi) = state.composer.store_piece(&session, piece).await?;
    let location = HeaderValue::from_str(&format!("/v1/compositions/{}", composition.composition_id))
        .map_err(anyhow::Error::from)?;
    let id = &composition.composition_id;
    let mut response = match (answer, audio) {
        (_, Some(format)) => state.audio.audio_response(midi, id, format).await?,
        ("audio/midi", _) => super::compositions::midi_response(midi, id),
        _ => Json(&composition).into_response(),
    };
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// One message of `GET /v1/generate/stream`, tagged by `type`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// The session has started: the model and the seed in use, and the parts the
    /// piece is written in, in order (a note's `part.index` is its place in
    /// `parts`; empty for a model without parts), which `control` messages name.
    /// With realtime pacing it comes with the first notes: the piece's time starts
    /// then.
    Start { model: String, seed: u64, parts: Vec<StreamPart> },
    /// Notes as they are sampled (or, with `realtime` pacing, as they sound).
    Notes { notes: Vec<GeneratedNote> },
    /// The piece is done and stored; the socket closes after this.
    End { composition: Box<Composition> },
    /// The request was refused or failed; the socket closes after this.
    Error { error: ErrorDetail },
}

/// Stream a composition note by note.
///
/// Open a WebSocket and send one text message: the same JSON as `POST /v1/generate`
/// takes. Messages come back as `StreamMessage`s: `start` (the model, the seed,
/// and the parts the piece plays, by name and program), then `notes` as they are
/// sampled (`"pacing": "realtime"` sends each note when it would sound), then `end`
/// with the stored composition. A bad request or a full server gets an `error`
/// message (the same code and `details` as the REST answer, such as
/// `retry_after_secs`) and the socket closes.
///
/// While the piece streams the client may send:
/// - `{"type": "control", ...}` with any of `temperature`, `top_k`, `top_p`,
///   `greedy`, `key`, `scale`, `pitch_range`, `max_polyphony`, `tempo_bpm`,
///   `program`, and `parts` (`[{"name": "Alto", "program": 41, "pitch_range":
///   [55, 74], "max_polyphony": 1}]`, each part named as the stream plays it):
///   they hold from the first note not yet written (with realtime pacing, within
///   the lookahead). A refused value gets an `error` message naming the field
///   (`parts[0].name`), and the piece plays on.
/// - `{"type": "stop"}`: the piece ends at its next bar line and is stored; `end`
///   follows. An endless piece stores its last 64 bars.
/// - `{"type": "cancel"}`: ends the session as closing the socket does: nothing
///   is stored, and the server closes the socket.
#[utoipa::path(get, path = "/v1/generate/stream", tag = "generate",
    responses(
        (status = 101, description = "WebSocket: send a GenerateRequest, receive StreamMessages"),
        (status = 400, description = "Not a WebSocket handshake (a missing or wrong upgrade header)", body = ErrorBody),
        (status = 426, description = "The handshake asked for another protocol than WebSocket", body = ErrorBody),
    ))]
pub async fn generate_stream(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols([super::WEBSOCKET_AUTH_PROTOCOL])
        .max_message_size(MAX_STREAM_MESSAGE_BYTES)
        .on_upgrade(move |socket| stream(socket, state.composer))
}

async fn stream(mut socket: WebSocket, composer: Composer) {
    let request = match tokio::time::timeout(REQUEST_WAIT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => parse::<GenerateRequest>(text.as_bytes()),
        Ok(Some(Ok(_))) => Err(ApiError::BadRequest {
            code: "bad_request",
            message: "send the request as one JSON text message".to_owned(),
            details: None,
        }),
        Ok(_) => return,
        Err(_) => Err(ApiError::BadRequest {
            code: "request_timeout",
            message: format!("no request within {} s", REQUEST_WAIT.as_secs()),
            details: None,
        }),
    };
    let session = match request {
        Ok(request) => composer.start(request).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match session {
        Ok(session) => {
            if let Err(error) = follow(&mut socket, &composer, session).await {
                let _ = send(&mut socket, &StreamMessage::Error { error: error.body().error }).await;
            }
        }
        Err(error) => {
            let _ = send(&mut socket, &StreamMessage::Error { error: error.body().error }).await;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Relays the session to the socket until the end; a client that leaves drops the
/// session (the engine sees its channel close).
async fn follow(
    socket: &mut WebSocket,
    composer: &Composer,
    mut session: OpenSession,
) -> Result<(), ApiError> {
    let start = StreamMessage::Start {
        model: session.model.clone(),
        seed: session.validated.seed,
        parts: session.parts.clone(),
    };
    let realtime = session.validated.pacing == Pacing::Realtime;
    // A realtime piece's playback begins with its first notes, and `start` says
    // so; a fast piece starts at once.
    let mut start = Some(start);
    if !realtime && send(socket, &start.take().expect("not sent yet")).await.is_err() {
        return Ok(());
    }
    let mut began = Instant::now();
    let endless = matches!(session.validated.length, Length::Endless(_));
    let lateness = &composer.engine.metrics().realtime_lateness;
    // When the last note streamed begins, from the stream's start.
    let mut last_onset = 0.0f64;
    // An event read while gathering the notes due at one moment, not yet relayed.
    let mut read_ahead: Option<SessionEvent> = None;
    let piece: Piece = loop {
        let event = match read_ahead.take() {
            Some(event) => Some(event),
            None => tokio::select! {
                event = session.events.recv() => event,
                incoming = socket.recv() => {
                    if ends_session(incoming, socket, &mut session).await { return Ok(()) } else { continue }
                }
            },
        };
        match event {
            Some(SessionEvent::Notes(mut notes)) => {
                if let Some(start) = start.take() {
                    began = Instant::now();
                    if send(socket, &start).await.is_err() {
                        return Ok(());
                    }
                }
                if realtime && let Some(first) = notes.first() {
                    let due = began + Duration::from_secs_f64(first.start_seconds);
                    if !pause_until(socket, &mut session, due).await {
                        return Ok(());
                    }
                    // The notes due by now (the rest of a chord, mostly) go in
                    // the same message: a message each costs the server and the
                    // listener a wake-up and a write apiece.
                    let now = began.elapsed().as_secs_f64();
                    read_ahead = take_due(&mut session.events, &mut notes, now);
                    notes.iter().for_each(|note| lateness.observe(now - note.start_seconds));
                }
                last_onset = notes.iter().map(|note| note.start_seconds).fold(last_onset, f64::max);
                if send(socket, &StreamMessage::Notes { notes }).await.is_err() {
                    return Ok(());
                }
            }
            Some(SessionEvent::Finished(piece)) => break piece,
            Some(SessionEvent::Failed(failure)) => return Err(ComposeError::from(failure).into()),
            None => return Err(anyhow::anyhow!("the generation worker stopped").into()),
        }
    };
    if let Some(start) = start.take()
        && send(socket, &start).await.is_err()
    {
        return Ok(());
    }
    // The end comes when the piece has played: an endless one's stored bars are
    // its last, so its end comes once its last note has begun.
    let ends_at = if endless { last_onset } else { piece.seconds() };
    if realtime && !pause_until(socket, &mut session, began + Duration::from_secs_f64(ends_at)).await {
        return Ok(());
    }
    let (composition, _) = composer.store_piece(&session, piece).await?;
    let _ = send(socket, &StreamMessage::End { composition: Box::new(composition) }).await;
    Ok(())
}

/// Moves the notes waiting in `events` that are due by `now` (seconds into the
/// piece) into `notes`; returns the first event that is not such notes.
fn take_due(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<SessionEvent>,
    notes: &mut Vec<GeneratedNote>,
    now: f64,
) -> Option<SessionEvent> {
    while let Ok(event) = events.try_recv() {
        match event {
            SessionEvent::Notes(more) if more.first().is_some_and(|note| note.start_seconds <= now) => {
                notes.extend(more);
            }
            other => return Some(other),
        }
    }
    None
}

/// What a client may send while its piece streams.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    /// End the session now; nothing is stored.
    Cancel,
    /// End the piece at its next bar line, and store it.
    Stop,
    /// New settings for the rest of the piece.
    Control(Control),
}

/// Handles what the client sent while its piece streams: controls or stops the
/// session, or says the session is over (a close, a broken connection or a
/// cancel message). A control that is refused gets an error message naming the
/// field, and the piece plays on; anything else is ignored.
async fn ends_session(
    incoming: Option<Result<Message, axum::Error>>,
    socket: &mut WebSocket,
    session: &mut OpenSession,
) -> bool {
    match incoming {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
            Ok(ClientMessage::Cancel) => true,
            Ok(ClientMessage::Stop) => {
                session.stop();
                false
            }
            Ok(ClientMessage::Control(control)) => {
                if let Err(invalid) = session.control(&control) {
                    let error = ApiError::from(ComposeError::from(invalid));
                    return send(socket, &StreamMessage::Error { error: error.body().error }).await.is_err();
                }
                false
            }
            Err(_) => false,
        },
        Some(Ok(Message::Close(_)) | Err(_)) | None => true,
        Some(Ok(_)) => false,
    }
}

/// Waits for a realtime note's moment while still listening to the client; false
/// when the client ended the session meanwhile.
async fn pause_until(socket: &mut WebSocket, session: &mut OpenSession, deadline: Instant) -> bool {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return true,
            incoming = socket.recv() => if ends_session(incoming, socket, session).await { return false },
        }
    }
}

/// How generation's failures answer over HTTP (and in a stream's error message).
impl From<ComposeError> for ApiError {
    fn from(error: ComposeError) -> ApiError {
        match error {
            ComposeError::Invalid { field, message } => ApiError::Validation { field, message },
            ComposeError::Busy(refused) => ApiError::TooManyRequests {
                message: ComposeError::Busy(refused).to_string(),
                retry_after_secs: refused.retry_after.as_secs(),
            },
            ComposeError::Failed(failure @ SessionFailure::WorkerFailed { .. }) => {
                ApiError::Unavailable(failure.to_string())
            }
            ComposeError::Failed(SessionFailure::NotStarted(cause)) => {
                ApiError::Internal(anyhow::anyhow!(cause))
            }
            ComposeError::Internal(error) => ApiError::Internal(error),
        }
    }
}

async fn send(socket: &mut WebSocket, message: &StreamMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}
