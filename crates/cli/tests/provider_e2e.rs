//! The provider end to end with the exec driver: a real node, `gridlease provider
//! init|register|run`, a tenant that wins a lease and sends its manifest over mutual TLS, the
//! authorization matrix, a SIGKILLed and restarted daemon that re-adopts the running
//! workload, and the close that removes it.

mod common;

use std::time::Duration;

use common::*;
use gridlease_provider::api::Phase;
use gridlease_provider::api_client::{ApiClientError, ProviderApi};
use gridlease_types::{BidId, Keypair, Msg};

/// A service the exec driver runs: the demo server, on the port it is given.
const SDL: &str = r#"
version: "2.0"
services:
  web:
    image: gridlease/demo-llm
    expose:
      - port: 8080
        to: [{ global: true }]
profiles:
  compute:
    web:
      resources:
        cpu: { units: 0.5 }
        memory: { size: 256Mi }
        storage: { size: 512Mi }
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: "*"
  placement:
    dc:
      attributes: { region: test }
      pricing: { web: { denom: uusdc, amount: 1000 } }
deployment:
  web:
    dc: { profile: web, count: 1 }
"#;

fn mnemonic(seed: u8) -> String {
    Keypair::mnemonic_from_entropy(&[seed; 32]).expect("mnemonic")
}

fn provider_config(text: String) -> String {
    enable_exec_with_demo(text)
        .replace("exec_allowed_programs = []", "exec_allowed_programs = [\"/usr/bin/printenv\"]")
        .replace("region = \"local\"", "region = \"test\"")
        .replace("storage_classes = [\"default\", \"beta2\"]", "storage_classes = [\"default\", \"beta2\"]\nskip_nvml = true\ncpu_millis = 4000\nmemory_bytes = 8589934592\nstorage_bytes = 107374182400\n[[inventory.gpus]]\nvendor = \"nvidia\"\nmodel = \"rtx4090\"\nram = \"24Gi\"\ninterface = \"pcie\"\ncount = 2")
        .replace("withdraw_every_blocks = 600", "withdraw_every_blocks = 5")
}

fn status_of(e: &ApiClientError) -> (u16, String) {
    match e {
        ApiClientError::Refused { status, code, .. } => (*status, code.clone()),
        other => (0, other.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_lease_lifecycle_authorization_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let provider_m = mnemonic(11);
    let provider_key = Keypair::from_mnemonic(&provider_m, "", 0).expect("key");
    let (alice_key, mallory_key) = (key(21), key(22));
    let (_node, rpc) = start_node(
        dir.path(),
        &[provider_key.address(), alice_key.address(), mallory_key.address()],
    );
    let phome = dir.path().join("provider");
    setup_provider(&phome, &rpc, "exec", &provider_m, provider_config);
    let mut daemon = start_provider(&phome);

    let mut alice = Tenant::new(&rpc, alice_key).await;
    let manifest = alice.deploy(1, SDL).await;
    // The auction closes by itself after the bid window; the provider is the only bidder.
    let lease: BidId = alice.wait_lease(1, Duration::from_secs(30)).await;
    assert_eq!(lease.provider, provider_key.address());
    let bids = alice.client.bids(&Default::default()).await.expect("bids");
    let gpu = bids[0].offer[0].gpu.as_ref().expect("the bid names the GPU");
    assert_eq!((gpu.vendor.as_str(), gpu.model.as_str()), ("nvidia", "rtx4090"));

    let api = ProviderApi::from_chain(&alice.client, &lease.provider, Some(&alice.cert))
        .await
        .expect("api");
    // The wrong manifest version is refused before anything runs.
    let e = api.send_manifest(&lease, b"[]").await.expect_err("wrong hash");
    assert_eq!(status_of(&e), (409, "manifest_hash_mismatch".into()), "{e}");
    let status = api.send_manifest(&lease, &manifest).await.expect("manifest accepted");
    let host_port = status.services["web"][0].host_port;
    eventually(Duration::from_secs(30), "the service to be ready", async || {
        let s = api.lease_status(&lease).await.ok()?;
        (s.phase == Phase::Ready).then_some(())
    })
    .await;
    assert_eq!(http_get(host_port, "/health"), Some(200));
    let logs = api.logs(&lease, "web", 0, None).await.expect("logs");
    assert!(logs.contains(&format!("listening on port {host_port}")), "{logs}");
    let out = api
        .shell(&lease, "web", 0, &["/usr/bin/printenv".into(), "PORT".into()])
        .await
        .expect("shell");
    assert_eq!(out.stdout, format!("{host_port}\n"));
    // The exec driver runs only allow-listed programs, in a shell too: no host shell.
    let e = api
        .shell(&lease, "web", 0, &["/bin/sh".into(), "-c".into(), "echo $PORT".into()])
        .await
        .expect_err("a program off the allow-list");
    assert_eq!(status_of(&e), (422, "exec_failed".into()), "{e}");

    // Authorization matrix.
    let pinned = ProviderApi::from_chain(&alice.client, &lease.provider, None).await.expect("api");
    // The public decision endpoint needs no certificate: the provider's bid on deployment 1.
    let decided = pinned.decisions(&alice.address(), 1).await.expect("decisions");
    assert_eq!(decided.provider, provider_key.address());
    assert_eq!(decided.decisions.len(), 1, "{decided:?}");
    assert_eq!(decided.decisions[0].outcome.name(), "bid", "{decided:?}");
    assert!(pinned.decisions(&alice.address(), 999).await.expect("none").decisions.is_empty());
    // It is rate-limited per address: a burst of 20, then 429 with a reason.
    let mut limited = None;
    for _ in 0..40 {
        if let Err(e) = pinned.decisions(&alice.address(), 1).await {
            limited = Some(e);
            break;
        }
    }
    let e = limited.expect("40 quick requests are not all answered");
    assert_eq!(status_of(&e).0, 429, "{e}");
    assert_eq!(status_of(&e).1, "rate_limited", "{e}");
    let e = pinned.lease_status(&lease).await.expect_err("no client certificate");
    assert_eq!(status_of(&e), (401, "no_client_certificate".into()));
    let stranger = gridlease_provider::tls::generate(&alice.address(), &[]).expect("cert");
    let api_unregistered = ProviderApi::from_chain(&alice.client, &lease.provider, Some(&stranger))
        .await
        .expect("api");
    let e = api_unregistered.lease_status(&lease).await.expect_err("unregistered");
    assert_eq!(status_of(&e), (401, "certificate_not_registered".into()));
    let revoked = gridlease_provider::tls::generate(&alice.address(), &[]).expect("cert");
    let msg = alice.cert_msg(&revoked);
    alice.ok(vec![msg]).await;
    let serial: [u8; 32] = sha2_of(revoked.cert_pem.as_bytes());
    alice.ok(vec![Msg::RevokeCertificate { serial }]).await;
    let api_revoked =
        ProviderApi::from_chain(&alice.client, &lease.provider, Some(&revoked)).await.expect("api");
    let e = api_revoked.send_manifest(&lease, &manifest).await.expect_err("revoked");
    assert_eq!(status_of(&e), (401, "certificate_revoked".into()));
    let mallory = Tenant::new(&rpc, mallory_key).await;
    let api_mallory =
        ProviderApi::from_chain(&mallory.client, &lease.provider, Some(&mallory.cert))
            .await
            .expect("api");
    let e = api_mallory.logs(&lease, "web", 0, None).await.expect_err("not the owner");
    assert_eq!(status_of(&e), (403, "not_lease_owner".into()));
    let e = api_mallory
        .shell(&lease, "web", 0, &["/bin/true".into()])
        .await
        .expect_err("not the owner");
    assert_eq!(status_of(&e), (403, "not_lease_owner".into()));

    // `provider status` shows the inventory, what is held and what was decided.
    let (ok, out, err) = gridlease(&[
        "provider",
        "status",
        "--home",
        phome.to_str().expect("utf8"),
        "--output",
        "json",
    ]);
    assert!(ok, "provider status: {err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(s["inventory"]["gpus"].as_array().map(Vec::len), Some(2));
    assert_eq!(s["free"]["gpus"]["rtx4090"], 1, "one GPU is held by the lease");
    assert_eq!(s["leases"][0]["phase"], "ready");
    assert_eq!(s["recent_decisions"][0]["outcome"], "bid");

    // The provider withdraws its earnings every few blocks.
    let paid = eventually(Duration::from_secs(30), "a withdrawal", async || {
        let a = alice.client.account(&provider_key.address()).await.ok()?;
        let uusdc = a.balances.iter().find(|c| c.denom.as_str() == "uusdc")?.amount;
        (uusdc > 1_000_000_000_000).then_some(uusdc)
    })
    .await;
    assert!(paid > 1_000_000_000_000);

    // A SIGKILLed daemon leaves the workload running and the lease open; the restarted one
    // re-adopts it, and catches up with an order opened while it was down.
    daemon.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(http_get(host_port, "/health"), Some(200), "the workload died with the daemon");
    alice.deploy(2, SDL).await;
    let _daemon = start_provider(&phome);
    let second = alice.wait_lease(2, Duration::from_secs(30)).await;
    assert_eq!(second.provider, provider_key.address());
    let s = eventually(Duration::from_secs(30), "the re-adopted lease", async || {
        let s = api.lease_status(&lease).await.ok()?;
        (s.phase == Phase::Ready).then_some(s)
    })
    .await;
    assert_eq!(s.services["web"][0].host_port, host_port);
    let leases = alice.client.leases(&Default::default()).await.expect("leases");
    assert_eq!(leases[0].state, gridlease_client::LeaseState::Active);

    // The tenant closes: the lease ends on chain, the workload goes away, and the closed lease
    // is refused.
    alice.ok(vec![Msg::CloseDeployment { dseq: 1 }]).await;
    eventually(Duration::from_secs(30), "the workload to be removed", async || {
        http_get(host_port, "/health").is_none().then_some(())
    })
    .await;
    let e = api.lease_status(&lease).await.expect_err("closed");
    assert_eq!(status_of(&e), (409, "lease_closed".into()), "{e}");
    let exec_dir = phome.join("exec");
    eventually(Duration::from_secs(10), "the exec records to be gone", async || {
        std::fs::read_dir(&exec_dir).ok()?.next().is_none().then_some(())
    })
    .await;
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
