//! deployment: a tenant's deployment, its groups and their orders.

use gridlease_types::{Address, Coin, DeploymentId, GroupSpec};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace;
use crate::receipt::{Event, ReceiptCode};
use crate::state::{CloseReason, Deployment, DeploymentState, Group, GroupState, OrderState};
use crate::view::StateView;

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn active_deployment(&self, id: &DeploymentId) -> Res<Deployment> {
        match self.st.load::<Deployment>(&keyspace::deployment(id))? {
            None => fail(ReceiptCode::NotFound, format!("deployment {id} does not exist")),
            Some(d) if d.state != DeploymentState::Active => {
                fail(ReceiptCode::InvalidState, format!("deployment {id} is closed"))
            }
            Some(d) => Ok(d),
        }
    }

    pub(crate) fn msg_create_deployment(
        &mut self,
        owner: Address,
        dseq: u64,
        groups: &[GroupSpec],
        manifest_hash: [u8; 32],
        deposit: &Coin,
    ) -> Res<()> {
        let id = DeploymentId { owner, dseq };
        if dseq == 0 {
            return fail(ReceiptCode::InvalidRequest, "dseq must be above zero");
        }
        if groups.is_empty() || groups.len() > self.params.max_groups as usize {
            return fail(
                ReceiptCode::InvalidRequest,
                format!("a deployment needs 1 to {} groups", self.params.max_groups),
            );
        }
        self.check_coin(deposit, "deposit")?;
        let Some(min) = self.params.min_deposit(&deposit.denom) else {
            return fail(
                ReceiptCode::UnknownDenom,
                format!("{} cannot fund deployments", deposit.denom),
            );
        };
        let mut names = std::collections::BTreeSet::new();
        // Every group's lease pays out of the one escrow account, whose rate is the sum of
        // the lease prices: refuse here any deployment whose groups' maximum prices cannot be
        // summed, so that starting its leases in begin-block can never overflow that rate.
        let mut total_max = gridlease_types::DecAmount::ZERO;
        for g in groups {
            let max = match g.max_price() {
                Ok(p) => p.amount,
                Err(gridlease_types::resources::PriceError::Overflow) => {
                    return fail(
                        ReceiptCode::Overflow,
                        format!("group `{}`: total price overflows", g.name),
                    );
                }
                Err(_) => gridlease_types::DecAmount::ZERO,
            };
            total_max = match total_max.checked_add(max) {
                Ok(t) => t,
                Err(_) => {
                    return fail(
                        ReceiptCode::Overflow,
                        "the sum of the groups' maximum prices overflows: lower the prices",
                    );
                }
            };
            if let Err(e) = g.validate() {
                return fail(ReceiptCode::InvalidRequest, e.0);
            }
            if !names.insert(g.name.as_str()) {
                return fail(
                    ReceiptCode::InvalidRequest,
                    format!("group name `{}` is used twice", g.name),
                );
            }
            for u in &g.resources {
                if !self.params.knows(&u.price.denom) {
                    return fail(
                        ReceiptCode::UnknownDenom,
                        format!("price is in unknown denom {}", u.price.denom),
                    );
                }
                if u.price.denom != deposit.denom {
                    return fail(
                        ReceiptCode::DenomMismatch,
                        format!(
                            "group `{}` is priced in {}, the deposit is in {}",
                            g.name, u.price.denom, deposit.denom
                        ),
                    );
                }
            }
            crate::modules::validate_attributes(&g.requirements.attributes)?;
        }
        if deposit.amount < min {
            return fail(
                ReceiptCode::DepositTooLow,
                format!("deposit {deposit} is below the minimum {min}{}", deposit.denom),
            );
        }
        if self.st.get(&keyspace::deployment(&id))?.is_some() {
            return fail(
                ReceiptCode::AlreadyExists,
                format!("deployment {id} already exists: pick another dseq"),
            );
        }
        self.debit(&owner, deposit)?;
        self.escrow_open(id, deposit)?;
        let count = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        let dep = Deployment {
            id,
            state: DeploymentState::Active,
            manifest_hash,
            groups: count,
            created_at: self.height,
        };
        self.st.save(keyspace::deployment(&id), &dep);
        self.events.push(Event::DeploymentCreated { id, deposit: deposit.clone() });
        for (i, spec) in groups.iter().enumerate() {
            let gseq = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let mut group = Group {
                id: id.group(gseq),
                spec: spec.clone(),
                state: GroupState::Open,
                oseq: 0,
                created_at: self.height,
            };
            self.open_order(&mut group)?;
            self.st.save(keyspace::group(&group.id), &group);
        }
        Ok(())
    }

    pub(crate) fn msg_deposit_deployment(
        &mut self,
        owner: Address,
        dseq: u64,
        amount: &Coin,
    ) -> Res<()> {
        let id = DeploymentId { owner, dseq };
        self.check_coin(amount, "deposit")?;
        self.active_deployment(&id)?;
        self.debit(&owner, amount)?;
        self.escrow_deposit(&id, amount)?;
        self.events.push(Event::DeploymentDeposit { id, amount: amount.clone() });
        Ok(())
    }

    pub(crate) fn msg_update_deployment(
        &mut self,
        owner: Address,
        dseq: u64,
        hash: [u8; 32],
    ) -> Res<()> {
        let id = DeploymentId { owner, dseq };
        let mut dep = self.active_deployment(&id)?;
        if dep.manifest_hash == hash {
            return fail(ReceiptCode::InvalidRequest, "the manifest hash is unchanged");
        }
        dep.manifest_hash = hash;
        self.st.save(keyspace::deployment(&id), &dep);
        self.events.push(Event::DeploymentUpdated { id });
        Ok(())
    }

    pub(crate) fn msg_close_deployment(&mut self, owner: Address, dseq: u64) -> Res<()> {
        let id = DeploymentId { owner, dseq };
        self.active_deployment(&id)?;
        self.close_deployment(&id, CloseReason::TenantClosed)
    }

    /// Closes a deployment with everything under it. Leases close with `DeploymentClosed`
    /// when the tenant closed it, or with the deployment's own reason otherwise.
    pub(crate) fn close_deployment(&mut self, id: &DeploymentId, reason: CloseReason) -> Res<()> {
        let mut dep = self.active_deployment(id)?;
        let inner = if reason == CloseReason::TenantClosed {
            CloseReason::DeploymentClosed
        } else {
            reason
        };
        for gseq in 1..=dep.groups {
            let mut group = self.group_required(&id.group(gseq))?;
            match group.state {
                GroupState::Closed { .. } => continue,
                GroupState::Leased { provider } => {
                    let lease =
                        gridlease_types::BidId { order: group.id.order(group.oseq), provider };
                    self.end_lease(&lease, inner)?;
                    group = self.group_required(&id.group(gseq))?;
                }
                GroupState::Open => {
                    let mut order = self.order_required(&group.id.order(group.oseq))?;
                    if matches!(order.state, OrderState::Open { .. }) {
                        self.close_open_order(&mut order, inner)?;
                    }
                    group.state = GroupState::Closed { reason: inner, at: self.height };
                }
            }
            self.st.save(keyspace::group(&group.id), &group);
        }
        self.escrow_close(id)?;
        dep.state = DeploymentState::Closed { reason, at: self.height };
        self.st.save(keyspace::deployment(id), &dep);
        self.events.push(Event::DeploymentClosed { id: *id, reason });
        Ok(())
    }
}
