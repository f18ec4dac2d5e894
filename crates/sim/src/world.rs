//! A ledger driven block by block from a test: actors, an in-memory state, and helpers that
//! sign with the right sequence, run blocks and check the invariants after each one.

use gridlease_ledger::{Event, MemState, Receipt, ReceiptCode, StateView, query};
use gridlease_types::msg::ProviderInfo;
use gridlease_types::{Keypair, Msg, Tx};

use crate::{Actors, run_block, sign, ugrid};

/// The state of a simulated chain and the events of its last block.
#[derive(Debug)]
pub struct World {
    pub actors: Actors,
    pub state: MemState,
    pub height: u64,
    /// Begin-block events, then every receipt's events, of the last block.
    pub events: Vec<Event>,
}

impl World {
    /// Genesis for `actors` (as [`Actors::genesis`], changed by `tune`), every provider
    /// registered.
    pub fn new(actors: Actors, tune: impl FnOnce(&mut gridlease_ledger::Genesis)) -> World {
        let mut genesis = actors.genesis();
        tune(&mut genesis);
        let state = genesis.mem_state();
        let mut w = World { actors, state, height: 0, events: Vec::new() };
        let providers = w.actors.providers.clone();
        for (i, p) in providers.iter().enumerate() {
            let msg = Msg::CreateProvider {
                host_uri: format!("https://p{i}.example"),
                attributes: w.actors.provider_attributes(i),
                info: ProviderInfo::default(),
            };
            w.ok(p, vec![msg]);
        }
        w
    }

    /// Runs a block of `txs`, keeps its events and checks the whole-state invariants.
    pub fn block(&mut self, txs: Vec<Tx>) -> Vec<Receipt> {
        self.height += 1;
        let before = self.state.clone();
        let out = run_block(&mut self.state, self.height, &txs)
            .unwrap_or_else(|e| panic!("block {} failed: {e}", self.height));
        self.events = out.begin_events.clone();
        self.events.extend(out.receipts.iter().flat_map(|r| r.events.clone()));
        if let Err(e) = gridlease_ledger::invariants::check_state(&self.state) {
            panic!("invariant broken after block {}: {e}", self.height);
        }
        if let Err(e) = gridlease_ledger::invariants::check_transitions(&before, &self.state) {
            panic!("illegal transition in block {}: {e}", self.height);
        }
        out.receipts
    }

    /// The account's next sequence.
    pub fn sequence(&self, k: &Keypair) -> u64 {
        query::account(&self.state, &k.address()).ok().flatten().map_or(0, |a| a.sequence)
    }

    /// `msgs` signed by `k` at its next sequence with the simulation's fee.
    pub fn tx(&self, k: &Keypair, msgs: Vec<Msg>) -> Tx {
        sign(k, self.sequence(k), 100, msgs)
    }

    /// Runs `msgs` alone in a block and asserts they succeed.
    pub fn ok(&mut self, k: &Keypair, msgs: Vec<Msg>) {
        let tx = self.tx(k, msgs);
        let r = self.block(vec![tx]);
        assert_eq!(r[0].code, ReceiptCode::Ok, "{}", r[0].log);
    }

    /// Runs `msgs` alone in a block and returns the receipt.
    pub fn run(&mut self, k: &Keypair, msgs: Vec<Msg>) -> Receipt {
        let tx = self.tx(k, msgs);
        self.block(vec![tx]).remove(0)
    }

    pub fn empty(&mut self, n: u64) {
        for _ in 0..n {
            self.block(vec![]);
        }
    }

    /// The account's `ugrid` balance.
    pub fn balance(&self, k: &Keypair) -> u128 {
        query::balance(&self.state, &k.address(), &ugrid()).unwrap_or(0)
    }

    /// Overwrites one stored object, for tests that need a state no transaction can make.
    pub fn force(&mut self, key: Vec<u8>, value: &impl borsh::BorshSerialize) {
        let mut changes = gridlease_ledger::Changes::new();
        changes.insert(key, Some(gridlease_types::encode(value)));
        self.state.apply(&changes);
    }

    /// Reads one stored object.
    pub fn load<T: borsh::BorshDeserialize>(&self, key: &[u8]) -> Option<T> {
        let bytes = self.state.get(key).ok().flatten()?;
        gridlease_ledger::view::decode_at(key, &bytes).ok()
    }
}
