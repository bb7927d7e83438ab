//! `cmksim health URL`: asks a service's `grpc.health.v1.Health/Check` whether it is serving.
//!
//! It exists for container health checks (the runtime image has no grpc probe): exit 0 when the
//! service answers SERVING, 1 when it answers anything else or cannot be reached within the
//! timeout, 2 on bad input. Every service registers the overall status (the empty service
//! name) and each of its gRPC services by full name (e.g. `storage.v1.DataPlane`).
//!
//! An `https://` URL is probed over TLS trusting `--tls-ca` (for a self-signed server, its
//! `tls/cert.pem`); without `--tls-ca` nothing is trusted, so the probe reports the server's
//! certificate as untrusted (exit 1) rather than skipping verification.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cmksim_sim::net::{error_chain, ClientTimeouts, Network, TlsClient};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Args)]
pub struct HealthArgs {
    /// The service URL, e.g. http://127.0.0.1:50051 or https://127.0.0.1:50051.
    url: String,
    /// PEM certificate(s) to trust for an https:// URL (a self-signed server's tls/cert.pem).
    #[arg(long, env = "CMKSIM_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// A gRPC service name to check (default: the server as a whole).
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this many milliseconds (connect and call together).
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    cmksim_sim::net::install_crypto_provider();
    tonic::transport::Endpoint::from_shared(args.url.clone()).with_context(|| {
        format!(
            "{:?} is not a valid URL (expected http://HOST:PORT)",
            args.url
        )
    })?;
    let https = args.url.starts_with("https://");
    let trust = match &args.tls_ca {
        Some(ca) => TlsClient::trusting_file(ca).map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?,
        None => TlsClient::trusting_nothing(),
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let timeouts = ClientTimeouts {
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ClientTimeouts::default()
    };
    let endpoint = Network::Tls(Arc::new(trust))
        .endpoint(&args.url, timeouts)
        .with_context(|| format!("{:?}", args.url))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let answer = runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let channel = endpoint.connect().await.map_err(|e| {
                let mut reason = error_chain(&e);
                if https && args.tls_ca.is_none() {
                    reason.push_str(" (no --tls-ca given: no certificate is trusted)");
                }
                reason
            })?;
            HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: args.service.clone(),
                })
                .await
                .map(|r| r.into_inner().status)
                .map_err(|s| format!("{}: {}", s.code(), s.message()))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
    });
    match answer {
        Ok(status) if status == ServingStatus::Serving as i32 => {
            outln!("{}: SERVING", args.url);
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            let name = ServingStatus::try_from(status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            outln!("{}: {name}", args.url);
            Ok(ExitCode::from(1))
        }
        Err(reason) => {
            outln!("{}: unreachable: {reason}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}
