//! Decoding the YAML tree into the SDL input model, with the structural rules
//! of Akash's SDL (its Go parser and its JSON schema): allowed and required
//! fields, types, enumerations, ranges and units.

use std::collections::BTreeMap;

use crate::error::{Diagnostics, FieldPath};
use crate::quantity::{self, Dec18};
use crate::yaml::{Node, NodeKind, Pos, ScalarType};

/// SDL format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum SdlVersion {
    /// `version: "2.0"`.
    #[serde(rename = "2.0")]
    V2_0,
    /// `version: "2.1"`: services sharing a placement and a compute profile
    /// share one resource unit.
    #[serde(rename = "2.1")]
    V2_1,
}

#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub version: SdlVersion,
    pub root_pos: Pos,
    pub services: BTreeMap<String, Service>,
    pub compute: BTreeMap<String, ComputeProfile>,
    pub placement: BTreeMap<String, PlacementProfile>,
    pub deployment: BTreeMap<String, BTreeMap<String, Deployment>>,
    pub deployment_pos: Pos,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub reclamation_min_window_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub pos: Pos,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub env: Option<Vec<(String, Pos)>>,
    pub expose: Vec<Expose>,
    pub params: Option<Params>,
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub(crate) struct Expose {
    pub pos: Pos,
    pub port: u32,
    pub external_port: u32,
    /// As written (empty when absent); the port-collision key uses it verbatim.
    pub proto_raw: String,
    pub udp: bool,
    pub to: Vec<ExposeTo>,
    pub accept: Option<Vec<(String, Pos)>>,
    pub http: HttpOptionsIn,
}

#[derive(Debug, Clone)]
pub(crate) struct ExposeTo {
    pub pos: Pos,
    pub service: String,
    pub global: bool,
    pub ip: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HttpOptionsIn {
    pub max_body_size: u32,
    pub read_timeout: u32,
    pub send_timeout: u32,
    pub next_tries: u32,
    pub next_timeout: u32,
    pub next_cases: Vec<String>,
    pub proxy_buffer_size: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub storage: BTreeMap<String, StorageParam>,
    pub permissions: Option<Vec<String>>,
    pub tee: Option<(String, Pos)>,
}

#[derive(Debug, Clone)]
pub(crate) struct StorageParam {
    pub pos: Pos,
    pub mount: String,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub host: String,
    pub email: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ComputeProfile {
    pub pos: Pos,
    pub cpu_millis: u64,
    pub cpu_attributes: Vec<(String, String)>,
    pub memory_bytes: u64,
    pub storage: Vec<Volume>,
    pub gpu_units: u64,
    pub gpu_attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub pos: Pos,
    pub name: String,
    pub bytes: u64,
    /// Sorted by key; values normalized (`persistent` is `true`/`false`).
    pub attributes: Vec<(String, String)>,
}

impl Volume {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn persistent(&self) -> bool {
        self.attribute("persistent") == Some("true")
    }

    pub(crate) fn class(&self) -> Option<&str> {
        self.attribute("class")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PlacementProfile {
    pub pos: Pos,
    pub attributes: Option<Vec<(String, String)>>,
    pub all_of: Option<Vec<String>>,
    pub any_of: Option<Vec<String>>,
    pub pricing: BTreeMap<String, Coin>,
}

#[derive(Debug, Clone)]
pub(crate) struct Coin {
    pub pos: Pos,
    pub denom: String,
    pub amount: Dec18,
}

#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    pub pos: Pos,
    pub profile: String,
    pub profile_pos: Pos,
    pub count: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub pos: Pos,
    pub kind: String,
}

/// Native denominations accepted in prices: Akash's (`uakt`, `uact`, the
/// only ones its JSON schema lists) and gridlease's (`ugrid`, `uusdc`).
/// IBC vouchers (`ibc/<64 hex digits>`, e.g. USDC on Akash) are accepted too,
/// as Akash's chain does.
pub(crate) const ALLOWED_DENOMS: [&str; 4] = ["uakt", "uact", "ugrid", "uusdc"];

fn is_allowed_denom(denom: &str) -> bool {
    ALLOWED_DENOMS.contains(&denom)
        || denom
            .strip_prefix("ibc/")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

const NEXT_CASES: [&str; 10] =
    ["error", "timeout", "500", "502", "503", "504", "403", "404", "429", "off"];

type ComputeProfiles = BTreeMap<String, ComputeProfile>;
type PlacementProfiles = BTreeMap<String, PlacementProfile>;

/// The checked fields of one mapping.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _, _)| *k == name).map(|(_, _, v)| *v)
    }
}

pub(crate) struct Decoder<'d> {
    pub diag: &'d mut Diagnostics,
}

fn key_text(node: &Node) -> Option<&str> {
    node.as_scalar().map(|s| s.text.as_str())
}

impl Decoder<'_> {
    fn err(&mut self, pos: Pos, path: &FieldPath, msg: impl Into<String>) {
        self.diag.error(pos, path, msg);
    }

    /// The entries of a mapping (merge keys `<<` expanded), or `None` after
    /// reporting that `node` is not a mapping. Null counts as an empty mapping.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
    ) -> Option<Vec<(&'n str, &'n Node, &'n Node)>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(_) if node.is_null() => return Some(Vec::new()),
            _ => {
                self.err(node.pos, path, format!("expected a mapping, found {}", node.type_name()));
                return None;
            }
        };
        let mut out: Vec<(&'n str, &'n Node, &'n Node)> = Vec::with_capacity(entries.len());
        let mut merged: Vec<(&'n str, &'n Node, &'n Node)> = Vec::new();
        for (k, v) in entries {
            let Some(name) = key_text(k) else {
                self.err(k.pos, path, "expected a plain key, found a complex key");
                continue;
            };
            if name == "<<" && k.as_scalar().is_some_and(|s| s.style == crate::yaml::Style::Plain) {
                let sources: Vec<&Node> = match &v.kind {
                    NodeKind::Seq(items) => items.iter().collect(),
                    _ => vec![v],
                };
                for src in sources {
                    if let NodeKind::Map(src_entries) = &src.kind {
                        for (sk, sv) in src_entries {
                            if let Some(sn) = key_text(sk) {
                                merged.push((sn, sk, sv));
                            }
                        }
                    } else {
                        self.err(v.pos, &path.key("<<"), "expected a mapping to merge");
                    }
                }
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

    /// A mapping with a fixed set of fields. Unknown fields are warnings, as
    /// Akash's decoder ignores them (its JSON schema rejects them).
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<Fields<'n>> {
        self.checked_fields(node, path, allowed, required, false)
    }

    /// A mapping with a fixed set of fields where Akash rejects unknown ones.
    fn strict_fields<'n>(
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

    fn seq<'n>(&mut self, node: &'n Node, path: &FieldPath) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            NodeKind::Scalar(_) if node.is_null() => Some(&[]),
            _ => {
                self.err(node.pos, path, format!("expected a list, found {}", node.type_name()));
                None
            }
        }
    }

    /// A scalar's text (null is the empty string), as Akash's decoder reads
    /// any scalar into a string field.
    fn string(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar(s) if node.is_null() && s.style == crate::yaml::Style::Plain => {
                Some(String::new())
            }
            NodeKind::Scalar(s) => Some(s.text.clone()),
            _ => {
                self.err(node.pos, path, format!("expected a string, found {}", node.type_name()));
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.string(item, &path.index(i))?);
        }
        Some(out)
    }

    /// `null` or a list of strings: `None` for null.
    fn optional_string_list(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<Option<Vec<String>>> {
        if node.is_null() {
            return Some(None);
        }
        self.string_list(node, path).map(Some)
    }

    fn uint(&mut self, node: &Node, path: &FieldPath, expected: &str) -> Option<u64> {
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

    fn bounded_u32(
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

    fn bool(&mut self, node: &Node, path: &FieldPath) -> Option<bool> {
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
    fn string_map(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<(String, String)>> {
        let entries = self.map(node, path)?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, _, v) in entries {
            let value = self.string(v, &path.key(name))?;
            out.push((name.to_owned(), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }

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
        let services = top.get("services").map(|n| self.services(n, &path.key("services")));
        let (compute, placement) = match top.get("profiles") {
            Some(n) => self.profiles(n, &path.key("profiles")),
            None => (None, None),
        };
        let deployment_node = top.get("deployment");
        let deployment = deployment_node.map(|n| self.deployment(n, &path.key("deployment")));
        let endpoints = top.get("endpoints").map(|n| self.endpoints(n, &path.key("endpoints")));
        let reclamation =
            top.get("reclamation").map(|n| self.reclamation(n, &path.key("reclamation")));
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
        })
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

    fn reclamation(&mut self, node: &Node, path: &FieldPath) -> Option<Option<u64>> {
        let f = self.fields(node, path, &["min_window"], &["min_window"])?;
        let n = f.get("min_window")?;
        let p = path.key("min_window");
        let text = self.string(n, &p)?;
        let expected =
            "expected a whole number greater than zero followed by s, m or h, such as \"24h\"";
        let (digits, mult) = match text.as_bytes().last() {
            Some(b's') => (&text[..text.len() - 1], 1u64),
            Some(b'm') => (&text[..text.len() - 1], 60),
            Some(b'h') => (&text[..text.len() - 1], 3600),
            _ => {
                self.err(n.pos, &p, format!("invalid reclamation window {text:?}; {expected}"));
                return None;
            }
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.err(n.pos, &p, format!("invalid reclamation window {text:?}; {expected}"));
            return None;
        }
        match digits.parse::<u64>().ok().and_then(|d| d.checked_mul(mult)) {
            Some(0) => {
                self.err(n.pos, &p, format!("reclamation window {text:?} is zero; {expected}"));
                None
            }
            Some(secs) => Some(Some(secs)),
            None => {
                self.err(
                    n.pos,
                    &p,
                    format!("reclamation window {text:?} is too large; {expected}"),
                );
                None
            }
        }
    }

    fn services(&mut self, node: &Node, path: &FieldPath) -> Option<BTreeMap<String, Service>> {
        let entries = self.map(node, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, key, v) in entries {
            match self.service(v, key.pos, &path.key(name)) {
                Some(s) => {
                    out.insert(name.to_owned(), s);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn service(&mut self, node: &Node, key_pos: Pos, path: &FieldPath) -> Option<Service> {
        let f = self.fields(
            node,
            path,
            &["image", "command", "args", "env", "expose", "dependencies", "params", "credentials"],
            &["image"],
        )?;
        let mut ok = true;
        let image = match f.get("image") {
            Some(n) => {
                let p = path.key("image");
                let image = self.string(n, &p);
                if image.as_deref().is_some_and(|i| i.trim().is_empty()) {
                    self.err(
                        n.pos,
                        &p,
                        "image is empty; expected a container image such as nginx:1.25",
                    );
                    ok = false;
                }
                image
            }
            None => None,
        };
        let command = match f.get("command") {
            Some(n) => self.optional_string_list(n, &path.key("command")),
            None => Some(None),
        };
        let args = match f.get("args") {
            Some(n) => self.optional_string_list(n, &path.key("args")),
            None => Some(None),
        };
        let env = match f.get("env") {
            Some(n) if !n.is_null() => self.env(n, &path.key("env")).map(Some),
            _ => Some(None),
        };
        let expose = match f.get("expose") {
            Some(n) => self.exposes(n, &path.key("expose")),
            None => Some(Vec::new()),
        };
        if let Some(n) = f.get("dependencies") {
            ok &= self.dependencies(n, &path.key("dependencies"));
        }
        let params = match f.get("params") {
            Some(n) if !n.is_null() => self.params(n, &path.key("params")).map(Some),
            _ => Some(None),
        };
        let credentials = match f.get("credentials") {
            Some(n) if !n.is_null() => self.credentials(n, &path.key("credentials")).map(Some),
            _ => Some(None),
        };
        if !ok {
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

    fn env(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<(String, Pos)>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push((self.string(item, &path.index(i))?, item.pos));
        }
        Some(out)
    }

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

    fn exposes(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<Expose>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.expose(item, &path.index(i)) {
                Some(e) => out.push(e),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn expose(&mut self, node: &Node, path: &FieldPath) -> Option<Expose> {
        let f = self.fields(
            node,
            path,
            &["port", "as", "proto", "to", "accept", "http_options"],
            &["port"],
        )?;
        const PORT: &str = "a port number from 1 to 65535";
        let port =
            f.get("port").and_then(|n| self.bounded_u32(n, &path.key("port"), 1, 65535, PORT));
        let external_port = match f.get("as") {
            Some(n) => self.bounded_u32(n, &path.key("as"), 1, 65535, PORT),
            None => Some(0),
        };
        let (proto_raw, udp) = match f.get("proto") {
            Some(n) => {
                let p = path.key("proto");
                let raw = self.string(n, &p)?;
                match raw.as_str() {
                    "tcp" | "TCP" => (raw, false),
                    "udp" | "UDP" => (raw, true),
                    _ => {
                        self.err(
                            n.pos,
                            &p,
                            format!("unsupported protocol {raw:?}; expected tcp or udp"),
                        );
                        return None;
                    }
                }
            }
            None => (String::new(), false),
        };
        let to = match f.get("to") {
            Some(n) => self.expose_to(n, &path.key("to")),
            None => Some(Vec::new()),
        };
        let accept = match f.get("accept") {
            Some(n) if !n.is_null() => {
                let p = path.key("accept");
                let items = self.seq(n, &p)?;
                let mut hosts = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    hosts.push((self.string(item, &p.index(i))?, item.pos));
                }
                Some(Some(hosts))
            }
            _ => Some(None),
        };
        let http = match f.get("http_options") {
            Some(n) if !n.is_null() => self.http_options(n, &path.key("http_options")),
            _ => Some(HttpOptionsIn::default()),
        };
        Some(Expose {
            pos: node.pos,
            port: port?,
            external_port: external_port?,
            proto_raw,
            udp,
            to: to?,
            accept: accept?,
            http: http?,
        })
    }

    fn expose_to(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<ExposeTo>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Some(f) = self.fields(item, &p, &["service", "global", "ip"], &[]) else {
                ok = false;
                continue;
            };
            let service = match f.get("service") {
                Some(n) => self.string(n, &p.key("service")),
                None => Some(String::new()),
            };
            let global = match f.get("global") {
                Some(n) => self.bool(n, &p.key("global")),
                None => Some(false),
            };
            let ip = match f.get("ip") {
                Some(n) => self.string(n, &p.key("ip")),
                None => Some(String::new()),
            };
            match (service, global, ip) {
                (Some(service), Some(global), Some(ip)) => {
                    out.push(ExposeTo { pos: item.pos, service, global, ip })
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn http_options(&mut self, node: &Node, path: &FieldPath) -> Option<HttpOptionsIn> {
        let f = self.fields(
            node,
            path,
            &[
                "max_body_size",
                "read_timeout",
                "send_timeout",
                "next_tries",
                "next_timeout",
                "next_cases",
                "proxy_buffer_size",
            ],
            &[],
        )?;
        let mut ok = true;
        let mut num = |d: &mut Self, name: &str, max: u64, expected: &str| -> u32 {
            match f.get(name) {
                Some(n) => match d.bounded_u32(n, &path.key(name), 0, max, expected) {
                    Some(v) => v,
                    None => {
                        ok = false;
                        0
                    }
                },
                None => 0,
            }
        };
        let max_body_size =
            num(self, "max_body_size", 104_857_600, "a size in bytes up to 104857600 (100 MiB)");
        let read_timeout = num(self, "read_timeout", 60_000, "milliseconds up to 60000");
        let send_timeout = num(self, "send_timeout", 60_000, "milliseconds up to 60000");
        let next_tries = num(self, "next_tries", u64::from(u32::MAX), "a non-negative integer");
        let next_timeout = num(self, "next_timeout", u64::from(u32::MAX), "a non-negative integer");
        let proxy_buffer_size =
            num(self, "proxy_buffer_size", 1_048_576, "a size in bytes up to 1048576 (1 MiB)");
        let mut next_cases = Vec::new();
        if let Some(n) = f.get("next_cases") {
            let p = path.key("next_cases");
            let items = self.seq(n, &p)?;
            for (i, item) in items.iter().enumerate() {
                let c = self.string(item, &p.index(i))?;
                if !NEXT_CASES.contains(&c.as_str()) {
                    self.err(
                        item.pos,
                        &p.index(i),
                        format!(
                            "unknown next case {c:?}; expected one of: {}",
                            NEXT_CASES.join(", ")
                        ),
                    );
                    ok = false;
                }
                next_cases.push(c);
            }
            if next_cases.len() > 1 && next_cases.iter().any(|c| c == "off") {
                self.err(n.pos, &p, "`off` cannot be combined with other next cases");
                ok = false;
            }
        }
        ok.then_some(HttpOptionsIn {
            max_body_size,
            read_timeout,
            send_timeout,
            next_tries,
            next_timeout,
            next_cases,
            proxy_buffer_size,
        })
    }

    fn params(&mut self, node: &Node, path: &FieldPath) -> Option<Params> {
        let f = self.fields(node, path, &["storage", "permissions", "tee"], &[])?;
        let mut storage = BTreeMap::new();
        let mut ok = true;
        if let Some(n) = f.get("storage") {
            let p = path.key("storage");
            for (name, key, v) in self.map(n, &p)? {
                let vp = p.key(name);
                let Some(sf) = self.fields(v, &vp, &["mount", "readOnly"], &[]) else {
                    ok = false;
                    continue;
                };
                let mount = match sf.get("mount") {
                    Some(m) => self.string(m, &vp.key("mount")),
                    None => Some(String::new()),
                };
                let read_only = match sf.get("readOnly") {
                    Some(r) => self.bool(r, &vp.key("readOnly")),
                    None => Some(false),
                };
                match (mount, read_only) {
                    (Some(mount), Some(read_only)) => {
                        storage.insert(
                            name.to_owned(),
                            StorageParam { pos: key.pos, mount, read_only },
                        );
                    }
                    _ => ok = false,
                }
            }
        }
        let permissions = match f.get("permissions") {
            Some(n) => {
                let p = path.key("permissions");
                let pf = self.fields(n, &p, &["read"], &[])?;
                match pf.get("read") {
                    Some(r) => {
                        let rp = p.key("read");
                        let items = self.seq(r, &rp)?;
                        let mut read = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            let v = self.string(item, &rp.index(i))?;
                            if !["deployment", "logs", "events"].contains(&v.as_str()) {
                                self.err(
                                    item.pos,
                                    &rp.index(i),
                                    format!("unknown permission {v:?}; expected deployment, logs or events"),
                                );
                                ok = false;
                            }
                            read.push(v);
                        }
                        Some(read)
                    }
                    None => None,
                }
            }
            None => None,
        };
        let tee = match f.get("tee") {
            Some(n) => {
                let p = path.key("tee");
                let v = self.string(n, &p)?;
                if v != "cpu" && v != "cpu-gpu" {
                    self.err(
                        n.pos,
                        &p,
                        format!("unsupported tee type {v:?}; expected cpu or cpu-gpu"),
                    );
                    ok = false;
                }
                Some((v, n.pos))
            }
            None => None,
        };
        ok.then_some(Params { storage, permissions, tee })
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

    fn profiles(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> (Option<ComputeProfiles>, Option<PlacementProfiles>) {
        let Some(f) = self.fields(node, path, &["compute", "placement"], &["compute", "placement"])
        else {
            return (None, None);
        };
        let compute = f.get("compute").and_then(|n| {
            let p = path.key("compute");
            let entries = self.map(n, &p)?;
            let mut out = BTreeMap::new();
            let mut ok = true;
            for (name, key, v) in entries {
                match self.compute_profile(v, key.pos, &p.key(name)) {
                    Some(c) => {
                        out.insert(name.to_owned(), c);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(out)
        });
        let placement = f.get("placement").and_then(|n| {
            let p = path.key("placement");
            let entries = self.map(n, &p)?;
            let mut out = BTreeMap::new();
            let mut ok = true;
            for (name, key, v) in entries {
                match self.placement_profile(v, key.pos, &p.key(name)) {
                    Some(c) => {
                        out.insert(name.to_owned(), c);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(out)
        });
        (compute, placement)
    }

    fn compute_profile(
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

    fn cpu(&mut self, node: &Node, path: &FieldPath) -> Option<(u64, Vec<(String, String)>)> {
        let f = self.fields(node, path, &["units", "attributes"], &["units"])?;
        let up = path.key("units");
        let units = f.get("units").and_then(|n| {
            let Some(s) = n.as_scalar().filter(|_| !n.is_null()) else {
                self.err(
                    n.pos,
                    &up,
                    format!("expected cpu units such as 0.5 or \"100m\", found {}", n.type_name()),
                );
                return None;
            };
            match quantity::parse_cpu_millis(&s.text) {
                Ok(0) => {
                    self.err(n.pos, &up, "cpu units are zero; expected at least 10m (0.01 cores)");
                    None
                }
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(n.pos, &up, e);
                    None
                }
            }
        });
        let mut attributes = Vec::new();
        if let Some(n) = f.get("attributes") {
            let ap = path.key("attributes");
            for (name, key, v) in self.map(n, &ap)? {
                if name != "arch" {
                    self.err(
                        key.pos,
                        &ap.key(name),
                        format!("unsupported cpu attribute `{name}`; expected arch"),
                    );
                    return None;
                }
                attributes.push((name.to_owned(), self.string(v, &ap.key(name))?));
            }
        }
        Some((units?, attributes))
    }

    fn storage(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<Volume>> {
        let mut volumes = Vec::new();
        match &node.kind {
            NodeKind::Seq(items) => {
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.volume(item, &path.index(i), false) {
                        Some(v) => volumes.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
            }
            NodeKind::Map(_) => volumes.push(self.volume(node, path, true)?),
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
        }
        let mut ok = true;
        for (i, v) in volumes.iter().enumerate() {
            if volumes[..i].iter().any(|o| o.name == v.name) {
                self.err(v.pos, &path.key(&v.name), format!("duplicate volume name `{}`", v.name));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        sort_volumes_like_akash(&mut volumes);
        Some(volumes)
    }

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
        let persistent = match persistent_raw.as_str() {
            "true" | "on" | "yes" => "true",
            "false" | "off" | "no" => "false",
            other => {
                let pos = f.get("persistent").map(|n| n.pos).unwrap_or(node.pos);
                self.err(
                    pos,
                    &path.key("persistent"),
                    format!("invalid value {other:?}; expected true or false"),
                );
                return None;
            }
        };
        let mut class = class.unwrap_or_default();
        // Akash compares the value as written: only a literal `true` gives the default class.
        if class.is_empty() && persistent_raw == "true" {
            class = "default".to_owned();
        }
        let class_pos = f.get("class").map(|n| n.pos).unwrap_or(node.pos);
        match class.as_str() {
            "" => {}
            "ram" => {
                if persistent_raw != "false" {
                    self.err(
                        class_pos,
                        &path.key("class"),
                        "storage class ram cannot be persistent; set persistent: false",
                    );
                    return None;
                }
            }
            "default" | "beta1" | "beta2" | "beta3" => {
                if persistent_raw == "false" {
                    self.err(
                        class_pos,
                        &path.key("class"),
                        format!("storage class `{class}` requires persistent: true (ephemeral storage takes no class)"),
                    );
                    return None;
                }
            }
            other => {
                self.err(
                    class_pos,
                    &path.key("class"),
                    format!("unknown storage class {other:?}; expected default, beta1, beta2, beta3 or ram"),
                );
                return None;
            }
        }
        let mut attributes = Vec::new();
        if !class.is_empty() {
            attributes.push(("class".to_owned(), class));
        }
        attributes.push(("persistent".to_owned(), persistent.to_owned()));
        Some(attributes)
    }

    fn gpu(&mut self, node: &Node, path: &FieldPath) -> Option<(u64, Vec<(String, String)>)> {
        let f = self.strict_fields(node, path, &["units", "attributes"], &[])?;
        let up = path.key("units");
        let units = match f.get("units") {
            Some(n) => {
                let text = n.as_scalar().map(|s| s.text.as_str()).unwrap_or("");
                match text.parse::<u64>() {
                    Ok(v) if !text.starts_with('+') => v,
                    _ => {
                        self.err(
                            n.pos,
                            &up,
                            format!("invalid gpu units {text:?}; expected a whole number of gpus"),
                        );
                        return None;
                    }
                }
            }
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
            let np = vp.key("nvidia");
            let items = self.seq(models, &np)?;
            for (i, item) in items.iter().enumerate() {
                let ip = np.index(i);
                let mf = self.fields(item, &ip, &["model", "ram", "interface"], &[])?;
                let mut key = match mf.get("model") {
                    Some(m) => self.string(m, &ip.key("model"))?,
                    None => String::new(),
                };
                if let Some(r) = mf.get("ram") {
                    let rp = ip.key("ram");
                    let text = self.string(r, &rp)?;
                    match quantity::parse_gpu_ram_bytes(&text) {
                        Ok(bytes) => key = format!("{key}/ram/{}Gi", bytes / (1 << 30)),
                        Err(e) => {
                            self.err(r.pos, &rp, e);
                            return None;
                        }
                    }
                }
                if let Some(n) = mf.get("interface") {
                    let ifp = ip.key("interface");
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
                let full = format!("vendor/nvidia/model/{key}");
                if !crate::validate::is_valid_attribute_key(&full) {
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
        }
        if keys.is_empty() {
            keys.push("vendor/nvidia/model/*".to_owned());
        }
        keys.sort();
        Some(keys.into_iter().map(|k| (k, "true".to_owned())).collect())
    }

    fn placement_profile(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<PlacementProfile> {
        let f = self.fields(node, path, &["attributes", "signedBy", "pricing"], &["pricing"])?;
        let attributes = match f.get("attributes") {
            Some(n) if !n.is_null() => {
                let attrs = self.string_map(n, &path.key("attributes"))?;
                if attrs.is_empty() { None } else { Some(attrs) }
            }
            _ => None,
        };
        let (mut all_of, mut any_of) = (None, None);
        if let Some(n) = f.get("signedBy") {
            let p = path.key("signedBy");
            let sf = self.fields(n, &p, &["allOf", "anyOf"], &[])?;
            if let Some(a) = sf.get("allOf") {
                all_of = self.optional_string_list(a, &p.key("allOf"))?;
            }
            if let Some(a) = sf.get("anyOf") {
                any_of = self.optional_string_list(a, &p.key("anyOf"))?;
            }
        }
        let mut pricing = BTreeMap::new();
        let pp = path.key("pricing");
        let mut ok = true;
        for (name, key, v) in self.map(f.get("pricing")?, &pp)? {
            match self.coin(v, &pp.key(name)) {
                Some(c) => {
                    pricing.insert(name.to_owned(), Coin { pos: key.pos, ..c });
                }
                None => ok = false,
            }
        }
        ok.then_some(PlacementProfile { pos: key_pos, attributes, all_of, any_of, pricing })
    }

    fn coin(&mut self, node: &Node, path: &FieldPath) -> Option<Coin> {
        let f = self.fields(node, path, &["denom", "amount"], &["denom", "amount"])?;
        let dn = f.get("denom")?;
        let dp = path.key("denom");
        let denom = self.string(dn, &dp)?;
        let denom_ok = is_allowed_denom(&denom);
        if !denom_ok {
            self.err(
                dn.pos,
                &dp,
                format!(
                    "unsupported denomination {denom:?}; expected one of {} or an ibc/<hash> denomination",
                    ALLOWED_DENOMS.join(", ")
                ),
            );
        }
        let an = f.get("amount")?;
        let ap = path.key("amount");
        let text = match an.as_scalar() {
            Some(s)
                if matches!(
                    s.scalar_type(),
                    ScalarType::Int | ScalarType::Float | ScalarType::Str
                ) =>
            {
                s.text.clone()
            }
            _ => {
                self.err(
                    an.pos,
                    &ap,
                    format!(
                        "expected a decimal amount such as 1000 or 0.25, found {}",
                        an.type_name()
                    ),
                );
                return None;
            }
        };
        let amount = match Dec18::parse(&text) {
            Ok(a) => a,
            Err(e) => {
                self.err(an.pos, &ap, e);
                return None;
            }
        };
        if amount.is_zero() {
            self.err(an.pos, &ap, "amount is zero; expected a price greater than zero");
            return None;
        }
        denom_ok.then_some(Coin { pos: node.pos, denom, amount })
    }

    fn deployment(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<BTreeMap<String, BTreeMap<String, Deployment>>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (svc, _, placements) in self.map(node, path)? {
            let sp = path.key(svc);
            let Some(entries) = self.map(placements, &sp) else {
                ok = false;
                continue;
            };
            let mut by_placement = BTreeMap::new();
            for (placement, key, v) in entries {
                let p = sp.key(placement);
                let Some(f) = self.fields(v, &p, &["profile", "count"], &["profile", "count"])
                else {
                    ok = false;
                    continue;
                };
                let profile = f
                    .get("profile")
                    .and_then(|n| self.string(n, &p.key("profile")).map(|s| (s, n.pos)));
                let count = f.get("count").and_then(|n| {
                    self.bounded_u32(
                        n,
                        &p.key("count"),
                        1,
                        u64::from(u32::MAX),
                        "a count of at least 1",
                    )
                });
                match (profile, count) {
                    (Some((profile, profile_pos)), Some(count)) => {
                        by_placement.insert(
                            placement.to_owned(),
                            Deployment { pos: key.pos, profile, profile_pos, count },
                        );
                    }
                    _ => ok = false,
                }
            }
            out.insert(svc.to_owned(), by_placement);
        }
        ok.then_some(out)
    }

    fn endpoints(&mut self, node: &Node, path: &FieldPath) -> Option<BTreeMap<String, Endpoint>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, key, v) in self.map(node, path)? {
            let p = path.key(name);
            if !crate::validate::is_valid_endpoint_name(name) {
                self.err(
                    key.pos,
                    &p,
                    format!("invalid endpoint name {name:?}; expected lowercase letters first, then lowercase letters, digits, - or _ (at least 2 characters)"),
                );
                ok = false;
            }
            let Some(f) = self.fields(v, &p, &["kind"], &["kind"]) else {
                ok = false;
                continue;
            };
            let Some(kn) = f.get("kind") else {
                ok = false;
                continue;
            };
            let Some(kind) = self.string(kn, &p.key("kind")) else {
                ok = false;
                continue;
            };
            if kind != "ip" {
                self.err(
                    kn.pos,
                    &p.key("kind"),
                    format!("unknown endpoint kind {kind:?}; expected ip"),
                );
                ok = false;
            }
            out.insert(name.to_owned(), Endpoint { pos: key.pos, kind });
        }
        ok.then_some(out)
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
