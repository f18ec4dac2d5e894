//! `gridlease watch DSEQ...`: the tenant's monitor. It asks each active lease's provider,
//! over mutual TLS, whether the lease's services are ready; a lease that fails
//! `--down-after` checks in a row is reported down on chain (its payment stops), one that
//! answers again is reported up. Reports go out together, one transaction per round. When the
//! chain replaces a lease that stayed down (failover), the new lease shows up here awaiting its
//! manifest, and the watcher sends the one `deploy` kept: the service comes back with no
//! person acting.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use gridlease_provider::api::Phase;
use gridlease_types::msg::{HealthReport, MAX_HEALTH_REPORTS};
use gridlease_types::{Address, BidId, Msg};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::context::{Global, bad, chain_error, failed, submit};
use crate::tenant::{api_error, leases_of, load_cert_pub, manifest_path, provider_api};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub g: Global,
    /// The deployments to watch (the `--from` key's own).
    #[arg(required = true)]
    pub dseqs: Vec<u64>,
    /// Milliseconds between two rounds of checks.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Failed checks in a row before a lease is reported down.
    #[arg(long, default_value_t = 3)]
    pub down_after: u32,
    /// Seconds a new lease may take to become ready before it counts as down.
    #[arg(long, default_value_t = 120)]
    pub start_grace_s: u64,
    /// Seconds one check may take.
    #[arg(long, default_value_t = 3)]
    pub check_timeout_s: u64,
}

/// What the watcher knows of one lease.
struct Tracked {
    first_seen: Instant,
    /// When the manifest was last sent to it.
    manifest_sent: Option<Instant>,
    ready_once: bool,
    fails: u32,
    /// What it last reported on chain (or found there at start): `Some(true)` up.
    reported_up: Option<bool>,
}

/// One check's outcome.
enum Check {
    Ready,
    /// Not ready yet, within its start grace: no verdict.
    Starting,
    Failing(String),
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(watch(args))
}

async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let g = &args.g;
    if args.down_after == 0 || args.interval_ms == 0 {
        return Err(bad("--down-after and --interval-ms must be at least 1"));
    }
    let (client, mut builder) = g.signer().await?;
    let me = builder.key.address();
    let cert = load_cert_pub(g, &me)?.ok_or_else(|| {
        bad("this home has no client certificate for the --from key: deploy from it first")
    })?;
    // Each deployment must name this key as a monitor for its reports to count; one that
    // names nobody gets it named now.
    for &dseq in &args.dseqs {
        let record = client
            .deployment(&me, dseq)
            .await
            .map_err(chain_error)?
            .ok_or_else(|| bad(format!("{me} has no deployment {dseq}")))?;
        if record.monitors.is_empty() {
            submit(&client, &mut builder, vec![Msg::SetMonitors { dseq, monitors: vec![me] }])
                .await?;
            say(g, json!({ "dseq": dseq, "monitors": [me] }), || {
                format!("deployment {dseq} now names {me} as its monitor")
            });
        } else if !record.monitors.contains(&me) {
            eprintln!(
                "warning: deployment {dseq} does not name {me} as a monitor, so its reports will \
                 not count: `gridlease monitors {dseq} {me} ...`"
            );
        }
    }
    let mut tracked: BTreeMap<BidId, Tracked> = BTreeMap::new();
    let interval = Duration::from_millis(args.interval_ms);
    let check_timeout = Duration::from_secs(args.check_timeout_s.max(1));
    let start_grace = Duration::from_secs(args.start_grace_s);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let round = Instant::now();
        let mut reports = Vec::new();
        let mut active = Vec::new();
        for &dseq in &args.dseqs {
            match leases_of(&client, me, dseq).await {
                Ok(ids) => active.extend(ids),
                Err(e) => eprintln!("warning: cannot list the leases of {dseq}: {e:#}"),
            }
        }
        tracked.retain(|id, _| active.contains(id));
        for id in active {
            let t = match tracked.entry(id) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    // What the chain already holds from this key (a restarted watcher).
                    let reported_up = client
                        .lease_record(&id)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|r| r.health)
                        .and_then(|h| h.votes.iter().find(|(m, _, _)| *m == me).map(|v| v.1));
                    say(g, json!({ "lease": id, "event": "watching" }), || {
                        format!("watching lease {id} on {}", id.provider)
                    });
                    e.insert(Tracked {
                        first_seen: Instant::now(),
                        manifest_sent: None,
                        ready_once: false,
                        fails: 0,
                        reported_up,
                    })
                }
            };
            let check = check(g, &client, &cert, &me, &id, t, check_timeout, start_grace).await;
            match check {
                Check::Ready => {
                    t.fails = 0;
                    t.ready_once = true;
                    if t.reported_up == Some(false) {
                        reports.push(HealthReport { lease: id, up: true });
                    }
                }
                Check::Starting => {}
                Check::Failing(why) => {
                    t.fails += 1;
                    if t.fails >= args.down_after && t.reported_up != Some(false) {
                        say(g, json!({ "lease": id, "event": "down", "why": why }), || {
                            format!("lease {id} is down: {why}")
                        });
                        reports.push(HealthReport { lease: id, up: false });
                    }
                }
            }
        }
        for batch in reports.chunks(MAX_HEALTH_REPORTS) {
            let msg = Msg::ReportHealth { reports: batch.to_vec() };
            match submit(&client, &mut builder, vec![msg]).await {
                Ok((height, _)) => {
                    for r in batch {
                        if let Some(t) = tracked.get_mut(&r.lease) {
                            t.reported_up = Some(r.up);
                        }
                        let state = if r.up { "up" } else { "down" };
                        say(
                            g,
                            json!({ "lease": r.lease, "reported": state, "height": height }),
                            || format!("reported lease {} {state} at height {height}", r.lease),
                        );
                    }
                }
                Err(e) => {
                    eprintln!("warning: the health report failed (retried next round): {e:#}");
                    // The sequence may have moved: start from the chain's view next time.
                    if let Ok((_, b)) = g.signer().await {
                        builder = b;
                    }
                }
            }
        }
        let rest = interval.saturating_sub(round.elapsed());
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(rest) => {}
        }
    }
}

/// Asks the lease's provider for its status; sends the kept manifest to a lease that awaits
/// one.
#[allow(clippy::too_many_arguments)]
async fn check(
    g: &Global,
    client: &gridlease_client::Client,
    cert: &gridlease_provider::tls::CertBundle,
    owner: &Address,
    id: &BidId,
    t: &mut Tracked,
    timeout: Duration,
    start_grace: Duration,
) -> Check {
    let status = tokio::time::timeout(timeout, async {
        let api = provider_api(client, id, cert).await?;
        let s = api.lease_status(id).await.map_err(api_error)?;
        anyhow::Ok((api, s))
    })
    .await;
    let (api, s) = match status {
        Err(_) => return Check::Failing(format!("the provider did not answer in {timeout:?}")),
        Ok(Err(e)) => return Check::Failing(format!("{e:#}")),
        Ok(Ok(x)) => x,
    };
    let young = !t.ready_once && t.first_seen.elapsed() < start_grace;
    match s.phase {
        Phase::Ready => Check::Ready,
        Phase::Failed => Check::Failing(format!("the provider reports it failed: {}", s.message)),
        Phase::AwaitingManifest => {
            let resend = t.manifest_sent.is_none_or(|at| at.elapsed() > Duration::from_secs(10));
            if resend {
                match send_manifest(client, &api, owner, id, g).await {
                    Ok(()) => {
                        t.manifest_sent = Some(Instant::now());
                        say(g, json!({ "lease": id, "event": "manifest_sent" }), || {
                            format!("sent the manifest to {} for lease {id}", id.provider)
                        });
                    }
                    Err(e) => return Check::Failing(format!("cannot send the manifest: {e:#}")),
                }
            }
            if young { Check::Starting } else { Check::Failing("awaiting its manifest".into()) }
        }
        Phase::Deploying if young => Check::Starting,
        Phase::Deploying => Check::Failing(format!("not ready: {}", s.message)),
    }
}

/// Sends the manifest `deploy` kept for the deployment, once its hash matches the chain's.
async fn send_manifest(
    client: &gridlease_client::Client,
    api: &gridlease_provider::api_client::ProviderApi,
    owner: &Address,
    id: &BidId,
    g: &Global,
) -> anyhow::Result<()> {
    let path = manifest_path(g, owner, id.order.dseq);
    let manifest = std::fs::read(&path).map_err(|e| {
        failed(format!(
            "no manifest kept at {} ({e}): `gridlease update` writes it",
            path.display()
        ))
    })?;
    let record = client
        .deployment(owner, id.order.dseq)
        .await
        .map_err(chain_error)?
        .ok_or_else(|| failed("the deployment is gone"))?;
    let hash = gridlease_types::hex::encode(&Sha256::digest(&manifest));
    if hash != record.deployment.manifest_hash {
        return Err(failed(format!(
            "{} does not match the deployment's manifest hash on chain",
            path.display()
        )));
    }
    api.send_manifest(id, &manifest).await.map_err(api_error)?;
    Ok(())
}

fn say(g: &Global, value: serde_json::Value, text: impl FnOnce() -> String) {
    if g.json() {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}
