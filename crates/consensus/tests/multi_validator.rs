//! Several validators on loopback: exercises gossip, the codecs, proposal
//! streaming between nodes (a single validator never receives parts) and sync.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridlease_consensus::{
    Application, BoxError, ConsensusConfig, DecidedBlock, ValidatorInfo, certificate_info, run,
};
use tokio::sync::{Notify, watch};

type Chain = Arc<Mutex<BTreeMap<u64, DecidedBlock>>>;

struct Node {
    name: String,
    chain: Chain,
    tip: watch::Sender<u64>,
}

impl Application for Node {
    fn last_committed(&self) -> u64 {
        self.chain.lock().unwrap().keys().next_back().copied().unwrap_or(0)
    }

    async fn propose(&mut self, height: u64, round: u32) -> Vec<u8> {
        let mut block = format!("block {height} round {round} by {};", self.name).into_bytes();
        block.resize(block.len() + 200_000, 7);
        block
    }

    async fn validate(&mut self, height: u64, block: &[u8]) -> bool {
        block.starts_with(format!("block {height} ").as_bytes())
    }

    async fn commit(&mut self, decided: DecidedBlock) -> Result<(), BoxError> {
        let height = decided.height;
        self.chain.lock().unwrap().insert(height, decided);
        self.tip.send_replace(height);
        Ok(())
    }

    fn decided_block(&self, height: u64) -> Option<DecidedBlock> {
        self.chain.lock().unwrap().get(&height).cloned()
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_validators_agree() {
    const TARGET: u64 = 5;
    let keys: Vec<[u8; 32]> = (1..=3u8).map(|i| [i; 32]).collect();
    let validators: Vec<ValidatorInfo> = keys
        .iter()
        .map(|k| ValidatorInfo {
            public_key: ConsensusConfig::single_validator("x", "x", *k).validators[0].public_key,
            voting_power: 1,
        })
        .collect();
    let addrs: Vec<SocketAddr> = keys.iter().map(|_| free_port()).collect();
    let homes: Vec<_> = keys.iter().map(|_| tempfile::tempdir().unwrap()).collect();

    let stop = Arc::new(Notify::new());
    let mut chains = Vec::new();
    let mut tips = Vec::new();
    let mut tasks = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut config = ConsensusConfig::single_validator(homes[i].path(), "grid-test", *key);
        config.moniker = format!("v{i}");
        config.validators = validators.clone();
        config.listen_addr = addrs[i];
        config.persistent_peers =
            addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect();
        let chain = Chain::default();
        let (tip, tip_rx) = watch::channel(0);
        let app = Node { name: format!("v{i}"), chain: chain.clone(), tip };
        let stop = stop.clone();
        tasks.push(tokio::spawn(run(config, app, async move { stop.notified().await })));
        chains.push(chain);
        tips.push(tip_rx);
    }

    let all = async {
        for tip in &mut tips {
            let _ = tip.wait_for(|h| *h >= TARGET).await;
        }
    };
    let reached = tokio::time::timeout(Duration::from_secs(90), all).await.is_ok();
    stop.notify_waiters();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    assert!(reached, "not every validator reached height {TARGET}");

    // Same block at every height on every node, with a quorum certificate.
    let reference = chains[0].lock().unwrap().clone();
    for chain in &chains[1..] {
        let chain = chain.lock().unwrap();
        for h in 1..=TARGET {
            assert_eq!(chain[&h].hash, reference[&h].hash, "fork at height {h}");
        }
    }
    for h in 1..=TARGET {
        let info = certificate_info(&reference[&h].certificate).unwrap();
        assert!(info.signers.len() >= 3, "height {h}: {} signers", info.signers.len());
    }
}

struct Net {
    keys: Vec<[u8; 32]>,
    validators: Vec<ValidatorInfo>,
    addrs: Vec<SocketAddr>,
    homes: Vec<tempfile::TempDir>,
    stop: Arc<Notify>,
}

impl Net {
    fn new(n: u8) -> Self {
        let keys: Vec<[u8; 32]> = (1..=n).map(|i| [i; 32]).collect();
        let validators = keys
            .iter()
            .map(|k| ValidatorInfo {
                public_key: ConsensusConfig::single_validator("x", "x", *k).validators[0]
                    .public_key,
                voting_power: 1,
            })
            .collect();
        let addrs = keys.iter().map(|_| free_port()).collect();
        let homes = keys.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        Self { keys, validators, addrs, homes, stop: Arc::new(Notify::new()) }
    }

    fn start(
        &self,
        i: usize,
    ) -> (
        Chain,
        watch::Receiver<u64>,
        tokio::task::JoinHandle<Result<Node, gridlease_consensus::ConsensusError>>,
    ) {
        let mut config =
            ConsensusConfig::single_validator(self.homes[i].path(), "grid-test", self.keys[i]);
        config.moniker = format!("v{i}");
        config.validators = self.validators.clone();
        config.listen_addr = self.addrs[i];
        config.persistent_peers =
            self.addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect();
        let chain = Chain::default();
        let (tip, tip_rx) = watch::channel(0);
        let app = Node { name: format!("v{i}"), chain: chain.clone(), tip };
        let stop = self.stop.clone();
        let task = tokio::spawn(run(config, app, async move { stop.notified().await }));
        (chain, tip_rx, task)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_validator_catches_up_by_sync() {
    let net = Net::new(4);
    let mut running: Vec<_> = (0..3).map(|i| net.start(i)).collect();

    // Three of four (power 3 of 4 > 2/3) make progress without the fourth.
    let early = async {
        for (_, tip, _) in &mut running {
            let _ = tip.wait_for(|h| *h >= 4).await;
        }
    };
    let early_ok = tokio::time::timeout(Duration::from_secs(60), early).await.is_ok();

    let (late_chain, mut late_tip, late_task) = net.start(3);
    let caught_up = early_ok
        && tokio::time::timeout(Duration::from_secs(90), late_tip.wait_for(|h| *h >= 7))
            .await
            .is_ok_and(|r| r.is_ok());

    net.stop.notify_waiters();
    let reference = running[0].0.clone();
    for (_, _, t) in running {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), late_task).await;
    assert!(early_ok, "three validators did not reach height 4");
    assert!(caught_up, "late validator did not catch up");

    let reference = reference.lock().unwrap();
    let late = late_chain.lock().unwrap();
    for (h, d) in late.iter() {
        if let Some(r) = reference.get(h) {
            assert_eq!(d.hash, r.hash, "late validator forked at height {h}");
        }
    }
    assert_eq!(
        late.keys().copied().collect::<Vec<_>>(),
        (1..=late.len() as u64).collect::<Vec<_>>()
    );
}
