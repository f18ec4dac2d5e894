//! Follows the node's `GET /events` stream (one `block` event per committed block) and records
//! when each block arrived and which of our transactions it committed; samples `/metrics`
//! after every block.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use gridlease_client::BlockEvents;
use gridlease_types::TxHash;
use tokio::time::Instant;

/// Event type a bank send emits; the stream is filtered to it.
const SEND_EVENT: &str = "transfer";

/// A committed block as the generator saw it.
#[derive(Debug, Clone)]
pub struct BlockSeen {
    pub height: u64,
    /// When its event reached us: the commit time of its transactions.
    pub arrived: Instant,
    /// The proposer's block time, unix milliseconds.
    pub time_ms: Option<u64>,
    /// Our transactions first seen committed in it.
    pub ours: usize,
}

/// Node gauges read right after a block event.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsSample {
    pub block_commit_seconds: Option<f64>,
    pub mempool_size: Option<f64>,
}

/// Everything the follower learned; shared with the main task.
#[derive(Debug, Default)]
pub struct Observed {
    /// Per transaction index: the height that committed it.
    pub committed_at: Vec<Option<u64>>,
    pub blocks: BTreeMap<u64, BlockSeen>,
    pub metrics: BTreeMap<u64, MetricsSample>,
}

/// Handle on a running follower.
#[derive(Debug, Clone)]
pub struct Follower {
    pub observed: Arc<Mutex<Observed>>,
    /// Our transactions seen committed so far.
    pub committed: Arc<AtomicUsize>,
}

impl Follower {
    pub fn observed(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Connects to the stream (returning once the node accepted the subscription) and follows it
/// in a background task.
pub async fn start(
    http: reqwest::Client,
    base: &str,
    hashes: Arc<HashMap<TxHash, usize>>,
) -> anyhow::Result<Follower> {
    let url = format!("{base}/events?types={SEND_EVENT}");
    // The stream must not time out: use a client without a request timeout.
    let resp = http.get(&url).send().await.with_context(|| format!("cannot open {url}"))?;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    let follower = Follower {
        observed: Arc::new(Mutex::new(Observed {
            committed_at: vec![None; hashes.len()],
            ..Default::default()
        })),
        committed: Arc::new(AtomicUsize::new(0)),
    };
    let task = follower.clone();
    let metrics_url = format!("{base}/metrics");
    tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        // Bytes of `buf` already searched for a frame end (big blocks come in many chunks).
        let mut searched: usize = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            let arrived = Instant::now();
            buf.extend_from_slice(&chunk);
            loop {
                // A `\n\n` may straddle the old end: search from one byte before it.
                let from = searched.saturating_sub(1);
                let Some(end) = frame_end(&buf[from..]).map(|e| e + from) else { break };
                let frame: Vec<u8> = buf.drain(..end).collect();
                searched = 0;
                let Some(data) = frame_data(&frame) else { continue };
                let Ok(v) = serde_json::from_str::<BlockEvents>(&data) else { continue };
                let Some(height) = record_block(&task, &hashes, &v, arrived) else { continue };
                let (http, url, observed) =
                    (http.clone(), metrics_url.clone(), task.observed.clone());
                tokio::spawn(async move {
                    if let Some(sample) = sample_metrics(&http, &url).await {
                        observed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .metrics
                            .insert(height, sample);
                    }
                });
            }
            searched = buf.len();
        }
    });
    Ok(follower)
}

/// Index just past the first `\n\n` (the end of one server-sent event).
fn frame_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// The `data:` lines of one frame, joined.
fn frame_data(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn record_block(
    f: &Follower,
    hashes: &HashMap<TxHash, usize>,
    v: &BlockEvents,
    arrived: Instant,
) -> Option<u64> {
    let height = v.height;
    let mut seen = f.observed();
    let mut ours = 0;
    for e in &v.events {
        let Some(hash) = e.tx_hash.as_deref().and_then(|h| h.parse::<TxHash>().ok()) else {
            continue;
        };
        if let Some(&i) = hashes.get(&hash)
            && seen.committed_at[i].is_none()
        {
            seen.committed_at[i] = Some(height);
            ours += 1;
        }
    }
    let time_ms = parse_rfc3339_ms(&v.time);
    seen.blocks.insert(height, BlockSeen { height, arrived, time_ms, ours });
    f.committed.fetch_add(ours, Ordering::Relaxed);
    Some(height)
}

async fn sample_metrics(http: &reqwest::Client, url: &str) -> Option<MetricsSample> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let gauge = |name: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some(MetricsSample {
        block_commit_seconds: gauge("gridlease_block_commit_seconds"),
        mempool_size: gauge("gridlease_mempool_size"),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` to unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2024-02-29T12:34:56.789Z"), Some(1_709_210_096_789));
        assert_eq!(parse_rfc3339_ms("2001-09-09T01:46:40Z"), Some(1_000_000_000_000));
        assert_eq!(parse_rfc3339_ms("garbage"), None);
    }

    #[test]
    fn frames_split_on_blank_lines() {
        let buf = b"event: block\ndata: {\"height\":3}\n\n: keep-alive\n\nevent: bl";
        let end = frame_end(buf).unwrap();
        assert_eq!(frame_data(&buf[..end]).as_deref(), Some("{\"height\":3}"));
        let rest = &buf[end..];
        let end2 = frame_end(rest).unwrap();
        assert_eq!(frame_data(&rest[..end2]), None);
        assert_eq!(frame_end(&rest[end2..]), None);
    }
}
