//! The load's signing keys: derived from a seed (so a script can fund them at genesis and the
//! generator can sign for them later) or read from a file of hex secrets.

use std::path::Path;

use anyhow::{Context, bail};
use gridlease_types::Keypair;

/// Prefix of every derived secret, so these keys never collide with real ones by accident.
const DERIVATION_TAG: &[u8; 8] = b"gl-load\0";

/// Key `index` of `seed`: the secret is the tag, the seed and the index, little-endian.
/// Deterministic and public: only for benchmark accounts.
pub fn derive_key(seed: u64, index: u64) -> Keypair {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(DERIVATION_TAG);
    secret[8..16].copy_from_slice(&seed.to_le_bytes());
    secret[16..24].copy_from_slice(&index.to_le_bytes());
    Keypair::from_secret(secret)
}

pub fn derive_keys(seed: u64, count: usize) -> Vec<Keypair> {
    (0..count as u64).map(|i| derive_key(seed, i)).collect()
}

/// One 64-digit hex ed25519 secret per line; blank lines and `#` comments are skipped.
pub fn read_secrets_file(path: &Path) -> anyhow::Result<Vec<Keypair>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read secrets file {}", path.display()))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let secret = parse_secret(line).with_context(|| {
            format!("{}:{}: expected a secret of 64 hex digits", path.display(), n + 1)
        })?;
        keys.push(Keypair::from_secret(secret));
    }
    if keys.is_empty() {
        bail!("{} holds no secrets: write one 64-digit hex secret per line", path.display());
    }
    Ok(keys)
}

fn parse_secret(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_distinct() {
        let a = derive_keys(7, 3);
        let b = derive_keys(7, 3);
        assert_eq!(a[2].address(), b[2].address());
        assert_ne!(a[0].address(), a[1].address());
        assert_ne!(derive_key(8, 0).address(), a[0].address());
    }

    #[test]
    fn secrets_round_trip_through_hex() {
        let key = derive_key(1, 2);
        let hex = gridlease_client::hex(&key.secret_bytes());
        assert_eq!(parse_secret(&hex), Some(key.secret_bytes()));
        assert_eq!(parse_secret("zz"), None);
    }
}
