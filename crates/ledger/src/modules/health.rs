//! health: the monitors a tenant trusts, their reports on leases, and what follows from them.
//!
//! A lease is down while more than half of its deployment's monitors last reported it down
//! (a monitor that never reported counts as up). Going down pauses the lease's payment (the
//! tenant keeps what the down blocks would have cost) and queues a failover at
//! `failover_grace_blocks` later; coming up resumes the payment and drops the failover. A
//! lease still down when its failover comes due is closed as `Unhealthy`: part of the
//! provider's bid deposit goes to the tenant, and the group goes back to auction without that
//! provider. Every transition costs O(1) whatever the number of leases.

use gridlease_types::msg::{HealthReport, MAX_HEALTH_REPORTS, MAX_MONITORS};
use gridlease_types::state::{Exclusion, LeaseHealth, ProviderUptime};
use gridlease_types::{Address, BidId, Coin, DeploymentId};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace::{self, DUE_FAILOVER};
use crate::receipt::{BeginBlockItem, Event, ReceiptCode};
use crate::state::{CloseReason, GroupState, Lease, LeaseState};
use crate::view::StateView;

/// Most providers a group's auctions remember as excluded (the oldest is forgotten first).
pub const MAX_EXCLUDED: usize = 16;
/// Most SLA periods one down spell is tallied over one by one.
pub const MAX_SLA_PERIODS_PER_SPELL: u64 = 64;

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn monitors_of(&self, id: &DeploymentId) -> Res<Vec<Address>> {
        Ok(self.st.load(&keyspace::monitors(id))?.unwrap_or_default())
    }

    pub(crate) fn uptime_of(&self, provider: &Address) -> Res<ProviderUptime> {
        Ok(self.st.load(&keyspace::provider_uptime(provider))?.unwrap_or_default())
    }

    fn save_uptime(&mut self, provider: &Address, u: &ProviderUptime) {
        self.st.save(keyspace::provider_uptime(provider), u);
    }

    pub(crate) fn msg_set_monitors(
        &mut self,
        tenant: Address,
        dseq: u64,
        monitors: &[Address],
    ) -> Res<()> {
        let id = DeploymentId { owner: tenant, dseq };
        let dep = self.active_deployment(&id)?;
        if monitors.len() > MAX_MONITORS {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("at most {MAX_MONITORS} monitors, not {}", monitors.len()),
            );
        }
        let mut sorted = monitors.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != monitors.len() {
            return fail(ReceiptCode::InvalidRequest, "monitors lists an account twice");
        }
        if monitors.is_empty() {
            self.st.delete(keyspace::monitors(&id));
        } else {
            self.st.save(keyspace::monitors(&id), &monitors.to_vec());
        }
        self.events.push(Event::MonitorsSet { id, monitors: monitors.to_vec() });
        // The leases' state follows the new monitors at once.
        for gseq in 1..=dep.groups {
            let group = self.group_required(&id.group(gseq))?;
            if let GroupState::Leased { provider } = group.state {
                let lease = BidId { order: group.id.order(group.oseq), provider };
                if let Some(mut h) = self.st.load::<LeaseHealth>(&keyspace::lease_health(&lease))? {
                    self.apply_health(&mut h, monitors)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn msg_report_health(
        &mut self,
        monitor: Address,
        reports: &[HealthReport],
    ) -> Res<()> {
        if reports.is_empty() || reports.len() > MAX_HEALTH_REPORTS {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("a report carries 1 to {MAX_HEALTH_REPORTS} leases, not {}", reports.len()),
            );
        }
        let mut cached: Option<(DeploymentId, Vec<Address>)> = None;
        for r in reports {
            let active = self
                .st
                .load::<Lease>(&keyspace::lease(&r.lease))?
                .is_some_and(|l| l.state == LeaseState::Active);
            if !active {
                self.events.push(Event::HealthReportIgnored {
                    lease: r.lease,
                    reason: "no active lease".into(),
                });
                continue;
            }
            let dep = r.lease.order.deployment();
            let monitors = match &cached {
                Some((d, m)) if *d == dep => m.clone(),
                _ => {
                    let m = self.monitors_of(&dep)?;
                    cached = Some((dep, m.clone()));
                    m
                }
            };
            if !monitors.contains(&monitor) {
                self.events.push(Event::HealthReportIgnored {
                    lease: r.lease,
                    reason: "the tenant does not name this monitor".into(),
                });
                continue;
            }
            let key = keyspace::lease_health(&r.lease);
            let mut h = self.st.load::<LeaseHealth>(&key)?.unwrap_or(LeaseHealth {
                lease: r.lease,
                down_since: None,
                down_blocks: 0,
                votes: Vec::new(),
                sla_period: 0,
                sla_period_down: 0,
                sla_period_breached: false,
                sla_breaches: 0,
            });
            // Votes of monitors the tenant no longer names are dropped as they are met.
            h.votes.retain(|(m, _, _)| monitors.contains(m) && *m != monitor);
            h.votes.push((monitor, r.up, self.height));
            h.votes.sort_by_key(|(m, _, _)| *m);
            self.apply_health(&mut h, &monitors)?;
        }
        Ok(())
    }

    /// Moves the lease up or down as its monitors' votes say, and saves the record.
    fn apply_health(&mut self, h: &mut LeaseHealth, monitors: &[Address]) -> Res<()> {
        let down_votes = h.votes.iter().filter(|(m, up, _)| !up && monitors.contains(m)).count();
        let down = !monitors.is_empty() && down_votes * 2 > monitors.len();
        match (h.down_since, down) {
            (None, true) => {
                h.down_since = Some(self.height);
                self.escrow_pause_payment(&h.lease)?;
                let failover_at = self.height.saturating_add(self.params.failover_grace_blocks);
                let idb = keyspace::lease_id_bytes(&h.lease);
                self.st.put(keyspace::due(DUE_FAILOVER, failover_at, &idb), idb);
                let mut u = self.uptime_of(&h.lease.provider)?;
                u.outages = u.outages.saturating_add(1);
                self.save_uptime(&h.lease.provider, &u);
                self.events.push(Event::LeaseDown { id: h.lease, failover_at });
            }
            (Some(since), false) => {
                let blocks = self.height.saturating_sub(since);
                self.end_down_spell(h, since)?;
                self.escrow_resume_payment(&h.lease)?;
                self.events.push(Event::LeaseUp { id: h.lease, down_blocks: blocks });
            }
            _ => {}
        }
        self.st.save(keyspace::lease_health(&h.lease), h);
        Ok(())
    }

    /// Ends the current down spell of `h` (down since `since`): its blocks join the total,
    /// the failover it queued is dropped, and under an SLA they join their periods' tallies.
    fn end_down_spell(&mut self, h: &mut LeaseHealth, since: u64) -> Res<()> {
        h.down_blocks = h.down_blocks.saturating_add(self.height.saturating_sub(since));
        h.down_since = None;
        let at = since.saturating_add(self.params.failover_grace_blocks);
        self.st.delete(keyspace::due(DUE_FAILOVER, at, &keyspace::lease_id_bytes(&h.lease)));
        self.sla_count_spell(h, since)
    }

    /// Adds the down spell from `since` to now to the SLA periods it covers (at most
    /// [`MAX_SLA_PERIODS_PER_SPELL`] of them are tallied one by one; the rest of a longer
    /// spell counts in the last), and pays the penalty of each period it makes a breach.
    fn sla_count_spell(&mut self, h: &mut LeaseHealth, since: u64) -> Res<()> {
        let Some(sla) = self.group_required(&h.lease.order.group())?.spec.sla else {
            return Ok(());
        };
        let Some(lease) = self.st.load::<Lease>(&keyspace::lease(&h.lease))? else {
            return Ok(());
        };
        let (now, period) = (self.height, sla.period_blocks.max(1));
        let allowed = sla.allowed_blocks();
        let mut start = since.max(lease.created_at);
        let mut tallied = 0;
        while start < now {
            let index = (start - lease.created_at) / period;
            tallied += 1;
            let end = if tallied >= MAX_SLA_PERIODS_PER_SPELL {
                now
            } else {
                now.min(lease.created_at.saturating_add((index + 1).saturating_mul(period)))
            };
            if index != h.sla_period {
                h.sla_period = index;
                h.sla_period_down = 0;
                h.sla_period_breached = false;
            }
            h.sla_period_down = h.sla_period_down.saturating_add(end - start);
            if h.sla_period_down > allowed && !h.sla_period_breached {
                h.sla_period_breached = true;
                h.sla_breaches = h.sla_breaches.saturating_add(1);
                let to_tenant = self.penalize_deposit(&h.lease, sla.penalty_ppm)?;
                self.events.push(Event::SlaBreached {
                    lease: h.lease,
                    period: index,
                    down_blocks: h.sla_period_down,
                    allowed_blocks: allowed,
                    to_tenant,
                });
            }
            start = end.max(start + 1);
        }
        Ok(())
    }

    /// Moves `ppm` of the lease's bid deposit to the tenant; returns what moved.
    pub(crate) fn penalize_deposit(&mut self, lease: &BidId, ppm: u32) -> Res<Coin> {
        let mut bid = self.bid_required(lease)?;
        let penalty = bid.deposit.amount * u128::from(ppm.min(1_000_000)) / 1_000_000;
        let moved = Coin::new(penalty, &bid.deposit.denom);
        if penalty > 0 {
            self.credit(&lease.order.owner, &moved)?;
            bid.deposit.amount -= penalty;
            self.st.save(keyspace::bid(lease), &bid);
        }
        Ok(moved)
    }

    /// A lease ends (any reason): its blocks and down blocks join its provider's record, and a
    /// pending failover is dropped. `failover` counts it as one.
    pub(crate) fn health_on_lease_end(&mut self, lease: &Lease, failover: bool) -> Res<()> {
        let key = keyspace::lease_health(&lease.id);
        let mut down = 0;
        if let Some(mut h) = self.st.load::<LeaseHealth>(&key)? {
            if let Some(since) = h.down_since {
                self.end_down_spell(&mut h, since)?;
            }
            down = h.down_blocks;
            self.st.save(key, &h);
        }
        let mut u = self.uptime_of(&lease.id.provider)?;
        u.lease_blocks =
            u.lease_blocks.saturating_add(self.height.saturating_sub(lease.created_at));
        u.down_blocks = u.down_blocks.saturating_add(down);
        if failover {
            u.failovers = u.failovers.saturating_add(1);
        }
        self.save_uptime(&lease.id.provider, &u);
        Ok(())
    }

    /// Remembers that `provider` may not bid on the group for `failover_exclusion_blocks`.
    pub(crate) fn exclude_provider(
        &mut self,
        group: &gridlease_types::GroupId,
        provider: Address,
    ) -> Res<()> {
        let key = keyspace::excluded(group);
        let mut list: Vec<Exclusion> = self.st.load(&key)?.unwrap_or_default();
        let now = self.height;
        list.retain(|e| e.until > now && e.provider != provider);
        if list.len() >= MAX_EXCLUDED {
            list.remove(0);
        }
        let until = now.saturating_add(self.params.failover_exclusion_blocks);
        list.push(Exclusion { provider, until });
        self.st.save(key, &list);
        Ok(())
    }

    pub(crate) fn is_excluded(
        &self,
        group: &gridlease_types::GroupId,
        provider: &Address,
    ) -> Res<bool> {
        let list: Vec<Exclusion> = self.st.load(&keyspace::excluded(group))?.unwrap_or_default();
        Ok(list.iter().any(|e| &e.provider == provider && e.until > self.height))
    }

    /// Leases that stayed down through their failover grace are closed as unhealthy.
    pub(crate) fn process_failovers(&mut self) -> Res<()> {
        let (start, end) = keyspace::due_until(DUE_FAILOVER, self.height);
        for (key, value) in self.st.range(&start, &end)? {
            self.st.delete(key);
            let Some(lease) = keyspace::parse_lease_id(&value) else {
                continue;
            };
            self.begin_item(BeginBlockItem::Failover { lease }, |ctx| {
                let down = ctx
                    .st
                    .load::<LeaseHealth>(&keyspace::lease_health(&lease))?
                    .is_some_and(|h| h.down_since.is_some());
                let active = ctx
                    .st
                    .load::<Lease>(&keyspace::lease(&lease))?
                    .is_some_and(|l| l.state == LeaseState::Active);
                if down && active {
                    ctx.end_lease(&lease, CloseReason::Unhealthy)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
