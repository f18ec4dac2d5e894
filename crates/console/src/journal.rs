//! What happened to leases, from the chain's events: each lease's health changes (down, up,
//! SLA breaches and penalties), its start and close, and the reason its auction gave for the
//! winner. The live follower records each new block; a backfill from the node's past blocks
//! adds what happened before the console started underneath. Bounded: the latest entries of
//! the most recently active leases. Pure: its owner publishes its (cheaply cloned) state.

use gridlease_client::{BlockEvents, Event};
use gridlease_types::{BidId, OrderId};

/// Entries kept per lease.
pub const ENTRIES_PER_LEASE: usize = 32;
/// Leases tracked at most; the least recently touched are forgotten first.
pub const MAX_LEASES: usize = 20_000;
/// Auction results kept at most; the oldest are forgotten first.
pub const MAX_AUCTIONS: usize = 20_000;

/// The event types the journal records, by their `type` on the wire (what the node's
/// `GET /blocks` counts a block's events by): only blocks with one are worth fetching.
pub const KINDS: [&str; 7] = [
    "lease_created",
    "lease_down",
    "lease_up",
    "sla_breached",
    "sla_penalty",
    "lease_closed",
    "auction_won",
];

/// One thing that happened to a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub height: u64,
    pub what: String,
}

#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// The first block whose events are in (history starts there).
    pub since: Option<u64>,
    leases: imbl::OrdMap<BidId, (u64, imbl::Vector<Entry>)>,
    /// Last touch height → leases, to forget the oldest.
    touched: imbl::OrdSet<(u64, BidId)>,
    auctions: imbl::OrdMap<OrderId, (u64, String)>,
    /// Height → auctions, to forget the oldest.
    auctions_by_height: imbl::OrdSet<(u64, OrderId)>,
}

impl Journal {
    /// Records the lease events of one block.
    pub fn record(&mut self, block: &BlockEvents) {
        self.record_events(block.height, block.events.iter().map(|e| &e.event));
    }

    /// Records the lease events of the block at height `h`, in their order.
    pub fn record_events<'a>(&mut self, h: u64, events: impl IntoIterator<Item = &'a Event>) {
        self.since.get_or_insert(h);
        for event in events {
            match event {
                Event::LeaseCreated { id, price } => {
                    let price = format!("{} {}", crate::html::dec(price.amount, 6), price.denom);
                    self.add(*id, h, format!("lease created at {price} per block"))
                }
                Event::LeaseDown { id, failover_at } => self.add(
                    *id,
                    h,
                    format!("reported down by its monitors: payment paused; fails over at block {failover_at} if still down"),
                ),
                Event::LeaseUp { id, down_blocks } => {
                    self.add(*id, h, format!("up again after {down_blocks} blocks down: payment resumed"))
                }
                Event::SlaBreached { lease, period, down_blocks, allowed_blocks, to_tenant } => self.add(
                    *lease,
                    h,
                    format!("SLA period {period} breached: {down_blocks} blocks down of {allowed_blocks} allowed; {to_tenant} of the deposit to the tenant"),
                ),
                Event::SlaPenalty { lease, to_tenant } => {
                    self.add(*lease, h, format!("closed as unhealthy: {to_tenant} of the deposit to the tenant"))
                }
                Event::LeaseClosed { id, reason } => self.add(*id, h, format!("closed: {reason}")),
                Event::AuctionWon { id, why, .. } => self.add_auction(id.order, h, why.clone()),
                _ => {}
            }
        }
    }

    /// Puts `older`, what happened before this journal's first block, underneath it: each
    /// lease's entries from both, oldest first, within the same bounds; history starts at
    /// `older`'s start.
    pub fn merge_older(&mut self, older: Journal) {
        let newer = std::mem::replace(self, older);
        self.merge_newer(newer);
    }

    /// Puts `newer`, what happened after every block of this journal, on top of it (the
    /// blocks a broken event stream missed, read afterwards).
    pub fn merge_newer(&mut self, newer: Journal) {
        let mut entries: Vec<(u64, BidId, String)> = newer
            .leases
            .iter()
            .flat_map(|(id, (_, e))| e.iter().map(|e| (e.height, *id, e.what.clone())))
            .collect();
        entries.sort_by_key(|(h, id, _)| (*h, *id));
        for (h, id, what) in entries {
            self.add(id, h, what);
        }
        for (order, (h, why)) in newer.auctions.iter() {
            self.add_auction(*order, *h, why.clone());
        }
        self.since = match (self.since, newer.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn add_auction(&mut self, order: OrderId, height: u64, why: String) {
        if let Some((was, _)) = self.auctions.remove(&order) {
            self.auctions_by_height.remove(&(was, order));
        }
        self.auctions.insert(order, (height, why));
        self.auctions_by_height.insert((height, order));
        while self.auctions.len() > MAX_AUCTIONS {
            let Some(oldest) = self.auctions_by_height.get_min().cloned() else { break };
            self.auctions_by_height.remove(&oldest);
            self.auctions.remove(&oldest.1);
        }
    }

    fn add(&mut self, lease: BidId, height: u64, what: String) {
        let (last, mut entries) = self.leases.remove(&lease).unwrap_or_default();
        self.touched.remove(&(last, lease));
        entries.push_back(Entry { height, what });
        while entries.len() > ENTRIES_PER_LEASE {
            entries.pop_front();
        }
        self.leases.insert(lease, (height, entries));
        self.touched.insert((height, lease));
        while self.leases.len() > MAX_LEASES {
            let Some(oldest) = self.touched.get_min().cloned() else { break };
            self.touched.remove(&oldest);
            self.leases.remove(&oldest.1);
        }
    }

    /// What happened to a lease, oldest first.
    pub fn lease(&self, id: &BidId) -> Vec<Entry> {
        self.leases.get(id).map(|(_, e)| e.iter().cloned().collect()).unwrap_or_default()
    }

    /// The auction's reason for its winner, and the height, when the journal has it.
    pub fn auction(&self, order: &OrderId) -> Option<(u64, String)> {
        self.auctions.get(order).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridlease_client::ChainEvent;
    use gridlease_types::Address;

    fn id(dseq: u64) -> BidId {
        BidId {
            order: OrderId { owner: Address([1; 20]), dseq, gseq: 1, oseq: 1 },
            provider: Address([2; 20]),
        }
    }

    fn price() -> gridlease_types::DecCoin {
        gridlease_types::DecCoin {
            denom: "ugrid".parse().expect("denom"),
            amount: "1.5".parse().expect("amount"),
        }
    }

    fn won(bid: BidId, why: &str) -> Event {
        Event::AuctionWon {
            id: bid,
            policy: Default::default(),
            price: price(),
            uptime_ppm: 0,
            bids: 1,
            why: why.into(),
        }
    }

    fn block(height: u64, events: Vec<Event>) -> BlockEvents {
        BlockEvents {
            height,
            time: String::new(),
            events: events
                .into_iter()
                .map(|event| ChainEvent { height, tx_hash: None, event })
                .collect(),
        }
    }

    #[test]
    fn a_lease_s_health_changes_are_kept_in_order() {
        let mut j = Journal::default();
        j.record(&block(5, vec![Event::LeaseDown { id: id(1), failover_at: 20 }]));
        j.record(&block(9, vec![Event::LeaseUp { id: id(1), down_blocks: 4 }]));
        let e = j.lease(&id(1));
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].height, e[1].height), (5, 9));
        assert!(e[0].what.contains("block 20") && e[1].what.contains("after 4 blocks"), "{e:?}");
        assert_eq!(j.since, Some(5));
        assert!(j.lease(&id(2)).is_empty());
    }

    #[test]
    fn the_kinds_are_the_wire_names_of_the_events_recorded() {
        let order = id(1).order;
        let coin = gridlease_types::Coin::new(1, &"ugrid".parse().expect("denom"));
        let events = [
            Event::LeaseCreated { id: id(1), price: price() },
            Event::LeaseDown { id: id(1), failover_at: 2 },
            Event::LeaseUp { id: id(1), down_blocks: 1 },
            Event::SlaBreached {
                lease: id(1),
                period: 1,
                down_blocks: 1,
                allowed_blocks: 0,
                to_tenant: coin.clone(),
            },
            Event::SlaPenalty { lease: id(1), to_tenant: coin },
            Event::LeaseClosed { id: id(1), reason: gridlease_client::CloseReason::TenantClosed },
            won(id(1), "lowest"),
        ];
        let mut j = Journal::default();
        for (e, kind) in events.iter().zip(KINDS) {
            let wire = serde_json::to_value(e).expect("json");
            assert_eq!(wire["type"], kind);
            let before = (j.lease(&id(1)).len(), j.auction(&order).is_some());
            j.record_events(1, [e]);
            assert_ne!(
                before,
                (j.lease(&id(1)).len(), j.auction(&order).is_some()),
                "{kind} is recorded"
            );
        }
    }

    #[test]
    fn an_older_history_goes_underneath() {
        let mut live = Journal::default();
        live.record(&block(50, vec![Event::LeaseDown { id: id(1), failover_at: 60 }]));
        live.record(&block(52, vec![Event::LeaseUp { id: id(1), down_blocks: 2 }]));
        let mut older = Journal::default();
        older.record(&block(3, vec![Event::LeaseCreated { id: id(1), price: price() }]));
        older.record(&block(4, vec![Event::LeaseCreated { id: id(2), price: price() }]));
        older.record_events(7, [&won(id(2), "the only bid")]);
        older.since = Some(1);
        live.merge_older(older);
        let heights: Vec<u64> = live.lease(&id(1)).iter().map(|e| e.height).collect();
        assert_eq!(heights, [3, 50, 52]);
        assert_eq!(live.lease(&id(2)).len(), 1);
        assert_eq!(live.auction(&id(2).order).map(|a| a.0), Some(7));
        assert_eq!(live.since, Some(1));
        // Within the bounds: a lease with more than its share keeps the newest.
        let mut live = Journal::default();
        for h in 100..100 + ENTRIES_PER_LEASE as u64 {
            live.record(&block(h, vec![Event::LeaseUp { id: id(1), down_blocks: h }]));
        }
        let mut older = Journal::default();
        older.record(&block(3, vec![Event::LeaseCreated { id: id(1), price: price() }]));
        live.merge_older(older);
        let e = live.lease(&id(1));
        assert_eq!((e.len(), e[0].height), (ENTRIES_PER_LEASE, 100));
    }

    #[test]
    fn a_missed_stretch_goes_on_top() {
        let mut book = Journal::default();
        book.record(&block(10, vec![Event::LeaseCreated { id: id(1), price: price() }]));
        let mut gap = Journal::default();
        gap.record(&block(14, vec![Event::LeaseDown { id: id(1), failover_at: 30 }]));
        gap.since = Some(11);
        book.merge_newer(gap);
        book.record(&block(20, vec![Event::LeaseUp { id: id(1), down_blocks: 6 }]));
        let heights: Vec<u64> = book.lease(&id(1)).iter().map(|e| e.height).collect();
        assert_eq!(heights, [10, 14, 20]);
        assert_eq!(book.since, Some(10));
    }

    #[test]
    fn the_journal_is_bounded() {
        let mut j = Journal::default();
        for h in 0..(ENTRIES_PER_LEASE as u64 + 10) {
            j.record(&block(h, vec![Event::LeaseUp { id: id(1), down_blocks: h }]));
        }
        let e = j.lease(&id(1));
        assert_eq!(e.len(), ENTRIES_PER_LEASE);
        assert_eq!(e[0].height, 10, "the oldest entries went first");
        for d in 0..(MAX_LEASES as u64 + 5) {
            j.add(id(d + 100), 1000 + d, "x".into());
        }
        assert_eq!(j.leases.len(), MAX_LEASES);
        assert_eq!(j.touched.len(), MAX_LEASES);
        assert!(j.lease(&id(1)).is_empty(), "the least recently touched lease was forgotten");
        for d in 0..(MAX_AUCTIONS as u64 + 5) {
            j.add_auction(id(d).order, d, "x".into());
        }
        assert_eq!((j.auctions.len(), j.auctions_by_height.len()), (MAX_AUCTIONS, MAX_AUCTIONS));
        assert!(j.auction(&id(0).order).is_none(), "the oldest auction was forgotten");
        assert!(j.auction(&id(MAX_AUCTIONS as u64 + 4).order).is_some());
    }
}
