//! TEMP profiling harness.
#[path = "../benches/common/mod.rs"]
mod common;
use common::*;
use gridlease_sim::ugrid;
use gridlease_storage::Store;
use gridlease_types::*;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
/// Groups (one lease each) per deployment: 1 for small chains, up to 100.
fn groups_for(leases: u64) -> u32 {
    (leases / 1_000).clamp(1, 100) as u32
}
const BIDS_PER_TX: usize = 64;

struct Chain {
    store: Store,
    tenants: Vec<Keypair>,
    provider: Keypair,
    seqs: std::collections::BTreeMap<Address, u64>,
    leases: u64,
}

fn build(dir: &std::path::Path, leases: u64) -> Chain {
    let groups_per = groups_for(leases);
    let deployments = leases.div_ceil(groups_per as u64);
    let tenants: Vec<Keypair> = (0..deployments.max(2_000)).map(|i| key(4, i)).collect();
    assert!(deployments >= 1_000, "the block needs 600 distinct deployments");
    let provider = key(5, 0);
    let mut all: Vec<&Keypair> = tenants.iter().collect();
    all.push(&provider);
    let path = dir.join(format!("leases-{leases}.redb"));
    let exists = path.exists();
    let mut store = Store::open_with(&path, bench_store_config(16)).unwrap();
    if exists {
        let mut seqs = std::collections::BTreeMap::new();
        for t in &tenants {
            seqs.insert(t.address(), sequence(&store, t));
        }
        seqs.insert(provider.address(), sequence(&store, &provider));
        return Chain { store, tenants, provider, seqs, leases };
    }
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
    let mut seqs = std::collections::BTreeMap::new();
    for t in &tenants {
        seqs.insert(t.address(), sequence(&store, t));
    }
    seqs.insert(provider.address(), pseq);
    Chain { store, tenants, provider, seqs, leases }
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
        // Jobs of one signer must stay in sequence order: sort by (signer, sequence) is not
        // needed because each signer's jobs were pushed in increasing order.
        sign_all(jobs)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args[1].parse().unwrap();
    let blocks: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(48);
    let dir = std::path::PathBuf::from("/tmp/glprof");
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    let mut chain = build(&dir, n);
    eprintln!("open/build {:.1}s height {}", t.elapsed().as_secs_f64(), chain.store.height());
    let _ = gridlease_storage::prof::take();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n);
    for (mode, random) in [("fixed", false), ("random", true)] {
        let mut per: Vec<Vec<(&str, u64)>> = Vec::new();
        let mut tot = Vec::new();
        for i in 0..blocks + 4 {
            let txs = chain.next_block(&mut rng, random);
            let h = chain.store.height() + 1;
            let s = Instant::now();
            chain.store.execute_block(gridlease_sim::CHAIN_ID, h, h * 1000, txs).unwrap();
            let took = s.elapsed().as_nanos() as u64;
            let p = gridlease_storage::prof::take();
            if i >= 4 {
                per.push(p);
                tot.push(took);
            }
        }
        let mut line = format!("{mode} n={n}");
        let med = |mut v: Vec<u64>| {
            v.sort();
            (v[v.len() / 2] as f64 / 1e6, v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e6)
        };
        let (m, a) = med(tot.clone());
        line += &format!(" total med {m:.2} mean {a:.2} |");
        for k in 0..per[0].len() {
            let (m, a) = med(per.iter().map(|p| p[k].1).collect());
            line += &format!(" {} {m:.2}/{a:.2}", per[0][k].0);
        }
        println!("{line}");
    }
}
