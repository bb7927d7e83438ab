//! TLS for live mode: what a client trusts ([`TlsClient`]), the server configuration
//! ([`tls_server_config`]) and the accepted connections of a TLS listener ([`tls_incoming`]).
//!
//! Every rustls configuration is built with one explicit crypto provider, ring
//! ([`crypto_provider`]), so no process-default provider is ever needed. Separate from the rest of
//! `net` because only live processes use it; the simulation never does.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_stream::Stream;

use super::*;

/// Why TLS material could not be used, by the part that is wrong (so that a caller can name
/// the file).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate (chain) PEM, or a file of certificates to trust.
    #[error("{0}")]
    Certificate(String),
    /// The private key PEM.
    #[error("{0}")]
    PrivateKey(String),
    /// The two together (e.g. a key that is not the certificate's).
    #[error("{0}")]
    Pair(String),
}

/// What a TLS client trusts: the certificates of a PEM file (for a server with a self-signed
/// certificate, that certificate itself; otherwise the CA that issued the server's). Only these
/// are trusted, never the system's roots.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsClient {
    ca_pem: Vec<u8>,
    pub(super) count: usize,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("trusted_certificates", &self.count)
            .finish()
    }
}

impl TlsClient {
    /// Trusts the certificates of `pem` (at least one, each parsable).
    pub fn trusting_pem(pem: impl Into<Vec<u8>>) -> Result<TlsClient, TlsError> {
        let ca_pem = pem.into();
        let count = parse_certificates(&ca_pem)?.len();
        Ok(TlsClient { ca_pem, count })
    }

    /// Trusts the certificates of the PEM file at `path`; errors name the file.
    pub fn trusting_file(path: &Path) -> Result<TlsClient, TlsError> {
        let pem = std::fs::read(path)
            .map_err(|e| TlsError::Certificate(format!("cannot read {}: {e}", path.display())))?;
        TlsClient::trusting_pem(pem)
            .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))
    }

    /// Trusts nothing: every server certificate is refused (a probe that was given no CA still
    /// speaks TLS, and reports the server as untrusted).
    pub fn trusting_nothing() -> TlsClient {
        TlsClient {
            ca_pem: Vec::new(),
            count: 0,
        }
    }

    /// The trusted certificates, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    pub(super) fn client_config(&self, handshake_timeout: Duration) -> ClientTlsConfig {
        // tonic builds the rustls client config with the process default provider when one is
        // installed, else with ring (its `tls-ring` feature): ring either way.
        let config = ClientTlsConfig::new().timeout(handshake_timeout);
        if self.ca_pem.is_empty() {
            config
        } else {
            config.ca_certificate(Certificate::from_pem(&self.ca_pem))
        }
    }
}

/// The one crypto provider of every rustls configuration: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-level rustls provider, for any code that builds a rustls config
/// without naming one (tonic's client does, when a default is installed). Idempotent; a
/// provider installed earlier by someone else is kept.
pub fn install_crypto_provider() {
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
}

fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    Ok(certs)
}

/// A rustls server configuration for a certificate chain and its private key, both PEM (the
/// key PKCS#8, PKCS#1 or SEC1), offering HTTP/2 by ALPN. The error says which of the two is
/// wrong; the caller adds the file names.
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = parse_certificates(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::PrivateKey(format!("not a PEM private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take over its TLS handshake before the server drops it.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accepted connections of a real TCP listener (`TCP_NODELAY` set, as [`tcp_incoming`]),
/// each after a TLS handshake with `config`, as the stream tonic's `serve_with_incoming` wants
/// (tonic's `tls-connect-info` makes the TLS stream `Connected`).
///
/// Handshakes run concurrently, each bounded by [`TLS_HANDSHAKE_TIMEOUT`], so a slow or silent
/// client holds up no one. A failed handshake (a plain-text client, an untrusting one) is
/// logged and that connection dropped; the server goes on. Errors of `accept` itself are passed
/// on as from [`tcp_incoming`]. The listener closes when the stream is dropped (the server
/// stopped). Call it inside a tokio runtime: it spawns the accept loop.
pub fn tls_incoming(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> impl Stream<Item = io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>
       + Send
       + 'static {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(%peer, "TLS connection dropped: TCP_NODELAY: {e}");
                continue;
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, "TLS handshake failed, connection dropped: {e}")
                    }
                    Err(_) => tracing::warn!(
                        %peer,
                        timeout_s = TLS_HANDSHAKE_TIMEOUT.as_secs(),
                        "TLS handshake timed out, connection dropped"
                    ),
                }
            });
        }
    });
    futures_unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
}
