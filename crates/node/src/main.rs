//! `gridlease-node`: initialize a node's home and run it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gridlease_node::{Home, RunOptions};
use gridlease_types::{Address, Coin};

#[derive(Parser)]
#[command(name = "gridlease-node", about = "Run a gridlease validator node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a generated genesis holds besides its validators.
#[derive(clap::Args)]
struct GenesisArgs {
    #[arg(long, default_value = "gridlease-devnet")]
    chain_id: String,
    /// Fund an account at genesis: ADDRESS=COIN[,COIN...] (repeatable).
    #[arg(long = "fund", value_name = "ADDRESS=COINS")]
    fund: Vec<String>,
    /// Blocks from an order's opening to its auction's close (genesis parameter).
    #[arg(long)]
    bid_window: Option<u64>,
}

impl GenesisArgs {
    fn funded(&self) -> anyhow::Result<Vec<(Address, Vec<Coin>)>> {
        self.fund.iter().map(|f| parse_fund(f)).collect()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a home directory: validator key, genesis and config.
    Init {
        #[arg(long)]
        home: PathBuf,
        #[command(flatten)]
        genesis: GenesisArgs,
    },
    /// Write a local network of N validators: `DIR/node0` ... `DIR/node{N-1}`, one shared
    /// genesis, free loopback ports, every node a peer of the others. Run each with
    /// `gridlease node run --home DIR/nodeI`.
    Testnet {
        #[arg(long)]
        home: PathBuf,
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[command(flatten)]
        genesis: GenesisArgs,
        /// Target block time of every node, milliseconds.
        #[arg(long, default_value_t = 1000)]
        block_time_ms: u64,
        /// `text` or `json` (`[{"home": ..., "rpc": "127.0.0.1:PORT", ...}, ...]`).
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Run the node.
    Run {
        #[arg(long)]
        home: PathBuf,
        /// RPC listen address (overrides config.json).
        #[arg(long)]
        rpc_addr: Option<SocketAddr>,
        /// P2P listen address (overrides config.json).
        #[arg(long)]
        p2p_addr: Option<SocketAddr>,
        /// Target block time in milliseconds (overrides config.json).
        #[arg(long)]
        block_time_ms: Option<u64>,
    },
}

fn parse_fund(s: &str) -> anyhow::Result<(Address, Vec<Coin>)> {
    let (addr, coins) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--fund `{s}` must look like ADDRESS=1000ugrid,500uusdc"))?;
    let address: Address = addr.parse()?;
    let coins =
        coins.split(',').map(|c| c.trim().parse::<Coin>()).collect::<Result<Vec<_>, _>>()?;
    Ok((address, coins))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt().with_target(true).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Init { home, genesis } => (|| {
            let funded = genesis.funded()?;
            let chain_id = &genesis.chain_id;
            let address = Home::new(&home).init(
                chain_id,
                gridlease_node::home::os_entropy()?,
                &funded,
                genesis.bid_window,
            )?;
            let key = gridlease_types::Keypair::from_secret(Home::new(&home).load_key()?);
            println!(
                "initialized {} for chain {chain_id}; validator {address}, consensus key {}",
                home.display(),
                gridlease_node::hex(&key.public_key().0)
            );
            Ok(())
        })(),
        Command::Testnet { home, validators, genesis, block_time_ms, output } => (|| {
            if !matches!(output.as_str(), "text" | "json") {
                anyhow::bail!("--output must be `text` or `json`, not `{output}`");
            }
            if !(1..=100).contains(&validators) {
                anyhow::bail!("--validators must be between 1 and 100, not {validators}");
            }
            let chain_id = &genesis.chain_id;
            let nodes = gridlease_node::home::testnet(
                &home,
                validators,
                chain_id,
                gridlease_node::home::os_entropy,
                &genesis.funded()?,
                genesis.bid_window,
                block_time_ms,
            )?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                println!("wrote {validators} validator homes for chain {chain_id}:");
                for n in &nodes {
                    println!("  {}  rpc {}  p2p {}", n.home.display(), n.rpc, n.p2p);
                }
                println!("start each with: gridlease node run --home <home>");
            }
            Ok(())
        })(),
        Command::Run { home, rpc_addr, p2p_addr, block_time_ms } => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = RunOptions {
                rpc_addr,
                p2p_addr,
                block_time: block_time_ms.map(std::time::Duration::from_millis),
            };
            rt.block_on(gridlease_node::run(&Home::new(home), opts))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
