//! The mempool attack of issue 10 (item 2) against a real node over its RPC: strangers with
//! no funds declare huge fees, funded accounts park transactions behind sequence gaps until
//! every slot is taken. Unfunded transactions are refused (402), and an honest transaction at
//! the minimum fee is still admitted and committed within two blocks; the gapped ones expire.

mod common;

use std::time::{Duration, Instant};

use common::{init, start};
use futures_util::StreamExt;
use gridlease_client::{Client, ClientError};
use gridlease_sim::{CHAIN_ID, sign, ugrid};
use gridlease_types::{Coin, Keypair, Msg};

const POOL: usize = 2_000;

fn send(k: &Keypair, seq: u64, fee: u128) -> Vec<u8> {
    let to = k.address();
    sign(k, seq, fee, vec![Msg::Send { to, amount: Coin::new(1, &ugrid()) }]).to_bytes()
}

async fn submit_all(client: &Client, txs: Vec<Vec<u8>>) -> Vec<Result<(), ClientError>> {
    futures_util::stream::iter(txs)
        .map(|bytes| {
            let client = client.clone();
            async move { client.submit_bytes(&bytes, false).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_unfunded_and_gapped_flood_does_not_lock_the_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let attackers: Vec<Keypair> = (0..20u8).map(|i| Keypair::from_secret([i + 1; 32])).collect();
    let honest = Keypair::from_secret([99; 32]);
    let mut funded: Vec<_> = attackers.iter().map(Keypair::address).collect();
    funded.push(honest.address());
    init(dir.path(), CHAIN_ID, &funded);
    // A small pool so the test fills it quickly; the peer quota on gapped transactions is
    // lifted so the flood really fills it (the quota is unit-tested on its own).
    let config_path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["mempool"] = serde_json::json!({ "max_txs": POOL, "max_gapped_per_peer": 100_000, "gap_ttl_blocks": 10 });
    std::fs::write(&config_path, config.to_string()).unwrap();
    let node = start(dir.path(), 200);
    let client = Client::new(&node.rpc);
    let params = client.params().await.unwrap();
    let min_fee: u128 = params.min_fee;

    // 500 strangers without a coin, each declaring a fee of a million GRID.
    let strangers: Vec<Vec<u8>> = (0..500u32)
        .map(|i| {
            let mut secret = [200; 32];
            secret[..4].copy_from_slice(&i.to_le_bytes());
            send(&Keypair::from_secret(secret), 0, 10u128.pow(12))
        })
        .collect();
    for r in submit_all(&client, strangers).await {
        match r {
            Err(ClientError::Refused { status: 402, code, .. }) => {
                assert_eq!(code, gridlease_client::ErrorCode::CannotPayFee)
            }
            other => panic!("an unfunded transaction was not refused with 402: {other:?}"),
        }
    }
    // Funded accounts fill every slot with transactions behind a gap (sequence 0 never sent),
    // each declaring a fee a million times the minimum.
    let gapped: Vec<Vec<u8>> = attackers
        .iter()
        .flat_map(|k| {
            (1..=(POOL / attackers.len()) as u64).map(move |s| send(k, s, min_fee * 1_000_000))
        })
        .collect();
    let refused = submit_all(&client, gapped).await.into_iter().filter(|r| r.is_err()).count();
    assert_eq!(refused, 0, "the flood should fill the pool");
    assert_eq!(client.status().await.unwrap().mempool_size, POOL);

    // The honest transaction at the minimum fee: admitted and committed within two blocks.
    let before = client.status().await.unwrap().latest_height;
    let res = client.submit_bytes(&send(&honest, 0, min_fee), true).await.unwrap();
    assert_eq!(res.status, gridlease_client::TxStatus::Committed, "{res:?}");
    let height = res.height.unwrap();
    assert!(height <= before + 2, "submitted after block {before}, committed in block {height}");

    // The gapped transactions never ran and expire once their time to live is over.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = client.status().await.unwrap().mempool_size;
        if size == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{size} gapped transactions never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for k in &attackers {
        assert_eq!(client.account(&k.address()).await.unwrap().sequence, 0);
    }
}
