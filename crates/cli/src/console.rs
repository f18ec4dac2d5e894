//! `gridlease console`: the web console over a node (`--node URL`), served on `--listen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gridlease_console::index::Cadence;
use gridlease_console::reference::ReferencePrices;

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// RPC URL of the node to read.
    #[arg(long, env = "GRIDLEASE_NODE", default_value = "http://127.0.0.1:26657")]
    node: String,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A TOML file of reference on-demand prices per GPU-hour (default: the compiled-in
    /// illustrative figures; `crates/console/reference-prices.toml` shows the format).
    #[arg(long, value_name = "FILE")]
    reference_prices: Option<PathBuf>,
    /// Seconds between two polls of every provider's public status.
    #[arg(long, default_value_t = 30)]
    provider_poll_seconds: u64,
}

/// The console's settings for a node and an address.
pub fn settings(
    node: &str,
    listen: SocketAddr,
    reference: Option<&std::path::Path>,
    provider_poll: Duration,
) -> anyhow::Result<gridlease_console::Settings> {
    let reference = match reference {
        Some(path) => ReferencePrices::load(path)?,
        None => ReferencePrices::defaults(),
    };
    Ok(gridlease_console::Settings {
        node: node.to_string(),
        listen,
        reference,
        cadence: Cadence { providers: provider_poll, ..Cadence::default() },
        header_timeout: gridlease_console::HEADER_TIMEOUT,
    })
}

pub fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    crate::provider::init_tracing();
    let settings = settings(
        &args.node,
        args.listen,
        args.reference_prices.as_deref(),
        Duration::from_secs(args.provider_poll_seconds.max(1)),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let running = gridlease_console::start(settings)
            .await
            .with_context(|| format!("cannot serve on {}", args.listen))?;
        eprintln!("console: http://{} (reading {})", running.addr, args.node);
        tokio::select! {
            r = running.task => r.context("the console stopped")?,
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
