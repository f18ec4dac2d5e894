//! Helpers shared by the node's integration tests: a home directory made by `gridlease-node
//! init` and a real `gridlease-node run` process listening on ports the kernel picked.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gridlease_client::Client;
use gridlease_types::Address;

/// How long a node may take to open its store and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `gridlease-node run`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of its RPC.
    pub rpc: String,
}

impl NodeProcess {
    /// SIGKILLs the process (no chance to clean up) and reaps it.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gridlease-node init` in `home`, funding each address with ugrid and uusdc.
pub fn init(home: &Path, chain_id: &str, fund: &[Address]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridlease-node"));
    cmd.args(["init", "--home"]).arg(home).args(["--chain-id", chain_id]);
    for a in fund {
        cmd.arg("--fund").arg(format!("{a}=1000000000000ugrid,1000000000000uusdc"));
    }
    let out = cmd.output().expect("run gridlease-node init");
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Spawns `gridlease-node run` on `home` with kernel-picked RPC and P2P ports, appending its
/// log to `home/node.log`. Returns once the RPC socket is bound (the node prints its address
/// after opening the store), or panics with the log's tail if the node exits or never binds.
pub fn start(home: &Path, block_time_ms: u64) -> NodeProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .expect("open node.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
        .args(["run", "--home"])
        .arg(home)
        .args(["--rpc-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"])
        .args(["--block-time-ms", &block_time_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn gridlease-node run");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the address line, then keeps draining stdout so the node never blocks on it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("rpc listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(rpc) => return NodeProcess { child, rpc },
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("node exited with {status} before listening:\n{}", log_tail(home));
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("node did not start listening in time:\n{}", log_tail(home));
            }
        }
    }
}

/// Spawns a node without waiting for anything (to kill it while it starts up).
pub fn spawn_unwatched(home: &Path, block_time_ms: u64) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .expect("open node.log");
    Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
        .args(["run", "--home"])
        .arg(home)
        .args(["--rpc-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"])
        .args(["--block-time-ms", &block_time_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gridlease-node run")
}

/// The last 40 lines of `home/node.log`.
pub fn log_tail(home: &Path) -> String {
    let text = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Waits until the node reports `latest_height >= at_least`, returning the height.
pub async fn wait_height(client: &Client, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = client.status().await
            && s.latest_height >= at_least
        {
            return s.latest_height;
        }
        assert!(Instant::now() < deadline, "node did not reach height {at_least} in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
