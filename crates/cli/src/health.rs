//! `cmksim health URL`: asks a service's `grpc.health.v1.Health/Check` whether it is serving.
//!
//! It exists for container health checks (the runtime image has no grpc probe): exit 0 when the
//! service answers SERVING, 1 when it answers anything else or cannot be reached within the
//! timeout, 2 on bad input. Every service registers the overall status (the empty service
//! name) and each of its gRPC services by full name (e.g. `storage.v1.DataPlane`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Args)]
pub struct HealthArgs {
    /// The service URL, e.g. http://127.0.0.1:50051.
    url: String,
    /// A gRPC service name to check (default: the server as a whole).
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this many milliseconds (connect and call together).
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let endpoint =
        tonic::transport::Endpoint::from_shared(args.url.clone()).with_context(|| {
            format!(
                "{:?} is not a valid URL (expected http://HOST:PORT)",
                args.url
            )
        })?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let endpoint = endpoint.connect_timeout(timeout).timeout(timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let answer = runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
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
            println!("{}: SERVING", args.url);
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            let name = ServingStatus::try_from(status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            println!("{}: {name}", args.url);
            Ok(ExitCode::from(1))
        }
        Err(reason) => {
            println!("{}: unreachable: {reason}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}
