//! A real network: four validator processes from `gridlease-node testnet` on loopback.
//! Transactions commit; one validator SIGKILLed → blocks keep coming; restarted → it catches
//! up to the same state roots; two SIGKILLed → the chain halts without divergence and resumes
//! when one comes back; a full node joining past height 100 syncs from genesis and matches
//! every root; an account that bonds behind that node's key joins the active set (its
//! signature shows up in commit certificates) and leaves it when it unbonds. Every transaction
//! reported committed is, at the end, committed at the same height with the same receipt code
//! on every node, and every node has the same state root at every height.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gridlease_client::Client;
use gridlease_node::home::{Home, NodeConfig, free_ports};
use gridlease_sim::{CHAIN_ID, sign, ugrid};
use gridlease_types::params::POWER_UNIT;
use gridlease_types::{Address, Coin, Keypair, Msg};

const BLOCK_TIME_MS: u64 = 200;

/// The tests here run several node processes each; one at a time, so that on a small machine
/// their timing is not set by each other's load.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const FEE: u128 = 1_000;

struct Node {
    home: PathBuf,
    rpc: String,
    child: Option<Child>,
}

impl Node {
    fn client(&self) -> Client {
        Client::new(&self.rpc)
    }

    /// Starts `gridlease-node run` on the home as configured (its own ports and peers).
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.home.display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))
            .expect("open node.log");
        let child = Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
            .args(["run", "--home"])
            .arg(&self.home)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gridlease-node run");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn height(node: &Node) -> Option<u64> {
    node.client().status().await.ok().map(|s| s.latest_height)
}

/// Waits until `node` reports at least `at_least`, or panics after `secs` with its log.
async fn wait_height(node: &Node, at_least: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(h) = height(node).await
            && h >= at_least
        {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reach height {at_least} in {secs} s:\n{}",
            node.home.display(),
            common::log_tail(&node.home)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn root(node: &Node, h: u64) -> String {
    let b = node.client().block(h).await.expect("block").expect("block exists");
    b.state_root
}

/// Every node in `nodes` has the same root at every height from 1 to `up_to`.
async fn same_roots(nodes: &[&Node], up_to: u64) {
    for h in 1..=up_to {
        let want = root(nodes[0], h).await;
        for n in &nodes[1..] {
            assert_eq!(root(n, h).await, want, "{} diverges at height {h}", n.home.display());
        }
    }
}

/// A committed transaction: hash, height, receipt code.
type Committed = (String, u64, String);

struct Sender {
    key: Keypair,
    sequence: u64,
    committed: Vec<Committed>,
}

impl Sender {
    /// Sends one transfer through `node` and waits for its commit.
    async fn send(&mut self, node: &Node) {
        let to = Address([7; 20]);
        let amount = Coin::new(1, &ugrid());
        self.submit(node, vec![Msg::Send { to, amount }]).await;
    }

    async fn submit(&mut self, node: &Node, msgs: Vec<Msg>) -> Committed {
        let (c, log) = self.try_submit(node, msgs).await;
        assert_eq!(c.2, "ok", "{log}");
        c
    }

    /// Sends `msgs` and waits for the commit, whatever its receipt code; also the receipt's log.
    async fn try_submit(&mut self, node: &Node, msgs: Vec<Msg>) -> (Committed, String) {
        let tx = sign(&self.key, self.sequence, FEE, msgs);
        let r = node.client().submit(&tx, true).await.expect("submit and wait");
        let receipt = r.receipt.expect("a committed transaction has a receipt");
        self.sequence += 1;
        let c = (r.hash, r.height.expect("height"), receipt.code.to_string());
        self.committed.push(c.clone());
        (c, receipt.log)
    }
}

/// A home for a node outside the genesis validators: the testnet's genesis, a new key, every
/// validator as a peer.
fn full_node_home(dir: &Path, from: &Path, key: &Keypair, peers: &[std::net::SocketAddr]) -> Node {
    let genesis = Home::new(from).load_genesis().expect("genesis");
    let ports = free_ports(2).expect("ports");
    let config = NodeConfig {
        moniker: "late".into(),
        rpc_addr: ([127, 0, 0, 1], ports[0]).into(),
        p2p_addr: ([127, 0, 0, 1], ports[1]).into(),
        block_time_ms: BLOCK_TIME_MS,
        persistent_peers: peers.to_vec(),
        ..NodeConfig::default()
    };
    Home::new(dir).write(&genesis, key, &config).expect("write home");
    Node { home: dir.into(), rpc: format!("http://{}", config.rpc_addr), child: None }
}

/// Each node's height and latest commits, and the tail of the copy's log: what a failure of
/// the double-sign test needs to be understood from CI's output alone.
async fn network_report(nodes: &[Node], twin: &Node) -> String {
    let mut out = String::new();
    for n in nodes.iter().chain([twin]) {
        let text = std::fs::read_to_string(n.home.join("node.log")).unwrap_or_default();
        let commits: Vec<&str> = text.lines().filter(|l| l.contains("committed block")).collect();
        let votes = text.lines().filter(|l| l.contains("double vote")).count();
        out.push_str(&format!(
            "== {}: height {:?}, {} double-vote lines, last commits:\n{}\n",
            n.home.display(),
            height(n).await,
            votes,
            commits[commits.len().saturating_sub(3)..].join("\n")
        ));
    }
    out.push_str(&format!("== the copy's log:\n{}", common::log_tail(&twin.home)));
    out
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_survive_faults_and_change_their_set() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant = Keypair::from_secret([0x51; 32]);
    let operator = Keypair::from_secret([0x52; 32]);
    let out = Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
        .args(["testnet", "--validators", "4", "--output", "json", "--home"])
        .arg(dir.path())
        .args(["--chain-id", CHAIN_ID, "--block-time-ms", &BLOCK_TIME_MS.to_string()])
        .args(["--fund", &format!("{}=1000000000000ugrid", tenant.address())])
        .args(["--fund", &format!("{}=1000000000000ugrid", operator.address())])
        .output()
        .expect("run gridlease-node testnet");
    assert!(out.status.success(), "testnet: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 4);
    let mut nodes: Vec<Node> = listed
        .iter()
        .map(|n| Node {
            home: n["home"].as_str().expect("home").into(),
            rpc: format!("http://{}", n["rpc"].as_str().expect("rpc host:port")),
            child: None,
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.home, dir.path().join(format!("node{i}")));
    }
    for n in &mut nodes {
        n.start();
    }
    for n in &nodes {
        wait_height(n, 3, 60).await;
    }
    let mut tenant = Sender { key: tenant, sequence: 0, committed: Vec::new() };
    for i in 0..8 {
        tenant.send(&nodes[i % 4]).await;
    }

    // One of four down: blocks keep coming, transactions keep committing.
    nodes[3].kill();
    let h = height(&nodes[0]).await.expect("status");
    wait_height(&nodes[0], h + 5, 60).await;
    for i in 0..6 {
        tenant.send(&nodes[i % 3]).await;
    }
    // Back up: it catches up by sync and agrees on every root.
    nodes[3].start();
    let h = height(&nodes[0]).await.expect("status");
    wait_height(&nodes[3], h, 90).await;
    same_roots(&[&nodes[0], &nodes[1], &nodes[2], &nodes[3]], h).await;

    // Two of four down: no quorum, so no block, and nothing diverges.
    nodes[2].kill();
    nodes[3].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let halted = height(&nodes[0]).await.expect("status");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let h0 = height(&nodes[0]).await.expect("status");
    let h1 = height(&nodes[1]).await.expect("status");
    assert!(h0 <= halted + 1 && h1 <= halted + 1, "the chain went on without a quorum");
    same_roots(&[&nodes[0], &nodes[1]], h0.min(h1)).await;
    // One comes back: the chain resumes.
    nodes[2].start();
    wait_height(&nodes[0], h0 + 3, 120).await;
    nodes[3].start();
    for i in 0..4 {
        tenant.send(&nodes[i % 4]).await;
    }

    // A full node joins past height 100 and follows the chain from genesis.
    wait_height(&nodes[0], 101, 120).await;
    let peers: Vec<std::net::SocketAddr> =
        nodes.iter().map(|n| Home::new(&n.home).load_config().expect("config").p2p_addr).collect();
    let late_key = Keypair::from_secret([0x53; 32]);
    let mut late = full_node_home(&dir.path().join("late"), &nodes[0].home, &late_key, &peers);
    late.start();
    let h = height(&nodes[0]).await.expect("status");
    wait_height(&late, h, 120).await;
    same_roots(&[&nodes[0], &late], h).await;

    // An account bonds behind the late node's key: it joins the active set on every node and
    // signs blocks.
    let mut operator = Sender { key: operator, sequence: 0, committed: Vec::new() };
    let bond = Msg::Bond {
        consensus_key: late_key.public_key(),
        moniker: "late".into(),
        amount: Coin::new(1_000 * POWER_UNIT, &ugrid()),
    };
    let (_, bonded_at, _) = operator.submit(&nodes[0], vec![bond]).await;
    let late_address = late_key.public_key().address();
    for n in nodes.iter().chain([&late]) {
        wait_for("the bonded validator in the active set", 60, async || {
            let v = n.client().validators().await.expect("validators");
            v.active.iter().any(|m| m.consensus_address == late_address)
        })
        .await;
    }
    // A certificate holds the precommits that arrived by the time the height finalized, so a
    // slow new validator may miss some; it must make one within a minute.
    let mut next = bonded_at + 3;
    wait_for("a certificate signed by the new validator", 60, async || {
        let tip = height(&late).await.unwrap_or(0);
        while next <= tip {
            let b = late.client().block(next).await.expect("block").expect("exists");
            next += 1;
            if b.signers.contains(&late_address) {
                return true;
            }
        }
        false
    })
    .await;

    // It unbonds: it leaves the set and the chain goes on with the other four.
    let unbond = Msg::Unbond { amount: Coin::new(1_000 * POWER_UNIT, &ugrid()) };
    operator.submit(&nodes[1], vec![unbond]).await;
    for n in nodes.iter().chain([&late]) {
        wait_for("the unbonded validator out of the active set", 60, async || {
            let v = n.client().validators().await.expect("validators");
            v.active.len() == 4 && v.active.iter().all(|m| m.consensus_address != late_address)
        })
        .await;
    }
    late.kill();
    tenant.send(&nodes[0]).await;

    // Nothing committed was lost, and every node agrees on every height.
    let tip = height(&nodes[0]).await.expect("status");
    for n in &nodes {
        wait_height(n, tip, 90).await;
    }
    let all: Vec<&Node> = nodes.iter().collect();
    same_roots(&all, tip).await;
    for (hash, at, code) in tenant.committed.iter().chain(&operator.committed) {
        for n in &nodes {
            let tx = n.client().tx(hash).await.expect("tx").expect("committed tx is known");
            assert_eq!(tx.height, Some(*at), "{hash} moved on {}", n.home.display());
            let got = tx.receipt.expect("receipt").code.to_string();
            assert_eq!(&got, code, "{hash} changed its receipt on {}", n.home.display());
        }
    }
}

/// Writes a one-validator testnet of `chain_id` under `dir` and returns its node.
fn one_node_net(dir: &Path, chain_id: &str) -> Node {
    let out = Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
        .args(["testnet", "--validators", "1", "--output", "json", "--home"])
        .arg(dir)
        .args(["--chain-id", chain_id, "--block-time-ms", &BLOCK_TIME_MS.to_string()])
        .output()
        .expect("run gridlease-node testnet");
    assert!(out.status.success(), "testnet: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    Node {
        home: dir.join("node0"),
        rpc: format!("http://{}", listed[0]["rpc"].as_str().expect("rpc")),
        child: None,
    }
}

/// A node pointed at a peer of another chain does not take its blocks: the peer's P2P
/// protocol (which names the chain and its genesis) differs, so the handshake disconnects it,
/// and each chain goes on alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_chain_is_disconnected() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = one_node_net(&dir.path().join("a"), "chain-a");
    let mut b = one_node_net(&dir.path().join("b"), "chain-b");
    let a_p2p = Home::new(&a.home).load_config().expect("config").p2p_addr;
    let b_home = Home::new(&b.home);
    let mut config = b_home.load_config().expect("config");
    config.persistent_peers = vec![a_p2p];
    std::fs::write(b_home.config_path(), serde_json::to_string_pretty(&config).expect("json"))
        .expect("write config");
    a.start();
    b.start();
    wait_height(&a, 5, 60).await;
    wait_height(&b, 5, 60).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Both ends run identify; whichever learns the other's protocol first disconnects,
        // so the refusal is logged by the dialer (b, naming chain-a) or by the dialed (a,
        // naming chain-b), and a closed connection may leave the other side with no line.
        let refused = |node: &Node, other: &str| {
            let log = std::fs::read_to_string(node.home.join("node.log")).unwrap_or_default();
            log.contains("Incompatible protocol version")
                && log.contains(&format!("/gridlease/{other}-"))
        };
        if refused(&b, "chain-a") || refused(&a, "chain-b") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handshake did not refuse the other chain:\nb: {}\na: {}",
            network_lines(&b.home),
            network_lines(&a.home)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (sa, sb) = (a.client().status().await.expect("a"), b.client().status().await.expect("b"));
    assert_eq!((sa.chain_id.as_str(), sb.chain_id.as_str()), ("chain-a", "chain-b"));
    assert_ne!(root(&a, 3).await, root(&b, 3).await);
}

/// The lines of a node's log about its peers (consensus logs every step, which would bury them).
fn network_lines(home: &std::path::Path) -> String {
    let text = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            (l.contains("network") || l.contains("discovery") || l.contains("dial"))
                && !l.contains("NoPeersSubscribedToTopic")
        })
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A validator whose key runs on two machines signs two different votes for one height and
/// round when the two copies see the round differently (here one times out on every
/// proposal, and does not wait out the block time, so it starts every height no later than
/// the others). Consensus sees the double vote and the node lists it at `/evidence` (and reports it itself,
/// signed by its own key); a watcher submits it from its own account; the offender is slashed
/// out of the set while the chain goes on with the other three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_running_twice_is_slashed() {
    let _serial = ONE_NETWORK_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let watcher = Keypair::from_secret([0x54; 32]);
    // Evidence is what a node's vote keeper gathered by the time it finalizes a height, which
    // is the block time after the height started there: the copy's conflicting vote must
    // reach the others within that window. The copy does not wait out the block time once
    // it decides, so it starts each height as soon as it can, at or before the others (whose
    // consensus keeps its early vote for the height they start next). A copy that waited
    // like the others and fell behind by a block time (slow start, a late dial, a sync)
    // would stay that far behind and never be seen.
    let block_time_ms = 1_000u64;
    let out = Command::new(env!("CARGO_BIN_EXE_gridlease-node"))
        .args(["testnet", "--validators", "4", "--output", "json", "--home"])
        .arg(dir.path())
        .args(["--chain-id", CHAIN_ID, "--block-time-ms", &block_time_ms.to_string()])
        .args(["--fund", &format!("{}=1000000000000ugrid", watcher.address())])
        .output()
        .expect("run gridlease-node testnet");
    assert!(out.status.success(), "testnet: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    let mut nodes: Vec<Node> = (0..4)
        .map(|i| Node {
            home: dir.path().join(format!("node{i}")),
            rpc: format!("http://{}", listed[i]["rpc"].as_str().expect("rpc")),
            child: None,
        })
        .collect();
    let peers: Vec<std::net::SocketAddr> =
        nodes.iter().map(|n| Home::new(&n.home).load_config().expect("config").p2p_addr).collect();
    let twin_key = Keypair::from_secret(Home::new(&nodes[3].home).load_key().expect("key"));
    // The validators first: the copy dials them once they listen, rather than backing off
    // from refused dials while they start.
    for n in &mut nodes {
        n.start();
    }
    for n in &nodes {
        wait_height(n, 2, 60).await;
    }
    let mut twin = full_node_home(&dir.path().join("twin"), &nodes[0].home, &twin_key, &peers);
    // The copy is impatient: it prevotes nil before most proposals reach it, while the
    // original prevotes the proposal, so the two sign different votes for one height and
    // round (two copies with the same settings sign alike unless their timing happens to
    // differ).
    let twin_config_path = Home::new(&twin.home).config_path();
    let mut twin_config = Home::new(&twin.home).load_config().expect("config");
    twin_config.propose_timeout_ms = 1;
    twin_config.block_time_ms = 1;
    std::fs::write(&twin_config_path, serde_json::to_string_pretty(&twin_config).expect("json"))
        .expect("write config");
    twin.start();

    // Someone's consensus saw it.
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.is_none() {
        for n in nodes.iter().chain([&twin]) {
            if let Ok(e) = n.client().evidence().await
                && let Some(newest) = e.seen.into_iter().next_back()
            {
                seen = Some(newest);
                break;
            }
        }
        if seen.is_none() {
            if Instant::now() > deadline {
                panic!(
                    "no node saw the double vote in 120 s\n{}",
                    network_report(&nodes, &twin).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seen = seen.expect("evidence");
    assert_eq!(seen.offender, gridlease_node::hex(&twin_key.public_key().0));
    let evidence = gridlease_node::unhex(&seen.evidence).expect("hex evidence");

    // A watcher submits it; the offender is slashed and leaves the set.
    let mut watcher = Sender { key: watcher, sequence: 0, committed: Vec::new() };
    let msg =
        Msg::SubmitEvidence { offender: twin_key.public_key(), height: seen.height, evidence };
    // The nodes that saw it report it too, so the watcher may come second: then its report
    // is refused as already settled and the slash is in an earlier block.
    let ((_, submitted_at, code), log) = watcher.try_submit(&nodes[0], vec![msg]).await;
    assert!(code == "ok" || code == "already_exists", "{code}: {log}");
    let mut slashed_at = None;
    for h in (1..=submitted_at).rev() {
        let block = nodes[0].client().block(h).await.expect("block").expect("exists");
        if format!("{:?}", block.receipts).contains("ValidatorSlashed") {
            slashed_at = Some(h);
            break;
        }
    }
    let slashed_at = slashed_at.expect("a block slashed the double signer");
    assert!(code != "ok" || slashed_at == submitted_at, "the watcher's report slashed nobody");
    let offender = twin_key.address();
    wait_for("the double signer to leave the set", 60, async || {
        let v = nodes[0].client().validators().await.expect("validators");
        v.active.len() == 3 && v.active.iter().all(|m| m.operator != offender)
    })
    .await;
    twin.kill();
    nodes[3].kill();
    // Three of four validators' power remain (the offender's is out): blocks keep coming, and
    // the three agree on the block that slashed it.
    let tip = height(&nodes[0]).await.expect("status");
    wait_height(&nodes[0], tip + 5, 60).await;
    for n in &nodes[1..3] {
        wait_height(n, slashed_at, 60).await;
        assert_eq!(root(n, slashed_at).await, root(&nodes[0], slashed_at).await);
    }
}
