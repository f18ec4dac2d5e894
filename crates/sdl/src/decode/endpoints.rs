//! The `endpoints` section: named IP endpoints that exposes can use.

use std::collections::BTreeMap;

use super::Decoder;
use crate::error::FieldPath;
use crate::model::Endpoint;
use crate::rules::is_valid_endpoint_name;
use crate::yaml::{Node, Pos};

impl Decoder<'_> {
    /// `endpoints`, by name.
    pub(super) fn endpoints(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<BTreeMap<String, Endpoint>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, key, v) in self.map(node, path)? {
            let p = path.key(name);
            if !is_valid_endpoint_name(name) {
                self.err(
                    key.pos,
                    &p,
                    format!("invalid endpoint name {name:?}; expected lowercase letters first, then lowercase letters, digits, - or _ (at least 2 characters)"),
                );
                ok = false;
            }
            match self.endpoint(v, key.pos, &p) {
                Some(e) => {
                    out.insert(name.to_owned(), e);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// One endpoint; its `kind` must be `ip`.
    fn endpoint(&mut self, node: &Node, key_pos: Pos, path: &FieldPath) -> Option<Endpoint> {
        let f = self.fields(node, path, &["kind"], &["kind"])?;
        let kn = f.get("kind")?;
        let kind = self.string(kn, &path.key("kind"))?;
        if kind != "ip" {
            self.err(
                kn.pos,
                &path.key("kind"),
                format!("unknown endpoint kind {kind:?}; expected ip"),
            );
            return None;
        }
        Some(Endpoint { pos: key_pos, kind })
    }
}
