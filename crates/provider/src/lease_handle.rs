//! The handle to the lease engine (`leases.rs`) that the daemon's other tasks hold, and the
//! commands it sends: every call is a message to the engine's task, which owns the lease book.
//! When the engine has stopped, reads find nothing and changes are refused.

use gridlease_types::LeaseId;
use tokio::sync::{mpsc, oneshot};

use crate::api::LeaseSummary;
use crate::book::{DeployRefusal, LeaseRecord, PortPool, refuse};
use crate::driver::Workload;

/// Commands waiting for the engine, at most.
const INBOX: usize = 1024;

/// Makes the workload of a new manifest from the lease's record and the free host ports.
pub type Build =
    Box<dyn FnOnce(&LeaseRecord, &mut PortPool) -> Result<Workload, DeployRefusal> + Send + Sync>;

/// What other tasks ask of the engine.
pub(crate) enum Command {
    Adopt {
        lease: LeaseId,
    },
    Install {
        lease: LeaseId,
        hash: String,
        build: Build,
        reply: oneshot::Sender<Result<LeaseRecord, DeployRefusal>>,
    },
    Close {
        lease: LeaseId,
        why: String,
        done: oneshot::Sender<()>,
    },
    Get {
        lease: LeaseId,
        reply: oneshot::Sender<Option<LeaseRecord>>,
    },
    List {
        reply: oneshot::Sender<Vec<LeaseRecord>>,
    },
    Summaries {
        reply: oneshot::Sender<Vec<LeaseSummary>>,
    },
    Pass {
        kind: PassKind,
        done: oneshot::Sender<()>,
    },
    Readopt {
        done: oneshot::Sender<()>,
    },
    StopAll {
        done: oneshot::Sender<()>,
    },
}

impl Command {
    /// The lease whose workload the command changes, when it must wait for that lease's turn.
    pub(crate) fn waits_for(&self) -> Option<LeaseId> {
        match self {
            Command::Install { lease, .. } | Command::Close { lease, .. } => Some(*lease),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum PassKind {
    Health,
    Disk,
}

/// The handle other tasks hold: every call is a command to the engine. When the engine has
/// stopped, reads find nothing and changes are refused.
#[derive(Clone, Debug)]
pub struct Leases {
    inbox: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Command::Adopt { .. } => "adopt",
            Command::Install { .. } => "install",
            Command::Close { .. } => "close",
            Command::Get { .. } => "get",
            Command::List { .. } => "list",
            Command::Summaries { .. } => "summaries",
            Command::Pass { .. } => "pass",
            Command::Readopt { .. } => "readopt",
            Command::StopAll { .. } => "stop_all",
        };
        f.write_str(name)
    }
}

/// The engine's side of a [`Leases`] handle: what `leases::start` needs.
#[derive(Debug)]
pub struct Inbox(pub(crate) mpsc::Receiver<Command>);

impl Leases {
    /// A handle and the inbox its engine will read.
    pub fn channel() -> (Leases, Inbox) {
        let (inbox, rx) = mpsc::channel(INBOX);
        (Leases { inbox }, Inbox(rx))
    }

    async fn send(&self, c: Command) -> bool {
        self.inbox.send(c).await.is_ok()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return None;
        }
        rx.await.ok()
    }

    /// Takes in a lease this provider won (at creation, or found while catching up).
    pub async fn adopt(&self, lease: LeaseId) {
        self.send(Command::Adopt { lease }).await;
    }

    /// Puts the workload `build` makes in place of what the lease runs, unless the manifest
    /// hashing to `hash` runs already.
    pub async fn install(
        &self,
        lease: LeaseId,
        hash: &str,
        build: Build,
    ) -> Result<LeaseRecord, DeployRefusal> {
        let hash = hash.to_owned();
        self.ask(|reply| Command::Install { lease, hash, build, reply })
            .await
            .unwrap_or_else(|| Err(refuse(503, "the provider is stopping")))
    }

    /// Removes everything of a lease here (workload, ports, hold, record), after whatever
    /// is being done to it finishes.
    pub async fn close(&self, lease: LeaseId, why: &str) {
        let why = why.to_owned();
        self.ask(|done| Command::Close { lease, why, done }).await;
    }

    /// The lease's record as it stands.
    pub async fn get(&self, lease: LeaseId) -> Option<LeaseRecord> {
        self.ask(|reply| Command::Get { lease, reply }).await.flatten()
    }

    /// Every lease's record.
    pub async fn list(&self) -> Vec<LeaseRecord> {
        self.ask(|reply| Command::List { reply }).await.unwrap_or_default()
    }

    /// Every lease's id, phase and message: what the public `/status` shows, without copying
    /// the records (their workloads and the tenants' environment).
    pub async fn summaries(&self) -> Vec<LeaseSummary> {
        self.ask(|reply| Command::Summaries { reply }).await.unwrap_or_default()
    }

    /// One health pass over the deployed leases, returning when its results are in the book:
    /// phase from replica states and port checks; replicas that stopped are started again. A
    /// lease whose workload is being changed is left for the next pass.
    pub async fn health_pass(&self) {
        self.ask(|done| Command::Pass { kind: PassKind::Health, done }).await;
    }

    /// One pass of the own-disk limit: replicas that wrote more than their lease gives them
    /// are started afresh ([`crate::driver::Driver::enforce_disk`]), and the record says so.
    pub async fn disk_pass(&self) {
        self.ask(|done| Command::Pass { kind: PassKind::Disk, done }).await;
    }

    /// After a restart: deploys every recorded workload again (the driver leaves running
    /// replicas alone, so this only restarts what stopped meanwhile) and removes what runs for
    /// leases that are over (`orphans_to_remove`).
    pub async fn readopt(&self) {
        self.ask(|done| Command::Readopt { done }).await;
    }

    /// Stops every workload but keeps its record and its persistent volumes, so the next
    /// start deploys it again (for `provider run --stop-workloads-on-exit`).
    pub async fn stop_all(&self) {
        self.ask(|done| Command::StopAll { done }).await;
    }
}
