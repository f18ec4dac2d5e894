//! Attacks on the ledger by a participant who pays only fees, each played against the real
//! state machine (SECURITY.md lists them with what each proves).

use gridlease_ledger::state::*;
use gridlease_ledger::{BeginBlockItem, Event, ReceiptCode, keyspace, query};
use gridlease_sim::{Actors, World, offer_for, ugrid};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::*;

/// A one-unit group at `price` (in 10^-18 units) per block, one GPU of any model.
fn spec(name: &str, price: u128) -> GroupSpec {
    gridlease_sim::one_gpu_group(name, DecCoin { denom: ugrid(), amount: DecAmount(price) })
}

fn bid(order: OrderId, price: u128) -> Msg {
    Msg::CreateBid {
        order,
        price: DecCoin { denom: ugrid(), amount: DecAmount(price) },
        offer: offer_for(&spec("g", 1), ("h100", "80Gi", "sxm")),
        deposit: Coin::new(5_000, &ugrid()),
    }
}

fn deploy(w: &mut World, tenant: &Keypair, dseq: u64, groups: Vec<GroupSpec>) -> DeploymentId {
    let msg = Msg::CreateDeployment {
        dseq,
        groups,
        manifest_hash: [1; 32],
        deposit: Coin::new(1_000_000, &ugrid()),
    };
    w.ok(tenant, vec![msg]);
    DeploymentId { owner: tenant.address(), dseq }
}

fn lease_created(w: &World, order: OrderId) -> bool {
    w.events.iter().any(|e| matches!(e, Event::LeaseCreated { id, .. } if id.order == order))
}

/// Item 1: two groups priced at 0.6 × the largest amount each pass the per-group check, and
/// starting both leases in one block overflowed the escrow's rate, which failed begin-block
/// and rolled back all of it, in every later block. Now the sum is refused when the
/// deployment is created, and a begin-block item that fails anyway is dropped on its own.
#[test]
fn attack_escrow_rate_overflow_does_not_halt_begin_block() {
    let mut w = World::new(Actors::new(3, 3, 0), |_| {});
    let a = w.actors.clone();
    let huge = u128::MAX / 10 * 6;

    // The attack as a transaction: refused with a receipt code, nothing created.
    let r = w.run(
        &a.tenants[0],
        vec![Msg::CreateDeployment {
            dseq: 1,
            groups: vec![spec("a", huge), spec("b", huge)],
            manifest_hash: [1; 32],
            deposit: Coin::new(1_000_000, &ugrid()),
        }],
    );
    assert_eq!(r.code, ReceiptCode::Overflow, "{}", r.log);
    assert!(r.log.contains("sum of the groups' maximum prices"), "{}", r.log);
    let id = DeploymentId { owner: a.tenants[0].address(), dseq: 1 };
    assert!(query::deployment(&w.state, &id).unwrap().is_none());

    // The same state built behind the ledger's back (two bids at 0.6 × max on one
    // deployment), next to an honest deployment whose auction closes in the same block.
    let attacker = deploy(&mut w, &a.tenants[0], 2, vec![spec("a", DEC_ONE), spec("b", DEC_ONE)]);
    let honest = deploy(&mut w, &a.tenants[1], 3, vec![spec("g", 10 * DEC_ONE)]);
    let (o1, o2, oh) =
        (attacker.group(1).order(1), attacker.group(2).order(1), honest.group(1).order(1));
    let txs = vec![
        w.tx(&a.providers[0], vec![bid(o1, DEC_ONE)]),
        w.tx(&a.providers[1], vec![bid(o2, DEC_ONE)]),
        w.tx(&a.providers[2], vec![bid(oh, 5 * DEC_ONE)]),
    ];
    assert!(w.block(txs).iter().all(|r| r.code == ReceiptCode::Ok));
    for (order, p) in [(o1, &a.providers[0]), (o2, &a.providers[1])] {
        let key = keyspace::bid(&BidId { order, provider: p.address() });
        let mut b: Bid = w.load(&key).unwrap();
        b.price.amount = DecAmount(huge);
        w.force(key, &b);
    }
    let mut honest_leased = false;
    let mut failed = Vec::new();
    for _ in 0..4 {
        w.block(vec![]);
        honest_leased |= lease_created(&w, oh);
        failed.extend(w.events.iter().filter_map(|e| match e {
            Event::BeginBlockItemFailed { item, code, .. } => Some((item.clone(), *code)),
            _ => None,
        }));
    }
    assert!(honest_leased, "the honest auction did not close next to the failing one");
    assert_eq!(failed, vec![(BeginBlockItem::Auction { id: o2 }, ReceiptCode::Overflow)]);
    let stalled = query::order(&w.state, &o2).unwrap().unwrap();
    assert_eq!(
        stalled.state,
        OrderState::Open { closes_at: None, stalled: Some(NoBidReason::AuctionFailed) }
    );

    // Later blocks go on: a new deployment's auction closes, and the attacker's escrow runs
    // dry at once and closes after its grace period.
    let later = deploy(&mut w, &a.tenants[2], 4, vec![spec("g", 10 * DEC_ONE)]);
    let ol = later.group(1).order(1);
    let t = w.tx(&a.providers[2], vec![bid(ol, 5 * DEC_ONE)]);
    w.block(vec![t]);
    let mut later_leased = false;
    for _ in 0..8 {
        w.block(vec![]);
        later_leased |= lease_created(&w, ol);
    }
    assert!(later_leased, "an auction after the failure did not close");
    let dep = query::deployment(&w.state, &attacker).unwrap().unwrap();
    assert!(matches!(
        dep.state,
        DeploymentState::Closed { reason: CloseReason::InsufficientFunds, .. }
    ));
}

/// Item 4: 100 throwaway providers bid and withdraw on one order. Before, the bid counter only
/// grew and a withdrawal refunded everything, so the order refused every later bid. Now only
/// open bids count, and each withdrawal keeps part of the deposit.
#[test]
fn attack_bid_withdraw_churn_cannot_block_an_order() {
    let mut w = World::new(Actors::new(1, 101, 0), |g| g.params.max_bids_per_order = 100);
    let a = w.actors.clone();
    let dep = deploy(&mut w, &a.tenants[0], 1, vec![spec("g", 10 * DEC_ONE)]);
    let order = dep.group(1).order(1);
    let churners = &a.providers[..100];
    let before: Vec<u128> = churners.iter().map(|p| w.balance(p)).collect();
    let txs = churners
        .iter()
        .map(|p| w.tx(p, vec![bid(order, DEC_ONE), Msg::CloseBid { order }]))
        .collect();
    assert!(w.block(txs).iter().all(|r| r.code == ReceiptCode::Ok));
    // Each churner paid the fee and 10% of the 5,000 deposit (the devnet penalty).
    for (p, b) in churners.iter().zip(before) {
        assert_eq!(b - w.balance(p), 100 + 500);
    }
    assert_eq!(query::order(&w.state, &order).unwrap().unwrap().bids, 0);
    let honest = &a.providers[100];
    let r = w.run(honest, vec![bid(order, 3 * DEC_ONE)]);
    assert_eq!(r.code, ReceiptCode::Ok, "{}", r.log);
    let mut won = false;
    for _ in 0..4 {
        w.block(vec![]);
        won |= lease_created(&w, order);
    }
    assert!(won, "the honest bid did not win");
    let lease: Option<Lease> =
        w.load(&keyspace::lease(&BidId { order, provider: honest.address() }));
    assert!(matches!(lease, Some(l) if l.state == LeaseState::Active));
}

/// Item 4: an order whose bids were all withdrawn stalls; its tenant reopens it and the group
/// gets a fresh order that a new bid wins. Nobody else may reopen it.
#[test]
fn attack_stalled_order_can_be_reopened() {
    let mut w = World::new(Actors::new(2, 2, 0), |_| {});
    let a = w.actors.clone();
    let dep = deploy(&mut w, &a.tenants[0], 1, vec![spec("g", 10 * DEC_ONE)]);
    let order = dep.group(1).order(1);
    w.ok(&a.providers[0], vec![bid(order, DEC_ONE)]);
    w.ok(&a.providers[0], vec![Msg::CloseBid { order }]);
    w.empty(3);
    let o = query::order(&w.state, &order).unwrap().unwrap();
    assert!(matches!(
        o.state,
        OrderState::Open { stalled: Some(NoBidReason::AllBidsWithdrawn), .. }
    ));
    let r = w.run(&a.tenants[1], vec![Msg::ReopenOrder { order }]);
    assert_eq!(r.code, ReceiptCode::Unauthorized);
    w.ok(&a.tenants[0], vec![Msg::ReopenOrder { order }]);
    let o = query::order(&w.state, &order).unwrap().unwrap();
    assert_eq!(o.state, OrderState::Closed { reason: CloseReason::Reopened, at: w.height });
    let fresh = dep.group(1).order(2);
    w.ok(&a.providers[1], vec![bid(fresh, 2 * DEC_ONE)]);
    let mut won = false;
    for _ in 0..4 {
        w.block(vec![]);
        won |= lease_created(&w, fresh);
    }
    assert!(won, "the reopened order found no winner");
    // An order whose auction still runs cannot be reopened.
    let dep2 = deploy(&mut w, &a.tenants[0], 2, vec![spec("g", 10 * DEC_ONE)]);
    let r = w.run(&a.tenants[0], vec![Msg::ReopenOrder { order: dep2.group(1).order(1) }]);
    assert_eq!(r.code, ReceiptCode::InvalidState);
}

/// Item 10: a provider that bids on its own deployment could lease to itself at any price.
#[test]
fn attack_provider_bids_on_own_deployment_is_refused() {
    let mut w = World::new(Actors::new(0, 1, 0), |_| {});
    let p = w.actors.providers[0].clone();
    let dep = deploy(&mut w, &p, 1, vec![spec("g", 10 * DEC_ONE)]);
    let r = w.run(&p, vec![bid(dep.group(1).order(1), DEC_ONE)]);
    assert_eq!(r.code, ReceiptCode::Unauthorized);
    assert!(r.log.contains("own deployment"), "{}", r.log);
}

fn certificate(n: u32) -> Msg {
    Msg::CreateCertificate {
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n")
            .into_bytes(),
        pubkey_pem: b"-----BEGIN PUBLIC KEY-----\nk\n-----END PUBLIC KEY-----\n".to_vec(),
    }
}

/// Item 10: one account registering certificates without end grew every node's state and
/// every provider's trust lookups. Now an account holds at most `max_certs_per_owner`;
/// revoking one makes room (the oldest revoked record is dropped).
#[test]
fn attack_certificate_flood_is_capped() {
    let mut w = World::new(Actors::new(1, 0, 0), |_| {});
    let t = w.actors.tenants[0].clone();
    for n in 0..16 {
        w.ok(&t, vec![certificate(n)]);
    }
    let r = w.run(&t, vec![certificate(16)]);
    assert_eq!(r.code, ReceiptCode::TooManyCertificates, "{}", r.log);
    let serial = |n: u32| -> [u8; 32] {
        use sha2::Digest;
        let Msg::CreateCertificate { cert_pem, .. } = certificate(n) else { unreachable!() };
        sha2::Sha256::digest(cert_pem).into()
    };
    w.ok(&t, vec![Msg::RevokeCertificate { serial: serial(3) }]);
    w.ok(&t, vec![certificate(16)]);
    assert!(w.load::<Certificate>(&keyspace::cert(&t.address(), &serial(3))).is_none());
    let held = query::list_prefix::<Certificate>(&w.state, &keyspace::certs_of(&t.address()));
    assert_eq!(held.unwrap().len(), 16);
}

/// Item 10: anybody could write audit records on any provider, without bound. Now only the
/// genesis's registered auditors sign attributes.
#[test]
fn attack_unregistered_auditor_cannot_sign_attributes() {
    let mut w = World::new(Actors::new(1, 1, 1), |_| {});
    let a = w.actors.clone();
    let sign = |p: &Keypair| Msg::SignProviderAttributes {
        provider: p.address(),
        attributes: vec![Attribute::new("tier", "platinum")],
    };
    let r = w.run(&a.tenants[0], vec![sign(&a.providers[0])]);
    assert_eq!(r.code, ReceiptCode::Unauthorized, "{}", r.log);
    let key = keyspace::audit(&a.providers[0].address(), &a.tenants[0].address());
    assert!(w.load::<AuditRecord>(&key).is_none());
    w.ok(&a.auditors[0], vec![sign(&a.providers[0])]);
}

/// Item 10: one flat fee covered a transaction of 64 messages and 64 KiB, so the biggest
/// transactions cost the same as a one-message send. Now a transaction pays the minimum fee
/// or its size per message and per byte, whichever is more.
#[test]
fn attack_big_transaction_pays_per_message_and_byte() {
    let mut w = World::new(Actors::new(2, 0, 0), |g| {
        g.params.fee_per_msg = 50;
        g.params.fee_per_byte = 1;
    });
    let a = w.actors.clone();
    let params = query::params(&w.state).unwrap().unwrap();
    let to = a.tenants[1].address();
    let sends = vec![Msg::Send { to, amount: Coin::new(1, &ugrid()) }; 64];
    let seq = w.sequence(&a.tenants[0]);
    let cheap = gridlease_sim::sign(&a.tenants[0], seq, params.min_fee, sends.clone());
    let len = cheap.to_bytes().len();
    let required = params.required_fee(64, len);
    assert!(required >= 64 * 50 + len as u128 && required > params.min_fee);
    let before = w.balance(&a.tenants[0]);
    let r = w.block(vec![cheap]).remove(0);
    assert_eq!(r.code, ReceiptCode::InsufficientFee, "{}", r.log);
    assert!(r.log.contains("64 messages"), "{}", r.log);
    assert_eq!(w.balance(&a.tenants[0]), before, "a refused fee charges nothing");
    let paid = gridlease_sim::sign(&a.tenants[0], seq, required, sends);
    assert_eq!(paid.to_bytes().len(), len, "the fee's width does not depend on its value");
    let r = w.block(vec![paid]).remove(0);
    assert_eq!(r.code, ReceiptCode::Ok, "{}", r.log);
    assert_eq!(before - w.balance(&a.tenants[0]), required + 64);
    // A one-message send still pays just the minimum.
    assert_eq!(params.required_fee(1, 200), params.min_fee.max(50 + 200));
}
