//! market: bids with the exact resources offered, auctions that close by themselves after the
//! bid window (lowest price wins, earliest bid breaks ties), leases and their close reasons.

use gridlease_types::attributes::attributes_satisfied;
use gridlease_types::{
    Address, BidId, BidPolicy, Coin, DecAmount, DecCoin, OrderId, ResourceOffer,
};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace::{self, DUE_AUCTION};
use crate::receipt::{BeginBlockItem, Event, ReceiptCode};
use crate::state::{
    Bid, BidState, BidTime, CloseReason, Group, GroupState, Lease, LeaseState, NoBidReason, Order,
    OrderState,
};
use crate::view::{StateView, decode_at};

fn order_id_bytes(id: &OrderId) -> Vec<u8> {
    keyspace::order(id)[1..].to_vec()
}

fn parse_order_id(bytes: &[u8]) -> Option<OrderId> {
    let owner: [u8; 20] = bytes.get(..20)?.try_into().ok()?;
    let dseq = u64::from_be_bytes(bytes.get(20..28)?.try_into().ok()?);
    let gseq = u32::from_be_bytes(bytes.get(28..32)?.try_into().ok()?);
    let oseq = u32::from_be_bytes(bytes.get(32..36)?.try_into().ok()?);
    Some(OrderId { owner: Address(owner), dseq, gseq, oseq })
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn order_required(&self, id: &OrderId) -> Res<Order> {
        match self.st.load(&keyspace::order(id))? {
            Some(o) => Ok(o),
            None => fail(ReceiptCode::NotFound, format!("order {id} does not exist")),
        }
    }

    pub(crate) fn group_required(&self, id: &gridlease_types::GroupId) -> Res<Group> {
        match self.st.load(&keyspace::group(id))? {
            Some(g) => Ok(g),
            None => fail(ReceiptCode::NotFound, "group does not exist"),
        }
    }

    pub(crate) fn bid_required(&self, id: &BidId) -> Res<Bid> {
        match self.st.load(&keyspace::bid(id))? {
            Some(b) => Ok(b),
            None => fail(ReceiptCode::NotFound, format!("bid {id} does not exist")),
        }
    }

    fn bids_of(&self, order: &OrderId) -> Res<Vec<Bid>> {
        let mut out = Vec::new();
        for (k, v) in self.st.scan_prefix(&keyspace::bids_of_order(order))? {
            out.push(decode_at::<Bid>(&k, &v)?);
        }
        Ok(out)
    }

    /// Opens a new order (auction round) for a group, closing after the bid window.
    pub(crate) fn open_order(&mut self, group: &mut Group) -> Res<()> {
        group.oseq += 1;
        let id = group.id.order(group.oseq);
        let max_price = match group.spec.max_price() {
            Ok(p) => p,
            Err(e) => return fail(ReceiptCode::InvalidRequest, e.to_string()),
        };
        let closes_at = self.height.saturating_add(self.params.bid_window);
        let order = Order {
            id,
            max_price: max_price.clone(),
            state: OrderState::Open { closes_at: Some(closes_at), stalled: None },
            bids: 0,
            created_at: self.height,
        };
        self.st.save(keyspace::order(&id), &order);
        self.st
            .put(keyspace::due(DUE_AUCTION, closes_at, &order_id_bytes(&id)), order_id_bytes(&id));
        group.state = GroupState::Open;
        self.events.push(Event::OrderOpened { id, max_price, closes_at });
        Ok(())
    }

    fn refund_bid(&mut self, bid: &mut Bid, reason: CloseReason) -> Res<()> {
        if bid.holds_deposit() {
            self.credit(&bid.id.provider, &bid.deposit)?;
        }
        bid.state = BidState::Closed { reason, at: self.height };
        self.st.save(keyspace::bid(&bid.id), bid);
        self.events.push(Event::BidClosed { id: bid.id, reason });
        Ok(())
    }

    /// Closes an open order and every bid still open on it.
    pub(crate) fn close_open_order(&mut self, order: &mut Order, reason: CloseReason) -> Res<()> {
        if let OrderState::Open { closes_at: Some(at), .. } = order.state {
            self.st.delete(keyspace::due(DUE_AUCTION, at, &order_id_bytes(&order.id)));
        }
        for mut bid in self.bids_of(&order.id)? {
            if bid.state == BidState::Open {
                self.refund_bid(&mut bid, reason)?;
            }
        }
        order.state = OrderState::Closed { reason, at: self.height };
        self.st.save(keyspace::order(&order.id), order);
        self.events.push(Event::OrderClosed { id: order.id, reason });
        Ok(())
    }

    /// The providers holding a lease of another group of the same deployment when both groups
    /// ask for distinct providers (empty for a group that does not; at most `max_groups`
    /// groups are read).
    fn sibling_replica_holders(&self, group: &Group) -> Res<Vec<Address>> {
        let mut holders = Vec::new();
        if !group.spec.distinct_providers {
            return Ok(holders);
        }
        let dep = group.id.deployment();
        let Some(d) = self.st.load::<crate::state::Deployment>(&keyspace::deployment(&dep))? else {
            return Ok(holders);
        };
        for gseq in (1..=d.groups).filter(|g| *g != group.id.gseq) {
            let sibling = self.group_required(&dep.group(gseq))?;
            if let (true, GroupState::Leased { provider }) =
                (sibling.spec.distinct_providers, sibling.state)
            {
                holders.push(provider);
            }
        }
        Ok(holders)
    }

    fn holds_sibling_replica(&self, group: &Group, provider: &Address) -> Res<bool> {
        Ok(self.sibling_replica_holders(group)?.contains(provider))
    }

    /// The auction picked `winner`: lease, payment, losers refunded.
    fn match_order(&mut self, order: &mut Order, winner: &BidId) -> Res<()> {
        for mut bid in self.bids_of(&order.id)? {
            if bid.state != BidState::Open {
                continue;
            }
            if &bid.id == winner {
                bid.state = BidState::Won;
                self.st.save(keyspace::bid(&bid.id), &bid);
                let lease = Lease {
                    id: bid.id,
                    price: bid.price.clone(),
                    state: LeaseState::Active,
                    created_at: self.height,
                };
                self.st.save(keyspace::lease(&bid.id), &lease);
                self.st.put(
                    keyspace::by_provider_entry(keyspace::LEASE_BY_PROVIDER, &bid.id),
                    Vec::new(),
                );
                self.escrow_add_payment(&bid.id, bid.price.amount)?;
                self.events.push(Event::LeaseCreated { id: bid.id, price: bid.price.clone() });
            } else {
                self.refund_bid(&mut bid, CloseReason::AuctionLost)?;
            }
        }
        if let OrderState::Open { closes_at: Some(at), .. } = order.state {
            self.st.delete(keyspace::due(DUE_AUCTION, at, &order_id_bytes(&order.id)));
        }
        order.state = OrderState::Matched { provider: winner.provider };
        self.st.save(keyspace::order(&order.id), order);
        let mut group = self.group_required(&order.id.group())?;
        group.state = GroupState::Leased { provider: winner.provider };
        self.st.save(keyspace::group(&group.id), &group);
        Ok(())
    }

    /// Decides the auctions whose bid window ended, each on its own: an auction that fails
    /// leaves its order stalled (`AuctionFailed`, reopenable) and the others go on.
    pub(crate) fn process_auctions(&mut self) -> Res<()> {
        let (start, end) = keyspace::due_until(DUE_AUCTION, self.height);
        for (key, value) in self.st.range(&start, &end)? {
            self.st.delete(key);
            let Some(id) = parse_order_id(&value) else {
                continue;
            };
            let decided =
                self.begin_item(BeginBlockItem::Auction { id }, |ctx| ctx.decide_auction(&id))?;
            if !decided {
                self.begin_item(BeginBlockItem::Auction { id }, |ctx| {
                    let mut order = ctx.order_required(&id)?;
                    if matches!(order.state, OrderState::Open { .. }) {
                        let reason = NoBidReason::AuctionFailed;
                        order.state = OrderState::Open { closes_at: None, stalled: Some(reason) };
                        ctx.st.save(keyspace::order(&id), &order);
                        ctx.events.push(Event::OrderStalled { id, reason });
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    fn decide_auction(&mut self, id: &OrderId) -> Res<()> {
        let id = *id;
        let Some(mut order) = self.st.load::<Order>(&keyspace::order(&id))? else {
            return Ok(());
        };
        if !matches!(order.state, OrderState::Open { closes_at: Some(at), .. } if at <= self.height)
        {
            return Ok(());
        }
        let bids = self.bids_of(&id)?;
        // Read once per auction, not once per bid.
        let group = self.group_required(&id.group())?;
        let holders = self.sibling_replica_holders(&group)?;
        let mut open = Vec::new();
        let mut taken = false;
        for b in bids.iter().filter(|b| b.state == BidState::Open) {
            if holders.contains(&b.id.provider) {
                taken = true;
            } else {
                open.push(b);
            }
        }
        let policy = group.spec.bid_policy;
        let mut scored = Vec::with_capacity(open.len());
        for b in &open {
            let uptime = match policy {
                BidPolicy::Price => None,
                BidPolicy::Reliability => {
                    Some(self.uptime_of(&b.id.provider)?.weighed_uptime_ppm())
                }
            };
            let score = policy.score(b.price.amount.0, uptime.unwrap_or(1_000_000));
            scored.push((score, b.placed, *b, uptime));
        }
        scored.sort_by_key(|(score, placed, _, _)| (*score, *placed));
        let best = scored.first().map(|(_, _, b, _)| b.id);
        let mut won = None;
        if let Some((_, _, winner, uptime)) = scored.first() {
            let n = scored.len();
            let cheapest = open.iter().min_by_key(|b| (b.price.amount, b.placed));
            let why = match (policy, cheapest) {
                (BidPolicy::Reliability, Some(c)) if c.id != winner.id => {
                    let c_up = self.uptime_of(&c.id.provider)?.weighed_uptime_ppm();
                    format!(
                        "lowest price weighted by uptime among {n} bids: {} at {} up beat the lowest price, {} from {} at {} up",
                        winner.price,
                        ppm_percent(uptime.unwrap_or(0)),
                        c.price,
                        c.id.provider,
                        ppm_percent(c_up)
                    )
                }
                (BidPolicy::Reliability, _) => format!(
                    "lowest price weighted by uptime among {n} bids, and the lowest price ({} up)",
                    ppm_percent(uptime.unwrap_or(0))
                ),
                (BidPolicy::Price, _) => format!("lowest price among {n} bids"),
            };
            won = Some(Event::AuctionWon {
                id: winner.id,
                policy,
                price: winner.price.clone(),
                uptime_ppm: uptime
                    .unwrap_or(self.uptime_of(&winner.id.provider)?.weighed_uptime_ppm()),
                bids: u32::try_from(n).unwrap_or(u32::MAX),
                why,
            });
        }
        let stalled = match best {
            None if bids.is_empty() => Some((NoBidReason::NoBids, None)),
            None if taken => Some((NoBidReason::ProvidersTaken, None)),
            None => Some((NoBidReason::AllBidsWithdrawn, None)),
            Some(_) if self.escrow_is_overdrawn(&id.deployment())? => {
                let retry = self.height.saturating_add(self.params.bid_window);
                Some((NoBidReason::EscrowOverdrawn, Some(retry)))
            }
            Some(_) => None,
        };
        match (stalled, best) {
            (Some((reason, retry)), _) => {
                order.state = OrderState::Open { closes_at: retry, stalled: Some(reason) };
                if let Some(at) = retry {
                    let idb = order_id_bytes(&id);
                    self.st.put(keyspace::due(DUE_AUCTION, at, &idb), idb);
                }
                self.st.save(keyspace::order(&id), &order);
                self.events.push(Event::OrderStalled { id, reason });
            }
            (None, Some(winner)) => {
                self.events.extend(won);
                self.match_order(&mut order, &winner)?
            }
            (None, None) => {}
        }
        Ok(())
    }

    pub(crate) fn msg_create_bid(
        &mut self,
        provider: Address,
        order_id: &OrderId,
        price: &DecCoin,
        offer: &[ResourceOffer],
        deposit: &Coin,
    ) -> Res<()> {
        let Some(prov) = self.provider(&provider)? else {
            return fail(
                ReceiptCode::ProviderNotRegistered,
                format!("{provider} is not a registered provider: create the provider first"),
            );
        };
        if provider == order_id.owner {
            return fail(ReceiptCode::Unauthorized, "a provider cannot bid on its own deployment");
        }
        let mut order = self.order_required(order_id)?;
        let OrderState::Open { closes_at, .. } = order.state else {
            return fail(
                ReceiptCode::InvalidState,
                format!("order {order_id} is not open for bids"),
            );
        };
        if !self.params.knows(&price.denom) {
            return fail(
                ReceiptCode::UnknownDenom,
                format!("price is in unknown denom {}", price.denom),
            );
        }
        if price.denom != order.max_price.denom {
            return fail(
                ReceiptCode::DenomMismatch,
                format!("order is priced in {}, the bid in {}", order.max_price.denom, price.denom),
            );
        }
        if price.amount.is_zero() {
            return fail(ReceiptCode::InvalidAmount, "bid price must be above zero");
        }
        if price.amount > order.max_price.amount {
            return fail(
                ReceiptCode::PriceAboveMax,
                format!("bid {price} is above the order's maximum {}", order.max_price),
            );
        }
        self.check_coin(deposit, "bid deposit")?;
        if deposit.denom != self.params.bid_deposit.denom {
            return fail(
                ReceiptCode::DenomMismatch,
                format!("bid deposits are in {}", self.params.bid_deposit.denom),
            );
        }
        if deposit.amount < self.params.bid_deposit.amount {
            return fail(
                ReceiptCode::DepositTooLow,
                format!("bid deposit {deposit} is below the required {}", self.params.bid_deposit),
            );
        }
        let group = self.group_required(&order_id.group())?;
        if self.holds_sibling_replica(&group, &provider)? {
            return fail(
                ReceiptCode::ProviderExcluded,
                "this provider already holds another replica of the deployment, which asks for \
                 each on a provider of its own",
            );
        }
        if self.is_excluded(&group.id, &provider)? {
            return fail(
                ReceiptCode::ProviderExcluded,
                "the chain closed this provider's lease of the group as unhealthy: it cannot bid \
                 on the group again",
            );
        }
        let req = &group.spec.requirements;
        if !attributes_satisfied(&req.attributes, &prov.attributes) {
            return fail(
                ReceiptCode::AttributesNotMatched,
                "provider attributes do not meet the order's requirements",
            );
        }
        if !req.signed_by.is_empty() {
            let mut records = Vec::new();
            for auditor in req.signed_by.all_of.iter().chain(&req.signed_by.any_of) {
                if let Some(rec) = self.audit_record(&provider, auditor)? {
                    records.push(rec);
                }
            }
            let audited = |a: &Address| {
                records.iter().find(|r| &r.auditor == a).map(|r| r.attributes.as_slice())
            };
            if !req.signed_by_satisfied(audited) {
                return fail(
                    ReceiptCode::AttributesNotAudited,
                    "the order's signedBy auditors have not signed these attributes",
                );
            }
        }
        if offer.len() != group.spec.resources.len() {
            return fail(
                ReceiptCode::OfferMismatch,
                format!(
                    "offer covers {} resource units, the order has {}",
                    offer.len(),
                    group.spec.resources.len()
                ),
            );
        }
        for (unit, o) in group.spec.resources.iter().zip(offer) {
            if let Some(why) = unit.offer_mismatch(o) {
                return fail(
                    ReceiptCode::OfferMismatch,
                    format!("resource unit {}: {why}", unit.resources.id),
                );
            }
        }
        let id = BidId { order: *order_id, provider };
        if self.st.get(&keyspace::bid(&id))?.is_some() {
            return fail(ReceiptCode::AlreadyExists, "this provider already bid on the order");
        }
        if order.bids >= self.params.max_bids_per_order {
            return fail(
                ReceiptCode::TooManyBids,
                format!("the order has {} open bids, its limit: wait for one to close", order.bids),
            );
        }
        self.debit(&provider, deposit)?;
        let bid = Bid {
            id,
            price: price.clone(),
            offer: offer.to_vec(),
            deposit: deposit.clone(),
            state: BidState::Open,
            placed: BidTime {
                height: self.height,
                tx_index: self.tx_index,
                msg_index: self.msg_index,
            },
        };
        self.st.save(keyspace::bid(&id), &bid);
        self.st.put(keyspace::by_provider_entry(keyspace::BID_BY_PROVIDER, &id), Vec::new());
        order.bids += 1;
        if closes_at.is_none() {
            // The window ended without a winner: this bid starts a new one.
            let at = self.height.saturating_add(self.params.bid_window);
            order.state = OrderState::Open { closes_at: Some(at), stalled: None };
            self.st.put(
                keyspace::due(DUE_AUCTION, at, &order_id_bytes(order_id)),
                order_id_bytes(order_id),
            );
        }
        self.st.save(keyspace::order(order_id), &order);
        self.events.push(Event::BidCreated { id, price: price.clone() });
        Ok(())
    }

    /// A provider withdraws its open bid before the auction closes. The bid frees its place
    /// on the order and gets its deposit back less `bid_withdraw_penalty_ppm`, which goes to
    /// the community pool: bidding and withdrawing is never free.
    pub(crate) fn msg_close_bid(&mut self, provider: Address, order_id: &OrderId) -> Res<()> {
        let id = BidId { order: *order_id, provider };
        let mut bid = self.bid_required(&id)?;
        if bid.state != BidState::Open {
            return fail(
                ReceiptCode::InvalidState,
                "only an open bid can be withdrawn; close the lease instead",
            );
        }
        let mut order = self.order_required(order_id)?;
        order.bids = order.bids.saturating_sub(1);
        self.st.save(keyspace::order(order_id), &order);
        let penalty = bid.deposit.amount
            * u128::from(self.params.bid_withdraw_penalty_ppm.min(1_000_000))
            / 1_000_000;
        let denom = bid.deposit.denom.clone();
        let back = Coin::new(bid.deposit.amount - penalty, &denom);
        if back.amount > 0 {
            self.credit(&provider, &back)?;
        }
        if penalty > 0 {
            let kept = DecAmount::from_integer(penalty)
                .or_else(|e| fail(ReceiptCode::Overflow, e.to_string()))?;
            self.pool_add(&denom, kept)?;
        }
        bid.state = BidState::Closed { reason: CloseReason::BidWithdrawn, at: self.height };
        self.st.save(keyspace::bid(&id), &bid);
        self.events.push(Event::BidClosed { id, reason: CloseReason::BidWithdrawn });
        Ok(())
    }

    /// The tenant replaces a stalled order (its window ended without a winner) with a fresh
    /// one for the same group: open bids on the old order are refunded in full.
    pub(crate) fn msg_reopen_order(&mut self, tenant: Address, order_id: &OrderId) -> Res<()> {
        if order_id.owner != tenant {
            return fail(
                ReceiptCode::Unauthorized,
                "only the deployment's owner can reopen its order",
            );
        }
        let mut order = self.order_required(order_id)?;
        let OrderState::Open { stalled, .. } = order.state else {
            return fail(ReceiptCode::InvalidState, format!("order {order_id} is not open"));
        };
        if stalled.is_none() {
            return fail(
                ReceiptCode::InvalidState,
                format!("order {order_id} is not stalled: its auction is still running"),
            );
        }
        let mut group = self.group_required(&order_id.group())?;
        if group.oseq != order_id.oseq || group.state != GroupState::Open {
            return fail(ReceiptCode::InvalidState, "the order is not its group's current order");
        }
        self.close_open_order(&mut order, CloseReason::Reopened)?;
        self.open_order(&mut group)?;
        self.st.save(keyspace::group(&group.id), &group);
        let opened = group.id.order(group.oseq);
        self.events.push(Event::OrderReopened { closed: *order_id, opened });
        Ok(())
    }

    pub(crate) fn msg_accept_bid(&mut self, tenant: Address, bid_id: &BidId) -> Res<()> {
        if bid_id.order.owner != tenant {
            return fail(ReceiptCode::Unauthorized, "only the deployment's owner can accept a bid");
        }
        let bid = self.bid_required(bid_id)?;
        if bid.state != BidState::Open {
            return fail(ReceiptCode::InvalidState, "bid is not open");
        }
        let mut order = self.order_required(&bid_id.order)?;
        if !matches!(order.state, OrderState::Open { .. }) {
            return fail(ReceiptCode::InvalidState, "order is not open");
        }
        if self.escrow_is_overdrawn(&bid_id.order.deployment())? {
            return fail(
                ReceiptCode::InvalidState,
                "escrow is overdrawn: deposit before accepting a bid",
            );
        }
        let group = self.group_required(&bid_id.order.group())?;
        if self.holds_sibling_replica(&group, &bid_id.provider)? {
            return fail(
                ReceiptCode::ProviderExcluded,
                "this provider already holds another replica of the deployment",
            );
        }
        let uptime_ppm = self.uptime_of(&bid_id.provider)?.weighed_uptime_ppm();
        self.events.push(Event::AuctionWon {
            id: *bid_id,
            policy: group.spec.bid_policy,
            price: bid.price.clone(),
            uptime_ppm,
            bids: order.bids,
            why: "chosen by the tenant".into(),
        });
        self.match_order(&mut order, bid_id)
    }

    /// Ends an active lease. A provider's close or a failover (`Unhealthy`, which also keeps
    /// part of the provider's bid deposit for the tenant and excludes the provider from the
    /// group) sends the group back to auction; any other reason closes the group.
    pub(crate) fn end_lease(&mut self, lease_id: &BidId, reason: CloseReason) -> Res<()> {
        let Some(mut lease) = self.st.load::<Lease>(&keyspace::lease(lease_id))? else {
            return fail(ReceiptCode::NotFound, format!("lease {lease_id} does not exist"));
        };
        if lease.state != LeaseState::Active {
            return fail(ReceiptCode::InvalidState, "lease is already closed");
        }
        let unhealthy = reason == CloseReason::Unhealthy;
        self.health_on_lease_end(&lease, unhealthy)?;
        self.escrow_close_payment(lease_id)?;
        lease.state = LeaseState::Closed { reason, at: self.height };
        self.st.save(keyspace::lease(lease_id), &lease);
        if unhealthy {
            // The SLA: part of the deposit goes to the tenant (the group's SLA says how much,
            // else the chain's parameter), the rest back to the provider.
            let sla = self.group_required(&lease_id.order.group())?.spec.sla;
            let ppm = sla.map_or(self.params.sla_penalty_ppm, |s| s.penalty_ppm);
            let to_tenant = self.penalize_deposit(lease_id, ppm)?;
            if to_tenant.amount > 0 {
                self.events.push(Event::SlaPenalty { lease: *lease_id, to_tenant });
            }
        }
        let mut bid = self.bid_required(lease_id)?;
        self.refund_bid(&mut bid, CloseReason::LeaseEnded)?;
        let mut order = self.order_required(&lease_id.order)?;
        order.state = OrderState::Closed { reason: CloseReason::LeaseEnded, at: self.height };
        self.st.save(keyspace::order(&order.id), &order);
        self.events.push(Event::OrderClosed { id: order.id, reason: CloseReason::LeaseEnded });
        self.events.push(Event::LeaseClosed { id: *lease_id, reason });
        let mut group = self.group_required(&lease_id.order.group())?;
        if unhealthy {
            self.exclude_provider(&group.id, lease_id.provider)?;
        }
        if matches!(reason, CloseReason::ProviderClosed | CloseReason::Unhealthy) {
            self.open_order(&mut group)?;
        } else {
            group.state = GroupState::Closed { reason, at: self.height };
        }
        self.st.save(keyspace::group(&group.id), &group);
        Ok(())
    }

    pub(crate) fn msg_close_lease(&mut self, signer: Address, lease: &BidId) -> Res<()> {
        let reason = if signer == lease.order.owner {
            CloseReason::TenantClosed
        } else if signer == lease.provider {
            CloseReason::ProviderClosed
        } else {
            return fail(
                ReceiptCode::Unauthorized,
                "only the tenant or the provider can close a lease",
            );
        };
        self.end_lease(lease, reason)
    }

    pub(crate) fn msg_withdraw_lease(&mut self, signer: Address, lease_id: &BidId) -> Res<()> {
        if signer != lease_id.provider {
            return fail(
                ReceiptCode::Unauthorized,
                "only the lease's provider can withdraw its earnings",
            );
        }
        let Some(lease) = self.st.load::<Lease>(&keyspace::lease(lease_id))? else {
            return fail(ReceiptCode::NotFound, format!("lease {lease_id} does not exist"));
        };
        if lease.state != LeaseState::Active {
            return fail(
                ReceiptCode::InvalidState,
                "lease is closed: its earnings were paid at close",
            );
        }
        self.escrow_withdraw(lease_id)
    }
}

/// `ppm` as a percentage with two decimals, for the words of an event.
fn ppm_percent(ppm: u64) -> String {
    format!("{}.{:02}%", ppm / 10_000, (ppm % 10_000) / 100)
}
