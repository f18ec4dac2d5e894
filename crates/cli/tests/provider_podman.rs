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
use gridlease_provider::api_client::ProviderApi;
use gridlease_provider::driver::LeaseTag;
use gridlease_provider::driver::podman::network_name;
use gridlease_types::{Keypair, Msg};

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
    let port = status["services"]["web"][0]["host_port"].as_u64().expect("a published port") as u16;
    eventually(Duration::from_secs(60), "the container to answer", async || {
        (http_get(port, "/index.html") == Some(200)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "the lease to be ready", async || {
        (api.lease_status(&lease).await.ok()?["phase"] == "ready").then_some(())
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

    // The daemon dies and comes back: the container keeps serving, the lease stays open, and
    // the new daemon re-adopts the container instead of starting another.
    daemon.kill();
    assert_eq!(http_get(port, "/index.html"), Some(200), "the container died with the daemon");
    let _daemon = start_provider(&phome);
    let s = eventually(Duration::from_secs(30), "the re-adopted lease", async || {
        let s = api.lease_status(&lease).await.ok()?;
        (s["phase"] == "ready").then_some(s)
    })
    .await;
    assert_eq!(s["replicas"][0]["restarts"], 0, "{s}");
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
