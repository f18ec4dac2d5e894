//! The podman driver: runs a lease's replicas as containers through the Docker Engine API that
//! `podman system service` serves over a unix socket (Docker's own socket works too).
//!
//! Per lease it creates one bridge network, `<tag>-net`, and one container per replica,
//! `<tag>-<service>-<replica>`, all labelled `gridlease.lease=<tag>`: the labels are the only
//! state, so [`Driver::list`] finds a lease again after the daemon restarts.
//!
//! Two podman behaviours shape this file:
//!
//! - Podman's compat API reports its internal states `stopped` and `stopping` (briefly, while a
//!   container exits and its restart policy or cleanup runs), which the Docker API does not
//!   define and bollard's typed models reject for the whole response (bollard#701,
//!   podman#28359). Reads that carry a container state are retried for a short while
//!   (`retry_transient_states`) instead of failing, as is a list that podman 4.3 fails with
//!   http 500 because a container's process exited while it was being read.
//! - Podman before 5.4 silently drops CDI device requests sent through the compat API, and
//!   podman 4 and 5 reject CDI names in `HostConfig.Devices` (`stat nvidia.com/gpu=0: no such
//!   file or directory`). GPUs go out as
//!   `DeviceRequests: [{Driver: "cdi", DeviceIDs: [...]}]` (what the Docker CLI sends for
//!   `--device nvidia.com/gpu=0`, honoured by Docker 25+ and podman 5.4+), and a deploy that
//!   asks an older podman for GPUs is refused rather than started without them.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    DeviceRequest, EndpointSettings, HostConfig, Mount, MountTmpfsOptions, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    SystemVersion, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::manifest::is_safe_name;

use super::{
    DEFAULT_PIDS_LIMIT, DISK_SLACK_BYTES, DiskEviction, Driver, DriverError, ExecOutput, LeaseTag,
    LogStream, Proto, PullProgress, ReplicaSpec, ReplicaState, ReplicaStatus, VolumeKind, Workload,
    disk_image,
};

/// Label holding the lease tag, on every container, network and volume of a lease.
pub const LABEL_LEASE: &str = "gridlease.lease";
/// Label holding the on-chain lease id.
pub const LABEL_LEASE_ID: &str = "gridlease.lease_id";
/// Label holding the service name of a replica.
pub const LABEL_SERVICE: &str = "gridlease.service";
/// Label holding the replica index.
pub const LABEL_REPLICA: &str = "gridlease.replica";

/// How long one API request may take before the driver gives up on it.
const REQUEST_TIMEOUT_S: u64 = 120;
/// Seconds a replica gets to exit after SIGTERM when its lease is removed.
const STOP_TIMEOUT_S: i32 = 5;
/// How often, and how far apart, a read that hit a podman-only state is retried.
const TRANSIENT_STATE_RETRIES: u32 = 40;
const TRANSIENT_STATE_PAUSE: Duration = Duration::from_millis(50);
/// How long `exec` waits for the runtime to record the exit code once the output has ended.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);
/// First podman release whose compat API honours CDI device requests.
const PODMAN_CDI_SINCE: (u64, u64) = (5, 4);

/// The container runtime behind the socket, as far as the driver needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Engine {
    Podman {
        version: String,
    },
    /// Docker, or anything else speaking its API.
    Other {
        version: String,
    },
}

impl Engine {
    fn of(version: &SystemVersion) -> Engine {
        let podman =
            version.components.iter().flatten().find(|component| component.name == "Podman Engine");
        match podman {
            Some(component) => Engine::Podman { version: component.version.clone() },
            None => Engine::Other { version: version.version.clone().unwrap_or_default() },
        }
    }

    /// Refuses GPU workloads on runtimes known to drop CDI device requests without a word.
    fn check_cdi_support(&self) -> Result<(), DriverError> {
        let Engine::Podman { version } = self else {
            return Ok(());
        };
        if major_minor(version).is_some_and(|found| found >= PODMAN_CDI_SINCE) {
            return Ok(());
        }
        Err(DriverError::Runtime(format!(
            "podman {version} ignores gpu (cdi) device requests made through its \
             docker-compatible api: upgrade podman to {}.{} or later to run gpu workloads",
            PODMAN_CDI_SINCE.0, PODMAN_CDI_SINCE.1
        )))
    }
}

/// `(major, minor)` of a version such as `4.3.1` or `5.4.0-rc2`.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let number = |part: Option<&str>| -> Option<u64> {
        let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((number(parts.next())?, number(parts.next())?))
}

/// Runs workloads as containers through the Docker Engine API of `podman system service`.
#[derive(Debug)]
pub struct PodmanDriver {
    docker: Docker,
    /// `unix://<path>`, for error messages.
    endpoint: String,
    engine: Engine,
    /// `PidsLimit` of every container: processes and threads one replica may run at once.
    pids_limit: i64,
    /// Where the image files of disk volumes live (an absolute path the runtime sees too).
    volume_dir: PathBuf,
    /// Pulls in progress, by image.
    pulls: std::sync::Mutex<HashMap<String, PullTracker>>,
}

/// What the runtime said so far while pulling one image: each layer's bytes and whether it
/// is complete.
#[derive(Debug, Default)]
struct PullTracker {
    layers: std::collections::BTreeMap<String, (u64, u64, bool)>,
}

impl PullTracker {
    /// Takes one progress message of the runtime.
    fn update(&mut self, id: Option<&str>, status: &str, current: Option<i64>, total: Option<i64>) {
        let Some(id) = id.filter(|id| !id.is_empty()) else { return };
        let status = status.to_ascii_lowercase();
        // Messages that name no layer but the image or the tag carry no bytes.
        if status.starts_with("pulling from") || status.starts_with("digest") {
            return;
        }
        let layer = self.layers.entry(id.to_owned()).or_default();
        if let Some(t) = total.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0) {
            layer.1 = t;
        }
        if let Some(c) = current.and_then(|c| u64::try_from(c).ok()) {
            layer.0 = c;
        }
        if status.contains("complete") || status.contains("already exists") {
            layer.2 = true;
            layer.0 = layer.1.max(layer.0);
        }
    }

    fn progress(&self, image: &str) -> PullProgress {
        let done = self.layers.values().filter(|l| l.2).count();
        PullProgress {
            image: image.to_owned(),
            layers: u32::try_from(self.layers.len()).unwrap_or(u32::MAX),
            layers_done: u32::try_from(done).unwrap_or(u32::MAX),
            current_bytes: self.layers.values().map(|l| l.0).sum(),
            total_bytes: self.layers.values().map(|l| l.1).sum(),
        }
    }
}

/// A failed pull in the words a tenant can act on: `image not found`, `unauthorized`,
/// `registry unreachable`, or `pull failed`, each with the runtime's own words after it.
pub fn pull_failure(image: &str, said: &str) -> String {
    let l = said.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    if has(&[
        "unauthorized",
        "authentication required",
        "requested access to the resource is denied",
        "denied:",
        "invalid username/password",
    ]) {
        format!(
            "unauthorized: the registry refused to serve `{image}` to this provider (check the \
             service's `credentials`): {said}"
        )
    } else if has(&[
        "manifest unknown",
        "name unknown",
        "not found",
        "no such image",
        "repository does not exist",
    ]) {
        format!("image not found: `{image}` does not exist in its registry: {said}")
    } else if has(&[
        "no such host",
        "connection refused",
        "i/o timeout",
        "network is unreachable",
        "tls handshake timeout",
        "no route to host",
        "connection reset",
        "server misbehaving",
        "dial tcp",
    ]) {
        format!(
            "registry unreachable: this provider cannot reach the registry of `{image}`: {said}"
        )
    } else {
        format!("pull failed: `{image}`: {said}")
    }
}

/// Whether an error was caused by the socket refusing or dropping the connection (a runtime
/// that is gone), wherever that sits in its chain of sources.
fn connection_lost(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::NotFound
            )
        {
            return true;
        }
        cur = e.source();
    }
    false
}

impl PodmanDriver {
    /// Connects to the API socket at `socket_path` (with or without `unix://`) and checks that
    /// the runtime answers.
    pub async fn connect(socket_path: &str) -> Result<PodmanDriver, DriverError> {
        let path = socket_path.trim_start_matches("unix://");
        let endpoint = format!("unix://{path}");
        let unreachable =
            |reason: String| DriverError::Unreachable { endpoint: endpoint.clone(), reason };
        let docker =
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
                .map_err(|err| {
                    unreachable(match err {
                        ApiError::SocketNotFoundError(_) => format!(
                            "no socket there: start `podman system service --time=0 \
                             unix://{path}` or point the provider at the right socket"
                        ),
                        other => error_chain(&other),
                    })
                })?;
        let mut driver = PodmanDriver {
            docker,
            endpoint: endpoint.clone(),
            engine: Engine::Other { version: String::new() },
            pids_limit: DEFAULT_PIDS_LIMIT as i64,
            volume_dir: std::env::temp_dir().join("gridlease-volumes"),
            pulls: Default::default(),
        };
        driver.docker.ping().await.map_err(|err| driver.api_error("ping the runtime", err))?;
        // Speak the API version the runtime offers when it is older than bollard's (podman 4
        // offers 1.41).
        driver.docker = driver
            .docker
            .clone()
            .negotiate_version()
            .await
            .map_err(|err| driver.api_error("negotiate the api version", err))?;
        let version = driver
            .docker
            .version()
            .await
            .map_err(|err| driver.api_error("read the runtime version", err))?;
        driver.engine = Engine::of(&version);
        tracing::info!(endpoint = %driver.endpoint, engine = ?driver.engine, "podman.connected");
        Ok(driver)
    }

    /// Sets the most processes and threads one replica may run at once (the default is
    /// [`DEFAULT_PIDS_LIMIT`]). Zero would mean no limit to the runtime, so it is refused.
    pub fn with_pids_limit(mut self, limit: u64) -> Result<PodmanDriver, DriverError> {
        self.pids_limit = i64::try_from(limit).ok().filter(|l| *l > 0).ok_or_else(|| {
            DriverError::Runtime(format!(
                "a pids limit of {limit} is not a limit: use 1 to {}",
                i64::MAX
            ))
        })?;
        Ok(self)
    }

    /// Sets where the image files of disk volumes are kept (the default, for tests, is
    /// `gridlease-volumes` in the temporary directory; the daemon uses its home's `volumes`).
    /// The runtime loop-mounts them from there, so it must see the same path.
    pub fn with_volume_dir(mut self, dir: &Path) -> Result<PodmanDriver, DriverError> {
        self.volume_dir = std::path::absolute(dir).map_err(|e| {
            DriverError::Runtime(format!("volume directory {}: {e}", dir.display()))
        })?;
        Ok(self)
    }

    /// Creates and starts an exec session of `cmd` in container `name`, attached (stdin too
    /// when `stdin`, with a terminal when `tty`); its id, when it started (unix nanoseconds:
    /// events of sessions that ended before are not its own), and its streams.
    async fn start_session(
        &self,
        name: &str,
        action: &str,
        cmd: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> Result<(String, i64, StartExecResults), DriverError> {
        let options = CreateExecOptions {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(cmd),
            env: tty.then(|| vec!["TERM=xterm-256color".to_owned()]),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(name, options)
            .await
            .map_err(|err| self.api_error(action, err))?;
        let began = unix_nanos();
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions { detach: false, tty, output_capacity: None }),
            )
            .await
            .map_err(|err| self.api_error(action, err))?;
        Ok((created.id, began, started))
    }

    /// The exit code of exec session `exec_id` in container `name`, whose output ended: from
    /// the session, or from the runtime's events when podman dropped the session (it drops a
    /// container's sessions when the container stops, and the command may have stopped it).
    async fn exit_code_of(
        &self,
        name: &str,
        exec_id: &str,
        began: i64,
    ) -> Result<i64, DriverError> {
        let action = format!("exec in {name}");
        // The output ends when the process does; the exit code lands a moment later.
        let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
        loop {
            let inspected = match self.docker.inspect_exec(exec_id).await {
                Ok(inspected) => inspected,
                Err(err) if session_gone(&err) => {
                    return match self.exec_code_from_events(name, exec_id, began).await {
                        Some(code) => Ok(code),
                        None => Err(self.api_error(&action, err)),
                    };
                }
                Err(err) => return Err(self.api_error(&action, err)),
            };
            if let (false, Some(code)) = (inspected.running == Some(true), inspected.exit_code) {
                return Ok(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Runtime(format!(
                    "{action}: the runtime did not report an exit code within {} s",
                    EXEC_EXIT_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit code of exec session `exec_id` in container `name` from the runtime's
    /// `exec_died` events at or after `began` (unix nanoseconds, just before the session
    /// started), waiting up to a second for the event; none when no event or no single code
    /// says it (see [`exec_code_among`]).
    async fn exec_code_from_events(&self, name: &str, exec_id: &str, began: i64) -> Option<i64> {
        // The events API's `since` is in whole seconds: a second early, then by nanoseconds.
        let since = (began / 1_000_000_000).saturating_sub(1);
        let filters = HashMap::from([
            ("event", vec!["exec_died".to_owned()]),
            ("container", vec![name.to_owned()]),
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let until = (unix_seconds() + 1).to_string();
            let options = EventsOptionsBuilder::new()
                .since(&since.to_string())
                .until(&until)
                .filters(&filters)
                .build();
            let events: Vec<(Option<String>, i64)> = self
                .docker
                .events(Some(options))
                .take_while(|e| std::future::ready(e.is_ok()))
                .filter_map(|e| async move {
                    let e = e.ok()?;
                    if e.time_nano.is_some_and(|t| t < began) {
                        return None;
                    }
                    let attributes = e.actor?.attributes?;
                    let code = attributes.get("containerExitCode")?.parse().ok()?;
                    let id = attributes.get("execID").or_else(|| attributes.get("execId")).cloned();
                    Some((id, code))
                })
                .collect()
                .await;
            if let Some(code) = exec_code_among(&events, exec_id) {
                return Some(code);
            }
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    container = name,
                    exec = exec_id,
                    ?events,
                    "exec code not found in events"
                );
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Turns a bollard error into a driver error; `action` says what was being done, in
    /// lowercase ("create container x").
    fn api_error(&self, action: &str, err: ApiError) -> DriverError {
        let unreachable =
            |reason: String| DriverError::Unreachable { endpoint: self.endpoint.clone(), reason };
        match err {
            ApiError::SocketNotFoundError(_) => {
                unreachable(format!("{action}: the socket is gone"))
            }
            ApiError::HyperLegacyError { err } if err.is_connect() || connection_lost(&err) => {
                unreachable(format!("{action}: {}", error_chain(&err)))
            }
            ApiError::IOError { err }
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                unreachable(format!("{action}: {err}"))
            }
            ApiError::RequestTimeoutError => DriverError::Runtime(format!(
                "{action}: the runtime did not answer within {REQUEST_TIMEOUT_S} s"
            )),
            ApiError::DockerResponseServerError { status_code, message } => {
                DriverError::Runtime(format!("{action}: {} (http {status_code})", message.trim()))
            }
            other => DriverError::Runtime(format!("{action}: {}", error_chain(&other))),
        }
    }

    /// The containers carrying `label` (a key, or `key=value`), stopped ones included.
    async fn containers_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DriverError> {
        self.list_labelled(label, false).await
    }

    /// Containers carrying `label`; with `size`, each with what it wrote to its own disk
    /// (`SizeRw`, which the runtime measures by walking the container's writable layer).
    async fn list_labelled(
        &self,
        label: &str,
        size: bool,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DriverError> {
        let filters = HashMap::from([("label", vec![label.to_owned()])]);
        let options =
            ListContainersOptionsBuilder::new().all(true).size(size).filters(&filters).build();
        retry_transient_states(|| self.docker.list_containers(Some(options.clone())))
            .await
            .map_err(|err| self.api_error("list containers", err))
    }

    /// Inspects a container; `None` when there is none by that name.
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInspectResponse>, DriverError> {
        match retry_transient_states(|| self.docker.inspect_container(name, None)).await {
            Ok(found) => Ok(Some(found)),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(self.api_error(&format!("inspect container {name}"), err)),
        }
    }

    /// The name of a replica's container, after checking that it exists.
    async fn existing_replica(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
    ) -> Result<String, DriverError> {
        let name = container_name(tag, service, replica);
        if self.inspect(&name).await?.is_some() {
            return Ok(name);
        }
        if self.lease_containers(tag).await?.is_empty() {
            return Err(DriverError::UnknownLease(tag.clone()));
        }
        Err(DriverError::UnknownReplica { service: service.to_owned(), replica })
    }

    async fn lease_containers(
        &self,
        tag: &LeaseTag,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DriverError> {
        self.containers_labelled(&format!("{LABEL_LEASE}={tag}")).await
    }

    /// The mount points the image declares (`VOLUME` in its Dockerfile): the runtime would
    /// give each an anonymous volume of no size limit.
    async fn image_volumes(&self, image: &str) -> Result<Vec<String>, DriverError> {
        let inspected = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|err| self.api_error(&format!("inspect image `{image}`"), err))?;
        Ok(inspected.config.and_then(|config| config.volumes).unwrap_or_default())
    }

    /// Makes sure `image` is in local storage, pulling it when it is not (with the registry
    /// login when the manifest gave one), its progress readable through
    /// [`Driver::pull_progress`] meanwhile. A failed pull is an error that says which kind
    /// of failure it was ([`pull_failure`]).
    async fn ensure_image(
        &self,
        image: &str,
        auth: Option<&super::RegistryAuth>,
    ) -> Result<(), DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(self.api_error(&format!("inspect image `{image}`"), err)),
        }
        tracing::info!(image, login = auth.is_some(), "podman.pull");
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            email: Some(a.email.clone()).filter(|e| !e.is_empty()),
            serveraddress: Some(a.host.clone()),
            ..Default::default()
        });
        lock_pulls(&self.pulls).insert(image.to_owned(), PullTracker::default());
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut said = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        said = Some(e);
                        break;
                    }
                    let (current, total) =
                        info.progress_detail.map(|p| (p.current, p.total)).unwrap_or((None, None));
                    if let Some(t) = lock_pulls(&self.pulls).get_mut(image) {
                        t.update(
                            info.id.as_deref(),
                            info.status.as_deref().unwrap_or_default(),
                            current,
                            total,
                        );
                    }
                }
                Err(err) => {
                    said = Some(match self.api_error("pull", err) {
                        DriverError::Runtime(reason) | DriverError::Unreachable { reason, .. } => {
                            reason
                        }
                        other => other.to_string(),
                    });
                    break;
                }
            }
        }
        lock_pulls(&self.pulls).remove(image);
        let said = match said {
            Some(s) => s,
            None => match self.docker.inspect_image(image).await {
                Ok(_) => {
                    tracing::info!(image, "podman.pulled");
                    return Ok(());
                }
                Err(err) => error_chain(&err),
            },
        };
        Err(DriverError::Runtime(pull_failure(image, &said)))
    }

    /// Creates the lease's network unless it exists.
    async fn ensure_network(&self, workload: &Workload) -> Result<String, DriverError> {
        let name = network_name(&workload.tag);
        match self.docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(name),
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(self.api_error(&format!("inspect network {name}"), err)),
        }
        let mut options = HashMap::new();
        if matches!(self.engine, Engine::Podman { .. }) {
            // Docker isolates bridge networks from each other by default; podman only when
            // asked (netavark's `isolate` option).
            options.insert("isolate".to_owned(), "true".to_owned());
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            options: Some(options),
            labels: Some(HashMap::from([
                (LABEL_LEASE.to_owned(), workload.tag.to_string()),
                (LABEL_LEASE_ID.to_owned(), workload.lease_id.clone()),
            ])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(created) => {
                tracing::info!(network = %name, warning = ?created.warning, "podman.network_created");
                Ok(name)
            }
            // Created meanwhile by a concurrent deploy.
            Err(err) if is_status(&err, 409) => Ok(name),
            Err(err) => Err(self.api_error(&format!("create network {name}"), err)),
        }
    }

    /// Creates (unless it exists) and starts (unless it runs) one replica.
    /// Creates the replica's disk volumes before its container: persistent ones unless they
    /// exist (their data lives as long as the lease), ephemeral ones afresh.
    async fn ensure_volumes(
        &self,
        workload: &Workload,
        spec: &ReplicaSpec,
    ) -> Result<(), DriverError> {
        for volume in spec.volumes.iter().filter(|v| v.kind != VolumeKind::Ram) {
            let name = volume_name(&workload.tag, &spec.service, spec.replica, &volume.name);
            let exists = match self.docker.inspect_volume(&name).await {
                Ok(_) => true,
                Err(err) if is_status(&err, 404) => false,
                Err(err) => return Err(self.api_error(&format!("inspect volume {name}"), err)),
            };
            if exists && volume.kind == VolumeKind::Persistent {
                continue;
            }
            if exists {
                self.remove_volume(&name).await?;
            }
            // A filesystem of the leased size: the replica gets ENOSPC beyond it.
            let image = disk_image::image_path(&self.volume_dir, &name);
            let bytes = volume.bytes;
            let path = image.clone();
            tokio::task::spawn_blocking(move || disk_image::create(&path, bytes))
                .await
                .map_err(|e| DriverError::Runtime(format!("create volume {name}: {e}")))?
                .map_err(|e| DriverError::Runtime(format!("create volume {name}: {e}")))?;
            let request = VolumeCreateRequest {
                name: Some(name.clone()),
                driver_opts: Some(HashMap::from([
                    ("type".to_owned(), disk_image::FS_TYPE.to_owned()),
                    ("device".to_owned(), image.display().to_string()),
                    ("o".to_owned(), "loop".to_owned()),
                ])),
                labels: Some(HashMap::from([
                    (LABEL_LEASE.to_owned(), workload.tag.to_string()),
                    (LABEL_LEASE_ID.to_owned(), workload.lease_id.clone()),
                    (LABEL_SERVICE.to_owned(), spec.service.clone()),
                    (LABEL_REPLICA.to_owned(), spec.replica.to_string()),
                ])),
                ..Default::default()
            };
            match self.docker.create_volume(request).await {
                Ok(_) => {
                    tracing::info!(volume = %name, kind = ?volume.kind, "podman.volume_created")
                }
                // Created meanwhile by a concurrent deploy.
                Err(err) if is_status(&err, 409) => {}
                Err(err) => return Err(self.api_error(&format!("create volume {name}"), err)),
            }
        }
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DriverError> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => tracing::info!(volume = %name, "podman.volume_removed"),
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(self.api_error(&format!("remove volume {name}"), err)),
        }
        disk_image::remove(&disk_image::image_path(&self.volume_dir, name))
    }

    /// Stops and removes every container of the lease.
    async fn remove_containers(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        for summary in self.lease_containers(tag).await? {
            let Some(id) = summary.id else { continue };
            let stop = StopContainerOptionsBuilder::new().t(STOP_TIMEOUT_S).build();
            match self.docker.stop_container(&id, Some(stop)).await {
                Ok(()) => {}
                // Gone already; 304 (already stopped) is not an error for bollard.
                Err(err) if is_status(&err, 404) => continue,
                // Stopping failed (e.g. a container stuck in a bad state): the forced removal
                // below kills it.
                Err(err) => {
                    tracing::warn!(container = %id, error = %error_chain(&err), "podman.stop_failed");
                }
            }
            // `v`: anonymous volumes only; the named (persistent) ones stay.
            let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => tracing::info!(container = %id, "podman.container_removed"),
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(self.api_error(&format!("remove container {id}"), err)),
            }
        }
        Ok(())
    }

    /// Removes the lease's network (and any other network labelled with it).
    async fn remove_networks(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_LEASE}={tag}")])]);
        let mut networks = BTreeSet::from([network_name(tag)]);
        let labelled = self
            .docker
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|err| self.api_error("list networks", err))?;
        networks.extend(labelled.into_iter().filter_map(|network| network.name));
        for network in networks {
            match self.docker.remove_network(&network).await {
                Ok(()) => tracing::info!(network, "podman.network_removed"),
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(self.api_error(&format!("remove network {network}"), err)),
            }
        }
        Ok(())
    }

    async fn ensure_replica(
        &self,
        workload: &Workload,
        network: &str,
        spec: &ReplicaSpec,
    ) -> Result<(), DriverError> {
        let name = container_name(&workload.tag, &spec.service, spec.replica);
        match self.inspect(&name).await? {
            Some(existing) if is_up(existing.state.as_ref()) => {
                tracing::debug!(container = %name, "podman.already_running");
                return Ok(());
            }
            Some(_) => {}
            None => {
                self.ensure_volumes(workload, spec).await?;
                let image_volumes = self.image_volumes(&spec.image).await?;
                let body =
                    container_body(workload, network, spec, &image_volumes, self.pids_limit)?;
                let options = CreateContainerOptionsBuilder::new().name(&name).build();
                match self.docker.create_container(Some(options), body).await {
                    Ok(created) => {
                        for warning in created.warnings {
                            tracing::warn!(container = %name, warning, "podman.create_warning");
                        }
                        tracing::info!(container = %name, "podman.container_created");
                    }
                    // Created meanwhile by a concurrent deploy: start it below.
                    Err(err) if is_status(&err, 409) => {}
                    Err(err) => {
                        return Err(self.api_error(&format!("create container {name}"), err));
                    }
                }
            }
        }
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|err| self.api_error(&format!("start container {name}"), err))?;
        tracing::info!(container = %name, "podman.container_started");
        Ok(())
    }
}

#[async_trait]
impl Driver for PodmanDriver {
    fn name(&self) -> &'static str {
        "podman"
    }

    #[tracing::instrument(name = "podman.deploy", skip_all, fields(tag = %workload.tag))]
    async fn deploy(&self, workload: &Workload) -> Result<(), DriverError> {
        // Check everything that can be checked before creating anything.
        let network = network_name(&workload.tag);
        for spec in &workload.replicas {
            check_service_name(&spec.service)?;
            container_body(workload, &network, spec, &[], self.pids_limit)?;
        }
        if workload.replicas.iter().any(|spec| !spec.gpus.is_empty()) {
            self.engine.check_cdi_support()?;
        }
        let images: BTreeSet<&str> =
            workload.replicas.iter().map(|spec| spec.image.as_str()).collect();
        for image in images {
            let auth = workload
                .replicas
                .iter()
                .find(|spec| spec.image == image)
                .and_then(|spec| spec.credentials.as_ref());
            self.ensure_image(image, auth).await?;
        }
        let network = self.ensure_network(workload).await?;
        for spec in &workload.replicas {
            self.ensure_replica(workload, &network, spec).await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "podman.status", skip_all, fields(tag = %tag))]
    async fn status(&self, tag: &LeaseTag) -> Result<Vec<ReplicaStatus>, DriverError> {
        let containers = self.lease_containers(tag).await?;
        if containers.is_empty() {
            return Err(DriverError::UnknownLease(tag.clone()));
        }
        let mut statuses = Vec::with_capacity(containers.len());
        for summary in containers {
            let Some((service, replica)) = replica_of(summary.labels.as_ref()) else {
                tracing::warn!(id = ?summary.id, "podman.status: container without replica labels, skipped");
                continue;
            };
            let Some(id) = summary.id else { continue };
            // Removed between the listing and now: not part of the lease any more.
            let Some(inspected) = self.inspect(&id).await? else {
                continue;
            };
            statuses.push(replica_status(&service, replica, &inspected));
        }
        statuses.sort_by(|a, b| (&a.service, a.replica).cmp(&(&b.service, b.replica)));
        Ok(statuses)
    }

    #[tracing::instrument(name = "podman.logs", skip_all, fields(tag = %tag, service, replica))]
    async fn logs(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogStream, DriverError> {
        let name = self.existing_replica(tag, service, replica).await?;
        let tail = tail.map_or_else(|| "all".to_owned(), |lines| lines.to_string());
        let options =
            LogsOptionsBuilder::new().stdout(true).stderr(true).follow(follow).tail(&tail).build();
        let endpoint = self.endpoint.clone();
        let stream = self.docker.logs(&name, Some(options)).map(move |item| match item {
            Ok(output) => Ok(output.into_bytes()),
            Err(err) => Err(match err {
                ApiError::HyperLegacyError { err } if err.is_connect() => {
                    DriverError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: format!("read logs of {name}: {}", error_chain(&err)),
                    }
                }
                other => {
                    DriverError::Runtime(format!("read logs of {name}: {}", error_chain(&other)))
                }
            }),
        });
        Ok(Box::pin(stream))
    }

    #[tracing::instrument(name = "podman.exec", skip_all, fields(tag = %tag, service, replica))]
    async fn exec(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        cmd: &[String],
    ) -> Result<ExecOutput, DriverError> {
        if cmd.is_empty() {
            return Err(DriverError::Runtime("exec needs a command to run".to_owned()));
        }
        let name = self.existing_replica(tag, service, replica).await?;
        let action = format!("exec in {name}");
        let (exec_id, began, started) =
            self.start_session(&name, &action, cmd.to_vec(), false, false).await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|err| self.api_error(&action, err))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message)
                    }
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let exit_code = self.exit_code_of(&name, &exec_id, began).await?;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn shell(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        cmd: &[String],
        tty: bool,
        size: (u16, u16),
    ) -> Result<super::ShellIo, DriverError> {
        let name = self.existing_replica(tag, service, replica).await?;
        let action = format!("shell in {name}");
        let cmd = if cmd.is_empty() { vec!["/bin/sh".to_owned()] } else { cmd.to_vec() };
        let (exec_id, began, started) = self.start_session(&name, &action, cmd, true, tty).await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DriverError::Runtime(format!("{action}: the runtime did not attach")));
        };
        if tty && size.0 > 0 && size.1 > 0 {
            // The process may not have its terminal yet; a failed first resize is harmless.
            let _ = self.resize_shell(&exec_id, size.0, size.1).await;
        }
        let output = output.map(move |chunk| {
            chunk.map(|c| c.into_bytes()).map_err(|e| DriverError::Runtime(error_chain(&e)))
        });
        Ok(super::ShellIo {
            session: super::ShellSession { container: name, exec_id, began },
            input,
            output: Box::pin(output),
        })
    }

    async fn resize_shell(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), DriverError> {
        self.docker
            .resize_exec(exec_id, bollard::exec::ResizeExecOptions { height: rows, width: cols })
            .await
            .map_err(|err| self.api_error("resize the shell", err))
    }

    async fn shell_exit(&self, session: &super::ShellSession) -> Result<i64, DriverError> {
        self.exit_code_of(&session.container, &session.exec_id, session.began).await
    }

    #[tracing::instrument(name = "podman.remove", skip_all, fields(tag = %tag))]
    async fn remove(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        self.remove_containers(tag).await?;
        let filters = HashMap::from([("label", vec![format!("{LABEL_LEASE}={tag}")])]);
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|err| self.api_error("list volumes", err))?;
        for volume in volumes.volumes.unwrap_or_default() {
            self.remove_volume(&volume.name).await?;
        }
        self.remove_networks(tag).await
    }

    #[tracing::instrument(name = "podman.stop", skip_all, fields(tag = %tag))]
    async fn stop(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        // Ephemeral volumes are created afresh with their replica; persistent ones stay.
        self.remove_containers(tag).await?;
        self.remove_networks(tag).await
    }

    #[tracing::instrument(name = "podman.list", skip_all)]
    async fn list(&self) -> Result<Vec<LeaseTag>, DriverError> {
        let tags: BTreeSet<LeaseTag> = self
            .containers_labelled(LABEL_LEASE)
            .await?
            .into_iter()
            .filter_map(|summary| summary.labels?.remove(LABEL_LEASE))
            .map(LeaseTag)
            .collect();
        Ok(tags.into_iter().collect())
    }

    fn pull_progress(&self, images: &[&str]) -> Option<PullProgress> {
        let pulls = lock_pulls(&self.pulls);
        images.iter().find_map(|i| pulls.get(*i).map(|t| t.progress(i)))
    }

    #[tracing::instrument(name = "podman.enforce_disk", skip_all, fields(tag = %workload.tag))]
    async fn enforce_disk(&self, workload: &Workload) -> Result<Vec<DiskEviction>, DriverError> {
        let containers =
            self.list_labelled(&format!("{LABEL_LEASE}={}", workload.tag), true).await?;
        let mut evicted = Vec::new();
        for summary in containers {
            let Some((service, replica)) = replica_of(summary.labels.as_ref()) else { continue };
            let Some(spec) =
                workload.replicas.iter().find(|s| s.service == service && s.replica == replica)
            else {
                continue;
            };
            let written = u64::try_from(summary.size_rw.unwrap_or(0)).unwrap_or(0);
            let allowed = spec.disk_bytes.saturating_add(DISK_SLACK_BYTES);
            if written <= allowed {
                continue;
            }
            let Some(id) = summary.id else { continue };
            tracing::warn!(container = %id, written, allowed, "podman.disk_eviction");
            // The writable layer goes with the container (and ephemeral volumes are made
            // afresh): the replica starts again with an empty disk.
            let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => {}
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(self.api_error(&format!("evict container {id}"), err)),
            }
            let network = self.ensure_network(workload).await?;
            self.ensure_replica(workload, &network, spec).await?;
            evicted.push(DiskEviction {
                service: service.clone(),
                replica,
                written_bytes: written,
                allowed_bytes: allowed,
            });
        }
        Ok(evicted)
    }
}

/// Runs a read that returns container states again while it fails only because of a
/// transient state: podman reported one of its own states (`stopped`, `stopping`), which
/// bollard cannot decode, or a container exited while podman was reading its process (podman
/// 4.3 answers the whole list with http 500 `read /proc/PID/cgroup: no such process`); any
/// other outcome is returned at once.
async fn retry_transient_states<T, F, Fut>(mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(ApiError::JsonDataError { message, .. })
                if message.contains("unknown variant") && attempt < TRANSIENT_STATE_RETRIES =>
            {
                attempt += 1;
                tracing::debug!(attempt, message, "podman.transient_state");
                tokio::time::sleep(TRANSIENT_STATE_PAUSE).await;
            }
            Err(ApiError::DockerResponseServerError { status_code: 500, message })
                if message.contains("no such process") && attempt < TRANSIENT_STATE_RETRIES =>
            {
                attempt += 1;
                tracing::debug!(attempt, message, "podman.process_gone");
                tokio::time::sleep(TRANSIENT_STATE_PAUSE).await;
            }
            outcome => return outcome,
        }
    }
}

/// The container body for one replica.
/// Most mount points an image may declare (`VOLUME`): each becomes a tmpfs mount of its own.
pub const MAX_IMAGE_VOLUMES: usize = 32;

/// `image_volumes` are the mount points the image declares: each one the tenant does not
/// mount a leased volume on gets a tmpfs of the replica's own-disk size instead of the
/// runtime's anonymous volume without a limit (its pages count against the memory limit too).
fn container_body(
    workload: &Workload,
    network: &str,
    spec: &ReplicaSpec,
    image_volumes: &[String],
    pids_limit: i64,
) -> Result<ContainerCreateBody, DriverError> {
    let mut exposed_ports = Vec::with_capacity(spec.ports.len());
    let mut port_bindings = HashMap::new();
    for port in &spec.ports {
        let key = format!(
            "{}/{}",
            port.container_port,
            match port.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            }
        );
        exposed_ports.push(key.clone());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                // No address: every interface (0.0.0.0, and [::] on Docker). Not "0.0.0.0"
                // itself: podman 4 then writes DNAT rules matching destination 0.0.0.0/32,
                // which no packet has, and the port never answers.
                host_ip: None,
                host_port: Some(port.host_port.to_string()),
            });
    }
    let memory = memory_bytes(spec)?;
    let mut mounts = Vec::with_capacity(spec.volumes.len());
    for volume in &spec.volumes {
        if !is_safe_name(&volume.name) {
            return Err(DriverError::Runtime(format!(
                "storage volume name `{}` cannot name a volume: use ascii letters, digits, `-`, \
                 `_` and `.`, starting with a letter or digit",
                volume.name
            )));
        }
        let ram = volume.kind == VolumeKind::Ram;
        if !ram && volume.bytes == 0 {
            return Err(DriverError::Runtime(format!(
                "service `{}`: disk volume `{}` of 0 bytes cannot be bounded",
                spec.service, volume.name
            )));
        }
        mounts.push(Mount {
            target: Some(volume.mount.clone()),
            source: (!ram)
                .then(|| volume_name(&workload.tag, &spec.service, spec.replica, &volume.name)),
            typ: Some(if ram { MountType::TMPFS } else { MountType::VOLUME }),
            read_only: Some(volume.read_only),
            tmpfs_options: if ram {
                Some(MountTmpfsOptions {
                    size_bytes: Some(tmpfs_bytes(spec, volume)?),
                    ..Default::default()
                })
            } else {
                None
            },
            ..Default::default()
        });
    }
    if image_volumes.len() > MAX_IMAGE_VOLUMES {
        return Err(DriverError::Runtime(format!(
            "image `{}` declares {} volumes: at most {MAX_IMAGE_VOLUMES} are run",
            spec.image,
            image_volumes.len()
        )));
    }
    for path in image_volumes {
        let covered = |target: &str| target.trim_end_matches('/') == path.trim_end_matches('/');
        if spec.volumes.iter().any(|v| covered(&v.mount)) {
            continue;
        }
        mounts.push(Mount {
            target: Some(path.clone()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(own_disk_bytes(spec)),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let host_config = HostConfig {
        mounts: (!mounts.is_empty()).then_some(mounts),
        nano_cpus: Some(nano_cpus(spec)?),
        memory: Some(memory),
        // No swap beyond the memory limit.
        memory_swap: Some(memory),
        pids_limit: Some(pids_limit),
        port_bindings: Some(port_bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            // 0: no limit.
            maximum_retry_count: Some(0),
        }),
        network_mode: Some(network.to_owned()),
        device_requests: (!spec.gpus.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("cdi".to_owned()),
                device_ids: Some(spec.gpus.clone()),
                // Docker routes device requests by capability; podman ignores this.
                capabilities: Some(vec![vec!["cdi".to_owned()]]),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.clone()),
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        exposed_ports: Some(exposed_ports),
        labels: Some(HashMap::from([
            (LABEL_LEASE.to_owned(), workload.tag.to_string()),
            (LABEL_LEASE_ID.to_owned(), workload.lease_id.clone()),
            (LABEL_SERVICE.to_owned(), spec.service.clone()),
            (LABEL_REPLICA.to_owned(), spec.replica.to_string()),
        ])),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![spec.service.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    })
}

/// `NanoCpus` for the replica's CPU limit. Zero would mean no limit to the runtime: refused.
fn nano_cpus(spec: &ReplicaSpec) -> Result<i64, DriverError> {
    if spec.cpu_millis == 0 {
        return Err(DriverError::Runtime(format!(
            "service `{}` has no cpu limit (0 millicpus): every replica runs with the cpu it leased",
            spec.service
        )));
    }
    spec.cpu_millis.checked_mul(1_000_000).and_then(|nanos| i64::try_from(nanos).ok()).ok_or_else(
        || {
            DriverError::Runtime(format!(
                "service `{}` asks for {} millicpus, more than the runtime can express",
                spec.service, spec.cpu_millis
            ))
        },
    )
}

/// The replica's memory limit in bytes. Zero would mean no limit to the runtime: refused.
fn memory_bytes(spec: &ReplicaSpec) -> Result<i64, DriverError> {
    if spec.memory_bytes == 0 {
        return Err(DriverError::Runtime(format!(
            "service `{}` has no memory limit (0 bytes): every replica runs with the memory it \
             leased",
            spec.service
        )));
    }
    i64::try_from(spec.memory_bytes).map_err(|_| {
        DriverError::Runtime(format!(
            "service `{}` asks for {} bytes of memory, more than the runtime can express",
            spec.service, spec.memory_bytes
        ))
    })
}

/// The size of a `ram` volume's tmpfs. Zero would be a tmpfs without a size limit, and a size
/// the runtime cannot express would be dropped (also no limit): both refused.
fn tmpfs_bytes(spec: &ReplicaSpec, volume: &super::VolumeMount) -> Result<i64, DriverError> {
    i64::try_from(volume.bytes).ok().filter(|bytes| *bytes > 0).ok_or_else(|| {
        DriverError::Runtime(format!(
            "service `{}`: ram volume `{}` of {} bytes cannot be bounded: its size must be 1 to \
             {} bytes",
            spec.service,
            volume.name,
            volume.bytes,
            i64::MAX
        ))
    })
}

/// The replica's own-disk size as a tmpfs size: never 0 (no limit to the kernel), never beyond
/// what the runtime can express.
fn own_disk_bytes(spec: &ReplicaSpec) -> i64 {
    i64::try_from(spec.disk_bytes.max(DISK_SLACK_BYTES)).unwrap_or(i64::MAX)
}

/// The service and replica index a container's labels name.
fn replica_of(labels: Option<&HashMap<String, String>>) -> Option<(String, u32)> {
    let labels = labels?;
    let replica = labels.get(LABEL_REPLICA)?.parse::<u32>().ok()?;
    Some((labels.get(LABEL_SERVICE)?.clone(), replica))
}

/// Service names become container names and DNS aliases.
fn check_service_name(service: &str) -> Result<(), DriverError> {
    if gridlease_sdl::is_valid_service_name(service) {
        Ok(())
    } else {
        Err(DriverError::Runtime(format!(
            "service name `{service}` cannot name a container: it must be {}",
            gridlease_sdl::SERVICE_NAME_RULE
        )))
    }
}

/// `<tag>-<service>-<replica>`.
pub fn container_name(tag: &LeaseTag, service: &str, replica: u32) -> String {
    format!("{tag}-{service}-{replica}")
}

/// `<tag>-net`.
/// The disk volume of one replica's storage volume `volume`.
pub fn volume_name(tag: &LeaseTag, service: &str, replica: u32, volume: &str) -> String {
    format!("{tag}-{service}-{replica}-{volume}")
}

pub fn network_name(tag: &LeaseTag) -> String {
    format!("{tag}-net")
}

/// Whether a container runs (or is about to run again) and should be left alone by a deploy.
fn is_up(state: Option<&ContainerState>) -> bool {
    matches!(
        state.and_then(|state| state.status),
        Some(
            ContainerStateStatusEnum::RUNNING
                | ContainerStateStatusEnum::RESTARTING
                | ContainerStateStatusEnum::PAUSED
        )
    )
}

fn replica_state(state: Option<&ContainerState>) -> ReplicaState {
    let Some(state) = state else {
        return ReplicaState::Exited;
    };
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING) if state.restarting == Some(true) => {
            ReplicaState::Starting
        }
        Some(ContainerStateStatusEnum::RUNNING) => ReplicaState::Running,
        Some(ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::RESTARTING) => {
            ReplicaState::Starting
        }
        // Exited, dead, being removed or stopped, paused (nothing unpauses it), unknown.
        _ => ReplicaState::Exited,
    }
}

fn replica_status(
    service: &str,
    replica: u32,
    inspected: &ContainerInspectResponse,
) -> ReplicaStatus {
    let state = replica_state(inspected.state.as_ref());
    let restarts =
        inspected.restart_count.map_or(0, |count| u32::try_from(count.max(0)).unwrap_or(u32::MAX));
    let exit_code = inspected.state.as_ref().and_then(|container| {
        // Zero times (`0001-01-01T00:00:00Z`) mean "never finished".
        let finished = container
            .finished_at
            .as_deref()
            .is_some_and(|at| !at.is_empty() && !at.starts_with("0001-01-01"));
        let code = container.exit_code?;
        // A restarted container that runs again reports 0 (podman resets it on start),
        // which says nothing about its last run.
        (finished && !(state == ReplicaState::Running && code == 0)).then_some(code)
    });
    ReplicaStatus { service: service.to_owned(), replica, state, restarts, exit_code }
}

fn lock_pulls(
    m: &std::sync::Mutex<HashMap<String, PullTracker>>,
) -> std::sync::MutexGuard<'_, HashMap<String, PullTracker>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The exit code of exec session `exec_id` among `exec_died` events of one container, as
/// (exec id attribute or none, `containerExitCode`) pairs: the event naming the session when the
/// runtime says which (newer podman), else the one code every event agrees on (podman 4 names
/// no session and reports each end twice); none when they disagree.
fn exec_code_among(events: &[(Option<String>, i64)], exec_id: &str) -> Option<i64> {
    if let Some((_, code)) = events.iter().find(|(id, _)| id.as_deref() == Some(exec_id)) {
        return Some(*code);
    }
    let unnamed: BTreeSet<i64> =
        events.iter().filter(|(id, _)| id.is_none()).map(|(_, code)| *code).collect();
    if unnamed.len() == 1 { unnamed.into_iter().next() } else { None }
}

/// The exec session is gone (404, or a 500 saying so while the container is cleaned up).
fn session_gone(err: &ApiError) -> bool {
    match err {
        ApiError::DockerResponseServerError { status_code: 404, .. } => true,
        ApiError::DockerResponseServerError { status_code: 500, message } => {
            message.contains("no such exec session")
        }
        _ => false,
    }
}

fn is_status(err: &ApiError, code: u16) -> bool {
    matches!(err, ApiError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn pull_progress_counts_layers_and_bytes_as_the_runtime_reports_them() {
        use super::PullTracker;
        let mut t = PullTracker::default();
        // Docker's daemon: bytes per layer while downloading.
        t.update(Some("latest"), "Pulling from library/x", None, None);
        t.update(Some("a1"), "Pulling fs layer", None, None);
        t.update(Some("b2"), "Pulling fs layer", None, None);
        t.update(Some("a1"), "Downloading", Some(1 << 20), Some(4 << 20));
        t.update(Some("b2"), "Downloading", Some(0), Some(2 << 20));
        let p = t.progress("x");
        assert_eq!((p.layers, p.layers_done), (2, 0));
        assert_eq!((p.current_bytes, p.total_bytes), (1 << 20, 6 << 20));
        t.update(Some("a1"), "Download complete", None, None);
        t.update(Some("a1"), "Pull complete", None, None);
        let p = t.progress("x");
        assert_eq!((p.layers_done, p.current_bytes), (1, 4 << 20));
        // Podman 4: layers, no bytes.
        let mut t = PullTracker::default();
        t.update(Some("4e76"), "Pulling fs layer", Some(0), Some(0));
        t.update(Some("4e76"), "Download complete", None, None);
        let p = t.progress("y");
        assert_eq!((p.layers, p.layers_done, p.total_bytes), (1, 1, 0));
    }

    #[test]
    fn a_failed_pull_is_named_by_its_kind() {
        use super::pull_failure;
        let cases = [
            // Recorded from podman 4.3 and registries.
            (
                "initializing source docker://nginx:1.25: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host",
                "registry unreachable: ",
            ),
            (
                "pinging container registry 127.0.0.1:1: Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
                "registry unreachable: ",
            ),
            (
                "initializing source docker://127.0.0.1:45917/x/missing:1: reading manifest 1 in 127.0.0.1:45917/x/missing: manifest unknown: manifest unknown",
                "image not found: ",
            ),
            (
                "initializing source docker://ghcr.io/acme/private:1: reading manifest 1 in ghcr.io/acme/private: unauthorized: authentication required",
                "unauthorized: ",
            ),
            (
                "Error response from daemon: pull access denied for acme/secret, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
                "unauthorized: ",
            ),
            ("writing blob: storing blob to file: no space left on device", "pull failed: "),
        ];
        for (said, kind) in cases {
            let words = pull_failure("img", said);
            assert!(words.starts_with(kind), "{said} -> {words}");
            assert!(words.ends_with(said), "the runtime's words are kept: {words}");
        }
    }

    #[test]
    fn an_exec_code_is_read_from_events_only_when_unambiguous() {
        use super::exec_code_among;
        // Podman 4: no session named, each end reported twice.
        assert_eq!(exec_code_among(&[(None, 7), (None, 7)], "a"), Some(7));
        // Two sessions ended with different codes: no guess.
        assert_eq!(exec_code_among(&[(None, 7), (None, 0)], "a"), None);
        assert_eq!(exec_code_among(&[], "a"), None);
        // Newer runtimes name the session.
        let named = [(Some("b".to_owned()), 1), (Some("a".to_owned()), 42), (None, 3)];
        assert_eq!(exec_code_among(&named, "a"), Some(42));
        assert_eq!(exec_code_among(&named, "c"), Some(3));
    }

    use super::*;
    use crate::driver::PortMapping;

    #[tokio::test]
    async fn a_list_that_raced_an_exiting_container_is_read_again_other_errors_are_not() {
        let calls = std::cell::Cell::new(0);
        let gone = || ApiError::DockerResponseServerError {
            status_code: 500,
            message: "read /proc/7362/cgroup: no such process".into(),
        };
        let out = retry_transient_states(|| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(gone()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(out.ok(), Some(3));
        calls.set(0);
        let out: Result<u32, _> = retry_transient_states(|| {
            calls.set(calls.get() + 1);
            async {
                Err(ApiError::DockerResponseServerError {
                    status_code: 500,
                    message: "something else".into(),
                })
            }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.get(), 1, "another 500 is not retried");
    }

    fn spec() -> ReplicaSpec {
        ReplicaSpec {
            service: "web".to_owned(),
            replica: 1,
            image: "localhost/app:1".to_owned(),
            command: vec![],
            args: vec!["serve".to_owned()],
            env: vec!["A=b".to_owned()],
            cpu_millis: 1500,
            memory_bytes: 64 << 20,
            gpus: vec!["nvidia.com/gpu=0".to_owned()],
            ports: vec![PortMapping { container_port: 8080, host_port: 31000, proto: Proto::Tcp }],
            volumes: vec![
                crate::driver::VolumeMount {
                    name: "data".into(),
                    mount: "/var/data".into(),
                    read_only: false,
                    kind: VolumeKind::Persistent,
                    bytes: 10 << 30,
                },
                crate::driver::VolumeMount {
                    name: "shm".into(),
                    mount: "/dev/shm".into(),
                    read_only: false,
                    kind: VolumeKind::Ram,
                    bytes: 64 << 20,
                },
            ],
            disk_bytes: 512 << 20,
            credentials: None,
        }
    }

    fn workload() -> Workload {
        Workload {
            tag: LeaseTag::of("owner/1/1/1/provider"),
            lease_id: "owner/1/1/1/provider".to_owned(),
            replicas: vec![spec()],
        }
    }

    #[test]
    fn container_body_carries_limits_ports_labels_and_gpus() {
        let workload = workload();
        let body =
            container_body(&workload, "net", &workload.replicas[0], &[], 4096).expect("valid spec");
        let host = body.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        assert_eq!(host.pids_limit, Some(4096));
        let bindings = host.port_bindings.expect("bindings");
        let binding = &bindings["8080/tcp"].as_ref().expect("binding")[0];
        assert_eq!(binding.host_ip, None);
        assert_eq!(binding.host_port.as_deref(), Some("31000"));
        let request = &host.device_requests.expect("gpus")[0];
        assert_eq!(request.driver.as_deref(), Some("cdi"));
        assert_eq!(request.device_ids.as_deref(), Some(&["nvidia.com/gpu=0".to_owned()][..]));
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, Some(vec!["serve".to_owned()]));
        let labels = body.labels.expect("labels");
        assert_eq!(labels[LABEL_LEASE], workload.tag.to_string());
        assert_eq!(labels[LABEL_REPLICA], "1");
        let endpoints =
            body.networking_config.and_then(|config| config.endpoints_config).expect("endpoints");
        assert_eq!(endpoints["net"].aliases, Some(vec!["web".to_owned()]));
        let mounts = host.mounts.expect("mounts");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source, Some(format!("{}-web-1-data", workload.tag)));
        assert_eq!(mounts[0].target.as_deref(), Some("/var/data"));
        assert_eq!(mounts[1].typ, Some(MountType::TMPFS));
        assert_eq!(mounts[1].source, None);
        assert_eq!(mounts[1].tmpfs_options.as_ref().and_then(|t| t.size_bytes), Some(64 << 20));
        let mut bad = workload.clone();
        bad.replicas[0].volumes[0].name = "../x".into();
        let e = container_body(&bad, "net", &bad.replicas[0], &[], 4096)
            .expect_err("bad name")
            .to_string();
        assert!(e.contains("storage volume name `../x`"), "{e}");
    }

    #[test]
    fn limits_of_zero_are_refused_never_unlimited() {
        let workload = workload();
        let refused = |edit: &dyn Fn(&mut ReplicaSpec)| {
            let mut w = workload.clone();
            edit(&mut w.replicas[0]);
            container_body(&w, "net", &w.replicas[0], &[], 4096).expect_err("refused").to_string()
        };
        assert!(refused(&|s| s.cpu_millis = 0).contains("no cpu limit"));
        assert!(refused(&|s| s.memory_bytes = 0).contains("no memory limit"));
        assert!(refused(&|s| s.cpu_millis = u64::MAX).contains("more than the runtime"));
        assert!(refused(&|s| s.memory_bytes = u64::MAX).contains("more than the runtime"));
        // A ram volume of 0 bytes or beyond i64::MAX would be a tmpfs without a size limit.
        let e = refused(&|s| s.volumes[1].bytes = 0);
        assert!(e.contains("ram volume `shm` of 0 bytes cannot be bounded"), "{e}");
        let e = refused(&|s| s.volumes[1].bytes = u64::MAX);
        assert!(e.contains("cannot be bounded"), "{e}");
        let e = refused(&|s| s.volumes[1].bytes = i64::MAX as u64 + 1);
        assert!(e.contains("cannot be bounded"), "{e}");
        let e = refused(&|s| s.volumes[0].bytes = 0);
        assert!(e.contains("disk volume `data` of 0 bytes cannot be bounded"), "{e}");
    }

    /// A `VOLUME` the image declares would be an anonymous volume without a size: it becomes
    /// a tmpfs of the replica's own-disk size, unless a leased volume is mounted there.
    #[test]
    fn image_volumes_are_bounded() {
        let workload = workload();
        let declared = ["/cache".to_owned(), "/var/data/".to_owned()];
        let body = container_body(&workload, "net", &workload.replicas[0], &declared, 4096)
            .expect("valid spec");
        let mounts = body.host_config.and_then(|h| h.mounts).expect("mounts");
        let extra: Vec<_> = mounts.iter().skip(2).collect();
        assert_eq!(extra.len(), 1, "{mounts:?}");
        assert_eq!(extra[0].target.as_deref(), Some("/cache"));
        assert_eq!(extra[0].typ, Some(MountType::TMPFS));
        assert_eq!(extra[0].tmpfs_options.as_ref().and_then(|t| t.size_bytes), Some(512 << 20));
        let mut none = workload.clone();
        none.replicas[0].disk_bytes = 0;
        let body = container_body(&none, "net", &none.replicas[0], &declared, 4096).unwrap();
        let mounts = body.host_config.and_then(|h| h.mounts).expect("mounts");
        let size = mounts[2].tmpfs_options.as_ref().and_then(|t| t.size_bytes);
        assert_eq!(size, Some(DISK_SLACK_BYTES as i64), "0 must never be an unbounded tmpfs");
        let many: Vec<String> = (0..=MAX_IMAGE_VOLUMES).map(|i| format!("/v{i}")).collect();
        let e = container_body(&workload, "net", &workload.replicas[0], &many, 4096)
            .expect_err("too many image volumes");
        assert!(e.to_string().contains("declares 33 volumes"), "{e}");
    }

    #[test]
    fn service_names_must_be_container_safe() {
        assert!(check_service_name("web-1").is_ok());
        let long = "a".repeat(64);
        for bad in ["", "-web", "web-", "web/x", "web x", "wéb", "Web", "web_1", "web.1", &long] {
            assert!(check_service_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn podman_before_5_4_is_refused_gpus() {
        let old = Engine::Podman { version: "4.3.1".to_owned() };
        let new = Engine::Podman { version: "5.4.0".to_owned() };
        let docker = Engine::Other { version: "28.2.1".to_owned() };
        assert!(old.check_cdi_support().is_err());
        assert!(new.check_cdi_support().is_ok());
        assert!(docker.check_cdi_support().is_ok());
        assert_eq!(major_minor("5.10.0-rc1"), Some((5, 10)));
        assert_eq!(major_minor("garbage"), None);
    }

    #[test]
    fn states_map_to_replica_states() {
        let state = |status, finished: &str, code| ContainerState {
            status: Some(status),
            finished_at: Some(finished.to_owned()),
            exit_code: Some(code),
            ..Default::default()
        };
        let never = "0001-01-01T00:00:00Z";
        let once = "2026-01-01T00:00:00Z";
        let inspected = |state: ContainerState, restarts| ContainerInspectResponse {
            state: Some(state),
            restart_count: Some(restarts),
            ..Default::default()
        };
        let running = replica_status(
            "web",
            0,
            &inspected(state(ContainerStateStatusEnum::RUNNING, never, 0), 0),
        );
        assert_eq!((running.state, running.exit_code), (ReplicaState::Running, None));
        let restarted = replica_status(
            "web",
            0,
            &inspected(state(ContainerStateStatusEnum::RUNNING, once, 0), 2),
        );
        assert_eq!(
            (restarted.state, restarted.restarts, restarted.exit_code),
            (ReplicaState::Running, 2, None)
        );
        let exited = replica_status(
            "web",
            0,
            &inspected(state(ContainerStateStatusEnum::EXITED, once, 3), 0),
        );
        assert_eq!((exited.state, exited.exit_code), (ReplicaState::Exited, Some(3)));
        let created = replica_status(
            "web",
            0,
            &inspected(state(ContainerStateStatusEnum::CREATED, never, 0), 0),
        );
        assert_eq!((created.state, created.exit_code), (ReplicaState::Starting, None));
    }
}
