//! Runtime drivers: what turns a lease's manifest group into running workloads. One trait,
//! two implementations: [`podman`] (Docker Engine API against `podman system service`, also
//! Docker) and [`exec`] (local programs, for development).
//!
//! A driver names everything it creates after the lease ([`LeaseTag`]), so that a restarted
//! daemon can find and re-adopt what it was running ([`Driver::list`]) without any state of
//! its own: the runtime is the source of truth for what runs.

pub mod disk_image;
pub mod exec;
pub mod podman;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

pub use crate::manifest::{VolumeKind, VolumeMount};

/// A short, runtime-safe name for one lease (`gl-` and 16 hex digits of the SHA-256 of the
/// lease id), used as a name prefix and a label value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseTag(pub String);

impl LeaseTag {
    /// The tag of the lease with this id (`owner/dseq/gseq/oseq/provider`).
    pub fn of(lease_id: &str) -> LeaseTag {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(lease_id.as_bytes());
        LeaseTag(format!("gl-{}", gridlease_types::hex::encode(&digest[..8]).to_lowercase()))
    }

    /// The tag of a lease.
    pub fn for_lease(lease: &gridlease_types::LeaseId) -> LeaseTag {
        LeaseTag::of(&lease.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LeaseTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// A container port published on the provider's host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port the workload listens on inside its container.
    pub container_port: u16,
    /// Port on the provider's host, chosen by the provider before deploying.
    pub host_port: u16,
    pub proto: Proto,
}

/// The login for the registry an image is pulled from (the manifest's `credentials`). Never
/// written to disk (a lease record keeps the image, not the password) and never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub host: String,
    pub username: String,
    pub password: String,
    pub email: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How far the pull of an image has come, as the runtime reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    pub image: String,
    /// Layers seen so far, and how many of them are complete.
    pub layers: u32,
    pub layers_done: u32,
    /// Bytes downloaded and to download, over the layers whose size is known.
    pub current_bytes: u64,
    pub total_bytes: u64,
}

/// One replica of one service, as a driver runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSpec {
    /// Service name from the manifest.
    pub service: String,
    /// Replica index, from 0.
    pub replica: u32,
    pub image: String,
    /// Entrypoint override (empty: the image's).
    pub command: Vec<String>,
    /// Arguments (empty: the image's).
    pub args: Vec<String>,
    /// Environment, `NAME=value`.
    pub env: Vec<String>,
    /// CPU limit in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory limit in bytes (swap included: none beyond it).
    pub memory_bytes: u64,
    /// CDI device names of the GPUs given to this replica (`nvidia.com/gpu=0`).
    pub gpus: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// Storage volumes mounted into the replica.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Bytes the replica may write to its own disk (its root filesystem, and the volumes its
    /// image declares): the leased storage it does not mount.
    #[serde(default)]
    pub disk_bytes: u64,
    /// The registry login for `image`, from the manifest (kept in memory only).
    #[serde(skip)]
    pub credentials: Option<RegistryAuth>,
}

/// What a replica may write to its own disk beyond its leased bytes before it is evicted: the
/// directories the runtime creates for mount points and similar bookkeeping.
pub const DISK_SLACK_BYTES: u64 = 1 << 20;

/// A replica that wrote more to its own disk than it leased, and was started afresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskEviction {
    pub service: String,
    pub replica: u32,
    /// What it had written when it was measured.
    pub written_bytes: u64,
    /// What it may write: its `disk_bytes` plus [`DISK_SLACK_BYTES`].
    pub allowed_bytes: u64,
}

impl std::fmt::Display for DiskEviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replica {}/{} wrote {} bytes to its own disk, more than the {} it may: it was \
             started again with an empty disk",
            self.service, self.replica, self.written_bytes, self.allowed_bytes
        )
    }
}

/// Processes and threads one replica may run at once (a fork bomb stops there) unless the
/// provider's configuration says otherwise (`[lease] pids_limit`).
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// Everything a lease runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub tag: LeaseTag,
    /// The on-chain lease id, kept as a label for people reading `podman ps`.
    pub lease_id: String,
    pub replicas: Vec<ReplicaSpec>,
}

/// Observed state of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Created or restarting, not running yet.
    Starting,
    Running,
    /// Stopped; will not come back by itself.
    Exited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub service: String,
    pub replica: u32,
    pub state: ReplicaState,
    /// Times the runtime restarted it after a crash.
    pub restarts: u32,
    /// Exit code of the last run, when it has exited at least once.
    pub exit_code: Option<i64>,
}

/// What a command run inside a replica printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A stream of log bytes (stdout and stderr interleaved, as the runtime gives them).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, DriverError>> + Send>>;

/// Which interactive session: for its resizes and its exit code.
#[derive(Clone, Debug)]
pub struct ShellSession {
    pub container: String,
    pub exec_id: String,
    /// Unix nanoseconds just before it started.
    pub began: i64,
}

/// An interactive session's streams: what is typed goes to `input`, what the program writes
/// comes from `output`, which ends when the program does.
pub struct ShellIo {
    pub session: ShellSession,
    pub input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pub output: LogStream,
}

impl std::fmt::Debug for ShellIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellIo").field("session", &self.session).finish_non_exhaustive()
    }
}

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("the container runtime is unreachable at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("lease {0} runs nothing here")]
    UnknownLease(LeaseTag),
    #[error("service `{service}` replica {replica} is not running here")]
    UnknownReplica { service: String, replica: u32 },
    #[error(
        "the exec driver runs tenants' programs on this host without isolation and is for development only: set `allow_exec_for_development = true` under [driver] in provider.toml to use it, or use the podman driver"
    )]
    ExecNotEnabled,
    #[error(
        "program `{program}` is not allowed on this provider: the exec driver runs only the programs in driver.exec_allowed_programs and driver.exec_images"
    )]
    ProgramNotAllowed { program: String },
    #[error("{0}")]
    Runtime(String),
}

/// A container runtime. Every method is idempotent where it can be: deploying a workload
/// that already runs leaves it running, removing one that is gone succeeds.
#[async_trait]
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// `podman` or `exec`.
    fn name(&self) -> &'static str;

    /// Starts every replica of the workload (an isolated network for the lease, limits, ports,
    /// env, restart on crash). Replicas that already run are left alone.
    async fn deploy(&self, workload: &Workload) -> Result<(), DriverError>;

    /// State of each replica of the lease, sorted by service and replica.
    async fn status(&self, tag: &LeaseTag) -> Result<Vec<ReplicaStatus>, DriverError>;

    /// Logs of one replica: the last `tail` lines (all when `None`), then new lines as they
    /// come when `follow`.
    async fn logs(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogStream, DriverError>;

    /// Runs `cmd` inside a replica and returns what it printed.
    async fn exec(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        cmd: &[String],
    ) -> Result<ExecOutput, DriverError>;

    /// Stops and deletes everything of the lease (replicas, volumes and network). Only for a
    /// lease that is over: persistent volumes go too.
    async fn remove(&self, tag: &LeaseTag) -> Result<(), DriverError>;

    /// Stops and deletes the lease's replicas but keeps its persistent volumes, for a lease
    /// that goes on (a new manifest version, a provider stopping its workloads for a while).
    /// Drivers without volumes of their own remove everything.
    async fn stop(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        self.remove(tag).await
    }

    /// The leases this runtime runs something for, for re-adoption after a restart.
    async fn list(&self) -> Result<Vec<LeaseTag>, DriverError>;

    /// Measures what each replica of the workload wrote to its own disk and starts afresh,
    /// with an empty disk, every replica that wrote more than its `disk_bytes` plus
    /// [`DISK_SLACK_BYTES`] (what a kubelet does to a pod over its ephemeral storage).
    /// Drivers that cannot measure (exec, for development) evict nothing.
    async fn enforce_disk(&self, _workload: &Workload) -> Result<Vec<DiskEviction>, DriverError> {
        Ok(Vec::new())
    }

    /// Opens an interactive session running `cmd` (`/bin/sh` when empty) in a replica, with a
    /// terminal of `size` (columns, rows) when `tty`.
    async fn shell(
        &self,
        _tag: &LeaseTag,
        _service: &str,
        _replica: u32,
        _cmd: &[String],
        _tty: bool,
        _size: (u16, u16),
    ) -> Result<ShellIo, DriverError> {
        Err(DriverError::Runtime(format!(
            "interactive shells need a container runtime; the {} driver runs none",
            self.name()
        )))
    }

    /// Gives a session's terminal a new size.
    async fn resize_shell(
        &self,
        _exec_id: &str,
        _cols: u16,
        _rows: u16,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// A session's exit code, once its output has ended.
    async fn shell_exit(&self, _session: &ShellSession) -> Result<i64, DriverError> {
        Err(DriverError::Runtime("no such session".to_owned()))
    }

    /// The pull in progress of one of `images`, if any (drivers that pull nothing: none).
    fn pull_progress(&self, _images: &[&str]) -> Option<PullProgress> {
        None
    }
}
