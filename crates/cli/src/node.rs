//! `gridlease node ...`: runs the `gridlease-node` binary, which holds the chain.
//!
//! The CLI reaches the chain only over RPC and never links the node (the architecture's
//! dependency rules), so this subcommand hands its arguments to the node binary: the one next
//! to this executable, else the one on `PATH`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;

/// The node binary: beside the current executable if present, else found on `PATH`.
fn node_binary() -> PathBuf {
    let name = format!("gridlease-node{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `gridlease-node ARGS...` and returns its exit code.
pub fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let bin = node_binary();
    let status = Command::new(&bin).args(&args).status().with_context(|| {
        format!(
            "cannot run {}: build it with `cargo build -p gridlease-node` (it must sit next to `gridlease` or on PATH)",
            bin.display()
        )
    })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}
