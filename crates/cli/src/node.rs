//! `gridlease node ...`: runs the `gridlease-node` binary, which holds the chain.
//!
//! The CLI reaches the chain only over RPC and never links the node (the architecture's
//! dependency rules), so this subcommand hands its arguments to the node binary: the one next
//! to this executable, else the one on `PATH`. It replaces itself with that binary (exec), so
//! there is one process per node: a supervisor's signal, SIGKILL included, reaches the node
//! itself and never leaves it running orphaned on its port and its store.

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

/// Replaces this process with `gridlease-node ARGS...`; returns only when that fails.
pub fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let bin = node_binary();
    let err = Command::new(&bin).args(&args).exec();
    Err(err).with_context(|| {
        format!(
            "cannot run {}: build it with `cargo build -p gridlease-node` (it must sit next to `gridlease` or on PATH)",
            bin.display()
        )
    })
}
