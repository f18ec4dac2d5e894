//! The block format consensus agrees on: header fields plus raw transactions.

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded block a proposer builds or a validator accepts.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;

/// A proposed or decided block. Consensus signs the SHA-256 of its canonical encoding.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub chain_id: String,
    pub height: u64,
    /// Proposer's clock, unix milliseconds; strictly increasing from block to block.
    pub time_ms: u64,
    /// State root after the previous block: validators agree on state, not only on bytes.
    pub parent_root: [u8; 32],
    pub txs: Vec<Vec<u8>>,
}

impl Block {
    pub fn encode(&self) -> Vec<u8> {
        gridlease_types::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Block, String> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(format!("block of {} bytes exceeds {MAX_BLOCK_BYTES}", bytes.len()));
        }
        borsh::from_slice(bytes).map_err(|e| format!("block does not decode: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let b = Block {
            chain_id: "c".into(),
            height: 3,
            time_ms: 9,
            parent_root: [1; 32],
            txs: vec![vec![1, 2]],
        };
        assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        assert!(Block::decode(&[1, 2, 3]).is_err());
    }
}
