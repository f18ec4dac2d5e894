//! The provider end to end with the podman driver: an image built here from a static binary,
//! a tenant that wins a lease through a real node and provider, the manifest over mutual TLS,
//! the container answering on its published port, readable logs, a SIGKILLed daemon whose
//! restart re-adopts the running container, and after the close no container and no network
//! left. Needs `.ci/podman-setup` (fails under CI without podman,
//! skips loudly elsewhere).

mod common;

#[path = "../../provider/tests/support/podman_host.rs"]
mod podman_host;

use std::time::Duration;

use common::*;
use gridlease_provider::api::{Phase, ShellFrame, ShellOpen};
use gridlease_provider::api_client::{ApiClientError, ProviderApi};
use gridlease_provider::driver::LeaseTag;
use gridlease_provider::driver::podman::network_name;
use gridlease_types::{Coin, Denom, Keypair, Msg};
use tokio::io::AsyncWriteExt;

fn sdl() -> String {
    format!(
        r#"
version: "2.0"
services:
  web:
    image: {image}
    command: ["/bin/sh", "-c"]
    args: ["echo web starting; mkdir -p /www; echo hello-podman > /www/index.html; exec httpd -f -p 8080 -h /www"]
    expose:
      - port: 8080
        to: [{{ global: true }}]
profiles:
  compute:
    web:
      resources: {{ cpu: {{ units: 0.5 }}, memory: {{ size: 128Mi }}, storage: {{ size: 256Mi }} }}
  placement:
    dc:
      pricing: {{ web: {{ denom: uusdc, amount: 1000 }} }}
deployment:
  web:
    dc: {{ profile: web, count: 1 }}
"#,
        image = podman_host::TEST_IMAGE
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_lease_runs_and_is_removed_on_close() {
    let Some(socket) = podman_host::podman_socket_or_skip().await.expect("podman for CI") else {
        return;
    };
    podman_host::ensure_test_image().expect("test image");
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Keypair::mnemonic_from_entropy(&[41; 32]).expect("mnemonic");
    let pkey = Keypair::from_mnemonic(&m, "", 0).expect("key");
    let tkey = key(42);
    let (_node, rpc) = start_node(dir.path(), &[pkey.address(), tkey.address()]);
    let phome = dir.path().join("provider");
    setup_provider(&phome, &rpc, "podman", &m, |t| {
        t.replace(
            "podman_socket = \"/run/podman/podman.sock\"",
            &format!("podman_socket = \"{socket}\""),
        )
    });
    let mut daemon = start_provider(&phome);

    let mut tenant = Tenant::new(&rpc, tkey).await;
    let manifest = tenant.deploy(1, &sdl()).await;
    let lease = tenant.wait_lease(1, Duration::from_secs(30)).await;
    let tag = LeaseTag::of(&lease.to_string());
    let label = format!("label=gridlease.lease={tag}");
    let api = ProviderApi::from_chain(&tenant.client, &lease.provider, Some(&tenant.cert))
        .await
        .expect("api");
    let status = api.send_manifest(&lease, &manifest).await.expect("manifest accepted");
    let port = status.services["web"][0].host_port;
    eventually(Duration::from_secs(60), "the container to answer", async || {
        (http_get(port, "/index.html") == Some(200)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "the lease to be ready", async || {
        (api.lease_status(&lease).await.ok()?.phase == Phase::Ready).then_some(())
    })
    .await;
    let logs = api.logs(&lease, "web", 0, None).await.expect("logs");
    assert!(logs.contains("web starting"), "{logs}");
    let running = podman_host::podman(&["ps", "--quiet", "--filter", &label]).expect("podman ps");
    assert_eq!(running.lines().count(), 1, "one container for the lease");
    let limits = podman_host::podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
        running.trim(),
    ])
    .expect("inspect");
    assert_eq!(limits, format!("500000000 {}", 128 << 20));

    // An interactive session over the same mutual-TLS channel: a terminal of the size asked,
    // resized on the way, the typed commands' output, and the program's exit code.
    let open = ShellOpen {
        service: "web".into(),
        replica: 0,
        command: vec!["/bin/sh".into()],
        tty: true,
        cols: 100,
        rows: 40,
    };
    let session = api.attach(&lease, &open).await.expect("a session opens");
    let (mut from, mut to) = tokio::io::split(session);
    to.write_all(&ShellFrame::Resize { cols: 120, rows: 50 }.encode()).await.expect("resize");
    let typed = b"/bin/busybox stty size; echo mark-$((40+2)); exit 7\n".to_vec();
    to.write_all(&ShellFrame::Input(typed).encode()).await.expect("type");
    let (code, seen) = session_output(&mut from).await;
    assert_eq!(code, 7, "{seen}");
    assert!(seen.contains("50 120"), "the terminal was resized: {seen}");
    assert!(seen.contains("mark-42"), "{seen}");
    // Without a terminal: plain pipes, the end of input passed on.
    let open = ShellOpen {
        tty: false,
        command: vec!["/bin/busybox".into(), "wc".into(), "-c".into()],
        ..open
    };
    let (mut from, mut to) = tokio::io::split(api.attach(&lease, &open).await.expect("session"));
    to.write_all(&ShellFrame::Input(b"12345".to_vec()).encode()).await.expect("input");
    to.write_all(&ShellFrame::EndOfInput.encode()).await.expect("eof");
    let (code, seen) = session_output(&mut from).await;
    assert_eq!((code, seen.trim()), (0, "5"));
    // A lease holds at most 8 sessions at once; a shell whose client went away ends (its
    // input ends), which frees its slot.
    let shell = ShellOpen { tty: true, command: vec!["/bin/sh".into()], ..open.clone() };
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(api.attach(&lease, &shell).await.expect("a session within the limit"));
    }
    let e = api.attach(&lease, &shell).await.expect_err("a ninth session");
    assert!(
        matches!(&e, ApiClientError::Refused { status: 429, code, .. } if code == "too_many_sessions"),
        "{e}"
    );
    drop(held);
    eventually(Duration::from_secs(20), "the dropped sessions to end", async || {
        api.attach(&lease, &open).await.ok().map(|_| ())
    })
    .await;
    // Another tenant cannot open one.
    let stranger =
        ProviderApi::from_chain(&tenant.client, &lease.provider, None).await.expect("api");
    let e = stranger.attach(&lease, &open).await.expect_err("no certificate");
    assert!(matches!(e, ApiClientError::Refused { status: 401, .. }), "{e}");

    // The daemon dies and comes back: the container keeps serving, the lease stays open, and
    // the new daemon re-adopts the container instead of starting another.
    daemon.kill();
    assert_eq!(http_get(port, "/index.html"), Some(200), "the container died with the daemon");
    let _daemon = start_provider(&phome);
    let s = eventually(Duration::from_secs(30), "the re-adopted lease", async || {
        let s = api.lease_status(&lease).await.ok()?;
        (s.phase == Phase::Ready).then_some(s)
    })
    .await;
    assert_eq!(s.replicas[0].restarts, 0, "{s:?}");
    let after = podman_host::podman(&["ps", "--quiet", "--filter", &label]).expect("podman ps");
    assert_eq!(after, running, "the same container runs after the restart");

    tenant.ok(vec![Msg::CloseDeployment { dseq: 1 }]).await;
    eventually(Duration::from_secs(60), "the container and network to be removed", async || {
        let left = podman_host::podman(&["ps", "-a", "--quiet", "--filter", &label]).ok()?;
        let nets = podman_host::podman(&["network", "ls", "--format", "{{.Name}}"]).ok()?;
        (left.is_empty() && !nets.lines().any(|n| n == network_name(&tag))).then_some(())
    })
    .await;
    assert_eq!(http_get(port, "/index.html"), None);
}

/// A provider on podman with a node and a funded tenant, for the attack tests below.
struct Market {
    _dir: tempfile::TempDir,
    _node: Proc,
    daemon: Proc,
    phome: std::path::PathBuf,
    tenant: Tenant,
}

/// What a session printed until its exit code, and the code.
async fn session_output(from: &mut (impl tokio::io::AsyncRead + Unpin)) -> (i64, String) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ShellFrame::read(from)).await {
            Ok(Ok(Some(ShellFrame::Output(b)))) => seen.extend(b),
            Ok(Ok(Some(ShellFrame::Exit(code)))) => {
                return (code, String::from_utf8_lossy(&seen).into_owned());
            }
            other => panic!("{other:?} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
}

async fn market_on_podman(seed: u8) -> Option<Market> {
    let socket = podman_host::podman_socket_or_skip().await.expect("podman for CI")?;
    podman_host::ensure_test_image().expect("test image");
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Keypair::mnemonic_from_entropy(&[seed; 32]).expect("mnemonic");
    let pkey = Keypair::from_mnemonic(&m, "", 0).expect("key");
    let tkey = key(seed.wrapping_add(1));
    let (node, rpc) = start_node(dir.path(), &[pkey.address(), tkey.address()]);
    let phome = dir.path().join("provider");
    // Host ports of its own: providers of tests running side by side must not race for one.
    let ports = 40_000 + u32::from(seed) * 100;
    setup_provider(&phome, &rpc, "podman", &m, |t| {
        t.replace(
            "podman_socket = \"/run/podman/podman.sock\"",
            &format!("podman_socket = \"{socket}\""),
        )
        .replace("port_range = [31000, 32767]", &format!("port_range = [{ports}, {}]", ports + 99))
    });
    let daemon = start_provider(&phome);
    let tenant = Tenant::new(&rpc, tkey).await;
    Some(Market { _dir: dir, _node: node, daemon, phome, tenant })
}

/// One replica of 0.1 CPU and 64 MiB with one global port: what the attacker leases.
fn small_sdl(storage: &str, params: &str) -> String {
    format!(
        r#"
version: "2.0"
services:
  web:
    image: {image}
    command: ["/bin/sh", "-c"]
    args: ["exec sleep 100000"]
    expose:
      - port: 8080
        to: [{{ global: true }}]
{params}
profiles:
  compute:
    web:
      resources:
        cpu: {{ units: 0.1 }}
        memory: {{ size: 64Mi }}
        storage:
          - size: 64Mi
{storage}
  placement:
    dc:
      pricing: {{ web: {{ denom: uusdc, amount: 1000 }} }}
deployment:
  web:
    dc: {{ profile: web, count: 1 }}
"#,
        image = podman_host::TEST_IMAGE
    )
}

/// The group specs of an SDL and its honest manifest as JSON.
fn specs_and_manifest(sdl_text: &str) -> (Vec<gridlease_types::GroupSpec>, serde_json::Value) {
    let sdl = gridlease_sdl::Sdl::parse("app.yaml", sdl_text).expect("valid sdl");
    let groups = gridlease_client::sdl::group_specs(&sdl).expect("groups");
    let manifest = serde_json::from_slice(&gridlease_client::sdl::manifest_bytes(&sdl))
        .expect("manifest json");
    (groups, manifest)
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    gridlease_provider::manifest::manifest_hash(bytes)
}

/// Removes what a lease left in podman, when created (a failed earlier run of the same test
/// leaves a lease with the same id) and when dropped.
struct LeaseCleanup(LeaseTag);

impl LeaseCleanup {
    fn new(tag: &LeaseTag) -> LeaseCleanup {
        LeaseCleanup::clean(tag);
        LeaseCleanup(tag.clone())
    }

    fn clean(tag: &LeaseTag) {
        let label = format!("label=gridlease.lease={tag}");
        if let Ok(ids) = podman_host::podman(&["ps", "-a", "--quiet", "--filter", &label]) {
            for id in ids.lines().filter(|id| !id.is_empty()) {
                let _ = podman_host::podman(&["rm", "--force", "--time", "0", id]);
            }
        }
        let _ = podman_host::podman(&["network", "rm", "--force", &network_name(tag)]);
        if let Ok(names) = podman_host::podman(&["volume", "ls", "--quiet", "--filter", &label]) {
            for name in names.lines().filter(|name| !name.is_empty()) {
                let _ = podman_host::podman(&["volume", "rm", "--force", name]);
            }
        }
    }
}

impl Drop for LeaseCleanup {
    fn drop(&mut self) {
        LeaseCleanup::clean(&self.0);
    }
}

fn labelled(tag: &LeaseTag) -> String {
    let label = format!("label=gridlease.lease={tag}");
    podman_host::podman(&["ps", "-a", "--quiet", "--filter", &label]).expect("podman ps")
}

/// Issue 10, item 3: the manifest is the tenant's own bytes, hashed on chain; a lease for one
/// replica of 0.1 CPU with one global port used to run whatever the manifest claimed. Each
/// excess is now refused with a 422 naming it, nothing starts, and a manifest that writes
/// zeros (which podman read as "no limit") runs with exactly the leased limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_manifest_exceeding_lease_is_refused() {
    let Some(mut market) = market_on_podman(51).await else {
        return;
    };
    let (groups, honest) = specs_and_manifest(&small_sdl("", ""));
    let web = |m: &mut serde_json::Value| -> serde_json::Value { m[0]["services"][0].clone() };
    let mut attacks: Vec<(&str, serde_json::Value, &str)> = Vec::new();
    let mut thousand = honest.clone();
    thousand[0]["services"][0]["count"] = 1000.into();
    attacks.push(("count 1000", thousand, "asks for 1000 replicas in all, the lease pays for 1"));
    let mut extra = honest.clone();
    let mut miner = web(&mut extra);
    miner["name"] = "miner".into();
    miner["expose"] = serde_json::json!([]);
    extra[0]["services"].as_array_mut().expect("services").push(miner);
    attacks.push(("an extra service", extra, "asks for 2 replicas in all"));
    let mut ports = honest.clone();
    let mut more = ports[0]["services"][0]["expose"][0].clone();
    more["port"] = 9000.into();
    ports[0]["services"][0]["expose"].as_array_mut().expect("expose").push(more);
    attacks.push(("a second global port", ports, "exposes 2 global ports, the lease pays for 1"));
    let mut cpu = honest.clone();
    cpu[0]["services"][0]["resources"]["cpu"]["millis"] = 64_000.into();
    attacks.push(("64 cpus", cpu, "asks for 64000m cpu per replica, the lease pays for 100m"));
    let mut ram = honest.clone();
    ram[0]["services"][0]["resources"]["storage"][0]["attributes"] =
        serde_json::json!([{ "key": "class", "value": "ram" }]);
    ram[0]["services"][0]["resources"]["storage"][0]["bytes"] = u64::MAX.into();
    attacks.push(("a ram volume of u64::MAX bytes", ram, "of storage `default`"));

    let deposit = Coin::new(5_000_000, &Denom::new("uusdc").expect("denom"));
    let first = serde_json::to_vec(&attacks[0].1).expect("json");
    market
        .tenant
        .ok(vec![Msg::CreateDeployment {
            dseq: 1,
            groups: groups.clone(),
            manifest_hash: hash(&first),
            deposit,
        }])
        .await;
    let lease = market.tenant.wait_lease(1, Duration::from_secs(30)).await;
    let tag = LeaseTag::of(&lease.to_string());
    let _cleanup = LeaseCleanup::new(&tag);
    let api =
        ProviderApi::from_chain(&market.tenant.client, &lease.provider, Some(&market.tenant.cert))
            .await
            .expect("api");
    for (i, (what, manifest, reason)) in attacks.iter().enumerate() {
        let bytes = serde_json::to_vec(manifest).expect("json");
        if i > 0 {
            market
                .tenant
                .ok(vec![Msg::UpdateDeployment { dseq: 1, manifest_hash: hash(&bytes) }])
                .await;
        }
        match api.send_manifest(&lease, &bytes).await {
            Err(ApiClientError::Refused { status, code, message }) => {
                assert_eq!((status, code.as_str()), (422, "manifest_exceeds_lease"), "{what}");
                assert!(message.contains(reason), "{what}: {message}");
                eprintln!("{what}: refused: {message}");
            }
            other => panic!("{what} was not refused: {other:?}"),
        }
        assert_eq!(labelled(&tag), "", "{what} started something");
    }

    // Zeros are within the lease, and run with the leased amounts, never without limits.
    let mut zeros = honest.clone();
    zeros[0]["services"][0]["resources"]["cpu"]["millis"] = 0.into();
    zeros[0]["services"][0]["resources"]["memory_bytes"] = 0.into();
    let bytes = serde_json::to_vec(&zeros).expect("json");
    market.tenant.ok(vec![Msg::UpdateDeployment { dseq: 1, manifest_hash: hash(&bytes) }]).await;
    api.send_manifest(&lease, &bytes).await.expect("a manifest within the lease runs");
    let container = labelled(&tag);
    assert_eq!(container.lines().count(), 1, "one container: {container}");
    let limits = podman_host::podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
        container.trim(),
    ])
    .expect("inspect");
    assert_eq!(limits, format!("100000000 {} 4096", 64 << 20));

    market.tenant.ok(vec![Msg::CloseDeployment { dseq: 1 }]).await;
    eventually(Duration::from_secs(60), "the container to be removed", async || {
        labelled(&tag).is_empty().then_some(())
    })
    .await;
    market.daemon.kill();
}

/// Issue 10, item 7: a restarted daemon used to read an empty record or a lost state folder
/// as "no lease" and remove everything it did not know, persistent volumes included. Now the
/// container and its volume (and the file in it) outlive both, because the lease is active
/// on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_corrupt_lease_record_keeps_workload() {
    let Some(mut market) = market_on_podman(61).await else {
        return;
    };
    let sdl = small_sdl(
        "          - name: data\n            size: 128Mi\n            attributes: { persistent: true, class: beta2 }",
        "    params:\n      storage:\n        data: { mount: /data }",
    );
    let manifest = market.tenant.deploy(1, &sdl).await;
    let lease = market.tenant.wait_lease(1, Duration::from_secs(30)).await;
    let tag = LeaseTag::of(&lease.to_string());
    let _cleanup = LeaseCleanup::new(&tag);
    let api =
        ProviderApi::from_chain(&market.tenant.client, &lease.provider, Some(&market.tenant.cert))
            .await
            .expect("api");
    api.send_manifest(&lease, &manifest).await.expect("manifest accepted");
    let container = eventually(Duration::from_secs(60), "the container to run", async || {
        let id = podman_host::podman(&[
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            &format!("label=gridlease.lease={tag}"),
        ])
        .ok()?;
        (!id.is_empty()).then_some(id)
    })
    .await;
    podman_host::podman(&["exec", &container, "sh", "-c", "echo precious > /data/f"])
        .expect("write into the persistent volume");
    let record = market.phome.join("state").join("leases").join(format!("{tag}.json"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&record).expect("the lease record").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the record holds the tenant's env: owner only");

    let survives = |when: &str, log: String| {
        let running = podman_host::podman(&[
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            &format!("label=gridlease.lease={tag}"),
        ])
        .expect("podman ps");
        assert_eq!(running, container, "{when}: the container is gone or replaced; log:\n{log}");
        let file = podman_host::podman(&["exec", &container, "cat", "/data/f"]).expect("read");
        assert_eq!(file, "precious", "{when}: the persistent volume lost its file");
        let label = format!("label=gridlease.lease={tag}");
        let volumes =
            podman_host::podman(&["volume", "ls", "--quiet", "--filter", &label]).expect("ls");
        assert_eq!(volumes.lines().count(), 1, "{when}: volumes {volumes:?}");
    };

    // A record cut to zero bytes (a crash mid-write on a filesystem without the fsync).
    market.daemon.kill();
    std::fs::write(&record, b"").expect("truncate the record");
    market.daemon = start_provider(&market.phome);
    tokio::time::sleep(Duration::from_secs(3)).await;
    survives("after a restart over an empty record", market.daemon.log_tail());

    // The whole state folder gone.
    market.daemon.kill();
    std::fs::remove_dir_all(market.phome.join("state")).expect("delete the state folder");
    market.daemon = start_provider(&market.phome);
    tokio::time::sleep(Duration::from_secs(3)).await;
    survives("after a restart without a state folder", market.daemon.log_tail());

    // A closed lease still goes, volume and all.
    market.tenant.ok(vec![Msg::CloseDeployment { dseq: 1 }]).await;
    let label = format!("label=gridlease.lease={tag}");
    eventually(Duration::from_secs(60), "the lease's container and volume to go", async || {
        let left = podman_host::podman(&["ps", "-a", "--quiet", "--filter", &label]).ok()?;
        let vols = podman_host::podman(&["volume", "ls", "--quiet", "--filter", &label]).ok()?;
        (left.is_empty() && vols.is_empty()).then_some(())
    })
    .await;
    market.daemon.kill();
}
