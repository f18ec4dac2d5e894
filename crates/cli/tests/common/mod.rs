//! A whole market for end-to-end tests: a real `gridlease-node` (the binary next to
//! `gridlease`), a provider set up and run through `gridlease provider ...`, and tenants that
//! sign transactions with the client library and talk to the provider over mutual TLS.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gridlease_client::{Client, LeaseState, ListQuery, Receipt, TxBuilder};
use gridlease_provider::tls::{self, CertBundle};
use gridlease_types::{Address, BidId, Coin, Denom, Keypair, Msg};

pub const GRIDLEASE: &str = env!("CARGO_BIN_EXE_gridlease");

/// The node binary: built by `cargo test --workspace` next to `gridlease`.
pub fn node_binary() -> PathBuf {
    let dir = Path::new(GRIDLEASE).parent().expect("binary directory");
    let bin = dir.join("gridlease-node");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p gridlease-node` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The demo workload binary, built next to `gridlease`.
pub fn demo_binary() -> PathBuf {
    let bin = Path::new(GRIDLEASE).parent().expect("binary directory").join("gridlease-demo-llm");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p gridlease-demo-llm` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Enables the exec driver for development in a provider config and maps the image
/// `gridlease/demo-llm` to the demo binary (which allows that program to run).
pub fn enable_exec_with_demo(config: String) -> String {
    config
        .replace("allow_exec_for_development = false", "allow_exec_for_development = true")
        .replace(
            "# \"gridlease/demo-llm\" = \"/usr/local/bin/gridlease-demo-llm\"",
            &format!("\"gridlease/demo-llm\" = \"{}\"", demo_binary().display()),
        )
}

/// A child process killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` with stderr to `log` and returns once a stdout line starts with `ready`
/// (giving the rest of that line), or panics with the log's tail.
fn spawn_until(mut cmd: Command, log: &Path, ready: &str) -> (Proc, String) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
    let mut child = cmd.stdout(Stdio::piped()).stderr(file).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(&ready) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let mut proc = Proc { child, log: log.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(rest) => return (proc, rest),
            Err(_) if Instant::now() < deadline => {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    panic!("process exited with {status}:\n{}", proc.log_tail());
                }
            }
            Err(_) => {
                let tail = proc.log_tail();
                proc.kill();
                panic!("process did not become ready:\n{tail}");
            }
        }
    }
}

/// A key from a fixed seed byte.
pub fn key(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

/// Initialises and starts a one-validator node with 200 ms blocks, funding `fund`.
pub fn start_node(dir: &Path, fund: &[Address]) -> (Proc, String) {
    let home = dir.join("node");
    let mut init = Command::new(node_binary());
    init.args(["init", "--home"]).arg(&home).args(["--chain-id", "e2e"]);
    for a in fund {
        init.arg("--fund").arg(format!("{a}=1000000000000ugrid,1000000000000uusdc"));
    }
    let out = init.output().expect("node init");
    assert!(out.status.success(), "node init: {}", String::from_utf8_lossy(&out.stderr));
    let mut run = Command::new(node_binary());
    run.args(["run", "--home"]).arg(&home).args([
        "--rpc-addr",
        "127.0.0.1:0",
        "--p2p-addr",
        "127.0.0.1:0",
        "--block-time-ms",
        "200",
    ]);
    spawn_until(run, &dir.join("node.log"), "rpc listening on ")
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The keystore passphrase of the providers these tests set up.
pub const PROVIDER_PASSPHRASE: &str = "e2e provider passphrase";

/// Runs `gridlease ARGS` to completion, with the providers' passphrase, and returns (success,
/// stdout, stderr).
pub fn gridlease(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(GRIDLEASE)
        .args(args)
        .env("GRIDLEASE_PASSPHRASE", PROVIDER_PASSPHRASE)
        .output()
        .expect("run gridlease");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A provider home set up with `gridlease provider init`, with `edit` applied to its
/// provider.toml, then registered.
pub fn setup_provider(
    home: &Path,
    rpc: &str,
    driver: &str,
    mnemonic: &str,
    edit: impl FnOnce(String) -> String,
) -> u16 {
    let port = free_port();
    let mfile = home.with_extension("mnemonic");
    std::fs::write(&mfile, mnemonic).expect("write mnemonic");
    let (ok, _, err) = gridlease(&[
        "provider",
        "init",
        "--home",
        home.to_str().expect("utf8"),
        "--node",
        rpc,
        "--port",
        &port.to_string(),
        "--driver",
        driver,
        "--mnemonic-file",
        mfile.to_str().expect("utf8"),
    ]);
    assert!(ok, "provider init: {err}");
    let cfg = home.join("provider.toml");
    let text = std::fs::read_to_string(&cfg).expect("read config");
    std::fs::write(&cfg, edit(text)).expect("write config");
    let (ok, out, err) =
        gridlease(&["provider", "register", "--home", home.to_str().expect("utf8")]);
    assert!(ok, "provider register: {out}{err}");
    port
}

/// Starts `gridlease provider run`; returns once it listens.
pub fn start_provider(home: &Path) -> Proc {
    let mut cmd = Command::new(GRIDLEASE);
    cmd.args(["provider", "run", "--home"])
        .arg(home)
        .env("GRIDLEASE_LOG", "debug")
        .env("GRIDLEASE_PASSPHRASE", PROVIDER_PASSPHRASE);
    spawn_until(cmd, &home.join("provider.log"), "provider ").0
}

/// A tenant: its key, its signer, and the certificate it registered.
pub struct Tenant {
    pub client: Client,
    pub builder: TxBuilder,
    pub cert: CertBundle,
}

pub fn ugrid() -> Denom {
    Denom::new("ugrid").expect("denom")
}

impl Tenant {
    pub async fn new(rpc: &str, key: Keypair) -> Tenant {
        let client = Client::new(rpc);
        let builder =
            TxBuilder::for_key(&client, key, Coin::new(1_000, &ugrid())).await.expect("builder");
        let address = builder.key.address();
        let cert = tls::generate(&address, &[]).expect("cert");
        let mut t = Tenant { client, builder, cert };
        let msg = t.cert_msg(&t.cert.clone());
        t.ok(vec![msg]).await;
        t
    }

    pub fn address(&self) -> Address {
        self.builder.key.address()
    }

    pub fn cert_msg(&self, b: &CertBundle) -> Msg {
        Msg::CreateCertificate {
            cert_pem: b.cert_pem.clone().into_bytes(),
            pubkey_pem: b.pubkey_pem.clone().into_bytes(),
        }
    }

    /// Submits and waits for the receipt.
    pub async fn submit(&mut self, msgs: Vec<Msg>) -> Receipt {
        let tx = self.builder.build(msgs);
        let r = self.client.submit(&tx, true).await.expect("submit");
        r.receipt.expect("committed")
    }

    /// Submits and asserts success.
    pub async fn ok(&mut self, msgs: Vec<Msg>) {
        let r = self.submit(msgs).await;
        assert!(r.is_ok(), "tx failed: {} {}", r.code, r.log);
    }

    /// Creates a deployment from SDL text; returns the manifest bytes.
    pub async fn deploy(&mut self, dseq: u64, sdl_text: &str) -> Vec<u8> {
        let sdl = gridlease_sdl::Sdl::parse("app.yaml", sdl_text).expect("valid sdl");
        let groups = gridlease_client::sdl::group_specs(&sdl).expect("groups");
        let manifest = gridlease_client::sdl::manifest_bytes(&sdl);
        let deposit = Coin::new(5_000_000, &Denom::new("uusdc").expect("denom"));
        let hash = gridlease_client::sdl::manifest_hash(&sdl);
        self.ok(vec![Msg::CreateDeployment { dseq, groups, manifest_hash: hash, deposit }]).await;
        manifest
    }

    /// Waits until the deployment's first group has an active lease.
    pub async fn wait_lease(&self, dseq: u64, within: Duration) -> BidId {
        let deadline = Instant::now() + within;
        let q = ListQuery { owner: Some(self.address()), ..Default::default() };
        loop {
            let leases = self.client.leases(&q).await.expect("leases");
            if let Some(l) =
                leases.iter().find(|l| l.id.order.dseq == dseq && l.state == LeaseState::Active)
            {
                return l.id;
            }
            assert!(Instant::now() < deadline, "no lease for dseq {dseq} in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plain HTTP GET on loopback; the status code, or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// POSTs `body` as JSON to `url` (`http://HOST:PORT`) + `path` and returns the status code and
/// the whole response (headers and body); waits at most `read_timeout` for the answer.
pub fn post_json(
    url: &str,
    path: &str,
    body: &str,
    read_timeout: Duration,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(read_timeout)).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}
