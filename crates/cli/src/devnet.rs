//! `gridlease devnet`: the whole market on one machine in one command. A validator (1 s
//! blocks), several providers with declared GPUs of different models and prices (podman when
//! its API answers and the demo image can be built here, exec otherwise), a funded tenant key,
//! and a demo deployment of `gridlease-demo-llm` (an OpenAI-compatible echo server, clearly
//! no model). Ctrl-C stops every process; running it again on the same `--home` resumes.
//! Once everything is up it writes `HOME/devnet.json` for scripts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gridlease_client::{Client, LeaseState, ListQuery};
use gridlease_provider::config::DriverKind;
use gridlease_provider::durable_file::write_durably;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::context::{Global, bad, failed};
use crate::keys::{Keystore, new_mnemonic};

/// Passphrase of the devnet's throwaway keystore unless `GRIDLEASE_PASSPHRASE` is set.
const DEVNET_PASSPHRASE: &str = "devnet";
/// Name of the funded tenant key.
const TENANT: &str = "tenant";
/// The demo image: a podman image built here, or a program for the exec driver.
const DEMO_IMAGE: &str = "localhost/gridlease/demo-llm:0.1.0";
/// Blocks an auction stays open on devnet.
const BID_WINDOW: u64 = 2;

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Where the devnet keeps its chain, providers, keys and logs (resumed when it exists).
    #[arg(long, default_value = "gridlease-devnet")]
    home: PathBuf,
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
}

/// What a devnet keeps between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevnetState {
    driver: DriverKind,
    providers: Vec<ProviderSetup>,
    demo_dseq: Option<u64>,
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
    let exe = self_exe()?;
    let dir = exe.parent().ok_or_else(|| failed("the gridlease executable has no directory"))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return Ok(path);
    }
    let hint = || {
        failed(format!(
            "{name} is not next to {}: build it with `cargo build --release -p gridlease-cli -p gridlease-node -p gridlease-demo-llm`",
            exe.display()
        ))
    };
    let (workspace, target_dir, profile) = build_place(dir).ok_or_else(hint)?;
    println!("building {package} ({profile}) first");
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

/// Spawns `cmd` with stderr to `log`; returns once a stdout line starts with `ready` (its
/// rest), failing with the log's tail if the process exits or takes longer than `within`.
fn spawn_ready(
    mut cmd: Command,
    log: &Path,
    ready: &'static str,
    within: Duration,
) -> anyhow::Result<(Child, String)> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = cmd.stdout(Stdio::piped()).stderr(file).stdin(Stdio::null()).spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| failed("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(ready) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let deadline = Instant::now() + within;
    loop {
        if let Ok(rest) = rx.recv_timeout(Duration::from_millis(100)) {
            return Ok((child, rest));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!(
                "{} exited with {status}; see {}:\n{}",
                ready.trim(),
                log.display(),
                tail(log)
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(failed(format!(
                "{} did not start in time; see {}",
                ready.trim(),
                log.display()
            )));
        }
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

fn demo_sdl() -> String {
    format!(
        r#"# gridlease devnet demo: an OpenAI-compatible DEMO server (echo, no model) on one GPU.
version: "2.0"
services:
  llm:
    image: {DEMO_IMAGE}
    env:
      - DEMO=1
    expose:
      - port: 8080
        as: 8080
        to:
          - global: true
profiles:
  compute:
    llm:
      resources:
        cpu: {{ units: 0.5 }}
        memory: {{ size: 256Mi }}
        storage: {{ size: 1Gi }}
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: "*"
  placement:
    devnet:
      pricing:
        llm: {{ denom: uusdc, amount: 100 }}
deployment:
  llm:
    devnet: {{ profile: llm, count: 1 }}
"#
    )
}

fn provider_config(text: String, driver: DriverKind, demo: &Path, fleet: usize) -> String {
    let (model, ram, interface, count, gpu_price, cpu_price) = FLEET[fleet % FLEET.len()];
    // Providers share this host: each hands out host ports from its own range.
    let first_port = 31000 + 200 * fleet as u32;
    let mut t = text
        .replace("port_range = [31000, 32767]", &format!("port_range = [{first_port}, {}]", first_port + 199))
        .replace("cpu_per_core = \"1\"", &format!("cpu_per_core = \"{cpu_price}\""))
        .replace("gpu_default = \"20\"", &format!("gpu_default = \"{gpu_price}\""))
        .replace("region = \"local\"", &format!("region = \"devnet-{}\"", fleet + 1))
        .replace("health_interval_ms = 1000", "health_interval_ms = 200")
        .replace("withdraw_every_blocks = 600", "withdraw_every_blocks = 60")
        .replace(
            "storage_classes = [\"default\", \"beta2\"]",
            &format!(
                "storage_classes = [\"default\", \"beta2\"]\nskip_nvml = true\nattach_gpus = false\n[[inventory.gpus]]\nvendor = \"nvidia\"\nmodel = \"{model}\"\nram = \"{ram}\"\ninterface = \"{interface}\"\ncount = {count}"
            ),
        );
    if driver == DriverKind::Exec {
        // A devnet is a development machine: the exec driver runs, and only the demo program
        // (mapped from the demo image, which allows it).
        t = t
            .replace("allow_exec_for_development = false", "allow_exec_for_development = true")
            .replace(
                "# \"gridlease/demo-llm\" = \"/usr/local/bin/gridlease-demo-llm\"",
                &format!("\"{DEMO_IMAGE}\" = \"{}\"", demo.display()),
            );
    }
    t
}

pub fn run(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let home = std::path::absolute(&args.home).unwrap_or(args.home.clone());
    std::fs::create_dir_all(home.join("logs"))
        .with_context(|| format!("cannot create {}", home.display()))?;
    let node_bin = sibling("gridlease-node", "gridlease-node")?;
    let demo_bin = sibling("gridlease-demo-llm", "gridlease-demo-llm")?;
    let passphrase =
        std::env::var(crate::keys::PASSPHRASE_ENV).unwrap_or_else(|_| DEVNET_PASSPHRASE.into());
    let keystore = Keystore::new(&home);
    let state_path = home.join("devnet-state.json");
    let rpc = format!("http://127.0.0.1:{}", args.rpc_port);
    if std::net::TcpStream::connect(("127.0.0.1", args.rpc_port)).is_ok() {
        return Err(bad(format!(
            "port {} is taken (another devnet or node?): stop it, or pass --rpc-port",
            args.rpc_port
        )));
    }

    let fresh = !state_path.exists();
    let mut state: DevnetState = match std::fs::read(&state_path) {
        Ok(bytes) => {
            let s: DevnetState = serde_json::from_slice(&bytes).map_err(|e| {
                failed(format!(
                    "{} is damaged: {e}; delete {} to start over",
                    state_path.display(),
                    home.display()
                ))
            })?;
            println!("resuming the devnet in {} ({} driver)", home.display(), s.driver.name());
            s
        }
        Err(_) => {
            let driver = match args.driver {
                Some(d) => d,
                None => match podman_works(&demo_bin).await {
                    Ok(()) => DriverKind::Podman,
                    Err(why) => {
                        println!(
                            "podman is not usable here ({why}): the providers use the exec driver"
                        );
                        DriverKind::Exec
                    }
                },
            };
            if driver == DriverKind::Podman {
                podman_works(&demo_bin)
                    .await
                    .map_err(|why| failed(format!("the podman driver cannot run here: {why}")))?;
            }
            println!("creating a devnet in {} ({} driver)", home.display(), driver.name());
            let tenant = keystore.store(TENANT, &new_mnemonic()?, &passphrase)?;
            let mut providers = Vec::new();
            let mut fund = vec![format!("{tenant}=1000000000000ugrid,1000000000000uusdc")];
            for i in 0..args.providers.max(1) as usize {
                let dir = home.join(format!("provider-{}", i + 1));
                let port = free_port()?;
                let kind = driver;
                let address = crate::provider::init_home(
                    &dir,
                    &rpc,
                    port,
                    kind,
                    &new_mnemonic()?,
                    &passphrase,
                )?;
                let cfg = dir.join("provider.toml");
                let text = std::fs::read_to_string(&cfg)?;
                std::fs::write(&cfg, provider_config(text, driver, &demo_bin, i))?;
                let (model, _, _, count, price, _) = FLEET[i % FLEET.len()];
                fund.push(format!("{address}=1000000000000ugrid,1000000000000uusdc"));
                providers.push(ProviderSetup {
                    name: format!("provider-{}", i + 1),
                    home: dir,
                    address: address.to_string(),
                    host_uri: format!("https://127.0.0.1:{port}"),
                    gpu: format!("{count}x nvidia/{model} at {price} uusdc per GPU-block"),
                });
            }
            let mut init = Command::new(&node_bin);
            init.args(["init", "--home"]).arg(home.join("node")).args([
                "--chain-id",
                "gridlease-devnet",
                "--bid-window",
                &BID_WINDOW.to_string(),
            ]);
            for f in &fund {
                init.arg("--fund").arg(f);
            }
            let out = init.output()?;
            if !out.status.success() {
                return Err(failed(format!(
                    "node init failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let s = DevnetState { driver, providers, demo_dseq: None };
            write_durably(&state_path, &serde_json::to_vec_pretty(&s)?, 0o600)?;
            s
        }
    };

    // The validator.
    let mut procs = Procs(Vec::new());
    let mut run = Command::new(&node_bin);
    run.args(["run", "--home"])
        .arg(home.join("node"))
        .args(["--rpc-addr", &format!("127.0.0.1:{}", args.rpc_port), "--p2p-addr", "127.0.0.1:0"])
        .args(["--block-time-ms", &args.block_time_ms.to_string()]);
    let (child, _) = spawn_ready(
        run,
        &home.join("logs/node.log"),
        "rpc listening on ",
        Duration::from_secs(60),
    )?;
    procs.0.push(("node".into(), child));
    println!("validator: {rpc} (log: {})", home.join("logs/node.log").display());

    // The providers: registered on the first run, then their daemons.
    for p in &state.providers {
        if fresh {
            crate::provider::register(&p.home, Some(&passphrase)).await?;
        }
        let mut cmd = Command::new(self_exe()?);
        cmd.args(["provider", "run", "--stop-workloads-on-exit", "--home"])
            .arg(&p.home)
            .env(crate::keys::PASSPHRASE_ENV, &passphrase);
        let log = home.join(format!("logs/{}.log", p.name));
        let (child, _) = spawn_ready(cmd, &log, "provider ", Duration::from_secs(60))?;
        procs.0.push((p.name.clone(), child));
        println!("{}: {} {} (log: {})", p.name, p.address, p.gpu, log.display());
    }

    let g = Global {
        home: home.clone(),
        node: rpc.clone(),
        from: TENANT.into(),
        output: "text".into(),
        passphrase: Some(passphrase.clone()),
        asked_passphrase: Default::default(),
    };
    let client = Client::new(&rpc);
    let mut demo = Value::Null;
    if !args.no_demo {
        let active = match state.demo_dseq {
            Some(d) => active_endpoints(&g, &client, d).await,
            None => None,
        };
        demo = match active {
            Some(v) => v,
            None => {
                let file = home.join("demo.yaml");
                std::fs::write(&file, demo_sdl())?;
                println!("deploying the demo ({}):", file.display());
                let v =
                    crate::tenant::deploy(&g, &file, None, false, None, Duration::from_secs(120))
                        .await?;
                state.demo_dseq = v["dseq"].as_u64();
                write_durably(&state_path, &serde_json::to_vec_pretty(&state)?, 0o600)?;
                v
            }
        };
    }
    let endpoint = demo["leases"][0]["endpoints"]["llm"][0].as_str().map(str::to_string);
    let tenant = keystore.address(TENANT)?;
    let info = json!({
        "rpc": rpc,
        "chain_id": "gridlease-devnet",
        "home": home,
        "driver": state.driver,
        "tenant_key": TENANT,
        "tenant_address": tenant,
        "passphrase_env": crate::keys::PASSPHRASE_ENV,
        "providers": state.providers.iter().map(|p| json!({ "name": p.name, "address": p.address, "uri": p.host_uri, "gpu": p.gpu })).collect::<Vec<_>>(),
        "demo": { "dseq": state.demo_dseq, "endpoints": demo["leases"][0]["endpoints"] },
        "logs": home.join("logs"),
    });
    write_durably(&home.join("devnet.json"), &serde_json::to_vec_pretty(&info)?, 0o600)?;
    println!();
    println!("gridlease devnet is up. Everything about it: {}", home.join("devnet.json").display());
    if let Some(e) = &endpoint {
        println!("demo endpoint (a DEMO server that echoes, not a model): {e}");
        println!(
            "  curl {e}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"gridlease-demo-echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'"
        );
    }
    println!("use the tenant from another shell:");
    println!(
        "  export GRIDLEASE_HOME={} GRIDLEASE_NODE={rpc} GRIDLEASE_FROM={TENANT} {}={passphrase}",
        home.display(),
        crate::keys::PASSPHRASE_ENV
    );
    // The command as this shell can run it: `gridlease` may not be on PATH (cargo run).
    let me = self_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "gridlease".into());
    println!(
        "  {me} providers; {me} leases; {me} status {}",
        state.demo_dseq.map(|d| d.to_string()).unwrap_or_else(|| "DSEQ".into())
    );
    println!(
        "logs: {}   stop: Ctrl-C (run it again with --home {} to resume)",
        home.join("logs").display(),
        home.display()
    );

    // Until Ctrl-C or SIGTERM, or a child dies. The signal streams live across iterations so
    // that a signal arriving between two polls is not lost.
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
                if dead.is_some() {
                    break dead;
                }
            }
        }
    };
    println!("stopping the devnet");
    procs.stop();
    match died {
        Some(name) => {
            Err(failed(format!("{name} stopped unexpectedly; see {}", home.join("logs").display())))
        }
        None => {
            println!("stopped; run `gridlease devnet --home {}` to resume", home.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo's endpoints when its deployment still has a ready lease.
async fn active_endpoints(g: &Global, client: &Client, dseq: u64) -> Option<Value> {
    let owner = g.keystore().address(TENANT).ok()?;
    let leases =
        client.leases(&ListQuery { owner: Some(owner), ..Default::default() }).await.ok()?;
    let lease =
        leases.into_iter().find(|l| l.id.order.dseq == dseq && l.state == LeaseState::Active)?;
    let cert = crate::tenant::load_cert_pub(g, &owner).ok()??;
    let api = gridlease_provider::api_client::ProviderApi::from_chain(
        client,
        &lease.id.provider,
        Some(&cert),
    )
    .await
    .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = api.lease_status(&lease.id).await.ok()?;
        if s.phase == gridlease_provider::api::Phase::Ready {
            println!("the demo deployment {dseq} is running again");
            return Some(
                json!({ "dseq": dseq, "leases": [{ "lease": lease.id, "provider": lease.id.provider, "endpoints": s.endpoints() }] }),
            );
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
