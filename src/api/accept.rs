//! Content negotiation: which of the media types a handler offers the client's
//! `Accept` header prefers, by quality value and then specificity (RFC 9110 §12.5.1);
//! and how binary answers (MIDI, audio, SoundFonts) are described and labelled.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

/// The generic type of any file, offered beside each binary answer's own type
/// (`audio/midi`, `audio/wav`, …): clients generated from the OpenAPI document
/// know it, and read the answer as bytes.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The bytes of a file, as the OpenAPI document describes a binary answer
/// (`type: string, format: binary`), not as an array of numbers.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("The bytes of a file."))
            .into()
    }
}

impl ToSchema for Binary {}

/// Labels a binary answer with the media type negotiation chose: its own type, or
/// `application/octet-stream` for a client that asked for that. Both describe the
/// same bytes; answering the type the client asked for is what `Accept` means
/// (sending `audio/midi` to `Accept: application/octet-stream` would be a type it
/// did not accept). `Vary: Accept` tells caches the label depends on the header.
pub fn label(response: &mut Response, media_type: &'static str) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
}

/// The offered media type the client prefers most; the first offered when there is
/// no `Accept` header or it accepts none of them (handlers answer their default).
pub fn preferred<'a>(headers: &HeaderMap, offered: &[&'a str]) -> &'a str {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()) else {
        return offered[0];
    };
    let ranges: Vec<MediaRange<'_>> = accept.split(',').filter_map(MediaRange::parse).collect();
    let mut best: Option<(&str, f32)> = None;
    for &media_type in offered {
        // The most specific range that matches decides this type's quality.
        let quality = ranges
            .iter()
            .filter(|range| range.matches(media_type))
            .max_by_key(|range| range.specificity())
            .map_or(0.0, |range| range.quality);
        if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((media_type, quality));
        }
    }
    best.map_or(offered[0], |(media_type, _)| media_type)
}

struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    quality: f32,
}

impl<'a> MediaRange<'a> {
    fn parse(text: &'a str) -> Option<MediaRange<'a>> {
        let mut parameters = text.split(';');
        let (kind, subtype) = parameters.next()?.trim().split_once('/')?;
        let quality = parameters
            .filter_map(|parameter| {
                parameter.trim().strip_prefix("q=").or(parameter.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        Some(MediaRange { kind: kind.trim(), subtype: subtype.trim(), quality })
    }

    fn matches(&self, media_type: &str) -> bool {
        let (kind, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        (self.kind == "*" || self.kind.eq_ignore_ascii_case(kind))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }

    fn specificity(&self) -> u8 {
        u8::from(self.kind != "*") + u8::from(self.subtype != "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(accept: Option<&str>) -> &'static str {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        }
        preferred(&headers, &["application/json", "audio/midi"])
    }

    #[test]
    fn quality_values_and_wildcards_decide() {
        assert_eq!(chosen(None), "application/json");
        assert_eq!(chosen(Some("audio/midi")), "audio/midi");
        assert_eq!(chosen(Some("*/*")), "application/json");
        assert_eq!(chosen(Some("audio/*")), "audio/midi");
        // A substring test would pick MIDI for each of these.
        assert_eq!(chosen(Some("audio/midi;q=0, */*")), "application/json");
        assert_eq!(chosen(Some("application/json, audio/midi;q=0.5")), "application/json");
        assert_eq!(chosen(Some("application/json;q=0.4, audio/midi;q=0.9")), "audio/midi");
        assert_eq!(chosen(Some("text/html")), "application/json", "nothing acceptable: the default");
    }

    #[test]
    fn octet_stream_is_chosen_only_when_asked_for() {
        let chosen = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            preferred(&headers, &["audio/midi", OCTET_STREAM])
        };
        assert_eq!(chosen("*/*"), "audio/midi");
        assert_eq!(chosen("application/*"), OCTET_STREAM);
        assert_eq!(chosen("application/octet-stream"), OCTET_STREAM);
        assert_eq!(chosen("audio/midi, application/octet-stream;q=0.5"), "audio/midi");
    }
}
