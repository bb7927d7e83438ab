//! A minimal HTTPS/1.1 client with keep-alive, for the door's own tests and `cmksim bench rest`.
//!
//! It is what an SDK does on the wire, without an SDK: one TLS connection (trusting only the
//! given PEM certificates), requests one after another on it, a `Host` header (and SNI) that
//! names the vault, so that a test can address `contoso-kv.vault.azure.net` at `127.0.0.1:PORT`
//! without DNS. Not a general client: no redirects, no proxies, no retries.

use std::net::SocketAddr;
use std::sync::Arc;

pub use axum::body::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// Largest response body read.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why a request failed below HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    #[error("TLS trust: {0}")]
    Trust(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] http::Error),
    #[error("response body: {0} (at most {RESPONSE_BYTES_MAX} bytes are read)")]
    Body(String),
}

/// Longest proxy answer read before the tunnel starts.
const PROXY_ANSWER_BYTES_MAX: usize = 4096;

/// Asks the proxy at the other end of `tcp` for a tunnel to `host:443` and reads its answer
/// (up to the blank line), which must be 200.
async fn connect_tunnel(tcp: &tokio::net::TcpStream, host: &str) -> Result<(), ClientError> {
    let request = format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n");
    let mut written = 0;
    while written < request.len() {
        tcp.writable().await?;
        match tcp.try_write(&request.as_bytes()[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // Read one byte at a time so that nothing of the TLS that follows is consumed.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= PROXY_ANSWER_BYTES_MAX {
            return Err(ClientError::Trust("proxy answer too long".into()));
        }
        tcp.readable().await?;
        let mut byte = [0u8; 1];
        match tcp.try_read(&mut byte) {
            Ok(0) => return Err(ClientError::Trust("proxy closed the connection".into())),
            Ok(_) => answer.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(ClientError::Trust(format!(
            "proxy refused: {}",
            text.trim()
        )));
    }
    Ok(())
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One keep-alive connection to the door.
pub struct HttpsClient {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpsClient {
    /// Connects to `addr`, naming `host` in SNI and `Host` (`contoso-kv.vault.azure.net`),
    /// trusting only the certificates of `ca_pem`.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        ca_pem: &[u8],
    ) -> Result<HttpsClient, ClientError> {
        HttpsClient::open(addr, host, ca_pem, false).await
    }

    /// As [`HttpsClient::connect`], but through `addr` as an HTTP proxy: `CONNECT host:443`
    /// first, then TLS inside the tunnel (what a client given `HTTPS_PROXY` does).
    pub async fn connect_through_proxy(
        addr: SocketAddr,
        host: &str,
        ca_pem: &[u8],
    ) -> Result<HttpsClient, ClientError> {
        HttpsClient::open(addr, host, ca_pem, true).await
    }

    async fn open(
        addr: SocketAddr,
        host: &str,
        ca_pem: &[u8],
        through_proxy: bool,
    ) -> Result<HttpsClient, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| ClientError::Trust(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Trust(e.to_string()))?;
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(cmksim_sim::net::crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Trust(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| ClientError::Trust(format!("{host}: {e}")))?;
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        if through_proxy {
            connect_tunnel(&tcp, host).await?;
        }
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("https client connection ended: {e}");
            }
        });
        Ok(HttpsClient {
            sender,
            host: host.to_string(),
        })
    }

    /// Sends one request (`path` with its query) and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, incoming) = response.into_parts();
        let limited = http_body_util::Limited::new(incoming, RESPONSE_BYTES_MAX);
        let body = limited
            .collect()
            .await
            .map_err(|e| ClientError::Body(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `send` with a bearer token and a JSON body.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.send(method, path, &headers, body).await
    }
}
