//! Durable store of proposed-but-undecided blocks.
//!
//! Consensus only agrees on a block hash; the bytes must survive a crash so
//! that (a) we re-propose exactly the same block for a (height, round) we
//! already proposed in, and (b) a decision replayed from the WAL after a
//! restart finds its block. One file per proposal under `<home>/pending`,
//! written to a temp file, fsynced, then renamed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use borsh::{BorshDeserialize, BorshSerialize};

use arc_malachitebft_app_channel::app::types::ProposedValue;
use arc_malachitebft_app_channel::app::types::core::{Round, Validity};

use crate::types::{Address, BlockHash, GridContext, Height};

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub(crate) struct Pending {
    pub height: Height,
    pub round: Round,
    pub valid_round: Round,
    pub proposer: Address,
    pub hash: BlockHash,
    pub valid: bool,
    pub block: Vec<u8>,
}

impl Pending {
    pub(crate) fn proposed_value(&self) -> ProposedValue<GridContext> {
        ProposedValue {
            height: self.height,
            round: self.round,
            valid_round: self.valid_round,
            proposer: self.proposer,
            value: self.hash,
            validity: Validity::from_bool(self.valid),
        }
    }

    fn file_name(&self) -> String {
        format!("{:020}-{}-{}.blk", self.height.0, self.round.as_i64(), self.hash)
    }
}

#[derive(Debug)]
pub(crate) struct PendingStore {
    dir: PathBuf,
    entries: Vec<Pending>,
}

impl PendingStore {
    /// Open (creating if needed) and load everything still pending.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "blk") {
                let bytes = fs::read(&path)?;
                match borsh::from_slice::<Pending>(&bytes) {
                    Ok(p) => entries.push(p),
                    // A torn write can only be a temp file; anything else unreadable is dropped.
                    Err(_) => fs::remove_file(&path)?,
                }
            } else if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(Self { dir: dir.to_path_buf(), entries })
    }

    pub(crate) fn insert(&mut self, p: Pending) -> std::io::Result<()> {
        if self
            .entries
            .iter()
            .any(|e| e.height == p.height && e.round == p.round && e.hash == p.hash)
        {
            return Ok(());
        }
        let final_path = self.dir.join(p.file_name());
        let tmp_path = final_path.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp_path)?;
            f.write_all(&borsh::to_vec(&p)?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp_path, &final_path)?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.entries.push(p);
        Ok(())
    }

    /// The block we ourselves proposed at (height, round), if any.
    pub(crate) fn own(&self, height: Height, round: Round, me: &Address) -> Option<&Pending> {
        self.entries.iter().find(|e| e.height == height && e.round == round && &e.proposer == me)
    }

    pub(crate) fn for_round(&self, height: Height, round: Round) -> impl Iterator<Item = &Pending> {
        self.entries.iter().filter(move |e| e.height == height && e.round == round)
    }

    pub(crate) fn by_hash(&self, height: Height, hash: &BlockHash) -> Option<&Pending> {
        self.entries.iter().find(|e| e.height == height && &e.hash == hash)
    }

    /// Forget everything at or below the committed height.
    pub(crate) fn prune(&mut self, committed: Height) -> std::io::Result<()> {
        let dir = &self.dir;
        let mut first_err = None;
        self.entries.retain(|e| {
            if e.height > committed {
                return true;
            }
            if let Err(err) = fs::remove_file(dir.join(e.file_name()))
                && err.kind() != std::io::ErrorKind::NotFound
            {
                first_err.get_or_insert(err);
            }
            false
        });
        first_err.map_or(Ok(()), Err)
    }
}
