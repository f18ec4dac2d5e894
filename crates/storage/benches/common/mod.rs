//! Shared setup for the storage benchmarks: a chain with many funded accounts, signed in
//! parallel (signing is never part of a timed section).

#![allow(dead_code)]

use gridlease_ledger::{Genesis, GenesisBalance, Params, query};
use gridlease_sim::{CHAIN_ID, sign, ugrid};
use gridlease_storage::Store;
use gridlease_types::amount::DEC_ONE;
use gridlease_types::*;
use rayon::prelude::*;

pub fn key(kind: u8, i: u64) -> Keypair {
    let mut secret = [0u8; 32];
    secret[0] = kind;
    secret[1..9].copy_from_slice(&i.to_le_bytes());
    Keypair::from_secret(secret)
}

pub fn bench_params() -> Params {
    Params {
        bid_window: 1_000_000,
        min_fee: 1,
        fee_per_msg: 0,
        fee_per_byte: 0,
        bid_deposit: Coin::new(1, &ugrid()),
        min_deposits: vec![Coin::new(1, &ugrid())],
        max_bids_per_order: 1_000_000,
        max_groups: 100,
        overdraw_grace: 1_000,
        ..Params::devnet()
    }
}

pub fn genesis(keys: &[&Keypair]) -> Genesis {
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 0,
        params: bench_params(),
        balances: keys
            .iter()
            .map(|k| GenesisBalance {
                address: k.address(),
                coins: vec![Coin::new(10u128.pow(15), &ugrid())],
            })
            .collect(),
        validators: Vec::new(),
    }
}

/// A one-unit group with a GPU, priced at one micro-unit per block.
pub fn small_group(i: u32) -> GroupSpec {
    gridlease_sim::one_gpu_group(
        &format!("g{i}"),
        DecCoin { denom: ugrid(), amount: DecAmount(DEC_ONE / 1_000_000) },
    )
}

pub fn offer() -> Vec<ResourceOffer> {
    vec![ResourceOffer {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        storage: vec![],
        gpu: Some(GpuOffer {
            units: 1,
            vendor: "nvidia".into(),
            model: "h100".into(),
            ram: "80Gi".into(),
            interface: "sxm".into(),
        }),
        count: 1,
    }]
}

/// Signs `(key, sequence, messages)` triples in parallel and encodes them.
pub fn sign_all(jobs: Vec<(&Keypair, u64, Vec<Msg>)>) -> Vec<Vec<u8>> {
    jobs.into_par_iter().map(|(k, seq, msgs)| sign(k, seq, 1, msgs).to_bytes()).collect()
}

/// Executes and commits one block at the next height.
pub fn commit(store: &mut Store, txs: Vec<Vec<u8>>) {
    let h = store.height() + 1;
    let (_, out) = store.execute_block(CHAIN_ID, h, h * 1000, txs).expect("block executes");
    if let Some(bad) = out.receipts.iter().find(|r| r.code != gridlease_ledger::ReceiptCode::Ok) {
        panic!("setup transaction failed at height {h}: {:?} {}", bad.code, bad.log);
    }
}

pub fn sequence(store: &Store, k: &Keypair) -> u64 {
    query::account(&store.view().unwrap(), &k.address()).unwrap().map_or(0, |a| a.sequence)
}

/// Checkpoints every `blocks` blocks (the node's default is 64), so that measurements pay for
/// them: timings are amortized over log appends and checkpoints, more often than in production.
pub fn bench_store_config(blocks: u32) -> gridlease_storage::StoreConfig {
    gridlease_storage::StoreConfig { checkpoint_every: blocks, ..Default::default() }
}
