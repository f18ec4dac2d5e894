//! The `services` section: each service's image, command, environment, dependencies,
//! params and registry credentials (its exposes are read in `expose`).

use std::collections::BTreeMap;

use super::Decoder;
use crate::error::FieldPath;
use crate::model::{Credentials, Params, Service, StorageParam};
use crate::yaml::{Node, Pos};

/// What `params.permissions.read` may grant.
const READ_PERMISSIONS: [&str; 3] = ["deployment", "logs", "events"];

impl Decoder<'_> {
    /// One entry of `services`.
    pub(super) fn service(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<Service> {
        let f = self.fields(
            node,
            path,
            &["image", "command", "args", "env", "expose", "dependencies", "params", "credentials"],
            &["image"],
        )?;
        let image = f.get("image").and_then(|n| self.image(n, &path.key("image")));
        let command = match f.get("command") {
            Some(n) => self.optional_string_list(n, &path.key("command")),
            None => Some(None),
        };
        let args = match f.get("args") {
            Some(n) => self.optional_string_list(n, &path.key("args")),
            None => Some(None),
        };
        let env = match f.get("env") {
            Some(n) if !n.is_null() => self.positioned_string_list(n, &path.key("env")).map(Some),
            _ => Some(None),
        };
        let expose = match f.get("expose") {
            Some(n) => self.list_items(n, &path.key("expose"), Self::expose),
            None => Some(Vec::new()),
        };
        let dependencies_ok = match f.get("dependencies") {
            Some(n) => self.dependencies(n, &path.key("dependencies")),
            None => true,
        };
        let params = match f.get("params") {
            Some(n) if !n.is_null() => self.params(n, &path.key("params")).map(Some),
            _ => Some(None),
        };
        let credentials = match f.get("credentials") {
            Some(n) if !n.is_null() => self.credentials(n, &path.key("credentials")).map(Some),
            _ => Some(None),
        };
        if !dependencies_ok {
            return None;
        }
        Some(Service {
            pos: key_pos,
            image: image?,
            command: command?,
            args: args?,
            env: env?,
            expose: expose?,
            params: params?,
            credentials: credentials?,
        })
    }

    /// The container image: `None` if it is not a string or is empty.
    fn image(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        let image = self.string(node, path)?;
        if image.trim().is_empty() {
            self.err(
                node.pos,
                path,
                "image is empty; expected a container image such as nginx:1.25",
            );
            return None;
        }
        Some(image)
    }

    /// Whether `dependencies` is well formed (gridlease does not use it).
    fn dependencies(&mut self, node: &Node, path: &FieldPath) -> bool {
        let Some(items) = self.seq(node, path) else { return false };
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            match self.fields(item, &p, &["service"], &[]) {
                Some(f) => {
                    if let Some(s) = f.get("service") {
                        ok &= self.string(s, &p.key("service")).is_some();
                    }
                }
                None => ok = false,
            }
        }
        ok
    }

    fn params(&mut self, node: &Node, path: &FieldPath) -> Option<Params> {
        let f = self.fields(node, path, &["storage", "permissions", "tee"], &[])?;
        let storage = match f.get("storage") {
            // Storage that is not a mapping stops here; a bad entry lets the rest be read.
            Some(n) => {
                let p = path.key("storage");
                let entries = self.map(n, &p)?;
                self.decode_values(entries, &p, Self::storage_param)
            }
            None => Some(BTreeMap::new()),
        };
        let mut permissions_known = true;
        let permissions = match f.get("permissions") {
            Some(n) => self.permissions(n, &path.key("permissions"), &mut permissions_known)?,
            None => None,
        };
        let tee = match f.get("tee") {
            Some(n) => Some(self.tee(n, &path.key("tee"))?),
            None => None,
        };
        let storage = storage?;
        permissions_known.then_some(Params { storage, permissions, tee })
    }

    /// Where a service mounts one volume (`params.storage.<volume>`).
    fn storage_param(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<StorageParam> {
        let f = self.fields(node, path, &["mount", "readOnly"], &[])?;
        let mount = match f.get("mount") {
            Some(m) => self.string(m, &path.key("mount")),
            None => Some(String::new()),
        };
        let read_only = match f.get("readOnly") {
            Some(r) => self.bool(r, &path.key("readOnly")),
            None => Some(false),
        };
        Some(StorageParam { pos: key_pos, mount: mount?, read_only: read_only? })
    }

    /// `params.permissions`: the `read` list, if given. Clears `all_known` for each permission
    /// it reports as unknown; `None` if the permissions cannot be read at all.
    fn permissions(
        &mut self,
        node: &Node,
        path: &FieldPath,
        all_known: &mut bool,
    ) -> Option<Option<Vec<String>>> {
        let f = self.fields(node, path, &["read"], &[])?;
        let Some(r) = f.get("read") else { return Some(None) };
        let rp = path.key("read");
        let items = self.seq(r, &rp)?;
        let mut read = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let v = self.string(item, &rp.index(i))?;
            if !READ_PERMISSIONS.contains(&v.as_str()) {
                self.err(
                    item.pos,
                    &rp.index(i),
                    format!("unknown permission {v:?}; expected deployment, logs or events"),
                );
                *all_known = false;
            }
            read.push(v);
        }
        Some(Some(read))
    }

    /// `params.tee`: the trusted execution type, `cpu` or `cpu-gpu`.
    fn tee(&mut self, node: &Node, path: &FieldPath) -> Option<(String, Pos)> {
        let v = self.string(node, path)?;
        if v != "cpu" && v != "cpu-gpu" {
            self.err(
                node.pos,
                path,
                format!("unsupported tee type {v:?}; expected cpu or cpu-gpu"),
            );
            return None;
        }
        Some((v, node.pos))
    }

    fn credentials(&mut self, node: &Node, path: &FieldPath) -> Option<Credentials> {
        let f = self.fields(
            node,
            path,
            &["host", "email", "username", "password"],
            &["host", "username", "password"],
        )?;
        let mut ok = true;
        let mut field = |d: &mut Self, name: &str, min_len: usize, what: &str| -> String {
            let Some(n) = f.get(name) else { return String::new() };
            let p = path.key(name);
            let Some(v) = d.string(n, &p) else {
                ok = false;
                return String::new();
            };
            if v.trim().chars().count() < min_len {
                d.err(n.pos, &p, format!("{name} is too short; expected {what}"));
                ok = false;
            }
            v
        };
        let host = field(self, "host", 1, "the registry host, such as docker.io");
        let email = field(self, "email", 5, "an email address of at least 5 characters");
        let username = field(self, "username", 1, "the registry user name");
        let password = field(self, "password", 6, "a password or token of at least 6 characters");
        ok.then_some(Credentials { host, email, username, password })
    }
}
