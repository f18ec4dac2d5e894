//! Restart under load: a real node is SIGKILLed at random (seeded) moments while several
//! accounts push signed transactions through the RPC, and is restarted on the same home each
//! time; after about one kill in three, the restarted node is killed again while it starts up
//! (opening the store, replaying its log, starting consensus). After every restart the chain
//! continues from its last committed height, every block seen before keeps its state root,
//! and every transaction reported committed (by `POST /txs?wait=commit` or by
//! `GET /txs/{hash}`) is still committed at the same height with the same receipt code.
//!
//! `GRIDLEASE_RESTART_SEED` and `GRIDLEASE_RESTART_KILLS` override the seed and the number of
//! kills (default 24). Run with `--nocapture` to see the schedule and the totals.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NodeProcess, init, log_tail, spawn_unwatched, start};
use futures_util::StreamExt;
use gridlease_client::Client;
use gridlease_sim::{CHAIN_ID, sign, ugrid};
use gridlease_types::{Address, Coin, Keypair, Msg, TxHash};
use serde_json::Value;
use tokio::sync::watch;

const BLOCK_TIME_MS: u64 = 200;
const ACCOUNTS: u8 = 6;
/// Transactions an account submits before waiting for the last one's commit.
const BATCH: u64 = 8;
const FEE: u128 = 1_000;
const DEFAULT_SEED: u64 = 0x6772_6964_6c65_6173;
const DEFAULT_KILLS: u32 = 24;
/// How many lookups a check keeps in flight.
const CHECK_CONCURRENCY: usize = 8;

/// SplitMix64: a seeded generator for the kill schedule.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (up to a negligible bias).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A transaction the node reported committed.
#[derive(Clone, Debug)]
struct CommittedTx {
    hash: String,
    height: u64,
    code: String,
}

/// What the load and the monitor saw, checked after every restart.
#[derive(Debug, Default)]
struct Observed {
    /// State root (hex) of every block height fetched.
    roots: BTreeMap<u64, String>,
    /// Highest `latest_height` seen.
    max_height: u64,
    committed: Vec<CommittedTx>,
    /// Broken promises seen while running.
    violations: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    /// RPC base URL of the node now running.
    url: watch::Receiver<String>,
    observed: Mutex<Observed>,
    stop: AtomicBool,
}

impl Shared {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client(&self) -> Client {
        Client::new(&self.url.borrow().clone())
    }

    fn record(&self, tx: CommittedTx) {
        self.observed().committed.push(tx);
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One account's load: batches of sends with consecutive sequences, the last one waiting for
/// its commit, then a lookup of the others. Any failure (the node was killed, a sequence
/// clash after a restart) starts over from the committed sequence.
async fn load(shared: Arc<Shared>, key: Keypair, to: Address) {
    let address = key.address();
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    while !shared.stop.load(Ordering::Relaxed) {
        let client = shared.client();
        let Ok(account) = client.account(&address).await else {
            pause().await;
            continue;
        };
        let txs: Vec<_> = (account.sequence..account.sequence + BATCH)
            .map(|s| {
                let amount = Coin::new(u128::from(s % 1000) + 1, &ugrid());
                sign(&key, s, FEE, vec![Msg::Send { to, amount }])
            })
            .collect();
        let (last, rest) = txs.split_last().expect("a batch is never empty");
        let mut admitted = true;
        for tx in rest {
            if client.submit(tx, false).await.is_err() {
                admitted = false;
                break;
            }
        }
        if !admitted {
            pause().await;
            continue;
        }
        match client.submit(last, true).await {
            Ok(r) if r.status == gridlease_client::TxStatus::Committed => {
                shared.record(CommittedTx {
                    hash: r.hash,
                    height: r.height.unwrap_or(0),
                    code: r.receipt.map(|r| r.code.name().to_owned()).unwrap_or_default(),
                })
            }
            _ => {
                pause().await;
                continue;
            }
        }
        for tx in rest {
            let hash = TxHash::of_bytes(&tx.to_bytes()).to_string();
            if let Ok(v) = client.get::<Value>(&format!("/txs/{hash}")).await
                && v["status"] == "committed"
            {
                shared.record(CommittedTx {
                    hash,
                    height: v["height"].as_u64().unwrap_or(0),
                    code: v["receipt"]["code"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
}

/// Follows the chain: the latest height must never go down, and the state root of every new
/// block is recorded (and must not change if seen again).
async fn monitor(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let client = shared.client();
        if let Ok(status) = client.status().await {
            let next = {
                let mut o = shared.observed();
                if status.latest_height < o.max_height {
                    let msg = format!(
                        "latest_height went down from {} to {}",
                        o.max_height, status.latest_height
                    );
                    o.violations.push(msg);
                }
                o.max_height = o.max_height.max(status.latest_height);
                o.roots.last_key_value().map_or(1, |(h, _)| h + 1)
            };
            for h in next..=status.latest_height {
                let Ok(block) = client.get::<Value>(&format!("/blocks/{h}")).await else { break };
                let root = block["state_root"].as_str().unwrap_or_default().to_string();
                let mut o = shared.observed();
                if let Some(seen) = o.roots.get(&h)
                    && *seen != root
                {
                    let msg = format!("block {h}: state root {root}, earlier {seen}");
                    o.violations.push(msg);
                }
                o.roots.insert(h, root);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts from one check.
#[derive(Debug, Default)]
struct Checked {
    height: u64,
    blocks: usize,
    txs: usize,
}

/// After a restart: the node answers, has not lost a height, still has every block seen with
/// the same root and every transaction reported committed at the same height, and commits a
/// new block.
async fn check_restarted(node: &NodeProcess, shared: &Shared, home: &Path) -> Checked {
    let client = Client::new(&node.rpc);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match client.status().await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                panic!("restarted node does not answer: {e}\n{}", log_tail(home))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (max_height, roots, committed, violations) = {
        let o = shared.observed();
        (o.max_height, o.roots.clone(), o.committed.clone(), o.violations.clone())
    };
    assert!(violations.is_empty(), "while running: {violations:#?}\n{}", log_tail(home));
    assert!(
        status.latest_height >= max_height,
        "restarted at height {} below the {max_height} seen before the kill\n{}",
        status.latest_height,
        log_tail(home)
    );

    let bad_roots: Vec<String> = futures_util::stream::iter(roots.iter())
        .map(|(h, root)| {
            let client = client.clone();
            async move {
                match client.get::<Value>(&format!("/blocks/{h}")).await {
                    Ok(b) if b["state_root"].as_str() == Some(root.as_str()) => None,
                    Ok(b) => Some(format!("block {h}: root {} was {root}", b["state_root"])),
                    Err(e) => Some(format!("block {h}: {e}")),
                }
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    assert!(bad_roots.is_empty(), "blocks changed after a restart: {bad_roots:#?}");

    let lost: Vec<String> = futures_util::stream::iter(committed.iter())
        .map(|t| {
            let client = client.clone();
            async move {
                match client.get::<Value>(&format!("/txs/{}", t.hash)).await {
                    Ok(v)
                        if v["status"] == "committed"
                            && v["height"].as_u64() == Some(t.height)
                            && v["receipt"]["code"].as_str() == Some(t.code.as_str()) =>
                    {
                        None
                    }
                    Ok(v) => Some(format!("{t:?} is now {v}")),
                    Err(e) => Some(format!("{t:?}: {e}")),
                }
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    assert!(lost.is_empty(), "committed transactions lost or moved: {lost:#?}");

    // The chain goes on from there.
    common::wait_height(&client, status.latest_height + 1).await;
    Checked { height: status.latest_height, blocks: roots.len(), txs: committed.len() }
}

async fn start_blocking(home: &Path) -> NodeProcess {
    let home: PathBuf = home.to_path_buf();
    tokio::task::spawn_blocking(move || start(&home, BLOCK_TIME_MS))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_every_committed_block_and_transaction() {
    let seed = env_or("GRIDLEASE_RESTART_SEED", DEFAULT_SEED);
    let kills = env_or("GRIDLEASE_RESTART_KILLS", DEFAULT_KILLS);
    eprintln!("restart test: seed {seed:#x}, {kills} kills, {BLOCK_TIME_MS} ms blocks");
    let began = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path();
    let keys: Vec<Keypair> = (1..=ACCOUNTS).map(|i| Keypair::from_secret([i; 32])).collect();
    let addresses: Vec<Address> = keys.iter().map(Keypair::address).collect();
    init(home, CHAIN_ID, &addresses);

    let mut node = start_blocking(home).await;
    common::wait_height(&Client::new(&node.rpc), 1).await;
    let (url_tx, url_rx) = watch::channel(node.rpc.clone());
    let shared = Arc::new(Shared {
        url: url_rx,
        observed: Mutex::new(Observed::default()),
        stop: AtomicBool::new(false),
    });
    let mut tasks = vec![tokio::spawn(monitor(shared.clone()))];
    for (i, key) in keys.iter().enumerate() {
        let to = addresses[(i + 1) % addresses.len()];
        tasks.push(tokio::spawn(load(shared.clone(), key.clone(), to)));
    }

    let mut rng = SplitMix64(seed);
    let (mut done, mut during_startup) = (0u32, 0u32);
    let mut last = Checked::default();
    while done < kills {
        let run_ms = rng.between(200, 2500);
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        node.kill().expect("SIGKILL the node");
        done += 1;
        let mut schedule = format!("kill {done}: after {run_ms} ms under load");
        if done < kills && rng.next().is_multiple_of(3) {
            // Once more while it opens the store, replays its log or starts consensus.
            let mut child = spawn_unwatched(home, BLOCK_TIME_MS);
            let startup_ms = rng.between(10, 800);
            tokio::time::sleep(Duration::from_millis(startup_ms)).await;
            child.kill().expect("SIGKILL the starting node");
            child.wait().expect("reap the starting node");
            done += 1;
            during_startup += 1;
            schedule += &format!("; kill {done}: {startup_ms} ms into a restart");
        }
        node = start_blocking(home).await;
        url_tx.send_replace(node.rpc.clone());
        last = check_restarted(&node, &shared, home).await;
        eprintln!(
            "{schedule}; restarted at height {}, {} block roots and {} committed txs intact",
            last.height, last.blocks, last.txs
        );
    }

    // A last stretch without kills, then a last full check.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    let final_check = check_restarted(&node, &shared, home).await;
    let codes = {
        let o = shared.observed();
        let ok = o.committed.iter().filter(|t| t.code == "ok").count();
        (ok, o.committed.len() - ok)
    };
    eprintln!(
        "restart test done in {:.1} s: {done} kills ({during_startup} during startup), \
         final height {}, {} block roots and {} committed txs ({} ok, {} failed receipts) \
         verified after every restart",
        began.elapsed().as_secs_f64(),
        final_check.height,
        final_check.blocks,
        final_check.txs,
        codes.0,
        codes.1,
    );
    assert!(final_check.height > last.height, "the chain stopped after the last restart");
    assert!(
        final_check.txs >= 100,
        "only {} transactions committed: the load did not run",
        final_check.txs
    );
}
