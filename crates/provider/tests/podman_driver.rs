//! The podman driver against a real `podman system service` (no mocks): deploy a lease that
//! serves HTTP on a published port, read its logs, exec in it, crash it and watch the runtime
//! restart it, check its limits, then remove it and check nothing is left.
//!
//! Needs podman and a static busybox, which `.ci/podman-setup` installs and starts; the socket
//! is `$GRIDLEASE_PODMAN_SOCKET` (default `/run/podman/podman.sock`). The test image is built
//! here from the host's busybox with `podman import`; the checks also run the `podman` command,
//! which must see the same storage as the service (both rootful: run as root). Without podman
//! the tests fail when `CI` is set, and otherwise print a notice and pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use gridlease_provider::driver::podman::{PodmanDriver, container_name, network_name};
use gridlease_provider::driver::{
    Driver, DriverError, LeaseTag, PortMapping, Proto, RegistryAuth, ReplicaSpec, ReplicaState,
    VolumeKind, VolumeMount, Workload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};

#[path = "support/podman_host.rs"]
mod podman_host;
use podman_host::*;
#[path = "support/registry.rs"]
mod registry;

const GREETING: &str = "hello-from-gridlease";
const MEMORY_BYTES: u64 = 64 * 1024 * 1024;
const CPU_MILLIS: u64 = 500;

/// The replica's program: serve `$GREETING` over HTTP on 8080, and exit with 3 once
/// `/tmp/crash` appears (the restart check creates it).
const SERVER_SCRIPT: &str = r#"
echo "web starting: $GREETING"
mkdir -p /www
echo "$GREETING" > /www/index.html
httpd -p 8080 -h /www
while [ ! -e /tmp/crash ]; do sleep 0.2; done
rm -f /tmp/crash
echo "web crashing on purpose" >&2
exit 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_driver_runs_a_lease_end_to_end() -> anyhow::Result<()> {
    let Some(socket) = podman_socket_or_skip().await? else {
        return Ok(());
    };
    ensure_test_image()?;
    let driver = PodmanDriver::connect(&socket).await?;
    assert_eq!(driver.name(), "podman");

    let lease_id = format!("gridlease-test/{}/{}/1/provider", std::process::id(), nanos());
    let tag = LeaseTag::of(&lease_id);
    let _cleanup = Cleanup(tag.clone());
    let host_port = free_port()?;
    let workload = Workload {
        tag: tag.clone(),
        lease_id: lease_id.clone(),
        replicas: vec![ReplicaSpec {
            service: "web".to_owned(),
            replica: 0,
            image: TEST_IMAGE.to_owned(),
            command: vec!["/bin/sh".to_owned(), "-c".to_owned()],
            args: vec![SERVER_SCRIPT.to_owned()],
            env: vec![format!("GREETING={GREETING}")],
            cpu_millis: CPU_MILLIS,
            memory_bytes: MEMORY_BYTES,
            gpus: vec![],
            ports: vec![PortMapping { container_port: 8080, host_port, proto: Proto::Tcp }],
            volumes: vec![],
            disk_bytes: 64 << 20,
            credentials: None,
        }],
    };
    let container = container_name(&tag, "web", 0);

    // Deploy, twice: the second leaves the running container alone.
    driver.deploy(&workload).await.context("first deploy")?;
    let first_id = podman(&["inspect", "--format", "{{.Id}}", &container])?;
    driver.deploy(&workload).await.context("second deploy")?;
    let second_id = podman(&["inspect", "--format", "{{.Id}}", &container])?;
    ensure!(first_id == second_id, "a second deploy replaced the running container");

    // It answers on the published port.
    let body = http_get_until_ok(host_port, Duration::from_secs(30)).await?;
    ensure!(body.contains(GREETING), "unexpected http body: {body:?}");
    let status = driver.status(&tag).await?;
    ensure!(status.len() == 1, "one replica expected: {status:?}");
    ensure!(status[0].service == "web" && status[0].replica == 0, "{status:?}");
    ensure!(status[0].state == ReplicaState::Running, "{status:?}");

    // Labels, limits, restart policy, network alias.
    let inspected = podman(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"gridlease.lease\"}} {{index .Config.Labels \"gridlease.lease_id\"}} \
         {{index .Config.Labels \"gridlease.service\"}} {{index .Config.Labels \"gridlease.replica\"}} \
         {{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
        &container,
    ])?;
    let expected =
        format!("{tag} {lease_id} web 0 {} {MEMORY_BYTES} on-failure", CPU_MILLIS * 1_000_000);
    ensure!(inspected == expected, "inspect: {inspected:?}, expected {expected:?}");
    let published = podman(&["port", &container])?;
    ensure!(
        published.contains(&format!("8080/tcp -> 0.0.0.0:{host_port}")),
        "published ports: {published:?}"
    );
    // The kernel enforces them (cgroup v2 or v1).
    let limits = exec_ok(
        &driver,
        &tag,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
             cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo \"$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\"",
        ],
    )
    .await?;
    let lines: Vec<&str> = limits.lines().collect();
    ensure!(
        lines.first() == Some(&MEMORY_BYTES.to_string().as_str()),
        "memory limit in the cgroup: {limits:?}"
    );
    let cpu: Vec<u64> = lines
        .get(1)
        .context("no cpu limit line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("cpu limit in the cgroup: {limits:?}"))?;
    ensure!(
        cpu.len() == 2 && cpu[0] * 1000 == CPU_MILLIS * cpu[1],
        "cpu quota/period in the cgroup: {limits:?}"
    );
    // Replicas reach each other by service name. (busybox's nslookup has its own resolver;
    // a static glibc busybox crashes resolving names, or with -T, inside wget.)
    let by_name = exec_ok(
        &driver,
        &tag,
        &[
            "sh",
            "-c",
            "ip=$(nslookup -type=a web | sed -n 's/^Address: *//p' | tail -n 1); \
             wget -q -O - \"http://$ip:8080/\"",
        ],
    )
    .await?;
    ensure!(by_name.contains(GREETING), "service name lookup: {by_name:?}");
    // Another lease cannot reach it: each lease has its own isolated network.
    let web_ip = podman(&[
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", network_name(&tag)),
        &container,
    ])?;
    let other_id = format!("gridlease-test/{}/{}/5/provider", std::process::id(), nanos());
    let other = LeaseTag::of(&other_id);
    let _other_cleanup = Cleanup(other.clone());
    let mut neighbour = workload.clone();
    neighbour.tag = other.clone();
    neighbour.lease_id = other_id;
    neighbour.replicas[0].command = vec![];
    neighbour.replicas[0].args = strings(&["sleep", "300"]);
    neighbour.replicas[0].ports = vec![];
    driver.deploy(&neighbour).await.context("deploy a second lease")?;
    let across = driver
        .exec(
            &other,
            "web",
            0,
            &strings(&["timeout", "3", "wget", "-q", "-O", "-", &format!("http://{web_ip}:8080/")]),
        )
        .await?;
    ensure!(
        across.exit_code != 0 && !across.stdout.contains(GREETING),
        "another lease reached {web_ip}:8080: {across:?}"
    );
    driver.remove(&other).await.context("remove the second lease")?;

    // Logs: everything, the tail, and following.
    let logs = collect_logs(&driver, &tag, false, None, Duration::from_secs(10)).await?;
    ensure!(logs.contains(&format!("web starting: {GREETING}")), "logs: {logs:?}");
    let tail = collect_logs(&driver, &tag, false, Some(1), Duration::from_secs(10)).await?;
    ensure!(tail.lines().count() == 1, "tail 1 gave {tail:?}");
    let mut followed = driver.logs(&tag, "web", 0, true, None).await?;
    let first = timeout(Duration::from_secs(10), followed.next())
        .await
        .context("following logs gave nothing in 10 s")?
        .context("the followed log stream ended at once")??;
    ensure!(
        String::from_utf8_lossy(&first).contains("web starting"),
        "first followed chunk: {first:?}"
    );
    drop(followed);

    // Exec: output and exit codes.
    let hi = driver.exec(&tag, "web", 0, &["echo".to_owned(), "hi".to_owned()]).await?;
    ensure!(hi.exit_code == 0 && hi.stdout == "hi\n" && hi.stderr.is_empty(), "{hi:?}");
    let failing =
        driver.exec(&tag, "web", 0, &strings(&["sh", "-c", "echo oops >&2; exit 7"])).await?;
    ensure!(failing.exit_code == 7 && failing.stderr == "oops\n", "{failing:?}");
    match driver.exec(&tag, "nope", 0, &strings(&["true"])).await {
        Err(DriverError::UnknownReplica { service, replica }) => {
            ensure!(service == "nope" && replica == 0)
        }
        other => bail!("exec in an unknown service: {other:?}"),
    }

    // Crash the workload: the runtime restarts it and it answers again.
    let restarts_before = driver.status(&tag).await?[0].restarts;
    // The workload exits as soon as the file appears, and podman drops the container's exec
    // sessions when it exits, often before the exit code of `touch` can be read from the
    // session: the driver reads it from the runtime's events then.
    let crash = driver.exec(&tag, "web", 0, &strings(&["touch", "/tmp/crash"])).await?;
    ensure!(crash.exit_code == 0, "{crash:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = driver.status(&tag).await?;
        if status[0].restarts > restarts_before && status[0].state == ReplicaState::Running {
            break;
        }
        ensure!(Instant::now() < deadline, "not restarted within 60 s: {status:?}");
        sleep(Duration::from_millis(200)).await;
    }
    let body = http_get_until_ok(host_port, Duration::from_secs(30)).await?;
    ensure!(body.contains(GREETING), "after the restart: {body:?}");
    let logs = collect_logs(&driver, &tag, false, None, Duration::from_secs(10)).await?;
    ensure!(logs.contains("web crashing on purpose"), "stderr missing from logs: {logs:?}");

    // A replica stopped behind the driver's back shows as exited, and a deploy starts the
    // same container again.
    podman(&["stop", "--time", "1", &container])?;
    let stopped = driver.status(&tag).await?;
    ensure!(
        stopped[0].state == ReplicaState::Exited && stopped[0].exit_code.is_some(),
        "after podman stop: {stopped:?}"
    );
    driver.deploy(&workload).await.context("deploy over a stopped replica")?;
    let restarted_id = podman(&["inspect", "--format", "{{.Id}}", &container])?;
    ensure!(restarted_id == first_id, "deploy replaced a stopped container instead of starting it");
    let body = http_get_until_ok(host_port, Duration::from_secs(30)).await?;
    ensure!(body.contains(GREETING), "after a deploy over a stopped replica: {body:?}");

    // list() finds the lease.
    ensure!(driver.list().await?.contains(&tag), "list() misses {tag}");

    // Remove: nothing left, and removing again is fine.
    driver.remove(&tag).await?;
    let left =
        podman(&["ps", "-a", "--quiet", "--filter", &format!("label=gridlease.lease={tag}")])?;
    ensure!(left.is_empty(), "containers left after remove: {left}");
    let networks = podman(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        !networks.lines().any(|name| name == network_name(&tag)),
        "network left after remove: {networks}"
    );
    driver.remove(&tag).await.context("second remove")?;
    ensure!(!driver.list().await?.contains(&tag), "list() still has {tag}");
    match driver.status(&tag).await {
        Err(DriverError::UnknownLease(unknown)) => ensure!(unknown == tag),
        other => bail!("status of a removed lease: {other:?}"),
    }
    Ok(())
}

/// Storage volumes: a persistent one keeps its files when the replica's container is created
/// again, an ephemeral one starts empty, a `ram` one is a tmpfs of the volume's size; all of
/// them go with the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_driver_mounts_volumes_by_kind() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(6).await? else {
        return Ok(());
    };
    let volume = |name: &str, mount: &str, kind: VolumeKind, bytes: u64| VolumeMount {
        name: name.to_owned(),
        mount: mount.to_owned(),
        read_only: false,
        kind,
        bytes,
    };
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec {
            volumes: vec![
                volume("data", "/data", VolumeKind::Persistent, 1 << 30),
                volume("scratch", "/scratch", VolumeKind::Ephemeral, 1 << 30),
                volume("shm", "/mem", VolumeKind::Ram, 8 << 20),
            ],
            ..replica("web", &["sleep", "300"])
        }],
    };
    driver.deploy(&workload).await.context("deploy")?;
    exec_ok(&driver, &tag, &["sh", "-c", "echo kept > /data/f && echo gone > /scratch/f"]).await?;
    let mounts = exec_ok(&driver, &tag, &["cat", "/proc/mounts"]).await?;
    let mem = mounts.lines().find(|l| l.split_whitespace().nth(1) == Some("/mem"));
    ensure!(
        mem.is_some_and(|l| l.starts_with("tmpfs") && l.contains("size=8192k")),
        "/mem is not an 8 MiB tmpfs: {mem:?}"
    );
    let label = format!("label=gridlease.lease={tag}");
    let volumes = podman(&["volume", "ls", "--quiet", "--filter", &label])?;
    ensure!(volumes.lines().count() == 2, "two labelled disk volumes expected: {volumes:?}");

    // The container goes (as if someone removed it); the next deploy creates it again.
    podman(&["rm", "--force", "--time", "0", &container_name(&tag, "web", 0)])?;
    driver.deploy(&workload).await.context("deploy again")?;
    let after = exec_ok(&driver, &tag, &["sh", "-c", "cat /data/f; ls /scratch | wc -l"]).await?;
    ensure!(after.split_whitespace().collect::<Vec<_>>() == ["kept", "0"], "after: {after:?}");

    driver.remove(&tag).await.context("remove")?;
    let left = podman(&["volume", "ls", "--quiet", "--filter", &label])?;
    ensure!(left.trim().is_empty(), "volumes left after the lease: {left:?}");
    Ok(())
}

/// Issue 10, item 3: a zero CPU or memory limit used to reach podman as "no limit", a `ram`
/// volume beyond i64::MAX as a tmpfs without a size, and no container had a pids limit. Now
/// each is refused before anything is created, and every container carries all four limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_zero_limits_never_unlimited() -> anyhow::Result<()> {
    let Some(socket) = podman_socket_or_skip().await? else {
        return Ok(());
    };
    ensure_test_image()?;
    ensure!(
        PodmanDriver::connect(&socket).await?.with_pids_limit(0).is_err(),
        "a pids limit of 0 (no limit) was accepted"
    );
    let driver = PodmanDriver::connect(&socket).await?.with_pids_limit(64)?;
    let lease_id = format!("gridlease-test/{}/{}/7/provider", std::process::id(), nanos());
    let tag = LeaseTag::of(&lease_id);
    let _cleanup = Cleanup(tag.clone());
    let workload = |spec: ReplicaSpec| Workload {
        tag: tag.clone(),
        lease_id: lease_id.clone(),
        replicas: vec![spec],
    };
    let ram = |bytes: u64| VolumeMount {
        name: "shm".to_owned(),
        mount: "/mem".to_owned(),
        read_only: false,
        kind: VolumeKind::Ram,
        bytes,
    };
    let attacks = [
        ("cpu 0", ReplicaSpec { cpu_millis: 0, ..replica("web", &["sleep", "300"]) }),
        ("memory 0", ReplicaSpec { memory_bytes: 0, ..replica("web", &["sleep", "300"]) }),
        (
            "ram volume of u64::MAX bytes",
            ReplicaSpec { volumes: vec![ram(u64::MAX)], ..replica("web", &["sleep", "300"]) },
        ),
        (
            "ram volume of 0 bytes",
            ReplicaSpec { volumes: vec![ram(0)], ..replica("web", &["sleep", "300"]) },
        ),
    ];
    for (what, spec) in attacks {
        match driver.deploy(&workload(spec)).await {
            Err(DriverError::Runtime(message)) => eprintln!("{what}: refused: {message}"),
            other => bail!("{what} was not refused: {other:?}"),
        }
        match driver.status(&tag).await {
            Err(DriverError::UnknownLease(_)) => {}
            other => bail!("a refused deploy ({what}) left something: {other:?}"),
        }
    }

    // An honest replica runs with every limit set, as the runtime reports it.
    let honest = ReplicaSpec { volumes: vec![ram(8 << 20)], ..replica("web", &["sleep", "300"]) };
    driver.deploy(&workload(honest)).await.context("deploy the honest replica")?;
    let container = container_name(&tag, "web", 0);
    let limits = podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} \
         {{.HostConfig.PidsLimit}}",
        &container,
    ])?;
    let expected = format!("{} {MEMORY_BYTES} {MEMORY_BYTES} 64", 100 * 1_000_000);
    ensure!(limits == expected, "limits {limits:?}, expected {expected:?}");
    // The kernel enforces the pids limit (cgroup v2 or v1).
    let pids = exec_ok(
        &driver,
        &tag,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ],
    )
    .await?;
    ensure!(pids.trim() == "64", "pids.max in the container: {pids:?}");
    let mounts = exec_ok(&driver, &tag, &["cat", "/proc/mounts"]).await?;
    let mem = mounts.lines().find(|l| l.split_whitespace().nth(1) == Some("/mem"));
    ensure!(mem.is_some_and(|l| l.contains("size=8192k")), "/mem is not bounded: {mem:?}");
    driver.remove(&tag).await?;
    Ok(())
}

/// Issue 10, item 3: disk volumes had no size at all (podman's local volumes grow until the
/// host's disk is full). Each is now a filesystem of the leased size: the replica can write
/// what it leased and gets ENOSPC beyond it; the image files go with the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_disk_volumes_hold_no_more_than_leased() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(11).await? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let driver = driver.with_volume_dir(dir.path())?;
    let volume = |name: &str, kind: VolumeKind| VolumeMount {
        name: name.to_owned(),
        mount: format!("/{name}"),
        read_only: false,
        kind,
        bytes: 8 << 20,
    };
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec {
            volumes: vec![
                volume("data", VolumeKind::Persistent),
                volume("scratch", VolumeKind::Ephemeral),
            ],
            ..replica("web", &["sleep", "300"])
        }],
    };
    driver.deploy(&workload).await.context("deploy")?;
    for name in ["data", "scratch"] {
        // What was leased fits (less a few blocks for the file's own metadata)...
        exec_ok(
            &driver,
            &tag,
            &["sh", "-c", &format!("dd if=/dev/zero of=/{name}/fits bs=64k count=120")],
        )
        .await
        .with_context(|| format!("write 7.5 MiB to the 8 MiB volume {name}"))?;
        // ...and more than that does not: the filesystem is full, not the host.
        let over = driver
            .exec(
                &tag,
                "web",
                0,
                &strings(&["sh", "-c", &format!("dd if=/dev/zero of=/{name}/over bs=1M count=32")]),
            )
            .await?;
        ensure!(over.exit_code != 0, "32 MiB went into the 8 MiB volume {name}: {over:?}");
        ensure!(over.stderr.contains("No space left"), "{name}: not refused for space: {over:?}");
        let size = exec_ok(&driver, &tag, &["sh", "-c", &format!("wc -c < /{name}/over")]).await?;
        let size: u64 = size.trim().parse().context("size of the file written past the end")?;
        ensure!(size < 1 << 20, "{name}: {size} bytes written beyond the lease");
        let listing = exec_ok(&driver, &tag, &["ls", &format!("/{name}")]).await?;
        ensure!(!listing.contains("lost+found"), "{name} is not empty for the tenant: {listing}");
    }
    let images = std::fs::read_dir(dir.path())?.count();
    ensure!(images == 2, "{images} volume images, expected 2");
    driver.remove(&tag).await.context("remove")?;
    let left: Vec<_> = std::fs::read_dir(dir.path())?.collect();
    ensure!(left.is_empty(), "volume images left after the lease: {left:?}");
    Ok(())
}

/// Issue 10, item 3: a replica's own disk (its root filesystem, and what its image declares as
/// `VOLUME`) had no limit. Declared volumes are now bounded tmpfs mounts, and a replica that
/// writes more than its lease's own disk is started again with an empty one, while one that
/// stays within it is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_own_disk_overrun_is_evicted() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(12).await? else {
        return Ok(());
    };
    let image = format!("{TEST_IMAGE}-volume");
    if podman(&["image", "exists", &image]).is_err() {
        let builder = format!("gridlease-test-volume-builder-{}", nanos());
        podman(&["create", "--name", &builder, TEST_IMAGE, "true"])?;
        let committed =
            podman(&["commit", "--quiet", "--change", "VOLUME /cache", &builder, &image]);
        podman(&["rm", "--force", &builder])?;
        committed.context("commit an image declaring VOLUME /cache")?;
    }
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec {
            image: image.clone(),
            disk_bytes: 4 << 20,
            credentials: None,
            ..replica("web", &["sleep", "300"])
        }],
    };
    driver.deploy(&workload).await.context("deploy")?;
    let mounts = exec_ok(&driver, &tag, &["cat", "/proc/mounts"]).await?;
    let cache = mounts.lines().find(|l| l.split_whitespace().nth(1) == Some("/cache"));
    ensure!(
        cache.is_some_and(|l| l.starts_with("tmpfs") && l.contains("size=4096k")),
        "the image's VOLUME /cache is not a 4 MiB tmpfs: {cache:?}"
    );
    // Within the lease: nothing happens.
    exec_ok(&driver, &tag, &["sh", "-c", "dd if=/dev/zero of=/small bs=1M count=2"]).await?;
    let evicted = driver.enforce_disk(&workload).await.context("check within the lease")?;
    ensure!(evicted.is_empty(), "a replica within its lease was evicted: {evicted:?}");

    // Over the lease: the replica starts again, its disk empty.
    exec_ok(&driver, &tag, &["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=16"]).await?;
    let evicted = driver.enforce_disk(&workload).await.context("check over the lease")?;
    ensure!(evicted.len() == 1, "one eviction expected: {evicted:?}");
    ensure!(
        evicted[0].written_bytes >= 16 << 20 && evicted[0].allowed_bytes < 16 << 20,
        "{:?}",
        evicted[0]
    );
    let status = driver.status(&tag).await?;
    ensure!(
        status.len() == 1 && status[0].state != ReplicaState::Exited,
        "the evicted replica is not back: {status:?}"
    );
    let listing = exec_ok(&driver, &tag, &["ls", "/"]).await?;
    ensure!(
        !listing.contains("big") && !listing.contains("small"),
        "the disk was not emptied: {listing}"
    );
    driver.remove(&tag).await.context("remove")?;
    Ok(())
}

/// A lease that goes on (a new manifest version, a provider stopping its workloads for a
/// while) loses its replicas but keeps its persistent volumes; only `remove` deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_driver_stop_keeps_persistent_volumes() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(8).await? else {
        return Ok(());
    };
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec {
            volumes: vec![VolumeMount {
                name: "data".to_owned(),
                mount: "/data".to_owned(),
                read_only: false,
                kind: VolumeKind::Persistent,
                bytes: 1 << 30,
            }],
            ..replica("web", &["sleep", "300"])
        }],
    };
    driver.deploy(&workload).await.context("deploy")?;
    exec_ok(&driver, &tag, &["sh", "-c", "echo kept > /data/f"]).await?;
    driver.stop(&tag).await.context("stop")?;
    match driver.status(&tag).await {
        Err(DriverError::UnknownLease(_)) => {}
        other => bail!("replicas left after stop: {other:?}"),
    }
    driver.deploy(&workload).await.context("deploy after stop")?;
    let after = exec_ok(&driver, &tag, &["cat", "/data/f"]).await?;
    ensure!(after.trim() == "kept", "the persistent volume lost its file: {after:?}");
    driver.remove(&tag).await.context("remove")?;
    let label = format!("label=gridlease.lease={tag}");
    let left = podman(&["volume", "ls", "--quiet", "--filter", &label])?;
    ensure!(left.trim().is_empty(), "volumes left after remove: {left:?}");
    Ok(())
}

/// Podman reports its own states (`stopped`, `stopping`) while a container exits and restarts;
/// reads must keep working through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_driver_reads_a_crash_looping_lease() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(3).await? else {
        return Ok(());
    };
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![replica("crashy", &["sh", "-c", "sleep 0.1; exit 1"])],
    };
    driver.deploy(&workload).await?;
    let mut restarts = 0;
    for _ in 0..100 {
        let status = driver.status(&tag).await.context("status of a crash-looping lease")?;
        ensure!(status.len() == 1, "{status:?}");
        restarts = restarts.max(status[0].restarts);
        ensure!(driver.list().await.context("list")?.contains(&tag), "list() misses {tag}");
        sleep(Duration::from_millis(20)).await;
    }
    ensure!(restarts > 0, "the crashing replica was never restarted");
    driver.remove(&tag).await.context("remove a crash-looping lease")?;
    match driver.status(&tag).await {
        Err(DriverError::UnknownLease(_)) => Ok(()),
        other => bail!("status after remove: {other:?}"),
    }
}

/// GPUs go out as CDI device requests; a podman that would drop them is refused up front.
#[tokio::test]
async fn podman_driver_never_drops_gpus_silently() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(4).await? else {
        return Ok(());
    };
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec {
            gpus: strings(&["nvidia.com/gpu=0"]),
            ..replica("gpu", &["sleep", "300"])
        }],
    };
    let version = podman(&["version", "--format", "{{.Server.Version}}"])?;
    let mut parts = version.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
    let cdi_through_compat = (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (5, 4);
    let outcome = driver.deploy(&workload).await;
    if !cdi_through_compat {
        match outcome {
            Err(DriverError::Runtime(message)) => {
                ensure!(message.contains("upgrade podman"), "{message}")
            }
            other => bail!("podman {version} was asked for gpus: {other:?}"),
        }
        match driver.status(&tag).await {
            Err(DriverError::UnknownLease(_)) => return Ok(()),
            other => bail!("a refused gpu deploy left something: {other:?}"),
        }
    }
    match outcome {
        // A host with that GPU and its CDI spec: the device reached the container.
        Ok(()) => {
            let devices = podman(&[
                "inspect",
                "--format",
                "{{json .HostConfig.Devices}}",
                &container_name(&tag, "gpu", 0),
            ])?;
            eprintln!("gpu replica devices: {devices}");
        }
        // No such CDI device here: podman must have tried, not ignored it.
        Err(DriverError::Runtime(message)) => {
            ensure!(message.to_lowercase().contains("cdi"), "unexpected gpu failure: {message}")
        }
        Err(other) => bail!("gpu deploy: {other}"),
    }
    driver.remove(&tag).await?;
    Ok(())
}

#[tokio::test]
async fn podman_driver_names_a_missing_image_and_creates_nothing() -> anyhow::Result<()> {
    let Some(socket) = podman_socket_or_skip().await? else {
        return Ok(());
    };
    let driver = PodmanDriver::connect(&socket).await?;
    let lease_id = format!("gridlease-test/{}/{}/2/provider", std::process::id(), nanos());
    let tag = LeaseTag::of(&lease_id);
    let _cleanup = Cleanup(tag.clone());
    let image = "localhost/gridlease-test/does-not-exist:1";
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![ReplicaSpec { image: image.to_owned(), ..replica("web", &[]) }],
    };
    match driver.deploy(&workload).await {
        Err(DriverError::Runtime(message)) => {
            ensure!(message.contains(image), "message does not name the image: {message}")
        }
        other => bail!("deploy with a missing image: {other:?}"),
    }
    match driver.status(&tag).await {
        Err(DriverError::UnknownLease(_)) => {}
        other => bail!("a failed deploy left something: {other:?}"),
    }
    let networks = podman(&["network", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        !networks.lines().any(|name| name == network_name(&tag)),
        "a failed deploy left its network"
    );
    Ok(())
}

#[tokio::test]
async fn connecting_to_a_dead_socket_is_unreachable() -> anyhow::Result<()> {
    match PodmanDriver::connect("/nonexistent/gridlease/podman.sock").await {
        Err(DriverError::Unreachable { endpoint, reason }) => {
            ensure!(endpoint == "unix:///nonexistent/gridlease/podman.sock", "{endpoint}");
            ensure!(reason.contains("podman system service"), "{reason}");
        }
        other => bail!("connect to a missing socket: {other:?}"),
    }
    // A socket file nobody listens on any more: connection refused.
    let dir = tempfile::tempdir()?;
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale)?);
    let stale = stale.to_str().context("temp path is not utf-8")?;
    match PodmanDriver::connect(stale).await {
        Err(DriverError::Unreachable { .. }) => Ok(()),
        other => bail!("connect to a stale socket: {other:?}"),
    }
}

/// A command run in a lease always reports its output and its exit code, also when many run at
/// once: 120 commands, four at a time, each exiting with its own code after printing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_never_loses_an_exit_code() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(21).await? else {
        return Ok(());
    };
    let workload =
        Workload { tag: tag.clone(), lease_id, replicas: vec![replica("web", &["sleep", "600"])] };
    driver.deploy(&workload).await?;
    let driver = std::sync::Arc::new(driver);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..4u32 {
        let (driver, tag) = (driver.clone(), tag.clone());
        tasks.spawn(async move {
            for i in 0..30u32 {
                let code = (worker * 30 + i) % 200;
                let script = format!("echo out-{code}; echo err-{code} >&2; exit {code}");
                let out = driver.exec(&tag, "web", 0, &strings(&["sh", "-c", &script])).await?;
                ensure!(out.exit_code == i64::from(code), "exit code of {script:?}: {out:?}");
                ensure!(out.stdout == format!("out-{code}\n"), "{out:?}");
                ensure!(out.stderr == format!("err-{code}\n"), "{out:?}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// A command that makes the workload exit still reports its exit code: podman drops a
/// container's exec sessions when the container stops, often before the code can be read from
/// the session, and the driver then reads it from the runtime's `exec_died` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_that_stops_the_workload_reports_its_exit_code() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(22).await? else {
        return Ok(());
    };
    // The workload exits (and is restarted: on-failure) as soon as /tmp/stop appears.
    let main = "rm -f /tmp/stop; while [ ! -f /tmp/stop ]; do sleep 0.05; done; exit 1";
    let workload = Workload {
        tag: tag.clone(),
        lease_id,
        replicas: vec![replica("web", &["sh", "-c", main])],
    };
    driver.deploy(&workload).await?;
    for round in 0..8u32 {
        // Each round starts once the runtime restarted the workload the last round stopped.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = driver.status(&tag).await?;
            if status[0].state == ReplicaState::Running && status[0].restarts >= round {
                break;
            }
            ensure!(Instant::now() < deadline, "round {round}: not restarted: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A command just before, with another code: its end is not taken for the next one's.
        let before = driver.exec(&tag, "web", 0, &strings(&["sh", "-c", "exit 3"])).await?;
        ensure!(before.exit_code == 3, "round {round}: {before:?}");
        let script = format!("echo round-{round}; touch /tmp/stop; sleep 0.2; exit {}", 40 + round);
        let out = driver.exec(&tag, "web", 0, &strings(&["sh", "-c", &script])).await;
        let out = out.with_context(|| format!("round {round}"))?;
        // The exec ends with its code, or is killed with the container (SIGKILL: 137).
        ensure!(
            out.exit_code == i64::from(40 + round) || out.exit_code == 137,
            "round {round}: {out:?}"
        );
        ensure!(out.stdout == format!("round-{round}\n"), "round {round}: {out:?}");
    }
    Ok(())
}

/// A missing image is pulled from its registry with the manifest's login, its progress
/// readable meanwhile; a failed pull says which failure it was: unauthorized (no login, a
/// wrong one), image not found, registry unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pulls_with_the_manifest_login_and_names_each_pull_failure() -> anyhow::Result<()> {
    let Some((driver, lease_id, tag, _cleanup)) = fresh_lease(23).await? else {
        return Ok(());
    };
    let _registry = registry::start(
        &["gridlease-test/pulled"],
        &["/bin/busybox", "sleep", "600"],
        Some("gl-user:gl-pass"),
    )
    .await?;
    // A tag of its own each run, so the image is never in local storage already.
    let image = format!("{}/gridlease-test/pulled:{}", registry::REGISTRY, nanos());
    let _rmi = RemoveImage(image.clone());
    let login = |password: &str| RegistryAuth {
        host: registry::REGISTRY.to_owned(),
        username: "gl-user".to_owned(),
        password: password.to_owned(),
        email: String::new(),
    };
    let workload = |image: &str, auth: Option<RegistryAuth>| Workload {
        tag: tag.clone(),
        lease_id: lease_id.clone(),
        replicas: vec![ReplicaSpec {
            image: image.to_owned(),
            credentials: auth,
            ..replica("web", &[])
        }],
    };
    let refused = |w: Workload| {
        let driver = &driver;
        async move {
            match driver.deploy(&w).await {
                Err(DriverError::Runtime(why)) => anyhow::Ok(why),
                other => bail!("deploy of {:?} gave {other:?}", w.replicas[0].image),
            }
        }
    };
    let why = refused(workload(&image, None)).await?;
    ensure!(why.starts_with("unauthorized: "), "{why}");
    let why = refused(workload(&image, Some(login("wrong")))).await?;
    ensure!(why.starts_with("unauthorized: "), "{why}");
    let missing = format!("{}/gridlease-test/missing:1", registry::REGISTRY);
    let why = refused(workload(&missing, Some(login("gl-pass")))).await?;
    ensure!(why.starts_with("image not found: "), "{why}");
    let why = refused(workload("127.0.0.1:1/gridlease-test/nowhere:1", None)).await?;
    ensure!(why.starts_with("registry unreachable: "), "{why}");

    // With the login it is pulled, and the pull's bytes can be watched while it runs.
    let driver = std::sync::Arc::new(driver);
    let watcher = {
        let (driver, image) = (driver.clone(), image.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..600 {
                if let Some(p) = driver.pull_progress(&[image.as_str()]) {
                    seen.push(p);
                }
                sleep(Duration::from_millis(10)).await;
            }
            seen
        })
    };
    driver
        .deploy(&workload(&image, Some(login("gl-pass"))))
        .await
        .context("pull with the login")?;
    let status = driver.status(&tag).await?;
    ensure!(status[0].state == ReplicaState::Running, "{status:?}");
    ensure!(
        driver.pull_progress(&[image.as_str()]).is_none(),
        "a finished pull is not in progress"
    );
    let seen = watcher.await?;
    ensure!(!seen.is_empty(), "no progress was readable during the pull");
    let last = seen.last().expect("seen");
    ensure!(last.image == image && last.layers >= 1, "{seen:?}");
    // Podman 4 reports layers (started, complete) but no byte counts; Docker's daemon adds
    // bytes, which the driver passes on (see the driver's unit tests).
    ensure!(
        seen.iter().any(|p| p.layers >= 1 && p.layers_done < p.layers),
        "no pull was seen in progress: {seen:?}"
    );
    Ok(())
}

/// Removes an image when dropped.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", &self.0]);
    }
}

/// Runs a command in replica `web` 0 and returns its stdout, failing unless it exits with 0.
async fn exec_ok(driver: &PodmanDriver, tag: &LeaseTag, cmd: &[&str]) -> anyhow::Result<String> {
    let output = driver.exec(tag, "web", 0, &strings(cmd)).await?;
    ensure!(output.exit_code == 0, "exec {cmd:?}: {output:?}");
    Ok(output.stdout)
}

async fn collect_logs(
    driver: &PodmanDriver,
    tag: &LeaseTag,
    follow: bool,
    tail: Option<usize>,
    limit: Duration,
) -> anyhow::Result<String> {
    let mut stream = driver.logs(tag, "web", 0, follow, tail).await?;
    let mut text = Vec::new();
    timeout(limit, async {
        while let Some(chunk) = stream.next().await {
            text.extend_from_slice(&chunk?);
        }
        Ok::<_, DriverError>(())
    })
    .await
    .context("the log stream did not end")??;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// GETs `/` on 127.0.0.1:`port` until a 200 comes back; returns the body.
async fn http_get_until_ok(port: u16, limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_get(port).await {
            Ok(response)
                if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") =>
            {
                let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
                return Ok(body.to_owned());
            }
            Ok(response) => last = response,
            Err(err) => last = err.to_string(),
        }
        sleep(Duration::from_millis(250)).await;
    }
    bail!("nothing answered on 127.0.0.1:{port} within {limit:?}; last: {last}")
}

async fn http_get(port: u16) -> anyhow::Result<String> {
    timeout(Duration::from_secs(5), async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    })
    .await
    .context("http request timed out")?
}

/// A port free on all interfaces right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0))?;
    Ok(listener.local_addr()?.port())
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

/// Replica 0 of `service` on the test image, running `args`, small limits, nothing else.
fn replica(service: &str, args: &[&str]) -> ReplicaSpec {
    ReplicaSpec {
        service: service.to_owned(),
        replica: 0,
        image: TEST_IMAGE.to_owned(),
        command: vec![],
        args: strings(args),
        env: vec![],
        cpu_millis: 100,
        memory_bytes: MEMORY_BYTES,
        gpus: vec![],
        ports: vec![],
        volumes: vec![],
        disk_bytes: 4 << 20,
        credentials: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Removes whatever a test left behind for its lease, even when the test failed midway.
/// A driver on this host's podman and a fresh lease (`dseq` tells the tests apart) whose
/// containers, networks and volumes go when the guard drops; `None` when podman is absent
/// outside CI.
async fn fresh_lease(
    dseq: u32,
) -> anyhow::Result<Option<(PodmanDriver, String, LeaseTag, Cleanup)>> {
    let Some(socket) = podman_socket_or_skip().await? else {
        return Ok(None);
    };
    ensure_test_image()?;
    let driver = PodmanDriver::connect(&socket).await?;
    let lease_id = format!("gridlease-test/{}/{}/{dseq}/provider", std::process::id(), nanos());
    let tag = LeaseTag::of(&lease_id);
    let cleanup = Cleanup(tag.clone());
    Ok(Some((driver, lease_id, tag, cleanup)))
}

struct Cleanup(LeaseTag);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=gridlease.lease={}", self.0);
        if let Ok(ids) = podman(&["ps", "-a", "--quiet", "--filter", &label]) {
            for id in ids.lines().filter(|id| !id.is_empty()) {
                let _ = podman(&["rm", "--force", "--time", "0", id]);
            }
        }
        let _ = podman(&["network", "rm", "--force", &network_name(&self.0)]);
        if let Ok(names) = podman(&["volume", "ls", "--quiet", "--filter", &label]) {
            for name in names.lines().filter(|name| !name.is_empty()) {
                let _ = podman(&["volume", "rm", "--force", name]);
            }
        }
    }
}
