//! Double-sign evidence: two different votes of one kind that one validator signed for the
//! same height and round. The engine reports what it saw at `Finalized`; we encode each pair
//! in our own format so anyone (the ledger's `SubmitEvidence`, through the node) can carry
//! it, and check it again from the bytes alone.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::Verifier as _;

use arc_malachitebft_app_channel::app::types::core::{NilOrVal, Round, SignedMessage, VoteType};

use crate::signing::vote_bytes;
use crate::types::{Address, BlockHash, GridContext, Height, PublicKey, Vote};
use crate::{ConsensusError, Misbehaviour};

/// One signed vote as evidence carries it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct EvidenceVote {
    /// 0 prevote, 1 precommit.
    kind: u8,
    height: u64,
    /// -1 for nil rounds.
    round: i64,
    value: Option<[u8; 32]>,
    validator: [u8; 20],
    signature: [u8; 64],
}

impl EvidenceVote {
    fn from_signed(v: &SignedMessage<GridContext, Vote>) -> Self {
        let vote = &v.message;
        EvidenceVote {
            kind: match vote.vote_type {
                VoteType::Prevote => 0,
                VoteType::Precommit => 1,
            },
            height: vote.height.0,
            round: vote.round.as_i64(),
            value: match &vote.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(h) => Some(h.0),
            },
            validator: vote.validator.0,
            signature: v.signature.0,
        }
    }

    fn vote(&self) -> Result<Vote, String> {
        let vote_type = match self.kind {
            0 => VoteType::Prevote,
            1 => VoteType::Precommit,
            k => return Err(format!("unknown vote kind {k}")),
        };
        let round = match u32::try_from(self.round) {
            Ok(r) => Round::new(r),
            Err(_) if self.round == -1 => Round::Nil,
            Err(_) => return Err(format!("bad round {}", self.round)),
        };
        Ok(Vote {
            vote_type,
            height: Height(self.height),
            round,
            value: self.value.map_or(NilOrVal::Nil, |h| NilOrVal::Val(BlockHash(h))),
            validator: Address(self.validator),
            extension: None,
        })
    }
}

/// The evidence bytes of a double vote.
pub(crate) fn encode(
    first: &SignedMessage<GridContext, Vote>,
    second: &SignedMessage<GridContext, Vote>,
) -> Vec<u8> {
    borsh::to_vec(&(EvidenceVote::from_signed(first), EvidenceVote::from_signed(second)))
        .unwrap_or_default()
}

/// What engine evidence becomes for the application.
pub(crate) fn misbehaviour(
    public_key: [u8; 32],
    first: &SignedMessage<GridContext, Vote>,
    second: &SignedMessage<GridContext, Vote>,
) -> Misbehaviour {
    Misbehaviour {
        offender: public_key,
        height: first.message.height.0,
        evidence: encode(first, second),
    }
}

/// Checks that `evidence` is two different votes of one kind, height and round, both signed
/// on `chain_id` by the key `offender`, and returns their height.
pub fn check_double_sign(
    chain_id: &str,
    offender: &[u8; 32],
    evidence: &[u8],
) -> Result<u64, ConsensusError> {
    let bad = |why: String| ConsensusError::Evidence(why);
    let key = ed25519_dalek::VerifyingKey::from_bytes(offender)
        .map_err(|e| bad(format!("offender key: {e}")))?;
    let (a, b): (EvidenceVote, EvidenceVote) =
        borsh::from_slice(evidence).map_err(|e| bad(format!("does not decode: {e}")))?;
    if (a.kind, a.height, a.round) != (b.kind, b.height, b.round) {
        return Err(bad("the votes are for different heights, rounds or kinds".into()));
    }
    if a.value == b.value {
        return Err(bad("the votes are for the same value".into()));
    }
    let address = Address::from_public_key(&PublicKey(key));
    for v in [&a, &b] {
        if v.validator != address.0 {
            return Err(bad("a vote names another validator than the offender".into()));
        }
        let bytes = vote_bytes(chain_id, &v.vote().map_err(bad)?);
        let sig = ed25519_dalek::Signature::from_bytes(&v.signature);
        key.verify(&bytes, &sig).map_err(|_| bad("a signature does not verify".into()))?;
    }
    Ok(a.height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn signed(
        key: &SigningKey,
        chain: &str,
        value: Option<[u8; 32]>,
    ) -> SignedMessage<GridContext, Vote> {
        let public = PublicKey(key.verifying_key());
        let vote = Vote {
            vote_type: VoteType::Prevote,
            height: Height(7),
            round: Round::new(1),
            value: value.map_or(NilOrVal::Nil, |h| NilOrVal::Val(BlockHash(h))),
            validator: Address::from_public_key(&public),
            extension: None,
        };
        let signature = crate::types::Signature(key.sign(&vote_bytes(chain, &vote)).to_bytes());
        SignedMessage::new(vote, signature)
    }

    #[test]
    fn a_double_vote_verifies_and_tampering_does_not() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let pk = key.verifying_key().to_bytes();
        let (a, b) = (signed(&key, "c", Some([1; 32])), signed(&key, "c", Some([2; 32])));
        let m = misbehaviour(pk, &a, &b);
        assert_eq!(check_double_sign("c", &pk, &m.evidence).expect("valid"), 7);
        // Another chain's signatures, the same value twice, another offender, a flipped bit.
        assert!(check_double_sign("other", &pk, &m.evidence).is_err());
        assert!(check_double_sign("c", &pk, &encode(&a, &a)).is_err());
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        assert!(check_double_sign("c", &other, &m.evidence).is_err());
        let mut tampered = m.evidence.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(check_double_sign("c", &pk, &tampered).is_err());
        // A nil vote against a value is a double vote too.
        let nil = signed(&key, "c", None);
        assert!(check_double_sign("c", &pk, &encode(&a, &nil)).is_ok());
        assert!(check_double_sign("c", &pk, b"junk").is_err());
    }
}
