//! Execute + commit throughput for blocks of 10,000 signed transactions: half bank transfers,
//! half bids on open orders, signature verification included (it runs in parallel on the
//! machine's cores before execution). Reports transactions per second.
//!
//! `cargo bench -p gridlease-storage --bench block_throughput`

mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gridlease_sim::ugrid;
use gridlease_storage::{Store, state_path_of};
use gridlease_types::*;

const TXS: usize = 10_000;
const SENDERS: u64 = (TXS / 2) as u64;
const PROVIDERS: u64 = (TXS / 2) as u64;
const TENANTS: u64 = 10;
const GROUPS_PER_TENANT: u32 = 100;
const ORDERS: u64 = TENANTS * GROUPS_PER_TENANT as u64;

struct Chain {
    senders: Vec<Keypair>,
    providers: Vec<Keypair>,
    tenants: Vec<Keypair>,
}

impl Chain {
    fn order(&self, i: u64) -> OrderId {
        let t = &self.tenants[(i / GROUPS_PER_TENANT as u64) as usize];
        OrderId {
            owner: t.address(),
            dseq: 1,
            gseq: (i % GROUPS_PER_TENANT as u64) as u32 + 1,
            oseq: 1,
        }
    }

    /// Block `b` (0-based) of the benchmark: each sender transfers once, each provider bids on
    /// a different order than in any earlier block.
    fn block(&self, b: u64) -> Vec<Vec<u8>> {
        let mut jobs: Vec<(&Keypair, u64, Vec<Msg>)> = Vec::with_capacity(TXS);
        for (i, s) in self.senders.iter().enumerate() {
            let to = self.senders[(i + 1) % self.senders.len()].address();
            jobs.push((s, b, vec![Msg::Send { to, amount: Coin::new(1 + b as u128, &ugrid()) }]));
        }
        for (p, k) in self.providers.iter().enumerate() {
            let order = self.order((p as u64 + b) % ORDERS);
            let price = DecCoin { denom: ugrid(), amount: DecAmount(1_000 + p as u128) };
            jobs.push((
                k,
                1 + b,
                vec![Msg::CreateBid {
                    order,
                    price,
                    offer: offer(),
                    deposit: Coin::new(1, &ugrid()),
                }],
            ));
        }
        sign_all(jobs)
    }
}

fn setup(dir: &std::path::Path) -> (Chain, std::path::PathBuf) {
    let chain = Chain {
        senders: (0..SENDERS).map(|i| key(1, i)).collect(),
        providers: (0..PROVIDERS).map(|i| key(2, i)).collect(),
        tenants: (0..TENANTS).map(|i| key(3, i)).collect(),
    };
    let all: Vec<&Keypair> =
        chain.senders.iter().chain(&chain.providers).chain(&chain.tenants).collect();
    let path = dir.join("template.redb");
    let mut store = Store::open_with(&path, bench_store_config(4)).unwrap();
    store.init_genesis(&genesis(&all)).unwrap();
    let register = chain
        .providers
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let msg = Msg::CreateProvider {
                host_uri: format!("https://p{i}.example"),
                attributes: vec![],
                info: Default::default(),
            };
            (k, 0, vec![msg])
        })
        .collect();
    commit(&mut store, sign_all(register));
    let deployments = chain
        .tenants
        .iter()
        .map(|t| {
            let groups = (0..GROUPS_PER_TENANT).map(small_group).collect();
            (
                t,
                0,
                vec![Msg::CreateDeployment {
                    dseq: 1,
                    groups,
                    manifest_hash: [1; 32],
                    deposit: Coin::new(10u128.pow(12), &ugrid()),
                }],
            )
        })
        .collect();
    commit(&mut store, sign_all(deployments));
    store.checkpoint().unwrap();
    (chain, path)
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (chain, template) = setup(dir.path());
    let mut blocks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut group = c.benchmark_group("block");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(40));
    group.throughput(Throughput::Elements(TXS as u64));
    group.bench_function("execute_commit_10k_transfers_and_bids", |b| {
        b.iter_custom(|iters| {
            while (blocks.len() as u64) < iters {
                blocks.push(chain.block(blocks.len() as u64));
            }
            let path = dir.path().join("run.redb");
            // A store is two files: the chain file and its state file.
            std::fs::copy(&template, &path).unwrap();
            std::fs::copy(state_path_of(&template), state_path_of(&path)).unwrap();
            let mut store = Store::open_with(&path, bench_store_config(4)).unwrap();
            let mut total = Duration::ZERO;
            for block in blocks.iter().take(iters as usize) {
                let h = store.height() + 1;
                let txs = block.clone();
                let start = Instant::now();
                let (_, out) =
                    store.execute_block(gridlease_sim::CHAIN_ID, h, h * 1000, txs).unwrap();
                total += start.elapsed();
                let failed = out
                    .receipts
                    .iter()
                    .filter(|r| r.code != gridlease_ledger::ReceiptCode::Ok)
                    .count();
                assert_eq!(failed, 0, "benchmark transactions must all succeed");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
