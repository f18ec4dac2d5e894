//! The one canonical binary encoding: Borsh (deterministic, no maps with random order, no
//! optional field tags). Everything that is hashed or signed goes through these two functions;
//! fixture files under `tests/fixtures/encoding` pin the exact bytes.

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest value [`decode`] accepts, as a guard against hostile lengths.
pub const MAX_DECODE_LEN: usize = 4 * 1024 * 1024;

/// Why bytes do not decode to the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoded value is {0} bytes, more than the {MAX_DECODE_LEN}-byte limit")]
    TooLarge(usize),
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Encodes a value canonically.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = value.serialize(&mut out);
    out
}

/// Decodes a value, rejecting trailing bytes.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_DECODE_LEN {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}
