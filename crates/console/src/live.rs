//! Live blocks for the browsers: one subscription to the node's event stream (however many
//! browsers watch: the node serves few streams), summarised per block and fanned out to the
//! browsers' own server-sent event streams.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use gridlease_client::{BlockEvents, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::journal::Journal;

/// Browsers that may follow the chain at once.
pub const MAX_BROWSER_STREAMS: usize = 256;
/// Blocks a slow browser may fall behind before its stream ends (its page reconnects).
const BACKLOG: usize = 64;

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
            let kind = serde_json::to_value(&e.event)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            *types.entry(kind).or_insert(0) += 1;
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
/// what happened to leases since the console started.
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
            loop {
                match client.subscribe(&[]).await {
                    Ok(mut stream) => loop {
                        match stream.next_block().await {
                            Ok(Some(block)) => {
                                let summary = BlockSummary::of(&block);
                                let text = serde_json::to_string(&summary).unwrap_or_default();
                                height_tx.send_replace(block.height);
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
