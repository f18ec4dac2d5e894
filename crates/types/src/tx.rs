//! The transaction envelope: chain id, signer, account sequence, fee and messages, signed
//! over their canonical bytes. A [`VerifiedTx`] can only be made by checking the signature.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Address;
use crate::amount::Coin;
use crate::encoding::{DecodeError, decode, encode};
use crate::keys::{KeyError, Keypair, PublicKey, Signature};
use crate::msg::Msg;

/// Domain separator prefixed to the signed bytes, so a signature over a transaction can never
/// be replayed as a signature over anything else.
pub const SIGN_DOMAIN: &[u8] = b"gridlease/tx/v1\0";
/// Largest encoded transaction.
pub const MAX_TX_BYTES: usize = 64 * 1024;
/// Most messages in one transaction.
pub const MAX_MSGS: usize = 64;

/// What the signer signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TxBody {
    pub chain_id: String,
    pub signer: Address,
    pub sequence: u64,
    pub fee: Coin,
    #[serde(default)]
    pub memo: String,
    pub messages: Vec<Msg>,
}

/// A signed transaction as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Tx {
    pub body: TxBody,
    pub public_key: PublicKey,
    pub signature: Signature,
}

/// SHA-256 of a transaction's canonical bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Default,
)]
pub struct TxHash(pub [u8; 32]);

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxHash({self})")
    }
}

impl TxHash {
    /// SHA-256 of raw transaction bytes (equal to [`Tx::hash`] for canonical bytes).
    pub fn of_bytes(bytes: &[u8]) -> TxHash {
        TxHash(Sha256::digest(bytes).into())
    }
}

impl std::str::FromStr for TxHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid transaction hash `{s}`: expected 64 hex digits");
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(TxHash(out))
    }
}

impl Serialize for TxHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TxHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a transaction failed its stateless checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxCheckError {
    #[error("transaction is {0} bytes, more than the {MAX_TX_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("transaction does not decode: {0}")]
    Malformed(#[from] DecodeError),
    #[error("signer {signer} is not the address of the attached public key ({derived})")]
    WrongSigner { signer: Address, derived: Address },
    #[error("signature check failed: {0}")]
    Signature(#[from] KeyError),
    #[error("transaction carries no messages")]
    Empty,
    #[error("transaction carries {0} messages, more than the limit of {MAX_MSGS}")]
    TooManyMessages(usize),
}

impl TxBody {
    /// The exact bytes that are signed.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut out = SIGN_DOMAIN.to_vec();
        out.extend_from_slice(&encode(self));
        out
    }

    pub fn sign(self, key: &Keypair) -> Tx {
        let signature = key.sign(&self.sign_bytes());
        Tx { body: self, public_key: key.public_key(), signature }
    }
}

impl Tx {
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Tx, TxCheckError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxCheckError::TooLarge(bytes.len()));
        }
        Ok(decode(bytes)?)
    }

    pub fn hash(&self) -> TxHash {
        TxHash(Sha256::digest(self.to_bytes()).into())
    }

    /// Stateless checks: size, message count, signer matches key, signature verifies.
    pub fn verify(self) -> Result<VerifiedTx, TxCheckError> {
        let bytes = self.to_bytes();
        self.verify_encoded(&bytes)
    }

    /// [`Tx::verify`] given the transaction's canonical bytes, which it does not re-encode:
    /// the signed body is the prefix of the encoding before the key and signature.
    fn verify_encoded(self, bytes: &[u8]) -> Result<VerifiedTx, TxCheckError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxCheckError::TooLarge(bytes.len()));
        }
        if self.body.messages.is_empty() {
            return Err(TxCheckError::Empty);
        }
        if self.body.messages.len() > MAX_MSGS {
            return Err(TxCheckError::TooManyMessages(self.body.messages.len()));
        }
        let derived = self.public_key.address();
        if derived != self.body.signer {
            return Err(TxCheckError::WrongSigner { signer: self.body.signer, derived });
        }
        let body_len = bytes.len().saturating_sub(32 + 64);
        let mut signed = Vec::with_capacity(SIGN_DOMAIN.len() + body_len);
        signed.extend_from_slice(SIGN_DOMAIN);
        signed.extend_from_slice(&bytes[..body_len]);
        self.public_key.verify(&signed, &self.signature)?;
        Ok(VerifiedTx { tx: self, hash: TxHash::of_bytes(bytes), len: bytes.len() })
    }

    /// Runs [`Tx::verify`] and keeps the failure as a value, for the ledger to receipt.
    pub fn check(self) -> CheckedTx {
        let bytes = self.to_bytes();
        Self::check_decoded(self, &bytes)
    }

    fn check_decoded(tx: Tx, bytes: &[u8]) -> CheckedTx {
        let signer = tx.body.signer;
        match tx.verify_encoded(bytes) {
            Ok(v) => CheckedTx::Valid(v),
            Err(error) => CheckedTx::Invalid { hash: TxHash::of_bytes(bytes), signer, error },
        }
    }

    /// Decodes raw bytes and checks them; bytes that do not decode become an invalid entry.
    pub fn check_bytes(bytes: &[u8]) -> CheckedTx {
        match Tx::from_bytes(bytes) {
            Ok(tx) => Self::check_decoded(tx, bytes),
            Err(error) => CheckedTx::Invalid {
                hash: TxHash::of_bytes(bytes),
                signer: Address::default(),
                error,
            },
        }
    }
}

/// A transaction whose signature has been checked. Only [`Tx::verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    tx: Tx,
    hash: TxHash,
    /// Length of the canonical encoding, in bytes (fees are charged per byte).
    len: usize,
}

impl VerifiedTx {
    pub fn body(&self) -> &TxBody {
        &self.tx.body
    }
    pub fn tx(&self) -> &Tx {
        &self.tx
    }
    pub fn hash(&self) -> TxHash {
        self.hash
    }
    pub fn public_key(&self) -> PublicKey {
        self.tx.public_key
    }
    /// Length of the transaction's canonical encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }
}

/// A transaction of a block after stateless checks: valid, or invalid with the reason.
#[derive(Clone, Debug)]
pub enum CheckedTx {
    Valid(VerifiedTx),
    Invalid { hash: TxHash, signer: Address, error: TxCheckError },
}

impl CheckedTx {
    pub fn hash(&self) -> TxHash {
        match self {
            CheckedTx::Valid(v) => v.hash(),
            CheckedTx::Invalid { hash, .. } => *hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Denom;

    fn body(key: &Keypair) -> TxBody {
        TxBody {
            chain_id: "gridlease-test".into(),
            signer: key.address(),
            sequence: 0,
            fee: Coin::new(10, &Denom::new("ugrid").unwrap()),
            memo: String::new(),
            messages: vec![Msg::CloseDeployment { dseq: 1 }],
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let k = Keypair::from_secret([3; 32]);
        let tx = body(&k).sign(&k);
        let bytes = tx.to_bytes();
        let back = Tx::from_bytes(&bytes).unwrap();
        assert_eq!(back, tx);
        let v = back.verify().unwrap();
        assert_eq!(v.hash(), tx.hash());
        // The signed bytes are the encoding's prefix, which verify_encoded relies on.
        let signed = tx.body.sign_bytes();
        assert_eq!(&signed[SIGN_DOMAIN.len()..], &bytes[..bytes.len() - 96]);
        assert!(matches!(Tx::check_bytes(&bytes), CheckedTx::Valid(_)));
        assert!(matches!(Tx::check_bytes(&bytes[1..]), CheckedTx::Invalid { .. }));

        let mut tampered = tx.clone();
        tampered.body.sequence = 1;
        assert!(matches!(tampered.verify(), Err(TxCheckError::Signature(KeyError::BadSignature))));

        let other = Keypair::from_secret([4; 32]);
        let mut wrong = tx.clone();
        wrong.public_key = other.public_key();
        assert!(matches!(wrong.verify(), Err(TxCheckError::WrongSigner { .. })));

        let mut empty = body(&k);
        empty.messages.clear();
        assert!(matches!(empty.sign(&k).verify(), Err(TxCheckError::Empty)));
        assert!(matches!(Tx::from_bytes(&[1, 2, 3]), Err(TxCheckError::Malformed(_))));
    }
}
