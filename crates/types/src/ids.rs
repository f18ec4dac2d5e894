//! Identifiers of deployments, groups, orders, bids and leases.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::Address;

/// A deployment: its owner and the owner-chosen sequence number `dseq`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DeploymentId {
    pub owner: Address,
    pub dseq: u64,
}

/// A group of a deployment (`gseq` starts at 1).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct GroupId {
    pub owner: Address,
    pub dseq: u64,
    pub gseq: u32,
}

/// One auction round of a group (`oseq` starts at 1 and grows with each re-auction).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct OrderId {
    pub owner: Address,
    pub dseq: u64,
    pub gseq: u32,
    pub oseq: u32,
}

/// A provider's bid on an order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BidId {
    pub order: OrderId,
    pub provider: Address,
}

/// A lease has the id of the bid that won it.
pub type LeaseId = BidId;

impl DeploymentId {
    pub fn group(&self, gseq: u32) -> GroupId {
        GroupId { owner: self.owner, dseq: self.dseq, gseq }
    }
}

impl GroupId {
    pub fn deployment(&self) -> DeploymentId {
        DeploymentId { owner: self.owner, dseq: self.dseq }
    }
    pub fn order(&self, oseq: u32) -> OrderId {
        OrderId { owner: self.owner, dseq: self.dseq, gseq: self.gseq, oseq }
    }
}

impl OrderId {
    pub fn group(&self) -> GroupId {
        GroupId { owner: self.owner, dseq: self.dseq, gseq: self.gseq }
    }
    pub fn deployment(&self) -> DeploymentId {
        DeploymentId { owner: self.owner, dseq: self.dseq }
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.dseq)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.owner, self.dseq, self.gseq, self.oseq)
    }
}

impl fmt::Display for BidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.order, self.provider)
    }
}
