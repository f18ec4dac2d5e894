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

/// One page of a list: the objects kept, and the key to continue after (none: the list ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Vec<u8>>,
}

/// Where a page starts: the prefix, or just after `after` when that continues a page of this
/// prefix (a cursor from elsewhere is refused).
fn page_start(prefix: &[u8], after: Option<&[u8]>) -> Result<Option<Vec<u8>>, ViewError> {
    match after {
        None => Ok(Some(prefix.to_vec())),
        Some(a) if a.starts_with(prefix) => {
            let mut k = a.to_vec();
            k.push(0);
            Ok(Some(k))
        }
        Some(_) => Ok(None),
    }
}

/// Objects under `prefix` in key order, from after `after`, keeping those `keep` accepts,
/// until `limit` are kept or `budget` keys were read: the work and the answer are bounded
/// whatever the size of the state.
pub fn page<T: BorshDeserialize>(
    view: &(impl StateView + ?Sized),
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    budget: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ViewError> {
    scan_page(view, prefix, after, limit, budget, |k, v| {
        let item: T = decode_at(k, v)?;
        Ok(keep(&item).then_some(item))
    })
}

/// [`page`] over a by-provider index (`keyspace::BID_BY_PROVIDER` or `LEASE_BY_PROVIDER`):
/// each entry is resolved to its object with `primary` (`keyspace::bid` or `keyspace::lease`).
#[allow(clippy::too_many_arguments)] // the two bounds and the filter are what a page is
pub fn page_by_provider<T: BorshDeserialize>(
    view: &(impl StateView + ?Sized),
    index: u8,
    provider: &Address,
    primary: fn(&gridlease_types::BidId) -> Vec<u8>,
    after: Option<&[u8]>,
    limit: usize,
    budget: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>, ViewError> {
    let prefix = keyspace::by_provider(index, provider);
    scan_page(view, &prefix, after, limit, budget, |k, _| {
        let id = keyspace::id_of_by_provider_entry(k).ok_or_else(|| ViewError::Corrupt {
            key: gridlease_types::hex::encode(k),
            reason: "malformed index entry".into(),
        })?;
        Ok(get::<T>(view, &primary(&id))?.filter(|item| keep(item)))
    })
}

/// Reads at most `budget` entries under `prefix` after `after`, turning each into an item
/// (or none) with `item`, and stops once `limit` items are kept.
fn scan_page<T>(
    view: &(impl StateView + ?Sized),
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
    budget: usize,
    mut item: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, ViewError>,
) -> Result<Page<T>, ViewError> {
    let Some(start) = page_start(prefix, after)? else {
        return Ok(Page { items: Vec::new(), next: None });
    };
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff; 80]);
    let budget = budget.max(limit);
    let entries = view.range_page(&start, &end, budget)?;
    let full = entries.len() == budget;
    let read = entries.len();
    let mut items = Vec::new();
    let mut last = None;
    for (n, (k, v)) in entries.into_iter().enumerate() {
        if let Some(i) = item(&k, &v)? {
            items.push(i);
        }
        last = Some(k);
        if items.len() == limit {
            // A cursor only when something may follow: more entries were read, or the read
            // stopped at its budget.
            let more = n + 1 < read || full;
            return Ok(Page { items, next: if more { last } else { None } });
        }
    }
    Ok(Page { items, next: if full { last } else { None } })
}

pub fn lease(
    view: &(impl StateView + ?Sized),
    id: &gridlease_types::BidId,
) -> Result<Option<Lease>, ViewError> {
    get(view, &keyspace::lease(id))
}

pub fn bid(
    view: &(impl StateView + ?Sized),
    id: &gridlease_types::BidId,
) -> Result<Option<Bid>, ViewError> {
    get(view, &keyspace::bid(id))
}

pub fn certificate(
    view: &(impl StateView + ?Sized),
    owner: &Address,
    serial: &[u8; 32],
) -> Result<Option<Certificate>, ViewError> {
    get(view, &keyspace::cert(owner, serial))
}

pub fn validator(
    view: &(impl StateView + ?Sized),
    operator: &Address,
) -> Result<Option<Validator>, ViewError> {
    get(view, &keyspace::validator(operator))
}

/// Every validator record, bonded or fully unbonded, by operator.
pub fn validators(view: &(impl StateView + ?Sized)) -> Result<Vec<Validator>, ViewError> {
    list_prefix(view, &[keyspace::VALIDATOR])
}

/// The validator set that decides block `height`, as known after the last committed block:
/// the scheduled set once its height comes, else the active one. `None` when the chain has no
/// validators (a genesis without any).
pub fn validator_set_at(
    view: &(impl StateView + ?Sized),
    height: u64,
) -> Result<Option<ValidatorSet>, ViewError> {
    if let Some(next) = get::<ValidatorSet>(view, &keyspace::validator_set_next())?
        && next.from_height <= height
    {
        return Ok(Some(next));
    }
    get(view, &keyspace::validator_set_current())
}

/// The scheduled set that has not taken effect yet, if any.
pub fn next_validator_set(
    view: &(impl StateView + ?Sized),
) -> Result<Option<ValidatorSet>, ViewError> {
    get(view, &keyspace::validator_set_next())
}

/// Stake waiting out its unbonding period: `(completes_at, operator, amount)`.
pub fn unbondings(
    view: &(impl StateView + ?Sized),
) -> Result<Vec<(u64, Address, u128)>, ViewError> {
    let (start, end) = keyspace::due_until(keyspace::DUE_UNBONDING, u64::MAX - 1);
    let mut out = Vec::new();
    for (k, v) in view.range(&start, &end)? {
        let at = k.get(1..9).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_be_bytes);
        let op = k.get(9..29).and_then(|s| <[u8; 20]>::try_from(s).ok()).map(Address);
        let (Some(at), Some(op)) = (at, op) else {
            return Err(ViewError::Corrupt {
                key: format!("{k:02x?}"),
                reason: "malformed unbonding entry".into(),
            });
        };
        out.push((at, op, decode_at(&k, &v)?));
    }
    Ok(out)
}

/// What the tenant's monitors say of a lease (`None`: no monitor reported on it yet).
pub fn lease_health(
    view: &(impl StateView + ?Sized),
    id: &gridlease_types::BidId,
) -> Result<Option<gridlease_types::state::LeaseHealth>, ViewError> {
    get(view, &keyspace::lease_health(id))
}

/// A lease's payment stream (kept after the lease closes, with what it paid).
pub fn payment(
    view: &(impl StateView + ?Sized),
    id: &gridlease_types::BidId,
) -> Result<Option<gridlease_types::state::Payment>, ViewError> {
    get(view, &keyspace::payment(id))
}

/// The accounts whose health reports count for a deployment's leases.
pub fn monitors(
    view: &(impl StateView + ?Sized),
    id: &DeploymentId,
) -> Result<Vec<Address>, ViewError> {
    Ok(get(view, &keyspace::monitors(id))?.unwrap_or_default())
}

/// A provider's uptime record (all zero before its first lease ends or goes down).
pub fn provider_uptime(
    view: &(impl StateView + ?Sized),
    provider: &Address,
) -> Result<gridlease_types::state::ProviderUptime, ViewError> {
    Ok(get(view, &keyspace::provider_uptime(provider))?.unwrap_or_default())
}

/// Providers a group's auctions refuse, each until a height (the chain closed their lease of
/// it as unhealthy); entries past their height may linger until the next exclusion.
pub fn excluded(
    view: &(impl StateView + ?Sized),
    group: &gridlease_types::GroupId,
) -> Result<Vec<gridlease_types::state::Exclusion>, ViewError> {
    Ok(get(view, &keyspace::excluded(group))?.unwrap_or_default())
}
