//! Staking: genesis validators, bonds that join the active set, unbonds that leave it and get
//! their tokens back, and the refusals, with the state invariants checked after every block.

use gridlease_ledger::invariants::check_state;
use gridlease_ledger::query;
use gridlease_ledger::state::ValidatorSet;
use gridlease_ledger::{Event, GenesisValidator, MemState, ReceiptCode};
use gridlease_sim::{Actors, run_block, sign, ugrid};
use gridlease_types::params::{POWER_UNIT, VALIDATOR_SET_DELAY};
use gridlease_types::{Coin, Keypair, Msg, PublicKey};

const FEE: u128 = 100;

fn consensus_key(i: u8) -> Keypair {
    Keypair::from_secret([0xC0 | i; 32])
}

/// Two genesis validators bonding 3 and 2 power; tenants 0..3 are free to bond.
fn setup() -> (Actors, MemState) {
    let actors = Actors::new(3, 0, 0);
    let mut genesis = actors.genesis();
    genesis.params.max_validators = 3;
    genesis.params.unbonding_blocks = 5;
    genesis.validators = (0..2u8)
        .map(|i| GenesisValidator {
            operator: consensus_key(i).address(),
            consensus_key: consensus_key(i).public_key(),
            moniker: format!("v{i}"),
            bonded: Coin::new(u128::from(3 - i) * POWER_UNIT, &ugrid()),
        })
        .collect();
    for i in 0..2u8 {
        genesis.balances.push(gridlease_ledger::GenesisBalance {
            address: consensus_key(i).address(),
            coins: vec![Coin::new(1_000_000, &ugrid())],
        });
    }
    genesis.validate().expect("valid genesis");
    let state = genesis.mem_state();
    check_state(&state).expect("genesis invariants");
    (actors, state)
}

fn set_at(state: &MemState, height: u64) -> ValidatorSet {
    query::validator_set_at(state, height).unwrap().expect("a validator set")
}

fn keys_of(set: &ValidatorSet) -> Vec<PublicKey> {
    set.members.iter().map(|m| m.consensus_key).collect()
}

fn bond(who: &Keypair, seq: u64, key: PublicKey, amount: u128) -> gridlease_types::Tx {
    let amount = Coin::new(amount, &ugrid());
    sign(who, seq, FEE, vec![Msg::Bond { consensus_key: key, moniker: "new".into(), amount }])
}

fn unbond(who: &Keypair, seq: u64, amount: u128) -> gridlease_types::Tx {
    sign(who, seq, FEE, vec![Msg::Unbond { amount: Coin::new(amount, &ugrid()) }])
}

#[test]
fn genesis_validators_are_the_first_set() {
    let (_, state) = setup();
    let set = set_at(&state, 1);
    assert_eq!(set.from_height, 1);
    assert_eq!(set.total_power(), 5);
    let mut want = vec![consensus_key(0).public_key(), consensus_key(1).public_key()];
    want.sort();
    assert_eq!(keys_of(&set), want);
}

#[test]
fn a_bond_joins_the_set_two_blocks_later_and_an_unbond_leaves_it() {
    let (actors, mut state) = setup();
    let tenant = &actors.tenants[0];
    let key = consensus_key(7).public_key();
    let before = query::balance(&state, &tenant.address(), &ugrid()).unwrap();

    let out = run_block(&mut state, 1, &[bond(tenant, 0, key, 4 * POWER_UNIT)]).unwrap();
    assert_eq!(out.receipts[0].code, ReceiptCode::Ok, "{}", out.receipts[0].log);
    let from = 1 + VALIDATOR_SET_DELAY;
    assert!(out.receipts[0].events.iter().any(|e| matches!(e,
        Event::ValidatorSetScheduled { from_height, validators: 3, total_power: 9 } if *from_height == from)));
    check_state(&state).unwrap();
    // Not before its height...
    assert!(!keys_of(&set_at(&state, 2)).contains(&key));
    run_block(&mut state, 2, &[]).unwrap();
    // ...and from it on, on every node alike since it is state.
    assert!(keys_of(&set_at(&state, 3)).contains(&key));
    run_block(&mut state, 3, &[]).unwrap();
    assert!(query::next_validator_set(&state).unwrap().is_none(), "promoted at its height");
    assert!(keys_of(&set_at(&state, 4)).contains(&key));

    // Unbonding all of it leaves the set two blocks later; the tokens come back after the
    // unbonding period, not before.
    let out = run_block(&mut state, 4, &[unbond(tenant, 1, 4 * POWER_UNIT)]).unwrap();
    assert_eq!(out.receipts[0].code, ReceiptCode::Ok, "{}", out.receipts[0].log);
    check_state(&state).unwrap();
    run_block(&mut state, 5, &[]).unwrap();
    assert!(!keys_of(&set_at(&state, 6)).contains(&key));
    for h in 6..9 {
        run_block(&mut state, h, &[]).unwrap();
    }
    let mid = query::balance(&state, &tenant.address(), &ugrid()).unwrap();
    assert_eq!(mid, before - 4 * POWER_UNIT - 2 * FEE, "still unbonding");
    let out = run_block(&mut state, 9, &[]).unwrap();
    assert!(out.begin_events.iter().any(|e| matches!(e, Event::UnbondingCompleted { .. })));
    let after = query::balance(&state, &tenant.address(), &ugrid()).unwrap();
    assert_eq!(after, before - 2 * FEE);
    check_state(&state).unwrap();
}

#[test]
fn only_the_top_stakes_are_active() {
    let (actors, mut state) = setup();
    // max_validators is 3: a fourth, bigger stake pushes out the smallest genesis validator.
    let txs = [
        bond(&actors.tenants[0], 0, consensus_key(7).public_key(), 5 * POWER_UNIT),
        bond(&actors.tenants[1], 0, consensus_key(8).public_key(), 6 * POWER_UNIT),
    ];
    let out = run_block(&mut state, 1, &txs).unwrap();
    assert!(out.receipts.iter().all(|r| r.code == ReceiptCode::Ok));
    let set = set_at(&state, 3);
    assert_eq!(set.members.len(), 3);
    assert!(!keys_of(&set).contains(&consensus_key(1).public_key()), "smallest stake out");
    assert_eq!(set.total_power(), 3 + 5 + 6);
    check_state(&state).unwrap();
}

fn identity() -> PublicKey {
    let mut k = [0u8; 32];
    k[0] = 1;
    PublicKey(k)
}

#[test]
fn refusals_keep_the_set_safe() {
    let (actors, mut state) = setup();
    let t = &actors.tenants;
    let txs = [
        // Someone else's consensus key.
        bond(&t[0], 0, consensus_key(0).public_key(), 2 * POWER_UNIT),
        // A new validator below the minimum bond.
        bond(&t[1], 0, consensus_key(9).public_key(), POWER_UNIT / 2),
        // A key of small order (the identity point), which any signature would match.
        bond(&t[2], 0, identity(), 2 * POWER_UNIT),
    ];
    let out = run_block(&mut state, 1, &txs).unwrap();
    let codes: Vec<_> = out.receipts.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [ReceiptCode::AlreadyExists, ReceiptCode::DepositTooLow, ReceiptCode::InvalidRequest]
    );
    // Unbonding more than bonded, and unbonding without a bond.
    let v0 = consensus_key(0);
    let out =
        run_block(&mut state, 2, &[unbond(&v0, 0, 4 * POWER_UNIT), unbond(&t[0], 1, 1)]).unwrap();
    let codes: Vec<_> = out.receipts.iter().map(|r| r.code).collect();
    assert_eq!(codes, [ReceiptCode::InsufficientFunds, ReceiptCode::NotFound]);
    // The validators cannot all leave: the last unbond that would empty the set fails.
    let v1 = consensus_key(1);
    let out =
        run_block(&mut state, 3, &[unbond(&v0, 1, 3 * POWER_UNIT), unbond(&v1, 0, 2 * POWER_UNIT)])
            .unwrap();
    let codes: Vec<_> = out.receipts.iter().map(|r| r.code).collect();
    assert_eq!(codes, [ReceiptCode::Ok, ReceiptCode::InvalidState]);
    assert_eq!(keys_of(&set_at(&state, 10)), vec![v1.public_key()]);
    check_state(&state).unwrap();
}

fn run_with_evidence(
    state: &mut MemState,
    height: u64,
    txs: &[gridlease_types::Tx],
    verified: &[&[u8]],
) -> gridlease_ledger::BlockOutput {
    use sha2::Digest;
    let checked: Vec<_> = txs.iter().cloned().map(gridlease_types::Tx::check).collect();
    let ctx = gridlease_ledger::BlockContext {
        chain_id: gridlease_sim::CHAIN_ID.into(),
        height,
        time_ms: 1_700_000_000_000 + height * 1000,
        verified_evidence: verified.iter().map(|e| sha2::Sha256::digest(e).into()).collect(),
    };
    let out = gridlease_ledger::execute(state, &ctx, &checked).unwrap();
    state.apply(&out.changes);
    out
}

/// Evidence the node verified slashes the offender once and removes it from the set for
/// good; evidence it did not verify, or too old, changes nothing but the reporter's fee.
#[test]
fn verified_double_sign_evidence_slashes_once() {
    let (actors, mut state) = setup();
    // A third validator, so the set survives losing one.
    let out = run_block(
        &mut state,
        1,
        &[bond(&actors.tenants[0], 0, consensus_key(7).public_key(), 2 * POWER_UNIT)],
    )
    .unwrap();
    assert_eq!(out.receipts[0].code, ReceiptCode::Ok);
    let reporter = &actors.tenants[1];
    let offender = consensus_key(0).public_key();
    let evidence =
        |h: u64| Msg::SubmitEvidence { offender, height: h, evidence: b"two votes".to_vec() };
    let pool = |s: &MemState| query::pool(s, &ugrid()).unwrap();
    let pool_before = pool(&state);

    // Not verified by the node: refused.
    let out = run_with_evidence(&mut state, 2, &[sign(reporter, 0, FEE, vec![evidence(2)])], &[]);
    assert_eq!(out.receipts[0].code, ReceiptCode::InvalidRequest);
    // Verified: 5% of 3 GRID goes to the community pool and the validator leaves the set.
    let out = run_with_evidence(
        &mut state,
        3,
        &[sign(reporter, 1, FEE, vec![evidence(2)])],
        &[b"two votes"],
    );
    assert_eq!(out.receipts[0].code, ReceiptCode::Ok, "{}", out.receipts[0].log);
    assert!(out.receipts[0].events.iter().any(|e| matches!(e,
        Event::ValidatorSlashed { height: 2, slashed, .. } if slashed.amount == 3 * POWER_UNIT / 20)));
    let v = query::validator(&state, &consensus_key(0).address()).unwrap().unwrap();
    assert!(v.jailed);
    assert_eq!(v.bonded.amount, 3 * POWER_UNIT - 3 * POWER_UNIT / 20);
    assert!(!keys_of(&set_at(&state, 5)).contains(&offender));
    assert!(pool(&state).0 > pool_before.0);
    check_state(&state).unwrap();
    // Once only.
    let out = run_with_evidence(
        &mut state,
        4,
        &[sign(reporter, 2, FEE, vec![evidence(3)])],
        &[b"two votes"],
    );
    assert_eq!(out.receipts[0].code, ReceiptCode::AlreadyExists);
    // Bonding more does not bring a jailed validator back.
    let out =
        run_block(&mut state, 5, &[bond(&consensus_key(0), 0, offender, POWER_UNIT / 2)]).unwrap();
    assert_eq!(out.receipts[0].code, ReceiptCode::Ok);
    assert!(!keys_of(&set_at(&state, 8)).contains(&offender));
    check_state(&state).unwrap();
}
