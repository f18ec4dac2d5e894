//! Scenario tests of the market and escrow rules, block by block.

use gridlease_ledger::state::*;
use gridlease_ledger::{Event, ReceiptCode, query};
use gridlease_sim::{Actors, World, offer_for, ugrid};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::*;

fn new_world() -> World {
    World::new(Actors::new(2, 4, 1), |_| {})
}

fn order_of(w: &World, id: &OrderId) -> Order {
    query::order(&w.state, id).unwrap().unwrap()
}

/// A one-unit group at `price` whole ugrid per block, any GPU.
fn spec(price: u128) -> GroupSpec {
    gridlease_sim::one_gpu_group(
        "g",
        DecCoin { denom: ugrid(), amount: DecAmount(price * DEC_ONE) },
    )
}

fn bid(order: OrderId, price_atto: u128) -> Msg {
    Msg::CreateBid {
        order,
        price: DecCoin { denom: ugrid(), amount: DecAmount(price_atto) },
        offer: offer_for(&spec(1), ("h100", "80Gi", "sxm")),
        deposit: Coin::new(5_000, &ugrid()),
    }
}

fn deploy(w: &mut World, dseq: u64, price: u128, deposit: u128) -> OrderId {
    let t = w.actors.tenants[0].clone();
    let msg = Msg::CreateDeployment {
        dseq,
        groups: vec![spec(price)],
        manifest_hash: [1; 32],
        deposit: Coin::new(deposit, &ugrid()),
    };
    w.ok(&t, vec![msg]);
    OrderId { owner: t.address(), dseq, gseq: 1, oseq: 1 }
}

#[test]
fn auction_closes_by_itself_lowest_price_then_earliest_wins_and_losers_are_refunded() {
    let mut w = new_world();
    let order = deploy(&mut w, 1, 10, 1_000_000);
    let opened = w.height;
    let p = w.actors.providers.clone();
    let before: Vec<u128> = p.iter().map(|k| w.balance(k)).collect();
    // Same block: p1 and p2 tie at 3; p1 comes first. p0 bids higher.
    let txs = vec![
        w.tx(&p[0], vec![bid(order, 5 * DEC_ONE)]),
        w.tx(&p[1], vec![bid(order, 3 * DEC_ONE)]),
        w.tx(&p[2], vec![bid(order, 3 * DEC_ONE)]),
    ];
    assert!(w.block(txs).iter().all(|r| r.code == ReceiptCode::Ok));
    // Still open until the window ends (bid_window = 3 blocks after opening).
    while w.height + 1 < opened + 3 {
        w.empty(1);
        assert!(matches!(order_of(&w, &order).state, OrderState::Open { .. }));
    }
    w.empty(1);
    assert_eq!(order_of(&w, &order).state, OrderState::Matched { provider: p[1].address() });
    let lease = query::leases(&w.state).unwrap().pop().unwrap();
    assert_eq!(lease.id.provider, p[1].address());
    assert_eq!(lease.price.amount, DecAmount(3 * DEC_ONE));
    // Losers got their deposit back: only the fee is gone.
    assert_eq!(w.balance(&p[0]), before[0] - 100);
    assert_eq!(w.balance(&p[2]), before[2] - 100);
    // The winner's deposit stays held while the lease runs.
    assert_eq!(w.balance(&p[1]), before[1] - 100 - 5_000);
    let lost = query::bids(&w.state)
        .unwrap()
        .into_iter()
        .filter(|b| matches!(b.state, BidState::Closed { reason: CloseReason::AuctionLost, .. }))
        .count();
    assert_eq!(lost, 2);
}

#[test]
fn an_order_without_bids_says_why_and_the_next_bid_restarts_the_window() {
    let mut w = new_world();
    let order = deploy(&mut w, 1, 10, 1_000_000);
    w.empty(2);
    assert!(matches!(
        order_of(&w, &order).state,
        OrderState::Open { closes_at: Some(_), stalled: None }
    ));
    w.empty(1);
    assert_eq!(
        order_of(&w, &order).state,
        OrderState::Open { closes_at: None, stalled: Some(NoBidReason::NoBids) }
    );
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::OrderStalled { reason: NoBidReason::NoBids, .. }))
    );
    let p = w.actors.providers[0].clone();
    w.ok(&p, vec![bid(order, DEC_ONE)]);
    let restarted = w.height + 3;
    assert_eq!(
        order_of(&w, &order).state,
        OrderState::Open { closes_at: Some(restarted), stalled: None }
    );
    while w.height < restarted {
        w.empty(1);
    }
    assert_eq!(order_of(&w, &order).state, OrderState::Matched { provider: p.address() });
}

#[test]
fn escrow_pays_by_the_block_goes_overdrawn_then_closes_after_grace() {
    let mut w = new_world();
    // 10,000 ugrid deposit at 1,000 ugrid per block: ten blocks of lease.
    let order = deploy(&mut w, 1, 1_000, 10_000);
    let p = w.actors.providers[0].clone();
    let t = w.actors.tenants[0].clone();
    w.ok(&p, vec![bid(order, 1_000 * DEC_ONE)]);
    w.ok(&t, vec![Msg::AcceptBid { bid: BidId { order, provider: p.address() } }]);
    let leased_at = w.height;
    let lease = BidId { order, provider: p.address() };
    w.empty(4);
    let before = w.balance(&p);
    w.ok(&p, vec![Msg::WithdrawLease { lease }]);
    // 5 blocks paid (4 empty + the withdrawal's own block), 2% to the community pool.
    let earned = 5 * 1_000;
    assert_eq!(w.balance(&p), before - 100 + earned - earned * 2 / 100);
    // Runs dry at height leased_at + 10 + 1, then the grace period (4 blocks) ends it.
    while w.height < leased_at + 11 {
        w.empty(1);
    }
    let acc = query::escrow(&w.state, &order.deployment()).unwrap().unwrap();
    assert!(matches!(acc.state, EscrowState::Overdrawn { .. }), "{acc:?}");
    assert!(acc.balance.is_zero());
    w.empty(4);
    let dep = query::deployment(&w.state, &order.deployment()).unwrap().unwrap();
    assert_eq!(
        dep.state,
        DeploymentState::Closed { reason: CloseReason::InsufficientFunds, at: w.height }
    );
    let l = query::leases(&w.state).unwrap().pop().unwrap();
    assert!(matches!(l.state, LeaseState::Closed { reason: CloseReason::InsufficientFunds, .. }));
    // The provider was paid for exactly the ten funded blocks, less the take.
    let total_paid: u128 = query::payments(&w.state).unwrap().iter().map(|p| p.withdrawn.0).sum();
    assert_eq!(total_paid, 10_000 * DEC_ONE);
}

#[test]
fn a_deposit_during_grace_resumes_payment() {
    let mut w = new_world();
    let order = deploy(&mut w, 1, 1_000, 10_000);
    let p = w.actors.providers[0].clone();
    let t = w.actors.tenants[0].clone();
    w.ok(&p, vec![bid(order, 1_000 * DEC_ONE)]);
    w.ok(&t, vec![Msg::AcceptBid { bid: BidId { order, provider: p.address() } }]);
    w.empty(12);
    let acc = query::escrow(&w.state, &order.deployment()).unwrap().unwrap();
    assert!(matches!(acc.state, EscrowState::Overdrawn { .. }));
    w.ok(&t, vec![Msg::DepositDeployment { dseq: 1, amount: Coin::new(50_000, &ugrid()) }]);
    let acc = query::escrow(&w.state, &order.deployment()).unwrap().unwrap();
    assert_eq!(acc.state, EscrowState::Open);
    w.empty(10);
    let dep = query::deployment(&w.state, &order.deployment()).unwrap().unwrap();
    assert_eq!(dep.state, DeploymentState::Active);
}

#[test]
fn provider_close_reauctions_the_group_and_tenant_close_refunds_the_rest() {
    let mut w = new_world();
    let order = deploy(&mut w, 1, 10, 1_000_000);
    let p = w.actors.providers.clone();
    let t = w.actors.tenants[0].clone();
    w.ok(&p[0], vec![bid(order, DEC_ONE)]);
    w.ok(&t, vec![Msg::AcceptBid { bid: BidId { order, provider: p[0].address() } }]);
    w.ok(&p[0], vec![Msg::CloseLease { lease: BidId { order, provider: p[0].address() } }]);
    let next = OrderId { oseq: 2, ..order };
    assert!(matches!(order_of(&w, &next).state, OrderState::Open { .. }));
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, Event::LeaseClosed { reason: CloseReason::ProviderClosed, .. }))
    );
    w.ok(&p[1], vec![bid(next, 2 * DEC_ONE)]);
    w.ok(&t, vec![Msg::AcceptBid { bid: BidId { order: next, provider: p[1].address() } }]);
    let tenant_before = w.balance(&t);
    w.ok(&t, vec![Msg::CloseDeployment { dseq: 1 }]);
    let refund = w.events.iter().find_map(|e| match e {
        Event::EscrowRefunded { amount, .. } => Some(amount.amount),
        _ => None,
    });
    let refund = refund.expect("closing refunds the escrow");
    assert_eq!(w.balance(&t), tenant_before - 100 + refund);
    let leases = query::leases(&w.state).unwrap();
    assert!(leases.iter().all(|l| matches!(l.state, LeaseState::Closed { .. })));
    assert!(leases.iter().any(|l| matches!(
        l.state,
        LeaseState::Closed { reason: CloseReason::DeploymentClosed, .. }
    )));
}
