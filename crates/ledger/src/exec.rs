//! Block execution: begin-block work (auctions, escrow depletion, grace expiry), then each
//! transaction's ante checks (chain id, sequence, fee) and messages, atomically.

use std::collections::BTreeMap;

use gridlease_types::tx::TxCheckError;
use gridlease_types::{CheckedTx, Coin, Height, Msg, VerifiedTx};

use crate::genesis::Params;
use crate::keyspace;
use crate::receipt::{BeginBlockItem, Event, Receipt, ReceiptCode};
use crate::state::Account;
use crate::view::{Changes, Overlay, StateView, ViewError};

/// What the block gives the ledger besides its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    pub chain_id: String,
    pub height: Height,
    /// Block time, unix milliseconds, as agreed by consensus.
    pub time_ms: u64,
    /// SHA-256 of every `SubmitEvidence` evidence in the block that the node checked and found
    /// to be a double sign by its `offender` at its `height` (signatures are consensus' format,
    /// which the ledger does not read). Evidence not listed fails.
    pub verified_evidence: std::collections::BTreeSet<[u8; 32]>,
}

/// Everything a block produced. Nothing is written until storage commits `changes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockOutput {
    pub changes: Changes,
    /// Events of begin-block work (auctions closing, escrow running out).
    pub begin_events: Vec<Event>,
    pub receipts: Vec<Receipt>,
}

/// A block that cannot be executed at all: the store under it failed or holds bad data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("state has no params: was genesis applied?")]
    NoParams,
    #[error("block height {got} does not follow {expected}")]
    BadHeight { got: Height, expected: Height },
}

/// A failed step: a transaction failure (a receipt) or a store failure (aborts the block).
#[derive(Debug)]
pub(crate) enum Fail {
    Tx { code: ReceiptCode, log: String },
    Fatal(ViewError),
}

impl From<ViewError> for Fail {
    fn from(e: ViewError) -> Self {
        Fail::Fatal(e)
    }
}

pub(crate) type Res<T> = Result<T, Fail>;

pub(crate) fn fail<T>(code: ReceiptCode, log: impl Into<String>) -> Res<T> {
    Err(Fail::Tx { code, log: log.into() })
}

/// Execution state shared by the modules.
pub(crate) struct Ctx<'a, V: StateView + ?Sized> {
    pub verified_evidence: &'a std::collections::BTreeSet<[u8; 32]>,
    pub st: Overlay<'a, V>,
    pub params: Params,
    pub height: Height,
    pub events: Vec<Event>,
    pub tx_index: u32,
    pub msg_index: u32,
}

/// Executes one block against `view` (the state after the previous block).
pub fn execute<V: StateView + ?Sized>(
    view: &V,
    block: &BlockContext,
    txs: &[CheckedTx],
) -> Result<BlockOutput, ExecError> {
    let params: Params =
        Overlay::new(view).load(&keyspace::params())?.ok_or(ExecError::NoParams)?;
    let mut ctx = Ctx {
        verified_evidence: &block.verified_evidence,
        st: Overlay::new(view),
        params,
        height: block.height,
        events: Vec::new(),
        tx_index: 0,
        msg_index: 0,
    };
    // Each begin-block item is atomic on its own (`begin_item`): only a store failure stops
    // the block.
    if let Err(Fail::Fatal(e)) = ctx.begin_block() {
        return Err(e.into());
    }
    ctx.st.commit_tx();
    let begin_events = std::mem::take(&mut ctx.events);
    let mut receipts = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        ctx.tx_index = u32::try_from(i).unwrap_or(u32::MAX);
        receipts.push(ctx.run_tx(tx, &block.chain_id)?);
    }
    Ok(BlockOutput { changes: ctx.st.into_changes(), begin_events, receipts })
}

fn check_error_code(e: &TxCheckError) -> ReceiptCode {
    match e {
        TxCheckError::WrongSigner { .. } => ReceiptCode::WrongSigner,
        TxCheckError::Signature(_) => ReceiptCode::BadSignature,
        TxCheckError::TooLarge(_)
        | TxCheckError::Malformed(_)
        | TxCheckError::Empty
        | TxCheckError::TooManyMessages(_) => ReceiptCode::MalformedTx,
    }
}

impl<V: StateView + ?Sized> Ctx<'_, V> {
    fn begin_block(&mut self) -> Res<()> {
        self.promote_validator_set()?;
        self.process_unbondings()?;
        self.process_depletions()?;
        self.process_grace_expiries()?;
        self.process_failovers()?;
        self.process_auctions()?;
        Ok(())
    }

    /// Runs one begin-block item atomically. What came before it (its queue entry's removal
    /// included) is kept first; the item's own writes and events are kept when it succeeds.
    /// When it fails they are dropped and a `BeginBlockItemFailed` event says why, so one bad
    /// item never stops the others, in this block or any later one. Only a store failure
    /// (`Fail::Fatal`) propagates.
    pub(crate) fn begin_item(
        &mut self,
        item: BeginBlockItem,
        work: impl FnOnce(&mut Self) -> Res<()>,
    ) -> Res<bool> {
        self.st.commit_tx();
        let mark = self.events.len();
        match work(self) {
            Ok(()) => {
                self.st.commit_tx();
                Ok(true)
            }
            Err(Fail::Fatal(e)) => Err(Fail::Fatal(e)),
            Err(Fail::Tx { code, log }) => {
                self.st.rollback_tx();
                self.events.truncate(mark);
                self.events.push(Event::BeginBlockItemFailed { item, code, reason: log });
                Ok(false)
            }
        }
    }

    fn run_tx(&mut self, tx: &CheckedTx, chain_id: &str) -> Result<Receipt, ExecError> {
        let hash = tx.hash();
        let receipt = |code, log: String, events| Receipt { tx_hash: hash, code, log, events };
        let vtx = match tx {
            CheckedTx::Valid(v) => v,
            CheckedTx::Invalid { error, .. } => {
                return Ok(receipt(check_error_code(error), error.to_string(), Vec::new()));
            }
        };
        // Ante: nothing is written unless all of it passes.
        match self.ante(vtx, chain_id) {
            Ok(()) => self.st.commit_tx(),
            Err(Fail::Fatal(e)) => return Err(e.into()),
            Err(Fail::Tx { code, log }) => {
                self.st.rollback_tx();
                self.events.clear();
                return Ok(receipt(code, log, Vec::new()));
            }
        }
        let fee_events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for (j, msg) in vtx.body().messages.iter().enumerate() {
            self.msg_index = u32::try_from(j).unwrap_or(u32::MAX);
            result = self.dispatch(vtx, msg);
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                self.st.commit_tx();
                let mut events = fee_events;
                events.append(&mut self.events);
                Ok(receipt(ReceiptCode::Ok, String::new(), events))
            }
            Err(Fail::Fatal(e)) => Err(e.into()),
            Err(Fail::Tx { code, log }) => {
                self.st.rollback_tx();
                self.events.clear();
                Ok(receipt(code, log, fee_events))
            }
        }
    }

    /// Chain id, sequence and fee. On success the fee is paid and the sequence advanced.
    fn ante(&mut self, tx: &VerifiedTx, chain_id: &str) -> Res<()> {
        let body = tx.body();
        if body.chain_id != chain_id {
            return fail(
                ReceiptCode::WrongChainId,
                format!("transaction is for chain `{}`, this chain is `{chain_id}`", body.chain_id),
            );
        }
        let key = keyspace::account(&body.signer);
        let mut account: Account = self.st.load(&key)?.unwrap_or_default();
        if body.sequence != account.sequence {
            return fail(
                ReceiptCode::BadSequence,
                format!(
                    "account sequence is {}, transaction has {}: query the account and sign again",
                    account.sequence, body.sequence
                ),
            );
        }
        if body.fee.denom != self.params.native_denom {
            return fail(
                ReceiptCode::InsufficientFee,
                format!("fees are paid in {}, not {}", self.params.native_denom, body.fee.denom),
            );
        }
        let required = self.params.required_fee(body.messages.len(), tx.encoded_len());
        if body.fee.amount < required {
            return fail(
                ReceiptCode::InsufficientFee,
                format!(
                    "fee {} is below the required {required}{} for {} messages in {} bytes",
                    body.fee,
                    self.params.native_denom,
                    body.messages.len(),
                    tx.encoded_len()
                ),
            );
        }
        if body.fee.amount > 0 {
            self.pay_to_pool(&body.signer, &body.fee)?;
            self.events.push(Event::FeePaid { payer: body.signer, amount: body.fee.clone() });
        }
        account.sequence += 1;
        account.public_key = Some(tx.public_key());
        self.st.save(key, &account);
        Ok(())
    }

    fn dispatch(&mut self, tx: &VerifiedTx, msg: &Msg) -> Res<()> {
        let signer = tx.body().signer;
        match msg {
            Msg::Send { to, amount } => self.msg_send(signer, *to, amount),
            Msg::CreateProvider { host_uri, attributes, info } => {
                self.msg_create_provider(signer, host_uri, attributes, info)
            }
            Msg::UpdateProvider { host_uri, attributes, info } => {
                self.msg_update_provider(signer, host_uri, attributes, info)
            }
            Msg::SignProviderAttributes { provider, attributes } => {
                self.msg_sign_attributes(signer, *provider, attributes)
            }
            Msg::DeleteProviderAttributes { provider, keys } => {
                self.msg_delete_attributes(signer, *provider, keys)
            }
            Msg::CreateCertificate { cert_pem, pubkey_pem } => {
                self.msg_create_certificate(signer, cert_pem, pubkey_pem)
            }
            Msg::RevokeCertificate { serial } => self.msg_revoke_certificate(signer, serial),
            Msg::CreateDeployment { dseq, groups, manifest_hash, deposit } => {
                self.msg_create_deployment(signer, *dseq, groups, *manifest_hash, deposit)
            }
            Msg::DepositDeployment { dseq, amount } => {
                self.msg_deposit_deployment(signer, *dseq, amount)
            }
            Msg::UpdateDeployment { dseq, manifest_hash } => {
                self.msg_update_deployment(signer, *dseq, *manifest_hash)
            }
            Msg::CloseDeployment { dseq } => self.msg_close_deployment(signer, *dseq),
            Msg::CreateBid { order, price, offer, deposit } => {
                self.msg_create_bid(signer, order, price, offer, deposit)
            }
            Msg::CloseBid { order } => self.msg_close_bid(signer, order),
            Msg::AcceptBid { bid } => self.msg_accept_bid(signer, bid),
            Msg::CloseLease { lease } => self.msg_close_lease(signer, lease),
            Msg::WithdrawLease { lease } => self.msg_withdraw_lease(signer, lease),
            Msg::ReopenOrder { order } => self.msg_reopen_order(signer, order),
            Msg::Bond { consensus_key, moniker, amount } => {
                self.msg_bond(signer, *consensus_key, moniker, amount)
            }
            Msg::Unbond { amount } => self.msg_unbond(signer, amount),
            Msg::SetMonitors { dseq, monitors } => self.msg_set_monitors(signer, *dseq, monitors),
            Msg::ReportHealth { reports } => self.msg_report_health(signer, reports),
            Msg::SubmitEvidence { offender, height, evidence } => {
                self.msg_submit_evidence(*offender, *height, evidence)
            }
        }
    }

    /// Checks that a coin is positive and of a known denomination.
    pub(crate) fn check_coin(&self, coin: &Coin, what: &str) -> Res<()> {
        if coin.amount == 0 {
            return fail(ReceiptCode::InvalidAmount, format!("{what} must be above zero"));
        }
        if !self.params.knows(&coin.denom) {
            return fail(
                ReceiptCode::UnknownDenom,
                format!("{what} is in unknown denom {}", coin.denom),
            );
        }
        Ok(())
    }
}

/// Counts of receipt codes in a block, for logs and metrics.
pub fn receipt_code_counts(out: &BlockOutput) -> BTreeMap<ReceiptCode, usize> {
    let mut m = BTreeMap::new();
    for r in &out.receipts {
        *m.entry(r.code).or_insert(0) += 1;
    }
    m
}
