//! What a device counts, and a minimal HTTP/1.1 responder that serves it as
//! `GET /metrics` (Prometheus text format 0.0.4, [`enrollment_metrics`]).
//!
//! The device build holds no HTTP stack (`scripts/check-device-tree`), so
//! the responder is written here on tokio alone: it reads one request head
//! (at most [`MAX_REQUEST_HEAD`] bytes, within [`REQUEST_TIMEOUT`]), answers
//! `GET /metrics` with the text, anything else with `404`/`405`/`400`, and
//! closes the connection; at most [`MAX_CONNECTIONS`] are served at once
//! (more are closed unanswered). `device-agent serve --metrics-listen ADDR`
//! turns it on; it is off by default, and serves no token: it tells only
//! counts and times, never an identifier or a key, and is meant for a
//! loopback or management address.
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `device_sessions_total` | counter | `outcome` | sessions served: `enrolled` (first enrollment), `reenrolled` (a sealed device enrolled again by the assistant on record), `rebound` (moved to another SP), `status` (the assistant asked what the device holds), `failed` |
//! | `device_session_failures_total` | counter | `code` | failed sessions by their stable failure code on the link (`sealed`, `untrusted`, `not_for_this_device`, `half_trap`, `half_deadline`, `protocol`, `aborted`, …; `FailureCode` in snake case) |
//! | `device_half_run_duration_seconds` | histogram | — | a device half's run: instantiation to its return (or its deadline) |
//! | `device_store_commit_duration_seconds` | histogram | — | one transaction of the store's writer, from `BEGIN` to the answer of `COMMIT` (its fsync included); a batch of enrollments, re-binds or provisionings |

use std::sync::Arc;
use std::time::Duration;

use enrollment_host::failure::FailureCode;
use enrollment_metrics::{Counter, Exposition, Family, Histogram, LATENCY_BUCKETS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::runtime::DeviceReport;
use crate::{DeviceFailure, DeviceRuntime};

/// The longest request head the responder reads.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;

/// A device runtime's counters and histograms (the store's commit histogram
/// lives with the store's writer: [`crate::DeviceStore::commit_histogram`]).
#[derive(Debug)]
pub struct DeviceMetrics {
    sessions: Family<Counter>,
    failures: Family<Counter>,
    half_run: Histogram,
}

impl Default for DeviceMetrics {
    fn default() -> Self {
        Self {
            sessions: Family::new(
                "device_sessions_total",
                "Sessions served, by outcome (enrolled, reenrolled, rebound, status, failed).",
                &["outcome"],
                [["enrolled"], ["reenrolled"], ["rebound"], ["status"], ["failed"]],
                Counter::new,
            ),
            failures: Family::new(
                "device_session_failures_total",
                "Failed sessions, by the failure code sent on the link.",
                &["code"],
                FailureCode::ALL.iter().map(|c| [code_label(*c)]),
                Counter::new,
            ),
            half_run: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// `HalfTrap` → `half_trap`.
fn code_label(code: FailureCode) -> String {
    match code {
        FailureCode::Unknown(n) => format!("unknown_{n}"),
        known => enrollment_metrics::snake_case(&format!("{known:?}")),
    }
}

impl DeviceMetrics {
    /// One session ended.
    pub(crate) fn session(&self, result: &Result<DeviceReport, DeviceFailure>) {
        let outcome = match result {
            Ok(r) if r.status_only => "status",
            Ok(r) if r.sp_only => "rebound",
            Ok(r) if r.rebind => "reenrolled",
            Ok(_) => "enrolled",
            Err(failure) => {
                self.failures.get(&[&code_label(failure.code())]).inc();
                "failed"
            }
        };
        self.sessions.get(&[outcome]).inc();
    }

    /// A device half ran for `took`.
    pub(crate) fn half_ran(&self, took: Duration) {
        self.half_run.observe_duration(took);
    }
}

impl DeviceRuntime {
    /// Every metric of the module table, as `GET /metrics` serves it.
    pub fn render_metrics(&self) -> String {
        let m = self.metrics();
        let mut out = Exposition::new();
        out.family(&m.sessions).family(&m.failures);
        out.header(
            "device_half_run_duration_seconds",
            "A device half's run, instantiation to return (or deadline).",
            "histogram",
        );
        enrollment_metrics::Series::write(&m.half_run, &mut out, "device_half_run_duration_seconds", &[]);
        out.header(
            "device_store_commit_duration_seconds",
            "One transaction of the device store's writer, BEGIN to the answer of COMMIT (fsync included).",
            "histogram",
        );
        enrollment_metrics::Series::write(
            self.store().commit_histogram(),
            &mut out,
            "device_store_commit_duration_seconds",
            &[],
        );
        out.into_string()
    }
}

/// Serves `GET /metrics` with `render()`'s text on `listener` until the task
/// is dropped (see the module docs).
pub async fn serve_metrics<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream); // busy: closed unanswered
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = answer(stream, &*render).await {
                tracing::debug!(error = %e, "metrics request not answered");
            }
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, render: &(dyn Fn() -> String + Send + Sync)) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()), // too slow: closed
    };
    let (status, body) = match head.as_deref().and_then(|h| h.lines().next()).map(|l| l.split(' ').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 3 && parts[2].starts_with("HTTP/1.") => match (parts[0], parts[1]) {
            ("GET", PATH) => ("200 OK", render()),
            ("GET", _) => ("404 Not Found", "only /metrics is served here\n".to_owned()),
            _ => ("405 Method Not Allowed", "only GET /metrics is served here\n".to_owned()),
        },
        _ => ("400 Bad Request", "not an HTTP/1.x request head\n".to_owned()),
    };
    let content_type =
        if status.starts_with("200") { enrollment_metrics::CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let allow = if status.starts_with("405") { "Allow: GET\r\n" } else { "" };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The path served (the route every service uses).
const PATH: &str = "/metrics";

/// The request head as text, up to the blank line; `None` if it is not
/// UTF-8, longer than [`MAX_REQUEST_HEAD`], or the peer closed first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(String::from_utf8(buf).ok());
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_responder_answers_get_metrics_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_metrics(listener, || "# TYPE up gauge\nup 1\n".to_owned()));

        let ok = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("\r\n\r\n# TYPE up gauge\nup 1\n"), "{ok}");
        assert!(request(addr, b"GET /other HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        let post = request(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET"), "{post}");
        assert!(request(addr, b"hello\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn failure_codes_are_snake_case_labels() {
        assert_eq!(code_label(FailureCode::HalfTrap), "half_trap");
        assert_eq!(code_label(FailureCode::NotForThisDevice), "not_for_this_device");
        assert_eq!(code_label(FailureCode::Unknown(999)), "unknown_999");
    }
}
