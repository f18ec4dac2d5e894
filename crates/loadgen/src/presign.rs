//! Signing before the clock starts: every transaction of the run becomes a ready HTTP body,
//! so the timed phase spends no CPU on ed25519 or encoding.

use std::collections::HashMap;

use gridlease_types::{Coin, Keypair, Msg, TxBody, TxHash};

/// One pre-signed transaction: the exact `POST /txs` body and the hash the node will report.
#[derive(Debug)]
pub struct SignedTx {
    pub body: Vec<u8>,
    pub hash: TxHash,
}

/// What every transaction of the run looks like.
#[derive(Debug, Clone)]
pub struct SendPlan {
    pub chain_id: String,
    pub fee: Coin,
    pub amount: Coin,
}

/// `count` bank sends, round-robin over `keys`: transaction `i` is signed by account
/// `i % n` with sequence `next_sequences[i % n] + i / n` and pays account `(i % n) + 1`. So
/// submitting in index order submits each account's sequences in order. Signs on `threads`
/// threads.
pub fn sign_sends(
    keys: &[Keypair],
    next_sequences: &[u64],
    plan: &SendPlan,
    count: usize,
    threads: usize,
) -> Vec<SignedTx> {
    assert_eq!(keys.len(), next_sequences.len(), "one next sequence per key");
    let n = keys.len();
    let threads = threads.clamp(1, count.max(1));
    let chunk = count.div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * chunk).min(count)..((t + 1) * chunk).min(count);
                s.spawn(move || {
                    range
                        .map(|i| {
                            let account = i % n;
                            let sequence = next_sequences[account] + (i / n) as u64;
                            sign_send(keys, account, sequence, plan)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    })
}

fn sign_send(keys: &[Keypair], account: usize, sequence: u64, plan: &SendPlan) -> SignedTx {
    let key = &keys[account];
    let to = keys[(account + 1) % keys.len()].address();
    let tx = TxBody {
        chain_id: plan.chain_id.clone(),
        signer: key.address(),
        sequence,
        fee: plan.fee.clone(),
        memo: String::new(),
        messages: vec![Msg::Send { to, amount: plan.amount.clone() }],
    }
    .sign(key);
    let bytes = tx.to_bytes();
    let hash = TxHash::of_bytes(&bytes);
    let body = format!("{{\"tx\":\"{}\"}}", gridlease_client::hex(&bytes)).into_bytes();
    SignedTx { body, hash }
}

/// Hash to index, for matching committed transactions back to their submission.
pub fn index_by_hash(txs: &[SignedTx]) -> HashMap<TxHash, usize> {
    txs.iter().enumerate().map(|(i, t)| (t.hash, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::derive_keys;
    use gridlease_types::{Denom, Tx};

    #[test]
    fn round_robin_with_consecutive_sequences() {
        let keys = derive_keys(1, 3);
        let ugrid = Denom::new("ugrid").unwrap();
        let plan = SendPlan {
            chain_id: "c".into(),
            fee: Coin::new(1_000, &ugrid),
            amount: Coin::new(1, &ugrid),
        };
        let txs = sign_sends(&keys, &[5, 0, 9], &plan, 7, 2);
        assert_eq!(txs.len(), 7);
        let decoded: Vec<Tx> = txs
            .iter()
            .map(|t| {
                let v: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
                let hex = v["tx"].as_str().unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                assert_eq!(TxHash::of_bytes(&bytes), t.hash);
                Tx::from_bytes(&bytes).unwrap()
            })
            .collect();
        let seqs: Vec<u64> = decoded.iter().map(|t| t.body.sequence).collect();
        assert_eq!(seqs, vec![5, 0, 9, 6, 1, 10, 7]);
        assert_eq!(decoded[3].body.signer, keys[0].address());
        assert!(decoded.into_iter().all(|t| t.verify().is_ok()));
        assert_eq!(index_by_hash(&txs).len(), 7);
    }
}
