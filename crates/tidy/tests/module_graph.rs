//! The module graph of every crate has no cycles (issue 11): a module that needs another's
//! types or functions imports it, and nothing imports back. Nodes are the top-level modules of
//! each crate (`src/x.rs` or `src/x/`), edges the `crate::x` paths a module's code names
//! (outside its `#[cfg(test)] mod tests`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            rust_files(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// The identifiers `text` names right after `crate::` (`crate::a::x`, `crate::{a, b::y}`).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            out.extend(group.split(',').map(ident).filter(|s| !s.is_empty()));
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Graph {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read src").flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        if !files.is_empty() {
            modules.entry(name).or_default().extend(files);
        }
    }
    let mut g = Graph::new();
    for (module, files) in &modules {
        let mut edges = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).expect("read source");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
            edges.extend(
                crate_paths(code).into_iter().filter(|m| m != module && modules.contains_key(m)),
            );
        }
        g.insert(module.clone(), edges);
    }
    g
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        for w in &s.g[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        next: 0,
        out: vec![],
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).expect("read crates").flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            let krate = entry.file_name().to_string_lossy().into_owned();
            for cycle in cycles(&graph(&src)) {
                found.push((krate.clone(), cycle));
            }
        }
    }
    assert!(
        found.is_empty(),
        "module cycles (crate, modules): {found:?}; break each so that one side imports the other and nothing imports back"
    );
}

/// The checker sees a cycle, through both path forms, and ignores test modules.
#[test]
fn the_checker_sees_cycles() {
    let dir = tempfile_dir();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("c")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::{b::X, c};").expect("write");
    std::fs::write(src.join("b.rs"), "fn f() { crate::a::g() }").expect("write");
    std::fs::write(src.join("c/mod.rs"), "#[cfg(test)]\nmod tests { use crate::a; }")
        .expect("write");
    let g = graph(&src);
    assert_eq!(cycles(&g), vec![vec!["a".to_owned(), "b".to_owned()]]);
    assert!(g["c"].is_empty(), "{g:?}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridlease-tidy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
