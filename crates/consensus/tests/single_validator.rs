//! One validator on loopback, with an in-memory application.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridlease_consensus::{
    Application, BoxError, ConsensusConfig, DecidedBlock, certificate_info, run, validator_address,
};
use tokio::sync::{Notify, watch};

const KEY: [u8; 32] = [42; 32];

/// Distinguishes the blocks built by different runs, so a re-proposal after
/// a restart would show up as a different hash.
static RUN: AtomicU64 = AtomicU64::new(0);

/// Committed blocks, shared so a "restarted" application sees what the
/// previous one made durable.
type Chain = Arc<Mutex<BTreeMap<u64, DecidedBlock>>>;

struct MemApp {
    chain: Chain,
    run: u64,
    tip: watch::Sender<u64>,
    /// Simulate a crash when asked to commit this height: stop before committing.
    crash_at: Option<u64>,
    crashed_with: Arc<Mutex<Option<DecidedBlock>>>,
    stop: Arc<Notify>,
}

impl Application for MemApp {
    fn last_committed(&self) -> u64 {
        self.chain.lock().unwrap().keys().next_back().copied().unwrap_or(0)
    }

    async fn propose(&mut self, height: u64, round: u32) -> Vec<u8> {
        // Large enough to be streamed in several parts.
        let mut block = format!("block {height} round {round} run {};", self.run).into_bytes();
        block.resize(block.len() + 300_000, height as u8);
        block
    }

    async fn validate(&mut self, _height: u64, _block: &[u8]) -> bool {
        true
    }

    async fn commit(&mut self, decided: DecidedBlock) -> Result<(), BoxError> {
        let height = decided.height;
        if self.crash_at == Some(height) {
            *self.crashed_with.lock().unwrap() = Some(decided);
            self.stop.notify_one();
            return Err("simulated crash".into());
        }
        let mut chain = self.chain.lock().unwrap();
        let expected = chain.keys().next_back().copied().unwrap_or(0) + 1;
        if height != expected {
            return Err(format!("commit of height {height}, expected {expected}").into());
        }
        chain.insert(height, decided);
        drop(chain);
        self.tip.send_replace(height);
        Ok(())
    }

    fn decided_block(&self, height: u64) -> Option<DecidedBlock> {
        self.chain.lock().unwrap().get(&height).cloned()
    }
}

/// Run the validator until `target` is committed (or the app crashes, or
/// `limit` passes), then stop it. Returns whether `target` was reached.
async fn run_until(
    home: &Path,
    chain: &Chain,
    target: u64,
    crash_at: Option<u64>,
    crashed_with: &Arc<Mutex<Option<DecidedBlock>>>,
    limit: Duration,
) -> bool {
    let (tip_tx, mut tip_rx) = watch::channel(0);
    let stop = Arc::new(Notify::new());
    let app = MemApp {
        chain: chain.clone(),
        run: RUN.fetch_add(1, Ordering::Relaxed),
        tip: tip_tx,
        crash_at,
        crashed_with: crashed_with.clone(),
        stop: stop.clone(),
    };
    let config = ConsensusConfig::single_validator(home, "grid-test", KEY);
    let mut node = tokio::spawn({
        let stop = stop.clone();
        async move { run(config, app, async move { stop.notified().await }).await }
    });

    // Either the target height is committed, or the node stops by itself
    // (simulated crash). The watch guard is dropped at once: holding it would
    // block the application's next send.
    let mut finished = None;
    let reached = tokio::select! {
        r = tokio::time::timeout(limit, tip_rx.wait_for(|h| *h >= target)) => {
            r.is_ok_and(|r| r.is_ok())
        }
        res = &mut node => {
            finished = Some(res);
            false
        }
    };
    let result = match finished {
        Some(res) => res,
        None => {
            stop.notify_one();
            tokio::time::timeout(Duration::from_secs(30), node)
                .await
                .expect("consensus did not stop in time")
        }
    };
    result.expect("consensus task panicked").expect("consensus failed");
    reached
}

fn public_key(seed: [u8; 32]) -> [u8; 32] {
    ConsensusConfig::single_validator("unused", "x", seed).validators[0].public_key
}

/// Heights 1..=n with no gap, each with a certificate for its own block.
fn check_chain(chain: &Chain, at_least: u64) -> u64 {
    let me = validator_address(&public_key(KEY)).unwrap();
    let chain = chain.lock().unwrap();
    let heights: Vec<u64> = chain.keys().copied().collect();
    assert_eq!(heights, (1..=heights.len() as u64).collect::<Vec<_>>(), "heights not consecutive");
    assert!(heights.len() as u64 >= at_least, "only {} heights", heights.len());
    for (h, d) in chain.iter() {
        assert_eq!(d.height, *h);
        assert!(d.block.starts_with(format!("block {h} ").as_bytes()), "wrong block at {h}");
        let info = certificate_info(&d.certificate).unwrap();
        assert_eq!(info.height, *h);
        assert_eq!(info.block_hash, d.hash);
        assert_eq!(info.signers, vec![me]);
    }
    heights.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_consecutive_heights() {
    let home = tempfile::tempdir().unwrap();
    let chain = Chain::default();
    let started = Instant::now();
    let none = Arc::default();
    assert!(run_until(home.path(), &chain, 10, None, &none, Duration::from_secs(40)).await);
    check_chain(&chain, 10);
    // 1 s target block time: ten blocks take about nine to ten seconds.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(8), "blocks came faster than the block time: {took:?}");
    eprintln!("10 heights in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_continues_from_last_committed_height() {
    let home = tempfile::tempdir().unwrap();
    let chain = Chain::default();
    let none = Arc::default();

    assert!(run_until(home.path(), &chain, 3, None, &none, Duration::from_secs(30)).await);
    let first = check_chain(&chain, 3);

    // Same home dir (WAL, pending blocks) and the same committed chain.
    assert!(run_until(home.path(), &chain, first + 3, None, &none, Duration::from_secs(30)).await);
    check_chain(&chain, first + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_decide_and_commit_recommits_the_same_block() {
    let home = tempfile::tempdir().unwrap();
    let chain = Chain::default();
    let crashed_with = Arc::default();
    let started = Instant::now();

    // Height 3 is decided but the application "dies" before committing it.
    let reached =
        run_until(home.path(), &chain, 10, Some(3), &crashed_with, Duration::from_secs(30)).await;
    assert!(!reached);
    assert_eq!(check_chain(&chain, 2), 2);
    let lost = crashed_with.lock().unwrap().clone().expect("no crash happened");

    // The restart resumes at height 3; the WAL replays the decision and the
    // block comes from consensus' pending store, not from a new proposal.
    let none = Arc::default();
    assert!(run_until(home.path(), &chain, 4, None, &none, Duration::from_secs(30)).await);
    check_chain(&chain, 4);
    let recommitted = chain.lock().unwrap()[&3].clone();
    assert_eq!(recommitted.hash, lost.hash);
    assert_eq!(recommitted.block, lost.block);
    eprintln!("crash and recovery in {:?}", started.elapsed());
}
