//! Layout of state keys: one tag byte per object kind, then the object's id with integers in
//! big-endian so that byte order equals numeric order and prefixes group related objects.

use gridlease_types::{Address, BidId, Denom, DeploymentId, GroupId, Height, OrderId};

pub const PARAMS: u8 = 0x01;
pub const ACCOUNT: u8 = 0x02;
pub const BALANCE: u8 = 0x03;
pub const POOL: u8 = 0x04;
pub const SUPPLY: u8 = 0x05;
pub const PROVIDER: u8 = 0x10;
pub const AUDIT: u8 = 0x11;
pub const CERT: u8 = 0x12;
/// A provider's uptime record (`ProviderUptime`).
pub const PROVIDER_UPTIME: u8 = 0x13;
pub const DEPLOYMENT: u8 = 0x20;
pub const GROUP: u8 = 0x21;
pub const ORDER: u8 = 0x22;
/// The accounts a deployment's tenant trusts for health reports (`Vec<Address>`).
pub const MONITORS: u8 = 0x23;
/// Providers a group's auctions refuse for a while: those whose lease of it the chain closed
/// as unhealthy (`Vec<Exclusion>`).
pub const EXCLUDED: u8 = 0x24;
pub const BID: u8 = 0x30;
pub const LEASE: u8 = 0x31;
/// What the monitors say of a lease (`LeaseHealth`).
pub const LEASE_HEALTH: u8 = 0x32;
pub const ESCROW: u8 = 0x40;
pub const PAYMENT: u8 = 0x41;
/// Orders whose bid window ends at a height.
pub const DUE_AUCTION: u8 = 0x50;
/// Escrow accounts that run out of funds at a height.
pub const DUE_DEPLETION: u8 = 0x51;
/// Overdrawn escrow accounts whose grace period ends at a height.
pub const DUE_GRACE: u8 = 0x52;
/// Unbonding stake that returns to its operator at a height (`height || operator`, amount).
pub const DUE_UNBONDING: u8 = 0x53;
/// Leases down since a height whose failover grace ends at a height (`height || lease id`).
pub const DUE_FAILOVER: u8 = 0x54;
/// Secondary index: every bid of a provider (`provider || bid id`, empty value).
pub const BID_BY_PROVIDER: u8 = 0x60;
/// Secondary index: every lease of a provider (`provider || lease id`, empty value).
pub const LEASE_BY_PROVIDER: u8 = 0x61;
/// A validator, by operator.
pub const VALIDATOR: u8 = 0x70;
/// Secondary index: validators by bonded stake, largest first (`!stake || operator`, empty).
pub const VALIDATOR_BY_STAKE: u8 = 0x71;
/// Consensus keys in use (`key`, the operator).
pub const CONSENSUS_KEY: u8 = 0x72;
/// The active validator set (`0`) and the next one, when a change is scheduled (`1`).
pub const VALIDATOR_SET: u8 = 0x73;

/// Every tag, for whole-state walks.
pub const ALL_TAGS: [u8; 30] = [
    PARAMS,
    ACCOUNT,
    BALANCE,
    POOL,
    SUPPLY,
    PROVIDER,
    AUDIT,
    CERT,
    PROVIDER_UPTIME,
    DEPLOYMENT,
    GROUP,
    ORDER,
    MONITORS,
    EXCLUDED,
    BID,
    LEASE,
    LEASE_HEALTH,
    ESCROW,
    PAYMENT,
    DUE_AUCTION,
    DUE_DEPLETION,
    DUE_GRACE,
    DUE_UNBONDING,
    DUE_FAILOVER,
    BID_BY_PROVIDER,
    LEASE_BY_PROVIDER,
    VALIDATOR,
    VALIDATOR_BY_STAKE,
    CONSENSUS_KEY,
    VALIDATOR_SET,
];

fn with_tag(tag: u8, cap: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(cap + 1);
    k.push(tag);
    k
}

pub fn params() -> Vec<u8> {
    vec![PARAMS]
}

pub fn account(a: &Address) -> Vec<u8> {
    let mut k = with_tag(ACCOUNT, 20);
    k.extend_from_slice(&a.0);
    k
}

pub fn balance(a: &Address, denom: &Denom) -> Vec<u8> {
    let mut k = with_tag(BALANCE, 20 + denom.as_str().len());
    k.extend_from_slice(&a.0);
    k.extend_from_slice(denom.as_str().as_bytes());
    k
}

pub fn pool(denom: &Denom) -> Vec<u8> {
    let mut k = with_tag(POOL, denom.as_str().len());
    k.extend_from_slice(denom.as_str().as_bytes());
    k
}

pub fn supply(denom: &Denom) -> Vec<u8> {
    let mut k = with_tag(SUPPLY, denom.as_str().len());
    k.extend_from_slice(denom.as_str().as_bytes());
    k
}

pub fn provider(owner: &Address) -> Vec<u8> {
    let mut k = with_tag(PROVIDER, 20);
    k.extend_from_slice(&owner.0);
    k
}

pub fn audit(provider: &Address, auditor: &Address) -> Vec<u8> {
    let mut k = with_tag(AUDIT, 40);
    k.extend_from_slice(&provider.0);
    k.extend_from_slice(&auditor.0);
    k
}

pub fn cert(owner: &Address, serial: &[u8; 32]) -> Vec<u8> {
    let mut k = with_tag(CERT, 52);
    k.extend_from_slice(&owner.0);
    k.extend_from_slice(serial);
    k
}

/// Every certificate of one owner.
pub fn certs_of(owner: &Address) -> Vec<u8> {
    let mut k = with_tag(CERT, 20);
    k.extend_from_slice(&owner.0);
    k
}

fn push_deployment(k: &mut Vec<u8>, d: &DeploymentId) {
    k.extend_from_slice(&d.owner.0);
    k.extend_from_slice(&d.dseq.to_be_bytes());
}

fn push_order(k: &mut Vec<u8>, o: &OrderId) {
    push_deployment(k, &o.deployment());
    k.extend_from_slice(&o.gseq.to_be_bytes());
    k.extend_from_slice(&o.oseq.to_be_bytes());
}

pub fn deployment(d: &DeploymentId) -> Vec<u8> {
    let mut k = with_tag(DEPLOYMENT, 28);
    push_deployment(&mut k, d);
    k
}

pub fn group(g: &GroupId) -> Vec<u8> {
    let mut k = with_tag(GROUP, 32);
    push_deployment(&mut k, &g.deployment());
    k.extend_from_slice(&g.gseq.to_be_bytes());
    k
}

pub fn order(o: &OrderId) -> Vec<u8> {
    let mut k = with_tag(ORDER, 36);
    push_order(&mut k, o);
    k
}

/// Prefix of every bid on one order.
pub fn bids_of_order(o: &OrderId) -> Vec<u8> {
    let mut k = with_tag(BID, 56);
    push_order(&mut k, o);
    k
}

pub fn bid(b: &BidId) -> Vec<u8> {
    let mut k = bids_of_order(&b.order);
    k.extend_from_slice(&b.provider.0);
    k
}

pub fn lease(l: &BidId) -> Vec<u8> {
    let mut k = with_tag(LEASE, 56);
    push_order(&mut k, &l.order);
    k.extend_from_slice(&l.provider.0);
    k
}

pub fn lease_health(l: &BidId) -> Vec<u8> {
    let mut k = lease(l);
    k[0] = LEASE_HEALTH;
    k
}

/// A lease id as the bytes after a key's tag (what `DUE_FAILOVER` entries hold).
pub fn lease_id_bytes(l: &BidId) -> Vec<u8> {
    lease(l)[1..].to_vec()
}

/// The lease id `lease_id_bytes` wrote.
pub fn parse_lease_id(bytes: &[u8]) -> Option<BidId> {
    let owner: [u8; 20] = bytes.get(..20)?.try_into().ok()?;
    let dseq = u64::from_be_bytes(bytes.get(20..28)?.try_into().ok()?);
    let gseq = u32::from_be_bytes(bytes.get(28..32)?.try_into().ok()?);
    let oseq = u32::from_be_bytes(bytes.get(32..36)?.try_into().ok()?);
    let provider: [u8; 20] = bytes.get(36..56)?.try_into().ok()?;
    if bytes.len() != 56 {
        return None;
    }
    let order = OrderId { owner: Address(owner), dseq, gseq, oseq };
    Some(BidId { order, provider: Address(provider) })
}

pub fn monitors(d: &DeploymentId) -> Vec<u8> {
    let mut k = with_tag(MONITORS, 28);
    push_deployment(&mut k, d);
    k
}

pub fn excluded(g: &GroupId) -> Vec<u8> {
    let mut k = group(g);
    k[0] = EXCLUDED;
    k
}

pub fn provider_uptime(p: &Address) -> Vec<u8> {
    let mut k = with_tag(PROVIDER_UPTIME, 20);
    k.extend_from_slice(&p.0);
    k
}

/// Prefix of an index (`BID_BY_PROVIDER` or `LEASE_BY_PROVIDER`) for one provider.
pub fn by_provider(tag: u8, provider: &Address) -> Vec<u8> {
    let mut k = with_tag(tag, 76);
    k.extend_from_slice(&provider.0);
    k
}

/// An index entry of `by_provider`: the provider, then the bid or lease id.
pub fn by_provider_entry(tag: u8, id: &BidId) -> Vec<u8> {
    let mut k = by_provider(tag, &id.provider);
    push_order(&mut k, &id.order);
    k.extend_from_slice(&id.provider.0);
    k
}

/// The bid or lease id an index entry of `by_provider` points to.
pub fn id_of_by_provider_entry(key: &[u8]) -> Option<BidId> {
    parse_lease_id(key.get(21..)?)
}

pub fn escrow(d: &DeploymentId) -> Vec<u8> {
    let mut k = with_tag(ESCROW, 28);
    push_deployment(&mut k, d);
    k
}

/// Prefix of every payment of one escrow account.
pub fn payments_of(d: &DeploymentId) -> Vec<u8> {
    let mut k = with_tag(PAYMENT, 56);
    push_deployment(&mut k, d);
    k
}

pub fn payment(l: &BidId) -> Vec<u8> {
    let mut k = payments_of(&l.order.deployment());
    k.extend_from_slice(&l.order.gseq.to_be_bytes());
    k.extend_from_slice(&l.order.oseq.to_be_bytes());
    k.extend_from_slice(&l.provider.0);
    k
}

/// A queue entry: `tag | height | id bytes`.
pub fn due(tag: u8, at: Height, id: &[u8]) -> Vec<u8> {
    let mut k = with_tag(tag, 8 + id.len());
    k.extend_from_slice(&at.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// Range of queue entries due at or before `at`: `[tag, tag|at+1)`.
pub fn due_until(tag: u8, at: Height) -> (Vec<u8>, Vec<u8>) {
    let start = vec![tag];
    let mut end = vec![tag];
    end.extend_from_slice(&at.saturating_add(1).to_be_bytes());
    (start, end)
}

pub fn validator(operator: &Address) -> Vec<u8> {
    let mut k = with_tag(VALIDATOR, 20);
    k.extend_from_slice(&operator.0);
    k
}

/// An entry of `VALIDATOR_BY_STAKE`: larger stakes sort first, ties by operator.
pub fn validator_by_stake(bonded: u128, operator: &Address) -> Vec<u8> {
    let mut k = with_tag(VALIDATOR_BY_STAKE, 36);
    k.extend_from_slice(&(u128::MAX - bonded).to_be_bytes());
    k.extend_from_slice(&operator.0);
    k
}

/// The operator a `VALIDATOR_BY_STAKE` entry names.
pub fn operator_of_stake_entry(key: &[u8]) -> Option<Address> {
    key.get(17..37).and_then(|s| <[u8; 20]>::try_from(s).ok()).map(Address)
}

pub fn consensus_key(key: &[u8; 32]) -> Vec<u8> {
    let mut k = with_tag(CONSENSUS_KEY, 32);
    k.extend_from_slice(key);
    k
}

pub fn validator_set_current() -> Vec<u8> {
    vec![VALIDATOR_SET, 0]
}

pub fn validator_set_next() -> Vec<u8> {
    vec![VALIDATOR_SET, 1]
}
