//! `gridlease keys add|list|show|export|import|delete` and the encrypted keystore behind
//! them: one file per key in `HOME/keys/NAME.json` holding its address in clear and its BIP39
//! mnemonic encrypted with ChaCha20-Poly1305 under a key stretched from the passphrase with
//! Argon2id. The passphrase comes from `GRIDLEASE_PASSPHRASE` or a prompt.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use clap::Subcommand;
use gridlease_types::{Address, Keypair};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::context::{Global, bad, failed};

/// Environment variable holding the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "GRIDLEASE_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key from a new mnemonic (printed once: write it down).
    Add { name: String },
    /// List the keys and their addresses.
    List,
    /// Show a key's address.
    Show { name: String },
    /// Print a key's mnemonic (asks for the passphrase).
    Export { name: String },
    /// Store a key from an existing mnemonic (from --mnemonic-file, or standard input).
    Import {
        name: String,
        #[arg(long)]
        mnemonic_file: Option<PathBuf>,
    },
    /// Delete a key file.
    Delete {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Argon2id parameters kept in each file, so they can be raised later.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KdfParams {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyFile {
    name: String,
    address: Address,
    kdf: KdfParams,
    /// `chacha20poly1305`.
    cipher: String,
    nonce: String,
    ciphertext: String,
}

/// The keys of one home directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(|e| failed(format!("cannot read randomness from /dev/urandom: {e}")))?;
    Ok(out)
}

fn valid_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(bad(format!("`{name}` is not a key name: use letters, digits, - _ .")))
    }
}

fn derive(passphrase: &str, kdf: &KdfParams) -> anyhow::Result<[u8; 32]> {
    let salt = gridlease_types::hex::decode(&kdf.salt)
        .ok_or_else(|| failed("the key file's salt is not hex"))?;
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| failed(format!("the key file's kdf parameters are invalid: {e}")))?;
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, &mut out)
        .map_err(|e| failed(format!("cannot derive the key: {e}")))?;
    Ok(out)
}

/// The passphrase: from the environment, else asked on the terminal (twice when `confirm`).
pub fn passphrase(purpose: &str, confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(bad(format!(
            "a passphrase is needed to {purpose}: set {PASSPHRASE_ENV} or run in a terminal"
        )));
    }
    let p = rpassword::prompt_password(format!("passphrase to {purpose}: "))
        .map_err(|e| bad(format!("cannot read the passphrase: {e}")))?;
    if confirm {
        let again = rpassword::prompt_password("repeat the passphrase: ")
            .map_err(|e| bad(format!("cannot read the passphrase: {e}")))?;
        if again != p {
            return Err(bad("the passphrases differ"));
        }
    }
    Ok(p)
}

impl Keystore {
    pub fn new(home: &Path) -> Keystore {
        Keystore { dir: home.join("keys") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn read(&self, name: &str) -> anyhow::Result<KeyFile> {
        valid_name(name)?;
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            bad(format!(
                "there is no key named `{name}` in {}: see `gridlease keys list`",
                self.dir.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| failed(format!("{} is not a key file: {e}", path.display())))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).is_file()
    }

    /// Encrypts and stores `mnemonic` under `name`.
    pub fn store(&self, name: &str, mnemonic: &str, passphrase: &str) -> anyhow::Result<Address> {
        valid_name(name)?;
        if self.exists(name) {
            return Err(bad(format!(
                "a key named `{name}` already exists: delete it first or pick another name"
            )));
        }
        let mnemonic = mnemonic.split_whitespace().collect::<Vec<_>>().join(" ");
        let key = Keypair::from_mnemonic(&mnemonic, "", 0)
            .map_err(|e| bad(format!("the mnemonic is not valid: {e}")))?;
        let kdf = KdfParams {
            algorithm: "argon2id".into(),
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
            salt: gridlease_types::hex::encode(&random_bytes::<16>()?),
        };
        let secret = derive(passphrase, &kdf)?;
        let nonce = random_bytes::<12>()?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&secret));
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), mnemonic.as_bytes())
            .map_err(|_| failed("cannot encrypt the key"))?;
        let file = KeyFile {
            name: name.to_string(),
            address: key.address(),
            kdf,
            cipher: "chacha20poly1305".into(),
            nonce: gridlease_types::hex::encode(&nonce),
            ciphertext: gridlease_types::hex::encode(&ciphertext),
        };
        std::fs::create_dir_all(&self.dir)?;
        gridlease_provider::home::write_private(
            &self.path(name),
            &serde_json::to_string_pretty(&file)?,
        )?;
        Ok(key.address())
    }

    /// The mnemonic of `name`, decrypted with `passphrase`.
    pub fn mnemonic(&self, name: &str, passphrase: &str) -> anyhow::Result<String> {
        let file = self.read(name)?;
        let secret = derive(passphrase, &file.kdf)?;
        let nonce = gridlease_types::hex::decode(&file.nonce)
            .ok_or_else(|| failed("the key file's nonce is not hex"))?;
        let ciphertext = gridlease_types::hex::decode(&file.ciphertext)
            .ok_or_else(|| failed("the key file's ciphertext is not hex"))?;
        if nonce.len() != 12 {
            return Err(failed("the key file's nonce has the wrong length"));
        }
        let plain = ChaCha20Poly1305::new(Key::from_slice(&secret))
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| bad(format!("wrong passphrase for key `{name}`")))?;
        String::from_utf8(plain).map_err(|_| failed("the decrypted key is not text"))
    }

    /// The key `name`, asking for the passphrase.
    pub fn unlock(&self, name: &str) -> anyhow::Result<Keypair> {
        self.read(name)?;
        let p = passphrase(&format!("unlock key `{name}`"), false)?;
        self.unlock_with(name, &p)
    }

    pub fn unlock_with(&self, name: &str, passphrase: &str) -> anyhow::Result<Keypair> {
        let m = self.mnemonic(name, passphrase)?;
        Keypair::from_mnemonic(&m, "", 0)
            .map_err(|e| failed(format!("the stored mnemonic is not valid: {e}")))
    }

    pub fn address(&self, name: &str) -> anyhow::Result<Address> {
        Ok(self.read(name)?.address)
    }

    /// Every key: (name, address), sorted by name.
    pub fn list(&self) -> anyhow::Result<Vec<(String, Address)>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            if let Ok(f) = std::fs::read_to_string(&p)
                .map_err(|_| ())
                .and_then(|t| serde_json::from_str::<KeyFile>(&t).map_err(|_| ()))
            {
                out.push((f.name, f.address));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        self.read(name)?;
        std::fs::remove_file(self.path(name))
            .map_err(|e| failed(format!("cannot delete key `{name}`: {e}")))
    }
}

/// A new BIP39 mnemonic (24 words).
pub fn new_mnemonic() -> anyhow::Result<String> {
    Keypair::mnemonic_from_entropy(&random_bytes::<32>()?).map_err(|e| failed(e.to_string()))
}

pub fn run(g: &Global, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let ks = g.keystore();
    match cmd {
        KeysCommand::Add { name } => {
            valid_name(&name)?;
            if ks.exists(&name) {
                return Err(bad(format!("a key named `{name}` already exists")));
            }
            let m = new_mnemonic()?;
            let p = passphrase(&format!("encrypt key `{name}`"), true)?;
            let address = ks.store(&name, &m, &p)?;
            g.print(&json!({ "name": name, "address": address, "mnemonic": m }), || {
                format!("key `{name}`: {address}\nmnemonic (write it down, it is shown once):\n{m}")
            });
        }
        KeysCommand::List => {
            let keys = ks.list()?;
            let v: Vec<_> = keys.iter().map(|(n, a)| json!({ "name": n, "address": a })).collect();
            g.print(&json!(v), || {
                if keys.is_empty() {
                    format!(
                        "no keys in {}: create one with `gridlease keys add NAME`",
                        g.home.display()
                    )
                } else {
                    keys.iter().map(|(n, a)| format!("{n:<16} {a}")).collect::<Vec<_>>().join("\n")
                }
            });
        }
        KeysCommand::Show { name } => {
            let a = ks.address(&name)?;
            g.print(&json!({ "name": name, "address": a }), || a.to_string());
        }
        KeysCommand::Export { name } => {
            ks.address(&name)?;
            let p = passphrase(&format!("unlock key `{name}`"), false)?;
            let m = ks.mnemonic(&name, &p)?;
            g.print(&json!({ "name": name, "mnemonic": m }), || m.clone());
        }
        KeysCommand::Import { name, mnemonic_file } => {
            let text = match mnemonic_file {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| bad(format!("cannot read {}: {e}", f.display())))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| bad(format!("cannot read the mnemonic: {e}")))?;
                    s
                }
            };
            let p = passphrase(&format!("encrypt key `{name}`"), true)?;
            let address = ks.store(&name, &text, &p)?;
            g.print(&json!({ "name": name, "address": address }), || {
                format!("key `{name}`: {address}")
            });
        }
        KeysCommand::Delete { name, yes } => {
            let a = ks.address(&name)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(bad("deleting a key needs --yes when not run in a terminal"));
                }
                eprint!(
                    "delete key `{name}` ({a})? without its mnemonic it is gone for good [y/N] "
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !answer.trim().eq_ignore_ascii_case("y") {
                    return Err(failed("not deleted"));
                }
            }
            ks.delete(&name)?;
            g.print(&json!({ "deleted": name }), || format!("deleted key `{name}`"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_a_wrong_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path());
        let m = Keypair::mnemonic_from_entropy(&[3; 32]).expect("mnemonic");
        let a = ks.store("alice", &m, "pw").expect("store");
        assert_eq!(ks.address("alice").expect("address"), a);
        assert_eq!(ks.unlock_with("alice", "pw").expect("unlock").address(), a);
        let e = ks.unlock_with("alice", "nope").expect_err("wrong passphrase").to_string();
        assert_eq!(e, "wrong passphrase for key `alice`");
        assert!(ks.store("alice", &m, "pw").is_err(), "no overwrite");
        let e = ks.address("bob").expect_err("unknown").to_string();
        assert!(e.starts_with("there is no key named `bob`"), "{e}");
        assert!(ks.store("../x", &m, "pw").is_err());
        assert_eq!(ks.list().expect("list"), vec![("alice".to_string(), a)]);
        let text = std::fs::read_to_string(dir.path().join("keys/alice.json")).expect("file");
        assert!(
            !text.contains(m.split(' ').next().unwrap_or("x")),
            "the mnemonic is not stored in clear"
        );
        ks.delete("alice").expect("delete");
        assert!(ks.list().expect("list").is_empty());
    }
}
