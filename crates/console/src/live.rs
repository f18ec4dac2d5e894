//! Live blocks for the browsers: one subscription to the node's event stream (however many
//! browsers watch: the node serves few streams), summarised per block and fanned out to the
//! browsers' own server-sent event streams. The same follower keeps the lease journal, and
//! once, at its first block, reads what happened before from the node's past blocks
//! ([`backfill`]), so a console started late still shows a lease's history.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::StreamExt;
use gridlease_client::{BlockEvents, Client, ClientError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast, oneshot, watch};

use crate::journal::{self, Journal};

/// Browsers that may follow the chain at once.
pub const MAX_BROWSER_STREAMS: usize = 256;
/// Blocks a slow browser may fall behind before its stream ends (its page reconnects).
const BACKLOG: usize = 64;
/// Past blocks the backfill reads the summaries of (100 a request), newest first.
pub const BACKFILL_BLOCKS: u64 = 20_000;
/// Past blocks with lease events the backfill fetches whole at most (the newest).
pub const BACKFILL_FETCHES: usize = 2_000;
/// Whole blocks fetched at once by the backfill.
const BACKFILL_CONCURRENCY: usize = 4;

/// What a browser receives of each block: `event: block`, this as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSummary {
    pub height: u64,
    pub time: String,
    /// Transactions that left events (every committed one pays a fee, so all of them).
    pub txs: usize,
    /// Events in the block.
    pub events: usize,
    /// Event type → how many of them.
    pub types: BTreeMap<String, usize>,
}

impl BlockSummary {
    pub fn of(block: &BlockEvents) -> BlockSummary {
        let mut types = BTreeMap::new();
        for e in &block.events {
            *types.entry(e.event.kind().to_string()).or_insert(0) += 1;
        }
        let txs: std::collections::BTreeSet<&str> =
            block.events.iter().filter_map(|e| e.tx_hash.as_deref()).collect();
        BlockSummary {
            height: block.height,
            time: block.time.clone(),
            txs: txs.len(),
            events: block.events.len(),
            types,
        }
    }
}

/// The follower's outputs: each block's summary, the latest height, and the journal of
/// what happened to leases (from the backfill's start on).
#[derive(Clone, Debug)]
pub struct Live {
    blocks: broadcast::Sender<Arc<String>>,
    pub height: watch::Receiver<u64>,
    pub journal: watch::Receiver<Journal>,
    streams: Arc<Semaphore>,
}

impl Live {
    /// Follows the node at `client` for as long as the runtime lives, reconnecting after a
    /// broken stream.
    pub fn start(client: Client) -> Live {
        let (blocks, _) = broadcast::channel(BACKLOG);
        let (height_tx, height) = watch::channel(0u64);
        let (journal_tx, journal) = watch::channel(Journal::default());
        let sender = blocks.clone();
        tokio::spawn(async move {
            let mut book = Journal::default();
            // The history below the first block followed, once it is read.
            let mut older: Option<oneshot::Receiver<Journal>> = None;
            let mut last: Option<u64> = None;
            loop {
                match client.subscribe(&[]).await {
                    Ok(mut stream) => loop {
                        // The history is merged as soon as it arrives, not at the next block
                        // (a stalled chain sends none).
                        let next = tokio::select! {
                            history = arrival(&mut older) => {
                                older = None;
                                if let Some(history) = history {
                                    book.merge_older(history);
                                    journal_tx.send_replace(book.clone());
                                }
                                continue;
                            }
                            next = stream.next_block() => next,
                        };
                        match next {
                            Ok(Some(block)) => {
                                let summary = BlockSummary::of(&block);
                                let text = serde_json::to_string(&summary).unwrap_or_default();
                                height_tx.send_replace(block.height);
                                if book.since.is_none() {
                                    older = Some(start_backfill(client.clone(), block.height));
                                }
                                // A new stream after a broken one: read what it missed.
                                if let Some(last) = last
                                    && block.height > last.saturating_add(1)
                                {
                                    fill(&client, &mut book, last.saturating_add(1), block.height)
                                        .await;
                                }
                                last = Some(block.height);
                                book.record(&block);
                                // An imbl map: the clone shares its nodes.
                                journal_tx.send_replace(book.clone());
                                // No browser listening is fine.
                                let _ = sender.send(Arc::new(text));
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(target: "console.live", "event stream: {e}; resubscribing");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::info!(target: "console.live", "cannot follow the node: {e}"),
                }
                if sender.receiver_count() == 0 && height_tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Live { blocks, height, journal, streams: Arc::new(Semaphore::new(MAX_BROWSER_STREAMS)) }
    }

    /// A browser's stream, or `None` when `MAX_BROWSER_STREAMS` are open.
    pub fn browser_stream(
        &self,
    ) -> Option<Sse<impl Stream<Item = Result<SseEvent, Infallible>> + use<>>> {
        let permit = Arc::clone(&self.streams).try_acquire_owned().ok()?;
        let rx = self.blocks.subscribe();
        let stream = futures_util::stream::unfold(Some((rx, permit)), |state| async move {
            let (mut rx, permit) = state?;
            match rx.recv().await {
                Ok(text) => {
                    let event = SseEvent::default().event("block").data(text.as_str());
                    Some((Ok(event), Some((rx, permit))))
                }
                // A browser that fell behind is closed; its page reconnects.
                Err(_) => None,
            }
        });
        Some(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
    }
}

/// Adds to `book` what happened in blocks `from..below`, which the event stream missed.
async fn fill(client: &Client, book: &mut Journal, from: u64, below: u64) {
    match history(client, from, below).await {
        Ok(missed) => {
            if missed.since.is_some_and(|s| s > from) {
                tracing::warn!(target: "console.live", from, below, "the lease history misses blocks before {:?}", missed.since);
            }
            book.merge_newer(missed);
        }
        Err(e) => {
            tracing::warn!(target: "console.live", from, below, "the lease history misses these blocks: {e}")
        }
    }
}

/// The backfill's journal once it arrives (`None` when it never will); pending while there
/// is none to wait for.
async fn arrival(rx: &mut Option<oneshot::Receiver<Journal>>) -> Option<Journal> {
    match rx {
        Some(rx) => rx.await.ok(),
        None => std::future::pending().await,
    }
}

/// Reads the history below `below` in a task; its journal arrives on the receiver (never,
/// when the node cannot give it in three tries: history then starts at `below`).
fn start_backfill(client: Client, below: u64) -> oneshot::Receiver<Journal> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        for attempt in 1..=3 {
            match backfill(&client, below).await {
                Ok(history) => {
                    tracing::info!(target: "console.live", below, since = ?history.since, "read the lease history");
                    let _ = tx.send(history);
                    return;
                }
                Err(e) => {
                    tracing::warn!(target: "console.live", attempt, "cannot read the lease history: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    rx
}

/// What happened to leases in the blocks below `below` (from block 1 on, within bounds).
pub async fn backfill(client: &Client, below: u64) -> Result<Journal, ClientError> {
    history(client, 1, below).await
}

/// What happened to leases in blocks `from..below`: the node's summaries of the latest
/// [`BACKFILL_BLOCKS`] of them, then each with a lease event ([`journal::KINDS`]) fetched
/// whole, the newest [`BACKFILL_FETCHES`] at most. The journal's `since` is the lowest
/// height whose lease events are all in it (`from` unless a bound cut the walk short).
pub async fn history(client: &Client, from: u64, below: u64) -> Result<Journal, ClientError> {
    let from = from.max(1);
    let mut wanted = Vec::new();
    let mut covered = below;
    let mut before = Some(below).filter(|b| *b > from);
    while let Some(b) = before
        && below - covered < BACKFILL_BLOCKS
    {
        let page = client.blocks(Some(b), 100).await?;
        for s in page.blocks.iter().filter(|s| s.height >= from && s.height < below) {
            covered = covered.min(s.height);
            if s.event_kinds.keys().any(|k| journal::KINDS.contains(&k.as_str())) {
                wanted.push(s.height);
            }
        }
        // Pages go strictly down; anything else ends the walk.
        before = page.next_before.filter(|n| *n < b && *n > from);
    }
    let mut since = covered;
    if wanted.len() > BACKFILL_FETCHES {
        since = wanted[BACKFILL_FETCHES] + 1;
        wanted.truncate(BACKFILL_FETCHES);
    }
    wanted.reverse();
    let mut history = Journal::default();
    let mut blocks = futures_util::stream::iter(wanted)
        .map(|h| {
            let client = client.clone();
            async move { client.block(h).await }
        })
        .buffered(BACKFILL_CONCURRENCY);
    while let Some(block) = blocks.next().await {
        // A block the node no longer has adds nothing.
        let Some(view) = block? else { continue };
        let events = view.receipts.iter().flat_map(|r| r.events.iter());
        history.record_events(view.height, view.begin_events.iter().chain(events));
    }
    history.since = Some(since);
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridlease_client::{ChainEvent, Event};
    use gridlease_types::Address;

    #[test]
    fn a_block_is_summarised_by_event_type() {
        let e = |owner: u8| ChainEvent {
            height: 7,
            tx_hash: None,
            event: Event::ProviderCreated { owner: Address([owner; 20]) },
        };
        let block = BlockEvents { height: 7, time: "t".into(), events: vec![e(1), e(2)] };
        let s = BlockSummary::of(&block);
        assert_eq!((s.height, s.events, s.txs), (7, 2, 0));
        assert_eq!(s.types.get("provider_created"), Some(&2));
    }
}
