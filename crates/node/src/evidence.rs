//! Double-sign evidence on chain: the node reports what consensus saw as a `SubmitEvidence`
//! transaction signed with its own key, and checks the evidence of every such message in a
//! block before the ledger executes it (the ledger cannot read consensus signatures).

use std::collections::BTreeSet;

use gridlease_consensus::{Misbehaviour, check_double_sign};
use gridlease_types::{CheckedTx, Coin, Keypair, Msg, TxBody};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::state::{Node, lock, read};

/// SHA-256 of each `SubmitEvidence` evidence in `txs` that is a double sign by its offender
/// at its height on `chain_id`.
pub fn verified(chain_id: &str, txs: &[CheckedTx]) -> BTreeSet<[u8; 32]> {
    let mut out = BTreeSet::new();
    for tx in txs {
        let CheckedTx::Valid(v) = tx else { continue };
        for msg in &v.body().messages {
            if let Msg::SubmitEvidence { offender, height, evidence } = msg
                && check_double_sign(chain_id, &offender.0, evidence).is_ok_and(|h| h == *height)
            {
                out.insert(Sha256::digest(evidence).into());
            }
        }
    }
    out
}

/// Puts one `SubmitEvidence` transaction per report, signed by `reporter` (the node's
/// validator key, whose account pays the fee), into the node's own mempool.
pub fn report(node: &Node, reporter: &Keypair, reports: Vec<Misbehaviour>) {
    for r in reports {
        {
            let mut seen = lock(&node.evidence);
            if seen.len() >= crate::state::MAX_EVIDENCE_KEPT {
                seen.pop_front();
            }
            seen.push_back(gridlease_rpc_types::EvidenceView {
                offender: crate::hex(&r.offender),
                height: r.height,
                evidence: crate::hex(&r.evidence),
            });
        }
        let store = read(&node.store);
        let view = match store.view() {
            Ok(v) => v,
            Err(e) => {
                warn!(target: "node.evidence", error = %e, "cannot read state to report evidence");
                return;
            }
        };
        drop(store);
        let mut mempool = lock(&node.mempool);
        let sequence = mempool.next_sequence(&reporter.address(), &view);
        let bytes_estimate = r.evidence.len() + 512;
        let fee = node.params.required_fee(1, bytes_estimate);
        let msg = Msg::SubmitEvidence {
            offender: gridlease_types::PublicKey(r.offender),
            height: r.height,
            evidence: r.evidence,
        };
        let tx = TxBody {
            chain_id: node.chain_id.clone(),
            signer: reporter.address(),
            sequence,
            fee: Coin::new(fee, &node.params.native_denom),
            memo: "double-sign evidence".into(),
            messages: vec![msg],
        }
        .sign(reporter);
        match mempool.admit(tx.to_bytes(), &node.chain_id, &node.params, &view) {
            Ok(hash) => {
                info!(target: "node.evidence", height = r.height, %hash, "reported a double sign")
            }
            Err(e) => {
                warn!(target: "node.evidence", height = r.height, error = %e, "could not report a double sign")
            }
        }
    }
}
