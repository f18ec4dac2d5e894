//! A service's `expose` entries: ports, protocol, destinations, accepted hosts and
//! `http_options`.

use super::Decoder;
use crate::error::FieldPath;
use crate::model::{Expose, ExposeTo, HttpOptionsIn};
use crate::yaml::Node;

/// What `http_options.next_cases` may list.
const NEXT_CASES: [&str; 10] =
    ["error", "timeout", "500", "502", "503", "504", "403", "404", "429", "off"];

/// How a port is described in errors.
const PORT: &str = "a port number from 1 to 65535";

impl Decoder<'_> {
    /// One entry of a service's `expose` list.
    pub(super) fn expose(&mut self, node: &Node, path: &FieldPath) -> Option<Expose> {
        let f = self.fields(
            node,
            path,
            &["port", "as", "proto", "to", "accept", "http_options"],
            &["port"],
        )?;
        let port =
            f.get("port").and_then(|n| self.bounded_u32(n, &path.key("port"), 1, 65535, PORT));
        let external_port = match f.get("as") {
            Some(n) => self.bounded_u32(n, &path.key("as"), 1, 65535, PORT),
            None => Some(0),
        };
        let (proto_raw, udp) = match f.get("proto") {
            Some(n) => self.protocol(n, &path.key("proto"))?,
            None => (String::new(), false),
        };
        let to = match f.get("to") {
            Some(n) => self.list_items(n, &path.key("to"), Self::destination),
            None => Some(Vec::new()),
        };
        let accept = match f.get("accept") {
            Some(n) if !n.is_null() => Some(self.positioned_string_list(n, &path.key("accept"))?),
            _ => None,
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
            accept,
            http: http?,
        })
    }

    /// `proto` as written, and whether it is UDP.
    fn protocol(&mut self, node: &Node, path: &FieldPath) -> Option<(String, bool)> {
        let raw = self.string(node, path)?;
        match raw.as_str() {
            "tcp" | "TCP" => Some((raw, false)),
            "udp" | "UDP" => Some((raw, true)),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("unsupported protocol {raw:?}; expected tcp or udp"),
                );
                None
            }
        }
    }

    /// One entry of an expose's `to` list.
    fn destination(&mut self, node: &Node, path: &FieldPath) -> Option<ExposeTo> {
        let f = self.fields(node, path, &["service", "global", "ip"], &[])?;
        let service = match f.get("service") {
            Some(n) => self.string(n, &path.key("service")),
            None => Some(String::new()),
        };
        let global = match f.get("global") {
            Some(n) => self.bool(n, &path.key("global")),
            None => Some(false),
        };
        let ip = match f.get("ip") {
            Some(n) => self.string(n, &path.key("ip")),
            None => Some(String::new()),
        };
        Some(ExposeTo { pos: node.pos, service: service?, global: global?, ip: ip? })
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
        let next_cases = match f.get("next_cases") {
            Some(n) => self.next_cases(n, &path.key("next_cases"))?,
            None => Vec::new(),
        };
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

    /// `http_options.next_cases`: `None` if any case is unknown or `off` comes with others.
    fn next_cases(&mut self, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut cases = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let c = self.string(item, &path.index(i))?;
            if !NEXT_CASES.contains(&c.as_str()) {
                self.err(
                    item.pos,
                    &path.index(i),
                    format!("unknown next case {c:?}; expected one of: {}", NEXT_CASES.join(", ")),
                );
                ok = false;
            }
            cases.push(c);
        }
        if cases.len() > 1 && cases.iter().any(|c| c == "off") {
            self.err(node.pos, path, "`off` cannot be combined with other next cases");
            ok = false;
        }
        ok.then_some(cases)
    }
}
