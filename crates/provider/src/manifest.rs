//! The manifest a tenant sends: the services of each group of the deployment, as
//! `gridlease_sdl::spec` defines them (the tenant derives them from its SDL; this is the
//! same type read back). The provider checks that the exact bytes hash (SHA-256) to the
//! deployment's on-chain `manifest_hash`, then reads only what it runs: images, commands,
//! env, resources per replica, storage volumes and their mounts, counts and exposed ports.

use gridlease_sdl::spec::{ManifestGroup, ManifestService};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of a manifest's bytes, as the chain keeps it.
pub fn manifest_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A whole deployment's manifest, one entry per group, that [`Manifest::parse`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest(pub Vec<ManifestGroup>);

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

/// The volumes `service` mounts (volumes without a mount, such as the root one, are its
/// containers' own disk).
pub fn volume_mounts(service: &ManifestService) -> Result<Vec<VolumeMount>, ManifestError> {
    let params = service.params.as_ref().and_then(|p| p.storage.as_deref()).unwrap_or(&[]);
    let bad = |message: String| ManifestError::Service { service: service.name.clone(), message };
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
            service.resources.storage.iter().find(|v| v.name == param.name).ok_or_else(|| {
                bad(format!("mounts storage `{}` that its resources do not declare", param.name))
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
        let attr =
            |key: &str| volume.attributes.iter().find(|a| a.key == key).map(|a| a.value.as_str());
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
    /// Reads the tenant's bytes (a protocol other than `TCP` or `UDP` is a shape error) and
    /// checks every service: a valid name, an image, 1 to 1000 replicas, safe volume mounts
    /// and exposed ports 1 to 65535.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let groups: Vec<ManifestGroup> =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        for g in &groups {
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
                volume_mounts(s)?;
                if s.expose.iter().any(|e| e.port == 0 || e.port > 65535) {
                    return Err(bad("exposed port must be 1 to 65535"));
                }
            }
        }
        Ok(Manifest(groups))
    }

    /// The group a lease runs.
    pub fn group(&self, name: &str) -> Result<&ManifestGroup, ManifestError> {
        self.0.iter().find(|g| g.name == name).ok_or_else(|| ManifestError::NoGroup(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use gridlease_sdl::spec::Protocol;

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

    #[test]
    fn protocols_other_than_tcp_and_udp_are_refused() {
        let sctp = DOC.replace("\"proto\":\"TCP\"", "\"proto\":\"SCTP\"");
        let e = Manifest::parse(sctp.as_bytes()).expect_err("sctp").to_string();
        assert!(e.starts_with("manifest is not valid JSON of the expected shape"), "{e}");
        assert!(e.contains("expected `TCP` or `UDP`"), "{e}");
        let udp = DOC.replace("\"proto\":\"TCP\"", "\"proto\":\"UDP\"");
        let m = Manifest::parse(udp.as_bytes()).expect("udp");
        assert_eq!(m.0[0].services[0].expose[0].proto, Protocol::Udp);
    }

    /// A service with a GPU, a persistent mounted volume and a global UDP port.
    const SDL: &str = r#"
version: "2.0"
services:
  web:
    image: demo
    params:
      storage:
        data: { mount: /data }
    expose:
      - port: 8080
        proto: udp
        to: [{ global: true }]
profiles:
  compute:
    web:
      resources:
        cpu: { units: 0.5 }
        memory: { size: 512Mi }
        gpu: { units: 1, attributes: { vendor: { nvidia: [{ model: a100 }] } } }
        storage:
          - size: 1Gi
          - { name: data, size: 2Gi, attributes: { persistent: true, class: beta2 } }
  placement:
    dc:
      pricing: { web: { denom: uakt, amount: 100 } }
deployment:
  web:
    dc: { profile: web, count: 2 }
"#;

    /// The bytes a tenant sends read back as exactly the manifest it derived.
    #[test]
    fn the_tenants_manifest_reads_back_as_derived() {
        let sdl = gridlease_sdl::Sdl::parse("app.yaml", SDL).expect("sdl");
        let bytes = gridlease_client::sdl::manifest_bytes(&sdl);
        let m = Manifest::parse(&bytes).expect("parses");
        assert_eq!(m.0, sdl.manifest());
        let volumes = volume_mounts(&m.0[0].services[0]).expect("volumes");
        assert_eq!(volumes[0].kind, VolumeKind::Persistent);
        assert_eq!(m.0[0].services[0].expose[0].proto, Protocol::Udp);
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
        let volumes = volume_mounts(&m.0[0].services[0]).expect("volumes");
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
