//! Errors on the wire: every failed request is answered with an
//! [`ErrorBody`] `{"error": "<code>", "message": "<text>"}`, where the code is
//! stable snake_case text a client matches on ([`ErrorCode`]) and the message
//! is for people.
//!
//! A code maps to and from its text only through [`ErrorCode::as_str`] and
//! its [`FromStr`] implementation. A code this version does not know (sent by
//! a newer server, or an SP's own) is an [`UnknownErrorCode`], not a failure
//! to read the body: [`ErrorBody::error`] stays the text as sent.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: code.as_str().to_owned(), message: message.into() }
    }

    /// The code, if it is one this version knows.
    pub fn code(&self) -> Result<ErrorCode, UnknownErrorCode> {
        self.error.parse()
    }
}

/// The stable error codes the control server sends. New codes may be added;
/// clients must treat an [`UnknownErrorCode`] as a generic failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    MalformedRequest,
    UnknownField,
    InvalidDeviceId,
    InvalidAck,
    UnsupportedMediaType,
    BatchTooLarge,
    Unauthenticated,
    UnknownGateway,
    RevokedGateway,
    NotAuthorized,
    UnknownDevice,
    SpRejected,
    /// The SP could not be reached, or did not answer in time.
    SpUnreachable,
    SpBadAnswer,
    RedirectLoop,
    TooManyRedirects,
    BadSignature,
    ReplayedMessage,
    TimestampOutOfWindow,
    /// The signing SP, or the target SP of a move or redirect, is not registered.
    UnknownSp,
    Internal,
    /// The request body is larger than the route accepts (its limit is in the message).
    BodyTooLarge,
    /// The request was not received and answered within the server's request timeout.
    RequestTimeout,
    /// The server is at a concurrency limit for this route; retry later.
    Overloaded,
}

/// A code that is not one of [`ErrorCode`]'s (the text as received).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl ErrorCode {
    /// Every code, in the order of the enum.
    pub const ALL: [ErrorCode; 24] = [
        Self::MalformedRequest,
        Self::UnknownField,
        Self::InvalidDeviceId,
        Self::InvalidAck,
        Self::UnsupportedMediaType,
        Self::BatchTooLarge,
        Self::Unauthenticated,
        Self::UnknownGateway,
        Self::RevokedGateway,
        Self::NotAuthorized,
        Self::UnknownDevice,
        Self::SpRejected,
        Self::SpUnreachable,
        Self::SpBadAnswer,
        Self::RedirectLoop,
        Self::TooManyRedirects,
        Self::BadSignature,
        Self::ReplayedMessage,
        Self::TimestampOutOfWindow,
        Self::UnknownSp,
        Self::Internal,
        Self::BodyTooLarge,
        Self::RequestTimeout,
        Self::Overloaded,
    ];

    /// The code's text on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::UnknownField => "unknown_field",
            Self::InvalidDeviceId => "invalid_device_id",
            Self::InvalidAck => "invalid_ack",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BatchTooLarge => "batch_too_large",
            Self::Unauthenticated => "unauthenticated",
            Self::UnknownGateway => "unknown_gateway",
            Self::RevokedGateway => "revoked_gateway",
            Self::NotAuthorized => "not_authorized",
            Self::UnknownDevice => "unknown_device",
            Self::SpRejected => "sp_rejected",
            Self::SpUnreachable => "sp_unreachable",
            Self::SpBadAnswer => "sp_bad_answer",
            Self::RedirectLoop => "redirect_loop",
            Self::TooManyRedirects => "too_many_redirects",
            Self::BadSignature => "bad_signature",
            Self::ReplayedMessage => "replayed_message",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::UnknownSp => "unknown_sp",
            Self::Internal => "internal",
            Self::BodyTooLarge => "body_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Overloaded => "overloaded",
        }
    }
}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// The inverse of [`ErrorCode::as_str`] (exact text).
    fn from_str(text: &str) -> Result<Self, UnknownErrorCode> {
        Self::ALL.into_iter().find(|code| code.as_str() == text).ok_or_else(|| UnknownErrorCode(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_round_trips_through_its_text() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code), "{code:?}");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code:?}");
        }
        let texts: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts.len(), ErrorCode::ALL.len(), "two codes share a text");
    }

    #[test]
    fn all_lists_every_variant() {
        // Adding a variant breaks this match until it is listed in ALL too.
        let position = |code: ErrorCode| match code {
            ErrorCode::MalformedRequest => 0,
            ErrorCode::UnknownField => 1,
            ErrorCode::InvalidDeviceId => 2,
            ErrorCode::InvalidAck => 3,
            ErrorCode::UnsupportedMediaType => 4,
            ErrorCode::BatchTooLarge => 5,
            ErrorCode::Unauthenticated => 6,
            ErrorCode::UnknownGateway => 7,
            ErrorCode::RevokedGateway => 8,
            ErrorCode::NotAuthorized => 9,
            ErrorCode::UnknownDevice => 10,
            ErrorCode::SpRejected => 11,
            ErrorCode::SpUnreachable => 12,
            ErrorCode::SpBadAnswer => 13,
            ErrorCode::RedirectLoop => 14,
            ErrorCode::TooManyRedirects => 15,
            ErrorCode::BadSignature => 16,
            ErrorCode::ReplayedMessage => 17,
            ErrorCode::TimestampOutOfWindow => 18,
            ErrorCode::UnknownSp => 19,
            ErrorCode::Internal => 20,
            ErrorCode::BodyTooLarge => 21,
            ErrorCode::RequestTimeout => 22,
            ErrorCode::Overloaded => 23,
        };
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i);
        }
    }

    #[test]
    fn unknown_codes_are_kept_not_refused() {
        let body: ErrorBody = serde_json::from_str(r#"{"error":"brand_new_code","message":"m"}"#).unwrap();
        assert_eq!(body.code(), Err(UnknownErrorCode("brand_new_code".into())));
        assert_eq!("Malformed_Request".parse::<ErrorCode>(), Err(UnknownErrorCode("Malformed_Request".into())));
        let body = ErrorBody::new(ErrorCode::ReplayedMessage, "again");
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"error":"replayed_message","message":"again"}"#);
        assert_eq!(body.code(), Ok(ErrorCode::ReplayedMessage));
    }
}
