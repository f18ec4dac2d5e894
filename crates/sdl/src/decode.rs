//! Decoding the YAML tree into the SDL input model, with the structural rules
//! of Akash's SDL (its Go parser and its JSON schema): allowed and required
//! fields, types, enumerations, ranges and units. This module reads the top level;
//! its submodules read one section each.

mod compute;
mod deployment;
mod endpoints;
mod expose;
mod gpu;
mod nodes;
mod placement;
mod services;

use std::collections::BTreeMap;

use crate::error::{Diagnostics, FieldPath};
use crate::model::{ComputeProfile, Input, PlacementProfile, SdlVersion};
use crate::yaml::Node;

/// Reads an SDL document into [`Input`], reporting every problem it finds.
pub(crate) struct Decoder<'d> {
    pub diag: &'d mut Diagnostics,
}

/// The top-level key of gridlease's SDL extension. Akash's parser (Go, decoding YAML into its
/// struct without strict fields) skips a key it does not know, so a file with it still deploys
/// on Akash, which then ignores it.
pub const GRIDLEASE_EXTENSION: &str = "x-gridlease";
/// Most replicas `x-gridlease.replicas` asks for one placement.
pub const MAX_REPLICAS: u64 = 10;

type ComputeProfiles = BTreeMap<String, ComputeProfile>;
type PlacementProfiles = BTreeMap<String, PlacementProfile>;

impl Decoder<'_> {
    pub(crate) fn decode(&mut self, root: &Node) -> Option<Input> {
        let path = FieldPath::root();
        let top = self.strict_fields(
            root,
            &path,
            &[
                "version",
                "include",
                "services",
                "profiles",
                "deployment",
                "endpoints",
                "reclamation",
                GRIDLEASE_EXTENSION,
            ],
            &["version", "services", "profiles", "deployment"],
        )?;
        let version = match top.get("version") {
            Some(v) => self.version(v, &path.key("version")),
            None => None,
        };
        if let Some(include) = top.get("include") {
            self.string_list(include, &path.key("include"));
        }
        let services =
            top.get("services").map(|n| self.map_values(n, &path.key("services"), Self::service));
        let (compute, placement) = match top.get("profiles") {
            Some(n) => self.profiles(n, &path.key("profiles")),
            None => (None, None),
        };
        let deployment_node = top.get("deployment");
        let deployment = deployment_node.map(|n| self.deployment(n, &path.key("deployment")));
        let endpoints = top.get("endpoints").map(|n| self.endpoints(n, &path.key("endpoints")));
        let reclamation =
            top.get("reclamation").map(|n| self.reclamation(n, &path.key("reclamation")));
        let extension = match top.get(GRIDLEASE_EXTENSION) {
            Some(n) => self.extension(n, &path.key(GRIDLEASE_EXTENSION)),
            None => Some((BTreeMap::new(), Default::default(), None)),
        };
        Some(Input {
            version: version?,
            root_pos: root.pos,
            services: services??,
            compute: compute?,
            placement: placement?,
            deployment: deployment??,
            deployment_pos: deployment_node.map(|n| n.pos).unwrap_or(root.pos),
            endpoints: endpoints.unwrap_or(Some(BTreeMap::new()))?,
            reclamation_min_window_secs: reclamation.unwrap_or(Some(None))?,
            replicas: extension.as_ref()?.0.clone(),
            auction: extension.as_ref()?.1,
            sla: extension?.2,
        })
    }

    /// gridlease's own section: `replicas: {PLACEMENT: N}` (1 to 10 replicas of the placement's
    /// group, each on a provider of its own) and `auction: price | reliability`. Unknown
    /// fields in it are errors.
    #[allow(clippy::type_complexity)]
    fn extension(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<(
        BTreeMap<String, (u32, crate::yaml::Pos)>,
        crate::spec::AuctionPolicy,
        Option<crate::spec::SlaSpec>,
    )> {
        let f = self.strict_fields(node, path, &["replicas", "auction", "sla"], &[])?;
        let replicas = match f.get("replicas") {
            None => Some(BTreeMap::new()),
            Some(n) => self.map_values(n, &path.key("replicas"), |d, v, pos, p| {
                d.bounded_u32(v, p, 1, MAX_REPLICAS, "a replica count from 1 to 10")
                    .map(|c| (c, pos))
            }),
        };
        let auction = match f.get("auction") {
            None => Some(crate::spec::AuctionPolicy::Price),
            Some(n) => {
                let text = n.as_scalar().map(|s| s.text.as_str()).unwrap_or("");
                match text {
                    "price" => Some(crate::spec::AuctionPolicy::Price),
                    "reliability" => Some(crate::spec::AuctionPolicy::Reliability),
                    _ => {
                        self.err(
                            n.pos,
                            &path.key("auction"),
                            format!(
                                "unknown auction policy {text:?}; expected \"price\" or \"reliability\""
                            ),
                        );
                        None
                    }
                }
            }
        };
        let sla = match f.get("sla") {
            None => Some(None),
            Some(n) => self.sla(n, &path.key("sla")).map(Some),
        };
        Some((replicas?, auction?, sla?))
    }

    /// `sla: {period_blocks: N, allowed_downtime: P%, penalty: P%}` (`penalty` defaults to
    /// 10%).
    fn sla(&mut self, node: &Node, path: &FieldPath) -> Option<crate::spec::SlaSpec> {
        let f = self.strict_fields(
            node,
            path,
            &["period_blocks", "allowed_downtime", "penalty"],
            &["period_blocks", "allowed_downtime"],
        )?;
        let expected = "a period from 100 to 100000000 blocks";
        let period = f.get("period_blocks").and_then(|n| {
            let p = path.key("period_blocks");
            let v = self.uint(n, &p, expected)?;
            if !(100..=100_000_000).contains(&v) {
                self.err(n.pos, &p, format!("{v} is out of range; expected {expected}"));
                return None;
            }
            Some(v)
        });
        let allowed = f
            .get("allowed_downtime")
            .and_then(|n| self.percent_ppm(n, &path.key("allowed_downtime")));
        let penalty = match f.get("penalty") {
            None => Some(100_000),
            Some(n) => self.percent_ppm(n, &path.key("penalty")),
        };
        Some(crate::spec::SlaSpec {
            period_blocks: period?,
            allowed_down_ppm: allowed?,
            penalty_ppm: penalty?,
        })
    }

    /// A percentage from 0 to 100 with up to four decimals (`0.1%`, `5%`, `2.5`), in parts
    /// per million.
    fn percent_ppm(&mut self, node: &Node, path: &FieldPath) -> Option<u32> {
        let text = node.as_scalar().map(|s| s.text.trim().to_owned()).unwrap_or_default();
        let number = text.strip_suffix('%').unwrap_or(&text).trim();
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let parsed = if digits(whole) && (frac.is_empty() || (digits(frac) && frac.len() <= 4)) {
            let w = whole.parse::<u64>().ok();
            let f = format!("{frac:0<4}").parse::<u64>().ok();
            w.zip(f)
                .and_then(|(w, f)| w.checked_mul(10_000).and_then(|w| w.checked_add(f)))
                .filter(|v| *v <= 1_000_000)
        } else {
            None
        };
        if parsed.is_none() {
            self.err(
                node.pos,
                path,
                format!("expected a percentage from 0 to 100 with up to 4 decimals (like 0.1%), found {text:?}"),
            );
        }
        parsed.and_then(|v| u32::try_from(v).ok())
    }

    fn version(&mut self, node: &Node, path: &FieldPath) -> Option<SdlVersion> {
        let text = node.as_scalar().map(|s| s.text.as_str()).unwrap_or("");
        match text {
            "2.0" => Some(SdlVersion::V2_0),
            "2.1" => Some(SdlVersion::V2_1),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("unsupported sdl version {text:?}; expected \"2.0\" or \"2.1\""),
                );
                None
            }
        }
    }

    /// `profiles`: the compute profiles and the placement profiles, each `None` if it fails.
    fn profiles(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> (Option<ComputeProfiles>, Option<PlacementProfiles>) {
        let Some(f) = self.fields(node, path, &["compute", "placement"], &["compute", "placement"])
        else {
            return (None, None);
        };
        let compute = f
            .get("compute")
            .and_then(|n| self.map_values(n, &path.key("compute"), Self::compute_profile));
        let placement = f
            .get("placement")
            .and_then(|n| self.map_values(n, &path.key("placement"), Self::placement_profile));
        (compute, placement)
    }
}
