//! Conformance runner: checks gridlease-sdl against Akash's SDL fixtures and the awesome-akash templates.
//!
//! Usage: `cargo run -p gridlease-sdl --example conformance -- CORPUS_DIR [--verbose]`
//! where CORPUS_DIR holds `sdl/akash-fixtures` and/or `sdl/awesome-akash`
//! (e.g. `../shared/conformance`). Prints one line per failure, then exactly
//! one line `N passed, N failed`; exits non-zero if anything failed.
//!
//! Checks:
//! - `akash-fixtures/input/v2.*/<case>/input.yaml`: `--format akash` outputs
//!   equal `output-fixtures/v2.*/<case>/{group-specs,manifest}.json` as JSON;
//! - `akash-fixtures/input/{invalid,schema-only-invalid}/*.yaml`: rejected;
//! - `awesome-akash/*.y*ml`: accepted, except the files listed in
//!   `tests/awesome-akash-rejections.txt`, which must be rejected with the
//!   listed message (each one breaks a rule Akash's own parser enforces).
//!   The share of accepted files is printed (the target is 99%).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use gridlease_sdl::Sdl;
use serde_json::Value;

/// `file<TAB>expected error substring<TAB>rule` lines.
const KNOWN_REJECTIONS: &str = include_str!("../tests/awesome-akash-rejections.txt");

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn pass(&mut self) {
        self.passed += 1;
    }
    fn fail(&mut self, line: String) {
        println!("FAIL {line}");
        self.failed += 1;
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// The first place where two JSON values differ, as a path.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => {
                        if let Some(d) = first_difference(va, vb, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    (va, vb) => return Some(format!("{path}.{k}: got {va:?}, expected {vb:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: got {} items, expected {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: got {a}, expected {b}")),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn akash_fixtures(root: &Path, t: &mut Tally, verbose: bool) -> Result<()> {
    let input = root.join("input");
    for version_dir in sorted_entries(&input)? {
        let version =
            version_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !version.starts_with('v') {
            continue;
        }
        for case_dir in sorted_entries(&version_dir)? {
            let case = case_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let name = format!("akash-fixtures/{version}/{case}");
            let input_path = case_dir.join("input.yaml");
            let sdl = match Sdl::parse(&input_path.display().to_string(), &read(&input_path)?) {
                Ok(s) => s,
                Err(e) => {
                    t.fail(format!("{name}: rejected: {e}"));
                    continue;
                }
            };
            let expected_dir = root.join("output-fixtures").join(&version).join(&case);
            for (file, got) in [
                ("group-specs.json", sdl.groups_akash_json()),
                ("manifest.json", sdl.manifest_akash_json()),
            ] {
                let expected: Value = serde_json::from_str(&read(&expected_dir.join(file))?)
                    .with_context(|| format!("parsing {file} of {name}"))?;
                match first_difference(&got, &expected, "$") {
                    None => t.pass(),
                    Some(d) => t.fail(format!("{name}/{file}: differs at {d}")),
                }
            }
        }
    }
    for kind in ["invalid", "schema-only-invalid"] {
        let dir = input.join(kind);
        if !dir.is_dir() {
            continue;
        }
        for path in sorted_entries(&dir)? {
            let name = format!(
                "akash-fixtures/{kind}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            );
            match Sdl::parse(&path.display().to_string(), &read(&path)?) {
                Ok(_) => t.fail(format!("{name}: accepted, expected a rejection")),
                Err(e) => {
                    if verbose {
                        println!("ok   {name}: {}", e.errors[0]);
                    }
                    t.pass();
                }
            }
        }
    }
    Ok(())
}

fn awesome_akash(root: &Path, t: &mut Tally, verbose: bool) -> Result<()> {
    let known: Vec<(&str, &str)> = KNOWN_REJECTIONS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let (mut total, mut accepted) = (0usize, 0usize);
    for path in sorted_entries(root)? {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
            continue;
        }
        total += 1;
        let name = format!("awesome-akash/{file}");
        let result = Sdl::parse(&path.display().to_string(), &read(&path)?);
        let expected_rejection = known.iter().find(|(f, _)| *f == file).map(|(_, m)| *m);
        match (result, expected_rejection) {
            (Ok(_), None) => {
                accepted += 1;
                t.pass();
            }
            (Ok(_), Some(_)) => {
                accepted += 1;
                t.fail(format!("{name}: accepted, but listed as a known rejection"));
            }
            (Err(e), Some(msg)) if e.to_string().contains(msg) => {
                if verbose {
                    println!("ok   {name}: rejected as expected: {}", e.errors[0]);
                }
                t.pass();
            }
            (Err(e), _) => {
                for err in &e.errors {
                    t.fail(format!("{name}: {err}"));
                }
            }
        }
    }
    if total > 0 {
        let share = accepted as f64 * 100.0 / total as f64;
        let rejected = total - accepted;
        println!(
            "awesome-akash: {accepted} of {total} accepted ({share:.1}%), {rejected} rejected{}",
            if accepted * 100 < total * 99 { " (below the 99% target)" } else { "" }
        );
    }
    Ok(())
}

fn run() -> Result<Tally> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        bail!("usage: conformance CORPUS_DIR [--verbose]");
    };
    let verbose = args.any(|a| a == "--verbose");
    let dir = PathBuf::from(dir);
    let sdl_dir = if dir.join("sdl").is_dir() { dir.join("sdl") } else { dir };
    let mut t = Tally::default();
    let fixtures = sdl_dir.join("akash-fixtures");
    let awesome = sdl_dir.join("awesome-akash");
    if !fixtures.is_dir() && !awesome.is_dir() {
        bail!("{} holds neither akash-fixtures nor awesome-akash", sdl_dir.display());
    }
    if fixtures.is_dir() {
        akash_fixtures(&fixtures, &mut t, verbose)?;
    }
    if awesome.is_dir() {
        awesome_akash(&awesome, &mut t, verbose)?;
    }
    Ok(t)
}

fn main() -> ExitCode {
    match run() {
        Ok(t) => {
            println!("{} passed, {} failed", t.passed, t.failed);
            if t.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
