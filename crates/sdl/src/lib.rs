//! Akash-compatible SDL (v2.0/v2.1): parse, validate, and derive on-chain group specs and the provider manifest.
//!
//! ```
//! let text = r#"
//! version: "2.0"
//! services:
//!   web:
//!     image: nginx
//!     expose:
//!       - port: 80
//!         to: [{ global: true }]
//! profiles:
//!   compute:
//!     web:
//!       resources: { cpu: { units: 0.5 }, memory: { size: 512Mi }, storage: { size: 1Gi } }
//!   placement:
//!     dc:
//!       pricing: { web: { denom: uakt, amount: 100 } }
//! deployment:
//!   web:
//!     dc: { profile: web, count: 2 }
//! "#;
//! let sdl = gridlease_sdl::Sdl::parse("app.yaml", text).expect("valid sdl");
//! assert_eq!(sdl.groups()[0].resources[0].resources.cpu.millis, 500);
//! assert_eq!(sdl.groups()[0].resources[0].count, 2);
//! ```
//!
//! The rules of Akash's Go parser (`chain-sdk/go/sdl`), of the chain's group
//! limits and of the provider's manifest checks are applied, and so are the
//! stricter rules of Akash's JSON schema (enumerations, lengths, required
//! fields). Errors carry the file name, line, column and field path (see
//! [`SdlError`]); all problems of a file are reported, in source order.
//!
//! Where gridlease deliberately differs from Akash's Go parser:
//! - unknown fields below the top level are warnings ([`Sdl::warnings`]),
//!   since Akash's decoder ignores them and real templates carry them
//!   (`depends_on`, `restart`); unknown top-level, GPU, CPU-attribute and
//!   storage-attribute fields stay errors, as in Akash;
//! - sizes also accept the spellings Akash Console accepts (`10GB`, `512Mb`,
//!   `1gi`), decimal for `k/M/G/…` and binary for `Ki/Mi/Gi/…`;
//! - quantities are computed in exact decimal, not through a 64-bit float
//!   (`2.01` cores is 2010 millicores; Akash's Go parser yields 2009);
//! - denominations are `uakt`, `uact`, `ugrid`, `uusdc` or an IBC voucher
//!   `ibc/<64 hex>` (the schema allows only `uakt`/`uact`; the chain any);
//! - a persistent volume must be mounted by every service that uses its
//!   profile (Akash 2.0 skips the check when another volume is mounted, 2.1
//!   when the volume has no `params.storage` entry).

#![forbid(unsafe_code)]

pub mod akash;
mod decode;
mod derive;
mod error;
mod model;
mod quantity;
mod rules;
pub mod spec;
mod validate;
mod yaml;

pub use error::{SdlError, SdlErrors};
pub use model::SdlVersion;
pub use quantity::{BadAmount, Dec18};
pub use rules::{
    MAX_CPU_MILLIS, MAX_GPU_UNITS, MAX_MEMORY_BYTES, MAX_STORAGE_BYTES, MAX_UNIT_PRICE,
    MIN_CPU_MILLIS, MIN_MEMORY_BYTES, MIN_STORAGE_BYTES, SERVICE_NAME_MAX, SERVICE_NAME_RULE,
    is_valid_service_name,
};
pub use spec::{AuctionPolicy, GroupSpec, ManifestGroup, SlaSpec};
pub use yaml::Pos;

use error::{Diagnostics, FieldPath};

/// Largest SDL file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// A valid SDL file with its derived group specs and manifest.
#[derive(Debug, Clone)]
pub struct Sdl {
    version: SdlVersion,
    groups: Vec<GroupSpec>,
    manifest: Vec<ManifestGroup>,
    reclamation_min_window_secs: Option<u64>,
    warnings: Vec<SdlError>,
}

impl Sdl {
    /// Parses and validates `text`; `source_name` (usually the file path)
    /// prefixes every error.
    pub fn parse(source_name: &str, text: &str) -> Result<Sdl, SdlErrors> {
        let mut d = Diagnostics::new(source_name);
        let root = FieldPath::root();
        if text.len() > MAX_SOURCE_BYTES {
            d.error(
                Pos { line: 1, column: 1 },
                &root,
                format!("file is {} bytes; expected at most {MAX_SOURCE_BYTES}", text.len()),
            );
            return Err(d.into_errors());
        }
        let node = match yaml::parse(text) {
            Ok(Some(node)) => node,
            Ok(None) => {
                d.error(Pos { line: 1, column: 1 }, &root, "empty file; expected an SDL document with version, services, profiles and deployment");
                return Err(d.into_errors());
            }
            Err(e) => {
                d.error(e.pos, &root, e.message);
                return Err(d.into_errors());
            }
        };
        let input = decode::Decoder { diag: &mut d }.decode(&node);
        let Some(input) = input.filter(|_| !d.has_errors()) else {
            return Err(d.into_errors());
        };
        validate::check_references(&input, &mut d);
        if d.has_errors() {
            return Err(d.into_errors());
        }
        let derived = derive::derive(&input, &mut d);
        validate::check_derived(
            &input,
            &derived.groups,
            &derived.origins,
            &derived.manifest,
            &mut d,
        );
        let warnings = d.take_warnings();
        d.into_result(Sdl {
            warnings,
            version: input.version,
            groups: derived.groups,
            manifest: derived.manifest,
            reclamation_min_window_secs: input.reclamation_min_window_secs,
        })
    }

    /// Things Akash accepts that are probably mistakes (such as unknown
    /// fields, which Akash ignores), in source order.
    pub fn warnings(&self) -> &[SdlError] {
        &self.warnings
    }

    /// The SDL version the file declares.
    pub fn version(&self) -> SdlVersion {
        self.version
    }

    /// The on-chain group specs, sorted by name.
    pub fn groups(&self) -> &[GroupSpec] {
        &self.groups
    }

    /// The manifest the provider receives, one group per group spec.
    pub fn manifest(&self) -> &[ManifestGroup] {
        &self.manifest
    }

    /// The deployment's minimum reclamation window in seconds, if it sets one.
    pub fn reclamation_min_window_secs(&self) -> Option<u64> {
        self.reclamation_min_window_secs
    }

    /// Group specs in the gridlease JSON shape.
    pub fn groups_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.groups).unwrap_or(serde_json::Value::Null)
    }

    /// Manifest in the gridlease JSON shape.
    pub fn manifest_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.manifest).unwrap_or(serde_json::Value::Null)
    }

    /// Group specs in Akash's JSON shape.
    pub fn groups_akash_json(&self) -> serde_json::Value {
        akash::groups_json(&self.groups)
    }

    /// Manifest in Akash's JSON shape.
    pub fn manifest_akash_json(&self) -> serde_json::Value {
        akash::manifest_json(&self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "version: \"2.1\"\nservices:\n  web:\n    image: nginx\n    expose:\n      - port: 80\n        to: [{global: true}]\nprofiles:\n  compute:\n    web:\n      resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}\n  placement:\n    dc:\n      pricing: {web: {denom: uakt, amount: 1}}\ndeployment:\n  web:\n    dc: {profile: web, count: 1}\n";

    #[test]
    fn reclamation_window_is_read_in_seconds() {
        let text = format!("{MINIMAL}reclamation:\n  min_window: 2h\n");
        let sdl = Sdl::parse("a.yaml", &text).map_err(|e| e.to_string());
        assert_eq!(sdl.as_ref().map(Sdl::reclamation_min_window_secs), Ok(Some(7200)));
        assert_eq!(sdl.map(|s| s.version()), Ok(SdlVersion::V2_1));
    }

    #[test]
    fn non_ascii_reclamation_window_is_an_error_not_a_panic() {
        let text = format!("{MINIMAL}reclamation:\n  min_window: \"1é\"\n");
        let err = Sdl::parse("a.yaml", &text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("invalid reclamation window"), "{err}");
    }

    #[test]
    fn errors_name_the_file_line_column_and_path() {
        let text = MINIMAL.replace("units: 1}", "units: lots}");
        let errors = Sdl::parse("app.yaml", &text).err().map(|e| e.errors).unwrap_or_default();
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!((e.source_name.as_str(), e.line, e.column), ("app.yaml", 11, 32));
        assert_eq!(e.path, "profiles.compute.web.resources.cpu.units");
        assert!(
            e.to_string().starts_with("app.yaml:11:32: profiles.compute.web.resources.cpu.units: ")
        );
    }

    #[test]
    fn oversized_input_is_rejected() {
        let text = "#".repeat(MAX_SOURCE_BYTES + 1);
        let err = Sdl::parse("big.yaml", &text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expected at most"), "{err}");
    }

    #[test]
    fn several_problems_are_reported_together_in_source_order() {
        let text = MINIMAL.replace("image: nginx", "image: \"\"").replace("count: 1", "count: 0");
        let errors = Sdl::parse("a.yaml", &text).err().map(|e| e.errors).unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["services.web.image", "deployment.web.dc.count"]);
    }
}
