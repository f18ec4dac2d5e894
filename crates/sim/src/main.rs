//! `gridlease-sim`, which `gridlease sim` runs: the seeded market simulation
//! ([`gridlease_sim::market`]) from the command line, with a progress bar on the terminal and
//! the report as text or JSON. A binary of its own because the CLI never links the ledger.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gridlease_sim::market::{self, MarketConfig, MarketReport};

/// Simulate the market for days at a scale real processes cannot reach: providers that fail
/// and come back, deployments with replicas on distinct providers, the tenants' monitors,
/// auctions, failovers and escrow, all through the real ledger. The same seed gives the same
/// report, to the byte.
#[derive(Debug, Parser)]
#[command(name = "gridlease sim")]
pub struct SimArgs {
    /// Seed of every random choice: one seed, one result, to the byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 1_000)]
    pub providers: usize,
    #[arg(long, default_value_t = 10_000)]
    pub deployments: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Replicas of each deployment, on distinct providers.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Share of the time each provider is up, on average.
    #[arg(long, default_value_t = 0.95)]
    pub uptime: f64,
    /// Each provider's own uptime is drawn uniformly within this much of `--uptime` (0: all
    /// alike).
    #[arg(long, default_value_t = 0.0)]
    pub uptime_spread: f64,
    /// Mean length of a provider's outage, in minutes.
    #[arg(long, default_value_t = 120.0)]
    pub mean_outage_minutes: f64,
    /// Simulated seconds per block.
    #[arg(long, default_value_t = 1)]
    pub block_seconds: u64,
    /// Blocks a lease may stay down before the chain fails it over (the devnet's by default).
    #[arg(long)]
    pub grace_blocks: Option<u64>,
    /// Blocks a failed-over provider may not bid on that group again (the devnet's by default).
    #[arg(long)]
    pub exclusion_blocks: Option<u64>,
    /// How the auctions pick winners: `price`, or `reliability` (price weighted by each
    /// bidder's uptime record on chain).
    #[arg(long, default_value = "price", value_parser = ["price", "reliability"])]
    pub auction: String,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

fn main() -> ExitCode {
    let args = SimArgs::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    BadInput(String),
    Failed(String),
}

fn run(a: SimArgs) -> Result<(), Failure> {
    let defaults = MarketConfig::default();
    let cfg = MarketConfig {
        seed: a.seed,
        providers: a.providers,
        deployments: a.deployments,
        days: a.days,
        replicas: a.replicas,
        provider_uptime: a.uptime,
        uptime_spread: a.uptime_spread,
        mean_outage_minutes: a.mean_outage_minutes,
        block_seconds: a.block_seconds,
        grace_blocks: a.grace_blocks.unwrap_or(defaults.grace_blocks),
        exclusion_blocks: a.exclusion_blocks.unwrap_or(defaults.exclusion_blocks),
        auction: if a.auction == "reliability" {
            gridlease_types::BidPolicy::Reliability
        } else {
            gridlease_types::BidPolicy::Price
        },
        ..defaults
    };
    cfg.validate().map_err(Failure::BadInput)?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(cfg.total_blocks());
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} simulating [{elapsed_precise}] {wide_bar} {pos}/{len} blocks, {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let block_seconds = cfg.block_seconds;
    let report = market::run(&cfg, &mut |done, _| {
        bar.set_position(done);
        bar.set_message(format!("day {}", done * block_seconds / 86_400 + 1));
    })
    .map_err(|e| Failure::Failed(format!("the simulation stopped: {e}")))?;
    bar.finish_and_clear();
    if a.output == "json" {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Failed(format!("cannot write the report: {e}")))?;
        println!("{json}");
    } else {
        print_text(&report);
        eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.4}%", x * 100.0)
}

fn print_text(r: &MarketReport) {
    let l = &r.ledger;
    println!(
        "{} providers ({} up on average, {} outages), {} deployments of {} replicas ({} auctions), {} days of {} s blocks, seed {}",
        r.providers,
        pct(r.provider_uptime),
        r.provider_outages,
        r.deployments,
        r.replicas,
        r.auction.name(),
        r.days,
        r.block_seconds,
        r.seed
    );
    println!(
        "availability as the tenants saw it: {} (worst deployment {}; {} deployments ever down)",
        pct(r.availability),
        pct(r.availability_min),
        r.deployments_ever_down
    );
    println!(
        "failovers: {} (from the replica's last serving moment to its replacement serving: p50 {} s, p99 {} s, max {} s; {} unfinished at the end)",
        r.failovers, r.failover_p50_s, r.failover_p99_s, r.failover_max_s, r.failovers_unfinished
    );
    println!(
        "tenant cost: {} {} ({} kept for down blocks; {} of bid deposits moved to tenants as SLA penalties)",
        r.tenant_cost,
        r.denom,
        r.tenant_cost_if_always_paid.saturating_sub(r.tenant_cost),
        r.sla_penalties
    );
    println!(
        "provider earnings: {} {} (each: min {}, p50 {}, max {})",
        r.provider_earnings,
        r.denom,
        r.provider_earnings_each.min,
        r.provider_earnings_each.p50,
        r.provider_earnings_each.max
    );
    println!(
        "escrow: {}",
        if r.escrow_exact {
            "exact (the tenants paid for the blocks their leases were up, to the unit)"
        } else {
            "MISMATCH between what the tenants paid and the leases' up blocks"
        }
    );
    println!(
        "ledger: {} blocks, {} transactions ({} refused), {} bids, {} leases; health reports: {} in {} transactions ({:.4} transactions, {:.1} bytes per lease-hour)",
        l.blocks,
        l.txs,
        l.refused_txs,
        l.bids,
        l.leases_created,
        l.health_reports,
        l.health_report_txs,
        l.health_txs_per_lease_hour,
        l.health_bytes_per_lease_hour
    );
    if let Some(first) = &l.first_refusal {
        println!("first refusal: {first}");
    }
}
