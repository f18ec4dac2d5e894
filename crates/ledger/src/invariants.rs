//! Invariants of a whole state and of the step between two states. Tests and the simulator
//! run these after every block; they are cheap enough for small states only.

use gridlease_types::DecAmount;
use gridlease_types::amount::DEC_ONE;

use crate::keyspace;
use crate::query;
use crate::state::*;
use crate::view::{MemState, StateView, ViewError, decode_at};

/// A broken invariant, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    #[error("{0}")]
    Broken(String),
    #[error(transparent)]
    View(#[from] ViewError),
}

fn broken<T>(msg: String) -> Result<T, InvariantError> {
    Err(InvariantError::Broken(msg))
}

/// The bonded pool holds exactly the bonded and unbonding stake, the stake index names every
/// bonded validator once, and the active set is what the stakes choose (or is scheduled to be).
fn check_staking(
    view: &(impl StateView + ?Sized),
    params: &crate::Params,
) -> Result<(), InvariantError> {
    let validators = query::validators(view)?;
    let unbonding: u128 = query::unbondings(view)?.iter().map(|(_, _, a)| *a).sum();
    let bonded: u128 = validators.iter().map(|v| v.bonded.amount).sum();
    let pool = query::balance(view, &crate::bonded_pool(), &params.native_denom)?;
    if validators.is_empty() && unbonding == 0 {
        return Ok(());
    }
    if pool != bonded + unbonding {
        return broken(format!(
            "bonded pool holds {pool} but {bonded} is bonded and {unbonding} unbonding"
        ));
    }
    let index = query::list_prefix::<()>(view, &[crate::keyspace::VALIDATOR_BY_STAKE])?;
    let staked = validators.iter().filter(|v| v.bonded.amount > 0).count();
    if index.len() != staked {
        return broken(format!("stake index has {} entries for {staked} validators", index.len()));
    }
    let mut by_stake: Vec<_> = validators.iter().collect();
    by_stake
        .sort_by(|a, b| b.bonded.amount.cmp(&a.bonded.amount).then(a.operator.cmp(&b.operator)));
    let chosen = crate::choose_active(params, by_stake);
    let latest = match query::next_validator_set(view)? {
        Some(next) => Some(next),
        None => query::validator_set_at(view, 0)?,
    };
    if latest.map(|s| s.members) != Some(chosen) {
        return broken("the latest validator set is not the one the stakes choose".into());
    }
    Ok(())
}

/// Checks supply conservation, escrow accounting, lease/order/bid consistency and queues.
pub fn check_state(view: &(impl StateView + ?Sized)) -> Result<(), InvariantError> {
    let Some(params) = query::params(view)? else {
        return broken("no params".into());
    };
    for denom in &params.denoms {
        let supply = query::supply(view, denom)?.saturating_mul(DEC_ONE);
        let held = query::total_holdings_atto(view, denom)?;
        if supply != held {
            return broken(format!("supply of {denom} is {supply} atto but {held} atto are held"));
        }
    }
    check_staking(view, &params)?;
    let escrows = query::escrows(view)?;
    let payments = query::payments(view)?;
    for acc in &escrows {
        let expect = acc
            .deposited
            .0
            .checked_sub(acc.transferred.0)
            .and_then(|v| v.checked_sub(acc.refunded.0));
        if expect != Some(acc.balance.0) {
            return broken(format!(
                "escrow {} balance {} != deposits - settled - refunds",
                acc.id, acc.balance
            ));
        }
        let mine: Vec<&Payment> =
            payments.iter().filter(|p| p.lease.order.deployment() == acc.id).collect();
        let paid: u128 =
            mine.iter().map(|p| p.withdrawn.0 + p.unwithdrawn.0 + p.pending(acc).0).sum();
        if paid != acc.transferred.0 {
            return broken(format!(
                "escrow {} settled {} but payments account for {paid}",
                acc.id, acc.transferred.0
            ));
        }
        let rate: u128 =
            mine.iter().filter(|p| p.state == PaymentState::Open).map(|p| p.rate.0).sum();
        if rate != acc.rate.0 {
            return broken(format!(
                "escrow {} rate {} != sum of open payment rates {rate}",
                acc.id, acc.rate
            ));
        }
        if matches!(acc.state, EscrowState::Closed { .. }) && (!acc.balance.is_zero() || rate != 0)
        {
            return broken(format!("closed escrow {} still holds funds or payments", acc.id));
        }
        let queued = acc.depletes_at.map(|at| {
            view.get(&keyspace::due(keyspace::DUE_DEPLETION, at, &keyspace::escrow(&acc.id)[1..]))
        });
        if queued.transpose()?.is_some_and(|q| q.is_none()) {
            return broken(format!("escrow {} depletion is not queued", acc.id));
        }
        if acc.state == EscrowState::Open
            && acc.rate != DecAmount::ZERO
            && acc.depletes_at.is_none()
        {
            return broken(format!("open escrow {} with payments has no depletion height", acc.id));
        }
    }
    for lease in query::leases(view)? {
        let payment = payments.iter().find(|p| p.lease == lease.id);
        match lease.state {
            LeaseState::Active => {
                let order = query::order(view, &lease.id.order)?;
                if !matches!(order.map(|o| o.state), Some(OrderState::Matched { provider }) if provider == lease.id.provider)
                {
                    return broken(format!("active lease {} has no matched order", lease.id));
                }
                let bid = view
                    .get(&keyspace::bid(&lease.id))?
                    .map(|b| decode_at::<Bid>(&keyspace::bid(&lease.id), &b))
                    .transpose()?;
                if !matches!(bid.map(|b| b.state), Some(BidState::Won)) {
                    return broken(format!("active lease {} has no won bid", lease.id));
                }
                let down_since = query::lease_health(view, &lease.id)?.and_then(|h| h.down_since);
                let down = down_since.is_some();
                if let Some(since) = down_since {
                    let at = since.saturating_add(params.failover_grace_blocks);
                    let entry = keyspace::due(
                        keyspace::DUE_FAILOVER,
                        at,
                        &keyspace::lease_id_bytes(&lease.id),
                    );
                    if view.get(&entry)?.is_none() {
                        return broken(format!("down lease {} has no failover queued", lease.id));
                    }
                }
                let live = |p: &Payment| match p.state {
                    PaymentState::Open => !down,
                    PaymentState::Paused { .. } => down,
                    PaymentState::Closed { .. } => false,
                };
                if !matches!(payment, Some(p) if live(p) && p.rate == lease.price.amount) {
                    return broken(format!(
                        "active lease {} has no payment at its price that is open while up and \
                         paused while down",
                        lease.id
                    ));
                }
            }
            LeaseState::Closed { .. } => {
                if matches!(payment, Some(p) if !matches!(p.state, PaymentState::Closed { .. })) {
                    return broken(format!("closed lease {} still has an open payment", lease.id));
                }
            }
        }
    }
    // The by-provider indexes hold exactly one entry per bid and per lease.
    for (tag, primary, name) in [
        (keyspace::BID_BY_PROVIDER, keyspace::BID, "bid"),
        (keyspace::LEASE_BY_PROVIDER, keyspace::LEASE, "lease"),
    ] {
        let entries = view.range(&[tag], &[tag + 1])?;
        let objects = view.range(&[primary], &[primary + 1])?.len();
        if entries.len() != objects {
            return broken(format!("{} {name} index entries for {objects} {name}s", entries.len()));
        }
        for (k, _) in entries {
            let indexed = keyspace::id_of_by_provider_entry(&k).map(|id| {
                if tag == keyspace::BID_BY_PROVIDER {
                    keyspace::bid(&id)
                } else {
                    keyspace::lease(&id)
                }
            });
            if indexed.map(|key| view.get(&key)).transpose()?.flatten().is_none() {
                return broken(format!("{name} index entry {k:02x?} points to nothing"));
            }
        }
    }
    for bid in query::bids(view)? {
        let order = query::order(view, &bid.id.order)?;
        let Some(order) = order else {
            return broken(format!("bid {} has no order", bid.id));
        };
        match bid.state {
            BidState::Open if !matches!(order.state, OrderState::Open { .. }) => {
                return broken(format!("open bid {} on an order that is not open", bid.id));
            }
            BidState::Won => {
                let lease = view.get(&keyspace::lease(&bid.id))?;
                let lease =
                    lease.map(|l| decode_at::<Lease>(&keyspace::lease(&bid.id), &l)).transpose()?;
                if !matches!(lease.map(|l| l.state), Some(LeaseState::Active)) {
                    return broken(format!("won bid {} has no active lease", bid.id));
                }
            }
            _ => {}
        }
    }
    for order in query::orders(view)? {
        if matches!(order.state, OrderState::Open { .. }) {
            let open = query::bids_of_order(view, &order.id)?
                .iter()
                .filter(|b| b.state == BidState::Open)
                .count();
            if open != order.bids as usize {
                return broken(format!(
                    "open order {} counts {} open bids, {open} exist",
                    order.id, order.bids
                ));
            }
        }
        if let OrderState::Open { closes_at: Some(at), .. } = order.state {
            let key = keyspace::due(keyspace::DUE_AUCTION, at, &keyspace::order(&order.id)[1..]);
            if view.get(&key)?.is_none() {
                return broken(format!("open order {} closing at {at} is not queued", order.id));
            }
        }
    }
    Ok(())
}

fn legal_deployment(a: &DeploymentState, b: &DeploymentState) -> bool {
    use DeploymentState::*;
    matches!((a, b), (Active, Active) | (Active, Closed { .. })) || a == b
}

fn legal_group(a: &GroupState, b: &GroupState) -> bool {
    use GroupState::*;
    match (a, b) {
        (Open, Open | Leased { .. } | Closed { .. }) => true,
        (Leased { .. }, Open | Closed { .. }) => true,
        (Leased { provider: p }, Leased { provider: q }) => p == q,
        _ => a == b,
    }
}

fn legal_order(a: &OrderState, b: &OrderState) -> bool {
    use OrderState::*;
    match (a, b) {
        (Open { .. }, Open { .. } | Matched { .. } | Closed { .. }) => true,
        (Matched { .. }, Closed { .. }) => true,
        _ => a == b,
    }
}

fn legal_bid(a: &BidState, b: &BidState) -> bool {
    use BidState::*;
    matches!((a, b), (Open, Open | Won | Closed { .. }) | (Won, Won | Closed { .. })) || a == b
}

fn legal_lease(a: &LeaseState, b: &LeaseState) -> bool {
    matches!((a, b), (LeaseState::Active, _)) || a == b
}

fn legal_escrow(a: &EscrowState, b: &EscrowState) -> bool {
    use EscrowState::*;
    match (a, b) {
        (Open | Overdrawn { .. }, Open | Overdrawn { .. } | Closed { .. }) => true,
        _ => a == b,
    }
}

fn legal_payment(a: &PaymentState, b: &PaymentState) -> bool {
    // Open and paused move freely between each other (down and up again within one block
    // pauses anew); closed is final.
    !matches!(a, PaymentState::Closed { .. }) || a == b
}

fn legal_cert(a: &CertState, b: &CertState) -> bool {
    matches!((a, b), (CertState::Valid, _)) || a == b
}

/// Checks that every object that changed between two states moved along a legal transition and
/// that none of them disappeared (except revoked certificates, dropped to make room).
pub fn check_transitions(before: &MemState, after: &MemState) -> Result<(), InvariantError> {
    fn pair<T: borsh::BorshDeserialize>(
        before: &MemState,
        after: &MemState,
        tag: u8,
        legal: impl Fn(&T, &T) -> bool,
        name: &str,
    ) -> Result<(), InvariantError> {
        pair_vanishing(before, after, tag, legal, |_: &T| false, name)
    }
    fn pair_vanishing<T: borsh::BorshDeserialize>(
        before: &MemState,
        after: &MemState,
        tag: u8,
        legal: impl Fn(&T, &T) -> bool,
        may_vanish: impl Fn(&T) -> bool,
        name: &str,
    ) -> Result<(), InvariantError> {
        let range = |s: &MemState| s.range(&[tag], &[tag + 1]);
        let old: std::collections::BTreeMap<_, _> = range(before)?.into_iter().collect();
        for (k, v) in range(after)? {
            let new: T = decode_at(&k, &v)?;
            // New objects may move on within their first block (a bid accepted at once), so
            // only objects that existed before are checked.
            if let Some(o) = old.get(&k) {
                let o: T = decode_at(&k, o)?;
                if !legal(&o, &new) {
                    return broken(format!("illegal {name} transition at key {k:02x?}"));
                }
            }
        }
        for (k, v) in &old {
            if !after.entries.contains_key(k) && !may_vanish(&decode_at::<T>(k, v)?) {
                return broken(format!("{name} at key {k:02x?} disappeared"));
            }
        }
        Ok(())
    }
    pair::<Deployment>(
        before,
        after,
        keyspace::DEPLOYMENT,
        |a, b| legal_deployment(&a.state, &b.state) && a.id == b.id,
        "deployment",
    )?;
    pair::<Group>(
        before,
        after,
        keyspace::GROUP,
        |a, b| legal_group(&a.state, &b.state) && b.oseq >= a.oseq,
        "group",
    )?;
    pair::<Order>(before, after, keyspace::ORDER, |a, b| legal_order(&a.state, &b.state), "order")?;
    pair::<Bid>(
        before,
        after,
        keyspace::BID,
        |a, b| legal_bid(&a.state, &b.state) && a.price == b.price,
        "bid",
    )?;
    pair::<Lease>(
        before,
        after,
        keyspace::LEASE,
        |a, b| legal_lease(&a.state, &b.state) && a.price == b.price,
        "lease",
    )?;
    pair::<EscrowAccount>(
        before,
        after,
        keyspace::ESCROW,
        |a, b| legal_escrow(&a.state, &b.state) && b.paid_blocks >= a.paid_blocks,
        "escrow",
    )?;
    pair::<Payment>(
        before,
        after,
        keyspace::PAYMENT,
        |a, b| legal_payment(&a.state, &b.state) && b.withdrawn >= a.withdrawn,
        "payment",
    )?;
    pair_vanishing::<Certificate>(
        before,
        after,
        keyspace::CERT,
        |a, b| legal_cert(&a.state, &b.state),
        |c| matches!(c.state, CertState::Revoked { .. }),
        "certificate",
    )?;
    pair::<Account>(before, after, keyspace::ACCOUNT, |a, b| b.sequence >= a.sequence, "account")?;
    Ok(())
}
