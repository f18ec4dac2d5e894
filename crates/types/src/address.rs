//! Account addresses: 20 bytes of SHA-256 over the ed25519 public key, shown as bech32 with
//! the `grid` prefix.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

/// Human-readable part of every gridlease address.
pub const ADDRESS_PREFIX: &str = "grid";

/// An account address.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Default,
)]
pub struct Address(pub [u8; 20]);

/// Why a string is not a gridlease address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("invalid bech32 address `{0}`: {1}")]
    Bech32(String, String),
    #[error("address `{0}` has prefix `{1}`, expected `grid`")]
    WrongPrefix(String, String),
    #[error("address `{0}` holds {1} bytes, expected 20")]
    WrongLength(String, usize),
}

impl Address {
    /// The address of an ed25519 public key.
    pub fn from_public_key(key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[..20]);
        Address(out)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_PREFIX);
        match bech32::encode::<Bech32>(hrp, &self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::decode_with_prefix(s, ADDRESS_PREFIX)
    }
}

/// Bech32 prefix of Akash accounts.
pub const AKASH_PREFIX: &str = "akash";

impl Address {
    /// The account with the same 20 bytes as an Akash address (`akash1...`): how gridlease
    /// reads the Akash auditors an SDL file's `signedBy` names.
    pub fn from_akash(s: &str) -> Result<Address, AddressError> {
        Address::decode_with_prefix(s, AKASH_PREFIX)
    }

    /// The 20 bytes of a bech32 address whose prefix is `prefix`.
    fn decode_with_prefix(s: &str, prefix: &str) -> Result<Address, AddressError> {
        let (hrp, data) =
            bech32::decode(s).map_err(|e| AddressError::Bech32(s.to_string(), e.to_string()))?;
        if hrp.as_str() != prefix {
            return Err(AddressError::WrongPrefix(s.to_string(), hrp.to_string()));
        }
        let bytes: [u8; 20] = data
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength(s.to_string(), data.len()))?;
        Ok(Address(bytes))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_akash_address_names_the_account_with_the_same_bytes() {
        let grid = Address([7; 20]);
        let hrp = bech32::Hrp::parse_unchecked(AKASH_PREFIX);
        let akash = bech32::encode::<bech32::Bech32>(hrp, &grid.0).expect("encode");
        assert!(akash.starts_with("akash1"));
        assert_eq!(Address::from_akash(&akash).expect("akash"), grid);
        assert!(akash.parse::<Address>().is_err(), "not a grid address");
        assert!(Address::from_akash(&grid.to_string()).is_err(), "not an akash address");
        assert!(Address::from_akash("akash1auditor").is_err());
    }
    use super::*;

    #[test]
    fn bech32_round_trip_and_prefix() {
        let a = Address::from_public_key(&[7u8; 32]);
        let s = a.to_string();
        assert!(s.starts_with("grid1"), "{s}");
        assert_eq!(s.parse::<Address>().unwrap(), a);
    }

    #[test]
    fn rejects_foreign_prefix_and_bad_checksum() {
        let a = Address::from_public_key(&[1u8; 32]).to_string();
        let mut bad = a.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(bad.parse::<Address>(), Err(AddressError::Bech32(..))));
        let cosmos = bech32::encode::<Bech32>(Hrp::parse("cosmos").unwrap(), &[0u8; 20]).unwrap();
        assert!(matches!(cosmos.parse::<Address>(), Err(AddressError::WrongPrefix(..))));
        let short = bech32::encode::<Bech32>(Hrp::parse("grid").unwrap(), &[0u8; 19]).unwrap();
        assert!(matches!(short.parse::<Address>(), Err(AddressError::WrongLength(_, 19))));
    }
}
