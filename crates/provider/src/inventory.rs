//! The provider's hardware inventory: CPU, memory and storage read from the host, and GPUs
//! found through NVML or, on machines without an NVIDIA driver, declared in the config file.
//!
//! GPUs are described the way Akash providers describe them (`vendor`, short lowercase
//! `model`, `ram` in whole gibibytes, `interface`), so that SDL GPU attributes written for
//! Akash match here too. Reading NVML is split from interpreting it: [`record_nvml`] takes a
//! plain [`NvmlRecording`] of what the driver reports and [`map_nvml_device`] turns each
//! [`NvmlRecord`] into a [`GpuDevice`], so the mapping is tested on recorded JSON fixtures
//! (`tests/fixtures/nvml/`) on machines without a GPU. `examples/record_nvml.rs` writes such a
//! fixture on a machine with one (`h200-sxm.json` came from a real H200).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use serde::{Deserialize, Serialize};

/// The PCI vendor id of NVIDIA.
const NVIDIA_PCI_VENDOR: u32 = 0x10de;

/// The most GPUs one config declaration may stand for.
const MAX_DECLARED_COUNT: u32 = 64;

/// What went wrong while taking the inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A host file (`/proc/meminfo`, a cgroup limit) could not be read.
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A host file or command output did not have the expected form.
    #[error("could not parse {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    /// The number of CPUs available to this process could not be found.
    #[error("could not count the cpus available to this process: {0}")]
    CpuCount(std::io::Error),
    /// `df` could not measure the free space under the data directory.
    #[error(
        "could not measure the free space under {dir} with df: {reason}; \
         check that df is installed and the directory is readable"
    )]
    Storage { dir: PathBuf, reason: String },
    /// NVML could not be loaded or initialised because there is no NVIDIA driver.
    #[error("{0}")]
    NoNvidiaDriver(String),
    /// NVML was there but failed.
    #[error("nvml failed: {0}; check the driver with nvidia-smi or declare the gpus in the config")]
    Nvml(String),
    /// A `[[gpu]]` declaration of the provider config is invalid (`position` counts from 1).
    #[error("gpu declaration {position} in the provider config: {reason}")]
    InvalidGpuDecl { position: usize, reason: String },
}

// ---------------------------------------------------------------------------------------------
// Host resources
// ---------------------------------------------------------------------------------------------

/// CPU, memory and storage of the host, in base units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResources {
    /// CPUs available to this process, in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes: `MemTotal`, lowered to this process's cgroup memory limit if it has one.
    pub memory_bytes: u64,
    /// Bytes available to unprivileged users on the filesystem holding the data directory.
    pub storage_bytes: u64,
}

/// Reads the host's resources. CPUs come from [`std::thread::available_parallelism`] (which
/// honours affinity masks and cgroup CPU quotas), memory from `/proc/meminfo` and the cgroup
/// memory limit, storage from `df` on `data_dir` (or on its nearest existing ancestor when it
/// has not been created yet).
pub fn detect_host(data_dir: &Path) -> Result<HostResources, InventoryError> {
    let cpus = std::thread::available_parallelism().map_err(InventoryError::CpuCount)?;
    let cpu_millis = u64::try_from(cpus.get()).unwrap_or(u64::MAX).saturating_mul(1000);

    let meminfo = read_host_file(Path::new("/proc/meminfo"))?;
    let mut memory_bytes = parse_meminfo(&meminfo)?;
    for limit_file in CGROUP_MEMORY_LIMIT_FILES {
        let path = Path::new(limit_file);
        if !path.exists() {
            continue;
        }
        if let Some(limit) = parse_cgroup_memory_limit(&read_host_file(path)?)? {
            memory_bytes = memory_bytes.min(limit);
        }
    }

    let storage_bytes = available_storage(data_dir)?;
    Ok(HostResources { cpu_millis, memory_bytes, storage_bytes })
}

/// The memory limit of the cgroup this process runs in, for cgroup v2 and v1. The root of a
/// host's hierarchy has neither file; a container sees its own cgroup there.
const CGROUP_MEMORY_LIMIT_FILES: [&str; 2] =
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"];

fn read_host_file(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path)
        .map_err(|source| InventoryError::Read { path: path.to_path_buf(), source })
}

/// The `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Result<u64, InventoryError> {
    let parse_error = |detail: String| InventoryError::Parse { what: "/proc/meminfo", detail };
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .ok_or_else(|| parse_error("no MemTotal line".to_string()))?;
    let mut fields = line.split_whitespace();
    let value: u64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| parse_error(format!("MemTotal is not a number: {:?}", line.trim())))?;
    let multiplier = match fields.next() {
        Some("kB") => 1024,
        None => 1,
        Some(unit) => return Err(parse_error(format!("unknown MemTotal unit {unit:?}"))),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| parse_error(format!("MemTotal {value} kB overflows a byte count")))
}

/// The limit in a cgroup `memory.max` (v2) or `memory.limit_in_bytes` (v1) file, in bytes;
/// `None` when unlimited (`max`).
pub fn parse_cgroup_memory_limit(text: &str) -> Result<Option<u64>, InventoryError> {
    match text.trim() {
        "max" => Ok(None),
        value => value.parse().map(Some).map_err(|_| InventoryError::Parse {
            what: "the cgroup memory limit",
            detail: format!("expected a byte count or max, got {value:?}"),
        }),
    }
}

/// Bytes available on the filesystem holding `dir`, measured with `df -P -k` (POSIX output,
/// so it works with GNU coreutils and busybox alike).
pub fn available_storage(dir: &Path) -> Result<u64, InventoryError> {
    let target = nearest_existing_ancestor(dir);
    let storage_error = |reason: String| InventoryError::Storage { dir: dir.to_path_buf(), reason };
    let output = Command::new("df")
        .args(["-P", "-k", "--"])
        .arg(&target)
        .output()
        .map_err(|e| storage_error(format!("could not run df: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(storage_error(format!("df exited with {}: {}", output.status, stderr.trim())));
    }
    parse_df_posix(&String::from_utf8_lossy(&output.stdout))
}

fn nearest_existing_ancestor(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The available bytes in the output of `df -P -k <one path>`: a header line, then
/// `filesystem 1024-blocks used available capacity% mountpoint`. The capacity column (the
/// first one ending in `%`) anchors the parse, so a filesystem or mount point with spaces
/// in its name does not shift it.
pub fn parse_df_posix(text: &str) -> Result<u64, InventoryError> {
    let parse_error = |detail: String| InventoryError::Parse { what: "df output", detail };
    let line = text
        .lines()
        .skip(1)
        .find(|line| !line.trim().is_empty())
        .ok_or_else(|| parse_error("no line after the header".to_string()))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let capacity = fields
        .iter()
        .enumerate()
        .skip(4)
        .find(|(_, field)| field.ends_with('%'))
        .map(|(position, _)| position)
        .ok_or_else(|| parse_error(format!("no capacity column in {line:?}")))?;
    let available_kib: u64 = fields[capacity - 1]
        .parse()
        .map_err(|_| parse_error(format!("available is not a number in {line:?}")))?;
    available_kib
        .checked_mul(1024)
        .ok_or_else(|| parse_error(format!("{available_kib} KiB overflows a byte count")))
}

// ---------------------------------------------------------------------------------------------
// GPUs
// ---------------------------------------------------------------------------------------------

/// One GPU as the provider offers it, named the way Akash providers name GPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// The device index: NVML's enumeration order for detected GPUs, the order of declaration
    /// (counted per vendor) for declared ones.
    pub index: u32,
    /// `nvidia`, or the vendor a config declares.
    pub vendor: String,
    /// Short lowercase model: `a100`, `h100`, `rtx4090`, `rtxa6000`, `t4`.
    pub model: String,
    /// Memory in whole gibibytes, Akash spelling: `24Gi`, `80Gi`.
    pub ram: String,
    /// `sxm` or `pcie`.
    pub interface: String,
    /// The NVML UUID (`GPU-…`) when known.
    pub uuid: Option<String>,
    /// The CDI device name that passes this GPU to a container: `nvidia.com/gpu=<index>`.
    pub cdi_name: String,
}

impl GpuDevice {
    /// The UUID form of the CDI name (`nvidia.com/gpu=GPU-…`), which `nvidia-ctk cdi generate`
    /// also writes and which stays right if the index order changes between boots.
    pub fn cdi_name_by_uuid(&self) -> Option<String> {
        let uuid = self.uuid.as_ref()?;
        Some(format!("{}/gpu={uuid}", cdi_vendor_domain(&self.vendor)))
    }
}

/// The CDI vendor domain of a GPU vendor: `nvidia.com`, `amd.com`, ...
fn cdi_vendor_domain(vendor: &str) -> String {
    format!("{vendor}.com")
}

/// What NVML reports about one device: the input of [`map_nvml_device`], recorded as JSON in
/// the test fixtures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmlRecord {
    /// NVML's device index.
    pub index: u32,
    /// `nvmlDeviceGetName`, e.g. `NVIDIA A100-SXM4-80GB`.
    pub name: String,
    /// `nvmlDeviceGetMemoryInfo_v2().total`, bytes.
    pub memory_total_bytes: u64,
    /// `nvmlDeviceGetUUID`, e.g. `GPU-5a856b66-…`.
    #[serde(default)]
    pub uuid: Option<String>,
    /// `nvmlPciInfo.pciDeviceId`: the PCI device id in the high 16 bits, the vendor id
    /// (`0x10de`) in the low 16.
    #[serde(default)]
    pub pci_device_id: Option<u32>,
    /// `nvmlPciInfo.busId`, e.g. `00000000:07:00.0`.
    #[serde(default)]
    pub pci_bus_id: Option<String>,
}

/// Everything [`record_nvml`] read from the driver; fixtures under `tests/fixtures/nvml/` have
/// this form (extra keys such as a `note` are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmlRecording {
    /// `nvmlSystemGetDriverVersion`, when it could be read.
    #[serde(default)]
    pub driver_version: Option<String>,
    pub devices: Vec<NvmlRecord>,
}

/// Turns what NVML reports about a device into the provider's description of it.
///
/// - `model`: [`gpu_model_from_name`].
/// - `ram`: [`gpu_ram_label`] of the total memory.
/// - `interface`: [`gpu_interface`] of the name and PCI device id.
/// - `cdi_name`: `nvidia.com/gpu=<index>`, the index name `nvidia-ctk cdi generate` writes
///   (it numbers devices in NVML order); [`GpuDevice::cdi_name_by_uuid`] gives the UUID name.
pub fn map_nvml_device(rec: &NvmlRecord) -> GpuDevice {
    GpuDevice {
        index: rec.index,
        vendor: "nvidia".to_string(),
        model: gpu_model_from_name(&rec.name),
        ram: gpu_ram_label(rec.memory_total_bytes),
        interface: gpu_interface(&rec.name, rec.pci_device_id).to_string(),
        uuid: rec.uuid.clone(),
        cdi_name: format!("nvidia.com/gpu={}", rec.index),
    }
}

/// Words of a marketing name that are brands, not part of the model.
const BRAND_WORDS: [&str; 4] = ["nvidia", "tesla", "geforce", "quadro"];

/// Words of a marketing name that describe the board, not the model.
const BOARD_WORDS: [&str; 6] = ["pcie", "nvl", "laptop", "gpu", "generation", "mobile"];

/// The short lowercase model Akash providers use, from the name NVML reports.
///
/// The name is split on spaces, `-` and `_`; brand words (`NVIDIA`, `Tesla`, `GeForce`,
/// `Quadro`) and board descriptions (a memory size such as `80GB`, `SXM4`, `HBM3`, `PCIe`,
/// `NVL`, `Laptop GPU`, `Generation`) are dropped and the rest is joined in lowercase:
/// `NVIDIA A100-SXM4-80GB` -> `a100`, `NVIDIA H100 80GB HBM3` -> `h100`, `NVIDIA H200 NVL`
/// -> `h200`, `NVIDIA GeForce RTX 4090` -> `rtx4090`, `NVIDIA RTX A6000` -> `rtxa6000`,
/// `Quadro RTX 8000` -> `rtx8000`, `NVIDIA RTX 6000 Ada Generation` -> `rtx6000ada`,
/// `Tesla T4` -> `t4`. A name with nothing left gives `unknown`.
pub fn gpu_model_from_name(name: &str) -> String {
    let model: String = name
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .map(str::to_ascii_lowercase)
        .filter(|word| !word.is_empty())
        .filter(|word| !BRAND_WORDS.contains(&word.as_str()))
        .filter(|word| !BOARD_WORDS.contains(&word.as_str()))
        .filter(|word| !is_memory_size(word) && !is_prefixed_number(word, "sxm"))
        .filter(|word| !is_hbm_word(word))
        .flat_map(|word| word.chars().filter(char::is_ascii_alphanumeric).collect::<Vec<_>>())
        .collect();
    if model.is_empty() { "unknown".to_string() } else { model }
}

/// `80gb`, `16gb`.
fn is_memory_size(word: &str) -> bool {
    word.strip_suffix("gb").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `sxm`, `sxm4`, `sxm5` for `prefix = "sxm"`.
fn is_prefixed_number(word: &str, prefix: &str) -> bool {
    word.strip_prefix(prefix).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// `hbm2`, `hbm2e`, `hbm3`, `hbm3e`.
fn is_hbm_word(word: &str) -> bool {
    let rest = word.strip_prefix("hbm").map(|n| n.strip_suffix('e').unwrap_or(n));
    rest.is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// PCI device ids (high half of NVML's `pciDeviceId`, vendor `0x10de`) of SXM modules whose
/// names may not say so.
const SXM_PCI_DEVICE_IDS: [u32; 6] = [
    0x1db1, // V100 SXM2 16GB
    0x1db5, // V100 SXM2 32GB
    0x20b0, // A100 SXM4 40GB
    0x20b2, // A100 SXM4 80GB
    0x2330, // H100 SXM5 80GB
    0x2335, // H200 SXM 141GB
];

/// Models that NVIDIA makes only as SXM modules (or, for `gh200`/`gb200`, as superchip modules
/// on NVLink-C2C, which are not PCIe cards either) unless the name says `PCIe` or `NVL`.
const SXM_ONLY_MODELS: [&str; 9] =
    ["h20", "h200", "h800", "b100", "b200", "b300", "gh200", "gb200", "gb300"];

/// `sxm` or `pcie` for a GPU, from its NVML name and PCI device id. NVML's bus type says PCIe
/// for SXM modules too, so the name decides, in this order:
///
/// 1. a word `SXM…` in the name (`A100-SXM4-80GB`, `V100-SXM2-16GB`): `sxm`;
/// 2. a word `PCIe` or `NVL` (`H100 PCIe`, `A100 80GB PCIe`, `H100 NVL`, `H200 NVL`; NVL
///    boards are PCIe cards bridged with NVLink): `pcie`;
/// 3. a PCI device id of a known SXM module (`SXM_PCI_DEVICE_IDS`): `sxm`;
/// 4. a word `HBM…` (`H100 80GB HBM3`, how H100/H800 SXM5 modules name themselves): `sxm`;
/// 5. a model made only as a module (`h200`, `b200`, `gh200`, ...): `sxm`;
/// 6. otherwise `pcie`: every consumer, workstation and most inference cards.
pub fn gpu_interface(name: &str, pci_device_id: Option<u32>) -> &'static str {
    let words: Vec<String> = name
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .map(str::to_ascii_lowercase)
        .collect();
    if words.iter().any(|w| w.starts_with("sxm")) {
        return "sxm";
    }
    if words.iter().any(|w| w == "pcie" || w == "nvl") {
        return "pcie";
    }
    let sxm_by_id = pci_device_id.is_some_and(|id| {
        id & 0xffff == NVIDIA_PCI_VENDOR && SXM_PCI_DEVICE_IDS.contains(&(id >> 16))
    });
    if sxm_by_id || words.iter().any(|w| is_hbm_word(w)) {
        return "sxm";
    }
    if SXM_ONLY_MODELS.contains(&gpu_model_from_name(name).as_str()) {
        return "sxm";
    }
    "pcie"
}

/// Memory sizes, in GiB, that GPUs are sold with.
const NOMINAL_GPU_RAM_GIB: [u64; 26] = [
    1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40, 48, 64, 80, 94, 96, 128, 141, 144, 180,
    192, 288,
];

/// The memory of a GPU in Akash spelling (`24Gi`, `80Gi`), from NVML's total in bytes.
///
/// NVML's total is the memory left after the driver's reservations, which with ECC on is a
/// few percent below what the card is sold with: a T4 reports 15360 MiB of its 16 GB, an A10G
/// or L4 about 22.5 GiB of 24 GB, an L40S 45 GiB of 48 GB, an H200 140.4 GiB of 141 GB. Plain
/// rounding would name these `15Gi`, `22Gi`, `45Gi` and miss SDLs written for Akash, so the
/// total is snapped up to the smallest nominal size it reaches at least 90 % of
/// (`NOMINAL_GPU_RAM_GIB`); cards that report their full size (an 80 GB A100 reports 81920
/// MiB, a 4090 24564 MiB) land on it either way. A total near no nominal size is rounded to
/// the nearest GiB, and one under half a GiB is given in MiB.
pub fn gpu_ram_label(total_bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let mib = total_bytes / MIB;
    let nominal = NOMINAL_GPU_RAM_GIB
        .iter()
        .copied()
        .find(|&gib| gib * 1024 >= mib && mib * 10 >= gib * 1024 * 9);
    match nominal {
        Some(gib) => format!("{gib}Gi"),
        None => match total_bytes.saturating_add(GIB / 2) / GIB {
            0 => format!("{mib}Mi"),
            gib => format!("{gib}Gi"),
        },
    }
}

/// The outcome of looking for GPUs through NVML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuDetection {
    /// NVML answered; the GPUs it lists (possibly none).
    Found(Vec<GpuDevice>),
    /// There is no NVIDIA driver (NVML could not be loaded, or the kernel module is not
    /// loaded): the reason, for the operator.
    NoDriver(String),
    /// There is a driver but NVML failed: the reason.
    Failed(String),
}

/// Looks for NVIDIA GPUs through NVML. Never panics: a machine without the driver gives
/// [`GpuDetection::NoDriver`], a broken driver [`GpuDetection::Failed`].
pub fn detect_gpus() -> GpuDetection {
    // NVML is foreign code behind a wrapper; a panic in the wrapper must not take the
    // provider down, so it is caught and reported as a failure.
    match std::panic::catch_unwind(record_nvml) {
        Ok(Ok(recording)) => {
            GpuDetection::Found(recording.devices.iter().map(map_nvml_device).collect())
        }
        Ok(Err(InventoryError::NoNvidiaDriver(reason))) => GpuDetection::NoDriver(reason),
        Ok(Err(e)) => GpuDetection::Failed(e.to_string()),
        Err(_) => GpuDetection::Failed("the nvml probe panicked".to_string()),
    }
}

/// Reads what NVML reports about every GPU, for [`detect_gpus`] and for recording new
/// fixtures. A device that cannot be read (fallen off the bus, say) is left out with a
/// warning rather than failing the whole inventory; the others keep their NVML indexes.
pub fn record_nvml() -> Result<NvmlRecording, InventoryError> {
    let nvml = Nvml::init().map_err(nvml_init_error)?;
    let driver_version = nvml.sys_driver_version().ok();
    let count = nvml
        .device_count()
        .map_err(|e| InventoryError::Nvml(format!("could not count the gpus: {e}")))?;
    let mut devices = Vec::new();
    for index in 0..count {
        match record_nvml_device(&nvml, index) {
            Ok(record) => devices.push(record),
            Err(e) => {
                tracing::warn!(index, error = %e, "inventory.detect_gpus: leaving out a gpu that nvml could not read")
            }
        }
    }
    Ok(NvmlRecording { driver_version, devices })
}

fn record_nvml_device(nvml: &Nvml, index: u32) -> Result<NvmlRecord, NvmlError> {
    let device = nvml.device_by_index(index)?;
    let name = device.name()?;
    let memory_total_bytes = device.memory_info()?.total;
    let pci = device.pci_info().ok();
    Ok(NvmlRecord {
        index,
        name,
        memory_total_bytes,
        uuid: device.uuid().ok(),
        pci_device_id: pci.as_ref().map(|p| p.pci_device_id),
        pci_bus_id: pci.map(|p| p.bus_id),
    })
}

fn nvml_init_error(e: NvmlError) -> InventoryError {
    const HINT: &str = "declare the gpus in the provider config if this machine has some";
    match e {
        NvmlError::LibloadingError(e) => InventoryError::NoNvidiaDriver(format!(
            "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded: {e}): no gpu found; {HINT}"
        )),
        NvmlError::LibraryNotFound => InventoryError::NoNvidiaDriver(format!(
            "no NVIDIA driver found (nvml could not load its library): no gpu found; {HINT}"
        )),
        NvmlError::DriverNotLoaded => InventoryError::NoNvidiaDriver(format!(
            "the NVIDIA kernel driver is not loaded: no gpu found; load it (modprobe nvidia) or {HINT}"
        )),
        NvmlError::FailedToLoadSymbol(s) => InventoryError::Nvml(format!(
            "libnvidia-ml.so.1 lacks a function this provider needs ({s}); update the NVIDIA driver"
        )),
        other => InventoryError::Nvml(format!("could not initialise nvml: {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// GPUs declared in the config
// ---------------------------------------------------------------------------------------------

/// A GPU model declared in the provider config, for machines where NVML cannot see it:
///
/// ```toml
/// [[gpu]]
/// vendor = "nvidia"
/// model = "rtx4090"
/// ram = "24Gi"
/// interface = "pcie"
/// count = 2
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDecl {
    pub vendor: String,
    pub model: String,
    pub ram: String,
    pub interface: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The devices a list of declarations stands for, in order. Vendor, model and interface are
/// taken in lowercase. Indexes count per vendor from 0, as each vendor's CDI spec numbers its
/// devices: `nvidia.com/gpu=<index>` for NVIDIA, `<vendor>.com/gpu=<index>` otherwise (AMD's
/// CDI generator writes `amd.com/gpu=<index>`).
pub fn declared_gpus(decls: &[GpuDecl]) -> Result<Vec<GpuDevice>, InventoryError> {
    let mut next_index: BTreeMap<String, u32> = BTreeMap::new();
    let mut devices = Vec::new();
    for (position, decl) in decls.iter().enumerate() {
        let invalid =
            |reason: String| InventoryError::InvalidGpuDecl { position: position + 1, reason };
        let vendor = decl.vendor.trim().to_ascii_lowercase();
        if vendor.is_empty() || !vendor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!(
                "vendor must be a name such as nvidia or amd, got {:?}",
                decl.vendor
            )));
        }
        let model = decl.model.trim().to_ascii_lowercase();
        if model.is_empty() || !model.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(format!(
                "model must be a short name of letters and digits such as a100 or rtx4090, got {:?}",
                decl.model
            )));
        }
        let ram = decl.ram.trim();
        let ram_gib = ram.strip_suffix("Gi").and_then(|n| n.parse::<u32>().ok());
        if !ram_gib.is_some_and(|gib| (1..=4096).contains(&gib)) {
            return Err(invalid(format!(
                "ram must be whole gibibytes such as 24Gi or 80Gi, got {:?}",
                decl.ram
            )));
        }
        let interface = decl.interface.trim().to_ascii_lowercase();
        if interface != "pcie" && interface != "sxm" {
            return Err(invalid(format!(
                "interface must be pcie or sxm, got {:?}",
                decl.interface
            )));
        }
        if !(1..=MAX_DECLARED_COUNT).contains(&decl.count) {
            return Err(invalid(format!(
                "count must be between 1 and {MAX_DECLARED_COUNT}, got {}",
                decl.count
            )));
        }
        let counter = next_index.entry(vendor.clone()).or_insert(0);
        for _ in 0..decl.count {
            let index = *counter;
            *counter += 1;
            devices.push(GpuDevice {
                index,
                vendor: vendor.clone(),
                model: model.clone(),
                ram: ram.to_string(),
                interface: interface.clone(),
                uuid: None,
                cdi_name: format!("{}/gpu={index}", cdi_vendor_domain(&vendor)),
            });
        }
    }
    Ok(devices)
}

/// Where the GPUs of an inventory came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuSource {
    /// NVML listed them.
    Nvml,
    /// The provider config declared them.
    Config,
    /// Neither: the machine offers no GPU.
    None,
}

/// The GPUs a provider offers and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSelection {
    pub gpus: Vec<GpuDevice>,
    pub source: GpuSource,
    /// A remark for the operator: why NVML was not used, or that declarations were ignored.
    pub note: Option<String>,
}

/// Picks the GPUs to offer. NVML is authoritative when it finds GPUs (declarations are then
/// ignored, with a note); without a driver, or when NVML finds none, the declarations are
/// used. When NVML fails and nothing is declared this is an error, so that a provider with a
/// broken driver does not quietly come up without its GPUs.
pub fn select_gpus(
    detection: GpuDetection,
    decls: &[GpuDecl],
) -> Result<GpuSelection, InventoryError> {
    let declared = declared_gpus(decls)?;
    let from_config = |note: Option<String>| {
        if declared.is_empty() {
            GpuSelection { gpus: Vec::new(), source: GpuSource::None, note }
        } else {
            GpuSelection { gpus: declared.clone(), source: GpuSource::Config, note }
        }
    };
    match detection {
        GpuDetection::Found(gpus) if !gpus.is_empty() => {
            let note = (!declared.is_empty()).then(|| {
                format!(
                    "nvml found {} gpus; the {} gpus declared in the config are ignored",
                    gpus.len(),
                    declared.len()
                )
            });
            Ok(GpuSelection { gpus, source: GpuSource::Nvml, note })
        }
        GpuDetection::Found(_) => Ok(from_config(Some("nvml found no gpu".to_string()))),
        GpuDetection::NoDriver(reason) => Ok(from_config(Some(reason))),
        GpuDetection::Failed(reason) if !declared.is_empty() => {
            Ok(from_config(Some(format!("nvml failed ({reason}); using the declared gpus"))))
        }
        GpuDetection::Failed(reason) => Err(InventoryError::Nvml(reason)),
    }
}

// ---------------------------------------------------------------------------------------------
// The whole inventory
// ---------------------------------------------------------------------------------------------

/// Everything the provider can offer on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpus: Vec<GpuDevice>,
}

impl Inventory {
    /// The inventory of a host with these GPUs.
    pub fn new(host: HostResources, gpus: Vec<GpuDevice>) -> Inventory {
        Inventory {
            cpu_millis: host.cpu_millis,
            memory_bytes: host.memory_bytes,
            storage_bytes: host.storage_bytes,
            gpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvml")
    }

    fn load_recording(stem: &str) -> NvmlRecording {
        let text = std::fs::read_to_string(fixture_dir().join(format!("{stem}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn map_recording(stem: &str) -> Vec<GpuDevice> {
        load_recording(stem).devices.iter().map(map_nvml_device).collect()
    }

    const MEMINFO: &str = "\
MemTotal:       24684084 kB
MemFree:        21312756 kB
MemAvailable:   23402864 kB
Buffers:          151208 kB
Cached:          1897752 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    #[test]
    fn meminfo_total_in_bytes() {
        assert_eq!(parse_meminfo(MEMINFO).unwrap(), 24_684_084 * 1024);
    }

    #[test]
    fn meminfo_without_total_or_with_garbage_is_an_error() {
        assert!(parse_meminfo("MemFree: 12 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 12 MB\n").is_err());
        assert!(parse_meminfo("MemTotal: 18446744073709551615 kB\n").is_err());
        let e = parse_meminfo("").unwrap_err().to_string();
        assert_eq!(e, "could not parse /proc/meminfo: no MemTotal line");
    }

    #[test]
    fn cgroup_memory_limits() {
        assert_eq!(parse_cgroup_memory_limit("max\n").unwrap(), None);
        assert_eq!(parse_cgroup_memory_limit("8589934592\n").unwrap(), Some(8 << 30));
        // cgroup v1 "unlimited" is a huge number, which min() with MemTotal ignores.
        assert_eq!(
            parse_cgroup_memory_limit("9223372036854771712\n").unwrap(),
            Some(9_223_372_036_854_771_712)
        );
        assert!(parse_cgroup_memory_limit("8G\n").is_err());
    }

    #[test]
    fn df_posix_output_gnu_and_busybox() {
        let gnu = "\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 13064952  82220936      14% /
";
        assert_eq!(parse_df_posix(gnu).unwrap(), 82_220_936 * 1024);
        let busybox = "\
Filesystem           1024-blocks    Used Available Capacity Mounted on
overlay                 61202244  9755420  48305500  17% /
";
        assert_eq!(parse_df_posix(busybox).unwrap(), 48_305_500 * 1024);
        let spaces = "\
Filesystem     1024-blocks  Used Available Capacity Mounted on
//nas/my share     1000000  2000    998000       1% /mnt/my share
";
        assert_eq!(parse_df_posix(spaces).unwrap(), 998_000 * 1024);
    }

    #[test]
    fn df_output_without_data_line_is_an_error() {
        assert!(
            parse_df_posix("Filesystem 1024-blocks Used Available Capacity Mounted on\n").is_err()
        );
        assert!(parse_df_posix("").is_err());
        assert!(parse_df_posix("h\n/dev/vda 1 2 lots 14% /\n").is_err());
    }

    #[test]
    fn detect_host_on_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let host = detect_host(dir.path()).unwrap();
        assert!(host.cpu_millis >= 1000, "{host:?}");
        assert_eq!(host.cpu_millis % 1000, 0, "{host:?}");
        assert!(host.memory_bytes > 64 << 20, "{host:?}");
        assert!(host.storage_bytes > 0, "{host:?}");
        // A data directory that does not exist yet is measured on its parent's filesystem.
        let later = dir.path().join("not/created/yet");
        assert!(detect_host(&later).unwrap().storage_bytes > 0);
    }

    #[test]
    fn model_names_as_akash_providers_write_them() {
        let cases = [
            ("NVIDIA A100-SXM4-80GB", "a100"),
            ("NVIDIA A100-SXM4-40GB", "a100"),
            ("NVIDIA A100-PCIE-40GB", "a100"),
            ("NVIDIA A100 80GB PCIe", "a100"),
            ("NVIDIA A800-SXM4-80GB", "a800"),
            ("NVIDIA H100 PCIe", "h100"),
            ("NVIDIA H100 80GB HBM3", "h100"),
            ("NVIDIA H100 NVL", "h100"),
            ("NVIDIA H200", "h200"),
            ("NVIDIA H200 NVL", "h200"),
            ("NVIDIA GH200 480GB", "gh200"),
            ("NVIDIA B200", "b200"),
            ("NVIDIA L40S", "l40s"),
            ("NVIDIA L4", "l4"),
            ("NVIDIA A10G", "a10g"),
            ("NVIDIA A40", "a40"),
            ("NVIDIA RTX A6000", "rtxa6000"),
            ("NVIDIA RTX 6000 Ada Generation", "rtx6000ada"),
            ("Quadro RTX 8000", "rtx8000"),
            ("NVIDIA GeForce RTX 4090", "rtx4090"),
            ("NVIDIA GeForce RTX 3090 Ti", "rtx3090ti"),
            ("NVIDIA GeForce RTX 4060 Laptop GPU", "rtx4060"),
            ("Tesla T4", "t4"),
            ("Tesla V100-SXM2-16GB", "v100"),
            ("Tesla V100S-PCIE-32GB", "v100s"),
            ("NVIDIA", "unknown"),
            ("", "unknown"),
        ];
        for (name, model) in cases {
            assert_eq!(gpu_model_from_name(name), model, "{name}");
        }
    }

    #[test]
    fn interfaces_from_name_and_pci_id() {
        let cases = [
            ("NVIDIA A100-SXM4-80GB", None, "sxm"),
            ("Tesla V100-SXM2-32GB", None, "sxm"),
            ("NVIDIA A100 80GB PCIe", None, "pcie"),
            ("NVIDIA A100-PCIE-40GB", None, "pcie"),
            ("NVIDIA H100 PCIe", Some(0x2331_10de), "pcie"),
            ("NVIDIA H100 80GB HBM3", None, "sxm"),
            ("NVIDIA H100 NVL", None, "pcie"),
            ("NVIDIA H200", None, "sxm"),
            ("NVIDIA H200 NVL", None, "pcie"),
            ("NVIDIA B200", None, "sxm"),
            ("NVIDIA L40S", None, "pcie"),
            ("NVIDIA GeForce RTX 4090", Some(0x2684_10de), "pcie"),
            ("Tesla T4", Some(0x1eb8_10de), "pcie"),
            // A name that hides the form factor, known by its PCI device id.
            ("Graphics Device", Some(0x2330_10de), "sxm"),
            // The same device id under another vendor id is not trusted.
            ("Graphics Device", Some(0x2330_1002), "pcie"),
        ];
        for (name, pci, interface) in cases {
            assert_eq!(gpu_interface(name, pci), interface, "{name} {pci:?}");
        }
    }

    #[test]
    fn ram_labels_snap_to_the_size_cards_are_sold_with() {
        const MIB: u64 = 1 << 20;
        let cases = [
            (81_920 * MIB, "80Gi"),   // A100 80GB
            (81_559 * MIB, "80Gi"),   // H100 80GB
            (40_960 * MIB, "40Gi"),   // A100 40GB
            (40_536 * MIB, "40Gi"),   // A100 40GB, older drivers
            (24_564 * MIB, "24Gi"),   // RTX 4090
            (24_576 * MIB, "24Gi"),   // RTX 3090
            (23_028 * MIB, "24Gi"),   // A10G, ECC on
            (15_360 * MIB, "16Gi"),   // T4, ECC on
            (15_109 * MIB, "16Gi"),   // T4, older drivers
            (46_068 * MIB, "48Gi"),   // L40S
            (49_140 * MIB, "48Gi"),   // RTX A6000
            (95_830 * MIB, "94Gi"),   // H100 NVL
            (143_771 * MIB, "141Gi"), // H200
            (11_264 * MIB, "11Gi"),   // RTX 2080 Ti
            (13_500 * MIB, "13Gi"),   // near no nominal size: nearest GiB
            (300 * MIB, "300Mi"),
            (0, "0Mi"),
        ];
        for (bytes, label) in cases {
            assert_eq!(gpu_ram_label(bytes), label, "{} MiB", bytes / MIB);
        }
        assert_eq!(gpu_ram_label(u64::MAX), format!("{}Gi", u64::MAX / (1 << 30)));
    }

    #[test]
    fn every_nvml_fixture_maps_to_its_expected_devices() {
        let mut checked = 0;
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else { continue };
            let Some(stem) = file.strip_suffix(".json") else { continue };
            if stem.ends_with(".expected") {
                continue;
            }
            let expected_text =
                std::fs::read_to_string(fixture_dir().join(format!("{stem}.expected.json")))
                    .unwrap_or_else(|e| panic!("{stem}.expected.json: {e}"));
            let expected: Vec<GpuDevice> = serde_json::from_str(&expected_text).unwrap();
            assert_eq!(map_recording(stem), expected, "fixture {stem}");
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} nvml fixtures found");
    }

    #[test]
    fn a100_sxm4_box() {
        let recording = load_recording("a100-sxm4-80gb-x8");
        assert_eq!(recording.driver_version.as_deref(), Some("535.183.01"));
        let gpus = map_recording("a100-sxm4-80gb-x8");
        assert_eq!(gpus.len(), 8);
        for (i, gpu) in gpus.iter().enumerate() {
            assert_eq!(
                (gpu.vendor.as_str(), gpu.model.as_str(), gpu.ram.as_str(), gpu.interface.as_str()),
                ("nvidia", "a100", "80Gi", "sxm")
            );
            assert_eq!(gpu.cdi_name, format!("nvidia.com/gpu={i}"));
        }
        assert_eq!(
            gpus[2].cdi_name_by_uuid().as_deref(),
            Some("nvidia.com/gpu=GPU-5a856b66-c90e-4ebd-d830-c1a4c4e72348")
        );
    }

    #[test]
    fn single_card_boxes() {
        let h100 = map_recording("h100-pcie");
        assert_eq!(
            (h100[0].model.as_str(), h100[0].ram.as_str(), h100[0].interface.as_str()),
            ("h100", "80Gi", "pcie")
        );
        let t4 = map_recording("t4");
        assert_eq!(
            (t4[0].model.as_str(), t4[0].ram.as_str(), t4[0].interface.as_str()),
            ("t4", "16Gi", "pcie")
        );
        let consumer = map_recording("rtx4090-rtx3090");
        let models: Vec<&str> = consumer.iter().map(|g| g.model.as_str()).collect();
        assert_eq!(models, ["rtx4090", "rtx3090"]);
        assert!(consumer.iter().all(|g| g.ram == "24Gi" && g.interface == "pcie"));
        let sxm5 = map_recording("h100-sxm5-hbm3-x2");
        assert!(sxm5.iter().all(|g| g.interface == "sxm"));
        assert_eq!(sxm5[1].uuid, None);
        assert_eq!(sxm5[1].cdi_name_by_uuid(), None);
    }

    #[test]
    fn detect_gpus_does_not_fail_without_a_driver() {
        match detect_gpus() {
            GpuDetection::Found(gpus) => {
                assert!(gpus.iter().all(|g| g.vendor == "nvidia" && !g.model.is_empty()));
            }
            GpuDetection::NoDriver(reason) => {
                assert!(
                    reason.contains("no gpu found") || reason.contains("not loaded"),
                    "{reason}"
                );
            }
            GpuDetection::Failed(reason) => {
                panic!(
                    "nvml failed on a machine that should have no driver or a working one: {reason}"
                )
            }
        }
    }

    fn decl(vendor: &str, model: &str, ram: &str, interface: &str, count: u32) -> GpuDecl {
        GpuDecl {
            vendor: vendor.into(),
            model: model.into(),
            ram: ram.into(),
            interface: interface.into(),
            count,
        }
    }

    #[test]
    fn declared_gpus_are_numbered_per_vendor() {
        let gpus = declared_gpus(&[
            decl("nvidia", "rtx4090", "24Gi", "pcie", 2),
            decl("AMD", "mi300x", "192Gi", "sxm", 1),
            decl("nvidia", "T4", "16Gi", "PCIe", 1),
        ])
        .unwrap();
        let names: Vec<&str> = gpus.iter().map(|g| g.cdi_name.as_str()).collect();
        assert_eq!(
            names,
            ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "amd.com/gpu=0", "nvidia.com/gpu=2"]
        );
        assert_eq!(gpus[3].model, "t4");
        assert_eq!(gpus[3].interface, "pcie");
        assert_eq!(gpus[2].vendor, "amd");
        assert!(gpus.iter().all(|g| g.uuid.is_none()));
        assert!(declared_gpus(&[]).unwrap().is_empty());
    }

    #[test]
    fn invalid_declarations_are_rejected_with_their_position() {
        let good = decl("nvidia", "a100", "80Gi", "sxm", 1);
        let bad = [
            (decl("", "a100", "80Gi", "sxm", 1), "vendor"),
            (decl("nvidia", "", "80Gi", "sxm", 1), "model"),
            (decl("nvidia", "RTX 4090", "24Gi", "pcie", 1), "model"),
            (decl("nvidia", "a100", "80GB", "sxm", 1), "ram"),
            (decl("nvidia", "a100", "Gi", "sxm", 1), "ram"),
            (decl("nvidia", "a100", "0Gi", "sxm", 1), "ram"),
            (decl("nvidia", "a100", "80Gi", "nvlink", 1), "interface"),
            (decl("nvidia", "a100", "80Gi", "sxm", 0), "count"),
            (decl("nvidia", "a100", "80Gi", "sxm", 65), "count"),
        ];
        for (d, field) in bad {
            let e = declared_gpus(&[good.clone(), d.clone()]).unwrap_err().to_string();
            assert!(e.starts_with("gpu declaration 2 in the provider config: "), "{e}");
            assert!(e.contains(field), "{d:?}: {e}");
        }
    }

    #[test]
    fn declarations_read_from_toml_default_to_one_gpu() {
        #[derive(Deserialize)]
        struct Config {
            gpu: Vec<GpuDecl>,
        }
        let config: Config = toml::from_str(
            r#"
            [[gpu]]
            vendor = "nvidia"
            model = "rtx4090"
            ram = "24Gi"
            interface = "pcie"

            [[gpu]]
            vendor = "nvidia"
            model = "a100"
            ram = "80Gi"
            interface = "sxm"
            count = 4
            "#,
        )
        .unwrap();
        assert_eq!(config.gpu[0].count, 1);
        assert_eq!(declared_gpus(&config.gpu).unwrap().len(), 5);
        let typo = toml::from_str::<Config>(
            "[[gpu]]\nvendor = \"nvidia\"\nmodel = \"a100\"\nram = \"80Gi\"\ninterfce = \"sxm\"\n",
        );
        assert!(typo.is_err());
    }

    #[test]
    fn gpu_selection_prefers_nvml_then_config() {
        let nvml = map_recording("t4");
        let decls = [decl("nvidia", "rtx4090", "24Gi", "pcie", 1)];

        let s = select_gpus(GpuDetection::Found(nvml.clone()), &decls).unwrap();
        assert_eq!((s.source, s.gpus), (GpuSource::Nvml, nvml.clone()));
        assert!(s.note.unwrap().contains("ignored"));
        let s = select_gpus(GpuDetection::Found(nvml), &[]).unwrap();
        assert_eq!((s.source, s.note), (GpuSource::Nvml, None));

        let s = select_gpus(GpuDetection::NoDriver("no driver".into()), &decls).unwrap();
        assert_eq!((s.source, s.gpus[0].model.as_str()), (GpuSource::Config, "rtx4090"));
        let s = select_gpus(GpuDetection::NoDriver("no driver".into()), &[]).unwrap();
        assert_eq!(
            (s.source, s.gpus.len(), s.note.as_deref()),
            (GpuSource::None, 0, Some("no driver"))
        );
        let s = select_gpus(GpuDetection::Found(Vec::new()), &decls).unwrap();
        assert_eq!(s.source, GpuSource::Config);

        let s = select_gpus(GpuDetection::Failed("gpu lost".into()), &decls).unwrap();
        assert_eq!(s.source, GpuSource::Config);
        let e = select_gpus(GpuDetection::Failed("gpu lost".into()), &[]).unwrap_err();
        assert!(e.to_string().starts_with("nvml failed: gpu lost; "), "{e}");

        let bad = [decl("nvidia", "a100", "80Gi", "nvlink", 1)];
        assert!(select_gpus(GpuDetection::NoDriver("x".into()), &bad).is_err());
    }
}
