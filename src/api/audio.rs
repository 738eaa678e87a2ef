//! Audio: a composition rendered through the SoundFont as a streamed WAV or FLAC file, and
//! the SoundFont itself for the page's synthesizer.

use std::path::{Path as FilePath, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::IntoParams;

use super::AppState;
use super::accept::{Binary, OCTET_STREAM, label, preferred};
use super::error::{ApiError, ErrorBody};
use crate::audio::{CHANNELS, CHUNK_FRAMES, FlacWriter, FontError, Render, load_font, wav_header, wav_len};
use crate::config::AudioSettings;

/// A font larger than this is not sent to browsers: the page gets the page font.
pub const MAX_PAGE_SOUNDFONT_BYTES: u64 = 32 * 1024 * 1024;
/// Chunks (of [`CHUNK_FRAMES`] frames, 16 KiB) rendered ahead of a slow client.
const CHUNKS_AHEAD: usize = 4;

/// The audio formats served: 44.1 kHz, 16-bit stereo, as WAV or FLAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Wav,
    Flac,
}

impl AudioFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Flac => "audio/flac",
        }
    }

    pub fn of_media_type(media_type: &str) -> Option<AudioFormat> {
        [AudioFormat::Wav, AudioFormat::Flac].into_iter().find(|format| format.media_type() == media_type)
    }

    fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Flac => "flac",
        }
    }
}

/// The SoundFonts and the renders running now.
#[derive(Clone)]
pub struct AudioService {
    settings: AudioSettings,
    renders: Arc<Semaphore>,
}

impl AudioService {
    pub fn new(settings: &AudioSettings) -> AudioService {
        AudioService { settings: settings.clone(), renders: Arc::new(Semaphore::new(settings.max_renders)) }
    }

    /// 503 unless the render font is there: checked before composing a piece that
    /// is to be answered as audio.
    pub fn check_font(&self) -> Result<(), ApiError> {
        if self.settings.soundfont.is_file() {
            Ok(())
        } else {
            Err(font_error(FontError::Missing { path: self.settings.soundfont.clone() }))
        }
    }

    /// The MIDI file `midi` rendered and streamed as a download named
    /// `fugue-<id>.wav` (or `.flac`).
    ///
    /// The font is loaded and the score read on a blocking thread; the render runs
    /// on another, [`CHUNKS_AHEAD`] chunks ahead of the client at most, and stops
    /// when the client goes away.
    pub async fn audio_response(
        &self,
        midi: Vec<u8>,
        id: &str,
        format: AudioFormat,
    ) -> Result<Response, ApiError> {
        let permit = self.renders.clone().try_acquire_owned().map_err(|_| ApiError::TooManyRequests {
            message: format!("{} audio renders are running; try again shortly", self.settings.max_renders),
            retry_after_secs: 1,
        })?;
        let font_path = self.settings.soundfont.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let font = load_font(&font_path).map_err(font_error)?;
            let score = crate::midi::read(&midi).map_err(anyhow::Error::from)?;
            Ok::<_, ApiError>(Render::new(&font, &score))
        })
        .await
        .map_err(anyhow::Error::from)??;
        let mut render = prepared;
        if render.seconds() > self.settings.max_seconds {
            return Err(ApiError::Unprocessable {
                code: "limit_exceeded",
                message: format!(
                    "the piece lasts {:.0} s: audio is rendered for pieces of up to {:.0} s",
                    render.seconds(),
                    self.settings.max_seconds
                ),
                details: serde_json::json!({"seconds": render.seconds(), "max_seconds": self.settings.max_seconds}),
            });
        }
        let frames = render.total_frames();
        // WAV has a known length; FLAC's frames compress to what they will.
        let (header, length, mut flac) = match format {
            AudioFormat::Wav => {
                let header = wav_header(frames)
                    .ok_or_else(|| anyhow::anyhow!("{frames} frames do not fit a WAV file"))?
                    .to_vec();
                (header, wav_len(frames), None)
            }
            AudioFormat::Flac => {
                let (writer, header) = FlacWriter::new(frames)?;
                (header, None, Some(writer))
            }
        };
        let (chunks, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_AHEAD);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if chunks.blocking_send(Ok(Bytes::from(header))).is_err() {
                return;
            }
            let mut samples = Vec::with_capacity(CHUNK_FRAMES * CHANNELS);
            loop {
                samples.clear();
                if !render.next_chunk(&mut samples) {
                    break;
                }
                let bytes = match flac.as_mut() {
                    None => Ok(samples.iter().flat_map(|sample| sample.to_le_bytes()).collect()),
                    Some(writer) => writer.frame(&samples).map_err(std::io::Error::other),
                };
                let failed = bytes.is_err();
                if chunks.blocking_send(bytes.map(Bytes::from)).is_err() || failed {
                    // The client went away, or the encoder failed (the stream ends broken).
                    break;
                }
            }
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        let name = format!("fugue-{id}.{}", format.extension());
        if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, disposition);
        }
        Ok(response)
    }

    /// The font the page gets: the render font when a browser can take it, else the
    /// page font; and whether it is the page font.
    fn page_font(&self) -> (PathBuf, bool) {
        let size = std::fs::metadata(&self.settings.soundfont).map_or(0, |metadata| metadata.len());
        if size > MAX_PAGE_SOUNDFONT_BYTES {
            (self.settings.page_soundfont.clone(), true)
        } else {
            (self.settings.soundfont.clone(), false)
        }
    }
}

fn font_error(error: FontError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AudioQuery {
    /// `wav` or `flac` (both 44.1 kHz, 16-bit stereo). Without it, the `Accept`
    /// header chooses (`audio/wav` or `audio/flac`), WAV by default (and for
    /// `application/octet-stream`).
    format: Option<String>,
}

/// Download a composition as audio.
///
/// Rendered with the server's General MIDI SoundFont: each part plays its program
/// (drums on channel 10), at the tempo, velocities and lengths written, from the
/// start to the end of the last note. The WAV or FLAC file (44.1 kHz, 16-bit
/// stereo) streams as it renders (a WAV with its `Content-Length`), labelled
/// with its format's type, or `application/octet-stream` when the `Accept` header
/// prefers that. Pieces longer than `FUGUE_MAX_AUDIO_SECONDS` (30
/// minutes by default) answer 422; more than `FUGUE_MAX_RENDERS` renders at once
/// answer 429; without a SoundFont installed, 503 says how to install one.
#[utoipa::path(get, path = "/v1/compositions/{id}/audio", tag = "generate",
    params(("id" = String, Path, description = "Composition id"), AudioQuery),
    responses(
        (status = 200, description = "The audio file", content(
            (Binary = "audio/wav"),
            (Binary = "audio/flac"),
            (Binary = "application/octet-stream"),
        )),
        (status = 404, description = "No such composition", body = ErrorBody),
        (status = 422, description = "An unknown `format`, or a piece longer than audio is rendered for", body = ErrorBody),
        (status = 429, description = "Too many renders at once; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "No SoundFont is installed; the message says how to install one", body = ErrorBody),
    ))]
pub async fn composition_audio(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<AudioQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let answer = preferred(&headers, &["audio/wav", "audio/flac", OCTET_STREAM]);
    let format = match query.format.as_deref() {
        None => AudioFormat::of_media_type(answer).unwrap_or(AudioFormat::Wav),
        Some("wav") => AudioFormat::Wav,
        Some("flac") => AudioFormat::Flac,
        Some(_) => {
            return Err(ApiError::Validation {
                field: "format".to_owned(),
                message: "must be `wav` or `flac`".to_owned(),
            });
        }
    };
    let (_, hash) = state
        .composer
        .composition(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no composition `{id}`")))?;
    state.audio.check_font()?;
    let midi = state.composer.midi(&hash).await?;
    let mut response = state.audio.audio_response(midi, &id, format).await?;
    label(&mut response, if answer == OCTET_STREAM { OCTET_STREAM } else { format.media_type() });
    Ok(response)
}

/// The SoundFont, for the page's synthesizer.
///
/// The server's render font (`FUGUE_SOUNDFONT`) when it is at most 32 MiB; a
/// larger one is too much for a browser, and the page font (`FUGUE_PAGE_SOUNDFONT`,
/// FluidR3 Mono GM by default) is served instead, with `X-Fugue-Soundfont: page`.
/// Cacheable: an `ETag`, and 304 for a matching `If-None-Match`.
#[utoipa::path(get, path = "/v1/soundfont", tag = "generate",
    responses(
        (status = 200, description = "The SoundFont file (SF2, or SF3 with compressed samples)",
            content_type = "application/octet-stream", body = Binary,
            headers(
                ("ETag" = String, description = "Changes when the file changes"),
                ("X-Fugue-Soundfont" = String, description = "`render` (the font audio is rendered with) or `page` (the smaller page font)"),
            )),
        (status = 304, description = "The cached copy is current"),
        (status = 503, description = "No SoundFont is installed; the message says how to install one", body = ErrorBody),
    ))]
pub async fn soundfont(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (path, is_page_font) = state.audio.page_font();
    let metadata = tokio::fs::metadata(&path)
        .await
        .ok()
        .filter(|metadata| metadata.is_file())
        .ok_or_else(|| font_error(FontError::Missing { path: path.clone() }))?;
    let modified = metadata.modified().ok().and_then(|time| time.duration_since(UNIX_EPOCH).ok());
    let etag = format!("\"{:x}-{:x}\"", metadata.len(), modified.map_or(0, |time| time.as_nanos()));
    let etag = HeaderValue::from_str(&etag).map_err(anyhow::Error::from)?;
    let mut response = if matches_etag(request.headers(), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let served = ServeFile::new(&path).oneshot(request).await.map_err(anyhow::Error::from)?;
        served.map(Body::new)
    };
    let success = response.status().is_success();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers
        .insert("x-fugue-soundfont", HeaderValue::from_static(if is_page_font { "page" } else { "render" }));
    if success {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let name = file_name(&path);
        if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, disposition);
        }
    }
    Ok(response)
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(wanted) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    wanted.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn file_name(path: &FilePath) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().replace(['"', '\\'], "_"))
        .unwrap_or_else(|| "soundfont.sf2".to_owned())
}
