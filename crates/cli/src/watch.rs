//! `gridlease watch DSEQ...`: the tenant's monitor. It asks each active lease's provider,
//! over mutual TLS, whether the lease's services are ready; a lease that fails
//! `--down-after` checks in a row is reported down on chain (its payment stops), one that
//! answers again is reported up. Reports go out together, one transaction per round. When the
//! chain replaces a lease that stayed down (failover), the new lease shows up here awaiting its
//! manifest, and the watcher sends the one `deploy` kept: the service comes back with no
//! person acting.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
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

/// How the watcher checks: every `interval`, `down_after` failed checks in a row make a lease
/// down, a new lease has `start_grace` to become ready, one check may take `check_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct WatchOpts {
    pub interval: Duration,
    pub down_after: u32,
    pub start_grace: Duration,
    pub check_timeout: Duration,
}

impl Default for WatchOpts {
    fn default() -> Self {
        WatchOpts {
            interval: Duration::from_secs(1),
            down_after: 3,
            start_grace: Duration::from_secs(120),
            check_timeout: Duration::from_secs(3),
        }
    }
}

/// Where the watcher says what it does: standard output (text, or JSON lines), or a log file
/// (the devnet's, whose terminal is the user's).
#[derive(Debug, Clone)]
pub enum Out {
    Stdout { json: bool },
    File(Arc<Mutex<std::fs::File>>),
}

impl Out {
    fn say(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        match self {
            Out::Stdout { json: true } => println!("{value}"),
            Out::Stdout { json: false } => println!("{}", text()),
            Out::File(f) => self.write_line(f, &text()),
        }
    }

    fn warn(&self, text: String) {
        match self {
            Out::Stdout { .. } => eprintln!("warning: {text}"),
            Out::File(f) => self.write_line(f, &format!("warning: {text}")),
        }
    }

    fn write_line(&self, f: &Mutex<std::fs::File>, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = f.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(watch(args))
}

async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    if args.down_after == 0 || args.interval_ms == 0 {
        return Err(bad("--down-after and --interval-ms must be at least 1"));
    }
    let opts = WatchOpts {
        interval: Duration::from_millis(args.interval_ms),
        down_after: args.down_after,
        start_grace: Duration::from_secs(args.start_grace_s),
        check_timeout: Duration::from_secs(args.check_timeout_s.max(1)),
    };
    let out = Out::Stdout { json: args.g.json() };
    let task = start(args.g.clone(), args.dseqs.clone(), opts, out).await?;
    let _ = tokio::signal::ctrl_c().await;
    task.abort();
    Ok(ExitCode::SUCCESS)
}

/// Starts watching `dseqs` (the `--from` key's deployments) in a task of its own: first makes
/// sure each deployment names the key as a monitor (an error here is returned), then checks
/// and reports until the task is aborted. `gridlease watch`, `gridlease gateway --watch` and
/// the devnet run it.
pub async fn start(
    g: Global,
    dseqs: Vec<u64>,
    opts: WatchOpts,
    out: Out,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (client, mut builder) = g.signer().await?;
    let me = builder.key.address();
    let cert = load_cert_pub(&g, &me)?.ok_or_else(|| {
        bad("this home has no client certificate for the --from key: deploy from it first")
    })?;
    // Each deployment must name this key as a monitor for its reports to count; one that
    // names nobody gets it named now.
    for &dseq in &dseqs {
        let record = client
            .deployment(&me, dseq)
            .await
            .map_err(chain_error)?
            .ok_or_else(|| bad(format!("{me} has no deployment {dseq}")))?;
        if record.monitors.is_empty() {
            submit(&client, &mut builder, vec![Msg::SetMonitors { dseq, monitors: vec![me] }])
                .await?;
            out.say(json!({ "dseq": dseq, "monitors": [me] }), || {
                format!("deployment {dseq} now names {me} as its monitor")
            });
        } else if !record.monitors.contains(&me) {
            out.warn(format!(
                "deployment {dseq} does not name {me} as a monitor, so its reports will not \
                 count: `gridlease monitors {dseq} {me} ...`"
            ));
        }
    }
    let watcher = Watcher { g, dseqs, opts, out, client, builder, me, cert };
    Ok(tokio::spawn(watcher.run()))
}

/// A running watcher's state.
struct Watcher {
    g: Global,
    dseqs: Vec<u64>,
    opts: WatchOpts,
    out: Out,
    client: gridlease_client::Client,
    builder: gridlease_client::TxBuilder,
    me: Address,
    cert: gridlease_provider::tls::CertBundle,
}

impl Watcher {
    async fn run(mut self) {
        let mut tracked: BTreeMap<BidId, Tracked> = BTreeMap::new();
        loop {
            let round = Instant::now();
            self.round(&mut tracked).await;
            tokio::time::sleep(self.opts.interval.saturating_sub(round.elapsed())).await;
        }
    }

    /// One round: every active lease checked, the changes reported in as few transactions as
    /// fit.
    async fn round(&mut self, tracked: &mut BTreeMap<BidId, Tracked>) {
        let (g, client, me, out) = (&self.g, &self.client, self.me, &self.out);
        let mut reports = Vec::new();
        let mut active = Vec::new();
        for &dseq in &self.dseqs {
            match leases_of(client, me, dseq).await {
                Ok(ids) => active.extend(ids),
                Err(e) => out.warn(format!("cannot list the leases of {dseq}: {e:#}")),
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
                    out.say(json!({ "lease": id, "event": "watching" }), || {
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
            let check = check(g, out, client, &self.cert, &me, &id, t, &self.opts).await;
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
                    if t.fails >= self.opts.down_after && t.reported_up != Some(false) {
                        out.say(json!({ "lease": id, "event": "down", "why": why }), || {
                            format!("lease {id} is down: {why}")
                        });
                        reports.push(HealthReport { lease: id, up: false });
                    }
                }
            }
        }
        for batch in reports.chunks(MAX_HEALTH_REPORTS) {
            let msg = Msg::ReportHealth { reports: batch.to_vec() };
            match submit(client, &mut self.builder, vec![msg]).await {
                Ok((height, _)) => {
                    for r in batch {
                        if let Some(t) = tracked.get_mut(&r.lease) {
                            t.reported_up = Some(r.up);
                        }
                        let state = if r.up { "up" } else { "down" };
                        out.say(
                            json!({ "lease": r.lease, "reported": state, "height": height }),
                            || format!("reported lease {} {state} at height {height}", r.lease),
                        );
                    }
                }
                Err(e) => {
                    out.warn(format!("the health report failed (retried next round): {e:#}"));
                    // The sequence may have moved: start from the chain's view next time.
                    if let Ok((_, b)) = g.signer().await {
                        self.builder = b;
                    }
                }
            }
        }
    }
}

/// Asks the lease's provider for its status; sends the kept manifest to a lease that awaits
/// one.
#[allow(clippy::too_many_arguments)]
async fn check(
    g: &Global,
    out: &Out,
    client: &gridlease_client::Client,
    cert: &gridlease_provider::tls::CertBundle,
    owner: &Address,
    id: &BidId,
    t: &mut Tracked,
    opts: &WatchOpts,
) -> Check {
    let (timeout, start_grace) = (opts.check_timeout, opts.start_grace);
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
                        out.say(json!({ "lease": id, "event": "manifest_sent" }), || {
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
