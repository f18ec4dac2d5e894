//! The state commitment: a binary Merkle tree of fixed depth over 2^20 buckets. A key lives in
//! the bucket named by the first 20 bits of its BLAKE3 hash; a bucket's leaf hash commits to
//! its sorted `(hash(key), hash(value))` pairs. Depth is fixed, so updating one key costs the
//! same 20 hashes whether the state holds a thousand keys or a billion.

use rayon::prelude::*;

/// Bits of the key hash that pick the bucket.
pub const BUCKET_BITS: u32 = 20;
/// Number of buckets.
pub const BUCKETS: usize = 1 << BUCKET_BITS;

pub type Hash = [u8; 32];

/// One entry of a bucket: hashes of a key and of its value.
pub type Entry = (Hash, Hash);

pub fn hash_key(key: &[u8]) -> Hash {
    *blake3::hash(key).as_bytes()
}

pub fn bucket_of(key_hash: &Hash) -> u32 {
    u32::from_be_bytes([key_hash[0], key_hash[1], key_hash[2], key_hash[3]]) >> (32 - BUCKET_BITS)
}

/// Leaf hash of a bucket; the empty bucket hashes to zeros.
pub fn bucket_hash(entries: &[Entry]) -> Hash {
    if entries.is_empty() {
        return [0; 32];
    }
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    for (k, v) in entries {
        h.update(k);
        h.update(v);
    }
    *h.finalize().as_bytes()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0x01]);
    h.update(left);
    h.update(right);
    *h.finalize().as_bytes()
}

/// Bucket entries as stored: concatenated 64-byte pairs, sorted by key hash.
pub fn decode_entries(bytes: &[u8]) -> Option<Vec<Entry>> {
    if !bytes.len().is_multiple_of(64) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(64)
            .map(|c| {
                let mut k = [0u8; 32];
                let mut v = [0u8; 32];
                k.copy_from_slice(&c[..32]);
                v.copy_from_slice(&c[32..]);
                (k, v)
            })
            .collect(),
    )
}

pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 64);
    for (k, v) in entries {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

/// Sets (`Some`) or removes (`None`) a key hash in a sorted bucket.
pub fn upsert(entries: &mut Vec<Entry>, key: Hash, value: Option<Hash>) {
    match (entries.binary_search_by(|e| e.0.cmp(&key)), value) {
        (Ok(i), Some(v)) => entries[i].1 = v,
        (Ok(i), None) => {
            entries.remove(i);
        }
        (Err(i), Some(v)) => entries.insert(i, (key, v)),
        (Err(_), None) => {}
    }
}

/// The tree of bucket hashes, held densely in memory (node 1 is the root, node i has children
/// 2i and 2i+1, leaves start at `BUCKETS`).
pub struct Tree {
    nodes: Vec<Hash>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree(root {:02x?})", &self.root()[..4])
    }
}

impl Tree {
    /// A tree over the given non-empty bucket hashes (all others empty).
    pub fn build(leaves: impl IntoIterator<Item = (u32, Hash)>) -> Tree {
        let mut nodes = vec![[0u8; 32]; 2 * BUCKETS];
        // Hashes of empty subtrees, per level above the leaves.
        let mut empty = [[0u8; 32]; BUCKET_BITS as usize + 1];
        for l in 1..=BUCKET_BITS as usize {
            empty[l] = node_hash(&empty[l - 1], &empty[l - 1]);
        }
        for (i, h) in leaves {
            nodes[BUCKETS + i as usize] = h;
        }
        let mut level_start = BUCKETS;
        let mut level = 1usize;
        while level_start > 1 {
            let parent_start = level_start / 2;
            for p in parent_start..level_start {
                let (l, r) = (nodes[2 * p], nodes[2 * p + 1]);
                nodes[p] = if l == empty[level - 1] && r == empty[level - 1] {
                    empty[level]
                } else {
                    node_hash(&l, &r)
                };
            }
            level_start = parent_start;
            level += 1;
        }
        Tree { nodes }
    }

    pub fn root(&self) -> Hash {
        self.nodes[1]
    }

    /// Sets leaf hashes and rehashes their paths; returns the old values to undo with.
    pub fn update(&mut self, leaves: &[(u32, Hash)]) -> Vec<(usize, Hash)> {
        let mut undo = Vec::with_capacity(leaves.len() * (BUCKET_BITS as usize + 1));
        let mut dirty: Vec<usize> = Vec::with_capacity(leaves.len());
        for (i, h) in leaves {
            let idx = BUCKETS + *i as usize;
            undo.push((idx, self.nodes[idx]));
            self.nodes[idx] = *h;
            dirty.push(idx / 2);
        }
        dirty.sort_unstable();
        dirty.dedup();
        while !dirty.is_empty() {
            // Nodes of one level are independent: hash them on all cores, then store them.
            let nodes = &self.nodes;
            let hashes: Vec<Hash> = dirty
                .par_iter()
                .with_min_len(512)
                .map(|&p| node_hash(&nodes[2 * p], &nodes[2 * p + 1]))
                .collect();
            let mut next = Vec::with_capacity(dirty.len());
            for (&p, h) in dirty.iter().zip(hashes) {
                undo.push((p, self.nodes[p]));
                self.nodes[p] = h;
                if p > 1 {
                    next.push(p / 2);
                }
            }
            next.dedup();
            dirty = next;
        }
        undo
    }

    /// Restores what [`Tree::update`] changed.
    pub fn undo(&mut self, undo: Vec<(usize, Hash)>) {
        for (i, h) in undo.into_iter().rev() {
            self.nodes[i] = h;
        }
    }

    /// Sibling hashes from a bucket's leaf up to the root, for inclusion proofs.
    pub fn proof(&self, bucket: u32) -> Vec<Hash> {
        let mut out = Vec::with_capacity(BUCKET_BITS as usize);
        let mut i = BUCKETS + bucket as usize;
        while i > 1 {
            out.push(self.nodes[i ^ 1]);
            i /= 2;
        }
        out
    }
}

/// Checks that `key` has `value` (or is absent, with `None`) under `root`, given the bucket's
/// entries and the sibling path.
pub fn verify_proof(
    root: &Hash,
    key: &[u8],
    value: Option<&[u8]>,
    entries: &[Entry],
    path: &[Hash],
) -> bool {
    let kh = hash_key(key);
    let bucket = bucket_of(&kh);
    let found = entries.iter().find(|e| e.0 == kh).map(|e| e.1);
    if found != value.map(hash_key) {
        return false;
    }
    if entries.iter().any(|e| bucket_of(&e.0) != bucket)
        || entries.windows(2).any(|w| w[0].0 >= w[1].0)
    {
        return false;
    }
    if path.len() != BUCKET_BITS as usize {
        return false;
    }
    let mut h = bucket_hash(entries);
    let mut i = BUCKETS + bucket as usize;
    for sib in path {
        h = if i.is_multiple_of(2) { node_hash(&h, sib) } else { node_hash(sib, &h) };
        i /= 2;
    }
    &h == root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_update_equals_rebuild_and_proofs_verify() {
        let mut entries: std::collections::BTreeMap<u32, Vec<Entry>> = Default::default();
        let mut tree = Tree::build([]);
        let empty_root = tree.root();
        for i in 0u32..500 {
            let key = i.to_be_bytes();
            let kh = hash_key(&key);
            let b = bucket_of(&kh);
            let e = entries.entry(b).or_default();
            upsert(e, kh, Some(hash_key(b"v")));
            tree.update(&[(b, bucket_hash(e))]);
        }
        let rebuilt = Tree::build(entries.iter().map(|(b, e)| (*b, bucket_hash(e))));
        assert_eq!(tree.root(), rebuilt.root());
        assert_ne!(tree.root(), empty_root);

        let key = 7u32.to_be_bytes();
        let b = bucket_of(&hash_key(&key));
        let path = tree.proof(b);
        assert!(verify_proof(&tree.root(), &key, Some(b"v"), &entries[&b], &path));
        assert!(!verify_proof(&tree.root(), &key, Some(b"w"), &entries[&b], &path));

        let undo = tree.update(&[(b, [9; 32])]);
        assert_ne!(tree.root(), rebuilt.root());
        tree.undo(undo);
        assert_eq!(tree.root(), rebuilt.root());
    }
}
