//! escrow: one account per deployment, one payment per lease, settled lazily.
//!
//! Settling an account costs O(1) whatever its number of leases: the account counts the
//! blocks it paid in full (`paid_blocks`), and a payment's share is its rate times the blocks
//! since its checkpoint. Accounts that run dry are found through a queue keyed by the height
//! at which they deplete, so a block only touches the accounts that need it.

use gridlease_types::amount::DEC_ONE;
use gridlease_types::{BidId, Coin, DecAmount, Denom, DeploymentId, Height};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace::{self, DUE_DEPLETION, DUE_GRACE};
use crate::receipt::{BeginBlockItem, Event, ReceiptCode};
use crate::state::{CloseReason, EscrowAccount, EscrowState, Payment, PaymentState};
use crate::view::{StateView, decode_at};

fn id_bytes(id: &DeploymentId) -> Vec<u8> {
    keyspace::escrow(id)[1..].to_vec()
}

fn overflow<T>(e: impl ToString) -> Res<T> {
    fail(ReceiptCode::Overflow, e.to_string())
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn escrow(&self, id: &DeploymentId) -> Res<Option<EscrowAccount>> {
        Ok(self.st.load(&keyspace::escrow(id))?)
    }

    pub(crate) fn escrow_required(&self, id: &DeploymentId) -> Res<EscrowAccount> {
        match self.escrow(id)? {
            Some(a) => Ok(a),
            None => fail(ReceiptCode::NotFound, format!("deployment {id} has no escrow account")),
        }
    }

    fn save_escrow(&mut self, acc: &EscrowAccount) {
        self.st.save(keyspace::escrow(&acc.id), acc);
    }

    /// Pays every block owed up to the current height that the balance affords.
    fn settle(&self, acc: &mut EscrowAccount) {
        if acc.state == EscrowState::Open && !acc.rate.is_zero() {
            let owed = self.height.saturating_sub(acc.settled_at);
            let afford = acc.balance.0 / acc.rate.0;
            let blocks = u128::from(owed).min(afford);
            // blocks <= balance / rate, so the product fits and cannot exceed the balance.
            let amount = DecAmount(acc.rate.0 * blocks);
            acc.balance = DecAmount(acc.balance.0 - amount.0);
            acc.transferred = DecAmount(acc.transferred.0.saturating_add(amount.0));
            acc.paid_blocks =
                acc.paid_blocks.saturating_add(u64::try_from(blocks).unwrap_or(u64::MAX));
        }
        acc.settled_at = self.height;
    }

    /// Moves the account's depletion-queue entry to where its balance now runs out.
    fn requeue_depletion(&mut self, acc: &mut EscrowAccount) {
        let id = id_bytes(&acc.id);
        if let Some(old) = acc.depletes_at.take() {
            self.st.delete(keyspace::due(DUE_DEPLETION, old, &id));
        }
        if acc.state == EscrowState::Open && !acc.rate.is_zero() {
            let afford = u64::try_from(acc.balance.0 / acc.rate.0).unwrap_or(u64::MAX / 2);
            let at = acc.settled_at.saturating_add(afford).saturating_add(1);
            self.st.put(keyspace::due(DUE_DEPLETION, at, &id), id.clone());
            acc.depletes_at = Some(at);
        }
    }

    fn leave_overdraw(&mut self, acc: &mut EscrowAccount) {
        if let EscrowState::Overdrawn { grace_until, .. } = acc.state {
            self.st.delete(keyspace::due(DUE_GRACE, grace_until, &id_bytes(&acc.id)));
            acc.state = EscrowState::Open;
            acc.settled_at = self.height;
            self.events.push(Event::EscrowResumed { id: acc.id });
        }
    }

    pub(crate) fn escrow_open(&mut self, id: DeploymentId, deposit: &Coin) -> Res<()> {
        let balance = DecAmount::from_integer(deposit.amount).or_else(overflow)?;
        let acc = EscrowAccount {
            id,
            denom: deposit.denom.clone(),
            state: EscrowState::Open,
            balance,
            deposited: balance,
            transferred: DecAmount::ZERO,
            refunded: DecAmount::ZERO,
            rate: DecAmount::ZERO,
            settled_at: self.height,
            paid_blocks: 0,
            depletes_at: None,
        };
        self.save_escrow(&acc);
        Ok(())
    }

    pub(crate) fn escrow_deposit(&mut self, id: &DeploymentId, amount: &Coin) -> Res<()> {
        let mut acc = self.escrow_required(id)?;
        if acc.denom != amount.denom {
            return fail(
                ReceiptCode::DenomMismatch,
                format!("deployment escrow holds {}, not {}", acc.denom, amount.denom),
            );
        }
        if matches!(acc.state, EscrowState::Closed { .. }) {
            return fail(ReceiptCode::InvalidState, "escrow account is closed");
        }
        let add = DecAmount::from_integer(amount.amount).or_else(overflow)?;
        self.settle(&mut acc);
        acc.balance = acc.balance.checked_add(add).or_else(overflow)?;
        acc.deposited = acc.deposited.checked_add(add).or_else(overflow)?;
        if acc.balance >= acc.rate {
            self.leave_overdraw(&mut acc);
        }
        self.requeue_depletion(&mut acc);
        self.save_escrow(&acc);
        Ok(())
    }

    pub(crate) fn escrow_is_overdrawn(&self, id: &DeploymentId) -> Res<bool> {
        Ok(matches!(self.escrow_required(id)?.state, EscrowState::Overdrawn { .. }))
    }

    /// Starts a lease's payment stream.
    pub(crate) fn escrow_add_payment(&mut self, lease: &BidId, rate: DecAmount) -> Res<()> {
        let id = lease.order.deployment();
        let mut acc = self.escrow_required(&id)?;
        self.settle(&mut acc);
        acc.rate = acc.rate.checked_add(rate).or_else(overflow)?;
        let p = Payment {
            lease: *lease,
            rate,
            checkpoint: acc.paid_blocks,
            unwithdrawn: DecAmount::ZERO,
            withdrawn: DecAmount::ZERO,
            state: PaymentState::Open,
        };
        self.requeue_depletion(&mut acc);
        self.save_escrow(&acc);
        self.st.save(keyspace::payment(lease), &p);
        Ok(())
    }

    /// Pays the provider what the payment has earned, less the take rate. With `last`, the
    /// fraction of a unit that cannot be paid goes to the community pool.
    fn payout(&mut self, p: &mut Payment, denom: &Denom, last: bool) -> Res<()> {
        let whole = p.unwithdrawn.floor_units();
        let take = whole * u128::from(self.params.take_rate_ppm(denom)) / 1_000_000;
        let to_provider = Coin::new(whole - take, denom);
        if to_provider.amount > 0 {
            self.credit(&p.lease.provider, &to_provider)?;
        }
        let take_dec = DecAmount::from_integer(take).or_else(overflow)?;
        let paid = DecAmount(whole * DEC_ONE);
        let mut to_pool = take_dec;
        p.unwithdrawn = DecAmount(p.unwithdrawn.0 - paid.0);
        p.withdrawn = DecAmount(p.withdrawn.0.saturating_add(paid.0));
        if last && !p.unwithdrawn.is_zero() {
            to_pool = to_pool.checked_add(p.unwithdrawn).or_else(overflow)?;
            p.withdrawn = DecAmount(p.withdrawn.0.saturating_add(p.unwithdrawn.0));
            p.unwithdrawn = DecAmount::ZERO;
        }
        self.pool_add(denom, to_pool)?;
        if whole > 0 || last {
            self.events.push(Event::PaymentWithdrawn { lease: p.lease, to_provider, to_pool });
        }
        Ok(())
    }

    fn payment_required(&self, lease: &BidId) -> Res<Payment> {
        match self.st.load::<Payment>(&keyspace::payment(lease))? {
            Some(p) => Ok(p),
            None => fail(ReceiptCode::NotFound, format!("lease {lease} has no payment")),
        }
    }

    /// The provider collects what a lease has earned so far.
    pub(crate) fn escrow_withdraw(&mut self, lease: &BidId) -> Res<()> {
        let mut acc = self.escrow_required(&lease.order.deployment())?;
        let mut p = self.payment_required(lease)?;
        self.take_share(&mut acc, &mut p)?;
        self.payout(&mut p, &acc.denom.clone(), false)?;
        self.save_both(&mut acc, &p);
        Ok(())
    }

    /// Settles the account and moves what the payment earned since its checkpoint into its
    /// unwithdrawn balance.
    fn take_share(&self, acc: &mut EscrowAccount, p: &mut Payment) -> Res<()> {
        self.settle(acc);
        p.unwithdrawn = p.unwithdrawn.checked_add(p.pending(acc)).or_else(overflow)?;
        p.checkpoint = acc.paid_blocks;
        Ok(())
    }

    /// Requeues the account's depletion and saves it and the payment.
    fn save_both(&mut self, acc: &mut EscrowAccount, p: &Payment) {
        self.requeue_depletion(acc);
        self.save_escrow(acc);
        self.st.save(keyspace::payment(&p.lease), p);
    }

    /// Stops a lease's payment while it is down: what it earned so far stays its own, and
    /// the account's rate drops by its rate (blocks from now on are not owed).
    pub(crate) fn escrow_pause_payment(&mut self, lease: &BidId) -> Res<()> {
        let mut acc = self.escrow_required(&lease.order.deployment())?;
        let mut p = self.payment_required(lease)?;
        if p.state != PaymentState::Open {
            return Ok(());
        }
        self.take_share(&mut acc, &mut p)?;
        p.state = PaymentState::Paused { since: self.height };
        acc.rate = acc.rate.checked_sub(p.rate).or_else(overflow)?;
        if acc.rate.is_zero() {
            self.leave_overdraw(&mut acc);
        }
        self.save_both(&mut acc, &p);
        Ok(())
    }

    /// Starts a paused payment again: it earns from the account's next paid block on.
    pub(crate) fn escrow_resume_payment(&mut self, lease: &BidId) -> Res<()> {
        let mut acc = self.escrow_required(&lease.order.deployment())?;
        let mut p = self.payment_required(lease)?;
        if !matches!(p.state, PaymentState::Paused { .. }) {
            return Ok(());
        }
        self.settle(&mut acc);
        p.checkpoint = acc.paid_blocks;
        p.state = PaymentState::Open;
        acc.rate = acc.rate.checked_add(p.rate).or_else(overflow)?;
        self.save_both(&mut acc, &p);
        Ok(())
    }

    /// Ends a lease's payment: settles, pays the provider everything, stops the stream.
    pub(crate) fn escrow_close_payment(&mut self, lease: &BidId) -> Res<()> {
        let mut acc = self.escrow_required(&lease.order.deployment())?;
        let mut p = self.payment_required(lease)?;
        let was_open = match p.state {
            PaymentState::Open => true,
            PaymentState::Paused { .. } => false,
            PaymentState::Closed { .. } => return Ok(()),
        };
        self.take_share(&mut acc, &mut p)?;
        self.payout(&mut p, &acc.denom.clone(), true)?;
        p.state = PaymentState::Closed { at: self.height };
        if was_open {
            acc.rate = acc.rate.checked_sub(p.rate).or_else(overflow)?;
        }
        if acc.rate.is_zero() {
            self.leave_overdraw(&mut acc);
        }
        self.save_both(&mut acc, &p);
        Ok(())
    }

    /// Closes the account: any open payments end, the balance goes back to the owner (whole
    /// units) and the community pool (the fraction).
    pub(crate) fn escrow_close(&mut self, id: &DeploymentId) -> Res<()> {
        for (key, bytes) in self.st.scan_prefix(&keyspace::payments_of(id))? {
            let p: Payment = decode_at(&key, &bytes)?;
            if !matches!(p.state, PaymentState::Closed { .. }) {
                self.escrow_close_payment(&p.lease)?;
            }
        }
        let mut acc = self.escrow_required(id)?;
        self.settle(&mut acc);
        if let EscrowState::Overdrawn { grace_until, .. } = acc.state {
            self.st.delete(keyspace::due(DUE_GRACE, grace_until, &id_bytes(id)));
        }
        acc.state = EscrowState::Closed { at: self.height };
        self.requeue_depletion(&mut acc);
        let whole = acc.balance.floor_units();
        let dust = DecAmount(acc.balance.0 - whole * DEC_ONE);
        if whole > 0 {
            let refund = Coin::new(whole, &acc.denom);
            self.credit(&id.owner, &refund)?;
            self.events.push(Event::EscrowRefunded { id: *id, amount: refund });
        }
        self.pool_add(&acc.denom.clone(), dust)?;
        acc.refunded = acc.refunded.checked_add(acc.balance).or_else(overflow)?;
        acc.balance = DecAmount::ZERO;
        self.save_escrow(&acc);
        Ok(())
    }

    fn due_ids(&self, tag: u8) -> Res<Vec<(Vec<u8>, DeploymentId, Height)>> {
        let (start, end) = keyspace::due_until(tag, self.height);
        let mut out = Vec::new();
        for (key, value) in self.st.range(&start, &end)? {
            let at = key.get(1..9).and_then(|s| <[u8; 8]>::try_from(s).ok());
            let owner = value.get(..20).and_then(|s| <[u8; 20]>::try_from(s).ok());
            let dseq = value.get(20..28).and_then(|s| <[u8; 8]>::try_from(s).ok());
            let (Some(at), Some(owner), Some(dseq)) = (at, owner, dseq) else {
                return Err(crate::view::ViewError::Corrupt {
                    key: format!("{key:02x?}"),
                    reason: "malformed queue entry".into(),
                }
                .into());
            };
            let id = DeploymentId {
                owner: gridlease_types::Address(owner),
                dseq: u64::from_be_bytes(dseq),
            };
            out.push((key, id, u64::from_be_bytes(at)));
        }
        Ok(out)
    }

    /// Accounts whose balance can no longer pay their rate become overdrawn.
    pub(crate) fn process_depletions(&mut self) -> Res<()> {
        for (key, id, _) in self.due_ids(DUE_DEPLETION)? {
            self.st.delete(key);
            self.begin_item(BeginBlockItem::Depletion { id }, |ctx| ctx.deplete(&id))?;
        }
        Ok(())
    }

    fn deplete(&mut self, id: &DeploymentId) -> Res<()> {
        let Some(mut acc) = self.escrow(id)? else {
            return Ok(());
        };
        if acc.state != EscrowState::Open {
            return Ok(());
        }
        acc.depletes_at = None;
        self.settle(&mut acc);
        let grace_until = self.height.saturating_add(self.params.overdraw_grace);
        acc.state = EscrowState::Overdrawn { since: self.height, grace_until };
        self.st.put(keyspace::due(DUE_GRACE, grace_until, &id_bytes(id)), id_bytes(id));
        self.save_escrow(&acc);
        self.events.push(Event::EscrowOverdrawn { id: *id, grace_until });
        Ok(())
    }

    /// Deployments whose escrow stayed overdrawn through the grace period close.
    pub(crate) fn process_grace_expiries(&mut self) -> Res<()> {
        for (key, id, _) in self.due_ids(DUE_GRACE)? {
            self.st.delete(key);
            self.begin_item(BeginBlockItem::GraceExpiry { id }, |ctx| {
                let Some(acc) = ctx.escrow(&id)? else {
                    return Ok(());
                };
                if matches!(acc.state, EscrowState::Overdrawn { grace_until, .. } if grace_until <= ctx.height)
                {
                    ctx.close_deployment(&id, CloseReason::InsufficientFunds)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
