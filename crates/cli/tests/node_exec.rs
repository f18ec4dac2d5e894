//! `gridlease node run` is the node itself: it replaces itself with `gridlease-node` (exec),
//! so SIGKILL of the process a supervisor started stops the node, frees its port and its
//! store, and the next start works (issue 12: one process per node).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{GRIDLEASE, free_port};

/// The program name the kernel gives process `pid`.
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.extend(e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
        }
    }
    out
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn start(home: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(GRIDLEASE)
        .args(["node", "run", "--home"])
        .arg(home)
        .args(["--rpc-addr", &format!("127.0.0.1:{port}"), "--p2p-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gridlease node run")
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn node_run_is_the_node_and_sigkill_stops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let out = Command::new(GRIDLEASE)
        .args(["node", "init", "--home"])
        .arg(&home)
        .output()
        .expect("gridlease node init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let port = free_port();
    let mut node = start(&home, port);
    wait_until("the RPC answering", Duration::from_secs(60), || answers(port));
    let pid = node.id();
    assert_eq!(comm(pid), "gridlease-node", "the process started is not the node itself");
    assert!(children(pid).is_empty(), "the node runs as a child: {:?}", children(pid));

    // SIGKILL, as a supervisor gives up on it: the node is gone with its port and its store.
    node.kill().expect("SIGKILL");
    node.wait().expect("reap");
    wait_until("the port freed", Duration::from_secs(10), || !answers(port));

    // The next start opens the same store and serves again.
    let mut again = start(&home, port);
    wait_until("the restarted RPC answering", Duration::from_secs(60), || answers(port));
    again.kill().expect("SIGKILL");
    again.wait().expect("reap");
}
