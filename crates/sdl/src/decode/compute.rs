//! Compute profiles (`profiles.compute`): CPU, memory and storage volumes, in base units
//! (the GPU is read in `gpu`), with volumes in the order Akash gives them.

use super::Decoder;
use crate::error::FieldPath;
use crate::model::{ComputeProfile, Volume};
use crate::quantity;
use crate::yaml::{Node, NodeKind, Pos};

impl Decoder<'_> {
    /// One entry of `profiles.compute`.
    pub(super) fn compute_profile(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<ComputeProfile> {
        let f = self.fields(node, path, &["resources"], &["resources"])?;
        let rp = path.key("resources");
        let r = self.fields(
            f.get("resources")?,
            &rp,
            &["cpu", "memory", "storage", "gpu"],
            &["cpu", "memory", "storage"],
        )?;
        let cpu = r.get("cpu").and_then(|n| self.cpu(n, &rp.key("cpu")));
        let memory = r.get("memory").and_then(|n| {
            let p = rp.key("memory");
            let mf = self.fields(n, &p, &["size"], &["size"])?;
            self.size(mf.get("size")?, &p.key("size"))
        });
        let storage = r.get("storage").and_then(|n| self.storage(n, &rp.key("storage")));
        let gpu = match r.get("gpu") {
            Some(n) if !n.is_null() => self.gpu(n, &rp.key("gpu")),
            _ => Some((0, Vec::new())),
        };
        let (cpu_millis, cpu_attributes) = cpu?;
        let (gpu_units, gpu_attributes) = gpu?;
        Some(ComputeProfile {
            pos: key_pos,
            cpu_millis,
            cpu_attributes,
            memory_bytes: memory?,
            storage: storage?,
            gpu_units,
            gpu_attributes,
        })
    }

    /// A size in bytes (`512Mi`, `1Gi`, `10GB`).
    fn size(&mut self, node: &Node, path: &FieldPath) -> Option<u64> {
        let Some(s) = node.as_scalar().filter(|_| !node.is_null()) else {
            self.err(
                node.pos,
                path,
                format!("expected a size such as 512Mi or 1Gi, found {}", node.type_name()),
            );
            return None;
        };
        match quantity::parse_size_bytes(&s.text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(node.pos, path, e);
                None
            }
        }
    }

    /// `cpu`: millicores and attributes.
    fn cpu(&mut self, node: &Node, path: &FieldPath) -> Option<(u64, Vec<(String, String)>)> {
        let f = self.fields(node, path, &["units", "attributes"], &["units"])?;
        let units = f.get("units").and_then(|n| self.cpu_units(n, &path.key("units")));
        let attributes = match f.get("attributes") {
            Some(n) => self.cpu_attributes(n, &path.key("attributes"))?,
            None => Vec::new(),
        };
        Some((units?, attributes))
    }

    /// `cpu.units` in millicores, at least 1.
    fn cpu_units(&mut self, node: &Node, path: &FieldPath) -> Option<u64> {
        let Some(s) = node.as_scalar().filter(|_| !node.is_null()) else {
            self.err(
                node.pos,
                path,
                format!("expected cpu units such as 0.5 or \"100m\", found {}", node.type_name()),
            );
            return None;
        };
        match quantity::parse_cpu_millis(&s.text) {
            Ok(0) => {
                self.err(node.pos, path, "cpu units are zero; expected at least 10m (0.01 cores)");
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.err(node.pos, path, e);
                None
            }
        }
    }

    /// `cpu.attributes`: only `arch`.
    fn cpu_attributes(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<(String, String)>> {
        let mut attributes = Vec::new();
        for (name, key, v) in self.map(node, path)? {
            if name != "arch" {
                self.err(
                    key.pos,
                    &path.key(name),
                    format!("unsupported cpu attribute `{name}`; expected arch"),
                );
                return None;
            }
            attributes.push((name.to_owned(), self.string(v, &path.key(name))?));
        }
        Some(attributes)
    }

    /// `storage`: one volume or a list of them, uniquely named, in Akash's order.
    fn storage(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<Volume>> {
        let mut volumes = match &node.kind {
            NodeKind::Seq(_) => self.list_items(node, path, |d, n, p| d.volume(n, p, false))?,
            NodeKind::Map(_) => vec![self.volume(node, path, true)?],
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!(
                        "expected a volume (size and attributes) or a list of volumes, found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        };
        if !self.volume_names_are_unique(&volumes, path) {
            return None;
        }
        sort_volumes_like_akash(&mut volumes);
        Some(volumes)
    }

    /// Whether no two volumes share a name; reports each repeated one.
    fn volume_names_are_unique(&mut self, volumes: &[Volume], path: &FieldPath) -> bool {
        let mut ok = true;
        for (i, v) in volumes.iter().enumerate() {
            if volumes[..i].iter().any(|o| o.name == v.name) {
                self.err(v.pos, &path.key(&v.name), format!("duplicate volume name `{}`", v.name));
                ok = false;
            }
        }
        ok
    }

    /// One volume; `single` when it is the only one, not in a list.
    fn volume(&mut self, node: &Node, path: &FieldPath, single: bool) -> Option<Volume> {
        let f = self.fields(node, path, &["name", "size", "attributes"], &["size"])?;
        let name = match f.get("name") {
            Some(n) if !single => self.string(n, &path.key("name"))?,
            Some(n) => {
                self.string(n, &path.key("name"))?;
                String::new()
            }
            None => String::new(),
        };
        // Akash names a single (non-list) volume "default" whatever its name says.
        let name = if name.is_empty() { "default".to_owned() } else { name };
        let bytes = self.size(f.get("size")?, &path.key("size"));
        let attributes = match f.get("attributes") {
            Some(n) if !n.is_null() => self.storage_attributes(n, &path.key("attributes")),
            _ => Some(Vec::new()),
        };
        Some(Volume { pos: node.pos, name, bytes: bytes?, attributes: attributes? })
    }

    /// A volume's `attributes`, normalized: `class` (if any) and `persistent`, sorted by key.
    fn storage_attributes(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<Vec<(String, String)>> {
        let f = self.strict_fields(node, path, &["class", "persistent"], &[])?;
        let class = match f.get("class") {
            Some(n) => Some(self.string(n, &path.key("class"))?),
            None => None,
        };
        let persistent_raw = match f.get("persistent") {
            Some(n) => self.string(n, &path.key("persistent"))?,
            None => "false".to_owned(),
        };
        let Some(persistent) = persistent_flag(&persistent_raw) else {
            let pos = f.get("persistent").map(|n| n.pos).unwrap_or(node.pos);
            self.err(
                pos,
                &path.key("persistent"),
                format!("invalid value {persistent_raw:?}; expected true or false"),
            );
            return None;
        };
        let mut class = class.unwrap_or_default();
        // Akash compares the value as written: only a literal `true` gives the default class.
        if class.is_empty() && persistent_raw == "true" {
            class = "default".to_owned();
        }
        if let Some(problem) = storage_class_problem(&class, &persistent_raw) {
            let class_pos = f.get("class").map(|n| n.pos).unwrap_or(node.pos);
            self.err(class_pos, &path.key("class"), problem);
            return None;
        }
        let mut attributes = Vec::new();
        if !class.is_empty() {
            attributes.push(("class".to_owned(), class));
        }
        attributes.push(("persistent".to_owned(), persistent.to_owned()));
        Some(attributes)
    }
}

/// `persistent` as Akash reads it, normalized to `true` or `false`.
fn persistent_flag(raw: &str) -> Option<&'static str> {
    match raw {
        "true" | "on" | "yes" => Some("true"),
        "false" | "off" | "no" => Some("false"),
        _ => None,
    }
}

/// What is wrong with a storage class, given `persistent` as written; `None` if it fits.
fn storage_class_problem(class: &str, persistent_raw: &str) -> Option<String> {
    match class {
        "" => None,
        "ram" if persistent_raw != "false" => {
            Some("storage class ram cannot be persistent; set persistent: false".to_owned())
        }
        "default" | "beta1" | "beta2" | "beta3" if persistent_raw == "false" => Some(format!(
            "storage class `{class}` requires persistent: true (ephemeral storage takes no class)"
        )),
        "ram" | "default" | "beta1" | "beta2" | "beta3" => None,
        other => Some(format!(
            "unknown storage class {other:?}; expected default, beta1, beta2, beta3 or ram"
        )),
    }
}

/// Sorts volumes with the comparison and the insertion sort Akash uses, so
/// that volume order (which enters the manifest hash) matches it exactly.
fn sort_volumes_like_akash(v: &mut [Volume]) {
    fn less(a: &Volume, b: &Volume) -> bool {
        if a.bytes != b.bytes {
            return a.bytes < b.bytes;
        }
        let ap = a
            .attributes
            .iter()
            .find(|(k, _)| k == "persistent")
            .map(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty());
        let bp = b
            .attributes
            .iter()
            .find(|(k, _)| k == "persistent")
            .map(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty());
        match (ap, bp) {
            (None, Some(_)) => return true,
            (Some(x), Some(y)) if x < y => return true,
            (Some(_), None) => return false,
            _ => {}
        }
        if !a.persistent() {
            return true;
        }
        if !b.persistent() {
            return false;
        }
        a.name < b.name
    }
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{persistent_flag, storage_class_problem};

    #[test]
    fn storage_classes_are_checked_against_persistent_as_written() {
        assert_eq!(storage_class_problem("", "yes"), None);
        assert_eq!(storage_class_problem("ram", "false"), None);
        // `off` reads as false, but Akash compares the text: ram with `off` is refused.
        assert!(storage_class_problem("ram", "off").is_some());
        assert_eq!(storage_class_problem("beta2", "true"), None);
        assert!(storage_class_problem("beta2", "false").is_some());
        assert!(storage_class_problem("gold", "true").is_some());
        assert_eq!(persistent_flag("on"), Some("true"));
        assert_eq!(persistent_flag("True"), None);
    }
}
