//! Content negotiation: which of the media types a handler offers the client's
//! `Accept` header prefers, by quality value and then specificity (RFC 9110 §12.5.1).

use axum::http::{HeaderMap, header};

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
    use axum::http::HeaderValue;

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
}
