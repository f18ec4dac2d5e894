//! Typed reads of ledger objects over any [`StateView`], for RPC, tools and tests.

use borsh::BorshDeserialize;
use gridlease_types::amount::DEC_ONE;
use gridlease_types::{Address, DecAmount, Denom, DeploymentId, OrderId};

use crate::genesis::Params;
use crate::keyspace;
use crate::state::*;
use crate::view::{StateView, ViewError, decode_at, prefix_end};

fn get<T: BorshDeserialize>(
    view: &(impl StateView + ?Sized),
    key: &[u8],
) -> Result<Option<T>, ViewError> {
    match view.get(key)? {
        None => Ok(None),
        Some(b) => decode_at(key, &b).map(Some),
    }
}

/// Every value under a key prefix, decoded.
pub fn list_prefix<T: BorshDeserialize>(
    view: &(impl StateView + ?Sized),
    prefix: &[u8],
) -> Result<Vec<T>, ViewError> {
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff; 80]);
    view.range(prefix, &end)?.into_iter().map(|(k, v)| decode_at(&k, &v)).collect()
}

pub fn params(view: &(impl StateView + ?Sized)) -> Result<Option<Params>, ViewError> {
    get(view, &keyspace::params())
}

pub fn account(
    view: &(impl StateView + ?Sized),
    a: &Address,
) -> Result<Option<Account>, ViewError> {
    get(view, &keyspace::account(a))
}

pub fn balance(
    view: &(impl StateView + ?Sized),
    a: &Address,
    denom: &Denom,
) -> Result<u128, ViewError> {
    Ok(get::<u128>(view, &keyspace::balance(a, denom))?.unwrap_or(0))
}

/// Every non-zero balance of an account.
pub fn balances_of(
    view: &(impl StateView + ?Sized),
    a: &Address,
) -> Result<Vec<gridlease_types::Coin>, ViewError> {
    let prefix = {
        let mut k = vec![keyspace::BALANCE];
        k.extend_from_slice(&a.0);
        k
    };
    let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; 40]);
    let mut out = Vec::new();
    for (k, v) in view.range(&prefix, &end)? {
        let denom = std::str::from_utf8(&k[prefix.len()..])
            .ok()
            .and_then(|d| Denom::new(d).ok())
            .ok_or_else(|| ViewError::Corrupt {
            key: format!("{k:02x?}"),
            reason: "denom".into(),
        })?;
        out.push(gridlease_types::Coin { denom, amount: decode_at(&k, &v)? });
    }
    Ok(out)
}

pub fn pool(view: &(impl StateView + ?Sized), denom: &Denom) -> Result<DecAmount, ViewError> {
    Ok(get(view, &keyspace::pool(denom))?.unwrap_or_default())
}

pub fn supply(view: &(impl StateView + ?Sized), denom: &Denom) -> Result<u128, ViewError> {
    Ok(get::<u128>(view, &keyspace::supply(denom))?.unwrap_or(0))
}

pub fn provider(
    view: &(impl StateView + ?Sized),
    owner: &Address,
) -> Result<Option<Provider>, ViewError> {
    get(view, &keyspace::provider(owner))
}

pub fn providers(view: &(impl StateView + ?Sized)) -> Result<Vec<Provider>, ViewError> {
    list_prefix(view, &[keyspace::PROVIDER])
}

pub fn deployment(
    view: &(impl StateView + ?Sized),
    id: &DeploymentId,
) -> Result<Option<Deployment>, ViewError> {
    get(view, &keyspace::deployment(id))
}

pub fn deployments(view: &(impl StateView + ?Sized)) -> Result<Vec<Deployment>, ViewError> {
    list_prefix(view, &[keyspace::DEPLOYMENT])
}

pub fn group(
    view: &(impl StateView + ?Sized),
    id: &gridlease_types::GroupId,
) -> Result<Option<Group>, ViewError> {
    get(view, &keyspace::group(id))
}

pub fn groups(view: &(impl StateView + ?Sized)) -> Result<Vec<Group>, ViewError> {
    list_prefix(view, &[keyspace::GROUP])
}

pub fn order(view: &(impl StateView + ?Sized), id: &OrderId) -> Result<Option<Order>, ViewError> {
    get(view, &keyspace::order(id))
}

pub fn orders(view: &(impl StateView + ?Sized)) -> Result<Vec<Order>, ViewError> {
    list_prefix(view, &[keyspace::ORDER])
}

pub fn bids_of_order(
    view: &(impl StateView + ?Sized),
    id: &OrderId,
) -> Result<Vec<Bid>, ViewError> {
    list_prefix(view, &keyspace::bids_of_order(id))
}

pub fn bids(view: &(impl StateView + ?Sized)) -> Result<Vec<Bid>, ViewError> {
    list_prefix(view, &[keyspace::BID])
}

pub fn leases(view: &(impl StateView + ?Sized)) -> Result<Vec<Lease>, ViewError> {
    list_prefix(view, &[keyspace::LEASE])
}

pub fn escrow(
    view: &(impl StateView + ?Sized),
    id: &DeploymentId,
) -> Result<Option<EscrowAccount>, ViewError> {
    get(view, &keyspace::escrow(id))
}

pub fn escrows(view: &(impl StateView + ?Sized)) -> Result<Vec<EscrowAccount>, ViewError> {
    list_prefix(view, &[keyspace::ESCROW])
}

pub fn payments(view: &(impl StateView + ?Sized)) -> Result<Vec<Payment>, ViewError> {
    list_prefix(view, &[keyspace::PAYMENT])
}

pub fn certificates(view: &(impl StateView + ?Sized)) -> Result<Vec<Certificate>, ViewError> {
    list_prefix(view, &[keyspace::CERT])
}

pub fn audit_records(view: &(impl StateView + ?Sized)) -> Result<Vec<AuditRecord>, ViewError> {
    list_prefix(view, &[keyspace::AUDIT])
}

/// Total of one denomination held anywhere, in 10^-18 units: balances, community pool,
/// escrow balances, payments not yet paid out, and bid deposits.
pub fn total_holdings_atto(
    view: &(impl StateView + ?Sized),
    denom: &Denom,
) -> Result<u128, ViewError> {
    let mut total: u128 = 0;
    let mut add = |v: u128| total = total.saturating_add(v);
    let start = [keyspace::BALANCE];
    for (k, v) in view.range(&start, &[keyspace::BALANCE + 1])? {
        if k.get(21..) == Some(denom.as_str().as_bytes()) {
            add(decode_at::<u128>(&k, &v)?.saturating_mul(DEC_ONE));
        }
    }
    add(pool(view, denom)?.0);
    let escrows = escrows(view)?;
    for acc in &escrows {
        if &acc.denom == denom {
            add(acc.balance.0);
        }
    }
    for p in payments(view)? {
        let Some(acc) = escrows.iter().find(|a| a.id == p.lease.order.deployment()) else {
            continue;
        };
        if &acc.denom == denom {
            add(p.unwithdrawn.0);
            add(p.pending(acc).0);
        }
    }
    for b in bids(view)? {
        if b.holds_deposit() && &b.deposit.denom == denom {
            add(b.deposit.amount.saturating_mul(DEC_ONE));
        }
    }
    Ok(total)
}
