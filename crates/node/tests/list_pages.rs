//! Reads cannot exhaust the node (issue 10, item 5): with 100,000 leases in the state, every
//! list answer is one bounded page found through a key prefix or a by-provider index, a
//! cursor walks the whole list exactly once, and a list query works on a snapshot, so block
//! commits go on while it pages.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gridlease_ledger::state::{Lease, LeaseState};
use gridlease_ledger::{Changes, keyspace};
use gridlease_node::state::{MAX_RPC_IN_FLIGHT, MAX_SUBSCRIBERS, Metrics, Node};
use gridlease_node::{mempool, rpc};
use gridlease_sim::{Actors, CHAIN_ID, ugrid};
use gridlease_storage::{BlockRecord, Store};
use gridlease_types::{Address, BidId, DecAmount, DecCoin, OrderId};
use serde_json::Value;

const LEASES: u32 = 100_000;
const PROVIDERS: u8 = 10;
const OWNERS: u32 = 1_000;

fn record(height: u64) -> BlockRecord {
    BlockRecord {
        height,
        time_ms: height * 1000,
        txs: Vec::new(),
        receipts: Vec::new(),
        begin_events: Vec::new(),
        round: 0,
        certificate: Vec::new(),
        parent_root: [0; 32],
        state_root: [0; 32],
    }
}

fn owner(i: u32) -> Address {
    let mut a = [0u8; 20];
    a[..4].copy_from_slice(&i.to_be_bytes());
    Address(a)
}

/// A store whose state holds `LEASES` active leases (written directly: this test is about
/// reads), spread over `OWNERS` owners and `PROVIDERS` providers.
fn store_with_leases(dir: &std::path::Path) -> Store {
    let mut store = Store::open(dir.join("chain.redb")).unwrap();
    store.init_genesis(&Actors::new(1, 0, 0).genesis()).unwrap();
    let mut changes = Changes::new();
    for i in 0..LEASES {
        let order = OrderId { owner: owner(i % OWNERS), dseq: u64::from(i), gseq: 1, oseq: 1 };
        let id = BidId { order, provider: Address([0xA0 + (i % u32::from(PROVIDERS)) as u8; 20]) };
        let lease = Lease {
            id,
            price: DecCoin { denom: ugrid(), amount: DecAmount(1_000) },
            state: LeaseState::Active,
            created_at: 1,
        };
        changes.insert(keyspace::lease(&id), Some(gridlease_types::encode(&lease)));
        changes.insert(
            keyspace::by_provider_entry(keyspace::LEASE_BY_PROVIDER, &id),
            Some(Vec::new()),
        );
    }
    store.commit_block(&mut record(1), &changes).unwrap();
    store
}

async fn serve(store: Store) -> (Arc<Node>, String) {
    let genesis = Actors::new(1, 0, 0).genesis();
    let (committed, _) = tokio::sync::broadcast::channel(16);
    let node = Arc::new(Node {
        chain_id: CHAIN_ID.into(),
        params: genesis.params,
        store: RwLock::new(store),
        mempool: Mutex::new(mempool::Mempool::new(mempool::MempoolLimits::default())),
        committed,
        metrics: Metrics::default(),
        requests: Arc::new(tokio::sync::Semaphore::new(MAX_RPC_IN_FLIGHT)),
        subscribers: Arc::new(tokio::sync::Semaphore::new(MAX_SUBSCRIBERS)),
        evidence: Mutex::new(Default::default()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = rpc::router(node.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (node, url)
}

async fn get(url: &str) -> (u16, usize, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, bytes.len(), serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_list_queries_are_bounded_pages_and_do_not_delay_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (node, url) = serve(store_with_leases(dir.path())).await;

    // A page larger than the maximum is refused; the default page is 100 leases.
    let (status, _, body) = get(&format!("{url}/leases?limit=100000")).await;
    assert_eq!(status, 400, "{body}");
    let (status, size, body) = get(&format!("{url}/leases")).await;
    assert_eq!(status, 200);
    assert_eq!(body["leases"].as_array().unwrap().len(), 100);
    assert!(body["next_cursor"].is_string());
    assert!(size < 64 * 1024, "a default page is {size} bytes");

    // One provider's leases through the index: every page at most 1,000 leases (and
    // bounded in bytes), the cursor visits each of its 10,000 leases once and no other.
    let provider = Address([0xA3; 20]);
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut u = format!("{url}/leases?provider={provider}&limit=1000");
        if let Some(c) = &cursor {
            u.push_str(&format!("&cursor={c}"));
        }
        let (status, size, body) = get(&u).await;
        assert_eq!(status, 200, "{body}");
        let page = body["leases"].as_array().unwrap();
        assert!(page.len() <= 1000 && size < 1024 * 1024, "{} leases, {size} bytes", page.len());
        for l in page {
            assert_eq!(l["id"]["provider"], Value::String(provider.to_string()));
            assert!(seen.insert(l["id"].to_string()), "lease listed twice");
        }
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), (LEASES / u32::from(PROVIDERS)) as usize);
    assert!(pages <= 11, "{pages} pages");

    // An owner's leases come from its key prefix: exactly its 100, and a page that ends the
    // list exactly at its limit says so (no cursor).
    for limit in [1000, 100] {
        let (_, _, body) = get(&format!("{url}/leases?owner={}&limit={limit}", owner(7))).await;
        assert_eq!(body["leases"].as_array().unwrap().len(), (LEASES / OWNERS) as usize);
        assert!(body["next_cursor"].is_null(), "limit {limit}: {}", body["next_cursor"]);
    }

    // A cursor that is not hex is refused.
    let (status, _, _) = get(&format!("{url}/leases?cursor=zz")).await;
    assert_eq!(status, 400);

    // A list query pages through a snapshot: while a reader walks all 100,000 leases page by
    // page (pausing between pages), blocks keep committing and each commit is quick.
    let reader = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut cursor: Option<String> = None;
            let mut total = 0;
            loop {
                let mut u = format!("{url}/leases?limit=1000");
                if let Some(c) = &cursor {
                    u.push_str(&format!("&cursor={c}"));
                }
                let (_, _, body) = get(&u).await;
                total += body["leases"].as_array().map_or(0, Vec::len);
                tokio::time::sleep(Duration::from_millis(5)).await;
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => return total,
                }
            }
        })
    };
    let mut slowest = Duration::ZERO;
    for height in 2..=21 {
        let node = node.clone();
        let took = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut store = node.store.write().unwrap();
            store.commit_block(&mut record(height), &Changes::new()).unwrap();
            started.elapsed()
        })
        .await
        .unwrap();
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = reader.await.unwrap();
    assert_eq!(listed, LEASES as usize);
    eprintln!("slowest of 20 commits while paging: {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "a commit waited {slowest:?} behind the reads");
}
