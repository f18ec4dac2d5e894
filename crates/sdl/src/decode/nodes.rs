//! Reading YAML nodes as typed values: mappings with checked fields, lists, strings, numbers
//! and booleans, each reporting what it expected where a node does not fit.

use std::collections::BTreeMap;

use super::Decoder;
use crate::error::FieldPath;
use crate::yaml::{Node, NodeKind, Pos, ScalarType, Style};

/// One entry of a mapping: the key's text, the key node and the value node.
pub(super) type Entry<'n> = (&'n str, &'n Node, &'n Node);

/// The checked fields of one mapping.
pub(super) struct Fields<'n> {
    entries: Vec<Entry<'n>>,
}

impl<'n> Fields<'n> {
    pub(super) fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _, _)| *k == name).map(|(_, _, v)| *v)
    }
}

fn key_text(node: &Node) -> Option<&str> {
    node.as_scalar().map(|s| s.text.as_str())
}

impl Decoder<'_> {
    pub(super) fn err(&mut self, pos: Pos, path: &FieldPath, msg: impl Into<String>) {
        self.diag.error(pos, path, msg);
    }

    /// The entries of a mapping (merge keys `<<` expanded), or `None` after
    /// reporting that `node` is not a mapping. Null counts as an empty mapping.
    pub(super) fn map<'n>(&mut self, node: &'n Node, path: &FieldPath) -> Option<Vec<Entry<'n>>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(_) if node.is_null() => return Some(Vec::new()),
            _ => {
                self.err(node.pos, path, format!("expected a mapping, found {}", node.type_name()));
                return None;
            }
        };
        let mut out: Vec<Entry<'n>> = Vec::with_capacity(entries.len());
        let mut merged: Vec<Entry<'n>> = Vec::new();
        for (k, v) in entries {
            let Some(name) = key_text(k) else {
                self.err(k.pos, path, "expected a plain key, found a complex key");
                continue;
            };
            if name == "<<" && k.as_scalar().is_some_and(|s| s.style == Style::Plain) {
                self.merge_sources(v, path, &mut merged);
                continue;
            }
            if out.iter().any(|(n, _, _)| *n == name) {
                self.err(k.pos, &path.key(name), format!("duplicate key `{name}`"));
                continue;
            }
            out.push((name, k, v));
        }
        for m in merged {
            if !out.iter().any(|(n, _, _)| *n == m.0) {
                out.push(m);
            }
        }
        Some(out)
    }

    /// Adds the entries of the mapping (or list of mappings) a merge key `<<` names to `merged`.
    fn merge_sources<'n>(
        &mut self,
        value: &'n Node,
        path: &FieldPath,
        merged: &mut Vec<Entry<'n>>,
    ) {
        let sources: Vec<&Node> = match &value.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![value],
        };
        for src in sources {
            if let NodeKind::Map(src_entries) = &src.kind {
                for (sk, sv) in src_entries {
                    if let Some(sn) = key_text(sk) {
                        merged.push((sn, sk, sv));
                    }
                }
            } else {
                self.err(value.pos, &path.key("<<"), "expected a mapping to merge");
            }
        }
    }

    /// A mapping with a fixed set of fields. Unknown fields are warnings, as
    /// Akash's decoder ignores them (its JSON schema rejects them).
    pub(super) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<Fields<'n>> {
        self.checked_fields(node, path, allowed, required, false)
    }

    /// A mapping with a fixed set of fields where Akash rejects unknown ones.
    pub(super) fn strict_fields<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<Fields<'n>> {
        self.checked_fields(node, path, allowed, required, true)
    }

    fn checked_fields<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        allowed: &[&str],
        required: &[&str],
        strict: bool,
    ) -> Option<Fields<'n>> {
        let entries = self.map(node, path)?;
        for (name, k, _) in &entries {
            if !allowed.contains(name) {
                let msg =
                    format!("unknown field `{name}`; expected one of: {}", allowed.join(", "));
                if strict {
                    self.err(k.pos, &path.key(name), msg);
                } else {
                    self.diag.warning(
                        k.pos,
                        &path.key(name),
                        format!("{msg} (ignored, as Akash does)"),
                    );
                }
            }
        }
        for req in required {
            if !entries.iter().any(|(n, _, _)| n == req) {
                self.err(node.pos, &path.key(req), format!("missing required field `{req}`"));
            }
        }
        Some(Fields { entries })
    }

    /// A mapping whose values `decode` reads (given the value, its key's position and its
    /// path), by key: `None` if `node` is not a mapping or any value fails, after all are read.
    pub(super) fn map_values<'n, T>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        decode: impl FnMut(&mut Self, &'n Node, Pos, &FieldPath) -> Option<T>,
    ) -> Option<BTreeMap<String, T>> {
        let entries = self.map(node, path)?;
        self.decode_values(entries, path, decode)
    }

    /// The values of `entries` read by `decode`, by key: `None` if any fails, after all are read.
    pub(super) fn decode_values<'n, T>(
        &mut self,
        entries: Vec<Entry<'n>>,
        path: &FieldPath,
        mut decode: impl FnMut(&mut Self, &'n Node, Pos, &FieldPath) -> Option<T>,
    ) -> Option<BTreeMap<String, T>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, key, value) in entries {
            match decode(self, value, key.pos, &path.key(name)) {
                Some(v) => {
                    out.insert(name.to_owned(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn seq<'n>(&mut self, node: &'n Node, path: &FieldPath) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            NodeKind::Scalar(_) if node.is_null() => Some(&[]),
            _ => {
                self.err(node.pos, path, format!("expected a list, found {}", node.type_name()));
                None
            }
        }
    }

    /// A list whose items `decode` reads: `None` if `node` is not a list or any item fails,
    /// after all are read.
    pub(super) fn list_items<'n, T>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        mut decode: impl FnMut(&mut Self, &'n Node, &FieldPath) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match decode(self, item, &path.index(i)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A scalar's text (null is the empty string), as Akash's decoder reads
    /// any scalar into a string field.
    pub(super) fn string(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar(s) if node.is_null() && s.style == Style::Plain => Some(String::new()),
            NodeKind::Scalar(s) => Some(s.text.clone()),
            _ => {
                self.err(node.pos, path, format!("expected a string, found {}", node.type_name()));
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.string(item, &path.index(i))?);
        }
        Some(out)
    }

    /// `null` or a list of strings: `None` for null.
    pub(super) fn optional_string_list(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<Option<Vec<String>>> {
        if node.is_null() {
            return Some(None);
        }
        self.string_list(node, path).map(Some)
    }

    /// A list of strings, each with its position (for errors found later).
    pub(super) fn positioned_string_list(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<Vec<(String, Pos)>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push((self.string(item, &path.index(i))?, item.pos));
        }
        Some(out)
    }

    pub(super) fn uint(&mut self, node: &Node, path: &FieldPath, expected: &str) -> Option<u64> {
        let parsed = node.as_scalar().and_then(|s| {
            if s.scalar_type() != ScalarType::Int {
                return None;
            }
            let t = s.text.strip_prefix('+').unwrap_or(&s.text);
            if let Some(h) = t.strip_prefix("0x") {
                u64::from_str_radix(h, 16).ok()
            } else if let Some(o) = t.strip_prefix("0o") {
                u64::from_str_radix(o, 8).ok()
            } else {
                t.parse::<u64>().ok()
            }
        });
        if parsed.is_none() {
            let found = match node.as_scalar() {
                Some(s) if !node.is_null() => format!("{:?}", s.text),
                _ => node.type_name().to_owned(),
            };
            self.err(node.pos, path, format!("expected {expected}, found {found}"));
        }
        parsed
    }

    pub(super) fn bounded_u32(
        &mut self,
        node: &Node,
        path: &FieldPath,
        min: u64,
        max: u64,
        expected: &str,
    ) -> Option<u32> {
        let v = self.uint(node, path, expected)?;
        if v < min || v > max {
            self.err(node.pos, path, format!("{v} is out of range; expected {expected}"));
            return None;
        }
        u32::try_from(v).ok()
    }

    pub(super) fn bool(&mut self, node: &Node, path: &FieldPath) -> Option<bool> {
        let value = node.as_scalar().and_then(|s| match s.text.as_str() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
            _ => None,
        });
        if value.is_none() {
            self.err(node.pos, path, format!("expected true or false, found {}", node.type_name()));
        }
        value
    }

    /// `key: value` pairs with scalar values, sorted by key.
    pub(super) fn string_map(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<Vec<(String, String)>> {
        let entries = self.map(node, path)?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, _, v) in entries {
            let value = self.string(v, &path.key(name))?;
            out.push((name.to_owned(), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }
}
