//! The live `/metrics` endpoint: a tiny, bounded HTTP/1.1 responder on a tokio `TcpListener`.
//!
//! Prometheus needs one GET of one path; a full HTTP stack would add a dependency for nothing.
//! Each connection gets one response and is closed (`Connection: close`). Bounds: the request
//! head may be at most `REQUEST_HEAD_BYTES_MAX` bytes, must arrive within `REQUEST_READ_TIMEOUT`
//! (real time: this endpoint exists only in live mode), and at most `CONNECTIONS_MAX` connections
//! are served at once (others wait in the kernel's accept queue). The request handling is a pure
//! function ([`respond`]) so it is tested without sockets.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The largest request head accepted.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served concurrently.
pub const CONNECTIONS_MAX: usize = 64;
/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the metrics text on demand.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The full HTTP response to a request head.
pub fn respond(head: &[u8], render: &dyn Fn() -> String) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let request_line = text.lines().next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body, allow) = match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => ("200 OK", CONTENT_TYPE, render(), false),
        (_, "/metrics") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD are allowed\n".to_string(),
            true,
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_string(),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if allow {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= REQUEST_HEAD_BYTES_MAX {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// Answers one scrape; an error is the connection's (the scraper hung up or timed out).
async fn handle(mut stream: TcpStream, render: Render) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_head(&mut stream)).await;
    let response = match head {
        Ok(Some(head)) => respond(&head, render.as_ref()),
        _ => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve_metrics<F>(
    listener: TcpListener,
    render: Render,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let render = render.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, render).await {
                // The scraper's connection failed under its answer: there is no one left to
                // answer, and the next scrape asks again; the server goes on serving others.
                tracing::debug!("metrics: answering a scrape failed: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let render = || "cmksim_x 1\n".to_string();
        let ok = String::from_utf8(respond(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            &render,
        ))
        .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(ok.contains("Content-Length: 11\r\n"));
        assert!(ok.ends_with("\r\n\r\ncmksim_x 1\n"));
        let head = String::from_utf8(respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &render)).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
        let post = String::from_utf8(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &render)).unwrap();
        assert!(post.starts_with("HTTP/1.1 405"));
        let other = String::from_utf8(respond(b"GET / HTTP/1.1\r\n\r\n", &render)).unwrap();
        assert!(other.starts_with("HTTP/1.1 404"));
    }
}
