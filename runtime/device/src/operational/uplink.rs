//! How a device's messages reach its SP, and its SP's commands reach it.
//!
//! [`Uplink`] is the one seam: a device with IP talks to its SP's endpoint
//! itself ([`HttpUplink`] with the endpoint the enrollment stored); a device
//! without IP (Zigbee, Thread, BLE) talks to its gateway, which forwards each
//! message unchanged (`HttpUplink::via` the gateway's forwarding URL). The
//! messages are signed by the device and the commands by the SP, so the way
//! they travel is not trusted with anything.
//!
//! `HttpUplink` is a deliberately small HTTP/1.1 client over a TCP stream
//! (plain `http://` only; bounded answers, a timeout on every exchange): the
//! device build carries no HTTP stack (`scripts/check-device-tree`), as a
//! constrained device would not. A device that needs TLS plugs in its own
//! `Uplink`.

use std::time::Duration;

use control_api::device::{DEVICE_COMMANDS, DEVICE_MESSAGES, DeviceMessage, SpCommand};
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a message or a command fetch did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    #[error("the SP endpoint {0:?} is not an http:// URL this device can reach (https needs an uplink with TLS)")]
    Unsupported(String),
    #[error("{endpoint} could not be reached: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("{endpoint} refused it ({status}): {body}")]
    Refused { endpoint: String, status: u16, body: String },
    #[error("{endpoint} answered something else than the device-message contract: {reason}")]
    BadAnswer { endpoint: String, reason: String },
}

/// Where messages go and commands come from.
pub trait Uplink: Send + Sync {
    /// Posts one signed message to the SP at `endpoint`.
    fn send<'a>(&'a self, endpoint: &'a str, message: &'a DeviceMessage) -> BoxFuture<'a, Result<(), UplinkError>>;
    /// The SP's commands for `identifier` after sequence number `after`.
    fn commands<'a>(
        &'a self,
        endpoint: &'a str,
        identifier: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<Vec<SpCommand>, UplinkError>>;
}

/// Largest answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// The plain-HTTP uplink.
#[derive(Debug, Clone)]
pub struct HttpUplink {
    /// Where to send instead of the SP endpoint (a gateway that forwards).
    via: Option<String>,
    timeout: Duration,
}

impl HttpUplink {
    /// Talks to each device's SP endpoint itself (a device with IP).
    pub fn direct(timeout: Duration) -> Self {
        Self { via: None, timeout }
    }

    /// Talks to the gateway at `url`, which forwards to the SP (a device
    /// without IP).
    pub fn via(url: String, timeout: Duration) -> Self {
        Self { via: Some(url), timeout }
    }

    fn base<'a>(&'a self, endpoint: &'a str) -> &'a str {
        self.via.as_deref().unwrap_or(endpoint)
    }
}

impl Uplink for HttpUplink {
    fn send<'a>(&'a self, endpoint: &'a str, message: &'a DeviceMessage) -> BoxFuture<'a, Result<(), UplinkError>> {
        Box::pin(async move {
            let base = self.base(endpoint);
            let body = serde_json::to_vec(message).map_err(|e| UplinkError::BadAnswer { endpoint: base.into(), reason: e.to_string() })?;
            let (status, answer) = exchange(base, "POST", DEVICE_MESSAGES, Some(&body), self.timeout).await?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(UplinkError::Refused { endpoint: base.into(), status, body: String::from_utf8_lossy(&answer).into_owned() })
            }
        })
    }

    fn commands<'a>(
        &'a self,
        endpoint: &'a str,
        identifier: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<Vec<SpCommand>, UplinkError>> {
        Box::pin(async move {
            let base = self.base(endpoint);
            let path = format!("{DEVICE_COMMANDS}?identifier={}&after={after}", encode(identifier));
            let (status, answer) = exchange(base, "GET", &path, None, self.timeout).await?;
            if !(200..300).contains(&status) {
                return Err(UplinkError::Refused { endpoint: base.into(), status, body: String::from_utf8_lossy(&answer).into_owned() });
            }
            serde_json::from_slice(&answer).map_err(|e| UplinkError::BadAnswer { endpoint: base.into(), reason: e.to_string() })
        })
    }
}

/// Percent-encodes a query value (identifiers hold `/` and `:`).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.1 exchange with `Connection: close`: the status and the body.
async fn exchange(base: &str, method: &str, path: &str, body: Option<&[u8]>, timeout: Duration) -> Result<(u16, Vec<u8>), UplinkError> {
    let rest = base.strip_prefix("http://").ok_or_else(|| UplinkError::Unsupported(base.into()))?;
    let (authority, prefix) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{}", p.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let prefix = if prefix == "/" { String::new() } else { prefix };
    let unreachable = |reason: String| UplinkError::Unreachable { endpoint: base.into(), reason };
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| unreachable(e.to_string()))?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.map_err(|e| unreachable(e.to_string()))?;
        stream.write_all(body).await.map_err(|e| unreachable(e.to_string()))?;
        let mut answer = Vec::new();
        let mut limited = (&mut stream).take(MAX_ANSWER as u64 + 1);
        limited.read_to_end(&mut answer).await.map_err(|e| unreachable(e.to_string()))?;
        if answer.len() > MAX_ANSWER {
            return Err(UplinkError::BadAnswer { endpoint: base.into(), reason: format!("an answer over {MAX_ANSWER} bytes") });
        }
        parse_answer(base, &answer)
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| unreachable(format!("no answer within {} ms", timeout.as_millis())))?
}

fn parse_answer(base: &str, answer: &[u8]) -> Result<(u16, Vec<u8>), UplinkError> {
    let bad = |reason: &str| UplinkError::BadAnswer { endpoint: base.into(), reason: reason.into() };
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of the response head"))?;
    let head = std::str::from_utf8(&answer[..split]).map_err(|_| bad("a response head that is not text"))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    if head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:")) {
        return Err(bad("a chunked answer (this client reads Content-Length or close-delimited bodies)"));
    }
    Ok((status, answer[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_their_head() {
        let (status, body) = parse_answer("http://x", b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (202, b"{}".as_slice()));
        assert!(matches!(parse_answer("http://x", b"HTTP/1.1 200 OK\r\n"), Err(UplinkError::BadAnswer { .. })));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert!(matches!(parse_answer("http://x", chunked), Err(UplinkError::BadAnswer { .. })));
        assert_eq!(encode("sp-one.example/wifi/AC-DE-48-00-00-80"), "sp-one.example%2Fwifi%2FAC-DE-48-00-00-80");
    }

    #[tokio::test]
    async fn https_is_refused_with_what_to_do() {
        let e = exchange("https://sp.example", "GET", "/", None, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, UplinkError::Unsupported(_)), "{e}");
    }
}
