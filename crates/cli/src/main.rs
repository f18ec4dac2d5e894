//! The `gridlease` command-line tool: one binary that fronts gridlease (for now, SDL commands).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sdl(cmd) => sdl::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
