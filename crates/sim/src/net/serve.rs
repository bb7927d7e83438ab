//! The start every gRPC server of the simulator shares: binding its TCP address.
//!
//! Key Vault, storage, Sentinel and ingest each serve either real TCP (`serve(addr)`) or any
//! stream of connections (`serve_with_incoming`: turmoil, the in-memory network, TLS). The TCP
//! case was written out in each server with its own error mapping; [`bind_tcp`] is that step
//! once, with an error that names the address ([`BindError`]), and connections that have
//! `TCP_NODELAY` set ([`super::tcp_incoming`]).

use std::net::SocketAddr;

use tokio_stream::Stream;

/// A server's listening address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` and returns its accepted connections, ready for a server's
/// `serve_with_incoming`.
pub async fn bind_tcp(
    addr: SocketAddr,
) -> Result<impl Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static, BindError>
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    Ok(super::tcp_incoming(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_in_use_is_named_in_the_error() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = match bind_tcp(addr).await {
            Ok(_) => panic!("bound an address in use"),
            Err(e) => e,
        };
        assert_eq!(err.addr, addr);
        assert!(err
            .to_string()
            .starts_with(&format!("cannot listen on {addr}: ")));
        assert!(bind_tcp("127.0.0.1:0".parse().unwrap()).await.is_ok());
    }
}
