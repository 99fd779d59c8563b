//! The rules every HTTP client of a remote party follows (feature `http-client`):
//! the control server calling SPs, a gateway calling the control server and
//! SPs, an SP calling the control server.
//!
//! * No HTTP redirects are followed ([`client_builder`]). Between SPs a
//!   redirect is a verdict of the protocol, checked against the registered
//!   SPs; an HTTP `3xx` would send the request (device id, gateway id, geo)
//!   to any URL the answering server names and accept whatever is answered
//!   there. A `3xx` is therefore an answer like any other, and the caller
//!   refuses it as a misbehaving peer.
//! * Every answer body is read up to a limit the caller names
//!   ([`read_body`]): a peer cannot make the reader buffer more than that.

use reqwest::Response;

/// Installs the process-wide rustls crypto provider (ring) unless one is
/// already installed: reqwest is built without a default one and panics
/// when a client is built without it.
pub fn install_crypto_provider() {
    // Already installed (by us or the host application) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A `reqwest` client builder that never follows redirects, with the crypto
/// provider installed. Callers add their timeouts and build.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// A client from [`client_builder`] with no other settings. Building fails
/// only if the TLS backend cannot be set up.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder().build()
}

/// Why an answer body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The answer is (or announced to be) longer than the caller accepts.
    #[error("the answer body is larger than the {limit} bytes accepted")]
    TooLarge { limit: usize },
    /// The connection failed or timed out while the body was read.
    #[error("reading the answer body failed: {0}")]
    Read(#[from] reqwest::Error),
}

/// Reads the body of `response`, at most `limit` bytes; a longer body (by its
/// `Content-Length`, or as it arrives) is refused with
/// [`BodyError::TooLarge`] without reading the rest.
pub async fn read_body(mut response: Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves `answer` (raw HTTP) to every connection on a loopback port.
    async fn serve(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket.write_all(&answer).await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let target = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()).await;
        let redirect = format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}/\r\ncontent-length: 0\r\n\r\n");
        let base = serve(redirect.into_bytes()).await;
        let answer = client().unwrap().post(format!("{base}/v1/validate")).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 307, "the redirect itself is the answer");
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let small = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec()).await;
        let answer = client().unwrap().get(&small).send().await.unwrap();
        assert_eq!(read_body(answer, 5).await.unwrap(), b"hello");

        let announced = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\nxx".to_vec()).await;
        let answer = client().unwrap().get(&announced).send().await.unwrap();
        assert!(matches!(read_body(answer, 1024).await, Err(BodyError::TooLarge { limit: 1024 })));

        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..8 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let unannounced = serve(chunked).await;
        let answer = client().unwrap().get(&unannounced).send().await.unwrap();
        assert!(matches!(read_body(answer, 1024).await, Err(BodyError::TooLarge { limit: 1024 })));
    }
}
