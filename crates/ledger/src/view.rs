//! Read access to committed state ([`StateView`]), an in-memory state for tests and tools
//! ([`MemState`]), and the write overlay a block executes in ([`Overlay`]).

use std::collections::BTreeMap;
use std::ops::Bound;

use borsh::{BorshDeserialize, BorshSerialize};

/// Key/value changes of a block: `None` deletes the key.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key/value pairs in key order, as range reads return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A failure of the store under a view. It aborts the block; it is never a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("state store failed: {0}")]
    Store(String),
    #[error("state at key {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Read-only access to the state as of the end of the previous block.
pub trait StateView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewError>;
    /// Entries with `start <= key < end`, in key order.
    fn range(&self, start: &[u8], end: &[u8]) -> Result<Entries, ViewError>;
    /// The first `limit` entries of [`StateView::range`]. Views over large states override it
    /// so that a page costs O(limit), not O(range).
    fn range_page(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, ViewError> {
        let mut all = self.range(start, end)?;
        all.truncate(limit);
        Ok(all)
    }
}

/// A whole state in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemState {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemState {
    pub fn apply(&mut self, changes: &Changes) {
        for (k, v) in changes {
            match v {
                Some(v) => self.entries.insert(k.clone(), v.clone()),
                None => self.entries.remove(k),
            };
        }
    }
}

impl StateView for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewError> {
        Ok(self.entries.get(key).cloned())
    }
    fn range(&self, start: &[u8], end: &[u8]) -> Result<Entries, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn range_page(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// Writes of the block so far, and of the transaction being executed on top of them.
pub struct Overlay<'a, V: StateView + ?Sized> {
    base: &'a V,
    block: Changes,
    tx: Changes,
}

impl<V: StateView + ?Sized> std::fmt::Debug for Overlay<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Overlay({} block writes, {} tx writes)", self.block.len(), self.tx.len())
    }
}

impl<'a, V: StateView + ?Sized> Overlay<'a, V> {
    pub fn new(base: &'a V) -> Self {
        Overlay { base, block: Changes::new(), tx: Changes::new() }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewError> {
        if let Some(v) = self.tx.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.block.get(key) {
            return Ok(v.clone());
        }
        self.base.get(key)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.tx.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.tx.insert(key, None);
    }

    /// Keeps the current transaction's writes.
    pub fn commit_tx(&mut self) {
        let tx = std::mem::take(&mut self.tx);
        self.block.extend(tx);
    }

    /// Drops the current transaction's writes.
    pub fn rollback_tx(&mut self) {
        self.tx.clear();
    }

    pub fn into_changes(mut self) -> Changes {
        self.commit_tx();
        self.block
    }

    /// Entries with `start <= key < end` as the overlay sees them.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Entries, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            self.base.range(start, end)?.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let bounds = (Bound::Included(start), Bound::Excluded(end));
        for layer in [&self.block, &self.tx] {
            for (k, v) in layer.range::<[u8], _>(bounds) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// The first `limit` entries of [`Overlay::range`], reading O(limit + this block's writes
    /// in the range) from the base.
    pub fn range_page(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let bounds = (Bound::Included(start), Bound::Excluded(end));
        let written: usize =
            [&self.block, &self.tx].iter().map(|l| l.range::<[u8], _>(bounds).count()).sum();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .base
            .range_page(start, end, limit.saturating_add(written))?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for layer in [&self.block, &self.tx] {
            for (k, v) in layer.range::<[u8], _>(bounds) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }

    /// All entries under `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, ViewError> {
        match prefix_end(prefix) {
            Some(end) => self.range(prefix, &end),
            None => self.range(prefix, &[0xff; 64]),
        }
    }

    pub fn load<T: BorshDeserialize>(&self, key: &[u8]) -> Result<Option<T>, ViewError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => decode_at(key, &bytes).map(Some),
        }
    }

    pub fn save<T: BorshSerialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(key, gridlease_types::encode(value));
    }
}

/// Decodes a stored value, naming the key when it fails.
pub fn decode_at<T: BorshDeserialize>(key: &[u8], bytes: &[u8]) -> Result<T, ViewError> {
    gridlease_types::decode(bytes).map_err(|e| ViewError::Corrupt {
        key: gridlease_types::hex::encode(key),
        reason: e.to_string(),
    })
}

/// The smallest key greater than every key with this prefix, if there is one.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_layers_and_rollback() {
        let mut base = MemState::default();
        base.entries.insert(b"a".to_vec(), b"1".to_vec());
        base.entries.insert(b"b".to_vec(), b"2".to_vec());
        let mut o = Overlay::new(&base);
        o.put(b"c".to_vec(), b"3".to_vec());
        o.delete(b"a".to_vec());
        o.commit_tx();
        o.put(b"d".to_vec(), b"4".to_vec());
        o.delete(b"b".to_vec());
        assert_eq!(o.range(b"a", b"z").unwrap().len(), 2);
        o.rollback_tx();
        let keys: Vec<_> = o.range(b"a", b"z").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(o.get(b"a").unwrap(), None);
        let changes = o.into_changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
