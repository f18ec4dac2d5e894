//! Cost of one block as the number of active leases grows: the same block (2,000 transfers,
//! 500 lease withdrawals, 100 escrow deposits) on a chain with 1,000 and with 1,000,000 active
//! leases. Escrow settles lazily and due work sits in height-keyed queues, so the block should
//! cost about the same on both; the ratio is printed at the end.
//!
//! `cargo bench -p gridlease-storage --bench lease_scaling`
//! (`GRIDLEASE_BENCH_LEASES=1000,100000` picks other sizes.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use gridlease_sim::ugrid;
use gridlease_storage::Store;
use gridlease_types::*;
use rand::{Rng, SeedableRng};

const GROUPS: u32 = 100;
const BIDS_PER_TX: usize = 64;

struct Chain {
    store: Store,
    tenants: Vec<Keypair>,
    provider: Keypair,
    seqs: std::collections::BTreeMap<Address, u64>,
    leases: u64,
}

fn build(dir: &std::path::Path, leases: u64) -> Chain {
    let deployments = leases.div_ceil(GROUPS as u64);
    let tenants: Vec<Keypair> = (0..deployments.max(2_000)).map(|i| key(4, i)).collect();
    let provider = key(5, 0);
    let mut all: Vec<&Keypair> = tenants.iter().collect();
    all.push(&provider);
    let mut store = Store::open(dir.join(format!("leases-{leases}.redb"))).unwrap();
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
    let groups: Vec<GroupSpec> = (0..GROUPS).map(small_group).collect();
    for chunk in tenants[..deployments as usize].chunks(500) {
        let jobs = chunk
            .iter()
            .map(|t| {
                (
                    t,
                    0,
                    vec![Msg::CreateDeployment {
                        dseq: 1,
                        groups: groups.clone(),
                        manifest_hash: [1; 32],
                        deposit: Coin::new(10u128.pow(12), &ugrid()),
                    }],
                )
            })
            .collect();
        commit(&mut store, sign_all(jobs));
    }
    let orders: Vec<OrderId> = tenants[..deployments as usize]
        .iter()
        .flat_map(|t| {
            (1..=GROUPS).map(move |g| OrderId { owner: t.address(), dseq: 1, gseq: g, oseq: 1 })
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
    for (t, chunk) in tenants.iter().zip(orders.chunks(GROUPS as usize)) {
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
    eprintln!(
        "built {leases} active leases in {:.1}s at height {}",
        started.elapsed().as_secs_f64(),
        store.height()
    );
    let mut seqs = std::collections::BTreeMap::new();
    for t in &tenants {
        seqs.insert(t.address(), sequence(&store, t));
    }
    seqs.insert(provider.address(), pseq);
    Chain { store, tenants, provider, seqs, leases }
}

impl Chain {
    fn next_block(&mut self, rng: &mut impl Rng) -> Vec<Vec<u8>> {
        let deployments = self.leases.div_ceil(GROUPS as u64) as usize;
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
        for _ in 0..500 {
            let t = &self.tenants[rng.gen_range(0..deployments)];
            let g = rng.gen_range(1..=GROUPS.min(self.leases as u32));
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
        for _ in 0..100 {
            let t = &self.tenants[rng.gen_range(0..deployments)];
            jobs.push((
                t,
                take_seq(t.address()),
                vec![Msg::DepositDeployment { dseq: 1, amount: Coin::new(1_000, &ugrid()) }],
            ));
        }
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
    let mut medians = Vec::new();
    let mut group = c.benchmark_group("lease_scaling");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    for &n in &sizes {
        let mut chain = build(dir.path(), n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n);
        let mut times = Vec::new();
        group.bench_function(format!("block_with_{n}_active_leases"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let txs = chain.next_block(&mut rng);
                    let h = chain.store.height() + 1;
                    let start = Instant::now();
                    let (_, out) = chain
                        .store
                        .execute_block(gridlease_sim::CHAIN_ID, h, h * 1000, txs)
                        .unwrap();
                    let took = start.elapsed();
                    total += took;
                    times.push(took);
                    let failed: Vec<_> = out
                        .receipts
                        .iter()
                        .filter(|r| r.code != gridlease_ledger::ReceiptCode::Ok)
                        .take(3)
                        .map(|r| r.log.clone())
                        .collect();
                    assert!(failed.is_empty(), "benchmark transactions must succeed: {failed:?}");
                }
                total
            })
        });
        times.sort();
        medians.push((n, times[times.len() / 2]));
        drop(chain);
    }
    group.finish();
    for (n, m) in &medians {
        eprintln!("median block time with {n} active leases: {:.2} ms", m.as_secs_f64() * 1e3);
    }
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        eprintln!(
            "ratio {} leases / {} leases: {:.3}",
            last.0,
            first.0,
            last.1.as_secs_f64() / first.1.as_secs_f64()
        );
    }
}

criterion_group!(benches, scaling);
criterion_main!(benches);
