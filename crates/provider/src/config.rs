//! The provider's configuration file (`provider.toml` in its home directory): where the node
//! is, what the provider publishes, how it prices, what hardware it offers and which runtime
//! runs the leases. `gridlease provider init` writes a commented one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gridlease_types::{Attribute, Coin, DecAmount, Denom};
use serde::{Deserialize, Serialize};

use crate::inventory::GpuDecl;

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RPC URL of a node.
    pub node: String,
    /// What tenants reach the manifest service at (`https://HOST:PORT`), published on chain.
    pub host_uri: String,
    /// Address the manifest service listens on.
    pub listen: String,
    /// Host name or IP put in the service URIs tenants receive.
    pub public_host: String,
    /// No longer used: the exec driver is off unless `driver.allow_exec_for_development`.
    /// Still accepted so that older files load.
    #[serde(default, skip_serializing)]
    pub production: Option<bool>,
    /// Attributes published on chain (`region = "eu-west"`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub contact: Contact,
    pub pricing: Pricing,
    #[serde(default)]
    pub inventory: InventoryConfig,
    pub driver: DriverConfig,
    #[serde(default)]
    pub lease: LeaseConfig,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub website: String,
}

/// Prices per block, in `denom`. Decimal strings keep them exact (`"0.25"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Denomination of every bid (the order's must match).
    pub denom: String,
    /// Per CPU core.
    pub cpu_per_core: String,
    /// Per GiB of memory.
    pub memory_per_gib: String,
    /// Per GiB of storage.
    pub storage_per_gib: String,
    /// Per GPU of a model absent from `gpu`.
    pub gpu_default: String,
    /// Per GPU, by model (`a100 = "120"`).
    #[serde(default)]
    pub gpu: BTreeMap<String, String>,
    /// Other denominations this provider bids in, each with what one unit of it is worth in
    /// `denom` (`uact = "1"`: Akash's compute credit, pegged to the US dollar like `uusdc`;
    /// `uakt = "2"`: one uakt worth two uusdc). A bid in such a denomination is the price in
    /// `denom` divided by that.
    #[serde(default)]
    pub exchange: BTreeMap<String, String>,
    /// The harshest SLA this provider bids under: the largest share of its bid deposit a
    /// breached period or a failover may cost (parts per million; 10% by default, the chain's
    /// failover penalty) and the shortest period. A tenant names the monitors that judge the
    /// lease, so an order with a harsher SLA is skipped.
    #[serde(default = "default_max_sla_penalty_ppm")]
    pub max_sla_penalty_ppm: u32,
    #[serde(default = "default_min_sla_period_blocks")]
    pub min_sla_period_blocks: u64,
    /// External price script: gets the order as JSON on stdin, prints the price per block.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// How long the script may take.
    #[serde(default = "default_script_timeout_ms")]
    pub script_timeout_ms: u64,
    /// Deposit locked with each bid (`5000000ugrid`); the chain's minimum when absent.
    #[serde(default)]
    pub bid_deposit: Option<String>,
}

fn default_script_timeout_ms() -> u64 {
    2_000
}

/// Hardware offered. Absent values are read from the host; GPUs come from NVML when a driver
/// is present, else from `gpus`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub storage_bytes: Option<u64>,
    /// Storage classes offered (a volume without class is `default`).
    #[serde(default = "default_storage_classes")]
    pub storage_classes: Vec<String>,
    /// GPUs declared by hand, used when NVML finds none.
    #[serde(default)]
    pub gpus: Vec<GpuDecl>,
    /// Ignore NVML even when a driver is present (declared GPUs only).
    #[serde(default)]
    pub skip_nvml: bool,
    /// Hand the leased GPUs to the runtime (CDI devices). Off only for demos on machines whose
    /// declared GPUs do not exist (devnet): the GPUs are then bid and leased but not attached.
    #[serde(default = "default_true")]
    pub attach_gpus: bool,
}

fn default_true() -> bool {
    true
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            cpu_millis: None,
            memory_bytes: None,
            storage_bytes: None,
            storage_classes: default_storage_classes(),
            gpus: Vec::new(),
            skip_nvml: false,
            attach_gpus: true,
        }
    }
}

fn default_storage_classes() -> Vec<String> {
    vec!["default".into(), "beta2".into()]
}

/// The runtime a provider runs workloads with: in provider.toml, on the command line
/// (`--driver`) and in the devnet's state, one enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Podman,
    Exec,
}

impl DriverKind {
    /// Every kind, by the name it is written with.
    pub const ALL: [(&'static str, DriverKind); 2] =
        [("podman", DriverKind::Podman), ("exec", DriverKind::Exec)];

    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Podman => "podman",
            DriverKind::Exec => "exec",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DriverKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriverKind::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| format!("`{s}` is not a driver: use podman or exec"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    pub kind: DriverKind,
    /// Docker Engine API socket of podman (or Docker).
    #[serde(default = "default_podman_socket")]
    pub podman_socket: String,
    /// The exec driver runs tenants' programs on this host without isolation: it starts only
    /// when this is true, for development.
    #[serde(default)]
    pub allow_exec_for_development: bool,
    /// Replaced by `allow_exec_for_development`; `true` here is refused with a pointer to it.
    #[serde(default, skip_serializing)]
    pub allow_exec_in_production: Option<bool>,
    /// Exec driver: program to run for an image name (`"gridlease/demo-llm" = "/usr/bin/x"`);
    /// an image absent here runs as a program path when it is absolute. These programs are
    /// allowed to run.
    #[serde(default)]
    pub exec_images: BTreeMap<String, PathBuf>,
    /// Exec driver: the other programs a manifest's command or image may name (absolute paths,
    /// or bare names looked up in the daemon's `PATH`); any other program is refused.
    #[serde(default)]
    pub exec_allowed_programs: Vec<PathBuf>,
    /// Host ports handed to published container ports, inclusive.
    #[serde(default = "default_port_range")]
    pub port_range: (u16, u16),
    /// Podman driver: where the image files of disk volumes live (default: `volumes` in the
    /// provider's home). The runtime loop-mounts them, so it must see the same path.
    #[serde(default)]
    pub volume_dir: Option<PathBuf>,
}

fn default_podman_socket() -> String {
    "/run/podman/podman.sock".into()
}

fn default_port_range() -> (u16, u16) {
    (31000, 32767)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// Withdraw earnings of every lease this often, in blocks.
    #[serde(default = "default_withdraw_every")]
    pub withdraw_every_blocks: u64,
    /// How often replicas are checked, in milliseconds.
    #[serde(default = "default_health_interval")]
    pub health_interval_ms: u64,
    /// Most processes and threads one replica may run at once (podman's `PidsLimit`; 1 or
    /// more, never unlimited).
    #[serde(default = "default_pids_limit")]
    pub pids_limit: u64,
    /// How often what each replica wrote to its own disk is measured against its lease, in
    /// milliseconds (a replica can overshoot by what it writes in this time).
    #[serde(default = "default_disk_check_interval")]
    pub disk_check_interval_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            withdraw_every_blocks: default_withdraw_every(),
            health_interval_ms: default_health_interval(),
            pids_limit: default_pids_limit(),
            disk_check_interval_ms: default_disk_check_interval(),
        }
    }
}

fn default_withdraw_every() -> u64 {
    600
}

fn default_health_interval() -> u64 {
    1_000
}

fn default_disk_check_interval() -> u64 {
    5_000
}

fn default_pids_limit() -> u64 {
    crate::driver::DEFAULT_PIDS_LIMIT
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid { path: String, field: String, message: String },
}

/// A field of the configuration that is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The prices of [`Pricing`], parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates {
    pub denom: Denom,
    pub cpu_per_core: DecAmount,
    pub memory_per_gib: DecAmount,
    pub storage_per_gib: DecAmount,
    pub gpu_default: DecAmount,
    /// Lowercase model name to price.
    pub gpu: BTreeMap<String, DecAmount>,
    /// Other denominations bid in, and what one unit of each is worth in `denom`.
    pub exchange: BTreeMap<Denom, DecAmount>,
    /// The harshest SLA bid under (see [`Pricing::max_sla_penalty_ppm`]).
    pub max_sla_penalty_ppm: u32,
    pub min_sla_period_blocks: u64,
}

fn default_max_sla_penalty_ppm() -> u32 {
    100_000
}

fn default_min_sla_period_blocks() -> u64 {
    3_600
}

impl Rates {
    /// A price in `denom` expressed in `to`: itself, or divided by `to`'s exchange rate;
    /// `None` when this provider has no rate for `to` (or the division overflows).
    pub fn convert(&self, price: DecAmount, to: &Denom) -> Option<DecAmount> {
        if to == &self.denom {
            return Some(price);
        }
        let rate = self.exchange.get(to)?.atto();
        if rate == 0 {
            return None;
        }
        let (p, one) = (price.atto(), 1_000_000_000_000_000_000u128);
        let whole = (p / rate).checked_mul(one)?;
        let part = (p % rate).checked_mul(one)? / rate;
        Some(DecAmount::from_atto(whole.checked_add(part)?))
    }
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string() })?;
        config.check(&shown)?;
        Ok(config)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: path.to_string(),
            field: field.to_string(),
            message,
        };
        if !self.host_uri.starts_with("https://") {
            return Err(invalid("host_uri", "must start with https://".into()));
        }
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("listen", format!("expected HOST:PORT ({e})")))?;
        self.rates().map_err(|e| invalid(&e.field, e.message))?;
        self.bid_deposit().map_err(|e| invalid(&e.field, e.message))?;
        let (lo, hi) = self.driver.port_range;
        if lo == 0 || lo > hi {
            return Err(invalid("driver.port_range", format!("[{lo}, {hi}] is not a port range")));
        }
        if self.driver.allow_exec_in_production == Some(true) {
            return Err(invalid(
                "driver.allow_exec_in_production",
                "is replaced by driver.allow_exec_for_development (the exec driver is for development only): remove it, and set allow_exec_for_development = true if this is a development machine".into(),
            ));
        }
        for program in
            self.driver.exec_allowed_programs.iter().chain(self.driver.exec_images.values())
        {
            let text = program.to_string_lossy();
            let bare = !text.is_empty() && !text.contains('/');
            if !program.is_absolute() && !bare {
                return Err(invalid(
                    "driver.exec_allowed_programs",
                    format!("`{text}` must be an absolute path or a bare program name"),
                ));
            }
        }
        if self.lease.withdraw_every_blocks == 0
            || self.lease.health_interval_ms == 0
            || self.lease.disk_check_interval_ms == 0
        {
            return Err(invalid("lease", "intervals must be above zero".into()));
        }
        if self.lease.pids_limit == 0 || i64::try_from(self.lease.pids_limit).is_err() {
            return Err(invalid(
                "lease.pids_limit",
                format!("must be 1 to {} (0 would mean no limit)", i64::MAX),
            ));
        }
        Ok(())
    }

    /// Parsed prices, or the field that is wrong and why.
    pub fn rates(&self) -> Result<Rates, FieldError> {
        let p = &self.pricing;
        let dec = |field: &str, v: &str| {
            v.parse::<DecAmount>().map_err(|e| FieldError {
                field: format!("pricing.{field}"),
                message: format!("`{v}` is not a price: {e}"),
            })
        };
        let denom = Denom::new(&p.denom).map_err(|e| FieldError {
            field: "pricing.denom".into(),
            message: format!("`{}`: {e}", p.denom),
        })?;
        let mut gpu = BTreeMap::new();
        for (model, price) in &p.gpu {
            gpu.insert(model.to_lowercase(), dec(&format!("gpu.{model}"), price)?);
        }
        let mut exchange = BTreeMap::new();
        for (name, worth) in &p.exchange {
            let field = format!("pricing.exchange.{name}");
            let d = Denom::new(name).map_err(|e| FieldError {
                field: field.clone(),
                message: format!("`{name}`: {e}"),
            })?;
            let w = dec(&format!("exchange.{name}"), worth)?;
            if w.is_zero() {
                return Err(FieldError {
                    field,
                    message: "an exchange rate must be above zero".into(),
                });
            }
            exchange.insert(d, w);
        }
        Ok(Rates {
            denom,
            cpu_per_core: dec("cpu_per_core", &p.cpu_per_core)?,
            memory_per_gib: dec("memory_per_gib", &p.memory_per_gib)?,
            storage_per_gib: dec("storage_per_gib", &p.storage_per_gib)?,
            gpu_default: dec("gpu_default", &p.gpu_default)?,
            gpu,
            exchange,
            max_sla_penalty_ppm: p.max_sla_penalty_ppm,
            min_sla_period_blocks: p.min_sla_period_blocks,
        })
    }

    /// The configured bid deposit, if any.
    pub fn bid_deposit(&self) -> Result<Option<Coin>, FieldError> {
        self.pricing
            .bid_deposit
            .as_deref()
            .map(|s| {
                s.parse::<Coin>().map_err(|e| FieldError {
                    field: "pricing.bid_deposit".into(),
                    message: format!("`{s}` is not an amount: {e}"),
                })
            })
            .transpose()
    }

    /// Attributes as published on chain, sorted by key.
    pub fn attribute_list(&self) -> Vec<Attribute> {
        self.attributes.iter().map(|(k, v)| Attribute::new(k, v)).collect()
    }
}

/// The commented file `gridlease provider init` writes.
pub fn template(node: &str, listen_port: u16, driver: DriverKind) -> String {
    let driver = match driver {
        DriverKind::Podman => "podman",
        DriverKind::Exec => "exec",
    };
    format!(
        r#"# gridlease provider configuration. Prices are per block (1 s on devnet), exact decimals.

# RPC of a gridlease node.
node = "{node}"
# Where tenants reach this provider's manifest service (published on chain by `register`).
host_uri = "https://127.0.0.1:{listen_port}"
# Address the manifest service (HTTPS with mutual TLS) listens on.
listen = "0.0.0.0:{listen_port}"
# Host name or IP that tenants use to reach the services of their leases.
public_host = "127.0.0.1"
# Attributes published on chain; tenants require them in their SDL placement.
[attributes]
region = "local"
tier = "community"

[contact]
email = ""
website = ""

[pricing]
denom = "uusdc"
cpu_per_core = "1"
memory_per_gib = "0.5"
storage_per_gib = "0.05"
# Per GPU of a model not listed below.
gpu_default = "20"
# Optional: a program that reads the order as JSON on stdin and prints the price per block.
# script = "/usr/local/bin/price.sh"
# script_timeout_ms = 2000
# Deposit locked with each bid; the chain's minimum when absent.
# bid_deposit = "5000000ugrid"
# The harshest SLA (x-gridlease.sla) to bid under: the tenant's own monitors judge the lease.
# max_sla_penalty_ppm = 100000
# min_sla_period_blocks = 3600

[pricing.gpu]
# Price per GPU and block by model.
# a100 = "40"
# h100 = "60"

[pricing.exchange]
# Other denominations to bid in: what one unit of each is worth in `denom`. Akash's
# templates price in uact, its compute credit pegged to the US dollar like uusdc.
uact = "1"

[inventory]
# Leave out to read from the host.
# cpu_millis = 16000
# memory_bytes = 68719476736
# storage_bytes = 1099511627776
storage_classes = ["default", "beta2"]
# GPUs come from NVML when an NVIDIA driver is present; without one, declare them here.
# [[inventory.gpus]]
# vendor = "nvidia"
# model = "rtx4090"
# ram = "24Gi"
# interface = "pcie"
# count = 1

[driver]
# "podman" (Docker Engine API of `podman system service`, also Docker) or "exec" (development).
kind = "{driver}"
podman_socket = "/run/podman/podman.sock"
# The exec driver runs tenants' programs on this host, unisolated: whoever wins a lease gets
# to run the programs below with arguments of their choosing. It starts only when this is true;
# never on a machine that takes leases from strangers.
allow_exec_for_development = false
# Exec driver: the only programs a manifest may run, besides those of exec_images (absolute
# paths, or bare names looked up in PATH).
exec_allowed_programs = []
port_range = [31000, 32767]

[driver.exec_images]
# Exec driver: the program to run for an image name (allowed to run).
# "gridlease/demo-llm" = "/usr/local/bin/gridlease-demo-llm"

[lease]
withdraw_every_blocks = 600
health_interval_ms = 1000
# Most processes and threads one replica may run at once (podman's pids limit, never unlimited).
pids_limit = 4096
# How often what each replica wrote to its own disk is measured; one over its lease is started
# afresh with an empty disk.
disk_check_interval_ms = 5000
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_kinds_read_and_write_the_same_names() {
        for (name, kind) in DriverKind::ALL {
            assert_eq!(name.parse::<DriverKind>(), Ok(kind));
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert!("docker".parse::<DriverKind>().unwrap_err().contains("use podman or exec"));
    }

    #[test]
    fn the_template_loads_and_prices_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("provider.toml");
        std::fs::write(&path, template("http://127.0.0.1:26657", 8443, DriverKind::Exec))
            .expect("write");
        let config = Config::load(&path).expect("template must load");
        assert_eq!(config.driver.kind, DriverKind::Exec);
        let rates = config.rates().expect("rates");
        assert_eq!(rates.denom.as_str(), "uusdc");
        assert_eq!(rates.memory_per_gib, "0.5".parse().expect("dec"));
        assert_eq!(config.attribute_list()[0], Attribute::new("region", "local"));
        assert!(!config.driver.allow_exec_for_development, "exec is off by default");
        assert!(config.driver.exec_allowed_programs.is_empty());
    }

    #[test]
    fn the_old_exec_switch_is_refused_and_programs_are_paths_or_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("provider.toml");
        let base = template("http://x", 8443, DriverKind::Exec);
        let old = base.replace(
            "allow_exec_for_development = false",
            "allow_exec_in_production = true\nallow_exec_for_development = false",
        );
        std::fs::write(&path, format!("production = true\n{old}")).expect("write");
        let err = Config::load(&path).expect_err("old switch").to_string();
        assert!(err.contains("allow_exec_for_development"), "{err}");
        for (list, ok) in [("[\"/bin/x\", \"x\"]", true), ("[\"bin/x\"]", false), ("[\"\"]", false)]
        {
            let text = base
                .replace("exec_allowed_programs = []", &format!("exec_allowed_programs = {list}"));
            std::fs::write(&path, text).expect("write");
            assert_eq!(Config::load(&path).is_ok(), ok, "{list}");
        }
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("provider.toml");
        let text = template("http://x", 8443, DriverKind::Exec)
            .replace("cpu_per_core = \"1\"", "cpu_per_core = \"cheap\"");
        std::fs::write(&path, text).expect("write");
        let err = Config::load(&path).expect_err("bad price").to_string();
        assert!(err.contains("provider.toml: pricing.cpu_per_core: `cheap`"), "{err}");
        std::fs::write(&path, "node = 3").expect("write");
        let err = Config::load(&path).expect_err("bad toml").to_string();
        assert!(err.contains("provider.toml"), "{err}");
    }
}
