//! `gridlease provider init` and the provider's key: the key lives encrypted in the home's
//! keystore, a new mnemonic is printed once, and no run of init ever replaces the key (again,
//! with --force, without the config file, with another mnemonic). A home from before the
//! keystore, with its mnemonic in clear in `key.json`, is refused until init moves the key in.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{PROVIDER_PASSPHRASE, gridlease};
use gridlease_types::Keypair;

fn init(home: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args =
        vec!["provider", "init", "--home", home.to_str().expect("utf8"), "--driver", "exec"];
    args.extend_from_slice(extra);
    gridlease(&args)
}

fn address_line(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .unwrap_or_else(|| panic!("no address in: {stdout}"))
        .to_string()
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

/// No file of the home holds the mnemonic, or any run of three of its words, in clear.
fn assert_no_clear_mnemonic(home: &Path, mnemonic: &str) {
    let words: Vec<&str> = mnemonic.split_whitespace().collect();
    for f in files(home) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        for w in words.windows(3) {
            assert!(!text.contains(&w.join(" ")), "{} holds the mnemonic in clear", f.display());
        }
    }
}

#[test]
fn attack_provider_init_never_overwrites_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("prov");
    let key_file = home.join("keys/provider.json");

    // A new key: printed once with a warning, stored encrypted and private.
    let (ok, out, err) = init(&home, &[]);
    assert!(ok, "init: {err}");
    let address = address_line(&out);
    assert!(out.contains("write it down"), "{out}");
    let mnemonic = out
        .lines()
        .skip_while(|l| !l.starts_with("mnemonic"))
        .nth(1)
        .expect("the mnemonic line")
        .to_string();
    assert_eq!(mnemonic.split_whitespace().count(), 24, "{out}");
    let key = Keypair::from_mnemonic(&mnemonic, "", 0).expect("a valid mnemonic");
    assert_eq!(key.address().to_string(), address);
    let original = std::fs::read(&key_file).expect("the key file");
    let mode = std::fs::metadata(&key_file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!home.join("key.json").exists(), "no clear key file");
    assert_no_clear_mnemonic(&home, &mnemonic);

    let other = dir.path().join("other.mnemonic");
    std::fs::write(&other, Keypair::mnemonic_from_entropy(&[7; 32]).expect("mnemonic"))
        .expect("write");
    let other = other.to_str().expect("utf8");
    let attempts: [(&str, Vec<&str>, bool, bool); 5] = [
        ("again", vec![], false, false),
        ("--force", vec!["--force"], true, false),
        ("without the config", vec![], true, true),
        ("--force with another mnemonic", vec!["--force", "--mnemonic-file", other], false, false),
        ("without the config, another mnemonic", vec!["--mnemonic-file", other], false, true),
    ];
    for (what, extra, succeeds, remove_config) in attempts {
        if remove_config {
            std::fs::remove_file(home.join("provider.toml")).ok();
        }
        let (ok, out, err) = init(&home, &extra);
        assert_eq!(ok, succeeds, "{what}: {out}{err}");
        if ok {
            assert_eq!(address_line(&out), address, "{what}");
            assert!(!out.contains("mnemonic"), "{what}: an existing key is never printed: {out}");
        } else {
            assert!(err.contains("already"), "{what}: {err}");
        }
        assert_eq!(std::fs::read(&key_file).expect("key file"), original, "{what}");
        assert_no_clear_mnemonic(&home, &mnemonic);
    }
    let h = home.to_str().expect("utf8");
    let (ok, out, err) = gridlease(&["keys", "export", "provider", "--home", h]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), mnemonic, "the key still unlocks to the same mnemonic");
}

#[test]
fn a_clear_key_json_is_refused_until_init_moves_it_into_the_keystore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("prov");
    let (ok, _, err) = init(&home, &[]);
    assert!(ok, "{err}");
    // A home as gridlease made it before the keystore: the mnemonic in clear in key.json.
    std::fs::remove_dir_all(home.join("keys")).expect("remove keystore");
    let mnemonic = Keypair::mnemonic_from_entropy(&[8; 32]).expect("mnemonic");
    let address = Keypair::from_mnemonic(&mnemonic, "", 0).expect("key").address().to_string();
    let clear = serde_json::json!({ "address": address, "mnemonic": mnemonic });
    std::fs::write(home.join("key.json"), clear.to_string()).expect("write");
    let h = home.to_str().expect("utf8");
    let (ok, _, err) = gridlease(&["provider", "register", "--home", h]);
    assert!(!ok);
    assert!(err.contains("in clear") && err.contains("provider init"), "{err}");

    let (ok, out, err) = init(&home, &["--force"]);
    assert!(ok, "{err}");
    assert_eq!(address_line(&out), address, "the same key");
    assert!(out.contains("moved"), "{out}");
    assert!(!home.join("key.json").exists(), "the clear file is gone");
    assert_no_clear_mnemonic(&home, &mnemonic);
    let (ok, out, err) = gridlease(&["keys", "show", "provider", "--home", h]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), address);
    let wrong = std::process::Command::new(common::GRIDLEASE)
        .args(["keys", "export", "provider", "--home", h])
        .env("GRIDLEASE_PASSPHRASE", format!("not {PROVIDER_PASSPHRASE}"))
        .output()
        .expect("run");
    let (ok, err) = (wrong.status.success(), String::from_utf8_lossy(&wrong.stderr));
    assert!(!ok && err.contains("wrong passphrase"), "the moved key is encrypted: {err}");
}

/// Issue 11 item 5: `gridlease provider` commands exited 1 when the node was unreachable; the
/// CLI's documented code for an unreachable node or provider is 3, and every command gets it
/// from the one place that maps errors to codes.
#[test]
fn provider_commands_exit_3_when_the_node_or_daemon_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("prov");
    let (ok, _, err) = init(&home, &["--node", "http://127.0.0.1:9"]);
    assert!(ok, "init: {err}");
    for command in ["register", "status", "run"] {
        let out = std::process::Command::new(common::GRIDLEASE)
            .args(["provider", command, "--home", home.to_str().expect("utf8")])
            .env("GRIDLEASE_PASSPHRASE", PROVIDER_PASSPHRASE)
            .output()
            .expect("run gridlease");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "provider {command}: {stderr}");
        assert!(stderr.contains("cannot reach") || stderr.contains("does not answer"), "{stderr}");
    }
}

/// The manifest service's private key is sealed under the provider key's passphrase, as the
/// account key is; a home from before, with `tls/key.pem` in clear, has it sealed at the next
/// start, and the clear file goes.
#[test]
fn attack_provider_tls_key_is_not_stored_in_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("prov");
    let (ok, _, err) = init(&home, &["--node", "http://127.0.0.1:9"]);
    assert!(ok, "init: {err}");
    let (sealed, clear) = (home.join("tls/key.json"), home.join("tls/key.pem"));
    assert!(!clear.exists(), "a clear TLS key was written");
    let in_clear = |f: &Path| {
        String::from_utf8_lossy(&std::fs::read(f).expect("read")).contains("PRIVATE KEY")
    };
    for f in files(&home) {
        assert!(!in_clear(&f), "{} holds a private key in clear", f.display());
    }
    let mode = std::fs::metadata(&sealed).expect("sealed key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // An older home: the key in clear, no sealed file.
    let key_pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBv3cNDDr0vxV7T4m0VbWxxj6bV0Wk3AxzLXvCvVrnSj\n-----END PRIVATE KEY-----\n";
    std::fs::remove_file(&sealed).expect("remove sealed");
    std::fs::write(&clear, key_pem).expect("clear key");
    // `run` opens the key before it reaches for the (unreachable) node.
    let (ok, _, err) = gridlease(&["provider", "run", "--home", home.to_str().expect("utf8")]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
    assert!(!clear.exists(), "the clear key stays after a start");
    assert!(sealed.exists() && !in_clear(&sealed), "the key is not sealed");

    // The wrong passphrase opens nothing.
    let out = std::process::Command::new(common::GRIDLEASE)
        .args(["provider", "run", "--home", home.to_str().expect("utf8")])
        .env("GRIDLEASE_PASSPHRASE", "not the passphrase")
        .output()
        .expect("run gridlease");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
}
