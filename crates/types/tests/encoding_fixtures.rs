//! Pins the canonical encoding: every message kind inside a signed transaction, encoded, must
//! equal the bytes recorded under `tests/fixtures/encoding`. A change to any type's layout
//! fails here; accept a deliberate one with `GRIDLEASE_BLESS=1 cargo test -p gridlease-types`.

use std::path::PathBuf;

use gridlease_types::msg::ProviderInfo;
use gridlease_types::*;

fn denom(s: &str) -> Denom {
    Denom::new(s).unwrap()
}

fn order() -> OrderId {
    OrderId { owner: Address([1; 20]), dseq: 42, gseq: 1, oseq: 2 }
}

fn group() -> GroupSpec {
    GroupSpec {
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
        name: "westcoast".into(),
        requirements: PlacementRequirements {
            attributes: vec![Attribute::new("region", "us-west")],
            signed_by: SignedBy { all_of: vec![Address([7; 20])], any_of: vec![] },
        },
        resources: vec![ResourceUnit {
            resources: Resources {
                id: 1,
                cpu_millis: 500,
                memory_bytes: 512 << 20,
                storage: vec![StorageVolume {
                    name: "data".into(),
                    bytes: 1 << 30,
                    class: Some("beta2".into()),
                    persistent: true,
                }],
                gpu: GpuRequirement {
                    units: 1,
                    options: vec![GpuSpec {
                        vendor: "nvidia".into(),
                        model: Some("a100".into()),
                        ram: Some("80Gi".into()),
                        interface: None,
                    }],
                },
                endpoints: vec![Endpoint { kind: EndpointKind::SharedHttp, sequence_number: 0 }],
            },
            count: 2,
            price: DecCoin { denom: denom("uusdc"), amount: "1.5".parse().unwrap() },
        }],
    }
}

fn messages() -> Vec<(&'static str, Msg)> {
    let coin = Coin::new(1000, &denom("ugrid"));
    let bid = BidId { order: order(), provider: Address([2; 20]) };
    vec![
        ("send", Msg::Send { to: Address([3; 20]), amount: coin.clone() }),
        (
            "create_provider",
            Msg::CreateProvider {
                host_uri: "https://p.example:8443".into(),
                attributes: vec![Attribute::new("region", "eu")],
                info: ProviderInfo { email: "ops@p.example".into(), website: String::new() },
            },
        ),
        (
            "update_provider",
            Msg::UpdateProvider {
                host_uri: "https://p.example".into(),
                attributes: vec![],
                info: ProviderInfo::default(),
            },
        ),
        (
            "sign_attributes",
            Msg::SignProviderAttributes {
                provider: Address([2; 20]),
                attributes: vec![Attribute::new("tier", "1")],
            },
        ),
        (
            "delete_attributes",
            Msg::DeleteProviderAttributes { provider: Address([2; 20]), keys: vec!["tier".into()] },
        ),
        (
            "create_certificate",
            Msg::CreateCertificate {
                cert_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
                pubkey_pem: b"-----BEGIN PUBLIC KEY-----".to_vec(),
            },
        ),
        ("revoke_certificate", Msg::RevokeCertificate { serial: [9; 32] }),
        (
            "create_deployment",
            Msg::CreateDeployment {
                dseq: 42,
                groups: vec![group()],
                manifest_hash: [5; 32],
                deposit: Coin::new(5_000_000, &denom("uusdc")),
            },
        ),
        ("deposit_deployment", Msg::DepositDeployment { dseq: 42, amount: coin.clone() }),
        ("update_deployment", Msg::UpdateDeployment { dseq: 42, manifest_hash: [6; 32] }),
        ("close_deployment", Msg::CloseDeployment { dseq: 42 }),
        (
            "create_bid",
            Msg::CreateBid {
                order: order(),
                price: DecCoin { denom: denom("uusdc"), amount: "2.75".parse().unwrap() },
                offer: vec![ResourceOffer {
                    cpu_millis: 500,
                    memory_bytes: 512 << 20,
                    storage: vec![],
                    gpu: Some(GpuOffer {
                        units: 1,
                        vendor: "nvidia".into(),
                        model: "a100".into(),
                        ram: "80Gi".into(),
                        interface: "sxm".into(),
                    }),
                    count: 2,
                }],
                deposit: coin.clone(),
            },
        ),
        ("close_bid", Msg::CloseBid { order: order() }),
        ("accept_bid", Msg::AcceptBid { bid }),
        ("close_lease", Msg::CloseLease { lease: bid }),
        ("withdraw_lease", Msg::WithdrawLease { lease: bid }),
        ("reopen_order", Msg::ReopenOrder { order: order() }),
        (
            "set_monitors",
            Msg::SetMonitors { dseq: 42, monitors: vec![Address([8; 20]), Address([9; 20])] },
        ),
        (
            "report_health",
            Msg::ReportHealth {
                reports: vec![
                    msg::HealthReport { lease: bid, up: false },
                    msg::HealthReport { lease: bid, up: true },
                ],
            },
        ),
    ]
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoding")
        .join(format!("{name}.hex"))
}

#[test]
fn every_message_kind_encodes_to_its_pinned_bytes() {
    let key = Keypair::from_secret([11; 32]);
    #[allow(clippy::disallowed_methods)] // a test switch, not consensus code
    let bless = std::env::var("GRIDLEASE_BLESS").is_ok();
    let mut failures = Vec::new();
    for (name, msg) in messages() {
        let tx = TxBody {
            chain_id: "gridlease-fixture".into(),
            signer: key.address(),
            sequence: 7,
            fee: Coin::new(1000, &denom("ugrid")),
            memo: "fixture".into(),
            messages: vec![msg],
        }
        .sign(&key);
        let bytes = tx.to_bytes();
        let hex = gridlease_types::hex::encode(&bytes);
        let path = fixture(name);
        if bless {
            std::fs::write(&path, format!("{hex}\n")).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want.trim() != hex {
            failures.push(name);
        }
        // The pinned bytes decode back to the same transaction, and it verifies.
        let back = Tx::from_bytes(&bytes).unwrap();
        assert_eq!(back, tx);
        back.verify().unwrap();
    }
    assert!(
        failures.is_empty(),
        "encodings changed for {failures:?} (GRIDLEASE_BLESS=1 to accept)"
    );
}

#[test]
fn trailing_and_truncated_bytes_are_rejected() {
    let key = Keypair::from_secret([11; 32]);
    let tx = TxBody {
        chain_id: "c".into(),
        signer: key.address(),
        sequence: 0,
        fee: Coin::new(1, &denom("ugrid")),
        memo: String::new(),
        messages: vec![Msg::CloseDeployment { dseq: 1 }],
    }
    .sign(&key);
    let mut bytes = tx.to_bytes();
    bytes.push(0);
    assert!(Tx::from_bytes(&bytes).is_err());
    bytes.truncate(bytes.len() - 10);
    assert!(Tx::from_bytes(&bytes).is_err());
}

#[test]
fn invalid_denoms_do_not_decode() {
    let coin = Coin::new(5, &denom("ugrid"));
    let mut bytes = encode(&coin);
    // Upper-case the first letter of the denom inside the encoding.
    bytes[4] = b'U';
    assert!(decode::<Coin>(&bytes).is_err());
}
