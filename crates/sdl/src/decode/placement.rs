//! Placement profiles (`profiles.placement`): required attributes, auditors (`signedBy`) and
//! the price of each compute profile.

use super::Decoder;
use crate::error::FieldPath;
use crate::model::{Coin, PlacementProfile};
use crate::quantity::Dec18;
use crate::rules::{ALLOWED_DENOMS, is_allowed_denom};
use crate::yaml::{Node, Pos, ScalarType};

/// `signedBy`: the auditors that must all sign, and those of which one must.
type SignedBy = (Option<Vec<String>>, Option<Vec<String>>);

impl Decoder<'_> {
    /// One entry of `profiles.placement`.
    pub(super) fn placement_profile(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<PlacementProfile> {
        let f = self.fields(node, path, &["attributes", "signedBy", "pricing"], &["pricing"])?;
        let attributes = match f.get("attributes") {
            Some(n) if !n.is_null() => {
                let attrs = self.string_map(n, &path.key("attributes"))?;
                if attrs.is_empty() { None } else { Some(attrs) }
            }
            _ => None,
        };
        let (all_of, any_of) = match f.get("signedBy") {
            Some(n) => self.signed_by(n, &path.key("signedBy"))?,
            None => (None, None),
        };
        let pricing = self.map_values(f.get("pricing")?, &path.key("pricing"), Self::coin)?;
        Some(PlacementProfile { pos: key_pos, attributes, all_of, any_of, pricing })
    }

    fn signed_by(&mut self, node: &Node, path: &FieldPath) -> Option<SignedBy> {
        let f = self.fields(node, path, &["allOf", "anyOf"], &[])?;
        let (mut all_of, mut any_of) = (None, None);
        if let Some(a) = f.get("allOf") {
            all_of = self.optional_string_list(a, &path.key("allOf"))?;
        }
        if let Some(a) = f.get("anyOf") {
            any_of = self.optional_string_list(a, &path.key("anyOf"))?;
        }
        Some((all_of, any_of))
    }

    /// One price in `pricing`, positioned at its key.
    fn coin(&mut self, node: &Node, key_pos: Pos, path: &FieldPath) -> Option<Coin> {
        let f = self.fields(node, path, &["denom", "amount"], &["denom", "amount"])?;
        let dn = f.get("denom")?;
        let dp = path.key("denom");
        let denom = self.string(dn, &dp)?;
        let denom_ok = is_allowed_denom(&denom);
        if !denom_ok {
            self.err(
                dn.pos,
                &dp,
                format!(
                    "unsupported denomination {denom:?}; expected one of {} or an ibc/<hash> denomination",
                    ALLOWED_DENOMS.join(", ")
                ),
            );
        }
        let amount = self.amount(f.get("amount")?, &path.key("amount"))?;
        denom_ok.then_some(Coin { pos: key_pos, denom, amount })
    }

    /// A price's `amount`: an exact decimal greater than zero.
    fn amount(&mut self, node: &Node, path: &FieldPath) -> Option<Dec18> {
        let text = match node.as_scalar() {
            Some(s)
                if matches!(
                    s.scalar_type(),
                    ScalarType::Int | ScalarType::Float | ScalarType::Str
                ) =>
            {
                s.text.clone()
            }
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!(
                        "expected a decimal amount such as 1000 or 0.25, found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        };
        let amount = match Dec18::parse(&text) {
            Ok(a) => a,
            Err(e) => {
                self.err(node.pos, path, e.0);
                return None;
            }
        };
        if amount.is_zero() {
            self.err(node.pos, path, "amount is zero; expected a price greater than zero");
            return None;
        }
        Some(amount)
    }
}
