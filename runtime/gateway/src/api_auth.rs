//! Who may use the gateway's local API: whoever holds its bearer token.
//!
//! The API enrolls devices (it runs a label's phone half and hands the
//! device this gateway's network credentials) and lists the device table,
//! so an unauthenticated caller on the same host or network could enroll
//! devices of its choosing or read every identifier. Every request must
//! carry `Authorization: Bearer <api_token>` with the token of
//! `gateway.toml`; it is compared in constant time. The API also listens on
//! loopback only unless the configuration says otherwise
//! (`listen_beyond_loopback`, see [`crate::config`]).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Fewest characters of an API token (16 random characters and more are
/// not guessable over HTTP).
pub const MIN_TOKEN_CHARS: usize = 16;

/// The local API's bearer token. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

impl ApiToken {
    /// A token of at least [`MIN_TOKEN_CHARS`] visible ASCII characters
    /// (what an `Authorization` header can carry unchanged).
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < MIN_TOKEN_CHARS {
            return Err(format!(
                "the API token has {} characters; use at least {MIN_TOKEN_CHARS} random ones (e.g. `openssl rand -hex 16`)",
                token.len()
            ));
        }
        if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!("the API token holds {bad:?}; use visible ASCII characters only (no spaces)"));
        }
        Ok(Self(token.to_owned()))
    }

    /// The token text, for a client to send.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `headers` carry this token as `Authorization: Bearer …`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("send the gateway's API token as `Authorization: Bearer <api_token>` (api_token in gateway.toml)")?;
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or("only `Authorization: Bearer <api_token>` is accepted")?;
        if constant_time_eq(presented.trim().as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err("wrong API token (api_token in gateway.toml)")
        }
    }
}

/// Equal bytes, taking the same time wherever they differ (the length is
/// not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuses a request without the token with `401 unauthenticated`.
pub async fn require_token(State(token): State<ApiToken>, request: Request, next: Next) -> Response {
    match token.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(message) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": "unauthenticated", "message": message })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole() {
        assert!(ApiToken::new("short").is_err());
        assert!(ApiToken::new("sixteen chars ok").is_err(), "no spaces");
        let token = ApiToken::new("0123456789abcdef").unwrap();
        assert_eq!(format!("{token:?}"), "ApiToken(…)");
        let mut headers = HeaderMap::new();
        assert!(token.check(&headers).is_err());
        for (value, ok) in [
            ("Bearer 0123456789abcdef", true),
            ("Bearer 0123456789abcdeF", false),
            ("Bearer 0123456789abcde", false),
            ("Bearer 0123456789abcdef0", false),
            ("Basic 0123456789abcdef", false),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(token.check(&headers).is_ok(), ok, "{value}");
        }
    }
}
