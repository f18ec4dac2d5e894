//! The lease lifecycle on the provider: a won lease waits for its manifest, is deployed
//! through the driver, is watched (health checks, restart of replicas that stopped), pays
//! out through periodic withdrawals, and is removed when it closes on chain. Each lease has a
//! record in `state/leases/`, written before anything is started, so a restarted daemon
//! re-adopts exactly what it was running.
//!
//! Records hold tenants' environment variables, so they are readable by the provider's user
//! only (0600, in a 0700 folder), and they are written atomically and durably
//! ([`crate::durable_file`]). A record that cannot be read is an error, never taken as "no
//! lease": the daemon then removes nothing it finds running. And nothing of a lease that is
//! active on chain is ever removed because the records miss it: the chain is asked first, and
//! when it cannot be asked nothing is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use gridlease_client::{LeaseState, ListQuery};
use gridlease_types::{BidId, Msg};

use crate::api::{LeaseStatus, ServiceEndpoint};
pub use crate::book::{LeaseRecord, Phase};
use crate::book::{now_ms, records_dir};
use crate::driver::{LeaseTag, PortMapping, Proto, ReplicaSpec, ReplicaState, Workload};
use crate::durable_file::{remove_durably, write_durably};
use crate::leased::Leased;
use crate::manifest::Manifest;
use crate::state::{Provider, lock};

/// Writes a lease's record (0600: it holds the tenant's environment), atomically and durably.
fn save_record(p: &Provider, r: &LeaseRecord) {
    let path = records_dir(&p.home.state_dir()).join(format!("{}.json", r.tag));
    let written = serde_json::to_vec_pretty(r)
        .map_err(|e| e.to_string())
        .and_then(|bytes| write_durably(&path, &bytes, 0o600).map_err(|e| e.to_string()));
    if let Err(e) = written {
        tracing::error!(lease = %r.id, error = %e, "lease.record cannot be saved");
    }
}

fn delete_record(p: &Provider, tag: &LeaseTag) {
    let path = records_dir(&p.home.state_dir()).join(format!("{tag}.json"));
    if let Err(e) = remove_durably(&path) {
        tracing::warn!(error = %e, "lease.record cannot be deleted");
    }
}

/// Takes in a lease this provider won (at creation, or found while catching up).
pub async fn adopt_lease(p: &Arc<Provider>, id: BidId, key: &str) {
    let mut leases = lock(&p.leases);
    if leases.contains_key(key) {
        return;
    }
    let record = LeaseRecord {
        id,
        tag: LeaseTag::of(&id.to_string()),
        phase: Phase::AwaitingManifest,
        message: "waiting for the tenant's manifest".into(),
        manifest_hash: None,
        workload: None,
        ready_at_ms: None,
        disk_evictions: 0,
        last_disk_eviction: None,
    };
    save_record(p, &record);
    tracing::info!(lease = %id, "lease.created");
    leases.insert(key.to_string(), record);
}

/// Removes everything of a lease here: workload, ports, hold, record.
pub async fn close_local(p: &Arc<Provider>, key: &str, why: &str) {
    // After any deploy or health pass in flight, so none restarts what is removed here.
    let turn = lease_turn(p, key);
    let _turn = Arc::clone(&turn).lock_owned().await;
    let record = lock(&p.leases).remove(key);
    lock(&p.lease_turns).remove(key);
    if let Some(r) = record {
        if let Err(e) = p.driver.remove(&r.tag).await {
            tracing::warn!(lease = %r.id, error = %e, "lease.remove failed");
        }
        if let Some(w) = &r.workload {
            lock(&p.ports)
                .give_back(w.replicas.iter().flat_map(|s| s.ports.iter().map(|x| x.host_port)));
        }
        delete_record(p, &r.tag);
        tracing::info!(lease = %r.id, why, "lease.closed");
    }
    p.release(key);
}

/// Why a manifest was not deployed, with the HTTP status and error code the tenant gets.
#[derive(Debug)]
pub struct DeployRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> DeployRefusal {
    DeployRefusal { status, code: "manifest_refused", message: message.into() }
}

/// Builds the workload of `group` (already checked against `leased`) for a lease: replicas
/// per service with the leased CPU, memory and storage sizes (never the manifest's own
/// numbers), GPUs from the hold, host ports for globally exposed ports.
fn build_workload(
    p: &Provider,
    record: &LeaseRecord,
    group: &crate::manifest::ManifestGroup,
    leased: &Leased,
) -> Result<Workload, DeployRefusal> {
    let key = record.id.order.to_string();
    let hold = lock(&p.reservations).get(&key).cloned();
    let mut next_replica: BTreeMap<u32, u32> = BTreeMap::new();
    let mut replicas = Vec::new();
    let mut taken = Vec::new();
    for s in &group.services {
        let Some(leased_unit) = leased.unit(s.resources.id) else {
            return Err(refuse(
                422,
                format!("service `{}` runs on a resource unit the lease does not have", s.name),
            ));
        };
        let unit = leased_unit.index;
        let per = leased_unit.gpu_units;
        for replica in 0..s.count {
            let within_unit = next_replica.entry(s.resources.id).or_insert(0);
            let gpu_idx =
                hold.as_ref().map(|h| h.replica_gpus(unit, *within_unit, per)).unwrap_or_default();
            *within_unit += 1;
            if gpu_idx.len() != per as usize {
                lock(&p.ports).give_back(taken.iter().copied());
                return Err(refuse(
                    409,
                    format!(
                        "service `{}` needs {per} GPUs per replica, the lease holds fewer",
                        s.name
                    ),
                ));
            }
            let attach = p.config.inventory.attach_gpus;
            let gpus: Vec<String> = gpu_idx
                .iter()
                .filter(|_| attach)
                .filter_map(|i| {
                    p.inventory.gpus.iter().find(|g| g.index == *i).map(|g| g.cdi_name.clone())
                })
                .collect();
            let mut ports = Vec::new();
            for e in s.expose.iter().filter(|e| e.global) {
                let Some(host_port) = lock(&p.ports).take() else {
                    lock(&p.ports).give_back(taken.iter().copied());
                    return Err(refuse(503, "no free host port left on this provider"));
                };
                taken.push(host_port);
                ports.push(PortMapping {
                    container_port: e.port as u16,
                    host_port,
                    proto: if e.proto == "UDP" { Proto::Udp } else { Proto::Tcp },
                });
            }
            let mut volumes = match s.volumes() {
                Ok(volumes) => volumes,
                Err(e) => {
                    lock(&p.ports).give_back(taken.iter().copied());
                    return Err(refuse(400, e.to_string()));
                }
            };
            for v in &mut volumes {
                if let Some(l) = leased_unit.storage.iter().find(|l| l.name == v.name) {
                    v.bytes = l.bytes;
                }
            }
            // The leased volumes the service does not mount are its containers' own disk.
            let disk_bytes = leased_unit
                .storage
                .iter()
                .filter(|l| l.class.as_deref() != Some("ram"))
                .filter(|l| !volumes.iter().any(|v| v.name == l.name))
                .fold(0u64, |sum, l| sum.saturating_add(l.bytes));
            replicas.push(ReplicaSpec {
                service: s.name.clone(),
                replica,
                image: s.image.clone(),
                command: s.command.clone().unwrap_or_default(),
                args: s.args.clone().unwrap_or_default(),
                env: s.env.clone().unwrap_or_default(),
                cpu_millis: leased_unit.cpu_millis,
                memory_bytes: leased_unit.memory_bytes,
                gpus,
                ports,
                volumes,
                disk_bytes,
            });
        }
    }
    Ok(Workload { tag: record.tag.clone(), lease_id: record.id.to_string(), replicas })
}

/// Deploys a manifest whose hash matches the chain for the lease under `key`, after checking
/// that it asks for no more than `leased` (a 422 `manifest_exceeds_lease` saying what exceeded
/// what when it does).
pub async fn deploy_manifest(
    p: &Arc<Provider>,
    key: &str,
    group_name: &str,
    leased: &Leased,
    bytes: &[u8],
    hash_hex: &str,
) -> Result<LeaseRecord, DeployRefusal> {
    let manifest = Manifest::parse(bytes).map_err(|e| refuse(400, e.to_string()))?;
    let group = manifest.group(group_name).map_err(|e| refuse(400, e.to_string()))?;
    leased.check(group).map_err(|e| DeployRefusal {
        status: 422,
        code: "manifest_exceeds_lease",
        message: e.to_string(),
    })?;
    install(p, key, hash_hex, |record| build_workload(p, record, group, leased)).await
}

/// Puts a new workload (built by `build` from the lease's record) in place of the lease's
/// current one, unless the manifest `hash_hex` already runs.
async fn install(
    p: &Arc<Provider>,
    key: &str,
    hash_hex: &str,
    build: impl FnOnce(&LeaseRecord) -> Result<Workload, DeployRefusal>,
) -> Result<LeaseRecord, DeployRefusal> {
    // Nothing else touches this lease's workload until the new one is in place (a health pass
    // that read the old one would otherwise restart it over the new one).
    let _turn = lease_turn(p, key).lock_owned().await;
    let mut record = lock(&p.leases).get(key).cloned().ok_or_else(|| {
        refuse(409, "this provider has no record of the lease yet: retry in a block")
    })?;
    if record.manifest_hash.as_deref() == Some(hash_hex) && record.phase != Phase::Failed {
        return Ok(record);
    }
    if let Some(old) = record.workload.take() {
        // A new manifest version: the old replicas go first; the lease's persistent volumes
        // stay.
        if let Err(e) = p.driver.stop(&old.tag).await {
            tracing::warn!(lease = %record.id, error = %e, "lease.stop failed");
        }
        lock(&p.ports)
            .give_back(old.replicas.iter().flat_map(|s| s.ports.iter().map(|x| x.host_port)));
    }
    let workload = build(&record)?;
    record.workload = Some(workload.clone());
    record.manifest_hash = Some(hash_hex.to_string());
    record.phase = Phase::Deploying;
    record.message = "starting".into();
    record.ready_at_ms = None;
    save_record(p, &record);
    lock(&p.leases).insert(key.to_string(), record.clone());
    if let Err(e) = p.driver.deploy(&workload).await {
        record.phase = Phase::Failed;
        record.message = e.to_string();
        save_record(p, &record);
        lock(&p.leases).insert(key.to_string(), record.clone());
        return Err(refuse(422, format!("the runtime cannot start the workload: {e}")));
    }
    tracing::info!(lease = %record.id, replicas = workload.replicas.len(), "lease.deployed");
    Ok(record)
}

/// Stops every workload but keeps its record and its persistent volumes, so the next start
/// deploys it again (for `provider run --stop-workloads-on-exit`: a devnet that stops
/// everything on Ctrl-C).
pub async fn stop_all(p: &Arc<Provider>) {
    let tags: Vec<LeaseTag> =
        lock(&p.leases).values().filter(|r| r.workload.is_some()).map(|r| r.tag.clone()).collect();
    for t in tags {
        if let Err(e) = p.driver.stop(&t).await {
            tracing::warn!(tag = %t, error = %e, "lease.stop failed");
        }
    }
}

/// After a restart: deploys every recorded workload again (the driver leaves running replicas
/// alone, so this only restarts what stopped meanwhile) and removes what runs for leases that
/// are over (`orphans_to_remove`).
pub async fn readopt(p: &Arc<Provider>) {
    let records: Vec<LeaseRecord> = lock(&p.leases).values().cloned().collect();
    let mut known = BTreeSet::new();
    for r in records {
        known.insert(r.tag.clone());
        if let Some(w) = &r.workload {
            match p.driver.deploy(w).await {
                Ok(()) => tracing::info!(lease = %r.id, "lease.readopted"),
                Err(e) => tracing::warn!(lease = %r.id, error = %e, "lease.readopt failed"),
            }
        }
    }
    let running = match p.driver.list().await {
        Ok(tags) => tags,
        Err(e) => {
            tracing::warn!(error = %e, "lease.list failed");
            return;
        }
    };
    let unknown: Vec<LeaseTag> = running.into_iter().filter(|t| !known.contains(t)).collect();
    if unknown.is_empty() {
        return;
    }
    let on_chain = if p.unreadable_records.is_empty() {
        lease_states_on_chain(p).await
    } else {
        Err(format!(
            "{} lease records cannot be read ({}): repair or delete them and restart the daemon",
            p.unreadable_records.len(),
            p.unreadable_records
                .iter()
                .map(|(path, why)| format!("{}: {why}", path.display()))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    };
    for t in orphans_to_remove(unknown, on_chain) {
        tracing::info!(tag = %t, "lease.orphan removed");
        if let Err(e) = p.driver.remove(&t).await {
            tracing::warn!(tag = %t, error = %e, "lease.orphan remove failed");
        }
    }
}

/// Where this provider's leases stand on chain, by tag (`true`: active), or why that is
/// unknown.
async fn lease_states_on_chain(p: &Provider) -> Result<BTreeMap<LeaseTag, bool>, String> {
    let q = ListQuery { provider: Some(p.address), ..Default::default() };
    let leases = p.client.leases(&q).await.map_err(|e| format!("cannot ask the chain: {e}"))?;
    Ok(leases
        .iter()
        .map(|l| (LeaseTag::of(&l.id.to_string()), l.state == LeaseState::Active))
        .collect())
}

/// Which of the runtime's leases that no record knows may be removed: only this provider's
/// leases that the chain says are over. A lease active on chain keeps everything; a tag the
/// chain does not know as this provider's (another provider sharing the runtime, a lease
/// pruned from the chain) is left alone; and when the chain cannot tell (`on_chain` is an
/// error: the node is unreachable, a record is unreadable), nothing is removed.
fn orphans_to_remove(
    unknown: Vec<LeaseTag>,
    on_chain: Result<BTreeMap<LeaseTag, bool>, String>,
) -> Vec<LeaseTag> {
    let on_chain = match on_chain {
        Ok(states) => states,
        Err(why) => {
            for t in &unknown {
                tracing::error!(tag = %t, reason = %why, "lease.orphan kept: removing nothing");
            }
            return Vec::new();
        }
    };
    let mut remove = Vec::new();
    for t in unknown {
        match on_chain.get(&t) {
            Some(false) => remove.push(t),
            Some(true) => tracing::warn!(
                tag = %t,
                "lease.orphan kept: no record here, but its lease is active on chain"
            ),
            None => tracing::warn!(
                tag = %t,
                "lease.orphan kept: not a lease of this provider on chain"
            ),
        }
    }
    remove
}

/// Whether something listens on a local port (without blocking the async worker).
async fn port_answers(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(tokio::time::timeout(Duration::from_millis(300), connect).await, Ok(Ok(_)))
}

/// The lock that gives one task at a time the right to act on a lease's workload (deploy a
/// manifest, restart replicas, evict, record the result): whoever holds it reads the record
/// after taking it, so nobody acts on, or writes back, a record another task replaced.
pub fn lease_turn(p: &Provider, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    Arc::clone(lock(&p.lease_turns).entry(key.to_owned()).or_default())
}

/// The leases with a workload that did not fail to start: what the passes look after.
fn running_leases(p: &Provider) -> Vec<String> {
    lock(&p.leases)
        .iter()
        .filter(|(_, r)| r.workload.is_some() && r.phase != Phase::Failed)
        .map(|(k, _)| k.clone())
        .collect()
}

/// One health pass over the deployed leases: phase from replica states and port checks;
/// replicas that stopped for good are started again. A lease whose workload another task is
/// changing (a manifest being deployed) is left for the next pass.
pub async fn check_health(p: &Arc<Provider>) {
    for key in running_leases(p) {
        let Ok(_turn) = lease_turn(p, &key).try_lock_owned() else { continue };
        // Read under the turn: this is the record as it stands, not a copy from before.
        let Some(mut r) = lock(&p.leases).get(&key).cloned() else { continue };
        if r.phase == Phase::Failed {
            continue;
        }
        let Some(w) = r.workload.clone() else { continue };
        let status = match p.driver.status(&r.tag).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(lease = %r.id, error = %e, "lease.status failed");
                Vec::new()
            }
        };
        let stopped = status.len() < w.replicas.len()
            || status.iter().any(|s| s.state == ReplicaState::Exited);
        if stopped && let Err(e) = p.driver.deploy(&w).await {
            tracing::warn!(lease = %r.id, error = %e, "lease.restart failed");
        }
        let running = status.len() == w.replicas.len()
            && status.iter().all(|s| s.state == ReplicaState::Running);
        let mut ports_ok = true;
        for m in w.replicas.iter().flat_map(|s| &s.ports).filter(|m| m.proto == Proto::Tcp) {
            if !port_answers(m.host_port).await {
                ports_ok = false;
                break;
            }
        }
        let (phase, message) = if running && ports_ok {
            (Phase::Ready, "every replica runs and answers".to_string())
        } else if running {
            (Phase::Deploying, "running; waiting for its ports to answer".to_string())
        } else {
            (Phase::Deploying, "waiting for every replica to run".to_string())
        };
        if phase != r.phase || message != r.message {
            r.phase = phase;
            r.message = message;
            if phase == Phase::Ready && r.ready_at_ms.is_none() {
                r.ready_at_ms = Some(now_ms());
            }
            save_record(p, &r);
            let mut leases = lock(&p.leases);
            if leases.contains_key(&key) {
                leases.insert(key, r);
            }
        }
    }
}

/// One pass of the own-disk limit over the deployed leases: replicas that wrote more than
/// their lease gives them are started afresh ([`crate::driver::Driver::enforce_disk`]), and
/// the lease's record says so.
pub async fn check_disk(p: &Arc<Provider>) {
    for key in running_leases(p) {
        let Ok(_turn) = lease_turn(p, &key).try_lock_owned() else { continue };
        let Some(mut r) = lock(&p.leases).get(&key).cloned() else { continue };
        let Some(w) = r.workload.clone() else { continue };
        let evicted = match p.driver.enforce_disk(&w).await {
            Ok(evicted) => evicted,
            Err(e) => {
                tracing::warn!(lease = %r.id, error = %e, "lease.disk_check failed");
                continue;
            }
        };
        let Some(last) = evicted.last() else { continue };
        for eviction in &evicted {
            tracing::warn!(lease = %r.id, %eviction, "lease.disk_eviction");
        }
        r.disk_evictions = r.disk_evictions.saturating_add(evicted.len() as u32);
        r.last_disk_eviction = Some(last.to_string());
        save_record(p, &r);
        let mut leases = lock(&p.leases);
        if let Some(current) = leases.get_mut(&key) {
            current.disk_evictions = r.disk_evictions;
            current.last_disk_eviction = r.last_disk_eviction;
        }
    }
}

/// Health checks forever, at the configured interval, and the own-disk limit at its own
/// (measuring a replica's disk walks its files, so less often).
pub async fn monitor(p: Arc<Provider>) {
    let every = Duration::from_millis(p.config.lease.health_interval_ms);
    let disk_every = Duration::from_millis(p.config.lease.disk_check_interval_ms);
    let mut disk_checked = tokio::time::Instant::now();
    loop {
        check_health(&p).await;
        if disk_checked.elapsed() >= disk_every {
            check_disk(&p).await;
            disk_checked = tokio::time::Instant::now();
        }
        tokio::time::sleep(every).await;
    }
}

/// Withdraws the earnings of every active lease, in batches of 50 per transaction.
pub async fn withdraw_all(p: &Arc<Provider>) {
    let leases = match p
        .client
        .leases(&ListQuery {
            provider: Some(p.address),
            state: Some("active".into()),
            ..Default::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "lease.withdraw cannot list leases");
            return;
        }
    };
    for chunk in leases.chunks(50) {
        let msgs: Vec<Msg> = chunk.iter().map(|l| Msg::WithdrawLease { lease: l.id }).collect();
        match p.submit(msgs).await {
            Ok(r) if r.is_ok() => tracing::info!(leases = chunk.len(), "lease.withdrawn"),
            Ok(r) => tracing::warn!(code = %r.code, log = %r.log, "lease.withdraw refused"),
            Err(e) => tracing::warn!(error = %e, "lease.withdraw failed"),
        }
    }
}

/// What a tenant sees of a lease: phase, replicas and where its services answer.
pub async fn lease_status(p: &Provider, r: &LeaseRecord) -> LeaseStatus {
    let replicas = p.driver.status(&r.tag).await.unwrap_or_default();
    let mut services: BTreeMap<String, Vec<ServiceEndpoint>> = BTreeMap::new();
    if let Some(w) = &r.workload {
        for s in &w.replicas {
            let ports = services.entry(s.service.clone()).or_default();
            for m in &s.ports {
                let host = &p.config.public_host;
                // TCP ports are given as http URIs: nearly every leased service speaks HTTP.
                let uri = match m.proto {
                    Proto::Tcp => format!("http://{host}:{}", m.host_port),
                    Proto::Udp => format!("udp://{host}:{}", m.host_port),
                };
                ports.push(ServiceEndpoint {
                    replica: s.replica,
                    container_port: m.container_port,
                    host: host.clone(),
                    host_port: m.host_port,
                    proto: m.proto,
                    uri,
                });
            }
        }
    }
    LeaseStatus {
        lease: r.id,
        phase: r.phase,
        message: r.message.clone(),
        manifest_hash: r.manifest_hash.clone(),
        ready_at_ms: r.ready_at_ms,
        disk_evictions: r.disk_evictions,
        last_disk_eviction: r.last_disk_eviction.clone(),
        services,
        replicas,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use gridlease_types::{Address, OrderId};

    use super::*;
    use std::path::Path;

    use crate::book::load_records;

    fn record(dseq: u64) -> LeaseRecord {
        let owner = Address([1; 20]);
        let id = BidId { order: OrderId { owner, dseq, gseq: 1, oseq: 1 }, provider: owner };
        LeaseRecord {
            id,
            tag: LeaseTag::of(&id.to_string()),
            phase: Phase::AwaitingManifest,
            message: String::new(),
            manifest_hash: None,
            workload: None,
            ready_at_ms: None,
            disk_evictions: 0,
            last_disk_eviction: None,
        }
    }

    /// A driver whose `status` waits for the test to open a gate (so a health pass can be
    /// caught in the middle), reporting every replica stopped; it records what it deploys.
    #[derive(Debug)]
    struct GatedDriver {
        gate: tokio::sync::Semaphore,
        in_status: tokio::sync::Notify,
        deployed: std::sync::Mutex<Vec<String>>,
    }

    impl Default for GatedDriver {
        fn default() -> Self {
            GatedDriver {
                gate: tokio::sync::Semaphore::new(0),
                in_status: tokio::sync::Notify::new(),
                deployed: std::sync::Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl crate::driver::Driver for GatedDriver {
        fn name(&self) -> &'static str {
            "gated"
        }
        async fn deploy(&self, w: &Workload) -> Result<(), crate::driver::DriverError> {
            lock(&self.deployed).push(w.replicas[0].image.clone());
            Ok(())
        }
        async fn status(
            &self,
            _tag: &LeaseTag,
        ) -> Result<Vec<crate::driver::ReplicaStatus>, crate::driver::DriverError> {
            self.in_status.notify_one();
            let _pass = self.gate.acquire().await.expect("gate");
            Ok(vec![crate::driver::ReplicaStatus {
                service: "web".into(),
                replica: 0,
                state: ReplicaState::Exited,
                restarts: 0,
                exit_code: Some(1),
            }])
        }
        async fn logs(
            &self,
            tag: &LeaseTag,
            _: &str,
            _: u32,
            _: bool,
            _: Option<usize>,
        ) -> Result<crate::driver::LogStream, crate::driver::DriverError> {
            Err(crate::driver::DriverError::UnknownLease(tag.clone()))
        }
        async fn exec(
            &self,
            tag: &LeaseTag,
            _: &str,
            _: u32,
            _: &[String],
        ) -> Result<crate::driver::ExecOutput, crate::driver::DriverError> {
            Err(crate::driver::DriverError::UnknownLease(tag.clone()))
        }
        async fn remove(&self, _: &LeaseTag) -> Result<(), crate::driver::DriverError> {
            Ok(())
        }
        async fn list(&self) -> Result<Vec<LeaseTag>, crate::driver::DriverError> {
            Ok(vec![])
        }
    }

    fn workload_of(r: &LeaseRecord, image: &str) -> Workload {
        Workload {
            tag: r.tag.clone(),
            lease_id: r.id.to_string(),
            replicas: vec![ReplicaSpec {
                service: "web".into(),
                replica: 0,
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
            }],
        }
    }

    /// Issue 11 item 3: a health pass read the lease's record, awaited the runtime, restarted
    /// the workload it had read and wrote its copy back, so a new manifest deployed meanwhile
    /// was replaced by the old one. Now the pass and the deploy take turns on the lease: the
    /// deploy waits for the pass, and the new manifest is what runs and what is recorded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_manifest_update_during_a_health_check_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let driver = Arc::new(GatedDriver::default());
        let p = crate::state::Provider::for_tests(driver.clone(), dir.path());
        let mut r = record(1);
        let key = r.id.order.to_string();
        r.workload = Some(workload_of(&r, "old"));
        r.manifest_hash = Some("aa".into());
        r.phase = Phase::Ready;
        lock(&p.leases).insert(key.clone(), r);

        // A health pass starts and is held inside the runtime's status call.
        let health = tokio::spawn({
            let p = Arc::clone(&p);
            async move { check_health(&p).await }
        });
        driver.in_status.notified().await;
        // The tenant sends a new manifest meanwhile.
        let update = tokio::spawn({
            let (p, key) = (Arc::clone(&p), key.clone());
            async move { install(&p, &key, "bb", |r| Ok(workload_of(r, "new"))).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!update.is_finished(), "the deploy did not wait for the health pass");
        // The pass goes on (it finds the replica stopped and restarts what it read) and ends.
        driver.gate.add_permits(100);
        health.await.expect("health pass");
        let installed = update.await.expect("update task").expect("the new manifest deploys");
        assert_eq!(installed.manifest_hash.as_deref(), Some("bb"));

        let deployed = lock(&driver.deployed).clone();
        assert_eq!(deployed.last().map(String::as_str), Some("new"), "{deployed:?}");
        let now = lock(&p.leases).get(&key).cloned().expect("the record");
        assert_eq!(now.manifest_hash.as_deref(), Some("bb"));
        assert_eq!(now.workload.map(|w| w.replicas[0].image.clone()).as_deref(), Some("new"));
        // Later passes restart the new workload, never the old one.
        check_health(&p).await;
        assert_eq!(lock(&driver.deployed).last().map(String::as_str), Some("new"));
    }

    #[test]
    fn a_missing_folder_is_no_lease_but_a_bad_record_is_an_error() {
        let state = tempfile::tempdir().expect("tempdir");
        let loaded = load_records(state.path()).expect("a missing folder is fine");
        assert!(loaded.records.is_empty() && loaded.unreadable.is_empty());

        let dir = records_dir(state.path());
        let good = record(1);
        let bytes = serde_json::to_vec(&good).expect("json");
        write_durably(&dir.join(format!("{}.json", good.tag)), &bytes, 0o600).expect("write");
        std::fs::write(dir.join("gl-empty.json"), b"").expect("empty record");
        std::fs::write(dir.join("gl-cut.json"), &bytes[..bytes.len() / 2]).expect("cut record");
        std::fs::write(dir.join("gl-left.json.tmp"), b"{").expect("unfinished write");
        let old = dir.join("gl-old.json");
        std::fs::write(&old, &bytes).expect("a record of an earlier version");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let loaded = load_records(state.path()).expect("the folder reads");
        assert_eq!(loaded.records.keys().collect::<Vec<_>>(), [&good.id.order.to_string()]);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&old), mode(&dir)), (0o600, 0o700), "earlier records are made private");
        let mut bad: Vec<String> = loaded
            .unreadable
            .iter()
            .map(|(path, why)| {
                format!("{}: {why}", path.file_name().unwrap_or_default().to_string_lossy())
            })
            .collect();
        bad.sort();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("gl-cut.json: "), "{bad:?}");
        assert_eq!(bad[1], "gl-empty.json: the file is empty");

        // A records folder that cannot be listed is not an empty one.
        let broken = tempfile::tempdir().expect("tempdir");
        std::fs::write(records_dir(broken.path()), b"not a folder").expect("file");
        let e = load_records(broken.path()).expect_err("unreadable folder").to_string();
        assert!(e.starts_with("cannot read the lease records in"), "{e}");
    }

    #[test]
    fn orphans_are_removed_only_when_the_chain_says_their_lease_is_over() {
        let (active, closed, stranger) = (LeaseTag::of("a"), LeaseTag::of("b"), LeaseTag::of("c"));
        let unknown = vec![active.clone(), closed.clone(), stranger];
        let on_chain = BTreeMap::from([(active, true), (closed.clone(), false)]);
        assert_eq!(orphans_to_remove(unknown.clone(), Ok(on_chain)), [closed]);
        assert!(orphans_to_remove(unknown, Err("node unreachable".into())).is_empty());
    }
}
