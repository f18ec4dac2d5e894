//! ed25519 keys: derivation from BIP39 mnemonics (SLIP-0010, path `m/44'/118'/0'/0'/i'`),
//! signing and strict verification.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha512;

use crate::Address;

/// Hardened BIP44 path components used for account keys: purpose 44, coin type 118
/// (the Cosmos coin type, which gridlease shares), account 0, change 0.
pub const DERIVATION_PREFIX: [u32; 4] = [44, 118, 0, 0];

const HARDENED: u32 = 0x8000_0000;

/// Why a key, mnemonic or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid mnemonic: {0}")]
    Mnemonic(String),
    #[error("invalid public key: not a point on the ed25519 curve")]
    PublicKey,
    #[error("signature does not verify for this public key and message")]
    BadSignature,
}

/// An ed25519 public key (32 bytes).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Default,
)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl PublicKey {
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.0)
    }

    /// Whether the bytes are a usable ed25519 key: a point on the curve, not of small order.
    pub fn is_valid(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|k| !k.is_weak())
    }

    /// Strict verification: the same acceptance rule as `verify_strict` of ed25519-dalek
    /// (canonical `s`, neither the key nor `R` of small order, `R` compared as canonical bytes),
    /// without decompressing `R`: after the cofactorless check passes, `R` is the canonical
    /// encoding of a point, so comparing it against the eight small-order encodings suffices.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::PublicKey)?;
        if key.is_weak() {
            return Err(KeyError::PublicKey);
        }
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify(message, &sig).map_err(|_| KeyError::BadSignature)?;
        let r: [u8; 32] = signature.0[..32].try_into().map_err(|_| KeyError::BadSignature)?;
        if small_order_encodings().contains(&r) {
            return Err(KeyError::BadSignature);
        }
        Ok(())
    }
}

/// Canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS
        .get_or_init(|| curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().to_bytes()))
}

/// A signing key with its public half.
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Keypair { signing: SigningKey::from_bytes(&self.signing.to_bytes()) }
    }
}

impl Keypair {
    /// A key from 32 secret bytes.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(&secret) }
    }

    /// The account key `index` of a BIP39 mnemonic (with an optional BIP39 passphrase).
    pub fn from_mnemonic(phrase: &str, passphrase: &str, index: u32) -> Result<Self, KeyError> {
        let mnemonic = bip39::Mnemonic::parse_normalized(phrase)
            .map_err(|e| KeyError::Mnemonic(e.to_string()))?;
        let seed = mnemonic.to_seed_normalized(passphrase);
        let mut path = DERIVATION_PREFIX.to_vec();
        path.push(index);
        Ok(Self::from_secret(slip10_ed25519(&seed, &path)))
    }

    /// A new 24-word mnemonic from caller-supplied entropy (32 bytes). The caller owns the
    /// randomness; this crate has none.
    pub fn mnemonic_from_entropy(entropy: &[u8; 32]) -> Result<String, KeyError> {
        bip39::Mnemonic::from_entropy(entropy)
            .map(|m| m.to_string())
            .map_err(|e| KeyError::Mnemonic(e.to_string()))
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

/// SLIP-0010 derivation for ed25519 (every step hardened).
fn slip10_ed25519(seed: &[u8], path: &[u32]) -> [u8; 32] {
    let (mut key, mut chain) = hmac_split(b"ed25519 seed", &[seed]);
    for index in path {
        let idx = (index | HARDENED).to_be_bytes();
        (key, chain) = hmac_split(&chain, &[&[0u8], &key, &idx]);
    }
    key
}

fn hmac_split(key: &[u8], parts: &[&[u8]]) -> ([u8; 32], [u8; 32]) {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match <Hmac<Sha512> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("hmac takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    let out = mac.finalize().into_bytes();
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&out[..32]);
    right.copy_from_slice(&out[32..]);
    (left, right)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SLIP-0010 test vector 1 for ed25519 (seed 000102...0f), chain m/0'/1'/2'/2'/1000000000'.
    #[test]
    fn slip10_test_vector() {
        let seed = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let k = slip10_ed25519(&seed, &[]);
        assert_eq!(
            hex::encode(k),
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
        );
        let k = slip10_ed25519(&seed, &[0, 1, 2, 2, 1_000_000_000]);
        assert_eq!(
            hex::encode(k),
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793"
        );
        let pk = Keypair::from_secret(k).public_key();
        assert_eq!(
            hex::encode(pk.0),
            "3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"
        );
    }

    /// A signature whose `R` is a small-order point is rejected even where the cofactorless
    /// equation would hold, exactly as `verify_strict` does.
    #[test]
    fn small_order_r_and_weak_keys_are_rejected() {
        let identity = small_order_encodings()[0];
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        // With the identity as key, s = 0 and R = identity satisfy the equation.
        assert_eq!(PublicKey(identity).verify(b"m", &Signature(sig)), Err(KeyError::PublicKey));
        let k = Keypair::from_secret([5; 32]);
        let good = k.sign(b"m");
        assert!(k.public_key().verify(b"m", &good).is_ok());
        let vk = VerifyingKey::from_bytes(&k.public_key().0).unwrap();
        let strict = vk.verify_strict(b"m", &ed25519_dalek::Signature::from_bytes(&good.0));
        assert!(strict.is_ok());
        for enc in small_order_encodings() {
            let mut forged = good.0;
            forged[..32].copy_from_slice(enc);
            assert_eq!(
                k.public_key().verify(b"m", &Signature(forged)),
                Err(KeyError::BadSignature)
            );
        }
    }

    #[test]
    fn mnemonic_derivation_is_stable_and_signatures_verify() {
        let phrase = Keypair::mnemonic_from_entropy(&[9u8; 32]).unwrap();
        assert_eq!(phrase.split_whitespace().count(), 24);
        let a = Keypair::from_mnemonic(&phrase, "", 0).unwrap();
        let b = Keypair::from_mnemonic(&phrase, "", 0).unwrap();
        let c = Keypair::from_mnemonic(&phrase, "", 1).unwrap();
        assert_eq!(a.address(), b.address());
        assert_ne!(a.address(), c.address());
        let sig = a.sign(b"hello");
        assert!(a.public_key().verify(b"hello", &sig).is_ok());
        assert_eq!(a.public_key().verify(b"hellp", &sig), Err(KeyError::BadSignature));
        assert_eq!(c.public_key().verify(b"hello", &sig), Err(KeyError::BadSignature));
        assert!(matches!(
            Keypair::from_mnemonic("not a real mnemonic", "", 0),
            Err(KeyError::Mnemonic(_))
        ));
    }
}

fn from_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    crate::hex::decode(s)
        .and_then(|v| <[u8; N]>::try_from(v).ok())
        .ok_or_else(|| format!("expected {} hex digits", N * 2))
}

macro_rules! hex_serde {
    ($ty:ident, $n:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&crate::hex::encode(&self.0))
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                from_hex::<$n>(&s).map($ty).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_serde!(PublicKey, 32);
hex_serde!(Signature, 64);
