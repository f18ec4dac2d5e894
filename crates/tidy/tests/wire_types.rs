//! The programs around the chain talk in typed contracts (issue 11): no `serde_json::Value`
//! in the public API of the crates others build on (the RPC's wire types, its client, the
//! provider's library), and no hand-built JSON answers in the node's RPC or the provider's
//! API. A payload that is free-form by nature is allowed by name below, with why.

use std::path::{Path, PathBuf};

/// Library crates whose public items others compile against.
const TYPED_CRATES: [&str; 3] = ["rpc-types", "client", "provider"];

/// `(file under crates/, public item)` that may carry untyped JSON, and why.
const ALLOWED: [(&str, &str, &str); 2] = [
    (
        "provider/src/pricing.rs",
        "pub fn script_input",
        "the document an operator's price script reads on stdin: its shape is the script's contract",
    ),
    ("provider/src/pricing.rs", "pub async fn run_script", "runs the script on that document"),
];

/// Files that answer HTTP requests: every answer is a wire type, never `json!`.
const SERVERS: [&str; 2] = ["node/src/rpc.rs", "provider/src/server.rs"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The public items of a source file (outside its test module) whose signature or type
/// mentions `Value`, each as its first line.
fn public_items_with_value(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if !trimmed.starts_with("pub ")
            || trimmed.starts_with("pub use")
            || trimmed.starts_with("pub mod")
        {
            continue;
        }
        // A signature goes on until its body or its end; a field until the next field.
        let mut item = trimmed.to_owned();
        let is_fn = item.contains("fn ");
        let done = |item: &str| {
            let end = item.trim_end();
            item.contains('{') || end.ends_with(';') || (!is_fn && end.ends_with(','))
        };
        while !done(&item) {
            match lines.next() {
                Some(next) => item.push_str(next.trim()),
                None => break,
            }
        }
        let signature = item.split('{').next().unwrap_or_default();
        let mentions = signature
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "Value");
        if mentions {
            found.push(trimmed.to_owned());
        }
    }
    found
}

#[test]
fn no_untyped_json_in_public_apis() {
    let root = crates_dir();
    let mut offences = Vec::new();
    for krate in TYPED_CRATES {
        let src = root.join(krate).join("src");
        assert!(src.is_dir(), "{} is gone: update TYPED_CRATES", src.display());
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            let rel =
                file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
            for item in public_items_with_value(&text) {
                let allowed =
                    ALLOWED.iter().any(|(f, start, _)| rel == *f && item.starts_with(start));
                if !allowed {
                    offences.push(format!("{rel}: {item}"));
                }
            }
        }
    }
    assert!(offences.is_empty(), "untyped JSON in public APIs:\n{}", offences.join("\n"));
}

#[test]
fn servers_answer_with_wire_types() {
    let root = crates_dir();
    for file in SERVERS {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is gone ({e}): update SERVERS", path.display()));
        assert!(!text.contains("json!("), "{file} builds an answer with json!");
    }
}

/// The checker itself catches what it is for.
#[test]
fn the_checker_sees_values_in_signatures_and_fields() {
    let text = "pub fn a(x: &Value) -> u8 {\n}\npub struct S {\n    pub v: serde_json::Value,\n    pub ok: u8,\n}\npub async fn b(\n    y: u8,\n) -> Result<Value, E> {\n}\nfn private(v: Value) {}\npub fn values() -> Values {}\n#[cfg(test)]\npub fn t(v: Value) {}\n";
    let found = public_items_with_value(text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("pub fn a"));
    assert!(found[1].starts_with("pub v"));
    assert!(found[2].starts_with("pub async fn b"));
}
