//! `cmksim query WORKSPACE 'KQL'`: runs a KQL query against live services, as the Logs Query API
//! does (`ingest.v1.Query/Kql`), and prints the result as a table (or `--json`, the API's shape).
//!
//! WORKSPACE is the workspace's ARM id, or its customerId GUID (resolved by storage). The
//! timespan is ISO 8601 as the API takes it (`PT1H`, `start/end`); a duration alone ends at the
//! services' simulated now (read from the ingest front end's clock). Exit status: 0 with a result,
//! 1 when the service refused the query (a syntax error, a revoked cluster: the message says
//! which), 2 on bad input or unreachable services.
//!
//! With `--client-id` and `--client-secret` (a principal of the identity authority, e.g. the
//! administrator of the door's `credentials.json`), the command obtains a Log Analytics token
//! from the identity authority (`--keyvault`) like any client and sends it with both calls, so
//! that it works against services that require tokens; without them it sends none.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use cmksim_proto::common::v1::SimTime as PbTime;
use cmksim_proto::events::v1 as evp;
use cmksim_proto::ingest::v1 as inp;
use cmksim_proto::storage::v1 as stp;
use cmksim_sim::net::{ClientTimeouts, Network, TlsClient};
use cmksim_sim::SimTime;

/// Widest cell printed in the table (longer values are cut; `--json` shows them whole).
const CELL_CHARS_MAX: usize = 60;

#[derive(Args)]
pub struct QueryArgs {
    /// The workspace: its ARM resource id, or its customerId GUID.
    workspace: String,
    /// The KQL query, e.g. 'Heartbeat | summarize count() by bin(TimeGenerated, 1h)'.
    query: String,
    /// ISO 8601 timespan: a duration ending now (PT1H, P1D) or start/end. Default: no bound
    /// beyond the query's own.
    #[arg(long)]
    timespan: Option<String>,
    /// The ingestion front end.
    #[arg(long, env = "CMKSIM_INGEST", default_value = "http://127.0.0.1:50053")]
    ingest: String,
    /// Cluster storage (to resolve a customerId).
    #[arg(long, env = "CMKSIM_STORAGE", default_value = "http://127.0.0.1:50052")]
    storage: String,
    /// PEM certificate(s) to trust for https:// URLs.
    #[arg(long, env = "CMKSIM_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The identity authority (hosted by Key Vault), for the token.
    #[arg(
        long,
        env = "CMKSIM_KEYVAULT",
        default_value = "http://127.0.0.1:50051"
    )]
    keyvault: String,
    /// The principal to query as (its object id or client id); with --client-secret.
    #[arg(long, env = "CMKSIM_CLIENT_ID", requires = "client_secret")]
    client_id: Option<String>,
    /// The principal's secret.
    #[arg(
        long,
        env = "CMKSIM_CLIENT_SECRET",
        requires = "client_id",
        hide_env_values = true
    )]
    client_secret: Option<String>,
    /// Print the Logs Query API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    cmksim_sim::net::install_crypto_provider();
    let network = match &args.tls_ca {
        Some(ca) => Network::Tls(Arc::new(
            TlsClient::trusting_file(ca).map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?,
        )),
        None => Network::Tcp,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(query(args, network))
}

/// A Log Analytics token of the principal given on the command line, if one is.
async fn token(args: &QueryArgs, network: &Network) -> anyhow::Result<Option<String>> {
    let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) else {
        return Ok(None);
    };
    let identity = network
        .channel(&args.keyvault, ClientTimeouts::default())
        .with_context(|| format!("--keyvault {:?}", args.keyvault))?;
    let answer = cmksim_proto::identity::v1::identity_client::IdentityClient::new(identity)
        .issue_token(cmksim_proto::identity::v1::IssueTokenRequest {
            object_id: id.clone(),
            secret: secret.clone(),
            audience: cmksim_identity::audience::LOG_ANALYTICS.to_string(),
            lifetime_seconds: 0,
        })
        .await
        .map_err(|s| anyhow::anyhow!("a token for {id:?}: {}", s.message()))?;
    Ok(Some(answer.into_inner().token))
}

async fn query(args: QueryArgs, network: Network) -> anyhow::Result<ExitCode> {
    let timeouts = ClientTimeouts::default();
    let token = token(&args, &network).await?;
    let plain_ingest = network
        .channel(&args.ingest, timeouts)
        .with_context(|| format!("--ingest {:?}", args.ingest))?;
    let ingest = cmksim_identity::AuthChannel::forwarding(plain_ingest.clone(), token.clone());
    let workspace_id = if args.workspace.starts_with('/') {
        args.workspace.clone()
    } else {
        let storage = network
            .channel(&args.storage, timeouts)
            .with_context(|| format!("--storage {:?}", args.storage))?;
        stp::workspaces_client::WorkspacesClient::new(cmksim_identity::AuthChannel::forwarding(
            storage,
            token.clone(),
        ))
        .find_workspace(stp::FindWorkspaceRequest {
            customer_id: args.workspace.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("workspace {:?}: {}", args.workspace, s.message()))?
        .into_inner()
        .id
    };
    let (from, to) = match &args.timespan {
        None => (None, None),
        Some(span) => {
            let clock = evp::events_client::EventsClient::new(plain_ingest.clone())
                .get_clock(evp::GetClockRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("the ingest front end's clock: {}", s.message()))?
                .into_inner();
            let now = SimTime(clock.sim_now_unix_ms);
            let (from, to) = cmksim_rest::monitor::query::parse_timespan(span, now)
                .map_err(|e| anyhow::anyhow!("--timespan {span:?}: {e}"))?;
            (Some(PbTime { unix_ms: from }), Some(PbTime { unix_ms: to }))
        }
    };
    let answer = inp::query_client::QueryClient::new(ingest)
        .max_decoding_message_size(cmksim_rest::monitor::query::ANSWER_BYTES_MAX)
        .kql(inp::KqlRequest {
            workspace_id,
            query: args.query.clone(),
            from,
            to,
        })
        .await;
    let answer = match answer {
        Ok(answer) => answer.into_inner(),
        Err(status) if status.code() == tonic::Code::Unavailable => {
            if let Some(azure) = cmksim_keyvault::azure_error(&status) {
                eprintln!("cmksim: query failed ({}): {}", azure.code, azure.message);
                return Ok(ExitCode::from(1));
            }
            anyhow::bail!(
                "the ingest front end at {} cannot be reached: {}",
                args.ingest,
                status.message()
            );
        }
        Err(status) => {
            let code = cmksim_keyvault::azure_error(&status)
                .map(|a| a.code)
                .unwrap_or_else(|| format!("{:?}", status.code()));
            eprintln!("cmksim: query failed ({code}): {}", status.message());
            return Ok(ExitCode::from(1));
        }
    };
    for table in &answer.tables {
        let rows: Vec<Vec<serde_json::Value>> =
            serde_json::from_str(&table.rows_json).context("the answer's rows")?;
        if args.json {
            let columns: Vec<serde_json::Value> = table
                .columns
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "type": c.r#type}))
                .collect();
            let body = serde_json::json!({"tables": [{"name": table.name, "columns": columns, "rows": rows}]});
            outln!("{}", serde_json::to_string_pretty(&body)?);
        } else {
            out!("{}", render(table, &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The table as aligned text: a header, a rule, the rows, and a row count.
fn render(table: &inp::KqlTable, rows: &[Vec<serde_json::Value>]) -> String {
    let text = |v: &serde_json::Value| -> String {
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        cmksim_sim::text::clip(&s, CELL_CHARS_MAX)
    };
    let headers: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(text).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |values: &[String]| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&headers));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out.push_str(&format!("({} rows)\n", cells.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_renders_as_an_aligned_table() {
        let table = inp::KqlTable {
            name: "PrimaryResult".into(),
            columns: vec![
                inp::KqlColumn {
                    name: "Computer".into(),
                    r#type: "string".into(),
                },
                inp::KqlColumn {
                    name: "count_".into(),
                    r#type: "long".into(),
                },
            ],
            rows_json: String::new(),
        };
        let rows = vec![
            vec![serde_json::json!("web-01"), serde_json::json!(12)],
            vec![serde_json::json!(null), serde_json::json!(3)],
        ];
        assert_eq!(
            render(&table, &rows),
            "Computer  count_\n--------  ------\nweb-01    12\n          3\n(2 rows)\n"
        );
    }
}
