//! `gridlease provider init|register|run|status`: set up a machine as a provider, publish it
//! on chain, run the daemon, and see what it holds and decides.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gridlease_client::{Client, TxBuilder};
use gridlease_provider::api_client::ProviderApi;
use gridlease_provider::config::{self, Config, DriverKind};
use gridlease_provider::home::Home;
use gridlease_provider::{daemon, tls};
use gridlease_types::msg::ProviderInfo;
use gridlease_types::{Address, Keypair, Msg};

use crate::context::{bad, failed};
use crate::keys::{
    Keystore, PASSPHRASE_ENV, SecretKind, create_private_dir, open_sealed_text, seal_text,
};

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Create a provider home: commented provider.toml, an account key in the encrypted
    /// keystore (new, or from --mnemonic-file; an existing key is always kept), a TLS
    /// certificate.
    Init(InitArgs),
    /// Publish the provider (host URI, attributes) and its certificate on chain.
    Register(HomeArgs),
    /// Run the daemon: bid on matching orders, run leases, serve tenants over mutual TLS.
    Run(RunArgs),
    /// What the running daemon offers, holds and decided recently.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Provider home directory.
    #[arg(long)]
    home: PathBuf,
    /// RPC URL of a node.
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    node: String,
    /// Port of the manifest service.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Runtime driver: podman or exec.
    #[arg(long, default_value = "podman")]
    driver: DriverKind,
    /// Use the BIP39 mnemonic in this file instead of a new one.
    #[arg(long)]
    mnemonic_file: Option<PathBuf>,
    /// Rewrite the provider.toml of an existing home (its key is kept all the same).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct HomeArgs {
    /// Provider home directory.
    #[arg(long)]
    home: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Provider home directory.
    #[arg(long)]
    home: PathBuf,
    /// Stop the workloads when the daemon stops (they start again with it); for devnets.
    #[arg(long)]
    stop_workloads_on_exit: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Provider home directory.
    #[arg(long)]
    home: PathBuf,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: String,
}

pub fn run(cmd: ProviderCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cmd {
        ProviderCommand::Init(a) => init(a),
        ProviderCommand::Register(a) => rt.block_on(register(&a.home, None)),
        ProviderCommand::Run(a) => {
            init_tracing();
            require_key(&a.home)?;
            let passphrase = crate::keys::passphrase("unlock the provider key", false)?;
            let key = load_key(&a.home, Some(&passphrase))?;
            let tls = load_tls(&a.home, &key.address(), &passphrase)?;
            let home = Home::new(&a.home);
            rt.block_on(daemon::run(home, key, tls, a.stop_workloads_on_exit))?;
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Status(a) => rt.block_on(status(&a.home, &a.output)),
    }
}

pub fn init_tracing() {
    let filter = std::env::var("GRIDLEASE_LOG").unwrap_or_else(|_| "info".into());
    let level = filter.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).try_init();
}

/// Name of the provider's account key in the keystore of its home (`keys/provider.json`).
pub const PROVIDER_KEY: &str = "provider";

/// The provider's account key, unlocked with `passphrase` (else `GRIDLEASE_PASSPHRASE` or a
/// prompt).
pub fn load_key(dir: &Path, passphrase: Option<&str>) -> anyhow::Result<Keypair> {
    require_key(dir)?;
    let keystore = Keystore::new(dir);
    match passphrase {
        Some(p) => keystore.unlock_with(PROVIDER_KEY, p),
        None => keystore.unlock(PROVIDER_KEY),
    }
}

/// Fails, saying what to do, when the home has no provider key in its keystore.
fn require_key(dir: &Path) -> anyhow::Result<()> {
    if !Keystore::new(dir).exists(PROVIDER_KEY) {
        let clear = Home::new(dir).clear_key_path();
        if clear.exists() {
            return Err(bad(format!(
                "{} holds the provider key in clear: run `gridlease provider init --home {}` once to move it into the encrypted keystore (same key, same address)",
                clear.display(),
                dir.display()
            )));
        }
        return Err(bad(format!(
            "there is no provider key in {}: run `gridlease provider init --home {}` first",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// The address of a mnemonic.
fn address_of(mnemonic: &str) -> anyhow::Result<Address> {
    let words = mnemonic.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Keypair::from_mnemonic(&words, "", 0)
        .map_err(|e| bad(format!("the mnemonic is not valid: {e}")))?
        .address())
}

/// What [`ensure_key`] did.
enum KeyOutcome {
    /// The home already had the key: kept as it is.
    Kept(Address),
    /// A clear `key.json` moved into the keystore.
    Moved(Address),
    /// A key stored from the given mnemonic.
    Imported(Address),
    /// A new key; its mnemonic must be shown once.
    Created(Address, String),
}

/// Makes sure the home holds the provider key in its encrypted keystore, never replacing one:
/// an existing key is kept (a `--mnemonic-file` for another key is refused), a clear
/// `key.json` is moved in, else the key comes from `mnemonic` or a new mnemonic.
fn ensure_key(
    dir: &Path,
    mnemonic: Option<&str>,
    passphrase: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<KeyOutcome> {
    let keystore = Keystore::new(dir);
    let home = Home::new(dir);
    let refuse = |existing: Address, path: &Path| {
        bad(format!(
            "{} already holds the provider key {existing}, which is never replaced: drop --mnemonic-file, or use another --home",
            path.display()
        ))
    };
    if keystore.exists(PROVIDER_KEY) {
        let existing = keystore.address(PROVIDER_KEY)?;
        if let Some(m) = mnemonic
            && address_of(m)? != existing
        {
            return Err(refuse(existing, &dir.join("keys")));
        }
        return Ok(KeyOutcome::Kept(existing));
    }
    let clear = home.clear_key_path();
    if clear.exists() {
        #[derive(serde::Deserialize)]
        struct ClearKeyFile {
            mnemonic: String,
        }
        let text = std::fs::read_to_string(&clear)
            .with_context(|| format!("cannot read {}", clear.display()))?;
        let old: ClearKeyFile = serde_json::from_str(&text).map_err(|e| {
            failed(format!(
                "{} is not a provider key file ({e}): move it away by hand",
                clear.display()
            ))
        })?;
        let existing = address_of(&old.mnemonic)?;
        if let Some(m) = mnemonic
            && address_of(m)? != existing
        {
            return Err(refuse(existing, &clear));
        }
        let address = keystore.store(PROVIDER_KEY, &old.mnemonic, &passphrase()?)?;
        std::fs::remove_file(&clear)
            .with_context(|| format!("cannot remove {} after moving it", clear.display()))?;
        return Ok(KeyOutcome::Moved(address));
    }
    let (words, created) = match mnemonic {
        Some(m) => (m.to_string(), false),
        None => (crate::keys::new_mnemonic()?, true),
    };
    let address = keystore.store(PROVIDER_KEY, &words, &passphrase()?)?;
    Ok(if created { KeyOutcome::Created(address, words) } else { KeyOutcome::Imported(address) })
}

/// Name bound into the sealed key of the manifest service's certificate.
const TLS_SERVER_KEY_NAME: &str = "tls-server-key";

/// Writes the config template, and a TLS certificate unless the home has one, its private key
/// sealed with `passphrase` (the provider key's, so one passphrase opens both).
fn write_config_and_tls(
    dir: &Path,
    (node, port, driver): (&str, u16, DriverKind),
    address: &Address,
    passphrase: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let home = Home::new(dir);
    std::fs::write(home.config_path(), config::template(node, port, driver))
        .with_context(|| format!("cannot write {}", home.config_path().display()))?;
    let (sealed, clear) = (home.tls_key_path(), home.clear_tls_key_path());
    if home.load_certificate().is_ok() && (sealed.exists() || clear.exists()) {
        return Ok(());
    }
    let bundle = tls::generate(address, &["localhost".into(), "127.0.0.1".into()])?;
    home.save_certificate(&bundle)?;
    // A key left without its certificate (an interrupted init) is of no use.
    for stale in [&sealed, &clear] {
        if stale.exists() {
            std::fs::remove_file(stale)?;
        }
    }
    let kind = (SecretKind::TlsServerKey, TLS_SERVER_KEY_NAME);
    seal_text(&sealed, kind, *address, &bundle.key_pem, &passphrase()?)
}

/// The manifest service's certificate with its private key, opened with `passphrase`; a key
/// an older gridlease left in clear (`tls/key.pem`) is sealed here.
fn load_tls(dir: &Path, address: &Address, passphrase: &str) -> anyhow::Result<tls::CertBundle> {
    let home = Home::new(dir);
    let mut bundle = home.load_certificate()?;
    let paths = (home.tls_key_path(), home.clear_tls_key_path());
    let key = open_sealed_text(
        (&paths.0, &paths.1),
        (SecretKind::TlsServerKey, TLS_SERVER_KEY_NAME),
        *address,
        passphrase,
        "the provider's TLS key",
    )?;
    bundle.key_pem = key.ok_or_else(|| {
        bad(format!(
            "{} has no TLS key: run `gridlease provider init --home {} --force` for a new certificate, then `gridlease provider register`",
            home.tls_dir().display(),
            dir.display()
        ))
    })?;
    Ok(bundle)
}

/// Writes a new provider home (devnet): the key from `mnemonic` sealed with `passphrase`, the
/// config template, a TLS certificate.
pub fn init_home(
    dir: &Path,
    node: &str,
    port: u16,
    driver: DriverKind,
    mnemonic: &str,
    passphrase: &str,
) -> anyhow::Result<Address> {
    create_private_dir(dir)?;
    let address = match ensure_key(dir, Some(mnemonic), || Ok(passphrase.to_string()))? {
        KeyOutcome::Kept(a) | KeyOutcome::Moved(a) | KeyOutcome::Imported(a) => a,
        KeyOutcome::Created(a, _) => a,
    };
    write_config_and_tls(dir, (node, port, driver), &address, || Ok(passphrase.to_string()))?;
    Ok(address)
}

fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    let home = Home::new(&a.home);
    if home.config_path().exists() && !a.force {
        return Err(bad(format!(
            "{} already exists: use another --home, or --force to rewrite it (the provider key is kept)",
            home.config_path().display()
        )));
    }
    let mnemonic = match &a.mnemonic_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| bad(format!("cannot read {}: {e}", f.display())))?,
        ),
        None => None,
    };
    let driver = a.driver;
    create_private_dir(&a.home)?;
    // Asked once: the TLS key is sealed with the passphrase the provider key has.
    let asked = std::cell::OnceCell::new();
    let outcome = ensure_key(&a.home, mnemonic.as_deref(), || {
        let p = crate::keys::passphrase("encrypt the provider key", true)?;
        Ok(asked.get_or_init(|| p).clone())
    })?;
    let key_file = a.home.join("keys").join(format!("{PROVIDER_KEY}.json"));
    let address = match &outcome {
        KeyOutcome::Kept(a) | KeyOutcome::Moved(a) | KeyOutcome::Imported(a) => *a,
        KeyOutcome::Created(a, _) => *a,
    };
    write_config_and_tls(&a.home, (&a.node, a.port, driver), &address, || match asked.get() {
        Some(p) => Ok(p.clone()),
        None => {
            // A kept key: its passphrase, checked by opening it.
            let p = crate::keys::passphrase("unlock the provider key", false)?;
            Keystore::new(&a.home).unlock_with(PROVIDER_KEY, &p)?;
            Ok(p)
        }
    })?;
    println!("provider home: {}", a.home.display());
    println!("address: {address}");
    match &outcome {
        KeyOutcome::Kept(_) => {
            println!("key: kept the existing key in {}", key_file.display())
        }
        KeyOutcome::Moved(_) => println!(
            "key: moved from the clear key.json into the encrypted keystore ({})",
            key_file.display()
        ),
        KeyOutcome::Imported(_) => println!("key: encrypted in {}", key_file.display()),
        KeyOutcome::Created(_, words) => {
            println!("key: new, encrypted in {}", key_file.display());
            println!(
                "mnemonic (write it down now, it is shown once: it is the only way to recover this provider's funds):"
            );
            println!("{words}");
        }
    }
    if driver == DriverKind::Exec {
        println!(
            "driver: exec runs tenants' programs on this host unisolated, for development only: it starts only with allow_exec_for_development = true under [driver], and runs only the programs in exec_allowed_programs and exec_images"
        );
    }
    println!(
        "next: fund {address} with ugrid (fees, bid deposits), review {},",
        home.config_path().display()
    );
    println!("      then `gridlease provider register --home {}`", a.home.display());
    println!("      the daemon unlocks the key with {PASSPHRASE_ENV} (or a prompt) at each start");
    Ok(ExitCode::SUCCESS)
}

/// Publishes the provider and its certificate; running it again updates the record. The key
/// is unlocked with `passphrase`, else `GRIDLEASE_PASSPHRASE` or a prompt.
pub async fn register(home_dir: &Path, passphrase: Option<&str>) -> anyhow::Result<ExitCode> {
    let home = Home::new(home_dir);
    let config = Config::load(&home.config_path())?;
    let key = load_key(home_dir, passphrase)?;
    let bundle = home.load_certificate()?;
    let client = Client::new(&config.node);
    client.status().await.with_context(|| format!("cannot reach the node at {}", config.node))?;
    let address = key.address();
    let exists = client.provider(&address).await?.is_some();
    let info = ProviderInfo {
        email: config.contact.email.clone(),
        website: config.contact.website.clone(),
    };
    let mut msgs = vec![if exists {
        Msg::UpdateProvider {
            host_uri: config.host_uri.clone(),
            attributes: config.attribute_list(),
            info,
        }
    } else {
        Msg::CreateProvider {
            host_uri: config.host_uri.clone(),
            attributes: config.attribute_list(),
            info,
        }
    }];
    let registered = client
        .certificates(&address)
        .await?
        .iter()
        .any(|c| c.is_valid() && c.cert_pem == bundle.cert_pem);
    if !registered {
        msgs.push(Msg::CreateCertificate {
            cert_pem: bundle.cert_pem.clone().into_bytes(),
            pubkey_pem: bundle.pubkey_pem.clone().into_bytes(),
        });
    }
    let mut builder = TxBuilder::for_chain(&client, key).await?;
    let (height, receipt) = client.submit_and_wait(&mut builder, msgs).await?;
    if !receipt.is_ok() {
        anyhow::bail!("the chain refused the registration ({}): {}", receipt.code, receipt.log);
    }
    crate::context::human!(
        "provider {address} {} at {} (host {}){}",
        if exists { "updated" } else { "registered" },
        height,
        config.host_uri,
        if registered { "" } else { "; certificate registered" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(home_dir: &Path, output: &str) -> anyhow::Result<ExitCode> {
    let home = Home::new(home_dir);
    let config = Config::load(&home.config_path())?;
    let bundle = home.load_certificate()?;
    let der = tls::pem_to_der(bundle.cert_pem.as_bytes())?;
    let api = ProviderApi::new(&config.host_uri, None, vec![der])?;
    let s = api.status().await.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "the provider daemon does not answer (is `gridlease provider run --home {}` running?)",
            home_dir.display()
        ))
    })?;
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "provider {}  driver {}  height {}  node {} ({})",
        s.address,
        s.driver,
        s.height,
        s.node,
        if s.node_connected { "connected" } else { "unreachable" }
    );
    let (inv, free) = (&s.inventory, &s.free);
    println!("cpu      {}m free of {}m", free.cpu_millis, inv.cpu_millis);
    println!("memory   {} free of {} bytes", free.memory_bytes, inv.memory_bytes);
    println!("storage  {} free of {} bytes", free.storage_bytes, inv.storage_bytes);
    for g in &inv.gpus {
        println!("gpu {}  {}/{} {} {}", g.index, g.vendor, g.model, g.ram, g.interface);
    }
    println!("leases   {}", s.leases.len());
    for l in &s.leases {
        println!("  {}  {}  {}", l.lease.order.dseq, l.phase, l.message);
    }
    println!("recent decisions:");
    for d in s.recent_decisions.iter().take(10) {
        println!("  h{} {} {}: {}", d.height, d.outcome.name(), d.order, d.detail);
    }
    Ok(ExitCode::SUCCESS)
}
