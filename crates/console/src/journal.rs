//! What the console saw happen to leases while it followed the chain: each lease's health
//! changes (down, up, SLA breaches and penalties), its start and close, and the reason its
//! auction gave for the winner. Bounded: the latest entries of the most recently active
//! leases. Pure: the live follower feeds it blocks and publishes its (cheaply cloned) state.

use gridlease_client::{BlockEvents, Event};
use gridlease_types::{BidId, OrderId};

/// Entries kept per lease.
pub const ENTRIES_PER_LEASE: usize = 32;
/// Leases tracked at most; the least recently touched are forgotten first.
pub const MAX_LEASES: usize = 20_000;
/// Auction results kept at most.
pub const MAX_AUCTIONS: usize = 20_000;

/// One thing that happened to a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub height: u64,
    pub what: String,
}

#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// The first block the console saw (history starts there).
    pub since: Option<u64>,
    leases: imbl::OrdMap<BidId, (u64, imbl::Vector<Entry>)>,
    /// Last touch height → leases, to forget the oldest.
    touched: imbl::OrdSet<(u64, BidId)>,
    auctions: imbl::OrdMap<OrderId, (u64, String)>,
}

impl Journal {
    /// Records the lease events of one block.
    pub fn record(&mut self, block: &BlockEvents) {
        self.since.get_or_insert(block.height);
        let h = block.height;
        for e in &block.events {
            match &e.event {
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
                Event::AuctionWon { id, why, .. } => {
                    if self.auctions.len() >= MAX_AUCTIONS
                        && let Some((oldest, _)) = self.auctions.iter().min_by_key(|(_, (at, _))| *at).map(|(k, v)| (*k, v.clone()))
                    {
                        self.auctions.remove(&oldest);
                    }
                    self.auctions.insert(id.order, (h, why.clone()));
                }
                _ => {}
            }
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

    /// What the console saw of a lease, oldest first.
    pub fn lease(&self, id: &BidId) -> Vec<Entry> {
        self.leases.get(id).map(|(_, e)| e.iter().cloned().collect()).unwrap_or_default()
    }

    /// The auction's reason for its winner, and the height, when the console saw it.
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
    }
}
