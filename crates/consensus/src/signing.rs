//! ed25519 signing and verification of consensus messages.
//!
//! Every signed payload is `domain tag || chain id || borsh(fields)`, so a
//! signature from one chain (or one message kind) never verifies as another.

use async_trait::async_trait;
use borsh::BorshSerialize;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};

use arc_malachitebft_app_channel::app::types::core::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use arc_malachitebft_signing::{Error as SigningError, Signer, VerificationResult, Verifier};

use crate::types::{Address, BlockHash, GridContext, Height, Proposal, PublicKey, Signature, Vote};

const TAG_VOTE: &[u8] = b"gridlease/consensus/vote/v1";
const TAG_PROPOSAL: &[u8] = b"gridlease/consensus/proposal/v1";
const TAG_EXTENSION: &[u8] = b"gridlease/consensus/extension/v1";
const TAG_PROOF: &[u8] = b"gridlease/consensus/validator-proof/v1";

fn preimage(tag: &[u8], chain_id: &str, body: &impl BorshSerialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + chain_id.len() + 128);
    out.extend_from_slice(tag);
    out.extend_from_slice(&(chain_id.len() as u32).to_le_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    // Borsh into a Vec cannot fail.
    body.serialize(&mut out).expect("borsh into Vec");
    out
}

pub(crate) fn vote_bytes(chain_id: &str, vote: &Vote) -> Vec<u8> {
    // The extension is deliberately left out: commit certificates rebuild the
    // precommit without it and must verify against the same bytes.
    #[derive(BorshSerialize)]
    struct Body<'a> {
        vote_type: &'a VoteType,
        height: Height,
        round: Round,
        value: &'a NilOrVal<BlockHash>,
        validator: &'a Address,
    }
    preimage(
        TAG_VOTE,
        chain_id,
        &Body {
            vote_type: &vote.vote_type,
            height: vote.height,
            round: vote.round,
            value: &vote.value,
            validator: &vote.validator,
        },
    )
}

pub(crate) fn proposal_bytes(chain_id: &str, proposal: &Proposal) -> Vec<u8> {
    preimage(TAG_PROPOSAL, chain_id, proposal)
}

fn extension_bytes(chain_id: &str, scope: &VoteExtensionScope<GridContext>, ext: &[u8]) -> Vec<u8> {
    preimage(
        TAG_EXTENSION,
        chain_id,
        &(scope.height, scope.round, scope.value_id, scope.validator_address, ext),
    )
}

fn proof_bytes(chain_id: &str, public_key: &[u8], peer_id: &[u8]) -> Vec<u8> {
    let engine_preimage = ValidatorProof::<GridContext>::signing_bytes(public_key, peer_id);
    preimage(TAG_PROOF, chain_id, &engine_preimage)
}

fn check(public_key: &PublicKey, msg: &[u8], signature: &Signature) -> VerificationResult {
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    VerificationResult::from_bool(public_key.0.verify(msg, &sig).is_ok())
}

/// Signs votes, proposals, extensions and the network validator proof.
pub(crate) struct GridSigner {
    key: SigningKey,
    chain_id: String,
}

impl GridSigner {
    pub(crate) fn new(key: SigningKey, chain_id: String) -> Self {
        Self { key, chain_id }
    }

    fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.key.sign(msg).to_bytes())
    }
}

#[async_trait]
impl Signer<GridContext> for GridSigner {
    async fn sign_vote(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<GridContext, Vote>, SigningError> {
        let signature = self.sign(&vote_bytes(&self.chain_id, &vote));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<GridContext, Proposal>, SigningError> {
        let signature = self.sign(&proposal_bytes(&self.chain_id, &proposal));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<GridContext>,
        extension: Vec<u8>,
    ) -> Result<SignedMessage<GridContext, Vec<u8>>, SigningError> {
        let signature = self.sign(&extension_bytes(&self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<GridContext>, SigningError> {
        let signature = self.sign(&proof_bytes(&self.chain_id, &public_key, &peer_id));
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Verifies what [`GridSigner`] signs.
pub(crate) struct GridVerifier {
    chain_id: String,
}

impl GridVerifier {
    pub(crate) fn new(chain_id: String) -> Self {
        Self { chain_id }
    }
}

#[async_trait]
impl Verifier<GridContext> for GridVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(check(public_key, &vote_bytes(&self.chain_id, vote), signature))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(check(public_key, &proposal_bytes(&self.chain_id, proposal), signature))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<GridContext>,
        extension: &Vec<u8>,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(check(public_key, &extension_bytes(&self.chain_id, scope, extension), signature))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<GridContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(public_key) = proof.decoded_public_key() else {
            return Ok(VerificationResult::Invalid);
        };
        let msg = proof_bytes(&self.chain_id, &proof.public_key, &proof.peer_id);
        Ok(check(&public_key, &msg, &proof.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_app_channel::app::types::core::Context as _;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[tokio::test]
    async fn vote_signature_round_trip_and_domain_separation() {
        let sk = key(7);
        let pk = PublicKey(sk.verifying_key());
        let addr = Address::from_public_key(&pk);
        let vote = GridContext.new_precommit(
            Height(3),
            Round::new(0),
            NilOrVal::Val(BlockHash::of(b"block")),
            addr,
        );
        let signer = GridSigner::new(sk, "grid-a".into());
        let signed = signer.sign_vote(vote.clone()).await.unwrap();

        let ok = GridVerifier::new("grid-a".into());
        assert!(ok.verify_signed_vote(&vote, &signed.signature, &pk).await.unwrap().is_valid());

        let other_chain = GridVerifier::new("grid-b".into());
        assert!(
            other_chain
                .verify_signed_vote(&vote, &signed.signature, &pk)
                .await
                .unwrap()
                .is_invalid()
        );

        // The extension does not change what was signed.
        let extended = Vote { extension: None, ..vote.clone() };
        assert!(ok.verify_signed_vote(&extended, &signed.signature, &pk).await.unwrap().is_valid());
    }
}
