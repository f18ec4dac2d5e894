//! Health on chain: the monitors a tenant names, a lease that pays only while up, and the
//! failover of a lease that stays down (SLA penalty, re-auction without the provider).

use gridlease_ledger::state::*;
use gridlease_ledger::{Event, Receipt, ReceiptCode, query};
use gridlease_sim::{Actors, World, offer_for, ugrid};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::msg::{HealthReport, MAX_HEALTH_REPORTS};
use gridlease_types::*;

const PRICE: u128 = 1_000;
const BID_DEPOSIT: u128 = 5_000;

fn spec() -> GroupSpec {
    gridlease_sim::one_gpu_group(
        "g",
        DecCoin { denom: ugrid(), amount: DecAmount(10 * PRICE * DEC_ONE) },
    )
}

fn bid(order: OrderId) -> Msg {
    Msg::CreateBid {
        order,
        price: DecCoin { denom: ugrid(), amount: DecAmount(PRICE * DEC_ONE) },
        offer: offer_for(&spec(), ("h100", "80Gi", "sxm")),
        deposit: Coin::new(BID_DEPOSIT, &ugrid()),
    }
}

/// A world with 1 tenant, 3 providers and 3 monitors (the `auditors` of `Actors`, funded and
/// otherwise unused), and a deployment leased to provider 0.
fn leased() -> (World, BidId) {
    let mut w = World::new(Actors::new(1, 3, 3), |_| {});
    let t = w.actors.tenants[0].clone();
    let msg = Msg::CreateDeployment {
        dseq: 1,
        groups: vec![spec()],
        manifest_hash: [1; 32],
        deposit: Coin::new(1_000_000, &ugrid()),
    };
    w.ok(&t, vec![msg]);
    let order = OrderId { owner: t.address(), dseq: 1, gseq: 1, oseq: 1 };
    let p0 = w.actors.providers[0].clone();
    w.ok(&p0, vec![bid(order)]);
    let lease = BidId { order, provider: p0.address() };
    w.ok(&t, vec![Msg::AcceptBid { bid: lease }]);
    (w, lease)
}

fn monitors(w: &World, n: usize) -> Vec<Address> {
    w.actors.auditors[..n].iter().map(Keypair::address).collect()
}

fn report(w: &mut World, monitor: usize, lease: BidId, up: bool) -> Receipt {
    let m = w.actors.auditors[monitor].clone();
    w.run(&m, vec![Msg::ReportHealth { reports: vec![HealthReport { lease, up }] }])
}

/// A receipt's events less the fee.
fn events(r: &Receipt) -> Vec<Event> {
    r.events.iter().filter(|e| !matches!(e, Event::FeePaid { .. })).cloned().collect()
}

fn payment(w: &World, lease: &BidId) -> Payment {
    query::payments(&w.state).unwrap().into_iter().find(|p| p.lease == *lease).expect("payment")
}

fn lease_state(w: &World, lease: &BidId) -> LeaseState {
    query::lease(&w.state, lease).unwrap().unwrap().state
}

#[test]
fn a_down_lease_pays_nothing_and_the_tenant_keeps_it_to_the_unit() {
    let (mut w, lease) = leased();
    let t = w.actors.tenants[0].clone();
    let created = query::lease(&w.state, &lease).unwrap().unwrap().created_at;
    w.ok(&t, vec![Msg::SetMonitors { dseq: 1, monitors: monitors(&w, 1) }]);
    w.empty(3);
    let r = report(&mut w, 0, lease, false);
    assert_eq!(r.code, ReceiptCode::Ok, "{}", r.log);
    let down_at = w.height;
    let failover_at = down_at + 6;
    assert!(r.events.contains(&Event::LeaseDown { id: lease, failover_at }), "{:?}", r.events);
    assert_eq!(payment(&w, &lease).state, PaymentState::Paused { since: down_at });
    // Down for 4 blocks (less than the 6-block grace): the lease stays.
    w.empty(3);
    let r = report(&mut w, 0, lease, true);
    let up_at = w.height;
    assert!(r.events.contains(&Event::LeaseUp { id: lease, down_blocks: up_at - down_at }));
    assert_eq!(lease_state(&w, &lease), LeaseState::Active);
    // Still up past where the failover would have come: nothing happens.
    w.empty(8);
    assert_eq!(lease_state(&w, &lease), LeaseState::Active);
    w.ok(&t, vec![Msg::CloseLease { lease }]);
    let closed_at = w.height;
    let paid_blocks = (closed_at - created) - (up_at - down_at);
    let p = payment(&w, &lease);
    assert_eq!(p.withdrawn, DecAmount(u128::from(paid_blocks) * PRICE * DEC_ONE));
    let acc = query::escrow(&w.state, &lease.order.deployment()).unwrap().unwrap();
    assert_eq!(acc.transferred, p.withdrawn);
    let health = query::lease_health(&w.state, &lease).unwrap().unwrap();
    assert_eq!((health.down_since, health.down_blocks), (None, up_at - down_at));
    let uptime = query::provider_uptime(&w.state, &lease.provider).unwrap();
    assert_eq!(uptime.lease_blocks, closed_at - created);
    assert_eq!(uptime.down_blocks, up_at - down_at);
    assert_eq!((uptime.outages, uptime.failovers), (1, 0));
    let lease_blocks = closed_at - created;
    let want_ppm = (lease_blocks - (up_at - down_at)) * 1_000_000 / lease_blocks;
    assert_eq!(uptime.uptime_ppm(), want_ppm);
}

#[test]
fn a_majority_of_monitors_decides_and_a_lease_down_past_the_grace_fails_over() {
    let (mut w, lease) = leased();
    let t = w.actors.tenants[0].clone();
    w.ok(&t, vec![Msg::SetMonitors { dseq: 1, monitors: monitors(&w, 3) }]);
    // One monitor of three says down: still up, still paying.
    report(&mut w, 0, lease, false);
    assert_eq!(payment(&w, &lease).state, PaymentState::Open);
    // A second one: down.
    report(&mut w, 1, lease, false);
    let down_at = w.height;
    assert_eq!(payment(&w, &lease).state, PaymentState::Paused { since: down_at });
    let tenant_before = w.balance(&t);
    let p0 = w.actors.providers[0].clone();
    let provider_before = w.balance(&p0);
    while w.height < down_at + 5 {
        w.empty(1);
        assert_eq!(lease_state(&w, &lease), LeaseState::Active);
    }
    w.empty(1);
    assert_eq!(
        lease_state(&w, &lease),
        LeaseState::Closed { reason: CloseReason::Unhealthy, at: down_at + 6 }
    );
    let penalty = BID_DEPOSIT / 10;
    assert!(
        w.events.contains(&Event::SlaPenalty { lease, to_tenant: Coin::new(penalty, &ugrid()) })
    );
    assert_eq!(w.balance(&t), tenant_before + penalty);
    // The provider got the rest of its deposit and what the lease earned while up, never more.
    let earned = payment(&w, &lease).withdrawn.floor_units();
    let take = earned * 20_000 / 1_000_000;
    assert_eq!(w.balance(&p0), provider_before + (BID_DEPOSIT - penalty) + earned - take);
    let uptime = query::provider_uptime(&w.state, &p0.address()).unwrap();
    assert_eq!((uptime.outages, uptime.failovers, uptime.down_blocks), (1, 1, 6));
    // The group is back at auction, without provider 0.
    let order2 = OrderId { oseq: 2, ..lease.order };
    assert!(matches!(
        query::order(&w.state, &order2).unwrap().unwrap().state,
        OrderState::Open { .. }
    ));
    let until = down_at + 6 + 600;
    assert_eq!(
        query::excluded(&w.state, &order2.group()).unwrap(),
        vec![Exclusion { provider: p0.address(), until }]
    );
    let r = w.run(&p0, vec![bid(order2)]);
    assert_eq!(r.code, ReceiptCode::ProviderExcluded, "{}", r.log);
    let p1 = w.actors.providers[1].clone();
    w.ok(&p1, vec![bid(order2)]);
    w.empty(3);
    let lease2 = BidId { order: order2, provider: p1.address() };
    assert_eq!(lease_state(&w, &lease2), LeaseState::Active);
    // The new lease starts up; old monitors' votes on the old lease do not carry over.
    assert_eq!(payment(&w, &lease2).state, PaymentState::Open);

    // The exclusion ends (devnet: 600 blocks): when provider 1 fails over in turn, provider 0
    // may bid on the group again, and provider 1 may not.
    while w.height < until {
        w.empty(1);
    }
    report(&mut w, 0, lease2, false);
    report(&mut w, 1, lease2, false);
    w.empty(6);
    assert!(matches!(lease_state(&w, &lease2), LeaseState::Closed { .. }));
    let order3 = OrderId { oseq: 3, ..lease.order };
    let r = w.run(&p1, vec![bid(order3)]);
    assert_eq!(r.code, ReceiptCode::ProviderExcluded, "{}", r.log);
    w.ok(&p0, vec![bid(order3)]);
}

#[test]
fn reports_count_only_from_named_monitors_on_active_leases() {
    let (mut w, lease) = leased();
    let t = w.actors.tenants[0].clone();
    // No monitor named yet: a report is ignored, not refused.
    let r = report(&mut w, 0, lease, false);
    assert_eq!(r.code, ReceiptCode::Ok);
    assert!(matches!(&events(&r)[..], [Event::HealthReportIgnored { .. }]), "{:?}", r.events);
    assert_eq!(payment(&w, &lease).state, PaymentState::Open);
    w.ok(&t, vec![Msg::SetMonitors { dseq: 1, monitors: monitors(&w, 1) }]);
    // The provider cannot report itself down or up unless named.
    let p0 = w.actors.providers[0].clone();
    let r =
        w.run(&p0, vec![Msg::ReportHealth { reports: vec![HealthReport { lease, up: false }] }]);
    assert!(matches!(&events(&r)[..], [Event::HealthReportIgnored { .. }]), "{:?}", r.events);
    // A batch with a closed lease and a live one: the live one counts.
    let ghost = BidId { provider: w.actors.providers[2].address(), ..lease };
    let m = w.actors.auditors[0].clone();
    let both = vec![HealthReport { lease: ghost, up: false }, HealthReport { lease, up: false }];
    let r = w.run(&m, vec![Msg::ReportHealth { reports: both }]);
    assert_eq!(r.code, ReceiptCode::Ok);
    let ev = events(&r);
    assert!(matches!(ev[0], Event::HealthReportIgnored { lease: l, .. } if l == ghost), "{ev:?}");
    assert!(matches!(ev[1], Event::LeaseDown { id, .. } if id == lease), "{ev:?}");
    // Naming nobody brings the lease back up (health is no longer tracked).
    let r = w.run(&t, vec![Msg::SetMonitors { dseq: 1, monitors: vec![] }]);
    assert!(r.events.iter().any(|e| matches!(e, Event::LeaseUp { id, .. } if *id == lease)));
    assert_eq!(payment(&w, &lease).state, PaymentState::Open);

    // Refusals.
    let nine: Vec<Address> = (0..9u8).map(|i| Address([i + 1; 20])).collect();
    let r = w.run(&t, vec![Msg::SetMonitors { dseq: 1, monitors: nine }]);
    assert_eq!(r.code, ReceiptCode::InvalidRequest, "{}", r.log);
    let twice = vec![Address([1; 20]), Address([1; 20])];
    let r = w.run(&t, vec![Msg::SetMonitors { dseq: 1, monitors: twice }]);
    assert_eq!(r.code, ReceiptCode::InvalidRequest, "{}", r.log);
    let r = w.run(&p0, vec![Msg::SetMonitors { dseq: 1, monitors: vec![] }]);
    assert_eq!(r.code, ReceiptCode::NotFound, "not the owner: {}", r.log);
    let r = w.run(&m, vec![Msg::ReportHealth { reports: vec![] }]);
    assert_eq!(r.code, ReceiptCode::InvalidRequest);
    let many = vec![HealthReport { lease, up: true }; MAX_HEALTH_REPORTS + 1];
    let r = w.run(&m, vec![Msg::ReportHealth { reports: many }]);
    assert_eq!(r.code, ReceiptCode::InvalidRequest);
}

#[test]
fn closing_a_down_lease_drops_its_failover_and_counts_its_down_blocks() {
    let (mut w, lease) = leased();
    let t = w.actors.tenants[0].clone();
    w.ok(&t, vec![Msg::SetMonitors { dseq: 1, monitors: monitors(&w, 1) }]);
    report(&mut w, 0, lease, false);
    let down_at = w.height;
    w.empty(2);
    w.ok(&t, vec![Msg::CloseDeployment { dseq: 1 }]);
    let closed_at = w.height;
    // Past where the failover was due: nothing reopens.
    w.empty(8);
    assert!(matches!(
        lease_state(&w, &lease),
        LeaseState::Closed { reason: CloseReason::DeploymentClosed, .. }
    ));
    assert!(query::order(&w.state, &OrderId { oseq: 2, ..lease.order }).unwrap().is_none());
    let uptime = query::provider_uptime(&w.state, &lease.provider).unwrap();
    assert_eq!(uptime.down_blocks, closed_at - down_at);
    assert_eq!(uptime.failovers, 0);
}

/// A bid at `price` whole ugrid per block.
fn bid_at(order: OrderId, price: u128) -> Msg {
    Msg::CreateBid {
        order,
        price: DecCoin { denom: ugrid(), amount: DecAmount(price * DEC_ONE) },
        offer: offer_for(&spec(), ("h100", "80Gi", "sxm")),
        deposit: Coin::new(BID_DEPOSIT, &ugrid()),
    }
}

#[test]
fn replicas_land_on_distinct_providers_and_fail_over_to_a_third() {
    let mut w = World::new(Actors::new(1, 3, 1), |_| {});
    let t = w.actors.tenants[0].clone();
    let replica = |name: &str| GroupSpec { name: name.into(), distinct_providers: true, ..spec() };
    let msg = Msg::CreateDeployment {
        dseq: 7,
        groups: vec![replica("dc"), replica("dc-2")],
        manifest_hash: [7; 32],
        deposit: Coin::new(1_000_000, &ugrid()),
    };
    w.ok(&t, vec![msg]);
    let order = |gseq: u32, oseq: u32| OrderId { owner: t.address(), dseq: 7, gseq, oseq };
    let p = w.actors.providers.clone();
    // Provider 0 is the cheapest on both groups, provider 1 next, provider 2 the dearest.
    let mut txs = Vec::new();
    for (i, price) in [(0, 100), (1, 200), (2, 300)] {
        txs.push(w.tx(&p[i], vec![bid_at(order(1, 1), price), bid_at(order(2, 1), price)]));
    }
    assert!(w.block(txs).iter().all(|r| r.code == ReceiptCode::Ok));
    w.empty(3);
    let holder = |w: &World, gseq: u32| {
        let g = query::group(&w.state, &GroupId { owner: t.address(), dseq: 7, gseq })
            .unwrap()
            .unwrap();
        match g.state {
            GroupState::Leased { provider } => Some(provider),
            _ => None,
        }
    };
    assert_eq!(holder(&w, 1), Some(p[0].address()));
    assert_eq!(holder(&w, 2), Some(p[1].address()), "the cheapest already holds a replica");
    w.ok(&t, vec![Msg::SetMonitors { dseq: 7, monitors: vec![w.actors.auditors[0].address()] }]);
    // Replica 1 goes down and stays down: provider 0 is excluded, provider 1 holds replica 2,
    // so provider 2 takes it over.
    let lease1 = BidId { order: order(1, 1), provider: p[0].address() };
    report(&mut w, 0, lease1, false);
    w.empty(6);
    assert!(matches!(
        lease_state(&w, &lease1),
        LeaseState::Closed { reason: CloseReason::Unhealthy, .. }
    ));
    let r = w.run(&p[1], vec![bid_at(order(1, 2), 50)]);
    assert_eq!(r.code, ReceiptCode::ProviderExcluded, "holds replica 2: {}", r.log);
    w.ok(&p[2], vec![bid_at(order(1, 2), 300)]);
    w.empty(3);
    assert_eq!(holder(&w, 1), Some(p[2].address()));
    assert_eq!(holder(&w, 2), Some(p[1].address()));
}

#[test]
fn a_reliability_auction_weighs_price_by_uptime_and_the_events_say_why() {
    let mut w = World::new(Actors::new(1, 2, 0), |_| {});
    let t = w.actors.tenants[0].clone();
    let p = w.actors.providers.clone();
    // Provider 0 was down 10% of its leases' blocks, provider 1 0.1%: weighed with the prior
    // (10,000 blocks at 90%), 90.00% and 99.00%.
    let record = |down_blocks| ProviderUptime {
        lease_blocks: 100_000,
        down_blocks,
        outages: 9,
        failovers: 1,
    };
    w.force(gridlease_ledger::keyspace::provider_uptime(&p[0].address()), &record(10_000));
    w.force(gridlease_ledger::keyspace::provider_uptime(&p[1].address()), &record(100));
    assert_eq!(record(10_000).weighed_uptime_ppm(), 900_000);
    assert_eq!(record(100).weighed_uptime_ppm(), 990_000);
    assert_eq!(ProviderUptime::default().weighed_uptime_ppm(), 900_000, "no record: the prior");

    let mut winners = Vec::new();
    for (dseq, policy) in [(1, BidPolicy::Reliability), (2, BidPolicy::Price)] {
        let group = GroupSpec { bid_policy: policy, ..spec() };
        let msg = Msg::CreateDeployment {
            dseq,
            groups: vec![group],
            manifest_hash: [1; 32],
            deposit: Coin::new(1_000_000, &ugrid()),
        };
        w.ok(&t, vec![msg]);
        let order = OrderId { owner: t.address(), dseq, gseq: 1, oseq: 1 };
        // Provider 0 is 5% cheaper.
        let txs =
            vec![w.tx(&p[0], vec![bid_at(order, 100)]), w.tx(&p[1], vec![bid_at(order, 105)])];
        assert!(w.block(txs).iter().all(|r| r.code == ReceiptCode::Ok));
        let mut won = None;
        for _ in 0..6 {
            w.empty(1);
            won = won.or_else(|| {
                w.events.iter().find_map(|e| match e {
                    Event::AuctionWon { id, policy, uptime_ppm, bids, why, .. } => {
                        Some((*id, *policy, *uptime_ppm, *bids, why.clone()))
                    }
                    _ => None,
                })
            });
        }
        let (id, got_policy, uptime_ppm, bids, why) = won.expect("an auction_won event");
        assert_eq!((got_policy, bids), (policy, 2));
        assert_eq!(query::lease(&w.state, &id).unwrap().unwrap().state, LeaseState::Active);
        winners.push((id.provider, uptime_ppm, why));
    }
    // Weighed: 100 x (1 + 10 x 10%) = 200 against 105 x (1 + 10 x 1%) = 115.5.
    let (provider, uptime, why) = &winners[0];
    assert_eq!((*provider, *uptime), (p[1].address(), 990_000));
    assert!(why.contains("beat the lowest price") && why.contains("90.00% up"), "{why}");
    // By price alone the cheaper one wins.
    let (provider, _, why) = &winners[1];
    assert_eq!(*provider, p[0].address());
    assert_eq!(why, "lowest price among 2 bids");
}

#[test]
fn an_sla_period_down_past_its_allowance_moves_the_penalty_to_the_tenant_once() {
    let mut w = World::new(Actors::new(1, 1, 1), |_| {});
    let t = w.actors.tenants[0].clone();
    let p0 = w.actors.providers[0].clone();
    // Periods of 100 blocks allowing 5% (5 blocks) down; 20% of the deposit per breach. The
    // grace (6 blocks) is longer than the allowance, so short spells breach without failover.
    let sla = Sla { period_blocks: 100, allowed_down_ppm: 50_000, penalty_ppm: 200_000 };
    let msg = Msg::CreateDeployment {
        dseq: 1,
        groups: vec![GroupSpec { sla: Some(sla), ..spec() }],
        manifest_hash: [1; 32],
        deposit: Coin::new(1_000_000, &ugrid()),
    };
    w.ok(&t, vec![msg]);
    let order = OrderId { owner: t.address(), dseq: 1, gseq: 1, oseq: 1 };
    w.ok(&p0, vec![bid(order)]);
    let lease = BidId { order, provider: p0.address() };
    w.ok(&t, vec![Msg::AcceptBid { bid: lease }]);
    let created = query::lease(&w.state, &lease).unwrap().unwrap().created_at;
    w.ok(&t, vec![Msg::SetMonitors { dseq: 1, monitors: monitors(&w, 1) }]);
    let tenant_before = w.balance(&t);
    let breaches = |w: &World| -> Vec<Event> {
        w.events.iter().filter(|e| matches!(e, Event::SlaBreached { .. })).cloned().collect()
    };
    // Down 3 blocks, then 4 more in the same period: the second spell makes 7 > 5.
    report(&mut w, 0, lease, false);
    w.empty(2);
    let r = report(&mut w, 0, lease, true);
    assert!(!r.events.iter().any(|e| matches!(e, Event::SlaBreached { .. })));
    report(&mut w, 0, lease, false);
    w.empty(3);
    let r = report(&mut w, 0, lease, true);
    let penalty = BID_DEPOSIT / 5;
    assert!(
        r.events.contains(&Event::SlaBreached {
            lease,
            period: 0,
            down_blocks: 7,
            allowed_blocks: 5,
            to_tenant: Coin::new(penalty, &ugrid()),
        }),
        "{:?}",
        r.events
    );
    assert_eq!(w.balance(&t), tenant_before + penalty);
    // More downtime in the same period is no second breach.
    report(&mut w, 0, lease, false);
    w.empty(1);
    report(&mut w, 0, lease, true);
    assert!(breaches(&w).is_empty());
    assert_eq!(w.balance(&t), tenant_before + penalty);
    // The next period starts from nothing: 5 blocks down is within it.
    while w.height < created + 100 {
        w.empty(1);
    }
    report(&mut w, 0, lease, false);
    w.empty(4);
    let r = report(&mut w, 0, lease, true);
    assert!(!r.events.iter().any(|e| matches!(e, Event::SlaBreached { .. })), "{:?}", r.events);
    let health = query::lease_health(&w.state, &lease).unwrap().unwrap();
    assert_eq!((health.sla_period, health.sla_period_down, health.sla_breaches), (1, 5, 1));
    // A failover under an SLA: the spell it ends (6 blocks) breaches period 1 too, then the
    // failover costs the SLA's penalty again, each of what is left of the deposit.
    report(&mut w, 0, lease, false);
    let mut seen = Vec::new();
    for _ in 0..7 {
        w.empty(1);
        seen.extend(w.events.iter().cloned());
    }
    let left = BID_DEPOSIT - penalty;
    let second = left / 5;
    let third = (left - second) / 5;
    let moved: Vec<u128> = seen
        .iter()
        .filter_map(|e| match e {
            Event::SlaBreached { period: 1, to_tenant, .. } => Some(to_tenant.amount),
            Event::SlaPenalty { to_tenant, .. } => Some(to_tenant.amount),
            _ => None,
        })
        .collect();
    assert_eq!(moved, vec![second, third], "{seen:?}");
    assert!(matches!(
        lease_state(&w, &lease),
        LeaseState::Closed { reason: CloseReason::Unhealthy, .. }
    ));
}
