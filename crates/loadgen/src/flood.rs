//! `flood`: the mempool attack as load, for the abuse benchmark. Strangers with no funds
//! declaring huge fees, and funded accounts sending only sequences behind a gap (never
//! executable), as fast as the concurrency bound allows; counts the node's answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gridlease_types::{Coin, Keypair, Msg, TxBody};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// One flood transaction, ready to post.
pub fn flood_txs(chain_id: &str, attackers: &[Keypair], fee: &Coin, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            // Even: a stranger (a fresh key, never funded). Odd: a funded attacker skipping
            // its next sequence, so the transaction can never run.
            let (key, sequence) = if i % 2 == 0 || attackers.is_empty() {
                (crate::accounts::derive_key(0xF100D, i as u64), 0)
            } else {
                let k = &attackers[(i / 2) % attackers.len()];
                (k.clone(), 1 + (i / 2 / attackers.len()) as u64)
            };
            let body = TxBody {
                chain_id: chain_id.to_string(),
                signer: key.address(),
                sequence,
                fee: fee.clone(),
                memo: String::new(),
                messages: vec![Msg::Send { to: key.address(), amount: Coin::new(1, &fee.denom) }],
            };
            let tx = body.sign(&key);
            format!("{{\"tx\":\"{}\"}}", gridlease_client::hex(&tx.to_bytes())).into_bytes()
        })
        .collect()
}

/// Posts the bodies round and round for `duration`, `concurrency` at a time; returns the
/// number of answers per status code and the number sent.
pub async fn run(
    http: reqwest::Client,
    base: &str,
    bodies: Vec<Vec<u8>>,
    duration: Duration,
    concurrency: usize,
) -> (BTreeMap<String, u64>, u64) {
    let url = Arc::new(format!("{base}/txs"));
    let bodies = Arc::new(bodies);
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let counts = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
    let until = Instant::now() + duration;
    let mut sent = 0u64;
    let mut i = 0usize;
    while Instant::now() < until && !bodies.is_empty() {
        let Ok(permit) = Arc::clone(&gate).acquire_owned().await else { break };
        let (http, url, bodies, counts) =
            (http.clone(), Arc::clone(&url), Arc::clone(&bodies), Arc::clone(&counts));
        let idx = i % bodies.len();
        i += 1;
        sent += 1;
        tokio::spawn(async move {
            let answer = http
                .post(url.as_str())
                .header("content-type", "application/json")
                .body(bodies[idx].clone())
                .send()
                .await;
            let code = match answer {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "transport".to_string(),
            };
            if let Ok(mut c) = counts.lock() {
                *c.entry(code).or_default() += 1;
            }
            drop(permit);
        });
    }
    // Let the requests in flight finish.
    let _ = gate.acquire_many(concurrency.max(1) as u32).await;
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    (counts, sent)
}
