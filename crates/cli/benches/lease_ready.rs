//! Time from a lease's creation to its service answering, on a real node and provider: the
//! tenant sees the lease, sends the manifest over mutual TLS, and polls the published port
//! until it answers HTTP 200. 20 leases per driver; prints p50, p90 and max.
//!
//! `cargo bench -p gridlease-cli --bench lease_ready` (exec driver; add `-- podman` for the
//! podman driver, which needs `.ci/podman-setup`; the image is built from static busybox).

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../../provider/tests/support/podman_host.rs"]
mod podman_host;

use std::time::{Duration, Instant};

use common::*;
use gridlease_provider::api_client::ProviderApi;
use gridlease_types::{Keypair, Msg};

const RUNS: u64 = 20;

fn sdl(driver: &str) -> String {
    let service = if driver == "podman" {
        format!(
            "    image: {}\n    command: [\"/bin/sh\", \"-c\"]\n    args: [\"mkdir -p /www; echo ok > /www/health; exec httpd -f -p 8080 -h /www\"]\n",
            podman_host::TEST_IMAGE
        )
    } else {
        "    image: gridlease/demo-llm\n".to_string()
    };
    format!(
        r#"version: "2.0"
services:
  web:
{service}    expose:
      - port: 8080
        to: [{{ global: true }}]
profiles:
  compute:
    web:
      resources: {{ cpu: {{ units: 0.25 }}, memory: {{ size: 128Mi }}, storage: {{ size: 256Mi }} }}
  placement:
    dc:
      pricing: {{ web: {{ denom: uusdc, amount: 1000 }} }}
deployment:
  web:
    dc: {{ profile: web, count: 1 }}
"#
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let driver = if std::env::args().any(|a| a == "podman") { "podman" } else { "exec" };
    if driver == "podman" {
        podman_host::podman_socket_or_skip()
            .await
            .expect("podman")
            .expect("podman is not set up: run .ci/podman-setup");
        podman_host::ensure_test_image().expect("test image");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Keypair::mnemonic_from_entropy(&[31; 32]).expect("mnemonic");
    let pkey = Keypair::from_mnemonic(&m, "", 0).expect("key");
    let tkey = key(32);
    let (_node, rpc) = start_node(dir.path(), &[pkey.address(), tkey.address()]);
    let phome = dir.path().join("provider");
    setup_provider(&phome, &rpc, driver, &m, |t| {
        enable_exec_with_demo(t).replace("health_interval_ms = 1000", "health_interval_ms = 100")
    });
    let _daemon = start_provider(&phome);
    let mut tenant = Tenant::new(&rpc, tkey).await;
    let text = sdl(driver);
    let mut times = Vec::new();
    for dseq in 1..=RUNS {
        let manifest = tenant.deploy(dseq, &text).await;
        let lease = tenant.wait_lease(dseq, Duration::from_secs(30)).await;
        let started = Instant::now();
        let api = ProviderApi::from_chain(&tenant.client, &lease.provider, Some(&tenant.cert))
            .await
            .expect("api");
        let s = api.send_manifest(&lease, &manifest).await.expect("manifest");
        let port = s.services["web"][0].host_port;
        // Poll every 5 ms: the figure is the time to the first successful request.
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/health") != Some(200) {
            assert!(Instant::now() < deadline, "lease {dseq} never answered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        times.push(took);
        println!("lease {dseq}: healthy {} ms after creation was seen", took.as_millis());
        tenant.ok(vec![Msg::CloseDeployment { dseq }]).await;
    }
    times.sort();
    println!(
        "lease_ready/{driver}: {RUNS} leases, p50 {} ms, p90 {} ms, max {} ms",
        percentile(&times, 0.5).as_millis(),
        percentile(&times, 0.9).as_millis(),
        times.last().map(|d| d.as_millis()).unwrap_or(0)
    );
}
