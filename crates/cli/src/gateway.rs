//! `gridlease gateway`: one OpenAI-compatible endpoint over the leases of a model. Each
//! `--route NAME=DSEQ[,DSEQ...]` serves requests whose `model` is NAME on the active leases of
//! those deployments of the `--from` tenant, found on chain and at their providers (mutual
//! TLS with the tenant's certificate) and followed live; `http://` URLs are fixed replicas.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gridlease_gateway::discovery::{ConfigFile, Discovery, Upstream, parse_route};
use gridlease_gateway::{Gateway, Settings};

use crate::context::{Global, bad};
use crate::keys::Keystore;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    g: Global,
    /// Address to serve on (default 127.0.0.1:8000).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// NAME=DSEQ[,DSEQ...] or NAME=http://HOST:PORT[,...] (repeatable).
    #[arg(long = "route", value_name = "NAME=DSEQ[,DSEQ...]")]
    routes: Vec<String>,
    /// A TOML file with `listen`, `service` and `[routes] NAME = ["DSEQ", ...]`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The service of each lease that serves the model (default: each lease's first).
    #[arg(long)]
    service: Option<String>,
    /// API keys with token budgets: a TOML file of `[[key]]` tables (`name`, `key`,
    /// `budget_tokens`). Without it the gateway is open to anyone who reaches it.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// How often the replicas are read again from the chain, milliseconds.
    #[arg(long, default_value_t = 5000)]
    discovery_interval_ms: u64,
    /// Also be the routed deployments' monitor, as `gridlease watch` is (in this process):
    /// report their leases' health on chain and send the kept manifest to a lease that
    /// replaces a failed one.
    #[arg(long)]
    watch: bool,
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: std::sync::Arc<Gateway>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts a gateway for `routes` on `listen`; deployments are followed on chain as `g`'s
/// tenant.
pub async fn start(
    g: &Global,
    listen: SocketAddr,
    routes: BTreeMap<String, Vec<Upstream>>,
    service: Option<String>,
    interval: Duration,
    keys: gridlease_gateway::keys::Keys,
) -> anyhow::Result<Running> {
    let fixed = routes
        .iter()
        .map(|(name, ups)| {
            let urls = ups
                .iter()
                .filter_map(|u| match u {
                    Upstream::Url(url) => Some((url.clone(), url.clone())),
                    Upstream::Deployment(_) => None,
                })
                .collect();
            (name.clone(), urls)
        })
        .collect();
    let settings = Settings { max_attempts: 3, ..Settings::default() };
    let gateway = Gateway::with_keys(fixed, settings, keys);
    let mut tasks = Vec::new();
    if routes.values().flatten().any(|u| matches!(u, Upstream::Deployment(_))) {
        let owner = Keystore::new(&g.home).address(&g.from)?;
        let cert = crate::tenant::load_cert_pub(g, &owner)?.ok_or_else(|| {
            bad(format!(
                "{} has no mTLS certificate for {owner}: `gridlease deploy` makes one",
                g.home.display()
            ))
        })?;
        let discovery = Discovery { chain: g.client(), owner, cert, service, interval };
        tasks.push(tokio::spawn(discovery.follow(gateway.clone(), routes)));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let serving = gridlease_gateway::serve(listener, gateway.clone(), std::future::pending());
    tasks.push(tokio::spawn(serving));
    Ok(Running { addr, gateway, tasks })
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ConfigFile::parse(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?
        }
        None => ConfigFile::default(),
    };
    let mut routes: BTreeMap<String, Vec<Upstream>> = BTreeMap::new();
    for (name, specs) in &file.routes {
        let ups = specs
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<Upstream>, _>>()
            .map_err(|e| bad(format!("route {name}: {e}")))?;
        routes.insert(name.clone(), ups);
    }
    for r in &args.routes {
        let (name, ups) = parse_route(r).map_err(bad)?;
        routes.entry(name).or_default().extend(ups);
    }
    if routes.is_empty() {
        return Err(bad("no route: pass --route NAME=DSEQ (or a --config file with [routes])"));
    }
    let listen =
        args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
    let service = args.service.or(file.service);
    let interval = Duration::from_millis(args.discovery_interval_ms.max(100));
    let keys = match &args.keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            gridlease_gateway::keys::Keys::from_toml(&text)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?
        }
        None => gridlease_gateway::keys::Keys::open(),
    };
    let open = keys.is_open();
    let running = start(&args.g, listen, routes.clone(), service, interval, keys).await?;
    println!("gateway listening on http://{} (OpenAI API under /v1)", running.addr);
    if open {
        println!("no --keys file: the gateway is OPEN to anyone who can reach it");
    }
    for (name, ups) in &routes {
        println!("  model {name}: {ups:?}");
    }
    let mut tasks = running.tasks;
    if args.watch {
        let dseqs: Vec<u64> = routes
            .values()
            .flatten()
            .filter_map(|u| match u {
                Upstream::Deployment(d) => Some(*d),
                Upstream::Url(_) => None,
            })
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .collect();
        if dseqs.is_empty() {
            return Err(bad("--watch needs a route to a deployment (NAME=DSEQ)"));
        }
        let out = crate::watch::Out::Stdout { json: args.g.json() };
        let opts = crate::watch::WatchOpts::default();
        tasks.push(crate::watch::start(args.g.clone(), dseqs.clone(), opts, out).await?);
        println!(
            "watching deployments {dseqs:?}: health reports on chain, manifests after failover"
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    for t in tasks {
        t.abort();
    }
    Ok(ExitCode::SUCCESS)
}
