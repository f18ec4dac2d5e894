//! Property tests over random sequences of blocks from several accounts: supply conservation,
//! escrow accounting, lease/order/bid consistency and legal state transitions after every
//! block. Cases default to 10,000 (`PROPTEST_CASES` overrides). A fifth of the transactions
//! are attacks (overflow-seeking prices, bid/withdraw churn, gapped sequences, oversized
//! groups, reopening others' orders, unregistered audits): the invariants hold through them
//! and no begin-block item ever fails.

use gridlease_ledger::ReceiptCode;
use gridlease_ledger::invariants::{check_state, check_transitions};
use gridlease_sim::{Actors, Generator, run_block};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn adversarial() -> Generator {
    Generator { adversarial_share: 0.2, ..Generator::new(Actors::new(3, 4, 2)) }
}

fn run_scenario(seed: u64, blocks: u64, txs: usize) -> Result<(usize, usize), TestCaseError> {
    let generator = adversarial();
    let mut state = generator.actors.genesis().mem_state();
    check_state(&state).map_err(|e| TestCaseError::fail(format!("genesis: {e}")))?;
    let (mut ok, mut failed) = (0, 0);
    for height in 1..=blocks {
        let block = generator.block(seed, height, &state, txs);
        let before = state.clone();
        let out = run_block(&mut state, height, &block)
            .map_err(|e| TestCaseError::fail(format!("block {height} aborted: {e}")))?;
        prop_assert_eq!(out.receipts.len(), block.len());
        let failed_items: Vec<_> = out
            .begin_events
            .iter()
            .filter(|e| matches!(e, gridlease_ledger::Event::BeginBlockItemFailed { .. }))
            .collect();
        prop_assert!(failed_items.is_empty(), "seed {} block {}: {:?}", seed, height, failed_items);
        for r in &out.receipts {
            if r.code == ReceiptCode::Ok { ok += 1 } else { failed += 1 }
        }
        check_state(&state)
            .map_err(|e| TestCaseError::fail(format!("seed {seed} block {height}: {e}")))?;
        check_transitions(&before, &state)
            .map_err(|e| TestCaseError::fail(format!("seed {seed} block {height}: {e}")))?;
    }
    Ok((ok, failed))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_random_blocks(seed in any::<u64>(), blocks in 4u64..16, txs in 1usize..12) {
        run_scenario(seed, blocks, txs)?;
    }
}

/// The generator must exercise the market, not just fail: over a long run most transactions
/// succeed, many fail, and leases come and go.
#[test]
fn long_run_exercises_the_market() {
    long_run(Generator::new(Actors::new(3, 4, 2)));
}

/// The same long run with a fifth of the transactions attacking: the attacks are refused
/// (overflow, oversized and unauthorized receipts occur) and the market still works.
#[test]
fn long_run_with_adversaries_still_exercises_the_market() {
    let codes = long_run(adversarial());
    for code in [ReceiptCode::Overflow, ReceiptCode::InvalidRequest, ReceiptCode::Unauthorized] {
        assert!(codes.contains_key(&code), "no {code:?} receipt among {codes:?}");
    }
}

fn long_run(generator: Generator) -> std::collections::BTreeMap<ReceiptCode, usize> {
    let mut state = generator.actors.genesis().mem_state();
    let mut codes = std::collections::BTreeMap::new();
    let mut leases_created = 0;
    let mut overdrawn = 0;
    for height in 1..=300 {
        let block = generator.block(42, height, &state, 16);
        let before = state.clone();
        let out = run_block(&mut state, height, &block).unwrap();
        for e in out.begin_events.iter().chain(out.receipts.iter().flat_map(|r| r.events.iter())) {
            match e {
                gridlease_ledger::Event::BeginBlockItemFailed { .. } => {
                    panic!("begin-block item failed in block {height}: {e:?}")
                }
                gridlease_ledger::Event::LeaseCreated { .. } => leases_created += 1,
                gridlease_ledger::Event::EscrowOverdrawn { .. } => overdrawn += 1,
                _ => {}
            }
        }
        for r in &out.receipts {
            *codes.entry(r.code).or_insert(0) += 1;
        }
        check_state(&state).unwrap();
        check_transitions(&before, &state).unwrap();
    }
    let ok = codes.get(&ReceiptCode::Ok).copied().unwrap_or(0);
    let total: usize = codes.values().sum();
    assert!(ok * 2 > total, "most transactions should succeed: {codes:?}");
    assert!(codes.len() >= 6, "several failure kinds should occur: {codes:?}");
    assert!(leases_created >= 20, "auctions should produce leases, got {leases_created}");
    eprintln!("codes {codes:?} leases {leases_created} overdrawn {overdrawn}");
    assert!(overdrawn >= 1, "some escrow should run dry, got {overdrawn}");
    codes
}
