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

/// Why a string is not an order id (`OWNER/DSEQ/GSEQ/OSEQ`, as `OrderId` displays).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an order id: expected OWNER/DSEQ/GSEQ/OSEQ")]
pub struct BadOrderId(pub String);

impl std::str::FromStr for OrderId {
    type Err = BadOrderId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadOrderId(s.to_string());
        let mut parts = s.split('/');
        let (Some(owner), Some(dseq), Some(gseq), Some(oseq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(OrderId {
            owner: owner.parse().map_err(|_| bad())?,
            dseq: dseq.parse().map_err(|_| bad())?,
            gseq: gseq.parse().map_err(|_| bad())?,
            oseq: oseq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_id_reads_back_what_it_displays() {
        let id = OrderId { owner: Address([3; 20]), dseq: 42, gseq: 2, oseq: 1 };
        assert_eq!(id.to_string().parse::<OrderId>(), Ok(id));
        for bad in ["", "a/1/1/1", "x", &format!("{id}/1"), &format!("{}/1/1", id.owner)] {
            assert!(bad.parse::<OrderId>().is_err(), "{bad}");
        }
    }
}
