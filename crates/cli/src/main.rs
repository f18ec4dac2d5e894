//! The `gridlease` command-line tool: one binary that fronts gridlease: the tenant's
//! commands (deploy, status, logs, close, ...), keys, SDL tools, the provider daemon, the node
//! (through the `gridlease-node` binary) and `devnet`, the whole market in one command.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod console;
mod context;
mod devnet;
mod gateway;
mod keys;
mod model;
mod node;
mod provider;
mod sdl;
mod shell;
mod tenant;
mod watch;

/// gridlease: a decentralized GPU cloud.
#[derive(Debug, Parser)]
#[command(name = "gridlease", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Tenant(tenant::TenantCommand),
    /// Manage keys: add, list, show, export, import, delete.
    Keys {
        #[command(flatten)]
        g: context::Global,
        #[command(subcommand)]
        cmd: keys::KeysCommand,
    },
    /// Start a whole local market: a validator, providers with GPUs, a funded tenant and a demo
    /// deployment.
    Devnet(devnet::DevnetArgs),
    /// Serve the web console over a node: the market, providers, deployments, leases and
    /// blocks, live (`--node URL --listen ADDR`).
    Console(console::ConsoleArgs),
    /// Serve one OpenAI-compatible endpoint over the leases of a model: `--route
    /// NAME=DSEQ[,DSEQ...]`.
    Gateway(gateway::GatewayArgs),
    /// Watch deployments' leases and report their health on chain: a lease down for
    /// `--down-after` checks stops paying; a lease the chain replaced after a failover gets its
    /// manifest again.
    Watch(watch::WatchArgs),
    /// Simulate the market for days at a scale real processes cannot reach: seeded providers
    /// that fail and come back, replicated deployments, monitors, failovers and escrow, all
    /// through the real ledger; prints availability, failover times, costs and earnings.
    #[command(disable_help_flag = true)]
    Sim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check SDL files and derive their group specs and manifests.
    #[command(subcommand)]
    Sdl(sdl::SdlCommand),
    /// Run a provider: init, register, run the daemon, status.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Run a validator node: `gridlease node init --home DIR`, `gridlease node run --home DIR
    /// [--rpc-addr HOST:PORT]` (see `gridlease node --help`).
    #[command(disable_help_flag = true)]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sdl(cmd) => sdl::run(cmd),
        Command::Node { args } => node::run(args),
        Command::Provider(cmd) => provider::run(cmd),
        Command::Tenant(cmd) => tenant::run(cmd),
        Command::Keys { g, cmd } => keys::run(&g, cmd),
        Command::Devnet(args) => devnet::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Console(args) => console::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Sim { args } => devnet::exec_sibling("gridlease-sim", &args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            context::exit_code(&e)
        }
    }
}
