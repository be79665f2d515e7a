//! One small HTTP/1.1 client for another daemon's endpoint (hyper's client
//! connection), used by the candidate registry (checks and wake-ups) and by
//! the one-shot commands that talk to the local daemon (`step-down`).
//!
//! Every exchange is one connection, one request, bounded as a whole by the
//! caller's timeout (connect, send and the whole body), and reads at most
//! [`MAX_BODY`] bytes of the answer. Nothing here retries.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest answer body read from a peer.
pub const MAX_BODY: usize = 64 * 1024;

/// Why an exchange with a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad request target `{0}`")]
    Target(String),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("answer body unreadable or over {MAX_BODY} bytes: {0}")]
    Body(String),
}

/// A peer's answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, for messages (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Send `method path` with an empty body to `address` (`host:port`) and
/// read the answer, all within `within`.
pub async fn request(
    address: &str,
    method: Method,
    path: &str,
    within: Duration,
) -> Result<Answer, PeerError> {
    tokio::time::timeout(within, exchange(address, method, path))
        .await
        .map_err(|_| PeerError::Timeout(within))?
}

async fn exchange(address: &str, method: Method, path: &str) -> Result<Answer, PeerError> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, address)
        .header(hyper::header::USER_AGENT, "s3-elector")
        .body(Empty::<Bytes>::new())
        .map_err(|_| PeerError::Target(format!("{address}{path}")))?;
    let stream = TcpStream::connect(address)
        .await
        .map_err(PeerError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends with the exchange; when a timeout drops
    // this future, hyper closes the connection (a test pins this).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| PeerError::Body(e.to_string()))?
        .to_bytes();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server that answers with `raw` after reading the head.
    async fn serve_once(raw: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(raw).await.unwrap();
            s.shutdown().await.ok();
        });
        addr
    }

    #[tokio::test]
    async fn reads_a_chunked_answer() {
        let addr = serve_once(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await;
        let a = request(&addr, Method::POST, "/step-down", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.status, 202);
        assert_eq!(a.text(), "hello world");
        assert!(a.is_success());
    }

    /// A server that answers `status` with a body of `len` bytes.
    async fn serve_body(status: u16, len: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&vec![b'x'; len]).await;
        });
        addr
    }

    #[tokio::test]
    async fn reads_bodies_up_to_64_kib_and_refuses_larger_ones() {
        let addr = serve_body(200, 65_536).await;
        let a = request(&addr, Method::GET, "/leader", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.body.len(), 65_536);
        let addr = serve_body(200, 65_537).await;
        let e = request(&addr, Method::GET, "/leader", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Body(_)), "{e}");
    }

    #[tokio::test]
    async fn an_error_status_is_an_answer_but_not_a_success() {
        let addr = serve_body(404, 2).await;
        let a = request(&addr, Method::GET, "/nope", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.status, 404);
        assert!(!a.is_success());
    }

    /// When the caller's timeout ends the exchange, the connection is
    /// closed at once: nothing is left talking to a silent peer.
    #[tokio::test]
    async fn a_timed_out_exchange_leaves_no_connection_behind() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await; // the request; never answered
                                            // EOF (0) once the client's connection is gone.
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await
        });
        let e = request(&addr, Method::GET, "/leader", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Timeout(_)), "{e}");
        let closed = server.await.unwrap();
        assert!(
            matches!(closed, Ok(Ok(0))),
            "the connection stayed open after the timeout: {closed:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let e = request(&addr, Method::GET, "/leader", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = request(&addr, Method::GET, "/leader", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Connect(_)), "{e}");
    }
}
