//! The provider's book of its leases, as data: where each lease stands (`Phase`), what is kept
//! of it (`LeaseRecord`, one file per lease under `state/leases`, read back by
//! `load_records`), and the host ports handed to published container ports (`PortPool`).
//! No task, lock or runtime here: `leases.rs` acts on the book.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gridlease_types::BidId;
use serde::{Deserialize, Serialize};

use crate::driver::{LeaseTag, Workload};

/// Where a lease stands on this provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Won; the tenant has not sent the manifest yet.
    AwaitingManifest,
    /// Started; not every replica answers yet.
    Deploying,
    /// Every replica runs and its ports answer.
    Ready,
    /// The runtime could not start it (see the message).
    Failed,
}

impl Phase {
    /// The phase's name as it goes on the wire (`awaiting_manifest`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::AwaitingManifest => "awaiting_manifest",
            Phase::Deploying => "deploying",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the provider keeps per lease.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: BidId,
    pub tag: LeaseTag,
    pub phase: Phase,
    pub message: String,
    /// Hex SHA-256 of the manifest deployed.
    pub manifest_hash: Option<String>,
    pub workload: Option<Workload>,
    /// Unix milliseconds when it first became ready.
    pub ready_at_ms: Option<u64>,
    /// Times a replica was started afresh for writing more to its own disk than leased.
    #[serde(default)]
    pub disk_evictions: u32,
    /// What the last of those evictions was.
    #[serde(default)]
    pub last_disk_eviction: Option<String>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn records_dir(state: &Path) -> PathBuf {
    state.join("leases")
}

/// Why the lease records cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the lease records in {path}: {source}; fix the folder's permissions (the \
     daemon's user must own it) and start again"
)]
pub struct RecordsUnreadable {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The lease records on disk.
#[derive(Debug, Default)]
pub struct LoadedRecords {
    /// Readable records, by hold key.
    pub records: BTreeMap<String, LeaseRecord>,
    /// Records that exist but cannot be read (empty, cut short, not a record): each with why.
    /// While there is any, the daemon removes nothing it finds running.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Every lease record on disk. A missing folder is a provider without leases (its first
/// start, or a lost folder: what runs is then checked against the chain); a folder that
/// cannot be listed is an error; a record that cannot be read is reported in `unreadable`.
pub fn load_records(state: &Path) -> Result<LoadedRecords, RecordsUnreadable> {
    let dir = records_dir(state);
    let mut out = LoadedRecords::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.is_symlink() => return Ok(out),
        Err(source) => return Err(RecordsUnreadable { path: dir, source }),
    };
    // Records written by earlier versions were readable by everyone: they hold tenants'
    // environment variables.
    make_private(&dir, 0o700);
    for entry in entries {
        let entry = entry.map_err(|source| RecordsUnreadable { path: dir.clone(), source })?;
        let path = entry.path();
        // `*.json.tmp` is a write that never finished: the record before it still stands.
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        make_private(&path, 0o600);
        let parsed = std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| {
            if bytes.is_empty() {
                return Err("the file is empty".to_string());
            }
            serde_json::from_slice::<LeaseRecord>(&bytes).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(r) => {
                out.records.insert(r.id.order.to_string(), r);
            }
            Err(why) => {
                tracing::error!(
                    path = %path.display(),
                    error = %why,
                    "lease.record unreadable: nothing running will be removed until it is \
                     repaired or deleted and the daemon restarted"
                );
                out.unreadable.push((path, why));
            }
        }
    }
    Ok(out)
}

/// Takes away the permissions of group and others on `path` (to `mode`) when it has any.
fn make_private(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.permissions().mode() & 0o077 == 0 || meta.file_type().is_symlink() {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(path = %path.display(), "lease.record made private"),
        Err(e) => tracing::error!(
            path = %path.display(),
            error = %e,
            "lease.record is readable by others and cannot be made private"
        ),
    }
}

/// Host ports handed to published container ports.
#[derive(Debug)]
pub struct PortPool {
    range: (u16, u16),
    used: BTreeSet<u16>,
    next: u16,
}

impl PortPool {
    pub fn new(range: (u16, u16), records: &BTreeMap<String, LeaseRecord>) -> PortPool {
        let used = records
            .values()
            .filter_map(|r| r.workload.as_ref())
            .flat_map(|w| w.replicas.iter().flat_map(|s| s.ports.iter().map(|p| p.host_port)))
            .collect();
        PortPool { range, used, next: range.0 }
    }

    /// A port of the range that nothing here uses and that can be bound right now.
    pub fn take(&mut self) -> Option<u16> {
        let span = u32::from(self.range.1 - self.range.0) + 1;
        for _ in 0..span {
            let p = self.next;
            self.next = if p >= self.range.1 { self.range.0 } else { p + 1 };
            if !self.used.contains(&p) && std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
                self.used.insert(p);
                return Some(p);
            }
        }
        None
    }

    pub fn give_back(&mut self, ports: impl IntoIterator<Item = u16>) {
        for p in ports {
            self.used.remove(&p);
        }
    }
}
