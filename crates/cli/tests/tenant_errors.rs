//! Bad input to the tenant commands: each gives one clear sentence on stderr and a non-zero
//! exit code that says what kind of problem it was, never a panic or a backtrace.

mod common;

use std::path::Path;
use std::process::Command;

use common::GRIDLEASE;

const VALID: &str = r#"version: "2.0"
services:
  web:
    image: demo
    expose:
      - port: 80
        to: [{ global: true }]
profiles:
  compute:
    web:
      resources: { cpu: { units: 0.5 }, memory: { size: 128Mi }, storage: { size: 128Mi } }
  placement:
    dc:
      pricing: { web: { denom: uusdc, amount: 10 } }
deployment:
  web:
    dc: { profile: web, count: 1 }
"#;

/// Runs gridlease with `home` and returns (exit code, stderr).
fn run(home: &Path, passphrase: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(GRIDLEASE)
        .args(args)
        .env("GRIDLEASE_HOME", home)
        .env("GRIDLEASE_PASSPHRASE", passphrase)
        .env("GRIDLEASE_NODE", "http://127.0.0.1:9")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run gridlease");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// One sentence: a single `error: ...` line, nothing that looks like a panic.
fn assert_one_sentence(stderr: &str, contains: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(contains), "`{contains}` not in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn bad_input_is_one_sentence_with_a_meaningful_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let valid = home.join("app.yaml");
    std::fs::write(&valid, VALID).expect("write");
    let (code, err) = run(home, "pw", &["keys", "add", "alice"]);
    assert_eq!(code, Some(0), "{err}");

    // A missing SDL file.
    let (code, err) = run(home, "pw", &["deploy", "missing.yaml", "--from", "alice"]);
    assert_eq!(code, Some(2));
    assert_one_sentence(&err, "cannot read missing.yaml");

    // An invalid SDL file names file, line and column.
    let invalid = home.join("bad.yaml");
    std::fs::write(&invalid, VALID.replace("units: 0.5", "units: lots")).expect("write");
    let (code, err) =
        run(home, "pw", &["deploy", invalid.to_str().expect("utf8"), "--from", "alice"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.yaml:11:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An unknown key.
    let (code, err) =
        run(home, "pw", &["deploy", valid.to_str().expect("utf8"), "--from", "ghost"]);
    assert_eq!(code, Some(2));
    assert_one_sentence(&err, "there is no key named `ghost`");

    // A wrong passphrase.
    let (code, err) =
        run(home, "nope", &["deploy", valid.to_str().expect("utf8"), "--from", "alice"]);
    assert_eq!(code, Some(2));
    assert_one_sentence(&err, "wrong passphrase for key `alice`");

    // An unreachable node.
    let (code, err) =
        run(home, "pw", &["deploy", valid.to_str().expect("utf8"), "--from", "alice"]);
    assert_eq!(code, Some(3));
    assert_one_sentence(&err, "unreachable");
    let (code, err) = run(home, "pw", &["balance", "--from", "alice"]);
    assert_eq!(code, Some(3));
    assert_one_sentence(&err, "unreachable");

    // Bad arguments.
    let (code, err) = run(home, "pw", &["send", "not-an-address", "5uusdc", "--from", "alice"]);
    assert_eq!(code, Some(2));
    assert_one_sentence(&err, "is not a grid address");
    let (code, err) = run(home, "pw", &["keys", "add", "alice"]);
    assert_eq!(code, Some(2));
    assert_one_sentence(&err, "already exists");
}
