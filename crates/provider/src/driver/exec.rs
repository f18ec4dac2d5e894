//! The `exec` driver, for development: each replica is a local program (the service's
//! command, or the program its image maps to in the config) started with the service's args
//! and env, in a process group of its own, with its output in a log file. `PORT` and
//! `GRIDLEASE_PORT_<container port>` tell it the host ports it must listen on, since a local
//! program cannot be remapped. A storage volume cannot be mounted either: each is a folder of
//! the lease, named to the program by `GRIDLEASE_VOLUME_<NAME>`. No CPU or memory limits and no
//! network isolation: that is what the podman driver is for. A lease holder chooses the
//! program and its arguments, so this driver is a shell on the host for whoever wins a lease:
//! it starts only when the provider enables it for development
//! (`driver.allow_exec_for_development`), and it runs only programs the provider allow-listed
//! (`driver.exec_allowed_programs` and the programs of `driver.exec_images`), for replicas and
//! for commands run inside them alike.
//!
//! Everything lives under one directory, one folder per lease holding, per replica, a
//! `.json` record (spec, pid, process start time, restarts) and a `.log`, so a restarted
//! daemon finds the programs it started and supervises them again.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Mutex;

use super::{
    Driver, DriverError, ExecOutput, LeaseTag, LogStream, ReplicaSpec, ReplicaState, ReplicaStatus,
    Workload,
};

/// How often supervised programs are checked.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

/// What is kept on disk per replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ReplicaRecord {
    spec: ReplicaSpec,
    program: PathBuf,
    pid: Option<u32>,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat` field 22), so a
    /// reused pid is not mistaken for ours.
    started: Option<u64>,
    restarts: u32,
    exit_code: Option<i64>,
    /// Removed or stopped on purpose: not restarted.
    stopped: bool,
}

/// What the provider lets the exec driver do, from `[driver]` in its config.
#[derive(Clone, Debug, Default)]
pub struct ExecSettings {
    /// `allow_exec_for_development`: without it the driver refuses to start.
    pub enabled_for_development: bool,
    /// Program to run for an image name.
    pub images: BTreeMap<String, PathBuf>,
    /// Programs that may run besides those of `images`: absolute paths, or bare names looked
    /// up in the daemon's `PATH` (a manifest must then name the program by that bare name).
    pub allowed_programs: Vec<PathBuf>,
}

/// Local programs as replicas.
#[derive(Debug, Clone)]
pub struct ExecDriver {
    root: PathBuf,
    images: BTreeMap<String, PathBuf>,
    /// Every program this driver may start: the allow-list and the programs of `images`.
    allowed: std::collections::BTreeSet<PathBuf>,
    /// Serializes record updates between the supervisor and the API calls.
    lock: Arc<Mutex<()>>,
}

fn runtime(e: impl std::fmt::Display) -> DriverError {
    DriverError::Runtime(e.to_string())
}

/// The start time of a live process, `None` when there is no such process (or a zombie).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The folder standing in for a replica's volume.
fn volume_dir(lease_dir: &Path, spec: &ReplicaSpec, volume: &str) -> PathBuf {
    lease_dir.join("volumes").join(format!("{}-{}-{volume}", spec.service, spec.replica))
}

/// `GRIDLEASE_VOLUME_<NAME>`: the volume's name in upper case, other than letters and digits
/// as `_`.
fn volume_var(volume: &str) -> String {
    let name: String = volume
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("GRIDLEASE_VOLUME_{name}")
}

/// The environment of a replica: the service's, then the host ports it must listen on and the
/// folders of its volumes.
fn replica_env(spec: &ReplicaSpec, lease_dir: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    if let Some(first) = spec.ports.first() {
        env.push(("PORT".into(), first.host_port.to_string()));
    }
    for p in &spec.ports {
        env.push((format!("GRIDLEASE_PORT_{}", p.container_port), p.host_port.to_string()));
    }
    for v in &spec.volumes {
        let dir = volume_dir(lease_dir, spec, &v.name);
        env.push((volume_var(&v.name), dir.display().to_string()));
    }
    env
}

/// Creates `dir` readable by the owner only (records and logs hold tenants' secrets).
fn private_dir(dir: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(runtime)
}

fn alive(record: &ReplicaRecord) -> bool {
    match (record.pid, record.started) {
        (Some(pid), Some(started)) => process_start(pid) == Some(started),
        _ => false,
    }
}

fn signal_group(pid: u32, signal: &str) {
    // The process group id equals the pid: each replica starts a group of its own.
    let _ = std::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl ExecDriver {
    /// A driver keeping its records under `root`, when `settings` enable it for development.
    /// Starts supervising what earlier runs left running.
    pub fn new(root: &Path, settings: ExecSettings) -> Result<ExecDriver, DriverError> {
        if !settings.enabled_for_development {
            return Err(DriverError::ExecNotEnabled);
        }
        private_dir(root)?;
        let allowed =
            settings.allowed_programs.iter().chain(settings.images.values()).cloned().collect();
        let driver = ExecDriver {
            root: root.to_path_buf(),
            images: settings.images,
            allowed,
            lock: Arc::new(Mutex::new(())),
        };
        let supervisor = driver.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SUPERVISE_EVERY).await;
                supervisor.supervise().await;
            }
        });
        Ok(driver)
    }

    fn lease_dir(&self, tag: &LeaseTag) -> PathBuf {
        self.root.join(tag.as_str())
    }

    fn record_path(&self, tag: &LeaseTag, service: &str, replica: u32) -> PathBuf {
        self.lease_dir(tag).join(format!("{service}-{replica}.json"))
    }

    fn log_path(&self, tag: &LeaseTag, service: &str, replica: u32) -> PathBuf {
        self.lease_dir(tag).join(format!("{service}-{replica}.log"))
    }

    /// Refuses a program the provider did not allow-list. Paths are compared as given (after
    /// `Path`'s normalisation of `.` and repeated slashes): a bare name matches only the same
    /// bare name, never a path ending in it.
    fn allowed(&self, program: &Path) -> Result<(), DriverError> {
        if self.allowed.contains(program) {
            Ok(())
        } else {
            Err(DriverError::ProgramNotAllowed { program: program.display().to_string() })
        }
    }

    /// The program of a replica and its arguments; refused unless allow-listed.
    fn program_for(&self, spec: &ReplicaSpec) -> Result<(PathBuf, Vec<String>), DriverError> {
        let mut args = Vec::new();
        let program = if let Some((first, rest)) = spec.command.split_first() {
            args.extend(rest.iter().cloned());
            PathBuf::from(first)
        } else if let Some(p) = self.images.get(&spec.image) {
            p.clone()
        } else if spec.image.starts_with('/') {
            PathBuf::from(&spec.image)
        } else {
            return Err(DriverError::Runtime(format!(
                "image `{}` has no program in driver.exec_images and no command",
                spec.image
            )));
        };
        self.allowed(&program)?;
        args.extend(spec.args.iter().cloned());
        Ok((program, args))
    }

    fn read_record(path: &Path) -> Option<ReplicaRecord> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes a record durably and privately: it holds the tenant's environment variables.
    fn write_record(path: &Path, record: &ReplicaRecord) -> Result<(), DriverError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(runtime)?;
        crate::durable_file::write_durably(path, &bytes, 0o600).map_err(runtime)
    }

    /// Starts the program of `record`, updating its pid and start time.
    fn spawn(&self, tag: &LeaseTag, record: &mut ReplicaRecord) -> Result<(), DriverError> {
        let spec = &record.spec;
        let (program, args) = self.program_for(spec)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.log_path(tag, &spec.service, spec.replica))
            .map_err(runtime)?;
        let log2 = log.try_clone().map_err(runtime)?;
        for v in &spec.volumes {
            std::fs::create_dir_all(volume_dir(&self.lease_dir(tag), spec, &v.name))
                .map_err(runtime)?;
        }
        let mut cmd = std::process::Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .current_dir(self.lease_dir(tag));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.envs(replica_env(spec, &self.lease_dir(tag)));
        let child = cmd.spawn().map_err(|e| {
            DriverError::Runtime(format!("cannot start {}: {e}", program.display()))
        })?;
        let pid = child.id();
        // The supervisor, not this handle, watches the process; reap it when it exits so it
        // does not linger as a zombie while this daemon runs.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        record.program = program;
        record.pid = Some(pid);
        record.started = process_start(pid);
        Ok(())
    }

    /// Restarts replicas that died (crash or kill), counting restarts.
    async fn supervise(&self) {
        let _guard = self.lock.lock().await;
        let Ok(leases) = std::fs::read_dir(&self.root) else { return };
        for lease in leases.flatten() {
            let tag = LeaseTag(lease.file_name().to_string_lossy().into_owned());
            let Ok(files) = std::fs::read_dir(lease.path()) else { continue };
            for f in files.flatten() {
                let path = f.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let Some(mut record) = Self::read_record(&path) else { continue };
                if record.stopped || alive(&record) {
                    continue;
                }
                if record.pid.is_some() {
                    record.restarts += 1;
                }
                if let Err(e) = self.spawn(&tag, &mut record) {
                    tracing::warn!(lease = %tag, error = %e, "exec.restart failed");
                    record.pid = None;
                    record.started = None;
                }
                let _ = Self::write_record(&path, &record);
            }
        }
    }

    fn records(&self, tag: &LeaseTag) -> Result<Vec<(PathBuf, ReplicaRecord)>, DriverError> {
        let dir = self.lease_dir(tag);
        let files = std::fs::read_dir(&dir).map_err(|_| DriverError::UnknownLease(tag.clone()))?;
        let mut out: Vec<(PathBuf, ReplicaRecord)> = files
            .flatten()
            .map(|f| f.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .filter_map(|p| Self::read_record(&p).map(|r| (p, r)))
            .collect();
        out.sort_by(|a, b| {
            (&a.1.spec.service, a.1.spec.replica).cmp(&(&b.1.spec.service, b.1.spec.replica))
        });
        Ok(out)
    }
}

#[async_trait]
impl Driver for ExecDriver {
    fn name(&self) -> &'static str {
        "exec"
    }

    async fn deploy(&self, workload: &Workload) -> Result<(), DriverError> {
        let _guard = self.lock.lock().await;
        for spec in &workload.replicas {
            // Check the program before anything starts, so a bad manifest starts nothing.
            self.program_for(spec)?;
        }
        private_dir(&self.lease_dir(&workload.tag))?;
        for spec in &workload.replicas {
            let path = self.record_path(&workload.tag, &spec.service, spec.replica);
            let mut record = match Self::read_record(&path) {
                Some(r) if r.spec == *spec && alive(&r) => continue,
                Some(r) => ReplicaRecord { spec: spec.clone(), stopped: false, ..r },
                None => ReplicaRecord {
                    spec: spec.clone(),
                    program: PathBuf::new(),
                    pid: None,
                    started: None,
                    restarts: 0,
                    exit_code: None,
                    stopped: false,
                },
            };
            if let Some(pid) = record.pid.filter(|_| alive(&record)) {
                signal_group(pid, "KILL");
            }
            self.spawn(&workload.tag, &mut record)?;
            Self::write_record(&path, &record)?;
        }
        Ok(())
    }

    async fn status(&self, tag: &LeaseTag) -> Result<Vec<ReplicaStatus>, DriverError> {
        let _guard = self.lock.lock().await;
        Ok(self
            .records(tag)?
            .into_iter()
            .map(|(_, r)| ReplicaStatus {
                service: r.spec.service.clone(),
                replica: r.spec.replica,
                state: if alive(&r) {
                    ReplicaState::Running
                } else if r.stopped {
                    ReplicaState::Exited
                } else {
                    ReplicaState::Starting
                },
                restarts: r.restarts,
                exit_code: r.exit_code,
            })
            .collect())
    }

    async fn logs(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<LogStream, DriverError> {
        if !self.record_path(tag, service, replica).exists() {
            return Err(DriverError::UnknownReplica { service: service.into(), replica });
        }
        let path = self.log_path(tag, service, replica);
        let mut file = tokio::fs::File::open(&path).await.map_err(runtime)?;
        let mut all = Vec::new();
        file.read_to_end(&mut all).await.map_err(runtime)?;
        let start = match tail {
            Some(n) => {
                let mut newlines = 0;
                let mut start = 0;
                for (i, b) in all.iter().enumerate().rev() {
                    if *b == b'\n' && i + 1 != all.len() {
                        newlines += 1;
                        if newlines == n {
                            start = i + 1;
                            break;
                        }
                    }
                }
                if n == 0 { all.len() } else { start }
            }
            None => 0,
        };
        let first = Bytes::copy_from_slice(&all[start..]);
        let offset = all.len() as u64;
        let stream = futures_util::stream::unfold(
            (Some(first), file, offset, follow),
            |(first, mut file, offset, follow)| async move {
                if let Some(b) = first {
                    return Some((Ok(b), (None, file, offset, follow)));
                }
                if !follow {
                    return None;
                }
                loop {
                    let mut buf = Vec::new();
                    if file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
                        return None;
                    }
                    match file.read_to_end(&mut buf).await {
                        Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
                        Ok(n) => {
                            let next = offset + n as u64;
                            return Some((Ok(Bytes::from(buf)), (None, file, next, follow)));
                        }
                        Err(e) => return Some((Err(runtime(e)), (None, file, offset, false))),
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn exec(
        &self,
        tag: &LeaseTag,
        service: &str,
        replica: u32,
        cmd: &[String],
    ) -> Result<ExecOutput, DriverError> {
        let path = self.record_path(tag, service, replica);
        let record = Self::read_record(&path)
            .ok_or_else(|| DriverError::UnknownReplica { service: service.into(), replica })?;
        let (program, args) =
            cmd.split_first().ok_or_else(|| DriverError::Runtime("the command is empty".into()))?;
        self.allowed(Path::new(program))?;
        let mut c = tokio::process::Command::new(program);
        c.args(args).current_dir(self.lease_dir(tag)).kill_on_drop(true);
        c.envs(replica_env(&record.spec, &self.lease_dir(tag)));
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .map_err(|_| DriverError::Runtime("the command ran longer than 60 s".into()))?
            .map_err(|e| DriverError::Runtime(format!("cannot run {program}: {e}")))?;
        Ok(ExecOutput {
            exit_code: i64::from(out.status.code().unwrap_or(-1)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    async fn remove(&self, tag: &LeaseTag) -> Result<(), DriverError> {
        let _guard = self.lock.lock().await;
        let records = match self.records(tag) {
            Ok(r) => r,
            Err(DriverError::UnknownLease(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for (path, mut record) in records {
            record.stopped = true;
            Self::write_record(&path, &record)?;
            if let Some(pid) = record.pid.filter(|_| alive(&record)) {
                signal_group(pid, "TERM");
                for _ in 0..20 {
                    if !alive(&record) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if alive(&record) {
                    signal_group(pid, "KILL");
                }
            }
        }
        std::fs::remove_dir_all(self.lease_dir(tag)).map_err(runtime)
    }

    async fn list(&self) -> Result<Vec<LeaseTag>, DriverError> {
        let entries = std::fs::read_dir(&self.root).map_err(runtime)?;
        let mut tags: Vec<LeaseTag> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| LeaseTag(e.file_name().to_string_lossy().into_owned()))
            .collect();
        tags.sort();
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::driver::{PortMapping, Proto};

    fn spec(service: &str, command: Vec<&str>) -> ReplicaSpec {
        ReplicaSpec {
            service: service.into(),
            replica: 0,
            image: "unused".into(),
            command: command.into_iter().map(String::from).collect(),
            args: vec![],
            env: vec!["GREETING=hello".into()],
            cpu_millis: 100,
            memory_bytes: 1 << 20,
            gpus: vec![],
            ports: vec![PortMapping { container_port: 80, host_port: 31999, proto: Proto::Tcp }],
            volumes: vec![crate::driver::VolumeMount {
                name: "model-cache".into(),
                mount: "/cache".into(),
                read_only: false,
                kind: crate::driver::VolumeKind::Persistent,
                bytes: 1 << 30,
            }],
            disk_bytes: 1 << 20,
            credentials: None,
        }
    }

    async fn wait_for(mut f: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..100 {
            if f().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_restarts_logs_and_removes_local_programs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = ExecDriver::new(dir.path(), enabled(&["/bin/sh"])).expect("driver");
        let tag = LeaseTag::of("lease-1");
        let script = "echo $GREETING on $PORT; echo run >> $GRIDLEASE_VOLUME_MODEL_CACHE/runs; \
                      sleep 0.3; exit 3";
        let w = Workload {
            tag: tag.clone(),
            lease_id: "lease-1".into(),
            replicas: vec![spec("web", vec!["/bin/sh", "-c", script])],
        };
        d.deploy(&w).await.expect("deploy");
        assert_eq!(d.list().await.expect("list"), vec![tag.clone()]);
        // It exits with 3 after 0.3 s; the supervisor starts it again.
        let restarted =
            wait_for(async || d.status(&tag).await.map(|s| s[0].restarts >= 2).unwrap_or(false))
                .await;
        assert!(restarted, "the crashed program was not restarted");
        let mut logs = d.logs(&tag, "web", 0, false, Some(1)).await.expect("logs");
        let first = logs.next().await.expect("some log").expect("bytes");
        assert_eq!(String::from_utf8_lossy(&first), "hello on 31999\n");
        let out =
            d.exec(&tag, "web", 0, &["/bin/sh".into(), "-c".into(), "echo $GREETING".into()]).await;
        assert_eq!(out.map(|o| (o.exit_code, o.stdout)).ok(), Some((0, "hello\n".to_string())));
        // The volume's folder outlives each run of the program.
        let runs = dir.path().join(tag.as_str()).join("volumes/web-0-model-cache/runs");
        let count = std::fs::read_to_string(&runs).expect("volume folder").lines().count();
        assert!(count >= 2, "{count} runs recorded in the volume");
        // The record holds the service's environment, the log what it printed: owner only.
        use std::os::unix::fs::PermissionsExt;
        for name in ["web-0.json", "web-0.log"] {
            let meta = std::fs::metadata(dir.path().join(tag.as_str()).join(name)).expect("file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
        d.remove(&tag).await.expect("remove");
        assert!(!runs.exists(), "the volume is removed with the lease");
        assert!(d.list().await.expect("list").is_empty());
        assert!(matches!(d.status(&tag).await, Err(DriverError::UnknownLease(_))));
        d.remove(&tag).await.expect("removing twice is fine");
    }

    /// Enabled for development, running only `programs`.
    fn enabled(programs: &[&str]) -> ExecSettings {
        ExecSettings {
            enabled_for_development: true,
            images: BTreeMap::new(),
            allowed_programs: programs.iter().map(PathBuf::from).collect(),
        }
    }

    #[tokio::test]
    async fn attack_exec_driver_off_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("exec");
        let settings =
            ExecSettings { allowed_programs: vec!["/bin/sh".into()], ..ExecSettings::default() };
        let refused = ExecDriver::new(&root, settings).expect_err("off unless enabled");
        assert!(matches!(refused, DriverError::ExecNotEnabled));
        let message = refused.to_string();
        assert!(message.contains("allow_exec_for_development = true"), "{message}");
        assert!(!root.exists(), "a refused driver creates nothing");
        assert!(ExecDriver::new(&root, enabled(&[])).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attack_exec_program_not_allow_listed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = enabled(&["/bin/sleep", "sh"]);
        settings.images.insert("demo".into(), PathBuf::from("/bin/sleep"));
        let d = ExecDriver::new(dir.path(), settings).expect("driver");
        let marker = dir.path().join("pwned");
        let attack = format!("touch {}", marker.display());
        let tag = LeaseTag::of("lease-attack");
        let allowed =
            ReplicaSpec { image: "demo".into(), args: vec!["30".into()], ..spec("ok", vec![]) };
        let by_image = ReplicaSpec { image: "/bin/sh".into(), ..spec("img", vec![]) };
        let mut in_path = spec("path", vec!["/tmp/sh", "-c", &attack]);
        in_path.replica = 1;
        // Any program off the list is refused before any replica of the workload starts:
        // a command, an absolute image path, a path ending in an allowed bare name.
        for bad in [spec("sh", vec!["/bin/sh", "-c", &attack]), by_image, in_path] {
            let w = Workload {
                tag: tag.clone(),
                lease_id: "lease-attack".into(),
                replicas: vec![allowed.clone(), bad],
            };
            let e = d.deploy(&w).await.expect_err("not allow-listed");
            assert!(matches!(e, DriverError::ProgramNotAllowed { .. }), "{e}");
            assert!(e.to_string().contains("exec_allowed_programs"), "{e}");
            assert!(d.list().await.expect("list").is_empty(), "nothing of the workload exists");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!marker.exists(), "a refused program ran");

        // Allowed programs run; a command inside a replica obeys the same list.
        let w =
            Workload { tag: tag.clone(), lease_id: "lease-attack".into(), replicas: vec![allowed] };
        d.deploy(&w).await.expect("allow-listed image program");
        let e = d
            .exec(&tag, "ok", 0, &["/bin/sh".into(), "-c".into(), attack.clone()])
            .await
            .expect_err("shell refused");
        assert!(matches!(e, DriverError::ProgramNotAllowed { .. }), "{e}");
        let out = d.exec(&tag, "ok", 0, &["sh".into(), "-c".into(), "echo $GREETING".into()]).await;
        assert_eq!(out.map(|o| o.stdout).ok(), Some("hello\n".to_string()));
        assert!(!marker.exists(), "a refused program ran");
        d.remove(&tag).await.expect("remove");
    }

    #[tokio::test]
    async fn unknown_images_start_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = ExecDriver::new(dir.path(), enabled(&[])).expect("driver");
        let w = Workload {
            tag: LeaseTag::of("x"),
            lease_id: "x".into(),
            replicas: vec![spec("web", vec![])],
        };
        let e = d.deploy(&w).await.expect_err("no program").to_string();
        assert!(e.contains("has no program"), "{e}");
    }
}
