//! `ValidJson<T>`: a JSON body extractor whose errors name the field at fault.
//!
//! axum's `Json` rejects in plain text; this one answers in the shared error shape:
//! 415 without a JSON content type, 400 for malformed JSON, and 422 with
//! `details.field` (for example `hyperparameters.epochs`) for JSON of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let response = rejection.into_response();
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body over the limit".to_owned())
            } else {
                ApiError::BadRequest {
                    code: "bad_request",
                    message: "could not read the body".to_owned(),
                    details: None,
                }
            }
        })?;
        parse(&bytes).map(ValidJson)
    }
}

/// Parses JSON text first (a syntax error is a 400), then its shape (a 422 naming
/// the field): serde_json reports some shape errors, such as two keys where an
/// enum takes one, as syntax errors when it reads text and types in one pass.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| ApiError::BadRequest {
        code: "invalid_json",
        message: error.to_string(),
        details: None,
    })?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        ApiError::Validation { field: field_at_fault(&path, &message), message }
    })
}

/// serde reports a missing field at its parent's path; the field itself is more useful.
fn field_at_fault(path: &str, message: &str) -> String {
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(field)) => field.to_owned(),
        (parent, Some(field)) => format!("{parent}.{field}"),
        (".", None) => String::new(),
        (path, None) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code, reason = "only its parsing matters here")]
        name: String,
        #[allow(dead_code, reason = "only its parsing matters here")]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code, reason = "only its parsing matters here")]
        count: u32,
    }

    fn field(body: &str) -> String {
        match parse::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(field(r#"{"name": 7}"#), "name");
        assert_eq!(field(r#"{}"#), "name");
        assert_eq!(field(r#"{"name": "a", "inner": {"count": -1}}"#), "inner.count");
        assert_eq!(field(r#"{"name": "a", "inner": {}}"#), "inner.count");
        assert_eq!(field(r#"{"name": "a", "inner": {"count": 1, "extra": 2}}"#), "inner.extra");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for body in [r#"{"name": "#, r#"{"name": "a"} trailing"#, ""] {
            assert!(
                matches!(
                    parse::<Outer>(body.as_bytes()),
                    Err(ApiError::BadRequest { code: "invalid_json", .. })
                ),
                "{body}"
            );
        }
    }
}
