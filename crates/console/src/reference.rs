//! The reference prices the market page compares against: on-demand cloud prices per
//! GPU-hour by model, and what a unit of each priced denomination is worth in dollars, read
//! from a TOML file (`reference-prices.toml` in this crate is the default).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The file compiled in, used without `--reference-prices`.
pub const DEFAULT_FILE: &str = include_str!("../reference-prices.toml");

/// Largest reference file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferencePrices {
    /// US dollars per unit of a denomination (`uusdc = 0.000001`).
    #[serde(default)]
    pub denoms: BTreeMap<String, f64>,
    #[serde(default)]
    pub gpu: Vec<GpuReference>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuReference {
    /// Lowercase model as providers report it (`h100`).
    pub model: String,
    pub usd_per_hour: f64,
    /// Where the figure comes from, shown beside it.
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference prices {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("reference prices {path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl ReferencePrices {
    /// The compiled-in defaults.
    pub fn defaults() -> ReferencePrices {
        Self::parse(DEFAULT_FILE, "reference-prices.toml").unwrap_or_default()
    }

    pub fn load(path: &Path) -> Result<ReferencePrices, ReferenceError> {
        let shown = path.display().to_string();
        let read = |reason: String| ReferenceError::Read { path: shown.clone(), reason };
        let len = std::fs::metadata(path).map_err(|e| read(e.to_string()))?.len();
        if len > MAX_FILE_BYTES {
            return Err(read(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<ReferencePrices, ReferenceError> {
        let invalid = |reason: String| ReferenceError::Invalid { path: path.to_string(), reason };
        let prices: ReferencePrices = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (denom, usd) in &prices.denoms {
            if !usd.is_finite() || *usd <= 0.0 {
                return Err(invalid(format!("denomination {denom}: the price must be above 0")));
            }
        }
        for g in &prices.gpu {
            if !g.usd_per_hour.is_finite() || g.usd_per_hour <= 0.0 {
                return Err(invalid(format!("gpu {}: usd_per_hour must be above 0", g.model)));
            }
        }
        Ok(prices)
    }

    /// Dollars per unit of `denom`, when it is priced.
    pub fn usd_per_unit(&self, denom: &str) -> Option<f64> {
        self.denoms.get(denom).copied()
    }

    /// The reference of a model (case-insensitive).
    pub fn gpu(&self, model: &str) -> Option<&GpuReference> {
        self.gpu.iter().find(|g| g.model.eq_ignore_ascii_case(model))
    }
}

/// The saving of `ours` against `reference`, in percent (negative when dearer).
pub fn saving_percent(ours: f64, reference: f64) -> f64 {
    (1.0 - ours / reference) * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_parse_and_price_the_stable_denominations() {
        let r = ReferencePrices::defaults();
        assert_eq!(r.usd_per_unit("uusdc"), Some(0.000001));
        assert_eq!(r.usd_per_unit("ugrid"), None);
        assert!(r.gpu("H100").is_some_and(|g| g.usd_per_hour > 0.0));
    }

    #[test]
    fn a_bad_file_says_what_is_wrong() {
        let e = ReferencePrices::parse("[[gpu]]\nmodel = \"h100\"\nusd_per_hour = -1\n", "f.toml")
            .unwrap_err();
        assert!(e.to_string().contains("gpu h100: usd_per_hour must be above 0"), "{e}");
        let e = ReferencePrices::parse("[denoms]\nuusdc = \"x\"\n", "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("reference prices f.toml:"), "{e}");
        assert!(ReferencePrices::parse("surprise = 1\n", "f.toml").is_err());
    }

    #[test]
    fn saving_is_relative_to_the_reference() {
        assert!((saving_percent(2.0, 8.0) - 75.0).abs() < 1e-9);
        assert!(saving_percent(10.0, 8.0) < 0.0);
    }
}
