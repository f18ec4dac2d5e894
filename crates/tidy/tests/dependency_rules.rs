//! The dependency rules of ARCHITECTURE.md's invariants, checked over `cargo metadata`:
//! - `types` and `ledger` reach no I/O, async runtime, randomness source, storage engine,
//!   network or consensus crate, even transitively;
//! - `ledger` depends on no workspace crate but `types`;
//! - off-chain crates (`provider`, `cli`, `client`, `rpc-types`, `loadgen`, `gateway`, `console`)
//!   never import `ledger`, `storage` or `consensus`;
//! - only `node` depends on `consensus`;
//! - nothing depends on `node` or `cli`, and test-only crates (`sim`, `tidy`) are never a
//!   normal dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates (by name prefix) that pure crates must not reach.
const IMPURE: [&str; 14] = [
    "tokio",
    "mio",
    "async-std",
    "getrandom",
    "rand",
    "redb",
    "rocksdb",
    "sled",
    "hyper",
    "reqwest",
    "axum",
    "arc-malachitebft",
    "informalsystems-malachitebft",
    "socket2",
];

struct Graph {
    /// package id -> name
    names: BTreeMap<String, String>,
    /// package id -> normal (non-dev, non-build) dependency ids
    normal: BTreeMap<String, Vec<String>>,
    workspace: BTreeSet<String>,
}

fn metadata() -> Graph {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path", root])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let mut names = BTreeMap::new();
    for p in v["packages"].as_array().unwrap() {
        names
            .insert(p["id"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string());
    }
    let workspace = v["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let mut normal = BTreeMap::new();
    for node in v["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        normal.insert(node["id"].as_str().unwrap().to_string(), deps);
    }
    Graph { names, normal, workspace }
}

impl Graph {
    fn id(&self, name: &str) -> Option<&String> {
        self.workspace.iter().find(|id| self.names[*id] == name)
    }

    /// Names of every crate reachable through normal dependencies.
    fn reachable(&self, id: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(cur) = stack.pop() {
            for d in self.normal.get(&cur).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen.into_iter().map(|i| self.names[&i].clone()).collect()
    }

    fn direct_workspace(&self, id: &str) -> BTreeSet<String> {
        self.normal[id]
            .iter()
            .filter(|d| self.workspace.contains(*d))
            .map(|d| self.names[d].clone())
            .collect()
    }
}

/// Names of the crates a package builds with when built alone (`cargo tree` resolves its
/// features on its own, unlike the workspace-wide `cargo metadata` resolve).
fn tree_of(package: &str) -> BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(["--manifest-path", root])
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn impure(deps: &BTreeSet<String>) -> Vec<&String> {
    deps.iter()
        .filter(|d| IMPURE.iter().any(|p| *d == p || d.starts_with(&format!("{p}-"))))
        .collect()
}

#[test]
fn pure_crates_reach_no_io_randomness_or_consensus() {
    for name in ["gridlease-types", "gridlease-ledger"] {
        let deps = tree_of(name);
        assert!(deps.contains("borsh"), "cargo tree output for {name} looks wrong: {deps:?}");
        let bad = impure(&deps);
        assert!(bad.is_empty(), "{name} reaches impure crates: {bad:?}");
    }
}

#[test]
fn ledger_depends_only_on_types() {
    let g = metadata();
    let id = g.id("gridlease-ledger").unwrap();
    let ws = g.direct_workspace(id);
    assert!(ws.iter().all(|d| d == "gridlease-types"), "ledger depends on {ws:?}");
}

#[test]
fn off_chain_crates_reach_the_chain_only_through_client() {
    let g = metadata();
    // Every crate a rule names must exist: a rule on a renamed crate would check nothing.
    for name in [
        "gridlease-provider",
        "gridlease-cli",
        "gridlease-client",
        "gridlease-rpc-types",
        "gridlease-loadgen",
        "gridlease-gateway",
        "gridlease-console",
    ] {
        let id = g.id(name).unwrap_or_else(|| panic!("{name} is not a workspace crate"));
        let reach = g.reachable(id);
        for forbidden in ["gridlease-ledger", "gridlease-storage", "gridlease-consensus"] {
            assert!(!reach.contains(forbidden), "{name} reaches {forbidden}");
        }
    }
}

#[test]
fn only_node_depends_on_consensus() {
    let g = metadata();
    assert!(g.id("gridlease-consensus").is_some(), "gridlease-consensus is gone");
    for id in &g.workspace {
        let name = &g.names[id];
        if name != "gridlease-node" {
            let ws = g.direct_workspace(id);
            assert!(!ws.contains("gridlease-consensus"), "{name} depends on gridlease-consensus");
        }
    }
}

#[test]
fn nothing_imports_node_cli_or_test_crates() {
    let g = metadata();
    for id in &g.workspace {
        let ws = g.direct_workspace(id);
        for forbidden in ["gridlease-node", "gridlease-cli", "gridlease-sim", "gridlease-tidy"] {
            assert!(!ws.contains(forbidden), "{} depends on {forbidden}", g.names[id]);
        }
    }
}

/// The checkers themselves must catch a violation: `storage` reaches `redb`.
#[test]
fn checker_detects_an_impure_dependency() {
    assert!(impure(&tree_of("gridlease-storage")).iter().any(|d| *d == "redb"));
    let g = metadata();
    let id = g.id("gridlease-storage").unwrap();
    assert!(g.reachable(id).contains("redb"));
}
