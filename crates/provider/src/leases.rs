//! The lease engine: the one task that owns the provider's lease book ([`LeaseBook`]) and
//! acts on leases' workloads. A won lease waits for its manifest, is deployed through the
//! driver, is watched (health passes restart replicas that stopped, disk passes evict replicas
//! over their own disk), and is removed when it closes on chain. Other tasks (the chain
//! follower, the manifest service, the monitor) hold a [`Leases`] handle and send commands.
//!
//! Driver calls run in tasks of their own, so a slow image pull on one lease holds up no
//! other; but a lease has at most one of them at a time: a command for a lease whose workload
//! is being changed or checked waits its turn, and a pass skips it. So a health pass never
//! restarts, or writes back, a workload that a manifest update replaced.
//!
//! Each lease has a record in `state/leases/`, written before anything is started, so a
//! restarted daemon re-adopts exactly what it was running. Records hold tenants' environment
//! variables, so they are readable by the provider's user only (0600, in a 0700 folder), and
//! they are written atomically and durably ([`crate::durable_file`]). A record that cannot be
//! read is an error, never taken as "no lease": the daemon then removes nothing it finds
//! running. And nothing of a lease that is active on chain is ever removed because the records
//! miss it: the chain is asked first, and when it cannot be asked nothing is removed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gridlease_client::{LeaseState, ListQuery};
use gridlease_sdl::spec::{ManifestGroup, Protocol};
use gridlease_types::{LeaseId, Msg};
use tokio::sync::{mpsc, oneshot};

use crate::api::{LeaseStatus, LeaseSummary, ServiceEndpoint};
pub use crate::book::{DeployRefusal, LeaseRecord, Phase};
use crate::book::{Health, Install, LeaseBook, PortPool, now_ms, records_dir, refuse};
use crate::driver::{LeaseTag, PortMapping, Proto, ReplicaSpec, ReplicaState, Workload};
use crate::durable_file::{remove_durably, write_durably};
use crate::lease_handle::{Build, Command, PassKind};
pub use crate::lease_handle::{Inbox, Leases};
use crate::leased::Leased;
use crate::manifest::volume_mounts;
use crate::state::{Provider, lock};

/// Deploys the manifest `group` (already checked against `leased`) whose bytes hash to
/// `hash_hex`, in place of what the lease runs, unless that manifest runs already.
pub async fn deploy(
    p: &Arc<Provider>,
    lease: LeaseId,
    group: ManifestGroup,
    leased: Leased,
    hash_hex: &str,
) -> Result<LeaseRecord, DeployRefusal> {
    let provider = Arc::clone(p);
    let build: Build =
        Box::new(move |r, ports| build_workload(&provider, r, &group, &leased, ports));
    p.leases.install(lease, hash_hex, build).await
}

/// Starts the engine over `book` for `p` (whose `leases` handle feeds `inbox`). `unreadable`:
/// lease records found at start that cannot be read, with why; while there is any, nothing
/// found running without a record is removed.
pub fn start(p: &Arc<Provider>, book: LeaseBook, unreadable: Vec<(PathBuf, String)>, inbox: Inbox) {
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let engine = Engine { p: Arc::clone(p), book, unreadable, busy: BTreeMap::new(), done_tx };
    tokio::spawn(engine.run(inbox.0, done_rx));
}

/// Held by each driver call of a pass: the pass is over when the last one is dropped, after
/// the engine applied its result.
type PassToken = Arc<oneshot::Sender<()>>;

/// What a driver call of the engine came back with.
enum Effect {
    Installed { hash: String, result: Result<(), String> },
    Checked { hash: Option<String>, health: Health },
    DiskChecked(Result<Vec<String>, String>),
    Removed,
}

struct Done {
    lease: LeaseId,
    effect: Effect,
    _pass: Option<PassToken>,
}

/// Who waits for a lease's driver call, and the commands for that lease that came meanwhile.
#[derive(Default)]
struct Busy {
    waiter: Option<Waiter>,
    queued: VecDeque<Command>,
}

enum Waiter {
    Install(oneshot::Sender<Result<LeaseRecord, DeployRefusal>>),
    Close { why: String, done: oneshot::Sender<()> },
}

struct Engine {
    p: Arc<Provider>,
    book: LeaseBook,
    unreadable: Vec<(PathBuf, String)>,
    /// Leases with a driver call in flight.
    busy: BTreeMap<LeaseId, Busy>,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Engine {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut done: mpsc::UnboundedReceiver<Done>,
    ) {
        loop {
            tokio::select! {
                biased;
                Some(d) = done.recv() => self.finish(d),
                c = inbox.recv() => match c {
                    Some(c) => self.handle(c).await,
                    None => break,
                },
            }
        }
    }

    /// Starts a driver call for `lease` (which is busy until its result is applied).
    fn spawn(
        &mut self,
        lease: LeaseId,
        waiter: Option<Waiter>,
        pass: Option<PassToken>,
        call: impl Future<Output = Effect> + Send + 'static,
    ) {
        self.busy.insert(lease, Busy { waiter, queued: VecDeque::new() });
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let effect = call.await;
            let _ = done.send(Done { lease, effect, _pass: pass });
        });
    }

    async fn handle(&mut self, c: Command) {
        if let Some(lease) = c.waits_for()
            && let Some(busy) = self.busy.get_mut(&lease)
        {
            busy.queued.push_back(c);
            return;
        }
        match c {
            Command::Adopt { lease } => {
                if let Some(r) = self.book.adopt(lease) {
                    save_record(&self.p, r);
                    tracing::info!(lease = %lease, "lease.created");
                }
            }
            Command::Install { lease, hash, build, reply } => {
                self.install(lease, hash, build, reply)
            }
            Command::Close { lease, why, done } => self.close(lease, why, done),
            Command::Get { lease, reply } => {
                let _ = reply.send(self.book.get(&lease).cloned());
            }
            Command::List { reply } => {
                let _ = reply.send(self.book.records().cloned().collect());
            }
            Command::Summaries { reply } => {
                let summaries = self.book.records().map(|r| LeaseSummary {
                    lease: r.id,
                    phase: r.phase,
                    message: r.message.clone(),
                });
                let _ = reply.send(summaries.collect());
            }
            Command::Pass { kind, done } => self.pass(kind, Arc::new(done)),
            Command::Readopt { done } => {
                self.readopt().await;
                let _ = done.send(());
            }
            Command::StopAll { done } => {
                let tags: Vec<LeaseTag> = self
                    .book
                    .records()
                    .filter(|r| r.workload.is_some())
                    .map(|r| r.tag.clone())
                    .collect();
                for t in tags {
                    if let Err(e) = self.p.driver.stop(&t).await {
                        tracing::warn!(tag = %t, error = %e, "lease.stop failed");
                    }
                }
                let _ = done.send(());
            }
        }
    }

    fn install(
        &mut self,
        lease: LeaseId,
        hash: String,
        build: Build,
        reply: oneshot::Sender<Result<LeaseRecord, DeployRefusal>>,
    ) {
        match self.book.install(&lease, &hash, build) {
            Err(refusal) => {
                let _ = reply.send(Err(refusal));
            }
            Ok(Install::Unchanged(record)) => {
                let _ = reply.send(Ok(record));
            }
            Ok(Install::Replace { record, old, new }) => {
                save_record(&self.p, &record);
                let driver = Arc::clone(&self.p.driver);
                self.spawn(lease, Some(Waiter::Install(reply)), None, async move {
                    if let Some(old) = old {
                        // A new manifest version: the old replicas go first; the lease's
                        // persistent volumes stay.
                        if let Err(e) = driver.stop(&old.tag).await {
                            tracing::warn!(lease = %lease, error = %e, "lease.stop failed");
                        }
                    }
                    let result = driver.deploy(&new).await.map_err(|e| e.to_string());
                    Effect::Installed { hash, result }
                });
            }
        }
    }

    fn close(&mut self, lease: LeaseId, why: String, done: oneshot::Sender<()>) {
        let Some(r) = self.book.get(&lease) else {
            self.p.release(&lease.order);
            let _ = done.send(());
            return;
        };
        let (driver, tag) = (Arc::clone(&self.p.driver), r.tag.clone());
        self.spawn(lease, Some(Waiter::Close { why, done }), None, async move {
            if let Err(e) = driver.remove(&tag).await {
                tracing::warn!(lease = %lease, error = %e, "lease.remove failed");
            }
            Effect::Removed
        });
    }

    fn pass(&mut self, kind: PassKind, token: PassToken) {
        for lease in self.book.running() {
            if self.busy.contains_key(&lease) {
                continue;
            }
            let Some(r) = self.book.get(&lease) else { continue };
            let Some(w) = r.workload.clone() else { continue };
            let p = Arc::clone(&self.p);
            match kind {
                PassKind::Health => {
                    let hash = r.manifest_hash.clone();
                    self.spawn(lease, None, Some(Arc::clone(&token)), async move {
                        Effect::Checked { health: check_health(&p, &w).await, hash }
                    });
                }
                PassKind::Disk => {
                    self.spawn(lease, None, Some(Arc::clone(&token)), async move {
                        let evicted = p.driver.enforce_disk(&w).await;
                        Effect::DiskChecked(
                            evicted
                                .map(|v| v.iter().map(ToString::to_string).collect())
                                .map_err(|e| e.to_string()),
                        )
                    });
                }
            }
        }
    }

    /// Applies a driver call's result, then runs the commands that waited for it.
    fn finish(&mut self, d: Done) {
        let busy = self.busy.remove(&d.lease).unwrap_or_default();
        let lease = d.lease;
        match (d.effect, busy.waiter) {
            (Effect::Installed { hash, result }, waiter) => {
                let answer = match result {
                    Ok(()) => {
                        let r = self.book.get(&lease).cloned();
                        if let Some(r) = &r {
                            let replicas = r.workload.as_ref().map_or(0, |w| w.replicas.len());
                            tracing::info!(lease = %lease, replicas, "lease.deployed");
                        }
                        r.ok_or_else(|| refuse(409, "the lease was closed meanwhile"))
                    }
                    Err(e) => {
                        if let Some(r) = self.book.install_failed(&lease, &hash, e.clone()) {
                            save_record(&self.p, r);
                        }
                        Err(refuse(422, format!("the runtime cannot start the workload: {e}")))
                    }
                };
                if let Some(Waiter::Install(reply)) = waiter {
                    let _ = reply.send(answer);
                }
            }
            (Effect::Checked { hash, health }, _) => {
                if let Some(r) = self.book.observe(&lease, hash.as_deref(), health, now_ms()) {
                    save_record(&self.p, r);
                }
            }
            (Effect::DiskChecked(Err(e)), _) => {
                tracing::warn!(lease = %lease, error = %e, "lease.disk_check failed");
            }
            (Effect::DiskChecked(Ok(evicted)), _) => {
                for eviction in &evicted {
                    tracing::warn!(lease = %lease, %eviction, "lease.disk_eviction");
                }
                if let Some(r) = self.book.count_evictions(&lease, &evicted) {
                    save_record(&self.p, r);
                }
            }
            (Effect::Removed, waiter) => {
                if let Some(r) = self.book.remove(&lease) {
                    delete_record(&self.p, &r.tag);
                }
                self.p.release(&lease.order);
                if let Some(Waiter::Close { why, done }) = waiter {
                    tracing::info!(lease = %lease, why, "lease.closed");
                    let _ = done.send(());
                }
            }
        }
        // Commands that waited for this lease, in order; one may make it busy again, and the
        // rest then wait for that.
        for c in busy.queued {
            if let Some(b) = self.busy.get_mut(&lease) {
                b.queued.push_back(c);
                continue;
            }
            match c {
                Command::Install { lease, hash, build, reply } => {
                    self.install(lease, hash, build, reply)
                }
                Command::Close { lease, why, done } => self.close(lease, why, done),
                other => {
                    tracing::error!(command = ?other, "lease.engine queued a command that does not wait")
                }
            }
        }
    }

    /// See [`Leases::readopt`].
    async fn readopt(&self) {
        let p = &self.p;
        let records: Vec<LeaseRecord> = self.book.records().cloned().collect();
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
        let on_chain = if self.unreadable.is_empty() {
            lease_states_on_chain(p).await
        } else {
            Err(format!(
                "{} lease records cannot be read ({}): repair or delete them and restart the daemon",
                self.unreadable.len(),
                self.unreadable
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
}

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

/// Builds the workload of `group` (already checked against `leased`) for a lease: replicas
/// per service with the leased CPU, memory and storage sizes (never the manifest's own
/// numbers), GPUs from the hold, host ports for globally exposed ports.
fn build_workload(
    p: &Provider,
    record: &LeaseRecord,
    group: &ManifestGroup,
    leased: &Leased,
    pool: &mut PortPool,
) -> Result<Workload, DeployRefusal> {
    let hold = lock(&p.reservations).get(&record.id.order).cloned();
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
                pool.give_back(taken.iter().copied());
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
                let Some(host_port) = pool.take() else {
                    pool.give_back(taken.iter().copied());
                    return Err(refuse(503, "no free host port left on this provider"));
                };
                taken.push(host_port);
                ports.push(PortMapping {
                    container_port: e.port as u16,
                    host_port,
                    proto: match e.proto {
                        Protocol::Tcp => Proto::Tcp,
                        Protocol::Udp => Proto::Udp,
                    },
                });
            }
            let mut volumes = match volume_mounts(s) {
                Ok(volumes) => volumes,
                Err(e) => {
                    pool.give_back(taken.iter().copied());
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
                credentials: s.credentials.as_ref().map(|c| crate::driver::RegistryAuth {
                    host: c.host.clone(),
                    username: c.username.clone(),
                    password: c.password.clone(),
                    email: c.email.clone(),
                }),
            });
        }
    }
    Ok(Workload { tag: record.tag.clone(), lease_id: record.id.to_string(), replicas })
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

/// How a workload is doing: replica states and port checks. Replicas that stopped for good
/// are started again.
async fn check_health(p: &Provider, w: &Workload) -> Health {
    let status = match p.driver.status(&w.tag).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(lease = %w.lease_id, error = %e, "lease.status failed");
            Vec::new()
        }
    };
    let stopped =
        status.len() < w.replicas.len() || status.iter().any(|s| s.state == ReplicaState::Exited);
    if stopped && let Err(e) = p.driver.deploy(w).await {
        tracing::warn!(lease = %w.lease_id, error = %e, "lease.restart failed");
    }
    let running =
        status.len() == w.replicas.len() && status.iter().all(|s| s.state == ReplicaState::Running);
    let mut ports_answer = true;
    for m in w.replicas.iter().flat_map(|s| &s.ports).filter(|m| m.proto == Proto::Tcp) {
        if !port_answers(m.host_port).await {
            ports_answer = false;
            break;
        }
    }
    Health { running, ports_answer }
}

/// Health passes forever, at the configured interval, and disk passes at their own
/// (measuring a replica's disk walks its files, so less often).
pub async fn monitor(p: Arc<Provider>) {
    let every = Duration::from_millis(p.config.lease.health_interval_ms);
    let disk_every = Duration::from_millis(p.config.lease.disk_check_interval_ms);
    let mut disk_checked = tokio::time::Instant::now();
    loop {
        p.leases.health_pass().await;
        if disk_checked.elapsed() >= disk_every {
            p.leases.disk_pass().await;
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
    let pull = r.workload.as_ref().and_then(|w| {
        let images: Vec<&str> = w.replicas.iter().map(|s| s.image.as_str()).collect();
        p.driver.pull_progress(&images)
    });
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
        pull,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use gridlease_types::{Address, BidId, OrderId};

    use super::*;
    use std::path::Path;

    use crate::book::load_records;

    fn record(dseq: u64) -> LeaseRecord {
        let owner = Address([1; 20]);
        let id = BidId { order: OrderId { owner, dseq, gseq: 1, oseq: 1 }, provider: owner };
        LeaseRecord {
            id,
            tag: LeaseTag::for_lease(&id),
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
        /// Deploys wait at the gate too.
        hold_deploys: std::sync::atomic::AtomicBool,
        in_deploy: tokio::sync::Notify,
        deployed: std::sync::Mutex<Vec<String>>,
        removed: std::sync::Mutex<Vec<LeaseTag>>,
    }

    impl Default for GatedDriver {
        fn default() -> Self {
            GatedDriver {
                gate: tokio::sync::Semaphore::new(0),
                in_status: tokio::sync::Notify::new(),
                hold_deploys: Default::default(),
                in_deploy: tokio::sync::Notify::new(),
                deployed: std::sync::Mutex::new(Vec::new()),
                removed: std::sync::Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl crate::driver::Driver for GatedDriver {
        fn name(&self) -> &'static str {
            "gated"
        }
        async fn deploy(&self, w: &Workload) -> Result<(), crate::driver::DriverError> {
            if self.hold_deploys.load(std::sync::atomic::Ordering::SeqCst) {
                self.in_deploy.notify_one();
                let _pass = self.gate.acquire().await.expect("gate");
            }
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
        async fn remove(&self, tag: &LeaseTag) -> Result<(), crate::driver::DriverError> {
            lock(&self.removed).push(tag.clone());
            Ok(())
        }
        async fn list(&self) -> Result<Vec<LeaseTag>, crate::driver::DriverError> {
            Ok(vec![])
        }
    }

    /// A provider over `driver` with its home in `dir`, starting with the leases `records`,
    /// and no node behind it (calls to the chain fail): for tests of what the daemon does with
    /// its own state.
    fn provider_for_tests(
        driver: Arc<dyn crate::driver::Driver>,
        dir: &Path,
        records: Vec<LeaseRecord>,
    ) -> Arc<Provider> {
        use crate::bidengine::BidContext;
        use crate::config::Config;
        use crate::home::Home;
        use crate::inventory::Inventory;
        use crate::reserve::Reservations;
        use crate::tls;
        use gridlease_client::{Client, TxBuilder};
        use gridlease_types::Coin;
        use std::collections::VecDeque;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let home = Home::new(dir);
        std::fs::write(
            home.config_path(),
            crate::config::template("http://127.0.0.1:9", 8443, crate::config::DriverKind::Podman),
        )
        .expect("write the test config");
        let config = Config::load(&home.config_path()).expect("the template loads");
        let key = gridlease_types::Keypair::from_secret([7; 32]);
        let address = key.address();
        let inventory = Inventory {
            cpu_millis: 8_000,
            memory_bytes: 16 << 30,
            storage_bytes: 100 << 30,
            gpus: vec![],
        };
        let capacity = crate::reserve::Capacity {
            cpu_millis: inventory.cpu_millis,
            memory_bytes: inventory.memory_bytes,
            storage_bytes: inventory.storage_bytes,
            gpus: vec![],
        };
        let rates = config.rates().expect("the template's rates");
        let denom = rates.denom.clone();
        let bid_ctx =
            BidContext { attributes: vec![], audits: vec![], storage_classes: vec![], rates };
        let tls = tls::generate(&address, &["localhost".to_owned()]).expect("a certificate");
        let fee = Coin::new(0, &denom);
        let signer = TxBuilder {
            key,
            chain_id: "test".into(),
            sequence: 0,
            fee: fee.clone(),
            fees: Default::default(),
        };
        let book = crate::book::LeaseBook::new(
            records.into_iter().map(|r| (r.id, r)).collect(),
            config.driver.port_range,
        );
        let (leases, inbox) = Leases::channel();
        let p = Arc::new(Provider {
            leases,
            reservations: Mutex::new(Reservations::new(capacity)),
            decisions: Mutex::new(VecDeque::new()),
            bid_ctx: Mutex::new(bid_ctx),
            height: AtomicU64::new(1),
            node_connected: AtomicBool::new(false),
            signer: tokio::sync::Mutex::new(signer),
            deciding: Mutex::new(Default::default()),
            client: Client::new(&config.node),
            config,
            home,
            address,
            driver,
            inventory,
            bid_deposit: fee,
            tls,
        });
        start(&p, book, Vec::new(), inbox);
        p
    }

    fn workload_of(r: &LeaseRecord, image: &str) -> Workload {
        Workload {
            tag: r.tag.clone(),
            lease_id: r.id.to_string(),
            replicas: vec![crate::book::test_replica(image, 0)],
        }
    }

    /// Issue 11 item 3: a health pass read the lease's record, awaited the runtime, restarted
    /// the workload it had read and wrote its copy back, so a new manifest deployed meanwhile
    /// was replaced by the old one. Now the engine gives a lease one driver call at a time: the
    /// deploy waits for the pass, and the new manifest is what runs and what is recorded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_manifest_update_during_a_health_check_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let driver = Arc::new(GatedDriver::default());
        let mut r = record(1);
        let lease = r.id;
        r.workload = Some(workload_of(&r, "old"));
        r.manifest_hash = Some("aa".into());
        r.phase = Phase::Ready;
        let p = provider_for_tests(driver.clone(), dir.path(), vec![r]);

        // A health pass starts and is held inside the runtime's status call.
        let health = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.leases.health_pass().await }
        });
        driver.in_status.notified().await;
        // The tenant sends a new manifest meanwhile.
        let update = tokio::spawn({
            let p = Arc::clone(&p);
            async move {
                let build: Build = Box::new(|r, _| Ok(workload_of(r, "new")));
                p.leases.install(lease, "bb", build).await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!update.is_finished(), "the deploy did not wait for the health pass");
        // Reads are answered meanwhile: the record still names the old manifest.
        let now = p.leases.get(lease).await.expect("the record");
        assert_eq!(now.manifest_hash.as_deref(), Some("aa"));
        // The pass goes on (it finds the replica stopped and restarts what it read) and ends.
        driver.gate.add_permits(100);
        health.await.expect("health pass");
        let installed = update.await.expect("update task").expect("the new manifest deploys");
        assert_eq!(installed.manifest_hash.as_deref(), Some("bb"));

        let deployed = lock(&driver.deployed).clone();
        assert_eq!(deployed, ["old", "new"], "restart of the old, then the new");
        let now = p.leases.get(lease).await.expect("the record");
        assert_eq!(now.manifest_hash.as_deref(), Some("bb"));
        assert_eq!(now.workload.map(|w| w.replicas[0].image.clone()).as_deref(), Some("new"));
        // Later passes restart the new workload, never the old one.
        p.leases.health_pass().await;
        assert_eq!(lock(&driver.deployed).last().map(String::as_str), Some("new"));
        // The record on disk says the same.
        let on_disk = load_records(&p.home.state_dir()).expect("records");
        assert_eq!(on_disk.records[&lease].manifest_hash.as_deref(), Some("bb"));
    }

    /// A close that arrives while a lease's workload is being started waits for the start,
    /// then removes the workload, the record and the hold: nothing of the lease is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_close_during_a_deploy_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let driver = Arc::new(GatedDriver::default());
        let p = provider_for_tests(driver.clone(), dir.path(), vec![]);
        let lease = record(2).id;
        p.leases.adopt(lease).await;
        driver.hold_deploys.store(true, std::sync::atomic::Ordering::SeqCst);
        let deploy = tokio::spawn({
            let p = Arc::clone(&p);
            async move {
                let build: Build = Box::new(|r, _| Ok(workload_of(r, "web")));
                p.leases.install(lease, "cc", build).await
            }
        });
        driver.in_deploy.notified().await;
        let close = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.leases.close(lease, "closed on chain").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!close.is_finished(), "the close did not wait for the deploy");
        driver.gate.add_permits(100);
        deploy.await.expect("deploy task").expect("deployed");
        close.await.expect("close task");
        assert!(p.leases.get(lease).await.is_none());
        assert_eq!(lock(&driver.removed).as_slice(), [LeaseTag::for_lease(&lease)]);
        let on_disk = load_records(&p.home.state_dir()).expect("records");
        assert!(on_disk.records.is_empty(), "the record is deleted");
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
        assert_eq!(loaded.records.keys().collect::<Vec<_>>(), [&good.id]);
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
