//! The one error shape of the HTTP API.
//!
//! Every 4xx and 5xx answer is `{"error": {"code", "message", "details"}}`. Handlers
//! return [`ApiError`]; responses made elsewhere (axum's rejections, tower-http's
//! limits and timeouts, panics, unknown routes) are rewritten into the same shape by
//! [`json_error_layer`]. Internal causes are logged, never sent to the client.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, for example `invalid_json` or `not_found`.
    #[schema(example = "invalid_json")]
    pub code: String,
    /// What went wrong, for a person.
    #[schema(example = "expected `,` or `}` at line 1 column 9")]
    pub message: String,
    /// Structured context, such as the field at fault: `{"field": "length.notes"}`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, details: Option<Value> },
    #[error("{message}")]
    Validation { field: String, message: String },
    /// A well-formed request that cannot be carried out, with structured details.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String, details: Value },
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// Over a limit on concurrent work; try again after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    NotAcceptable(String),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// Never shown to the client: the cause is logged and the answer says only "internal error".
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (code, details) = match self {
            ApiError::BadRequest { code, details, .. } => (*code, details.clone()),
            ApiError::Validation { field, .. } => {
                ("validation_failed", Some(serde_json::json!({ "field": field })))
            }
            ApiError::Unprocessable { code, details, .. } => (*code, Some(details.clone())),
            ApiError::Unauthorized => ("unauthorized", None),
            ApiError::NotFound(_) => ("not_found", None),
            ApiError::Conflict(_) => ("conflict", None),
            ApiError::NotAcceptable(_) => ("not_acceptable", None),
            ApiError::TooManyRequests { retry_after_secs, .. } => {
                ("too_many_requests", Some(serde_json::json!({ "retry_after_secs": retry_after_secs })))
            }
            ApiError::UnsupportedMediaType => ("unsupported_media_type", None),
            ApiError::PayloadTooLarge(_) => ("payload_too_large", None),
            ApiError::Unavailable(_) => ("unavailable", None),
            ApiError::Internal(_) => ("internal", None),
        };
        let message = match self {
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        match &self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs, .. } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// Rewrites any error response that is not already JSON into the shared shape.
///
/// axum's extractor rejections, tower-http's body limit (413) and timeout (408),
/// the panic catcher (500) and 405s answer in plain text or with an empty body.
pub async fn json_error_layer<B>(response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(Body::new);
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Plain-text bodies from axum's rejections say what was wrong; keep them unless
    // the status hides internals (5xx), which must not leak.
    let text = if status.is_server_error() {
        String::new()
    } else {
        axum::body::to_bytes(body, 8 * 1024)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .unwrap_or_default()
    };
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if text.is_empty() { reason.to_owned() } else { text };
    let code = reason.to_lowercase().replace([' ', '-'], "_");
    let body = ErrorBody { error: ErrorDetail { code, message, details: None } };
    let bytes = serde_json::to_vec(&body).expect("ErrorBody serialises: this is a bug");
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let error = ApiError::Internal(anyhow::anyhow!("password=hunter2 in connection string"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn validation_errors_name_the_field() {
        let error = ApiError::Validation { field: "length.notes".into(), message: "too long".into() };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = body_json(response).await;
        assert_eq!(body["error"]["details"]["field"], "length.notes");
    }

    #[tokio::test]
    async fn plain_text_errors_are_rewritten_as_json() {
        let plain = (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        let rewritten = json_error_layer(plain).await;
        assert_eq!(rewritten.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body = body_json(rewritten).await;
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(body["error"]["message"], "Method Not Allowed");
    }

    #[tokio::test]
    async fn server_error_text_is_not_leaked() {
        let plain = (StatusCode::INTERNAL_SERVER_ERROR, "panicked at src/secret.rs").into_response();
        let body = body_json(json_error_layer(plain).await).await;
        assert_eq!(body["error"]["message"], "Internal Server Error");
    }

    #[tokio::test]
    async fn successes_pass_untouched() {
        let ok = (StatusCode::OK, "fine").into_response();
        let passed = json_error_layer(ok).await;
        let bytes = axum::body::to_bytes(passed.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&bytes[..], b"fine");
    }
}
