//! End-to-end tests of `gridlease sdl …` on the sdl crate's own fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdl/tests/fixtures").join(rel)
}

fn gridlease(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridlease"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gridlease: {e}"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-utf8 path {}", p.display()))
}

#[test]
fn check_accepts_valid_files_silently() {
    let a = fixture("valid/v20-basic.yaml");
    let b = fixture("valid/gpu-models.yaml");
    let out = gridlease(&["sdl", "check", path_str(&a), path_str(&b)]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn check_prints_one_positioned_line_per_problem_and_fails() {
    let valid = fixture("valid/v20-basic.yaml");
    let bad = fixture("invalid/port-zero.yaml");
    let out = gridlease(&["sdl", "check", path_str(&valid), path_str(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{}:8:15: services.web.expose[0].port: ", path_str(&bad))),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("expected a port number from 1 to 65535"), "{}", lines[0]);
}

#[test]
fn check_reports_unreadable_files() {
    let out = gridlease(&["sdl", "check", "/nonexistent/app.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/nonexistent/app.yaml"));
}

#[test]
fn check_warns_on_fields_akash_ignores() {
    let f = fixture("valid/unknown-nested-field.yaml");
    let out = gridlease(&["sdl", "check", path_str(&f)]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn akash_format_matches_the_expected_fixture_json() {
    for (cmd, suffix) in [("groups", "groups.json"), ("manifest", "manifest.json")] {
        let input = fixture("valid/v21-merge.yaml");
        let out =
            gridlease(&["sdl", cmd, path_str(&input), "--output", "json", "--format", "akash"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let want_text = std::fs::read_to_string(fixture(&format!("valid/v21-merge.{suffix}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let want: Value = serde_json::from_str(&want_text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, want, "{cmd}");
    }
}

#[test]
fn gridlease_format_uses_base_units() {
    let input = fixture("valid/v21-merge.yaml");
    let out = gridlease(&["sdl", "groups", path_str(&input), "--output", "json"]);
    assert!(out.status.success());
    let groups: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let unit = &groups[0]["resources"][0];
    assert_eq!(unit["resources"]["cpu"]["millis"], 250);
    assert_eq!(unit["resources"]["memory_bytes"], 268_435_456);
    assert_eq!(unit["count"], 5);
    assert_eq!(unit["price"]["amount"], "10.500000000000000000");
    let out = gridlease(&["sdl", "manifest", path_str(&input), "--output", "json"]);
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = manifest[0]["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "db", "worker"]);
}

#[test]
fn derive_commands_fail_on_invalid_files() {
    let bad = fixture("invalid/count-zero.yaml");
    let out = gridlease(&["sdl", "groups", path_str(&bad), "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deployment.web.dc.count"));
}
