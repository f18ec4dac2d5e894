//! A compute profile's `gpu`: how many, and the NVIDIA models (with RAM and interface) it
//! accepts, as Akash's sorted `vendor/nvidia/model/...` attribute keys.

use super::Decoder;
use crate::error::FieldPath;
use crate::quantity;
use crate::rules::is_valid_attribute_key;
use crate::yaml::Node;

impl Decoder<'_> {
    /// `gpu`: units and attributes (none when units is 0).
    pub(super) fn gpu(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<(u64, Vec<(String, String)>)> {
        let f = self.strict_fields(node, path, &["units", "attributes"], &[])?;
        let up = path.key("units");
        let units = match f.get("units") {
            Some(n) => self.gpu_units(n, &up)?,
            None => 0,
        };
        let attributes = match f.get("attributes") {
            Some(n) => self.gpu_attributes(n, &path.key("attributes"))?,
            None => Vec::new(),
        };
        if units > 0 && attributes.is_empty() {
            self.err(
                node.pos,
                &path.key("attributes"),
                "gpu units > 0 require attributes; expected attributes.vendor.nvidia (a list of models, or empty for any model)",
            );
            return None;
        }
        if units == 0 && !attributes.is_empty() {
            self.err(
                node.pos,
                &up,
                "gpu attributes are set but units is 0; expected units of at least 1",
            );
            return None;
        }
        Some((units, attributes))
    }

    /// `gpu.units`: a whole number of GPUs, written without a sign.
    fn gpu_units(&mut self, node: &Node, path: &FieldPath) -> Option<u64> {
        let text = node.as_scalar().map(|s| s.text.as_str()).unwrap_or("");
        match text.parse::<u64>() {
            Ok(v) if !text.starts_with('+') => Some(v),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("invalid gpu units {text:?}; expected a whole number of gpus"),
                );
                None
            }
        }
    }

    /// `gpu.attributes`: the model keys, sorted, each with the value `true` (any model if
    /// none is listed).
    fn gpu_attributes(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<(String, String)>> {
        let f = self.strict_fields(node, path, &["vendor"], &[])?;
        let vp = path.key("vendor");
        let Some(vendor_node) = f.get("vendor").filter(|n| !n.is_null()) else {
            self.err(node.pos, &vp, "missing gpu vendor; expected vendor.nvidia");
            return None;
        };
        let vendors = self.map(vendor_node, &vp)?;
        if vendors.is_empty() {
            self.err(vendor_node.pos, &vp, "no gpu vendor given; expected nvidia");
            return None;
        }
        let mut keys: Vec<String> = Vec::new();
        for (name, key, models) in vendors {
            if name != "nvidia" {
                self.err(
                    key.pos,
                    &vp.key(name),
                    format!("unsupported gpu vendor `{name}`; expected nvidia"),
                );
                return None;
            }
            self.nvidia_models(models, &vp.key("nvidia"), &mut keys)?;
        }
        if keys.is_empty() {
            keys.push("vendor/nvidia/model/*".to_owned());
        }
        keys.sort();
        Some(keys.into_iter().map(|k| (k, "true".to_owned())).collect())
    }

    /// Adds the attribute key of each model listed under `vendor.nvidia` to `keys`.
    fn nvidia_models(
        &mut self,
        node: &Node,
        path: &FieldPath,
        keys: &mut Vec<String>,
    ) -> Option<()> {
        let items = self.seq(node, path)?;
        for (i, item) in items.iter().enumerate() {
            let ip = path.index(i);
            let key = self.gpu_model(item, &ip)?;
            let full = format!("vendor/nvidia/model/{key}");
            if !is_valid_attribute_key(&full) {
                self.err(
                    item.pos,
                    &ip,
                    format!("gpu attribute key {full:?} is invalid; model names may use letters, digits, _, -, . and /"),
                );
                return None;
            }
            if keys.contains(&full) {
                self.err(item.pos, &ip, format!("duplicate gpu model entry {key:?}"));
                return None;
            }
            keys.push(full);
        }
        Some(())
    }

    /// One model entry as a key below `vendor/nvidia/model/`: `model[/ram/<n>Gi][/interface/<i>]`.
    fn gpu_model(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        let f = self.fields(node, path, &["model", "ram", "interface"], &[])?;
        let mut key = match f.get("model") {
            Some(m) => self.string(m, &path.key("model"))?,
            None => String::new(),
        };
        if let Some(r) = f.get("ram") {
            let rp = path.key("ram");
            let text = self.string(r, &rp)?;
            match quantity::parse_gpu_ram_bytes(&text) {
                Ok(bytes) => key = format!("{key}/ram/{}Gi", bytes / (1 << 30)),
                Err(e) => {
                    self.err(r.pos, &rp, e);
                    return None;
                }
            }
        }
        if let Some(n) = f.get("interface") {
            let ifp = path.key("interface");
            let text = self.string(n, &ifp)?;
            if text != "pcie" && text != "sxm" {
                self.err(
                    n.pos,
                    &ifp,
                    format!("invalid gpu interface {text:?}; expected pcie or sxm"),
                );
                return None;
            }
            key = format!("{key}/interface/{text}");
        }
        Some(key)
    }
}
