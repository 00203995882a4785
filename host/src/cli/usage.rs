//! `tool usage`: what each caller used of each tool, as a server's
//! metering reports it (over every gateway of a mesh that shares it).

use super::Failure;
use anyhow::{Context, anyhow};
use clap::Args;
use std::time::Duration;
use toolmesh_host::sandbox::humanize_bytes;
use toolmesh_host::usage::UsageRow;

/// Arguments of `tool usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// The server to ask (`tool serve` or `tool gateway`).
    #[arg(long, env = "TOOLMESH_URL", default_value = "http://127.0.0.1:7600")]
    url: String,
    /// An API key or access token for it (`TOOLMESH_TOKEN`). A token
    /// limited to some tools sees only its own use.
    #[arg(long, env = "TOOLMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Only this caller's use.
    #[arg(long)]
    caller: Option<String>,
    /// Print JSON (the server's `/usage` document).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: UsageArgs) -> Result<(), Failure> {
    let url = format!("{}/usage", args.url.trim_end_matches('/'));
    let client = toolmesh_registry::client::http_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| anyhow!("cannot make an HTTP client: {e}"))?;
    let mut request = client.get(&url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(Failure::failed(anyhow!("{url} answered {status}: {message}")));
    }
    #[derive(serde::Deserialize)]
    struct Report {
        usage: Vec<UsageRow>,
    }
    let mut report: Report = serde_json::from_str(&body).with_context(|| format!("{url} sent no usage report"))?;
    if let Some(caller) = &args.caller {
        report.usage.retain(|row| &row.caller == caller);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"usage": report.usage}))?);
        return Ok(());
    }
    if report.usage.is_empty() {
        outln!("no calls recorded");
        return Ok(());
    }
    let seconds = |us: u64| format!("{:.3} s", us as f64 / 1e6);
    let rows: Vec<[String; 8]> = report
        .usage
        .iter()
        .map(|r| {
            let u = &r.usage;
            [
                r.caller.clone(),
                r.tool.clone(),
                u.calls.to_string(),
                u.errors.to_string(),
                seconds(u.cpu_us),
                seconds(u.gpu_us),
                humanize_bytes(u.bytes_in),
                humanize_bytes(u.bytes_out),
            ]
        })
        .collect();
    let header = ["CALLER", "TOOL", "CALLS", "ERRORS", "CPU", "GPU", "IN", "OUT"].map(str::to_owned);
    let widths: Vec<usize> =
        (0..8).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(
                |(i, cell)| {
                    if i < 2 { format!("{cell:<w$}", w = widths[i]) } else { format!("{cell:>w$}", w = widths[i]) }
                },
            )
            .collect();
        outln!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}
