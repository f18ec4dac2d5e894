//! Attributes (key/value pairs) of providers and placement requirements of groups.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::Address;

/// One key/value attribute, such as `region=eu-west` or `tier=datacenter`.
#[derive(
    Clone,
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
pub struct Attribute {
    pub key: String,
    pub value: String,
}

impl Attribute {
    pub fn new(key: &str, value: &str) -> Self {
        Attribute { key: key.to_string(), value: value.to_string() }
    }
}

/// Auditors whose signatures on the required attributes a tenant demands.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SignedBy {
    /// Every one of these auditors must have signed the required attributes.
    #[serde(default)]
    pub all_of: Vec<Address>,
    /// At least one of these auditors must have signed the required attributes.
    #[serde(default)]
    pub any_of: Vec<Address>,
}

impl SignedBy {
    pub fn is_empty(&self) -> bool {
        self.all_of.is_empty() && self.any_of.is_empty()
    }
}

/// Where a group may be placed.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct PlacementRequirements {
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default)]
    pub signed_by: SignedBy,
}

/// True when every required attribute appears in `offered` with the same value.
pub fn attributes_satisfied(required: &[Attribute], offered: &[Attribute]) -> bool {
    required.iter().all(|r| offered.iter().any(|o| o.key == r.key && o.value == r.value))
}

impl PlacementRequirements {
    /// Whether the provider's attributes match and the `signedBy` auditors vouch for them.
    /// `audited(auditor)` returns the attributes that auditor signed for this provider.
    pub fn signed_by_satisfied<'a>(
        &self,
        audited: impl Fn(&Address) -> Option<&'a [Attribute]>,
    ) -> bool {
        let vouches = |auditor: &Address| {
            audited(auditor).is_some_and(|signed| attributes_satisfied(&self.attributes, signed))
        };
        let all_ok = self.signed_by.all_of.iter().all(vouches);
        let any_ok = self.signed_by.any_of.is_empty() || self.signed_by.any_of.iter().any(vouches);
        all_ok && any_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_and_audits() {
        let req = PlacementRequirements {
            attributes: vec![Attribute::new("region", "eu")],
            signed_by: SignedBy { all_of: vec![Address([1; 20])], any_of: vec![] },
        };
        let provider = vec![Attribute::new("region", "eu"), Attribute::new("tier", "1")];
        assert!(attributes_satisfied(&req.attributes, &provider));
        assert!(!attributes_satisfied(&req.attributes, &[Attribute::new("region", "us")]));
        let signed = provider.clone();
        assert!(req.signed_by_satisfied(|a| (a.0 == [1; 20]).then_some(signed.as_slice())));
        assert!(!req.signed_by_satisfied(|_| None));
        let any = PlacementRequirements {
            signed_by: SignedBy {
                all_of: vec![],
                any_of: vec![Address([1; 20]), Address([2; 20])],
            },
            ..req
        };
        assert!(any.signed_by_satisfied(|a| (a.0 == [2; 20]).then_some(signed.as_slice())));
        assert!(!any.signed_by_satisfied(|a| (a.0 == [3; 20]).then_some(signed.as_slice())));
    }
}
