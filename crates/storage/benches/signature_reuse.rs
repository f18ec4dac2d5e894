//! The stateless checks of a 10,000-transaction block at commit: every signature verified
//! (`check_txs`, what a node does for a block of transactions it never saw) against the
//! signatures its mempool verified at admission reused (`check_txs_except` with every
//! transaction known, what the proposer does with its own block). The ratio is the gain of
//! verifying each signature once.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gridlease_sim::{Actors, sign, ugrid};
use gridlease_storage::{check_txs, check_txs_except};
use gridlease_types::{CheckedTx, Coin, Msg, Tx};

const TXS: usize = 10_000;

fn block() -> Vec<Vec<u8>> {
    let actors = Actors::new(100, 0, 0);
    (0..TXS)
        .map(|i| {
            let key = &actors.tenants[i % 100];
            let to = actors.tenants[(i + 1) % 100].address();
            let msg = Msg::Send { to, amount: Coin::new(1, &ugrid()) };
            sign(key, (i / 100) as u64, 1_000, vec![msg]).to_bytes()
        })
        .collect()
}

fn signature_reuse(c: &mut Criterion) {
    let raw = block();
    let known: Vec<_> = raw
        .iter()
        .map(|b| match Tx::check_bytes(b) {
            CheckedTx::Valid(v) => Some(v),
            CheckedTx::Invalid { .. } => None,
        })
        .collect();
    let mut group = c.benchmark_group("check_10k");
    group.sample_size(20);
    group.throughput(Throughput::Elements(TXS as u64));
    group.bench_function("verify_every_signature", |b| b.iter(|| check_txs(&raw)));
    group.bench_function("reuse_admission_verification", |b| {
        b.iter_batched(|| known.clone(), |k| check_txs_except(&raw, k), BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, signature_reuse);
criterion_main!(benches);
