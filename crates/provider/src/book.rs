//! The provider's book of its leases, as data: where each lease stands (`Phase`), what is kept
//! of it (`LeaseRecord`, one file per lease under `state/leases`, read back by
//! `load_records`), the host ports handed to published container ports (`PortPool`), and
//! `LeaseBook`, the records with the transitions a lease goes through (adopted, a manifest
//! installed or failed, health observed, disk evictions counted, removed). No task, lock, file
//! or runtime call here: the lease engine (`leases.rs`) owns one book and performs what the
//! transitions ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gridlease_types::{BidId, LeaseId};
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
    /// Readable records, by lease.
    pub records: BTreeMap<LeaseId, LeaseRecord>,
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
                out.records.insert(r.id, r);
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
    /// A pool over `range` in which the ports of `records`' workloads are in use.
    pub fn new<'a>(
        range: (u16, u16),
        records: impl IntoIterator<Item = &'a LeaseRecord>,
    ) -> PortPool {
        let used =
            records.into_iter().filter_map(|r| r.workload.as_ref()).flat_map(host_ports).collect();
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

    /// Marks `ports` in use again (a workload that keeps the ports it had).
    fn claim(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.used.extend(ports);
    }

    /// Whether `port` is handed out.
    pub fn in_use(&self, port: u16) -> bool {
        self.used.contains(&port)
    }
}

/// The host ports a workload publishes.
pub fn host_ports(w: &Workload) -> impl Iterator<Item = u16> + '_ {
    w.replicas.iter().flat_map(|s| s.ports.iter().map(|p| p.host_port))
}

/// Why a manifest was not deployed, with the HTTP status and error code the tenant gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

/// A `manifest_refused` refusal.
pub fn refuse(status: u16, message: impl Into<String>) -> DeployRefusal {
    DeployRefusal { status, code: "manifest_refused", message: message.into() }
}

/// What a health pass saw of a lease's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Every replica runs.
    pub running: bool,
    /// Every published TCP port accepts connections.
    pub ports_answer: bool,
}

/// What installing a manifest asks of the runtime.
#[derive(Clone, Debug)]
pub enum Install {
    /// That manifest runs already (or is starting): nothing to do.
    Unchanged(LeaseRecord),
    /// The record names the new workload now (phase `deploying`): the runtime stops `old`
    /// when there is one, then starts `new`.
    Replace { record: LeaseRecord, old: Option<Workload>, new: Workload },
}

/// The leases of this provider, by lease id, with the host ports their workloads hold. Every
/// change goes through a transition below and returns the record to write when it changed.
#[derive(Debug)]
pub struct LeaseBook {
    records: BTreeMap<LeaseId, LeaseRecord>,
    ports: PortPool,
}

impl LeaseBook {
    pub fn new(records: BTreeMap<LeaseId, LeaseRecord>, port_range: (u16, u16)) -> LeaseBook {
        let ports = PortPool::new(port_range, records.values());
        LeaseBook { records, ports }
    }

    pub fn get(&self, lease: &LeaseId) -> Option<&LeaseRecord> {
        self.records.get(lease)
    }

    pub fn records(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.records.values()
    }

    pub fn ports(&self) -> &PortPool {
        &self.ports
    }

    /// The leases whose workload a health or disk pass looks after: deployed and not failed.
    pub fn running(&self) -> Vec<LeaseId> {
        self.records
            .values()
            .filter(|r| r.workload.is_some() && r.phase != Phase::Failed)
            .map(|r| r.id)
            .collect()
    }

    /// Takes in a lease this provider won: the new record, or `None` when it is known already.
    pub fn adopt(&mut self, lease: LeaseId) -> Option<&LeaseRecord> {
        if self.records.contains_key(&lease) {
            return None;
        }
        let record = LeaseRecord {
            id: lease,
            tag: LeaseTag::for_lease(&lease),
            phase: Phase::AwaitingManifest,
            message: "waiting for the tenant's manifest".into(),
            manifest_hash: None,
            workload: None,
            ready_at_ms: None,
            disk_evictions: 0,
            last_disk_eviction: None,
        };
        Some(self.records.entry(lease).or_insert(record))
    }

    /// Puts the manifest hashing to `hash` in place of the lease's workload, with the workload
    /// `build` makes from the record and the free ports (the old workload's ports are free
    /// again for it). A manifest that runs already changes nothing; a refusal from `build`
    /// leaves the record and the ports as they were, so the old workload runs on.
    pub fn install(
        &mut self,
        lease: &LeaseId,
        hash: &str,
        build: impl FnOnce(&LeaseRecord, &mut PortPool) -> Result<Workload, DeployRefusal>,
    ) -> Result<Install, DeployRefusal> {
        let Some(record) = self.records.get_mut(lease) else {
            return Err(refuse(
                409,
                "this provider has no record of the lease yet: retry in a block",
            ));
        };
        if record.manifest_hash.as_deref() == Some(hash) && record.phase != Phase::Failed {
            return Ok(Install::Unchanged(record.clone()));
        }
        let old_ports: Vec<u16> = record.workload.iter().flat_map(host_ports).collect();
        self.ports.give_back(old_ports.iter().copied());
        let new = match build(record, &mut self.ports) {
            Ok(new) => new,
            Err(refusal) => {
                self.ports.claim(old_ports);
                return Err(refusal);
            }
        };
        let old = record.workload.replace(new.clone());
        record.manifest_hash = Some(hash.to_owned());
        record.phase = Phase::Deploying;
        record.message = "starting".into();
        record.ready_at_ms = None;
        Ok(Install::Replace { record: record.clone(), old, new })
    }

    /// The runtime could not start the manifest `hash` of the lease: it is `failed`, with why.
    /// `None` when the lease has moved on to another manifest (or is gone).
    pub fn install_failed(
        &mut self,
        lease: &LeaseId,
        hash: &str,
        why: String,
    ) -> Option<&LeaseRecord> {
        let record =
            self.records.get_mut(lease).filter(|r| r.manifest_hash.as_deref() == Some(hash))?;
        record.phase = Phase::Failed;
        record.message = why;
        Some(record)
    }

    /// A health pass saw `health` of the lease's manifest `hash` at `now_ms`: its phase and
    /// message follow (`ready` the first time is remembered). `Some` when the record changed.
    pub fn observe(
        &mut self,
        lease: &LeaseId,
        hash: Option<&str>,
        health: Health,
        now_ms: u64,
    ) -> Option<&LeaseRecord> {
        let record = self.records.get_mut(lease)?;
        if record.manifest_hash.as_deref() != hash || record.phase == Phase::Failed {
            return None;
        }
        let (phase, message) = match health {
            Health { running: true, ports_answer: true } => {
                (Phase::Ready, "every replica runs and answers")
            }
            Health { running: true, ports_answer: false } => {
                (Phase::Deploying, "running; waiting for its ports to answer")
            }
            Health { running: false, .. } => (Phase::Deploying, "waiting for every replica to run"),
        };
        if phase == record.phase && message == record.message {
            return None;
        }
        record.phase = phase;
        record.message = message.to_owned();
        if phase == Phase::Ready && record.ready_at_ms.is_none() {
            record.ready_at_ms = Some(now_ms);
        }
        Some(record)
    }

    /// Replicas of the lease were started afresh for writing more than leased to their own
    /// disk (`evicted` says which and how much). `Some` when there was any.
    pub fn count_evictions(&mut self, lease: &LeaseId, evicted: &[String]) -> Option<&LeaseRecord> {
        let last = evicted.last()?;
        let record = self.records.get_mut(lease)?;
        record.disk_evictions = record.disk_evictions.saturating_add(evicted.len() as u32);
        record.last_disk_eviction = Some(last.clone());
        Some(record)
    }

    /// Forgets the lease (its workload is gone), giving its ports back.
    pub fn remove(&mut self, lease: &LeaseId) -> Option<LeaseRecord> {
        let record = self.records.remove(lease)?;
        self.ports.give_back(record.workload.iter().flat_map(host_ports));
        Some(record)
    }
}

/// Replica `replica` of service `web` running `image` with small limits, no port and no
/// volume: for the tests of the book and the engine.
#[cfg(test)]
pub(crate) fn test_replica(image: &str, replica: u32) -> crate::driver::ReplicaSpec {
    crate::driver::ReplicaSpec {
        service: "web".into(),
        replica,
        image: image.into(),
        command: vec![],
        args: vec![],
        env: vec![],
        cpu_millis: 100,
        memory_bytes: 1 << 20,
        gpus: vec![],
        ports: vec![],
        volumes: vec![],
        disk_bytes: 1 << 20,
        credentials: None,
    }
}

#[cfg(test)]
mod tests {
    use gridlease_types::{Address, OrderId};

    use super::*;
    use crate::driver::{PortMapping, Proto};

    fn lease(dseq: u64) -> LeaseId {
        let owner = Address([1; 20]);
        BidId { order: OrderId { owner, dseq, gseq: 1, oseq: 1 }, provider: Address([2; 20]) }
    }

    /// A workload of `image` publishing one port from the pool per replica.
    fn build(
        image: &'static str,
        replicas: u32,
    ) -> impl FnOnce(&LeaseRecord, &mut PortPool) -> Result<Workload, DeployRefusal> {
        move |r, ports| {
            let replicas = (0..replicas)
                .map(|replica| {
                    let host_port = ports.take().ok_or_else(|| refuse(503, "no port"))?;
                    let mut spec = test_replica(image, replica);
                    spec.ports =
                        vec![PortMapping { container_port: 80, host_port, proto: Proto::Tcp }];
                    Ok(spec)
                })
                .collect::<Result<_, DeployRefusal>>()?;
            Ok(Workload { tag: r.tag.clone(), lease_id: r.id.to_string(), replicas })
        }
    }

    fn book() -> LeaseBook {
        LeaseBook::new(BTreeMap::new(), (47_100, 47_199))
    }

    #[test]
    fn a_lease_is_adopted_once_and_waits_for_its_manifest() {
        let mut b = book();
        let r = b.adopt(lease(1)).cloned().expect("new");
        assert_eq!(
            (r.phase, r.tag.clone()),
            (Phase::AwaitingManifest, LeaseTag::for_lease(&lease(1)))
        );
        assert!(b.adopt(lease(1)).is_none(), "known already");
        assert!(b.running().is_empty(), "nothing deployed yet");
        let e = b.install(&lease(2), "aa", build("x", 1)).expect_err("no record");
        assert_eq!(e.status, 409);
    }

    #[test]
    fn installing_replaces_the_workload_and_the_same_manifest_changes_nothing() {
        let mut b = book();
        b.adopt(lease(1));
        let Install::Replace { record, old, new } =
            b.install(&lease(1), "aa", build("one", 2)).expect("installs")
        else {
            panic!("a first manifest replaces nothing but installs")
        };
        assert!(old.is_none());
        assert_eq!((record.phase, record.manifest_hash.as_deref()), (Phase::Deploying, Some("aa")));
        let first: Vec<u16> = host_ports(&new).collect();
        assert!(first.iter().all(|p| b.ports().in_use(*p)));
        assert_eq!(b.running(), [lease(1)]);

        assert!(matches!(b.install(&lease(1), "aa", build("one", 2)), Ok(Install::Unchanged(_))));
        let Install::Replace { old, new, .. } =
            b.install(&lease(1), "bb", build("two", 1)).expect("updates")
        else {
            panic!("a new manifest replaces the workload")
        };
        assert_eq!(old.map(|w| w.replicas[0].image.clone()).as_deref(), Some("one"));
        assert_eq!(new.replicas[0].image, "two");
        let second: Vec<u16> = host_ports(&new).collect();
        for p in first.iter().filter(|p| !second.contains(p)) {
            assert!(!b.ports().in_use(*p), "the old workload's port {p} is free again");
        }
    }

    #[test]
    fn a_refused_update_keeps_the_running_workload_and_its_ports() {
        let mut b = book();
        b.adopt(lease(1));
        b.install(&lease(1), "aa", build("one", 1)).expect("installs");
        let ports: Vec<u16> = b
            .get(&lease(1))
            .and_then(|r| r.workload.as_ref())
            .map(|w| host_ports(w).collect())
            .unwrap_or_default();
        let e = b.install(&lease(1), "bb", |_, _| Err(refuse(400, "bad"))).expect_err("refused");
        assert_eq!(e.message, "bad");
        let r = b.get(&lease(1)).expect("record");
        assert_eq!(r.manifest_hash.as_deref(), Some("aa"));
        assert!(ports.iter().all(|p| b.ports().in_use(*p)), "the running workload keeps its ports");
    }

    #[test]
    fn a_failed_start_is_recorded_only_for_the_manifest_that_failed() {
        let mut b = book();
        b.adopt(lease(1));
        b.install(&lease(1), "aa", build("one", 1)).expect("installs");
        b.install(&lease(1), "bb", build("two", 1)).expect("updates");
        assert!(b.install_failed(&lease(1), "aa", "old news".into()).is_none());
        let r = b.install_failed(&lease(1), "bb", "no such image".into()).cloned().expect("failed");
        assert_eq!((r.phase, r.message.as_str()), (Phase::Failed, "no such image"));
        assert!(b.running().is_empty(), "a failed workload is not looked after");
        // Sending the same manifest again retries it.
        assert!(matches!(b.install(&lease(1), "bb", build("two", 1)), Ok(Install::Replace { .. })));
    }

    #[test]
    fn health_moves_the_phase_and_ready_is_remembered_once() {
        let mut b = book();
        b.adopt(lease(1));
        b.install(&lease(1), "aa", build("one", 1)).expect("installs");
        let up = Health { running: true, ports_answer: true };
        let starting = Health { running: true, ports_answer: false };
        assert!(
            b.observe(&lease(1), Some("zz"), up, 5).is_none(),
            "a pass over another manifest is stale"
        );
        let r = b.observe(&lease(1), Some("aa"), starting, 5).cloned().expect("changed");
        assert_eq!((r.phase, r.ready_at_ms), (Phase::Deploying, None));
        assert!(b.observe(&lease(1), Some("aa"), starting, 6).is_none(), "nothing changed");
        assert_eq!(
            b.observe(&lease(1), Some("aa"), up, 7).map(|r| (r.phase, r.ready_at_ms)),
            Some((Phase::Ready, Some(7)))
        );
        let down = Health { running: false, ports_answer: false };
        b.observe(&lease(1), Some("aa"), down, 8);
        let r = b.observe(&lease(1), Some("aa"), up, 9).cloned().expect("ready again");
        assert_eq!(r.ready_at_ms, Some(7), "first ready time kept");
    }

    #[test]
    fn evictions_are_counted_and_removal_frees_the_ports() {
        let mut b = book();
        b.adopt(lease(1));
        b.install(&lease(1), "aa", build("one", 2)).expect("installs");
        assert!(b.count_evictions(&lease(1), &[]).is_none());
        let r = b
            .count_evictions(&lease(1), &["web/0 wrote 9 MiB".into(), "web/1 wrote 8 MiB".into()])
            .cloned()
            .expect("counted");
        assert_eq!(
            (r.disk_evictions, r.last_disk_eviction.as_deref()),
            (2, Some("web/1 wrote 8 MiB"))
        );
        let ports: Vec<u16> =
            r.workload.as_ref().map(|w| host_ports(w).collect()).unwrap_or_default();
        let gone = b.remove(&lease(1)).expect("removed");
        assert_eq!(gone.id, lease(1));
        assert!(ports.iter().all(|p| !b.ports().in_use(*p)));
        assert!(b.get(&lease(1)).is_none() && b.remove(&lease(1)).is_none());
    }
}
