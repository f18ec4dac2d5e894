//! The `gridlease` command-line tool: one binary that fronts gridlease (SDL commands, and the
//! node through the `gridlease-node` binary, and the provider daemon).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod node;
mod provider;
mod sdl;

/// gridlease: a decentralized GPU cloud.
#[derive(Debug, Parser)]
#[command(name = "gridlease", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
