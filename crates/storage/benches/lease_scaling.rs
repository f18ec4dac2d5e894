//! Cost of one block as the number of active leases grows: the same block (2,000 transfers,
//! 500 lease withdrawals from 500 distinct deployments, 100 escrow deposits, and one health
//! report from the deployments' monitor taking 100 leases down and bringing the previous
//! block's 100 up again, each pausing or resuming a payment) on a chain with 1,000 and with
//! 1,000,000 active leases. Both chains have at least 1,000 deployments, so the
//! block touches the same number of distinct objects on each. Escrow settles lazily and due
//! work sits in height-keyed queues, so the ledger's work is the same on both.
//!
//! Criterion times each size in turn; the ratios of the median block times (check + execute +
//! commit), of the mean block times (checkpoints amortized) and of execute alone are printed at
//! the end.
//!
//! Each chain is built by real blocks in a child process (the bench binary run again), and the
//! measuring process opens all of them before timing any, as a node opens its store: every size
//! is then measured in the same process, with the same memory, instead of the largest one
//! inheriting the heap left behind by minutes of 128,000-transaction setup blocks.
//!
//! `cargo bench -p gridlease-storage --bench lease_scaling`
//! (`GRIDLEASE_BENCH_LEASES=1000,100000` picks other sizes.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, SamplingMode, criterion_group};
use gridlease_sim::ugrid;
use gridlease_storage::Store;
use gridlease_types::*;
use rand::{Rng, SeedableRng};

/// Groups (one lease each) per deployment: 1 for small chains, up to 100.
fn groups_for(leases: u64) -> u32 {
    (leases / 1_000).clamp(1, 100) as u32
}
const BIDS_PER_TX: usize = 64;

struct Chain {
    store: Store,
    tenants: Vec<Keypair>,
    provider: Keypair,
    /// The account every deployment names as its monitor.
    monitor: Keypair,
    /// Leases the last block reported down (the next one reports them up).
    down: Vec<BidId>,
    seqs: std::collections::BTreeMap<Address, u64>,
    leases: u64,
}

/// Environment variable that makes the bench binary build one chain (`PATH,LEASES`) and exit.
const BUILD_ENV: &str = "GRIDLEASE_LEASE_SCALING_BUILD";

fn monitor_key() -> Keypair {
    key(6, 0)
}

fn chain_path(dir: &std::path::Path, leases: u64) -> std::path::PathBuf {
    dir.join(format!("leases-{leases}.redb"))
}

fn participants(leases: u64) -> (Vec<Keypair>, Keypair) {
    let deployments = leases.div_ceil(groups_for(leases) as u64);
    assert!(deployments >= 1_000, "the block needs 600 distinct deployments");
    ((0..deployments.max(2_000)).map(|i| key(4, i)).collect(), key(5, 0))
}

/// Builds a chain with `leases` active leases at `path` by executing and committing blocks.
fn build(path: &std::path::Path, leases: u64) {
    let groups_per = groups_for(leases);
    let deployments = leases.div_ceil(groups_per as u64);
    let (tenants, provider) = participants(leases);
    let monitor = monitor_key();
    let mut all: Vec<&Keypair> = tenants.iter().collect();
    all.push(&provider);
    all.push(&monitor);
    let mut store = Store::open_with(path, bench_store_config(16)).unwrap();
    store.init_genesis(&genesis(&all)).unwrap();
    let started = Instant::now();
    commit(
        &mut store,
        sign_all(vec![(
            &provider,
            0,
            vec![Msg::CreateProvider {
                host_uri: "https://p.example".into(),
                attributes: vec![],
                info: Default::default(),
            }],
        )]),
    );
    let groups: Vec<GroupSpec> = (0..groups_per).map(small_group).collect();
    for chunk in tenants[..deployments as usize].chunks(500) {
        let jobs = chunk
            .iter()
            .map(|t| {
                (
                    t,
                    0,
                    vec![
                        Msg::CreateDeployment {
                            dseq: 1,
                            groups: groups.clone(),
                            manifest_hash: [1; 32],
                            deposit: Coin::new(10u128.pow(12), &ugrid()),
                        },
                        Msg::SetMonitors { dseq: 1, monitors: vec![monitor.address()] },
                    ],
                )
            })
            .collect();
        commit(&mut store, sign_all(jobs));
    }
    let orders: Vec<OrderId> = tenants[..deployments as usize]
        .iter()
        .flat_map(|t| {
            (1..=groups_per).map(move |g| OrderId { owner: t.address(), dseq: 1, gseq: g, oseq: 1 })
        })
        .take(leases as usize)
        .collect();
    let mut pseq = 1;
    for block in orders.chunks(BIDS_PER_TX * 1_000) {
        let mut jobs = Vec::new();
        for msgs in block.chunks(BIDS_PER_TX) {
            let bids = msgs
                .iter()
                .map(|o| Msg::CreateBid {
                    order: *o,
                    price: DecCoin { denom: ugrid(), amount: DecAmount(1_000_000) },
                    offer: offer(),
                    deposit: Coin::new(1, &ugrid()),
                })
                .collect();
            jobs.push((&provider, pseq, bids));
            pseq += 1;
        }
        commit(&mut store, sign_all(jobs));
    }
    let mut accept_jobs = Vec::new();
    for (t, chunk) in tenants.iter().zip(orders.chunks(groups_per as usize)) {
        for (seq, msgs) in chunk.chunks(BIDS_PER_TX).enumerate() {
            let accepts = msgs
                .iter()
                .map(|o| Msg::AcceptBid { bid: BidId { order: *o, provider: provider.address() } })
                .collect();
            accept_jobs.push((t, 1 + seq as u64, accepts));
        }
    }
    // Sequences of one tenant must land in order: blocks take whole tenants' jobs in order.
    let mut jobs = accept_jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let batch: Vec<_> = jobs.by_ref().take(2_000).collect();
        commit(&mut store, sign_all(batch));
    }
    store.checkpoint().unwrap();
    eprintln!(
        "built {leases} active leases in {:.1}s at height {}",
        started.elapsed().as_secs_f64(),
        store.height()
    );
}

/// Builds the chain in a child process and opens it here.
fn open(dir: &std::path::Path, leases: u64) -> Chain {
    let path = chain_path(dir, leases);
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .env(BUILD_ENV, format!("{},{leases}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "building the chain with {leases} leases failed: {status}");
    let store = Store::open_with(&path, bench_store_config(16)).unwrap();
    let (tenants, provider) = participants(leases);
    let monitor = monitor_key();
    let mut seqs = std::collections::BTreeMap::new();
    for k in tenants.iter().chain([&provider, &monitor]) {
        seqs.insert(k.address(), sequence(&store, k));
    }
    Chain { store, tenants, provider, monitor, down: Vec::new(), seqs, leases }
}

impl Chain {
    /// The next block. With `random`, withdrawals and deposits pick 600 random deployments
    /// (the working set grows with the chain); otherwise always the first 600 (the block's work
    /// is identical on every chain size, only the number of idle active leases differs).
    fn next_block(&mut self, rng: &mut impl Rng, random: bool) -> Vec<Vec<u8>> {
        let groups_per = groups_for(self.leases);
        let deployments = self.leases.div_ceil(groups_per as u64) as usize;
        let picks: Vec<usize> = if random {
            rand::seq::index::sample(rng, deployments, 600).into_vec()
        } else {
            (0..600).collect()
        };
        let mut jobs: Vec<(&Keypair, u64, Vec<Msg>)> = Vec::new();
        let mut take_seq = |a: Address| {
            let s = self.seqs.entry(a).or_default();
            *s += 1;
            *s - 1
        };
        for i in 0..2_000 {
            let from = &self.tenants[i % self.tenants.len()];
            let to = self.tenants[(i + 1) % self.tenants.len()].address();
            jobs.push((
                from,
                take_seq(from.address()),
                vec![Msg::Send { to, amount: Coin::new(1, &ugrid()) }],
            ));
        }
        for &d in &picks[..500] {
            let t = &self.tenants[d];
            let g = if random { rng.gen_range(1..=groups_per) } else { 1 };
            let lease = BidId {
                order: OrderId { owner: t.address(), dseq: 1, gseq: g, oseq: 1 },
                provider: self.provider.address(),
            };
            jobs.push((
                &self.provider,
                take_seq(self.provider.address()),
                vec![Msg::WithdrawLease { lease }],
            ));
        }
        for &d in &picks[500..] {
            let t = &self.tenants[d];
            jobs.push((
                t,
                take_seq(t.address()),
                vec![Msg::DepositDeployment { dseq: 1, amount: Coin::new(1_000, &ugrid()) }],
            ));
        }
        // The monitor: last block's 100 down leases come up, 100 others go down (their
        // payments pause and resume; the failover grace is far longer than one block).
        let mut reports: Vec<msg::HealthReport> =
            self.down.iter().map(|l| msg::HealthReport { lease: *l, up: true }).collect();
        let offset = if random { rng.gen_range(600..deployments - 100) } else { 600 };
        let fresh: Vec<BidId> = (offset..offset + 100)
            .map(|d| BidId {
                order: OrderId { owner: self.tenants[d].address(), dseq: 1, gseq: 1, oseq: 1 },
                provider: self.provider.address(),
            })
            .collect();
        reports.extend(fresh.iter().map(|l| msg::HealthReport { lease: *l, up: false }));
        self.down = fresh;
        let m = self.monitor.address();
        jobs.push((&self.monitor, take_seq(m), vec![Msg::ReportHealth { reports }]));
        // Jobs of one signer must stay in sequence order: sort by (signer, sequence) is not
        // needed because each signer's jobs were pushed in increasing order.
        sign_all(jobs)
    }
}

fn scaling(c: &mut Criterion) {
    let sizes: Vec<u64> = std::env::var("GRIDLEASE_BENCH_LEASES")
        .unwrap_or_else(|_| "1000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut measured: Vec<(&str, u64, Times)> = Vec::new();
    let mut group = c.benchmark_group("lease_scaling");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let mut chains: Vec<Chain> = sizes.iter().map(|&n| open(dir.path(), n)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for chain in &mut chains {
        let n = chain.leases;
        for (mode, random) in [("fixed", false), ("random", true)] {
            let mut times = Times::default();
            group.bench_function(format!("{mode}_working_set/block_with_{n}_active_leases"), |b| {
                b.iter_custom(|iters| {
                    (0..iters).map(|_| times.push(chain.run_block(&mut rng, random))).sum()
                })
            });
            eprintln!(
                "{mode} working set, {n} active leases: block (check + execute + commit) {}; execute alone median {:.2} ms",
                times.summary(),
                ms(times.exec_median())
            );
            measured.push((mode, n, times));
        }
    }
    group.finish();
    for mode in ["fixed", "random"] {
        let of: Vec<_> = measured.iter().filter(|m| m.0 == mode).collect();
        if let (Some(first), Some(last)) = (of.first(), of.last()) {
            eprintln!(
                "{mode} working set, {} / {} leases: {}",
                last.1,
                first.1,
                last.2.ratio_to(&first.2)
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Block times (check + execute + commit, checkpoints included when due) and execute-alone
/// times of one chain.
#[derive(Default)]
struct Times {
    block: Vec<Duration>,
    exec: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl Times {
    fn push(&mut self, (block, exec): (Duration, Duration)) -> Duration {
        self.block.push(block);
        self.exec.push(exec);
        block
    }

    fn median(&self) -> Duration {
        median(&self.block)
    }

    fn mean(&self) -> Duration {
        self.block.iter().sum::<Duration>() / self.block.len().max(1) as u32
    }

    fn exec_median(&self) -> Duration {
        median(&self.exec)
    }

    fn summary(&self) -> String {
        format!(
            "median {:.2} ms, mean with checkpoints {:.2} ms over {} blocks",
            ms(self.median()),
            ms(self.mean()),
            self.block.len()
        )
    }

    fn ratio_to(&self, base: &Times) -> String {
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        format!(
            "block median ratio {:.3}, block mean (amortized checkpoints) ratio {:.3}, execute median ratio {:.3}",
            r(self.median(), base.median()),
            r(self.mean(), base.mean()),
            r(self.exec_median(), base.exec_median())
        )
    }
}

impl Chain {
    /// Executes the next block alone (on the same snapshot, committing nothing), then executes
    /// and commits it; returns the time of the commit path and of the execution alone.
    fn run_block(&mut self, rng: &mut impl Rng, random: bool) -> (Duration, Duration) {
        let txs = self.next_block(rng, random);
        let h = self.store.height() + 1;
        let checked = gridlease_storage::check_txs(&txs);
        let ctx = gridlease_ledger::BlockContext {
            chain_id: gridlease_sim::CHAIN_ID.into(),
            height: h,
            time_ms: h * 1000,
            verified_evidence: Default::default(),
        };
        let view = self.store.view().unwrap();
        let exec_start = Instant::now();
        let dry = gridlease_ledger::execute(&view, &ctx, &checked).unwrap();
        let exec = exec_start.elapsed();
        drop((view, dry));
        let start = Instant::now();
        let (_, out) = self.store.execute_block(gridlease_sim::CHAIN_ID, h, h * 1000, txs).unwrap();
        let block = start.elapsed();
        let failed: Vec<_> = out
            .receipts
            .iter()
            .filter(|r| r.code != gridlease_ledger::ReceiptCode::Ok)
            .take(3)
            .map(|r| r.log.clone())
            .collect();
        assert!(failed.is_empty(), "benchmark transactions must succeed: {failed:?}");
        (block, exec)
    }
}

criterion_group!(benches, scaling);

fn main() {
    if let Ok(spec) = std::env::var(BUILD_ENV) {
        let (path, leases) = spec.rsplit_once(',').expect("PATH,LEASES");
        build(std::path::Path::new(path), leases.parse().expect("a number of leases"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
