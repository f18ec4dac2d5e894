//! The timed phase: releases pre-signed transactions on an open-loop schedule (or as fast as
//! the concurrency bound allows) and posts them over keep-alive HTTP connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::presign::SignedTx;

/// Rejection codes that mean "not now": the transaction is retried after a pause.
const RETRYABLE: [&str; 2] = ["mempool_full", "sequence_too_high"];
/// Pause before retrying a retryable rejection.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long one transaction keeps being retried.
const RETRY_LIMIT: Duration = Duration::from_secs(20);

/// How the load is offered.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Transactions per second; `None` releases them as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Stop releasing after this long (the transactions already sent still count).
    pub duration: Option<Duration>,
    /// Most requests in flight.
    pub concurrency: usize,
}

/// What happened to one submission.
#[derive(Debug, Clone)]
pub struct SubmitRecord {
    pub index: usize,
    /// When the schedule wanted it sent.
    pub scheduled: Instant,
    /// When the first request for it started.
    pub started: Instant,
    /// When the last answer arrived.
    pub finished: Instant,
    /// `None` when admitted, else the node's error code (or `transport`/`http_NNN`).
    pub rejection: Option<String>,
    /// Rejections that were retried, by code.
    pub retries: Vec<String>,
}

/// Posts `txs` in index order to `{base}/txs?wait=none` per `schedule`, sending one record per
/// released transaction to `records`. Returns how many were released. Transaction `i` is
/// from account `i % accounts` and goes to base `(i % accounts) % bases.len()`, so an
/// account's sequence stays on one node.
pub async fn submit_all(
    http: reqwest::Client,
    bases: &[String],
    accounts: usize,
    txs: Arc<Vec<SignedTx>>,
    schedule: Schedule,
    records: mpsc::UnboundedSender<SubmitRecord>,
) -> usize {
    let urls: Vec<Arc<str>> =
        bases.iter().map(|base| Arc::<str>::from(format!("{base}/txs?wait=none"))).collect();
    let accounts = accounts.max(1);
    let permits = Arc::new(Semaphore::new(schedule.concurrency.max(1)));
    let start = Instant::now();
    let stop_at = schedule.duration.map(|d| start + d);
    let mut next = 0usize;
    'release: while next < txs.len() {
        let now = Instant::now();
        if stop_at.is_some_and(|s| now >= s) {
            break;
        }
        let due = match schedule.rate {
            Some(rate) => {
                (((now - start).as_secs_f64() * rate) as usize + 1).min(txs.len()).max(next)
            }
            None => txs.len(),
        };
        while next < due {
            let Ok(permit) = permits.clone().acquire_owned().await else { break 'release };
            let now = Instant::now();
            if stop_at.is_some_and(|s| now >= s) {
                break 'release;
            }
            let scheduled = match schedule.rate {
                Some(rate) => start + Duration::from_secs_f64(next as f64 / rate),
                None => now,
            };
            let index = next;
            let url = urls[(index % accounts) % urls.len().max(1)].clone();
            let (http, txs, records) = (http.clone(), txs.clone(), records.clone());
            tokio::spawn(async move {
                let record = submit_one(&http, &url, &txs[index].body, index, scheduled).await;
                // Send before releasing the permit: once all permits are back, all records are in.
                let _ = records.send(record);
                drop(permit);
            });
            next += 1;
        }
        if let Some(rate) = schedule.rate {
            let wake = start + Duration::from_secs_f64(next as f64 / rate);
            tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_micros(200))).await;
        }
    }
    // Wait for the requests in flight.
    let _ = permits.acquire_many(schedule.concurrency.max(1) as u32).await;
    next
}

async fn submit_one(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    index: usize,
    scheduled: Instant,
) -> SubmitRecord {
    let started = Instant::now();
    let mut retries = Vec::new();
    loop {
        let rejection = post_once(http, url, body).await;
        let retry = rejection.as_deref().is_some_and(|code| RETRYABLE.contains(&code))
            && started.elapsed() < RETRY_LIMIT;
        if !retry {
            return SubmitRecord {
                index,
                scheduled,
                started,
                finished: Instant::now(),
                rejection,
                retries,
            };
        }
        retries.extend(rejection);
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// One `POST /txs`: `None` when admitted, else the error code of the answer.
async fn post_once(http: &reqwest::Client, url: &str, body: &[u8]) -> Option<String> {
    let resp = match http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Some("transport_timeout".into()),
        Err(e) if e.is_connect() => return Some("transport_connect".into()),
        Err(_) => return Some("transport".into()),
    };
    let status = resp.status();
    let bytes = resp.bytes().await.ok();
    if status.is_success() {
        return None;
    }
    let code = bytes
        .and_then(|b| serde_json::from_slice::<gridlease_client::rpc::ErrorBody>(&b).ok())
        .map(|body| body.error.to_string())
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    Some(code)
}
