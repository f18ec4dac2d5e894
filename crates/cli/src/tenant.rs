//! The tenant's commands: `deploy` (SDL to running services, with the auction shown live),
//! `status`, `logs`, `close`, `deposit`, `update`, `bids`, `leases`, `providers`, `balance`,
//! `send`. Every one prints JSON with `--output json`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use gridlease_client::rpc::EscrowAccount;
use gridlease_client::{
    Bid, BlockEvents, Client, Event, ListQuery, StateName, TxBuilder, events::EventStream,
};
use gridlease_provider::api::{LeaseStatus, Phase};
use gridlease_provider::api_client::{ApiClientError, ProviderApi};
use gridlease_provider::tls::{self, CertBundle};
use gridlease_types::{
    Address, BidId, Coin, DecAmount, Denom, DeploymentId, GroupSpec, LeaseId, Msg, OrderId,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::context::{
    CliError, Global, bad, balance_of, chain_error, failed, parse_coin, reword, submit,
};
use crate::keys::{SecretKind, create_private_dir, open_sealed_text, seal_text};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Deploy an SDL file: create the deployment, show bids as they arrive, send the manifest
    /// to the winner and wait until the services answer.
    Deploy {
        #[command(flatten)]
        g: Global,
        /// The SDL file.
        file: PathBuf,
        /// Escrow deposit (default: the chain's minimum for the price's denomination).
        #[arg(long)]
        deposit: Option<String>,
        /// Pick the winning bid yourself instead of waiting for the auction to close.
        #[arg(long)]
        interactive: bool,
        /// Deployment sequence number (default: the current block height).
        #[arg(long)]
        dseq: Option<u64>,
        /// How long to wait for the services to answer, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Warn when the escrow has less than this many hours left at its burn rate.
        #[arg(long, default_value_t = 1.0)]
        warn_hours: f64,
        /// Keep the deployment (and pay its leases) when the services do not start; by
        /// default a failed rollout closes it and the escrow comes back.
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// A deployment: state, escrow, leases and their services.
    Status {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        /// Warn when the escrow has less than this many hours left at its burn rate.
        #[arg(long, default_value_t = 1.0)]
        warn_hours: f64,
    },
    /// Logs of a deployment's service.
    Logs {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        #[command(flatten)]
        at: Replica,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// An interactive shell in a replica (a terminal over the provider's mutual-TLS channel:
    /// resize, Ctrl-C, the program's exit code); `-- CMD...` runs another program.
    Shell {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        #[command(flatten)]
        at: Replica,
        /// The program and its arguments (default: /bin/sh).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Close a deployment: its leases end and the rest of the escrow comes back.
    Close {
        #[command(flatten)]
        g: Global,
        dseq: u64,
    },
    /// Add funds to a deployment's escrow.
    Deposit {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        amount: String,
    },
    /// Name the accounts whose health reports decide whether a deployment's leases are up
    /// (at most 8; a lease that a majority of them report down stops paying, and is replaced
    /// on another provider when it stays down). No address: show them. `--none`: name nobody.
    Monitors {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        monitors: Vec<String>,
        #[arg(long, conflicts_with = "monitors")]
        none: bool,
    },
    /// Update a deployment to a new version of its SDL and send the new manifest.
    Update {
        #[command(flatten)]
        g: Global,
        dseq: u64,
        file: PathBuf,
    },
    /// Bids on your deployments (or one of them).
    Bids {
        #[command(flatten)]
        g: Global,
        #[arg(long)]
        dseq: Option<u64>,
    },
    /// Your leases.
    Leases {
        #[command(flatten)]
        g: Global,
    },
    /// Providers with their GPUs, free resources and prices.
    Providers {
        #[command(flatten)]
        g: Global,
    },
    /// Balances of an address (default: the --from key).
    Balance {
        #[command(flatten)]
        g: Global,
        address: Option<String>,
    },
    /// Send funds.
    Send {
        #[command(flatten)]
        g: Global,
        to: String,
        amount: String,
    },
}

/// Which replica of a deployment's first lease.
#[derive(Debug, clap::Args)]
pub struct Replica {
    /// Service name (default: the first one).
    #[arg(long)]
    service: Option<String>,
    #[arg(long, default_value_t = 0)]
    replica: u32,
}

impl TenantCommand {
    fn global(&self) -> &Global {
        match self {
            TenantCommand::Deploy { g, .. }
            | TenantCommand::Status { g, .. }
            | TenantCommand::Logs { g, .. }
            | TenantCommand::Shell { g, .. }
            | TenantCommand::Close { g, .. }
            | TenantCommand::Deposit { g, .. }
            | TenantCommand::Monitors { g, .. }
            | TenantCommand::Update { g, .. }
            | TenantCommand::Bids { g, .. }
            | TenantCommand::Leases { g }
            | TenantCommand::Providers { g }
            | TenantCommand::Balance { g, .. }
            | TenantCommand::Send { g, .. } => g,
        }
    }
}

pub fn run(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    let g = cmd.global().clone();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(&g, cmd))
}

async fn run_async(g: &Global, cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantCommand::Deploy {
            g: _,
            file,
            deposit,
            interactive,
            dseq,
            timeout,
            warn_hours,
            keep_on_failure,
        } => {
            let how = DeployOptions {
                deposit: deposit.as_deref(),
                interactive,
                dseq,
                timeout: Duration::from_secs(timeout),
                keep_on_failure,
            };
            let out = deploy(g, &file, how).await?;
            g.print(&out, || out.ready_text());
            warn_if_low(out.dseq, out.escrow.as_ref(), warn_hours);
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Status { g: _, dseq, warn_hours } => status(g, dseq, warn_hours).await,
        TenantCommand::Logs { g: _, dseq, at: Replica { service, replica }, follow, tail } => {
            logs(g, dseq, service, replica, follow, tail).await
        }
        TenantCommand::Shell { g: _, dseq, at: Replica { service, replica }, command } => {
            shell(g, dseq, service, replica, command).await
        }
        TenantCommand::Close { g: _, dseq } => close(g, dseq).await,
        TenantCommand::Deposit { g: _, dseq, amount } => {
            let coin = parse_coin(&amount)?;
            let (client, mut b) = g.signer().await?;
            let (h, _) = submit(
                &client,
                &mut b,
                vec![Msg::DepositDeployment { dseq, amount: coin.clone() }],
            )
            .await?;
            let owner = b.key.address();
            let outlook = escrow_outlook(&client, &owner, dseq).await?;
            // What the deposit buys at the current burn (nothing burns: no time to tell).
            let bought_hours = outlook.as_ref().and_then(|o| {
                let per_hour = o.per_hour;
                (per_hour > 0.0).then(|| coin.amount as f64 / per_hour)
            });
            let out = json!({
                "dseq": dseq,
                "deposited": coin,
                "height": h,
                "bought_hours": bought_hours,
                "escrow": outlook,
            });
            g.print(&out, || {
                let mut t =
                    format!("deposited {}{} into deployment {dseq}", coin.amount, coin.denom);
                if let Some(hours) = bought_hours {
                    t.push_str(&format!(": about {} more at the current burn", duration(hours)));
                }
                if let Some(o) = &outlook {
                    t.push_str(&format!("\n{}", o.text()));
                }
                t
            });
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Monitors { g: _, dseq, monitors: list, none } => {
            monitors(g, dseq, &list, none).await
        }
        TenantCommand::Update { g: _, dseq, file } => update(g, dseq, &file).await,
        TenantCommand::Bids { g: _, dseq } => bids(g, dseq).await,
        TenantCommand::Leases { .. } => leases(g).await,
        TenantCommand::Providers { .. } => providers(g).await,
        TenantCommand::Balance { g: _, address } => balance(g, address).await,
        TenantCommand::Send { g: _, to, amount } => {
            let to: Address =
                to.parse().map_err(|_| bad(format!("`{to}` is not a grid address")))?;
            let coin = parse_coin(&amount)?;
            let (client, mut b) = g.signer().await?;
            let (h, _) =
                submit(&client, &mut b, vec![Msg::Send { to, amount: coin.clone() }]).await?;
            g.print(&json!({ "to": to, "amount": coin, "height": h }), || {
                format!("sent {}{} to {to}", coin.amount, coin.denom)
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn monitors(g: &Global, dseq: u64, list: &[String], none: bool) -> anyhow::Result<ExitCode> {
    let text = |m: &[Address]| {
        if m.is_empty() {
            format!("deployment {dseq} names no monitor: its leases pay every block")
        } else {
            let names: Vec<String> = m.iter().map(Address::to_string).collect();
            format!("deployment {dseq} trusts the health reports of {}", names.join(", "))
        }
    };
    if list.is_empty() && !none {
        let client = g.client();
        let owner = me(g)?;
        let id = DeploymentId { owner, dseq };
        let record = client
            .deployment(&owner, dseq)
            .await
            .map_err(chain_error)?
            .ok_or_else(|| bad(format!("deployment {id} does not exist")))?;
        g.print(&json!({ "dseq": dseq, "monitors": record.monitors }), || text(&record.monitors));
        return Ok(ExitCode::SUCCESS);
    }
    let mut named = Vec::with_capacity(list.len());
    for a in list {
        named.push(a.parse::<Address>().map_err(|_| bad(format!("`{a}` is not a grid address")))?);
    }
    let (client, mut b) = g.signer().await?;
    let (h, _) =
        submit(&client, &mut b, vec![Msg::SetMonitors { dseq, monitors: named.clone() }]).await?;
    g.print(&json!({ "dseq": dseq, "monitors": named, "height": h }), || text(&named));
    Ok(ExitCode::SUCCESS)
}

/// Reads and validates an SDL file; every problem with file, line and column.
pub fn load_sdl(file: &Path) -> anyhow::Result<gridlease_sdl::Sdl> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
    gridlease_sdl::Sdl::parse(&file.display().to_string(), &text)
        .map_err(|e| bad(e.to_string().trim_end().to_string()))
}

/// The tenant's own address (no passphrase needed).
fn me(g: &Global) -> anyhow::Result<Address> {
    g.keystore().address(&g.from)
}

/// Where a deployment's manifest is kept: `HOME/manifests/OWNER/DSEQ.json`.
pub fn manifest_path(g: &Global, owner: &Address, dseq: u64) -> PathBuf {
    g.home.join("manifests").join(owner.to_string()).join(format!("{dseq}.json"))
}

fn save_manifest(g: &Global, owner: &Address, dseq: u64, manifest: &[u8]) -> anyhow::Result<()> {
    let path = manifest_path(g, owner, dseq);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&path, manifest)
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}

fn cert_dir(g: &Global, owner: &Address) -> PathBuf {
    g.home.join("certs").join(owner.to_string())
}

/// Name bound into the sealed file of a tenant's mTLS client key.
const TLS_KEY_NAME: &str = "tls-client-key";

pub fn load_cert_pub(g: &Global, owner: &Address) -> anyhow::Result<Option<CertBundle>> {
    load_cert(g, owner)
}

/// The tenant's client certificate, `None` when this home has none. Its private key is sealed
/// with the keystore passphrase in `key.json`; a clear `key.pem` left by an older gridlease
/// is sealed and removed here.
fn load_cert(g: &Global, owner: &Address) -> anyhow::Result<Option<CertBundle>> {
    let dir = cert_dir(g, owner);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
    let (Some(cert_pem), Some(pubkey_pem)) = (read("cert.pem"), read("pubkey.pem")) else {
        return Ok(None);
    };
    let (sealed, clear) = (dir.join("key.json"), dir.join("key.pem"));
    if !sealed.exists() && !clear.exists() {
        return Ok(None);
    }
    let key_pem = open_sealed_text(
        (&sealed, &clear),
        (SecretKind::TlsClientKey, TLS_KEY_NAME),
        *owner,
        &g.passphrase()?,
        &format!("the mTLS client key of {owner}"),
    )?;
    Ok(key_pem.map(|key_pem| CertBundle { cert_pem, key_pem, pubkey_pem }))
}

/// A new client certificate for `owner`, stored in this home with its key sealed.
fn create_cert(g: &Global, owner: &Address) -> anyhow::Result<CertBundle> {
    let b = tls::generate(owner, &[]).map_err(|e| failed(e.to_string()))?;
    let dir = cert_dir(g, owner);
    create_private_dir(&dir)?;
    std::fs::write(dir.join("cert.pem"), &b.cert_pem)?;
    std::fs::write(dir.join("pubkey.pem"), &b.pubkey_pem)?;
    // A key left without its certificate (an interrupted run) is of no use.
    let key = dir.join("key.json");
    if key.exists() {
        std::fs::remove_file(&key)?;
    }
    seal_text(
        &key,
        (SecretKind::TlsClientKey, TLS_KEY_NAME),
        *owner,
        &b.key_pem,
        &g.passphrase()?,
    )?;
    Ok(b)
}

/// The tenant's client certificate, and the message that registers it when the chain does
/// not know it yet.
async fn ensure_cert(
    g: &Global,
    client: &Client,
    owner: &Address,
) -> anyhow::Result<(CertBundle, Option<Msg>)> {
    let bundle = match load_cert(g, owner)? {
        Some(b) => b,
        None => create_cert(g, owner)?,
    };
    let registered = client
        .certificates(owner)
        .await
        .map_err(chain_error)?
        .iter()
        .any(|c| c.is_valid() && c.cert_pem == bundle.cert_pem);
    let msg = (!registered).then(|| Msg::CreateCertificate {
        cert_pem: bundle.cert_pem.clone().into_bytes(),
        pubkey_pem: bundle.pubkey_pem.clone().into_bytes(),
    });
    Ok((bundle, msg))
}

/// Blocks per hour, from the chain's recent block times (1 s blocks when unknown).
async fn blocks_per_hour(client: &Client) -> f64 {
    let Ok(s) = client.status().await else { return 3600.0 };
    let back = s.latest_height.saturating_sub(20).max(1);
    let then = client.block(back).await.ok().flatten();
    let then_ms = then.map_or(0, |b| b.time_ms);
    let blocks = s.latest_height.saturating_sub(back);
    if blocks == 0 || then_ms == 0 || s.latest_block_time_ms <= then_ms {
        return 3600.0;
    }
    let ms_per_block = (s.latest_block_time_ms - then_ms) as f64 / blocks as f64;
    3_600_000.0 / ms_per_block.max(1.0)
}

/// A decimal for people: no trailing zeros (`8.675`, `100`).
pub fn short_dec(d: DecAmount) -> String {
    let full = d.to_string();
    match full.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") }
        }
        None => full,
    }
}

fn dec_f64(d: DecAmount) -> f64 {
    d.atto() as f64 / 1e18
}

fn describe_bid(b: &Bid, per_hour: f64) -> String {
    let gpus: Vec<String> = b
        .offer
        .iter()
        .filter_map(|o| {
            o.gpu
                .as_ref()
                .map(|g| format!("{}x {}/{} {}", g.units * o.count, g.vendor, g.model, g.ram))
        })
        .collect();
    format!(
        "{}  {}  {} {}/block ({:.2} {}/hour)",
        b.id.provider,
        if gpus.is_empty() { "no GPU".to_string() } else { gpus.join(", ") },
        short_dec(b.price.amount),
        b.price.denom,
        dec_f64(b.price.amount) * per_hour,
        b.price.denom
    )
}

fn say(g: &Global, line: &str) {
    if g.json() {
        return;
    }
    match lock_spinner().as_ref() {
        Some(bar) => bar.println(line),
        None => crate::context::human!("{line}"),
    }
}

/// The spinner of the wait in progress, when stdout is a terminal: lines said meanwhile print
/// above it.
static SPINNER: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

fn lock_spinner() -> std::sync::MutexGuard<'static, Option<indicatif::ProgressBar>> {
    SPINNER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A spinner with the elapsed time for a long wait, shown while this lives (only on a
/// terminal, and never with `--output json`; elsewhere the plain lines say the same).
struct Spinner;

impl Spinner {
    fn start(g: &Global, what: &str) -> Spinner {
        if !g.json() && std::io::stdout().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            {
                bar.set_style(style);
            }
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            *lock_spinner() = Some(bar);
        }
        Spinner
    }

    fn message(&self, what: String) {
        if let Some(bar) = lock_spinner().as_ref() {
            bar.set_message(what);
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = lock_spinner().take() {
            bar.finish_and_clear();
        }
    }
}

/// The provider API of a lease, authenticated with the tenant's certificate.
pub async fn provider_api(
    client: &Client,
    lease: &BidId,
    cert: &CertBundle,
) -> anyhow::Result<ProviderApi> {
    ProviderApi::from_chain(client, &lease.provider, Some(cert)).await.map_err(api_error)
}

pub fn api_error(e: ApiClientError) -> anyhow::Error {
    match e {
        ApiClientError::Unreachable { .. } => CliError::Unreachable(e.to_string()).into(),
        ApiClientError::BadUri(_)
        | ApiClientError::Tls(_)
        | ApiClientError::Chain(_)
        | ApiClientError::BadAnswer { .. } => failed(e.to_string()),
        ApiClientError::Refused { .. } => failed(e.to_string()),
    }
}

/// What `deploy` ends with: the deployment and where its services answer.
#[derive(Clone, Debug, Serialize)]
pub struct Deployed {
    pub dseq: u64,
    pub owner: Address,
    pub leases: Vec<LeaseEndpoints>,
    /// From the start of `deploy` to every service ready.
    pub seconds: f64,
    /// How long the escrow lasts at the leases' burn, once they run.
    pub escrow: Option<EscrowOutlook>,
}

/// Where one lease's services answer.
#[derive(Clone, Debug, Serialize)]
pub struct LeaseEndpoints {
    pub lease: LeaseId,
    pub provider: Address,
    /// Service name to its URIs.
    pub endpoints: BTreeMap<String, Vec<String>>,
}

impl Deployed {
    /// What a deployment that is ready looks like to people.
    pub fn ready_text(&self) -> String {
        let mut text = format!("deployment {} is ready after {:.1}s:", self.dseq, self.seconds);
        for (name, uri) in self.leases.iter().flat_map(LeaseEndpoints::uris) {
            text.push_str(&format!("\n  {name}: {uri}"));
        }
        if let Some(o) = &self.escrow {
            text.push_str(&format!("\n{}", o.text()));
        }
        text
    }

    /// The first URI of `service`, in lease order.
    pub fn first_endpoint(&self, service: &str) -> Option<&str> {
        self.leases
            .iter()
            .flat_map(LeaseEndpoints::uris)
            .find(|(n, _)| *n == service)
            .map(|(_, u)| u)
    }
}

impl LeaseEndpoints {
    fn uris(&self) -> impl Iterator<Item = (&str, &str)> {
        self.endpoints
            .iter()
            .flat_map(|(name, uris)| uris.iter().map(move |u| (name.as_str(), u.as_str())))
    }
}

/// What an SDL file asks for, read before anything talks to the chain.
struct Plan {
    groups: Vec<GroupSpec>,
    manifest: Vec<u8>,
    manifest_hash: [u8; 32],
    /// The denomination of the groups' prices (the deposit's by default).
    price_denom: Denom,
}

/// Reads and checks the SDL file.
fn plan(file: &Path) -> anyhow::Result<Plan> {
    let sdl = load_sdl(file)?;
    let groups = gridlease_client::sdl::group_specs(&sdl)
        .map_err(|e| bad(format!("{}: {e}", file.display())))?;
    let price_denom: Denom = groups
        .first()
        .and_then(|gs| gs.resources.first())
        .map(|u| u.price.denom.clone())
        .ok_or_else(|| bad("the SDL has no group to deploy"))?;
    Ok(Plan {
        manifest: gridlease_client::sdl::manifest_bytes(&sdl),
        manifest_hash: gridlease_client::sdl::manifest_hash(&sdl),
        groups,
        price_denom,
    })
}

/// The deposit: `asked`, or the chain's minimum in the price's denomination; refused when
/// `owner` cannot pay it.
async fn choose_deposit(
    client: &Client,
    owner: &Address,
    plan: &Plan,
    asked: Option<&str>,
) -> anyhow::Result<Coin> {
    let denom = &plan.price_denom;
    let deposit = match asked {
        Some(d) => parse_coin(d)?,
        None => {
            let params = client.params().await.map_err(chain_error)?;
            params.min_deposits.iter().find(|c| &c.denom == denom).cloned().ok_or_else(|| {
                bad(format!("the chain takes no deposits in {denom}: pass --deposit"))
            })?
        }
    };
    let balances = client.balances(owner).await.map_err(chain_error)?;
    let have = balance_of(&balances, &deposit.denom);
    if have < deposit.amount {
        return Err(CliError::Funds(format!(
            "insufficient balance: {owner} has {have}{} and the deposit needs {}{}",
            deposit.denom, deposit.amount, deposit.denom
        ))
        .into());
    }
    Ok(deposit)
}

/// When `deploy` gives up, and after how long.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    started: Instant,
    timeout: Duration,
}

impl Deadline {
    fn passed(&self) -> bool {
        self.started.elapsed() > self.timeout
    }
}

/// What one provider said of a deployment's orders: its last decision on each open group.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderWhy {
    pub provider: Address,
    /// `bid`, `skip`, `failed`, `undecided` (it has not decided on the deployment) or
    /// `unreachable`.
    pub outcome: String,
    /// Why (a provider's words, control characters dropped, at most 300 characters).
    pub detail: String,
    /// The kind of reason (`gpu`, `price`, `attributes`, ...) when it declined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<gridlease_provider::api::DeclineReason>,
    /// The change that would get its bid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// A provider's words on the tenant's terminal: control characters dropped, length bounded.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// At most this many providers are asked why, at once, 3 s each.
const WHY_ASKED: usize = 32;

/// Why the providers did or did not bid on the open groups (`gseqs`; all when empty) of
/// deployment `owner`/`dseq`, from each provider's public decision endpoint (no lease or
/// certificate needed; rate-limited there): its newest decision per group, and one entry for
/// each that did not answer. Also the number of providers not asked.
pub async fn provider_decisions(
    client: &Client,
    owner: &Address,
    dseq: u64,
    gseqs: &[u32],
) -> (Vec<ProviderWhy>, usize) {
    let Ok(providers) = client.providers().await else { return (Vec::new(), 0) };
    let asks = providers.iter().take(WHY_ASKED).map(|p| async move {
        let answer = tokio::time::timeout(Duration::from_secs(3), async {
            let api = ProviderApi::from_chain(client, &p.owner, None).await?;
            api.decisions(owner, dseq).await
        })
        .await;
        let why = |outcome: &str, detail: String| ProviderWhy {
            provider: p.owner,
            outcome: outcome.into(),
            detail: clean(&detail),
            reason: None,
            suggestion: None,
        };
        match answer {
            Ok(Ok(answer)) => {
                // Newest first: the first decision seen for a group is its current one.
                let mut seen = std::collections::BTreeSet::new();
                let mut out = Vec::new();
                for d in answer.decisions {
                    let gseq = d.order.split('/').nth(2).and_then(|g| g.parse::<u32>().ok());
                    let Some(gseq) = gseq.filter(|g| gseqs.is_empty() || gseqs.contains(g)) else {
                        continue;
                    };
                    if !seen.insert(gseq) {
                        continue;
                    }
                    out.push(ProviderWhy {
                        reason: d.reason,
                        suggestion: d.suggestion.as_deref().map(clean),
                        ..why(d.outcome.name(), d.detail)
                    });
                }
                if out.is_empty() {
                    out.push(why("undecided", "no decision on this deployment yet".into()));
                }
                out
            }
            Ok(Err(e)) => vec![why("unreachable", format!("did not answer ({e})"))],
            Err(_) => vec![why("unreachable", "did not answer within 3 s".into())],
        }
    });
    let all = futures_util::future::join_all(asks).await.into_iter().flatten().collect();
    (all, providers.len().saturating_sub(WHY_ASKED))
}

/// The lines that say why, for people: a provider per line, its suggestion under it.
pub fn why_lines(whys: &[ProviderWhy], not_asked: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for w in whys {
        let said = match w.outcome.as_str() {
            "bid" => format!(
                "bid on it ({}; a bid from a provider that holds another replica does not win)",
                w.detail
            ),
            _ => w.detail.clone(),
        };
        lines.push(format!("    {}: {said}", w.provider));
        if let Some(s) = &w.suggestion {
            lines.push(format!("      suggestion: {s}"));
        }
    }
    if not_asked > 0 {
        lines.push(format!("    ({not_asked} more providers not asked)"));
    }
    lines
}

/// Why the providers did not bid on `order`'s group, as lines for `deploy`.
async fn why_no_bid(client: &Client, order: &OrderId) -> Vec<String> {
    let (whys, not_asked) =
        provider_decisions(client, &order.owner, order.dseq, &[order.gseq]).await;
    let mut lines = vec!["  why the providers did not bid:".to_string()];
    lines.extend(why_lines(&whys, not_asked));
    lines
}

/// The events an auction is followed by.
const AUCTION_EVENTS: &[&str] =
    &["bid_created", "auction_won", "lease_created", "order_stalled", "order_closed"];

/// An auction being followed: the leases won so far (by group), the bids seen, and why it
/// stalled when it did.
struct Auction<'a> {
    g: &'a Global,
    owner: Address,
    dseq: u64,
    per_hour: f64,
    leases: BTreeMap<u32, LeaseId>,
    bids: Vec<Bid>,
    stalled: Option<String>,
}

impl Auction<'_> {
    fn mine(&self, o: &OrderId) -> bool {
        o.owner == self.owner && o.dseq == self.dseq
    }

    /// Takes in a block's events.
    async fn apply(&mut self, client: &Client, block: &BlockEvents) {
        for e in &block.events {
            match &e.event {
                Event::BidCreated { id, .. } if self.mine(&id.order) => {
                    if let Ok(Some(b)) = client.bid(id).await {
                        let n = self.bids.len() + 1;
                        say(self.g, &format!("  [{n}] {}", describe_bid(&b, self.per_hour)));
                        self.bids.push(b);
                    }
                }
                Event::AuctionWon { id, why, .. } if self.mine(&id.order) => {
                    say(self.g, &format!("  won by {}: {why}", id.provider));
                }
                Event::LeaseCreated { id, price } if self.mine(&id.order) => {
                    say(
                        self.g,
                        &format!(
                            "lease: group {} with {} at {} {} per block",
                            id.order.gseq,
                            id.provider,
                            short_dec(price.amount),
                            price.denom
                        ),
                    );
                    self.leases.insert(id.order.gseq, *id);
                }
                Event::OrderStalled { id, reason } if self.mine(id) => {
                    let why = reason.to_string();
                    say(
                        self.g,
                        &format!(
                            "  the auction closed without a winner: {why}; it stays open for late bids"
                        ),
                    );
                    if self.stalled.is_none() {
                        for line in why_no_bid(client, id).await {
                            say(self.g, &line);
                        }
                    }
                    self.stalled = Some(why);
                }
                _ => {}
            }
        }
    }

    /// After the event stream missed blocks: the leases of this deployment, from the queries.
    async fn catch_up(&mut self, client: &Client) -> anyhow::Result<()> {
        let q = ListQuery {
            owner: Some(self.owner),
            state: Some("active".into()),
            ..Default::default()
        };
        for l in client.leases(&q).await.map_err(chain_error)? {
            if l.id.order.dseq == self.dseq && !self.leases.contains_key(&l.id.order.gseq) {
                say(self.g, &format!("lease: group {} with {}", l.id.order.gseq, l.id.provider));
                self.leases.insert(l.id.order.gseq, l.id);
            }
        }
        Ok(())
    }
}

/// Follows the auction of deployment `dseq` on `events` until each of its `groups` has a
/// lease; with `interactive`, asks once which bid to accept.
async fn auction(
    g: &Global,
    client: &Client,
    builder: &mut TxBuilder,
    mut events: EventStream,
    (dseq, groups): (u64, usize),
    interactive: bool,
    deadline: Deadline,
) -> anyhow::Result<BTreeMap<u32, LeaseId>> {
    let owner = builder.key.address();
    let per_hour = blocks_per_hour(client).await;
    let mut a = Auction {
        g,
        owner,
        dseq,
        per_hour,
        leases: BTreeMap::new(),
        bids: Vec::new(),
        stalled: None,
    };
    let mut asked = !interactive;
    let spinner = Spinner::start(g, "waiting for bids");
    while a.leases.len() < groups {
        spinner.message(format!(
            "auction: {} bids, {} of {groups} groups leased",
            a.bids.len(),
            a.leases.len()
        ));
        if deadline.passed() {
            return Err(failed(format!(
                "no lease after {}s{}: the deployment stays open; close it with `gridlease close {dseq}`",
                deadline.timeout.as_secs(),
                a.stalled.map(|s| format!(" (the auction ended with {s})")).unwrap_or_default()
            )));
        }
        match tokio::time::timeout(Duration::from_secs(5), events.next_block()).await {
            Ok(Ok(Some(block))) => a.apply(client, &block).await,
            Ok(Ok(None)) | Ok(Err(_)) => {
                // The stream ended or missed blocks: resubscribe, then learn from the queries
                // what the missed blocks held.
                events = client.subscribe(AUCTION_EVENTS).await.map_err(chain_error)?;
                a.catch_up(client).await?;
            }
            Err(_) => continue,
        }
        if !asked && !a.bids.is_empty() && std::io::stdin().is_terminal() {
            asked = true;
            // The question needs the line to itself.
            if let Some(bar) = lock_spinner().take() {
                bar.finish_and_clear();
            }
            if let Some(bid) = ask_for_bid(&a.bids).await? {
                submit(client, builder, vec![Msg::AcceptBid { bid }]).await?;
            }
        }
    }
    Ok(a.leases)
}

/// Asks which of `bids` to accept (by number); none when the tenant lets the auction decide.
async fn ask_for_bid(bids: &[Bid]) -> anyhow::Result<Option<BidId>> {
    print!("accept bid number (enter: let the auction decide): ");
    let _ = std::io::stdout().flush();
    let line = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let Ok(n) = line.trim().parse::<usize>() else { return Ok(None) };
    let b = bids.get(n.wrapping_sub(1)).ok_or_else(|| bad(format!("there is no bid {n}")))?;
    Ok(Some(b.id))
}

/// Sends the manifest to each lease's provider and waits until its services are ready.
async fn rollout(
    g: &Global,
    client: &Client,
    cert: &CertBundle,
    manifest: &[u8],
    leases: impl Iterator<Item = &LeaseId>,
    deadline: Deadline,
) -> anyhow::Result<Vec<LeaseEndpoints>> {
    let mut out = Vec::new();
    for id in leases {
        let api = provider_api(client, id, cert).await?;
        api.send_manifest(id, manifest).await.map_err(api_error)?;
        say(
            g,
            &format!("manifest sent to {} over mutual TLS; waiting for the services", id.provider),
        );
        let status = wait_ready(g, &api, id, deadline).await?;
        out.push(LeaseEndpoints {
            lease: *id,
            provider: id.provider,
            endpoints: status.endpoints(),
        });
    }
    Ok(out)
}

/// Polls a lease's status until it is ready, printing each new phase; fails when it failed or
/// is not ready by `deadline`.
async fn wait_ready(
    g: &Global,
    api: &ProviderApi,
    id: &LeaseId,
    deadline: Deadline,
) -> anyhow::Result<LeaseStatus> {
    let mut last_phase = None;
    let mut pulling: Option<String> = None;
    let spinner = Spinner::start(g, "waiting for the services");
    loop {
        let s = api.lease_status(id).await.map_err(api_error)?;
        match &s.pull {
            Some(p) => {
                if pulling.as_deref() != Some(p.image.as_str()) {
                    say(g, &format!("  pulling {} on the provider", p.image));
                    pulling = Some(p.image.clone());
                }
                spinner.message(pull_words(p));
            }
            None => spinner.message(format!("{}: {}", s.phase, s.message)),
        }
        if last_phase != Some(s.phase) {
            let at = deadline.started.elapsed().as_secs_f64();
            say(g, &format!("  {}: {} ({at:.1}s)", s.phase, s.message));
            last_phase = Some(s.phase);
        }
        match s.phase {
            Phase::Ready => return Ok(s),
            Phase::Failed => {
                return Err(failed(format!(
                    "the provider could not start the services: {}",
                    s.message
                )));
            }
            Phase::AwaitingManifest | Phase::Deploying => {}
        }
        if deadline.passed() {
            return Err(failed(format!(
                "the services were not ready after {}s: {}",
                deadline.timeout.as_secs(),
                s.message
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An image pull's progress in words: bytes (when the runtime reports sizes) and layers.
pub fn pull_words(p: &gridlease_provider::driver::PullProgress) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let bytes = if p.total_bytes > 0 {
        format!("{:.1} of {:.1} MiB, ", mib(p.current_bytes), mib(p.total_bytes))
    } else {
        String::new()
    };
    format!("pulling {}: {bytes}{} of {} layers", p.image, p.layers_done, p.layers)
}

/// How `deploy` goes about it.
#[derive(Clone, Copy, Debug)]
pub struct DeployOptions<'a> {
    /// The escrow deposit (default: the chain's minimum in the price's denomination).
    pub deposit: Option<&'a str>,
    /// Ask which bid to accept.
    pub interactive: bool,
    /// The deployment's sequence number (default: the current height).
    pub dseq: Option<u64>,
    /// How long the auction and the rollout may take.
    pub timeout: Duration,
    /// Keep the deployment when its services do not start.
    pub keep_on_failure: bool,
}

impl DeployOptions<'_> {
    /// The defaults of `gridlease deploy` with this timeout.
    pub fn within(timeout: Duration) -> DeployOptions<'static> {
        DeployOptions {
            deposit: None,
            interactive: false,
            dseq: None,
            timeout,
            keep_on_failure: false,
        }
    }
}

/// Closes deployment `dseq` after its rollout failed with `e`: the error says why it failed,
/// and what came back or what to do.
async fn close_after_failure(
    client: &Client,
    builder: &mut TxBuilder,
    dseq: u64,
    e: anyhow::Error,
) -> anyhow::Error {
    // The message grows; the exit code stays the failure's (3 for an unreachable provider).
    let message = match close_deployment(client, builder, dseq).await {
        Ok((h, refund)) => {
            let back =
                refund.map(|c| format!("; {}{} refunded", c.amount, c.denom)).unwrap_or_default();
            format!(
                "{e}; deployment {dseq} closed at height {h} so it stops paying{back} (pass --keep-on-failure to keep it)"
            )
        }
        Err(ce) => format!(
            "{e}; closing deployment {dseq} failed too ({ce}): close it with `gridlease close {dseq}`"
        ),
    };
    reword(&e, message)
}

/// Deploys an SDL file: plan (the SDL read), deposit (funds checked), create the deployment,
/// follow the auction to a lease per group, then roll the manifest out to the winners. Returns once
/// every service answers.
pub async fn deploy(g: &Global, file: &Path, how: DeployOptions<'_>) -> anyhow::Result<Deployed> {
    let DeployOptions { deposit, interactive, dseq, timeout, keep_on_failure } = how;
    let deadline = Deadline { started: Instant::now(), timeout };
    let plan = plan(file)?;
    let (client, mut builder) = g.signer().await?;
    let owner = builder.key.address();
    let deposit = choose_deposit(&client, &owner, &plan, deposit).await?;
    let (cert, cert_msg) = ensure_cert(g, &client, &owner).await?;
    let dseq = match dseq {
        Some(d) => d,
        None => client.status().await.map_err(chain_error)?.latest_height.max(1),
    };
    // Subscribed before the deployment exists, so no bid can be missed.
    let events = client.subscribe(AUCTION_EVENTS).await.map_err(chain_error)?;
    let mut msgs: Vec<Msg> = cert_msg.into_iter().collect();
    msgs.push(Msg::CreateDeployment {
        dseq,
        groups: plan.groups.clone(),
        manifest_hash: plan.manifest_hash,
        deposit: deposit.clone(),
    });
    let (height, _) = submit(&client, &mut builder, msgs).await?;
    // Kept for whoever sends it again to a new lease (`gridlease watch` after a failover).
    save_manifest(g, &owner, dseq, &plan.manifest)?;
    say(
        g,
        &format!(
            "deployment {dseq} created at height {height} with {}{} in escrow",
            deposit.amount, deposit.denom
        ),
    );
    let window = client.params().await.map_err(chain_error)?.bid_window;
    say(g, &format!("auction open for {window} blocks; bids:"));
    let groups = plan.groups.len();
    let leases =
        auction(g, &client, &mut builder, events, (dseq, groups), interactive, deadline).await?;
    let leases = match rollout(g, &client, &cert, &plan.manifest, leases.values(), deadline).await {
        Ok(leases) => leases,
        Err(e) if keep_on_failure => return Err(e),
        // Its leases would go on paying for services that do not run.
        Err(e) => return Err(close_after_failure(&client, &mut builder, dseq, e).await),
    };
    let seconds = deadline.started.elapsed().as_secs_f64();
    let escrow = escrow_outlook(&client, &owner, dseq).await?;
    Ok(Deployed { dseq, owner, leases, seconds, escrow })
}

/// The active leases of one of the tenant's deployments.
pub async fn leases_of(client: &Client, owner: Address, dseq: u64) -> anyhow::Result<Vec<BidId>> {
    let q = ListQuery { owner: Some(owner), state: Some("active".into()), ..Default::default() };
    Ok(client
        .leases(&q)
        .await
        .map_err(chain_error)?
        .into_iter()
        .filter(|l| l.id.order.dseq == dseq)
        .map(|l| l.id)
        .collect())
}

/// How long a deployment's escrow lasts at its burn rate.
#[derive(Clone, Debug, Serialize)]
pub struct EscrowOutlook {
    pub denom: Denom,
    /// What is left after what its leases are owed since the last settlement.
    pub balance: f64,
    /// What its leases take, all together, per block and per hour.
    pub per_block: f64,
    pub per_hour: f64,
    /// Blocks and hours until it runs dry; `None` while nothing burns it.
    pub blocks_left: Option<u64>,
    pub hours_left: Option<f64>,
}

impl EscrowOutlook {
    /// The outlook of `e` at block `height`, with `blocks_per_hour` blocks an hour.
    fn of(e: &EscrowAccount, height: u64, blocks_per_hour: f64) -> EscrowOutlook {
        let per_block = dec_f64(e.rate);
        let owed = per_block * height.saturating_sub(e.settled_at) as f64;
        let blocks_left =
            e.depletes_at.filter(|_| per_block > 0.0).map(|at| at.saturating_sub(height));
        EscrowOutlook {
            denom: e.denom.clone(),
            balance: (dec_f64(e.balance) - owed).max(0.0),
            per_block,
            per_hour: per_block * blocks_per_hour,
            blocks_left,
            hours_left: blocks_left.map(|b| b as f64 / blocks_per_hour),
        }
    }

    fn text(&self) -> String {
        let d = &self.denom;
        let mut t = format!("escrow {:.0} {d} left", self.balance);
        match self.hours_left {
            Some(h) => t.push_str(&format!(
                ", burning {} {d}/block ({:.0} {d}/hour): about {} left",
                short_float(self.per_block),
                self.per_hour,
                duration(h)
            )),
            None => t.push_str(", nothing burns it now"),
        }
        t
    }
}

/// Warns on stderr when the escrow of `dseq` runs dry within `warn_hours`.
fn warn_if_low(dseq: u64, outlook: Option<&EscrowOutlook>, warn_hours: f64) {
    if let Some(h) = outlook.and_then(|o| o.hours_left).filter(|h| *h < warn_hours) {
        eprintln!(
            "warning: the escrow of deployment {dseq} runs dry in about {}: add to it with `gridlease deposit {dseq} AMOUNT`",
            duration(h)
        );
    }
}

/// A count of hours for people: minutes, hours or days.
fn duration(hours: f64) -> String {
    if hours < 1.0 {
        format!("{:.0} minutes", hours * 60.0)
    } else if hours < 48.0 {
        format!("{hours:.1} hours")
    } else {
        format!("{:.1} days", hours / 24.0)
    }
}

fn short_float(x: f64) -> String {
    let t = format!("{x:.6}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The escrow outlook of `owner`'s deployment `dseq` now; `None` when it has no escrow.
async fn escrow_outlook(
    client: &Client,
    owner: &Address,
    dseq: u64,
) -> anyhow::Result<Option<EscrowOutlook>> {
    let record = client.deployment(owner, dseq).await.map_err(chain_error)?;
    let Some(escrow) = record.and_then(|r| r.escrow) else { return Ok(None) };
    let height = client.status().await.map_err(chain_error)?.latest_height;
    Ok(Some(EscrowOutlook::of(&escrow, height, blocks_per_hour(client).await)))
}

async fn status(g: &Global, dseq: u64, warn_hours: f64) -> anyhow::Result<ExitCode> {
    let owner = me(g)?;
    let client = g.client();
    let record = client
        .deployment(&owner, dseq)
        .await
        .map_err(chain_error)?
        .ok_or_else(|| bad(format!("you have no deployment {dseq}")))?;
    let ids = leases_of(&client, owner, dseq).await?;
    let cert = if ids.is_empty() { None } else { load_cert(g, &owner)? };
    // What each lease's provider says, or why it could not be asked.
    let mut statuses: Vec<(BidId, Result<LeaseStatus, String>)> = Vec::new();
    for id in ids {
        let status = match &cert {
            Some(c) => match provider_api(&client, &id, c).await {
                Ok(api) => api.lease_status(&id).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => Err("no client certificate in this home".to_owned()),
        };
        statuses.push((id, status));
    }
    let leases: Vec<Value> = statuses
        .iter()
        .map(|(id, status)| {
            let svc = match status {
                Ok(s) => serde_json::to_value(s).unwrap_or(Value::Null),
                Err(e) => json!({ "error": e }),
            };
            json!({ "lease": id, "provider": id.provider, "status": svc })
        })
        .collect();
    let outlook = escrow_outlook(&client, &owner, dseq).await?;
    let low = outlook.as_ref().and_then(|o| o.hours_left).filter(|h| *h < warn_hours);
    // Groups still in auction: why the providers have not bid.
    let open: Vec<u32> = record
        .groups
        .iter()
        .filter(|g| matches!(g.state, gridlease_client::GroupState::Open))
        .map(|g| g.id.gseq)
        .collect();
    let (whys, not_asked) = if open.is_empty() {
        (Vec::new(), 0)
    } else {
        provider_decisions(&client, &owner, dseq, &open).await
    };
    let out = json!({
        "dseq": dseq,
        "state": record.deployment.state,
        "escrow": record.escrow,
        "escrow_outlook": outlook,
        "escrow_low": low.is_some(),
        "leases": leases,
        "open_groups": open,
        "provider_decisions": whys,
    });
    warn_if_low(dseq, outlook.as_ref(), warn_hours);
    g.print(&out, || {
        let mut t = format!("deployment {dseq}: {}", record.deployment.state.state_name());
        if let Some(o) = &outlook {
            t.push_str(&format!("\n  {}", o.text()));
        }
        for (id, status) in &statuses {
            match status {
                Ok(s) => {
                    t.push_str(&format!("\n  lease with {}: {}", id.provider, s.phase));
                    if !s.message.is_empty() {
                        t.push_str(&format!(" ({})", s.message));
                    }
                    if let Some(p) = &s.pull {
                        t.push_str(&format!("\n    {}", pull_words(p)));
                    }
                    for (name, uris) in s.endpoints() {
                        for u in uris {
                            t.push_str(&format!("\n    {name}: {u}"));
                        }
                    }
                }
                Err(e) => t.push_str(&format!("\n  lease with {}: ? {e}", id.provider)),
            }
        }
        if !open.is_empty() {
            let groups: Vec<String> = open.iter().map(u32::to_string).collect();
            t.push_str(&format!(
                "\n  group(s) {} in auction, no lease yet; the providers say:",
                groups.join(", ")
            ));
            for line in why_lines(&whys, not_asked) {
                t.push_str(&format!("\n{line}"));
            }
        }
        t
    });
    Ok(ExitCode::SUCCESS)
}

/// The provider API of deployment `dseq`'s first active lease (over mutual TLS with this
/// home's certificate), the lease, and `service` or the lease's first service.
async fn first_lease(
    g: &Global,
    dseq: u64,
    service: Option<String>,
) -> anyhow::Result<(ProviderApi, BidId, String)> {
    let owner = me(g)?;
    let client = g.client();
    let cert = load_cert(g, &owner)?
        .ok_or_else(|| bad("no client certificate in this home: deploy from it first"))?;
    let ids = leases_of(&client, owner, dseq).await?;
    let id =
        *ids.first().ok_or_else(|| failed(format!("deployment {dseq} has no active lease")))?;
    let api = provider_api(&client, &id, &cert).await?;
    let service = match service {
        Some(s) => s,
        None => {
            let s = api.lease_status(&id).await.map_err(api_error)?;
            s.services
                .keys()
                .next()
                .cloned()
                .or_else(|| s.replicas.first().map(|r| r.service.clone()))
                .ok_or_else(|| failed("the lease runs no service yet"))?
        }
    };
    Ok((api, id, service))
}

async fn logs(
    g: &Global,
    dseq: u64,
    service: Option<String>,
    replica: u32,
    follow: bool,
    tail: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let (api, lease, service) = first_lease(g, dseq, service).await?;
    let id = &lease;
    if follow {
        let mut out = std::io::stdout();
        api.follow_logs(id, &service, replica, tail, |chunk| {
            let _ = out.write_all(chunk);
            let _ = out.flush();
        })
        .await
        .map_err(api_error)?;
    } else {
        let text = api.logs(id, &service, replica, tail).await.map_err(api_error)?;
        g.print(&json!({ "service": service, "replica": replica, "logs": text }), || {
            text.trim_end().to_string()
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// `gridlease shell`: opens a session in a replica of the deployment's first lease and runs
/// it until the program ends; the exit code is the program's.
async fn shell(
    g: &Global,
    dseq: u64,
    service: Option<String>,
    replica: u32,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let (api, lease, service) = first_lease(g, dseq, service).await?;
    let open = crate::shell::open_request(service, replica, command);
    let stream = api.attach(&lease, &open).await.map_err(api_error)?;
    let code = crate::shell::run(stream, &open).await?;
    Ok(ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)))
}

/// Closes deployment `dseq`: the height it closed at and what its escrow refunded.
async fn close_deployment(
    client: &Client,
    builder: &mut TxBuilder,
    dseq: u64,
) -> anyhow::Result<(u64, Option<Coin>)> {
    let (h, receipt) = submit(client, builder, vec![Msg::CloseDeployment { dseq }]).await?;
    let refund = receipt.events.iter().find_map(|e| match e {
        Event::EscrowRefunded { amount, .. } => Some(amount.clone()),
        _ => None,
    });
    Ok((h, refund))
}

/// Closes deployment `dseq` of the `--from` key, for callers that say what happened themselves.
pub async fn close_by_dseq(g: &Global, dseq: u64) -> anyhow::Result<()> {
    let (client, mut b) = g.signer().await?;
    close_deployment(&client, &mut b, dseq).await.map(|_| ())
}

async fn close(g: &Global, dseq: u64) -> anyhow::Result<ExitCode> {
    let (client, mut b) = g.signer().await?;
    let (h, refund) = close_deployment(&client, &mut b, dseq).await?;
    g.print(&json!({ "dseq": dseq, "height": h, "refund": refund }), || match &refund {
        Some(c) => {
            format!("deployment {dseq} closed at height {h}; {}{} refunded", c.amount, c.denom)
        }
        None => format!("deployment {dseq} closed at height {h}"),
    });
    Ok(ExitCode::SUCCESS)
}

async fn update(g: &Global, dseq: u64, file: &Path) -> anyhow::Result<ExitCode> {
    let sdl = load_sdl(file)?;
    let manifest = gridlease_client::sdl::manifest_bytes(&sdl);
    let manifest_hash = gridlease_client::sdl::manifest_hash(&sdl);
    let (client, mut b) = g.signer().await?;
    let owner = b.key.address();
    submit(&client, &mut b, vec![Msg::UpdateDeployment { dseq, manifest_hash }]).await?;
    save_manifest(g, &owner, dseq, &manifest)?;
    let cert = load_cert(g, &owner)?.ok_or_else(|| bad("no client certificate in this home"))?;
    let mut sent = Vec::new();
    for id in leases_of(&client, owner, dseq).await? {
        let api = provider_api(&client, &id, &cert).await?;
        api.send_manifest(&id, &manifest).await.map_err(api_error)?;
        sent.push(id.provider);
    }
    g.print(&json!({ "dseq": dseq, "providers": sent }), || {
        format!("deployment {dseq} updated; new manifest sent to {} provider(s)", sent.len())
    });
    Ok(ExitCode::SUCCESS)
}

async fn bids(g: &Global, dseq: Option<u64>) -> anyhow::Result<ExitCode> {
    let owner = me(g)?;
    let client = g.client();
    let per_hour = blocks_per_hour(&client).await;
    let all: Vec<Bid> = client
        .bids(&ListQuery { owner: Some(owner), ..Default::default() })
        .await
        .map_err(chain_error)?
        .into_iter()
        .filter(|b| dseq.is_none_or(|d| b.id.order.dseq == d))
        .collect();
    // For one deployment, every provider's decision on it: who bid, and why the others did not.
    let whys = match dseq {
        Some(d) => Some(provider_decisions(&client, &owner, d, &[]).await),
        None => None,
    };
    let value = match &whys {
        Some((w, _)) => json!({ "bids": all, "provider_decisions": w }),
        None => serde_json::to_value(&all).unwrap_or(Value::Null),
    };
    g.print(&value, || {
        let mut text = if all.is_empty() { "no bids".to_string() } else { String::new() };
        if let Some((w, not_asked)) = &whys {
            let declined: Vec<ProviderWhy> =
                w.iter().filter(|w| w.outcome != "bid").cloned().collect();
            if !declined.is_empty() {
                text.push_str("\nproviders that did not bid:\n");
                text.push_str(&why_lines(&declined, *not_asked).join("\n"));
            }
        }
        if all.is_empty() {
            return text;
        }
        let listed = all
            .iter()
            .map(|b| {
                format!(
                    "dseq {} group {}  {}  {}",
                    b.id.order.dseq,
                    b.id.order.gseq,
                    b.state.state_name(),
                    describe_bid(b, per_hour)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!("{listed}{text}")
    });
    Ok(ExitCode::SUCCESS)
}

async fn leases(g: &Global) -> anyhow::Result<ExitCode> {
    let owner = me(g)?;
    let all = g
        .client()
        .leases(&ListQuery { owner: Some(owner), ..Default::default() })
        .await
        .map_err(chain_error)?;
    g.print(&serde_json::to_value(&all).unwrap_or(Value::Null), || {
        if all.is_empty() {
            return "no leases".into();
        }
        all.iter()
            .map(|l| {
                format!(
                    "dseq {} group {}  {}  {}  {} {}/block",
                    l.id.order.dseq,
                    l.id.order.gseq,
                    l.state.state_name(),
                    l.id.provider,
                    short_dec(l.price.amount),
                    l.price.denom
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(ExitCode::SUCCESS)
}

async fn providers(g: &Global) -> anyhow::Result<ExitCode> {
    let client = g.client();
    let list = client.providers().await.map_err(chain_error)?;
    let mut out = Vec::new();
    for p in &list {
        let status = match ProviderApi::from_chain(&client, &p.owner, None).await {
            Ok(api) => tokio::time::timeout(Duration::from_secs(3), api.status())
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        // The record under the tenants' monitors, from the chain.
        let record = client.provider(&p.owner).await.map_err(chain_error)?;
        let uptime =
            record.as_ref().map(|r| json!({ "record": r.uptime, "uptime_ppm": r.uptime_ppm }));
        out.push(match status {
            Ok(s) => json!({ "provider": p, "online": true, "inventory": s.inventory, "free": s.free, "pricing": s.pricing, "uptime": uptime }),
            Err(e) => json!({ "provider": p, "online": false, "error": e, "uptime": uptime }),
        });
    }
    g.print(&json!(out), || {
        if out.is_empty() {
            return "no providers".into();
        }
        let mut t = String::new();
        for p in &out {
            let u = &p["uptime"];
            let uptime = match u["record"]["lease_blocks"].as_u64() {
                Some(blocks) if blocks > 0 => format!(
                    "uptime {:.2}% over {blocks} lease blocks, {} outages, {} failovers",
                    u["uptime_ppm"].as_u64().unwrap_or(0) as f64 / 10_000.0,
                    u["record"]["outages"].as_u64().unwrap_or(0),
                    u["record"]["failovers"].as_u64().unwrap_or(0)
                ),
                _ => "no ended lease yet".into(),
            };
            t.push_str(&format!(
                "{}  {}  {}  {uptime}\n",
                p["provider"]["owner"].as_str().unwrap_or(""),
                p["provider"]["host_uri"].as_str().unwrap_or(""),
                if p["online"] == true { "online" } else { "offline" }
            ));
            let mut models: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for gpu in p["inventory"]["gpus"].as_array().into_iter().flatten() {
                let m = format!(
                    "{}/{} {} {}",
                    gpu["vendor"].as_str().unwrap_or(""),
                    gpu["model"].as_str().unwrap_or(""),
                    gpu["ram"].as_str().unwrap_or(""),
                    gpu["interface"].as_str().unwrap_or("")
                );
                models.entry(m).or_default().0 += 1;
            }
            for (m, (n, _)) in &models {
                let model = m.split('/').nth(1).and_then(|x| x.split(' ').next()).unwrap_or("");
                let price = p["pricing"]["gpu"][model]
                    .as_str()
                    .or(p["pricing"]["gpu_default"].as_str())
                    .unwrap_or("?");
                let free = p["free"]["gpus"][model].as_u64().unwrap_or(0);
                t.push_str(&format!(
                    "  {n}x {m}  ({free} free)  {price} {}/block per GPU\n",
                    p["pricing"]["denom"].as_str().unwrap_or("")
                ));
            }
            if p["online"] == true {
                t.push_str(&format!(
                    "  cpu {} {}/core, memory {}/GiB per block\n",
                    p["free"]["cpu_millis"]
                        .as_u64()
                        .map(|m| format!("{:.1} cores free,", m as f64 / 1000.0))
                        .unwrap_or_default(),
                    p["pricing"]["cpu_per_core"].as_str().unwrap_or("?"),
                    p["pricing"]["memory_per_gib"].as_str().unwrap_or("?")
                ));
            }
        }
        t.trim_end().to_string()
    });
    Ok(ExitCode::SUCCESS)
}

async fn balance(g: &Global, address: Option<String>) -> anyhow::Result<ExitCode> {
    let address: Address = match address {
        Some(a) => a.parse().map_err(|_| bad(format!("`{a}` is not a grid address")))?,
        None => me(g)?,
    };
    let balances = g.client().balances(&address).await.map_err(chain_error)?;
    g.print(&json!({ "address": address, "balances": balances }), || {
        let mut t = address.to_string();
        for c in &balances {
            t.push_str(&format!("\n  {} {}", c.amount, c.denom));
        }
        if balances.is_empty() {
            t.push_str("\n  (empty)");
        }
        t
    });
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {

    /// 1,000 units burnt at 10 a block since height 100, 3,600 blocks an hour: at height 110
    /// 900 are left, 90 blocks, 1.5 minutes.
    #[test]
    fn the_escrow_outlook_counts_what_is_owed_since_settlement() {
        let escrow = EscrowAccount {
            id: DeploymentId { owner: Address([1; 20]), dseq: 1 },
            denom: Denom::new("uusdc").expect("denom"),
            state: gridlease_types::state::EscrowState::Open,
            balance: "1000".parse().expect("amount"),
            deposited: "1000".parse().expect("amount"),
            transferred: DecAmount::ZERO,
            refunded: DecAmount::ZERO,
            rate: "10".parse().expect("amount"),
            settled_at: 100,
            paid_blocks: 0,
            depletes_at: Some(200),
        };
        let o = EscrowOutlook::of(&escrow, 110, 3600.0);
        assert_eq!((o.balance, o.per_block, o.per_hour), (900.0, 10.0, 36_000.0));
        assert_eq!(o.blocks_left, Some(90));
        assert_eq!(
            o.text(),
            "escrow 900 uusdc left, burning 10 uusdc/block (36000 uusdc/hour): about 2 minutes left"
        );
        let idle = EscrowAccount { rate: DecAmount::ZERO, depletes_at: None, ..escrow };
        assert_eq!(EscrowOutlook::of(&idle, 110, 3600.0).hours_left, None);
        assert_eq!(
            (duration(0.5), duration(3.0), duration(72.0)),
            ("30 minutes".into(), "3.0 hours".into(), "3.0 days".into())
        );
    }

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn global(home: &Path, passphrase: &str) -> Global {
        Global {
            home: home.to_path_buf(),
            node: "http://127.0.0.1:9".into(),
            from: "tenant".into(),
            output: "text".into(),
            passphrase: Some(passphrase.into()),
            asked_passphrase: Default::default(),
        }
    }

    #[test]
    fn attack_tenant_mtls_key_is_not_stored_in_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = global(dir.path(), "pw");
        let owner = gridlease_types::Keypair::from_secret([3; 32]).address();
        let made = create_cert(&g, &owner).expect("certificate");
        let cert_dir = cert_dir(&g, &owner);
        for entry in std::fs::read_dir(&cert_dir).expect("cert dir").flatten() {
            let text = std::fs::read_to_string(entry.path()).expect("read");
            assert!(!text.contains("PRIVATE KEY"), "{} holds a clear key", entry.path().display());
        }
        let key = cert_dir.join("key.json");
        let mode = std::fs::metadata(&key).expect("sealed key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_cert(&g, &owner).expect("load").expect("a certificate");
        assert_eq!(loaded.key_pem, made.key_pem);
        let e = load_cert(&global(dir.path(), "nope"), &owner).expect_err("wrong passphrase");
        assert!(e.to_string().contains("wrong passphrase"), "{e}");
        // The sealed key is bound to its owner: moved under another address it is refused.
        let other = gridlease_types::Keypair::from_secret([4; 32]).address();
        let moved = cert_dir.with_file_name(other.to_string());
        std::fs::rename(&cert_dir, &moved).expect("move");
        assert!(load_cert(&g, &other).is_err(), "another owner's sealed key");
    }

    #[test]
    fn a_clear_mtls_key_from_an_older_home_is_sealed_at_first_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = global(dir.path(), "pw");
        let owner = gridlease_types::Keypair::from_secret([5; 32]).address();
        let b = tls::generate(&owner, &[]).expect("generate");
        let d = cert_dir(&g, &owner);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("cert.pem"), &b.cert_pem).expect("write");
        std::fs::write(d.join("pubkey.pem"), &b.pubkey_pem).expect("write");
        std::fs::write(d.join("key.pem"), &b.key_pem).expect("write");
        let loaded = load_cert(&g, &owner).expect("load").expect("a certificate");
        assert_eq!(loaded.key_pem, b.key_pem);
        assert!(!d.join("key.pem").exists(), "the clear key is gone");
        let again = load_cert(&g, &owner).expect("load").expect("a certificate");
        assert_eq!(again.key_pem, b.key_pem, "the sealed key opens");
    }
}
