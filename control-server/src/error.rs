//! The API's errors: each a stable snake_case code (what a gateway or SP
//! matches on, [`ErrorCode`]), an HTTP status, and a human message, sent as
//! an [`ErrorBody`] `{"error": "<code>", "message": "<text>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use control_api::{ErrorBody, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedRequest(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    InvalidDeviceId(String),
    #[error("{0}")]
    InvalidAck(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BatchTooLarge(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    UnknownGateway(String),
    #[error("{0}")]
    RevokedGateway(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    UnknownDevice(String),
    #[error("{0}")]
    SpRejected(String),
    #[error("{0}")]
    SpUnreachable(String),
    #[error("{0}")]
    SpTimeout(String),
    #[error("{0}")]
    SpBadAnswer(String),
    #[error("{0}")]
    RedirectLoop(String),
    #[error("{0}")]
    TooManyRedirects(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    ReplayedMessage(String),
    #[error("{0}")]
    TimestampOutOfWindow(String),
    /// An unsolicited message signed by (kid) an SP that is not registered.
    #[error("{0}")]
    UnknownSp(String),
    /// A redirect or move towards an SP that is not registered.
    #[error("{0}")]
    UnregisteredTargetSp(String),
    #[error("{0}")]
    Internal(String),
    /// A request body beyond its route's limit ([`crate::limits`]).
    #[error("{0}")]
    BodyTooLarge(String),
    /// The request was not received and answered within the request timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// A concurrency limit is full; the request was not started.
    #[error("{0}")]
    Overloaded(String),
}

impl ApiError {
    /// The stable code and HTTP status.
    pub fn code_and_status(&self) -> (ErrorCode, StatusCode) {
        use ApiError::*;
        match self {
            MalformedRequest(_) => (ErrorCode::MalformedRequest, StatusCode::BAD_REQUEST),
            UnknownField(_) => (ErrorCode::UnknownField, StatusCode::BAD_REQUEST),
            InvalidDeviceId(_) => (ErrorCode::InvalidDeviceId, StatusCode::BAD_REQUEST),
            InvalidAck(_) => (ErrorCode::InvalidAck, StatusCode::BAD_REQUEST),
            UnsupportedMediaType(_) => (ErrorCode::UnsupportedMediaType, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            BatchTooLarge(_) => (ErrorCode::BatchTooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            Unauthenticated(_) => (ErrorCode::Unauthenticated, StatusCode::UNAUTHORIZED),
            UnknownGateway(_) => (ErrorCode::UnknownGateway, StatusCode::FORBIDDEN),
            RevokedGateway(_) => (ErrorCode::RevokedGateway, StatusCode::FORBIDDEN),
            NotAuthorized(_) => (ErrorCode::NotAuthorized, StatusCode::FORBIDDEN),
            UnknownDevice(_) => (ErrorCode::UnknownDevice, StatusCode::NOT_FOUND),
            SpRejected(_) => (ErrorCode::SpRejected, StatusCode::CONFLICT),
            SpUnreachable(_) => (ErrorCode::SpUnreachable, StatusCode::BAD_GATEWAY),
            SpTimeout(_) => (ErrorCode::SpUnreachable, StatusCode::GATEWAY_TIMEOUT),
            SpBadAnswer(_) => (ErrorCode::SpBadAnswer, StatusCode::BAD_GATEWAY),
            RedirectLoop(_) => (ErrorCode::RedirectLoop, StatusCode::LOOP_DETECTED),
            TooManyRedirects(_) => (ErrorCode::TooManyRedirects, StatusCode::LOOP_DETECTED),
            BadSignature(_) => (ErrorCode::BadSignature, StatusCode::UNAUTHORIZED),
            ReplayedMessage(_) => (ErrorCode::ReplayedMessage, StatusCode::CONFLICT),
            TimestampOutOfWindow(_) => (ErrorCode::TimestampOutOfWindow, StatusCode::BAD_REQUEST),
            UnknownSp(_) => (ErrorCode::UnknownSp, StatusCode::FORBIDDEN),
            UnregisteredTargetSp(_) => (ErrorCode::UnknownSp, StatusCode::UNPROCESSABLE_ENTITY),
            Internal(_) => (ErrorCode::Internal, StatusCode::INTERNAL_SERVER_ERROR),
            BodyTooLarge(_) => (ErrorCode::BodyTooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            RequestTimeout(_) => (ErrorCode::RequestTimeout, StatusCode::REQUEST_TIMEOUT),
            Overloaded(_) => (ErrorCode::Overloaded, StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    /// The code's wire text.
    pub fn code(&self) -> &'static str {
        self.code_and_status().0.as_str()
    }

    pub fn status(&self) -> StatusCode {
        self.code_and_status().1
    }

    /// Every code with its status, for the OpenAPI description.
    pub fn catalogue() -> Vec<(&'static str, u16)> {
        let s = String::new;
        let all = [
            ApiError::MalformedRequest(s()),
            ApiError::UnknownField(s()),
            ApiError::InvalidDeviceId(s()),
            ApiError::InvalidAck(s()),
            ApiError::UnsupportedMediaType(s()),
            ApiError::BatchTooLarge(s()),
            ApiError::Unauthenticated(s()),
            ApiError::UnknownGateway(s()),
            ApiError::RevokedGateway(s()),
            ApiError::NotAuthorized(s()),
            ApiError::UnknownDevice(s()),
            ApiError::SpRejected(s()),
            ApiError::SpUnreachable(s()),
            ApiError::SpTimeout(s()),
            ApiError::SpBadAnswer(s()),
            ApiError::RedirectLoop(s()),
            ApiError::TooManyRedirects(s()),
            ApiError::BadSignature(s()),
            ApiError::ReplayedMessage(s()),
            ApiError::TimestampOutOfWindow(s()),
            ApiError::UnknownSp(s()),
            ApiError::UnregisteredTargetSp(s()),
            ApiError::Internal(s()),
            ApiError::BodyTooLarge(s()),
            ApiError::RequestTimeout(s()),
            ApiError::Overloaded(s()),
        ];
        all.iter().map(|e| (e.code(), e.status().as_u16())).collect()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::Internal(format!("storage failure: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        if status.is_server_error() {
            tracing::warn!(code = code.as_str(), message = %self, "request failed");
        }
        let body = ErrorBody::new(code, self.to_string());
        (status, axum::Json(body)).into_response()
    }
}

/// Whether a deserializer's own message (not a wrapper's) is serde's
/// `unknown_field` error. serde words that message "unknown field `NAME`,
/// expected …" and begins every other message with fixed words of its own
/// ("invalid type", "missing field", …), so input (a field name, a string
/// value) can only appear after the start: a request cannot make another
/// error look like this one. Never `contains`: a value could carry the words.
pub fn is_unknown_field(deserializer_message: &str) -> bool {
    deserializer_message.starts_with("unknown field `")
}

/// Parses a JSON request body, telling unknown fields apart from other
/// malformed input.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if is_unknown_field(&text) {
            ApiError::UnknownField(format!("request body: {text}"))
        } else {
            ApiError::MalformedRequest(format!("request body is not the expected JSON: {text}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        a: u32,
    }

    #[test]
    fn tells_unknown_fields_from_malformed_json() {
        assert_eq!(parse_json::<Probe>(br#"{"a":1,"b":2}"#).unwrap_err().code(), "unknown_field");
        assert_eq!(parse_json::<Probe>(br#"{"a":"x"}"#).unwrap_err().code(), "malformed_request");
        assert_eq!(parse_json::<Probe>(b"{").unwrap_err().code(), "malformed_request");
    }

    #[test]
    fn codes_are_unique_per_variant_meaning() {
        let catalogue = ApiError::catalogue();
        assert!(catalogue.iter().any(|(c, s)| *c == "redirect_loop" && *s == 508));
        assert!(catalogue.iter().all(|(c, _)| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
    }

    #[test]
    fn the_catalogue_is_exactly_the_wire_codes() {
        let catalogue = ApiError::catalogue();
        for code in ErrorCode::ALL {
            assert!(catalogue.iter().any(|(c, _)| *c == code.as_str()), "{code:?} is never sent");
        }
        assert!(catalogue.iter().all(|(c, _)| c.parse::<ErrorCode>().is_ok()));
    }
}
