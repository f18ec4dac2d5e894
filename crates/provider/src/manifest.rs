//! The manifest a tenant sends: the services of each group of the deployment, in the JSON
//! shape `gridlease sdl manifest --output json` prints. The provider checks that the exact
//! bytes hash (SHA-256) to the deployment's on-chain `manifest_hash`, then reads only what it
//! runs: images, commands, env, resources per replica, storage volumes and their mounts,
//! counts and exposed ports.

use gridlease_types::Attribute;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of a manifest's bytes, as the chain keeps it.
pub fn manifest_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A whole deployment's manifest: one entry per group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Manifest(pub Vec<ManifestGroup>);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestGroup {
    pub name: String,
    pub services: Vec<Service>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    pub resources: ServiceResources,
    pub count: u32,
    #[serde(default)]
    pub expose: Vec<Expose>,
    #[serde(default)]
    pub params: Option<Params>,
}

/// Service parameters; the provider reads where storage volumes are mounted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    #[serde(default)]
    pub storage: Option<Vec<StorageParam>>,
}

/// Where one of the service's storage volumes is mounted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageParam {
    pub name: String,
    pub mount: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A storage volume of the service's resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageVolume {
    pub name: String,
    pub bytes: u64,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// How a mounted volume lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// Kept for the whole lease, across restarts and re-creations of the replica.
    Persistent,
    /// Starts empty whenever the replica is created.
    Ephemeral,
    /// In memory (`class: ram`), at most its size.
    Ram,
}

/// A volume a replica mounts, as drivers get it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name in the SDL.
    pub name: String,
    /// Absolute path inside the container.
    pub mount: String,
    pub read_only: bool,
    pub kind: VolumeKind,
    pub bytes: u64,
}

/// Whether a name from the manifest can become part of a file, container or volume name:
/// ascii letters, digits, `-`, `_` and `.`, starting with a letter or digit (so never `..` or
/// a path).
pub fn is_safe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Service {
    /// The volumes this service mounts (volumes without a mount, such as the root one, are
    /// its containers' own disk).
    pub fn volumes(&self) -> Result<Vec<VolumeMount>, ManifestError> {
        let params = self.params.as_ref().and_then(|p| p.storage.as_deref()).unwrap_or(&[]);
        let bad = |message: String| ManifestError::Service { service: self.name.clone(), message };
        let mut mounts: Vec<VolumeMount> = Vec::with_capacity(params.len());
        for param in params {
            if !is_safe_name(&param.name) {
                return Err(bad(format!(
                    "storage name `{}` must be ascii letters, digits, `-`, `_` and `.`, starting \
                     with a letter or digit",
                    param.name
                )));
            }
            let volume =
                self.resources.storage.iter().find(|v| v.name == param.name).ok_or_else(|| {
                    bad(format!(
                        "mounts storage `{}` that its resources do not declare",
                        param.name
                    ))
                })?;
            if !param.mount.starts_with('/') || param.mount.split('/').any(|c| c == "..") {
                return Err(bad(format!(
                    "storage `{}` must be mounted at an absolute path without `..`, not `{}`",
                    param.name, param.mount
                )));
            }
            if mounts.iter().any(|m| m.mount == param.mount || m.name == param.name) {
                return Err(bad(format!(
                    "storage `{}` or its mount `{}` appears twice",
                    param.name, param.mount
                )));
            }
            let attr = |key: &str| {
                volume.attributes.iter().find(|a| a.key == key).map(|a| a.value.as_str())
            };
            let kind = if attr("class") == Some("ram") {
                VolumeKind::Ram
            } else if attr("persistent") == Some("true") {
                VolumeKind::Persistent
            } else {
                VolumeKind::Ephemeral
            };
            mounts.push(VolumeMount {
                name: param.name.clone(),
                mount: param.mount.clone(),
                read_only: param.read_only,
                kind,
                bytes: volume.bytes,
            });
        }
        Ok(mounts)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResources {
    /// The group's resource unit this service runs on (from 1).
    pub id: u32,
    pub cpu: Cpu,
    pub memory_bytes: u64,
    #[serde(default)]
    pub gpu: Gpu,
    #[serde(default)]
    pub storage: Vec<StorageVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    pub millis: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub units: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expose {
    pub port: u32,
    #[serde(default)]
    pub external_port: u32,
    /// `TCP` or `UDP`.
    pub proto: String,
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub service: String,
}

/// Why a manifest cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("manifest has no group named `{0}` (the lease's group)")]
    NoGroup(String),
    #[error("service `{service}`: {message}")]
    Service { service: String, message: String },
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        for g in &m.0 {
            for s in &g.services {
                let bad = |message: &str| ManifestError::Service {
                    service: s.name.clone(),
                    message: message.to_string(),
                };
                if !gridlease_sdl::is_valid_service_name(&s.name) {
                    return Err(bad(&format!(
                        "the service name must be {}",
                        gridlease_sdl::SERVICE_NAME_RULE
                    )));
                }
                if s.image.is_empty() {
                    return Err(bad("image is empty"));
                }
                if s.count == 0 || s.count > 1000 {
                    return Err(bad("count must be 1 to 1000"));
                }
                s.volumes()?;
                for e in &s.expose {
                    if e.port == 0 || e.port > 65535 {
                        return Err(bad("exposed port must be 1 to 65535"));
                    }
                    if e.proto != "TCP" && e.proto != "UDP" {
                        return Err(bad("proto must be TCP or UDP"));
                    }
                }
            }
        }
        Ok(m)
    }

    /// The group a lease runs.
    pub fn group(&self, name: &str) -> Result<&ManifestGroup, ManifestError> {
        self.0.iter().find(|g| g.name == name).ok_or_else(|| ManifestError::NoGroup(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"[{"name":"dc","services":[{"name":"web","image":"demo","command":null,
      "args":["--port","8080"],"env":["A=1"],"resources":{"id":1,"cpu":{"millis":500,"attributes":[]},
      "memory_bytes":536870912,"storage":[],"gpu":{"units":1,"attributes":[]},"endpoints":[]},
      "count":2,"expose":[{"port":8080,"external_port":0,"proto":"TCP","service":"","global":true,
      "hosts":null,"http_options":{},"ip":"","endpoint_sequence_number":0}],"params":null,
      "credentials":null}]}]"#;

    #[test]
    fn reads_what_the_provider_runs_and_ignores_the_rest() {
        let m = Manifest::parse(DOC.as_bytes()).expect("parses");
        let g = m.group("dc").expect("group");
        assert_eq!(g.services[0].count, 2);
        assert_eq!(g.services[0].resources.gpu.units, 1);
        assert_eq!(g.services[0].expose[0].port, 8080);
        assert!(matches!(m.group("other"), Err(ManifestError::NoGroup(_))));
        assert_ne!(manifest_hash(DOC.as_bytes()), manifest_hash(b"[]"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let e = Manifest::parse(b"{").expect_err("not json").to_string();
        assert!(e.starts_with("manifest is not valid JSON"), "{e}");
        let zero = DOC.replace("\"count\":2", "\"count\":0");
        let e = Manifest::parse(zero.as_bytes()).expect_err("count").to_string();
        assert_eq!(e, "service `web`: count must be 1 to 1000");
        let unknown = DOC.replace(
            "\"params\":null",
            r#""params":{"storage":[{"name":"data","mount":"/data","read_only":false}]}"#,
        );
        let e = Manifest::parse(unknown.as_bytes()).expect_err("volume").to_string();
        assert_eq!(e, "service `web`: mounts storage `data` that its resources do not declare");
        let relative = DOC.replace("\"storage\":[]", STORAGE).replace(
            "\"params\":null",
            r#""params":{"storage":[{"name":"data","mount":"data","read_only":false}]}"#,
        );
        let e = Manifest::parse(relative.as_bytes()).expect_err("relative").to_string();
        assert!(e.contains("absolute path"), "{e}");
        let escaping =
            DOC.replace("\"storage\":[]", &STORAGE.replace("\"data\"", "\"../d\"")).replace(
                "\"params\":null",
                r#""params":{"storage":[{"name":"../d","mount":"/d","read_only":false}]}"#,
            );
        let e = Manifest::parse(escaping.as_bytes()).expect_err("escaping").to_string();
        assert!(e.contains("storage name `../d`"), "{e}");
        let service = DOC.replace("\"name\":\"web\"", "\"name\":\"../web\"");
        let e = Manifest::parse(service.as_bytes()).expect_err("service name").to_string();
        assert!(e.contains("the service name must be"), "{e}");
    }

    const STORAGE: &str = r#""storage":[{"name":"default","bytes":1073741824,"attributes":[]},
      {"name":"data","bytes":2147483648,"attributes":[{"key":"persistent","value":"true"}]},
      {"name":"scratch","bytes":1048576,"attributes":[]},
      {"name":"shm","bytes":67108864,"attributes":[{"key":"class","value":"ram"},
      {"key":"persistent","value":"false"}]}]"#;

    #[test]
    fn volumes_are_mounted_by_kind() {
        let doc = DOC.replace("\"storage\":[]", STORAGE).replace(
            "\"params\":null",
            r#""params":{"storage":[{"name":"data","mount":"/var/data","read_only":false},
              {"name":"shm","mount":"/dev/shm","read_only":false},
              {"name":"scratch","mount":"/scratch","read_only":true}],"permissions":null}"#,
        );
        let m = Manifest::parse(doc.as_bytes()).expect("parses");
        let volumes = m.0[0].services[0].volumes().expect("volumes");
        let summary: Vec<_> = volumes
            .iter()
            .map(|v| (v.name.as_str(), v.mount.as_str(), v.kind, v.read_only, v.bytes))
            .collect();
        assert_eq!(
            summary,
            [
                ("data", "/var/data", VolumeKind::Persistent, false, 2 << 30),
                ("shm", "/dev/shm", VolumeKind::Ram, false, 64 << 20),
                ("scratch", "/scratch", VolumeKind::Ephemeral, true, 1 << 20),
            ]
        );
    }
}
