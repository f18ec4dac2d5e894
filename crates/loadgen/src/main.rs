//! `gridlease-loadgen`: submits pre-signed bank sends to a node over RPC at an offered rate and
//! reports committed tx/s and submit-to-commit latency (issue 4's benchmark).
//!
//! `accounts` prints the seed-derived benchmark accounts (to fund them at genesis), `run`
//! drives one measurement, `table` compares the summaries of several runs, `market` seeds a
//! node with many providers and active leases (`bench/seed-market.sh`).
#![forbid(unsafe_code)]

mod accounts;
mod cpu;
mod flood;
mod follow;
mod market;
mod presign;
mod report;
mod submit;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use gridlease_client::{Client, ClientError, TxStatus};
use gridlease_types::{Coin, Denom, Keypair};
use tokio::time::Instant;

use crate::presign::SendPlan;
use crate::report::{RunSettings, Stragglers};
use crate::submit::Schedule;

#[derive(Parser)]
#[command(name = "gridlease-loadgen", about = "Load generator for a gridlease node's RPC")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the seed-derived accounts, one a line: `ADDRESS`, or `ADDRESS=COINS` with --coins.
    Accounts {
        #[command(flatten)]
        keys: KeySource,
        /// Append `=COINS` to each line, the form `gridlease-node init --fund` takes.
        #[arg(long)]
        coins: Option<String>,
    },
    /// Run one measurement against a node.
    Run(RunArgs),
    /// Print a Markdown table comparing the summaries written by `run --summary`.
    Table { summaries: Vec<PathBuf> },
    /// Flood a node with transactions that must never take its mempool: unfunded strangers
    /// declaring huge fees, and funded accounts (the seed-derived keys) sending only
    /// sequences behind a gap. Prints the node's answers by HTTP status.
    Flood(FloodArgs),
    /// Seed a running node with providers, deployments, bids and active leases through real
    /// signed transactions (providers are the seed's accounts 0..P, tenants P..P+T; fund
    /// them at genesis with `accounts --count P+T`). Prints what the chain holds at the end.
    Market(market::MarketArgs),
}

#[derive(Args)]
struct FloodArgs {
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    rpc: String,
    /// The funded attacker accounts (fund them at genesis with `accounts`).
    #[command(flatten)]
    keys: KeySource,
    /// Declared fee of every flood transaction, in the native denomination.
    #[arg(long, default_value_t = 1_000_000_000)]
    fee: u128,
    #[arg(long, default_value = "ugrid")]
    denom: String,
    /// Distinct transactions signed up front (posted round and round).
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Args, Clone)]
struct KeySource {
    /// Derive the accounts from this seed (see `accounts`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many accounts to derive.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Read hex secrets (one a line) instead of deriving them.
    #[arg(long)]
    secrets_file: Option<PathBuf>,
}

impl KeySource {
    fn keys(&self) -> anyhow::Result<Vec<Keypair>> {
        match &self.secrets_file {
            Some(path) => accounts::read_secrets_file(path),
            None if self.count == 0 => bail!("--count must be at least 1"),
            None => Ok(accounts::derive_keys(self.seed, self.count)),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// The node's RPC base URL (the one whose blocks are followed).
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    rpc: String,
    /// More nodes of the same chain to submit to (repeatable): each account's transactions
    /// all go to one node, accounts spread evenly over `--rpc` and these. Without mempool
    /// gossip a node only commits what it proposes, so a many-validator network needs this.
    #[arg(long = "also-rpc", value_name = "URL")]
    also_rpc: Vec<String>,
    #[command(flatten)]
    keys: KeySource,
    /// Offered rate in tx/s; 0 submits as fast as --concurrency allows.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Stop releasing transactions after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Stop after this many transactions (default: rate x duration, or 15,000/s x duration at
    /// the maximum rate). All are signed before the clock starts.
    #[arg(long)]
    txs: Option<usize>,
    /// Most requests in flight.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Fee per transaction, in the native denomination.
    #[arg(long, default_value_t = 1_000)]
    fee: u128,
    /// Amount of each send.
    #[arg(long, default_value_t = 1)]
    amount: u128,
    #[arg(long, default_value = "ugrid")]
    denom: String,
    /// After the last submission, wait this long for the admitted transactions to commit.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Look up at most this many admitted-but-unseen transactions by hash at the end.
    #[arg(long, default_value_t = 2_000)]
    resolve_limit: usize,
    /// Name of the run in reports.
    #[arg(long)]
    label: Option<String>,
    /// Write the summary as JSON here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The node's process id, to report the CPU it used during the timed phase.
    #[arg(long)]
    node_pid: Option<u32>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Accounts { keys, coins } => print_accounts(&keys, coins.as_deref()),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(run(args))),
        Command::Table { summaries } => print_table(&summaries),
        Command::Flood(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(run_flood(args))),
        Command::Market(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(market::run(args))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_accounts(keys: &KeySource, coins: Option<&str>) -> anyhow::Result<()> {
    for key in keys.keys()? {
        match coins {
            Some(c) => println!("{}={c}", key.address()),
            None => println!("{}", key.address()),
        }
    }
    Ok(())
}

fn print_table(paths: &[PathBuf]) -> anyhow::Result<()> {
    let runs = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read summary {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    print!("{}", report::table(&runs));
    Ok(())
}

/// Keep-alive HTTP/1 connections for posting transactions, `concurrency` at a time.
fn submit_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")
}

async fn run_flood(args: FloodArgs) -> anyhow::Result<()> {
    let attackers = args.keys.keys()?;
    let base = args.rpc.trim_end_matches('/').to_string();
    let status = Client::new(&base).status().await?;
    let denom = Denom::new(&args.denom).map_err(|e| anyhow::anyhow!("--denom: {e}"))?;
    let bodies =
        flood::flood_txs(&status.chain_id, &attackers, &Coin::new(args.fee, &denom), args.txs);
    let http = submit_client(args.concurrency)?;
    eprintln!("flooding {base} for {} s, {} in flight", args.duration, args.concurrency);
    let started = Instant::now();
    let (counts, sent) =
        flood::run(http, &base, bodies, Duration::from_secs_f64(args.duration), args.concurrency)
            .await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "flood: {sent} sent in {secs:.1} s ({:.0}/s); answers by status: {counts:?}",
        sent as f64 / secs
    );
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let keys = args.keys.keys()?;
    let base = args.rpc.trim_end_matches('/').to_string();
    let client = Client::new(&base);
    let status = wait_for_idle_node(&client).await?;
    let next_sequences = read_sequences(&client, &keys).await?;

    let rate = (args.rate > 0.0).then_some(args.rate);
    let count = args
        .txs
        .unwrap_or_else(|| (rate.unwrap_or(15_000.0) * args.duration).ceil().max(1.0) as usize);
    let denom = Denom::new(&args.denom).map_err(|e| anyhow::anyhow!("--denom: {e}"))?;
    let plan = SendPlan {
        chain_id: status.chain_id.clone(),
        fee: Coin::new(args.fee, &denom),
        amount: Coin::new(args.amount, &denom),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let signing = std::time::Instant::now();
    let txs = presign::sign_sends(&keys, &next_sequences, &plan, count, threads);
    eprintln!(
        "signed {} sends from {} accounts in {:.1} s",
        txs.len(),
        keys.len(),
        signing.elapsed().as_secs_f64()
    );
    let hashes = Arc::new(presign::index_by_hash(&txs));
    let txs = Arc::new(txs);

    let http = submit_client(args.concurrency)?;
    let stream_http = reqwest::Client::builder().http1_only().build()?;
    let follower = follow::start(stream_http, &base, hashes.clone()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let schedule = Schedule {
        rate,
        duration: (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration)),
        concurrency: args.concurrency,
    };
    let (records_tx, mut records_rx) = tokio::sync::mpsc::unbounded_channel();
    let cpu_before = cpu::CpuReading::now(args.node_pid);
    let timed = Instant::now();
    eprintln!(
        "submitting to {base}: {} tx/s for {} s, {} in flight at most",
        rate.map_or("max".into(), |r| r.to_string()),
        args.duration,
        args.concurrency
    );
    let targets: Vec<String> = std::iter::once(base.clone())
        .chain(args.also_rpc.iter().map(|u| u.trim_end_matches('/').to_string()))
        .collect();
    let released =
        submit::submit_all(http.clone(), &targets, keys.len(), txs.clone(), schedule, records_tx)
            .await;
    let mut records = Vec::with_capacity(released);
    while let Ok(r) = records_rx.try_recv() {
        records.push(r);
    }
    let admitted = records.iter().filter(|r| r.rejection.is_none()).count();
    eprintln!("released {released}, admitted {admitted}; waiting for commits");

    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    while follower.committed.load(Ordering::Relaxed) < admitted && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cores = cpu_before.cores_until(&cpu::CpuReading::now(args.node_pid), timed.elapsed());
    // Let the metrics sample of the last block land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stragglers =
        resolve_stragglers(&client, &records, &follower, &txs, args.resolve_limit).await;

    let settings = RunSettings {
        label: args
            .label
            .clone()
            .unwrap_or_else(|| rate.map_or("max".into(), |r| format!("{r} tx/s"))),
        target_rate: rate,
        duration_s: Some(args.duration),
        concurrency: args.concurrency,
        accounts: keys.len(),
        presigned: txs.len(),
        node_cpu_cores: cores.0,
        loadgen_cpu_cores: cores.1,
    };
    let summary = report::summarize(&settings, &records, &follower.observed(), &stragglers);
    println!("{}", report::render(&summary));
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Waits until the node answers and its mempool is empty (leftovers of an earlier run would
/// make the accounts' sequences move under us).
async fn wait_for_idle_node(client: &Client) -> anyhow::Result<gridlease_client::Status> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match client.status().await {
            Ok(s) if s.mempool_size == 0 && s.latest_height > 0 => return Ok(s),
            Ok(_) | Err(ClientError::Unreachable { .. }) if Instant::now() < deadline => {}
            Ok(s) => bail!("the node's mempool still holds {} transactions", s.mempool_size),
            Err(e) => return Err(e).context("cannot read the node's status"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each account's next sequence, as committed.
async fn read_sequences(client: &Client, keys: &[Keypair]) -> anyhow::Result<Vec<u64>> {
    let lookups = futures_util::stream::iter(keys.iter().map(|k| {
        let address = k.address();
        async move {
            match client.account(&address).await {
                Ok(a) => Ok(a.sequence),
                Err(ClientError::Refused { status: 404, .. }) => {
                    bail!("account {address} is not funded: fund it at genesis (see `accounts`)")
                }
                Err(e) => Err(e).with_context(|| format!("cannot read account {address}")),
            }
        }
    }))
    .buffered(32)
    .collect::<Vec<_>>()
    .await;
    lookups.into_iter().collect()
}

/// Looks up admitted transactions that the event stream did not report.
async fn resolve_stragglers(
    client: &Client,
    records: &[submit::SubmitRecord],
    follower: &follow::Follower,
    txs: &[presign::SignedTx],
    limit: usize,
) -> Stragglers {
    let unseen: Vec<usize> = {
        let observed = follower.observed();
        records
            .iter()
            .filter(|r| r.rejection.is_none() && observed.committed_at[r.index].is_none())
            .map(|r| r.index)
            .collect()
    };
    let mut out =
        Stragglers { unresolved: unseen.len().saturating_sub(limit), ..Default::default() };
    let answers = futures_util::stream::iter(
        unseen
            .into_iter()
            .take(limit)
            .map(|i| async move { (i, client.tx(&txs[i].hash.to_string()).await) }),
    )
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut observed = follower.observed();
    for (i, answer) in answers {
        match answer {
            Ok(Some(v)) if v.status == TxStatus::Committed => {
                let code = v.receipt.map_or("unknown", |r| r.code.name()).to_string();
                *out.committed_codes.entry(code).or_default() += 1;
                observed.committed_at[i] = v.height;
            }
            Ok(Some(v)) if v.status == TxStatus::Pending => out.pending += 1,
            Ok(None) => out.not_found += 1,
            _ => out.unresolved += 1,
        }
    }
    out
}
