//! A real node process: transactions submitted over RPC land in blocks with receipts and
//! events, a subscriber sees a new order within one block, and bad input gets a 4xx; a node
//! asked to stop does so while a subscriber keeps its event stream open.

mod common;

use std::time::Duration;

use common::{init, start, wait_height};
use futures_util::StreamExt;
use gridlease_client::{Client, TxBuilder};
use gridlease_types::*;

fn group() -> GroupSpec {
    GroupSpec {
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
        name: "web".into(),
        requirements: PlacementRequirements::default(),
        resources: vec![ResourceUnit {
            resources: Resources {
                id: 1,
                cpu_millis: 500,
                memory_bytes: 512 << 20,
                storage: vec![],
                gpu: GpuRequirement::default(),
                endpoints: vec![],
            },
            count: 1,
            price: DecCoin { denom: Denom::new("uusdc").unwrap(), amount: "10".parse().unwrap() },
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_blocks_receipts_events_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Keypair::from_secret([21; 32]);
    init(dir.path(), "gridlease-e2e", &[tenant.address()]);
    let node = start(dir.path(), 300);
    let client = Client::new(&node.rpc);
    wait_height(&client, 1).await;

    // A subscriber to new orders of this tenant.
    let events_url = format!("{}/events?types=order_opened&address={}", node.rpc, tenant.address());
    let resp = reqwest::get(&events_url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let subscriber = tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find("\n\n") {
                let frame: String = buf.drain(..i + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
                        if v["events"].as_array().is_some_and(|e| !e.is_empty()) {
                            return v;
                        }
                    }
                }
            }
        }
        panic!("event stream ended");
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fee = Coin::new(1_000, &Denom::new("ugrid").unwrap());
    let mut b = TxBuilder::for_key(&client, tenant.clone(), fee).await.unwrap();
    let tx = b.build(vec![Msg::CreateDeployment {
        dseq: 1,
        groups: vec![group()],
        manifest_hash: [3; 32],
        deposit: Coin::new(5_000_000, &Denom::new("uusdc").unwrap()),
    }]);
    let res = client.submit(&tx, true).await.unwrap();
    assert_eq!(res.status, gridlease_client::TxStatus::Committed, "{res:?}");
    let receipt = res.receipt.unwrap();
    assert!(receipt.is_ok(), "{receipt:?}");
    let height = res.height.unwrap();
    assert!(
        receipt.events.iter().any(|e| matches!(e, gridlease_client::Event::OrderOpened { .. }))
    );

    // The block holds the transaction and carries a state root; the tx is queryable by hash.
    let block: serde_json::Value = client.get(&format!("/blocks/{height}")).await.unwrap();
    assert!(
        block["txs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().eq_ignore_ascii_case(&res.hash))
    );
    assert_eq!(block["state_root"].as_str().unwrap().len(), 64);
    // The block list counts the block's transaction and events by type, newest first, and
    // pages down with `before`.
    let listed = client.blocks(Some(height + 1), 5).await.unwrap();
    let top = &listed.blocks[0];
    assert_eq!((top.height, top.txs, top.failed_txs), (height, 1, 0), "{listed:?}");
    assert_eq!(top.events, top.event_kinds.values().sum::<u32>());
    assert!(top.event_kinds.get("order_opened").is_some_and(|n| *n >= 1), "{top:?}");
    assert!(listed.blocks.windows(2).all(|w| w[0].height == w[1].height + 1));
    assert_eq!(listed.next_before, listed.blocks.last().map(|b| b.height).filter(|h| *h > 1));
    let r = reqwest::get(format!("{}/blocks?limit=101", node.rpc)).await.unwrap();
    assert_eq!(r.status(), 400);
    let by_hash: serde_json::Value = client.get(&format!("/txs/{}", res.hash)).await.unwrap();
    assert_eq!(by_hash["status"], "committed");
    assert_eq!(by_hash["height"], height);

    // The subscriber saw the new order in the block that created it.
    let seen = tokio::time::timeout(Duration::from_secs(10), subscriber).await.unwrap().unwrap();
    assert_eq!(seen["height"], height, "{seen}");
    assert_eq!(seen["events"][0]["event"]["type"], "order_opened");

    // Queries of the objects created.
    let orders: serde_json::Value =
        client.get(&format!("/orders?owner={}&state=open", tenant.address())).await.unwrap();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1);
    let dep: serde_json::Value =
        client.get(&format!("/deployments/{}/1", tenant.address())).await.unwrap();
    assert_eq!(dep["deployment"]["state"]["state"], "active");

    // Bad input: 4xx with a reason, never 5xx.
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{}/txs", node.rpc))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post("{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post(format!("{{\"tx\":\"{}\"}}", "ab".repeat(200_000))).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = post("{\"tx\":\"zz\"}".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let mut forged = b.build(vec![Msg::CloseDeployment { dseq: 1 }]);
    forged.signature.0[5] ^= 1;
    match client.submit(&forged, false).await {
        Err(gridlease_client::ClientError::Refused { status: 400, code, .. }) => {
            assert_eq!(code, gridlease_client::ErrorCode::InvalidTx)
        }
        other => panic!("forged signature: {other:?}"),
    }
    match client.submit(&tx, false).await {
        Err(gridlease_client::ClientError::Refused { status: 409, .. }) => {}
        other => panic!("replay: {other:?}"),
    }
    let mut other_chain = TxBuilder { chain_id: "other".into(), ..b };
    other_chain.sequence = 1;
    let wrong = other_chain.build(vec![Msg::CloseDeployment { dseq: 1 }]);
    match client.submit(&wrong, false).await {
        Err(gridlease_client::ClientError::Refused { status: 400, code, .. }) => {
            assert_eq!(code, gridlease_client::ErrorCode::WrongChainId)
        }
        other => panic!("wrong chain: {other:?}"),
    }
    let r = reqwest::get(format!("{}/accounts/not-an-address", node.rpc)).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = reqwest::get(format!("{}/blocks/99999999", node.rpc)).await.unwrap();
    assert_eq!(r.status(), 404);
    let metrics =
        reqwest::get(format!("{}/metrics", node.rpc)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gridlease_block_height"));
    // The served description is the checked-in one, generated from the wire types.
    let served = reqwest::get(format!("{}/openapi.json", node.rpc)).await.unwrap();
    assert_eq!(served.headers()["content-type"], "application/json");
    let served = served.text().await.unwrap();
    let checked_in = include_str!("../openapi.json");
    assert!(served == checked_in, "/openapi.json differs from crates/node/openapi.json");
    let spec: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
}

/// SIGINT stops the node promptly even while a subscriber holds an event stream open (the
/// stream would never end by itself, and a graceful stop waited for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stops_while_a_subscriber_listens() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), "stop-test", &[]);
    let mut node = start(dir.path(), 200);
    let client = Client::new(&node.rpc);
    wait_height(&client, 1).await;
    let mut stream = client.subscribe(&[]).await.expect("subscribe");
    assert!(stream.next_block().await.expect("a block").is_some());
    let asked = std::time::Instant::now();
    let pid = node.child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill");
    assert!(sent.success());
    let status = loop {
        if let Some(s) = node.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "the node did not stop in 10 s with a subscriber: {}",
            common::log_tail(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the node exited with {status}");
    // The subscriber sees its stream end rather than hang.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.next_block().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end when the node stopped");
}
