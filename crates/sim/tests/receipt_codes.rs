//! Every receipt error code, hit by a transaction built to fail, leaves the state untouched:
//! codes from the ante step change nothing at all; message failures only charge the fee and
//! advance the signer's sequence.

use gridlease_ledger::{MemState, Receipt, ReceiptCode, keyspace, query};
use gridlease_sim::{Actors, CHAIN_ID, offer_for, run_block, sign, ugrid, uusdc};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::msg::ProviderInfo;
use gridlease_types::*;

struct World {
    actors: Actors,
    state: MemState,
    height: u64,
}

impl World {
    fn seq(&self, k: &Keypair) -> u64 {
        query::account(&self.state, &k.address()).unwrap().map_or(0, |a| a.sequence)
    }

    fn tx(&self, k: &Keypair, msgs: Vec<Msg>) -> Tx {
        sign(k, self.seq(k), 100, msgs)
    }

    fn run(&mut self, txs: Vec<Tx>) -> Vec<Receipt> {
        self.height += 1;
        run_block(&mut self.state, self.height, &txs).unwrap().receipts
    }

    fn ok(&mut self, k: &Keypair, msgs: Vec<Msg>) {
        let tx = self.tx(k, msgs);
        let r = self.run(vec![tx]);
        assert_eq!(r[0].code, ReceiptCode::Ok, "setup failed: {}", r[0].log);
    }

    fn order(&self, owner: &Keypair, dseq: u64) -> OrderId {
        OrderId { owner: owner.address(), dseq, gseq: 1, oseq: 1 }
    }
}

fn group(region: Option<&str>, auditor: Option<Address>, model: &str) -> GroupSpec {
    let mut g =
        gridlease_sim::random_group(&mut rand::rngs::mock::StepRng::new(1, 1), "g", &ugrid(), &[]);
    g.resources.truncate(1);
    let u = &mut g.resources[0];
    u.count = 1;
    u.price = DecCoin { denom: ugrid(), amount: DecAmount(10 * DEC_ONE) };
    u.resources.gpu = GpuRequirement {
        units: 1,
        options: vec![GpuSpec {
            vendor: "nvidia".into(),
            model: Some(model.into()),
            ram: None,
            interface: None,
        }],
    };
    g.requirements = PlacementRequirements {
        attributes: region.map(|r| vec![Attribute::new("region", r)]).unwrap_or_default(),
        signed_by: SignedBy { all_of: vec![], any_of: auditor.into_iter().collect() },
    };
    g
}

fn bid(order: OrderId, spec: &GroupSpec, price: u128) -> Msg {
    Msg::CreateBid {
        order,
        price: DecCoin { denom: ugrid(), amount: DecAmount(price) },
        offer: offer_for(spec, ("a100", "80Gi", "sxm")),
        deposit: Coin::new(5_000, &ugrid()),
    }
}

fn certificate(n: u8) -> Msg {
    Msg::CreateCertificate {
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n")
            .into_bytes(),
        pubkey_pem: b"-----BEGIN PUBLIC KEY-----\nk\n-----END PUBLIC KEY-----\n".to_vec(),
    }
}

fn setup() -> (World, GroupSpec, GroupSpec) {
    let actors = Actors::new(2, 10, 1);
    // Auctions stay open through the whole test, so orders keep taking bids.
    let mut genesis = actors.genesis();
    genesis.params.bid_window = 10_000;
    genesis.params.max_certs_per_owner = 1;
    let state = genesis.mem_state();
    let mut w = World { actors, state, height: 0 };
    let a = w.actors.clone();
    for (i, p) in a.providers.iter().enumerate() {
        let msg = Msg::CreateProvider {
            host_uri: format!("https://p{i}.example"),
            attributes: a.provider_attributes(i),
            info: ProviderInfo::default(),
        };
        w.ok(p, vec![msg]);
    }
    // Provider 0 (eu-west) is audited; provider 3 (eu-west too) is not.
    w.ok(
        &a.auditors[0],
        vec![Msg::SignProviderAttributes {
            provider: a.providers[0].address(),
            attributes: a.provider_attributes(0),
        }],
    );
    let plain = group(None, None, "a100");
    let strict = group(Some("eu-west"), Some(a.auditors[0].address()), "a100");
    let t = &a.tenants[0];
    let deposit = Coin::new(1_000_000, &ugrid());
    for (dseq, spec) in [(1, &plain), (2, &strict), (4, &plain), (5, &plain), (6, &plain)] {
        w.ok(
            t,
            vec![Msg::CreateDeployment {
                dseq,
                groups: vec![spec.clone()],
                manifest_hash: [dseq as u8; 32],
                deposit: deposit.clone(),
            }],
        );
    }
    // Deployment 1 gets a lease from provider 1; deployment 4 is closed; 8 bids fill order 5.
    w.ok(&a.providers[1], vec![bid(w.order(t, 1), &plain, 5 * DEC_ONE)]);
    w.ok(
        t,
        vec![Msg::AcceptBid {
            bid: BidId { order: w.order(t, 1), provider: a.providers[1].address() },
        }],
    );
    w.ok(t, vec![Msg::CloseDeployment { dseq: 4 }]);
    for p in 1..=8 {
        w.ok(&a.providers[p], vec![bid(w.order(t, 5), &plain, 5 * DEC_ONE)]);
    }
    w.ok(t, vec![certificate(1)]);
    // Provider 4 lost a lease of deployment 6's group to a failover (no transaction can make
    // this state in one step; tests/health.rs makes it the long way).
    let group6 = w.order(t, 6).group();
    let exclusion =
        gridlease_types::state::Exclusion { provider: a.providers[4].address(), until: u64::MAX };
    w.state.entries.insert(keyspace::excluded(&group6), encode(&vec![exclusion]));
    (w, plain, strict)
}

#[test]
fn every_error_code_is_reported_and_leaves_state_untouched() {
    let (w, plain, _strict) = setup();
    let a = w.actors.clone();
    let (t, t2) = (&a.tenants[0], &a.tenants[1]);
    let p = |i: usize| &a.providers[i];
    let lease = BidId { order: w.order(t, 1), provider: p(1).address() };
    let mut cases: Vec<(ReceiptCode, &str, Tx)> = Vec::new();
    let send = |amount: u128, denom: &str| Msg::Send {
        to: t2.address(),
        amount: Coin { denom: Denom::new(denom).unwrap(), amount },
    };

    let mut wrong_chain = TxBody {
        chain_id: "other-chain".into(),
        signer: t.address(),
        sequence: w.seq(t),
        fee: Coin::new(100, &ugrid()),
        memo: String::new(),
        messages: vec![send(1, "ugrid")],
    };
    cases.push((ReceiptCode::WrongChainId, "wrong chain id", wrong_chain.clone().sign(t)));
    wrong_chain.chain_id = CHAIN_ID.into();
    let mut tampered = wrong_chain.clone().sign(t);
    tampered.signature.0[0] ^= 1;
    cases.push((ReceiptCode::BadSignature, "bad signature", tampered));
    cases.push((
        ReceiptCode::WrongSigner,
        "signer is not the key's address",
        wrong_chain.clone().sign(t2),
    ));
    let mut empty = wrong_chain.clone();
    empty.messages.clear();
    cases.push((ReceiptCode::MalformedTx, "no messages", empty.sign(t)));
    cases.push((
        ReceiptCode::BadSequence,
        "sequence from the future",
        sign(t, w.seq(t) + 5, 100, vec![send(1, "ugrid")]),
    ));
    cases.push((
        ReceiptCode::InsufficientFee,
        "fee below minimum",
        sign(t, w.seq(t), 1, vec![send(1, "ugrid")]),
    ));
    let mut usdc_fee = wrong_chain.clone();
    usdc_fee.fee = Coin::new(100, &uusdc());
    cases.push((ReceiptCode::InsufficientFee, "fee in the wrong denom", usdc_fee.sign(t)));
    cases.push((
        ReceiptCode::InsufficientFunds,
        "send more than the balance",
        w.tx(t, vec![send(10u128.pow(15), "ugrid")]),
    ));
    cases.push((ReceiptCode::InvalidAmount, "send zero", w.tx(t, vec![send(0, "ugrid")])));
    cases.push((
        ReceiptCode::UnknownDenom,
        "send an unknown denom",
        w.tx(t, vec![send(5, "uatom")]),
    ));
    cases.push((
        ReceiptCode::DenomMismatch,
        "deposit uusdc into a ugrid escrow",
        w.tx(t, vec![Msg::DepositDeployment { dseq: 1, amount: Coin::new(10, &uusdc()) }]),
    ));
    cases.push((
        ReceiptCode::Unauthorized,
        "a third party closes a lease",
        w.tx(t2, vec![Msg::CloseLease { lease }]),
    ));
    cases.push((
        ReceiptCode::Unauthorized,
        "someone else withdraws the provider's earnings",
        w.tx(t, vec![Msg::WithdrawLease { lease }]),
    ));
    cases.push((
        ReceiptCode::Unauthorized,
        "a provider accepts a bid on someone's order",
        w.tx(
            p(2),
            vec![Msg::AcceptBid { bid: BidId { order: w.order(t, 5), provider: p(2).address() } }],
        ),
    ));
    cases.push((
        ReceiptCode::NotFound,
        "close a deployment that does not exist",
        w.tx(t, vec![Msg::CloseDeployment { dseq: 999 }]),
    ));
    cases.push((
        ReceiptCode::AlreadyExists,
        "register a provider twice",
        w.tx(
            p(0),
            vec![Msg::CreateProvider {
                host_uri: "https://again.example".into(),
                attributes: vec![],
                info: ProviderInfo::default(),
            }],
        ),
    ));
    cases.push((
        ReceiptCode::AlreadyExists,
        "reuse a dseq",
        w.tx(
            t,
            vec![Msg::CreateDeployment {
                dseq: 1,
                groups: vec![plain.clone()],
                manifest_hash: [0; 32],
                deposit: Coin::new(1_000_000, &ugrid()),
            }],
        ),
    ));
    cases.push((
        ReceiptCode::InvalidState,
        "bid on a closed order",
        w.tx(p(2), vec![bid(w.order(t, 4), &plain, DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::InvalidState,
        "close a closed deployment",
        w.tx(t, vec![Msg::CloseDeployment { dseq: 4 }]),
    ));
    cases.push((
        ReceiptCode::PriceAboveMax,
        "bid above the order's max price",
        w.tx(p(2), vec![bid(w.order(t, 6), &plain, 11 * DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::ProviderNotRegistered,
        "a tenant bids",
        w.tx(t2, vec![bid(w.order(t, 6), &plain, DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::ProviderExcluded,
        "a provider whose lease of the group failed over bids on it again",
        w.tx(p(4), vec![bid(w.order(t, 6), &plain, DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::AttributesNotMatched,
        "us-east provider on an eu-west order",
        w.tx(p(1), vec![bid(w.order(t, 2), &plain, DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::AttributesNotAudited,
        "eu-west provider without the audit",
        w.tx(p(3), vec![bid(w.order(t, 2), &plain, DEC_ONE)]),
    ));
    let wrong_gpu = Msg::CreateBid {
        order: w.order(t, 6),
        price: DecCoin { denom: ugrid(), amount: DecAmount(DEC_ONE) },
        offer: offer_for(&plain, ("t4", "16Gi", "pcie")),
        deposit: Coin::new(5_000, &ugrid()),
    };
    cases.push((
        ReceiptCode::OfferMismatch,
        "offer a GPU model the order does not accept",
        w.tx(p(2), vec![wrong_gpu]),
    ));
    cases.push((
        ReceiptCode::DepositTooLow,
        "deployment deposit below the minimum",
        w.tx(
            t,
            vec![Msg::CreateDeployment {
                dseq: 77,
                groups: vec![plain.clone()],
                manifest_hash: [0; 32],
                deposit: Coin::new(10, &ugrid()),
            }],
        ),
    ));
    let cheap_bid = Msg::CreateBid {
        order: w.order(t, 6),
        price: DecCoin { denom: ugrid(), amount: DecAmount(DEC_ONE) },
        offer: offer_for(&plain, ("a100", "80Gi", "sxm")),
        deposit: Coin::new(1, &ugrid()),
    };
    cases.push((
        ReceiptCode::DepositTooLow,
        "bid deposit below the minimum",
        w.tx(p(2), vec![cheap_bid]),
    ));
    cases.push((
        ReceiptCode::InvalidRequest,
        "provider with an ftp host",
        w.tx(
            p(0),
            vec![Msg::UpdateProvider {
                host_uri: "ftp://x".into(),
                attributes: vec![],
                info: ProviderInfo::default(),
            }],
        ),
    ));
    let mut huge = plain.clone();
    huge.resources[0].price.amount = DecAmount(u128::MAX / 2);
    huge.resources[0].count = 3;
    cases.push((
        ReceiptCode::Overflow,
        "group price times count overflows",
        w.tx(
            t,
            vec![Msg::CreateDeployment {
                dseq: 78,
                groups: vec![huge],
                manifest_hash: [0; 32],
                deposit: Coin::new(1_000_000, &ugrid()),
            }],
        ),
    ));
    cases.push((
        ReceiptCode::TooManyBids,
        "ninth bid on an order limited to eight",
        w.tx(p(9), vec![bid(w.order(t, 5), &plain, DEC_ONE)]),
    ));
    cases.push((
        ReceiptCode::TooManyCertificates,
        "a second valid certificate where the limit is one",
        w.tx(t, vec![certificate(2)]),
    ));
    // A transaction whose second message fails keeps nothing of the first.
    cases.push((
        ReceiptCode::InsufficientFunds,
        "atomic: first message succeeds, second fails",
        w.tx(t, vec![send(5, "ugrid"), send(10u128.pow(15), "ugrid")]),
    ));

    let mut seen = std::collections::BTreeSet::new();
    for (want, what, tx) in cases {
        let signer = tx.body.signer;
        // Expected: the same block without the transaction, plus fee and sequence if charged.
        let mut expected = w.state.clone();
        run_block(&mut expected, w.height + 1, &[]).unwrap();
        let mut after = w.state.clone();
        let receipt = run_block(&mut after, w.height + 1, std::slice::from_ref(&tx))
            .unwrap()
            .receipts
            .remove(0);
        assert_eq!(receipt.code, want, "{what}: {}", receipt.log);
        assert!(!receipt.log.is_empty(), "{what}: failure without a message");
        if want.charged_fee() {
            let fee = tx.body.fee.amount;
            let bal = query::balance(&expected, &signer, &ugrid()).unwrap();
            expected.entries.insert(keyspace::balance(&signer, &ugrid()), encode(&(bal - fee)));
            let pool = query::pool(&expected, &ugrid()).unwrap();
            expected
                .entries
                .insert(keyspace::pool(&ugrid()), encode(&DecAmount(pool.0 + fee * DEC_ONE)));
            let mut acct = query::account(&expected, &signer).unwrap().unwrap_or_default();
            acct.sequence += 1;
            acct.public_key = Some(tx.public_key);
            expected.entries.insert(keyspace::account(&signer), encode(&acct));
        }
        assert!(expected == after, "{what}: state changed beyond fee and sequence");
        seen.insert(want);
    }
    let missing: Vec<_> =
        ReceiptCode::ALL.iter().filter(|c| **c != ReceiptCode::Ok && !seen.contains(c)).collect();
    assert!(missing.is_empty(), "codes never exercised: {missing:?}");
}
