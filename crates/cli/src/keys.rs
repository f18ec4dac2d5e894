//! `gridlease keys add|list|show|export|import|delete` and the encrypted keystore behind
//! them: one file per key in `HOME/keys/NAME.json` (mode 0600) holding its name and address
//! in clear and its BIP39 mnemonic encrypted with ChaCha20-Poly1305 under a key stretched from
//! the passphrase with Argon2id, the clear fields bound to the ciphertext as associated data.
//! The passphrase comes from `GRIDLEASE_PASSPHRASE` or a prompt. [`SealedFile`] also seals
//! other secrets under the same passphrase (the tenant's mTLS client key).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use clap::Subcommand;
use gridlease_provider::durable_file::{create_durably, write_durably};
use gridlease_types::{Address, Keypair};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::context::{Global, bad, failed};

/// Environment variable holding the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "GRIDLEASE_PASSPHRASE";

/// What a command needs of the keystore, for the `--from` key and the passphrase.
impl Global {
    pub fn keystore(&self) -> Keystore {
        Keystore::new(&self.home)
    }

    /// The keystore passphrase: given by the caller, else from `GRIDLEASE_PASSPHRASE` or a
    /// prompt (asked once per command).
    pub fn passphrase(&self) -> anyhow::Result<String> {
        if let Some(p) = self.passphrase.as_ref().or(self.asked_passphrase.get()) {
            return Ok(p.clone());
        }
        let p = passphrase(&format!("unlock key `{}`", self.from), false)?;
        Ok(self.asked_passphrase.get_or_init(|| p).clone())
    }

    /// The signing key named by `--from`, unlocked.
    pub fn key(&self) -> anyhow::Result<Keypair> {
        let keystore = self.keystore();
        keystore.address(&self.from)?;
        keystore.unlock_with(&self.from, &self.passphrase()?)
    }
}

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

/// The format this version writes. Version 2 binds every clear field (version, secret kind,
/// name, address, KDF parameters and salt, cipher) to the ciphertext as associated data and
/// carries a check of the derived key, so a wrong passphrase and an edited file give
/// different errors. Files without a version are version 1: they still open (the mnemonic's
/// address must match the clear one) and are rewritten as version 2 at their first unlock.
const FORMAT_VERSION: u32 = 2;

fn format_version_1() -> u32 {
    1
}

/// What a sealed file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// An account's BIP39 mnemonic (`keys/NAME.json`).
    #[default]
    Mnemonic,
    /// The PEM private key of a tenant's mTLS client certificate.
    TlsClientKey,
    /// The PEM private key of a provider's manifest-service certificate.
    TlsServerKey,
}

/// A text secret of `address` kept sealed at `sealed` (a [`SealedFile`] of `kind`): opened
/// with `passphrase`. One that an older gridlease left in clear at `clear` is sealed there
/// and the clear file removed. `None` when neither file exists. `what` names the secret in
/// errors.
pub fn open_sealed_text(
    (sealed, clear): (&Path, &Path),
    (kind, name): (SecretKind, &str),
    address: Address,
    passphrase: &str,
    what: &str,
) -> anyhow::Result<Option<String>> {
    if sealed.exists() {
        let file = SealedFile::read(sealed)?;
        if file.kind() != kind || file.address() != address {
            return Err(failed(format!("{} is not {what}", sealed.display())));
        }
        let text = String::from_utf8(file.open(passphrase, what)?)
            .map_err(|_| failed(format!("{what} is not text")))?;
        return Ok(Some(text));
    }
    let Ok(text) = std::fs::read_to_string(clear) else { return Ok(None) };
    seal_text(sealed, (kind, name), address, &text, passphrase)?;
    std::fs::remove_file(clear)
        .map_err(|e| failed(format!("cannot remove {}: {e}", clear.display())))?;
    Ok(Some(text))
}

/// Seals `text` at `path` (which must not exist) as a [`SealedFile`] of `kind` named `name`.
pub fn seal_text(
    path: &Path,
    (kind, name): (SecretKind, &str),
    address: Address,
    text: &str,
    passphrase: &str,
) -> anyhow::Result<()> {
    SealedFile::seal(kind, name, address, text.as_bytes(), passphrase)?.write_new(path)
}

/// A secret encrypted with ChaCha20-Poly1305 under a key stretched from the passphrase with
/// Argon2id; everything but the ciphertext is in clear, and bound to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedFile {
    #[serde(default = "format_version_1")]
    version: u32,
    #[serde(default)]
    secret: SecretKind,
    name: String,
    address: Address,
    kdf: KdfParams,
    /// `chacha20poly1305`.
    cipher: String,
    nonce: String,
    /// Hex of the first 16 bytes of SHA-256 over a tag and the derived key (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_check: Option<String>,
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
    if kdf.algorithm != "argon2id" {
        return Err(failed(format!("the key file's kdf `{}` is not argon2id", kdf.algorithm)));
    }
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

fn key_check(secret: &[u8; 32]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"gridlease keystore key check\0")
        .chain_update(secret)
        .finalize();
    gridlease_types::hex::encode(&digest[..16])
}

impl SealedFile {
    /// Encrypts `plain` under `passphrase`, binding `kind`, `name` and `address`.
    pub fn seal(
        kind: SecretKind,
        name: &str,
        address: Address,
        plain: &[u8],
        passphrase: &str,
    ) -> anyhow::Result<SealedFile> {
        let kdf = KdfParams {
            algorithm: "argon2id".into(),
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
            salt: gridlease_types::hex::encode(&random_bytes::<16>()?),
        };
        let secret = derive(passphrase, &kdf)?;
        let nonce = random_bytes::<12>()?;
        let mut file = SealedFile {
            version: FORMAT_VERSION,
            secret: kind,
            name: name.to_string(),
            address,
            kdf,
            cipher: "chacha20poly1305".into(),
            nonce: gridlease_types::hex::encode(&nonce),
            key_check: Some(key_check(&secret)),
            ciphertext: String::new(),
        };
        let aad = file.associated_data()?;
        let ciphertext = ChaCha20Poly1305::new(Key::from_slice(&secret))
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .map_err(|_| failed("cannot encrypt the key"))?;
        file.ciphertext = gridlease_types::hex::encode(&ciphertext);
        Ok(file)
    }

    /// The address in clear (authenticated only once the file is opened).
    pub fn address(&self) -> Address {
        self.address
    }

    pub fn kind(&self) -> SecretKind {
        self.secret
    }

    /// The clear fields, in a fixed order, as the cipher's associated data.
    fn associated_data(&self) -> anyhow::Result<Vec<u8>> {
        let fields = (
            "gridlease keystore",
            self.version,
            self.secret,
            &self.name,
            &self.address,
            &self.kdf,
            &self.cipher,
        );
        serde_json::to_vec(&fields).map_err(|e| failed(format!("cannot encode the key file: {e}")))
    }

    /// Decrypts the secret; `what` names it in errors (``key `alice` ``).
    pub fn open(&self, passphrase: &str, what: &str) -> anyhow::Result<Vec<u8>> {
        let altered = || {
            failed(format!(
                "the file of {what} was altered: its clear fields (name, address, version, kdf, salt) no longer match its encrypted secret; restore the file from a backup or import the key again"
            ))
        };
        if self.version > FORMAT_VERSION {
            return Err(failed(format!(
                "the file of {what} has format {}, newer than this gridlease knows ({FORMAT_VERSION}): upgrade gridlease",
                self.version
            )));
        }
        if self.cipher != "chacha20poly1305" {
            return Err(failed(format!(
                "the file of {what} uses an unknown cipher `{}`",
                self.cipher
            )));
        }
        let secret = derive(passphrase, &self.kdf)?;
        let nonce = gridlease_types::hex::decode(&self.nonce)
            .ok_or_else(|| failed("the key file's nonce is not hex"))?;
        let ciphertext = gridlease_types::hex::decode(&self.ciphertext)
            .ok_or_else(|| failed("the key file's ciphertext is not hex"))?;
        if nonce.len() != 12 {
            return Err(failed("the key file's nonce has the wrong length"));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&secret));
        let nonce = Nonce::from_slice(&nonce);
        let wrong = || bad(format!("wrong passphrase for {what}"));
        if self.version == 1 {
            return cipher.decrypt(nonce, ciphertext.as_slice()).map_err(|_| wrong());
        }
        match &self.key_check {
            Some(check) if *check == key_check(&secret) => {}
            Some(_) => return Err(wrong()),
            None => return Err(altered()),
        }
        let aad = self.associated_data()?;
        cipher.decrypt(nonce, Payload { msg: &ciphertext, aad: &aad }).map_err(|_| altered())
    }

    pub fn read(path: &Path) -> anyhow::Result<SealedFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| failed(format!("{} is not a key file: {e}", path.display())))
    }

    /// Writes the file readable by its owner only, durably, and never over an existing file.
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        create_durably(path, text.as_bytes(), 0o600).map_err(|e| {
            if e.source.kind() == std::io::ErrorKind::AlreadyExists {
                bad(format!("{} already exists: it is never overwritten", path.display()))
            } else {
                failed(e.to_string())
            }
        })
    }

    /// Replaces the file at `path` in one step (a crash leaves the old or the new one).
    fn replace(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_durably(path, text.as_bytes(), 0o600).map_err(|e| failed(e.to_string()))
    }
}

/// Creates `dir` (and its parents) readable by its owner only when it is new.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))
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

    fn read(&self, name: &str) -> anyhow::Result<SealedFile> {
        valid_name(name)?;
        let path = self.path(name);
        if !path.is_file() {
            return Err(bad(format!(
                "there is no key named `{name}` in {}: see `gridlease keys list`",
                self.dir.display()
            )));
        }
        let file = SealedFile::read(&path)?;
        if file.secret != SecretKind::Mnemonic {
            return Err(failed(format!("{} does not hold an account key", path.display())));
        }
        Ok(file)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).is_file()
    }

    /// Encrypts and stores `mnemonic` under `name`; never replaces an existing key.
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
        let file = SealedFile::seal(
            SecretKind::Mnemonic,
            name,
            key.address(),
            mnemonic.as_bytes(),
            passphrase,
        )?;
        create_private_dir(&self.dir)?;
        file.write_new(&self.path(name))?;
        Ok(key.address())
    }

    /// The mnemonic of `name`, decrypted with `passphrase`. A file whose clear fields do not
    /// match its secret is refused; a version 1 file is rewritten in the current format.
    pub fn mnemonic(&self, name: &str, passphrase: &str) -> anyhow::Result<String> {
        let file = self.read(name)?;
        let what = format!("key `{name}`");
        let plain = file.open(passphrase, &what)?;
        let mnemonic =
            String::from_utf8(plain).map_err(|_| failed("the decrypted key is not text"))?;
        let key = Keypair::from_mnemonic(&mnemonic, "", 0)
            .map_err(|e| failed(format!("the stored mnemonic is not valid: {e}")))?;
        if key.address() != file.address || file.name != name {
            return Err(failed(format!(
                "the file of {what} was altered: its clear name or address does not match its encrypted key; restore the file from a backup or import the key again"
            )));
        }
        if file.version < FORMAT_VERSION {
            let upgraded = SealedFile::seal(
                SecretKind::Mnemonic,
                name,
                key.address(),
                mnemonic.as_bytes(),
                passphrase,
            )?;
            upgraded.replace(&self.path(name))?;
        }
        Ok(mnemonic)
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

    /// The address in clear in the key's file (not authenticated until the key is unlocked).
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
                .and_then(|t| serde_json::from_str::<SealedFile>(&t).map_err(|_| ()))
                .and_then(|f| if f.secret == SecretKind::Mnemonic { Ok(f) } else { Err(()) })
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

    fn edit(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
        f(&mut v);
        std::fs::write(path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    }

    #[test]
    fn attack_keystore_clear_fields_tampered_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path());
        let m = Keypair::mnemonic_from_entropy(&[4; 32]).expect("mnemonic");
        let a = ks.store("alice", &m, "pw").expect("store");
        let path = dir.path().join("keys/alice.json");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a key file is private");
        let original = std::fs::read_to_string(&path).expect("read");
        let mallory = Keypair::from_secret([9; 32]).address();
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let tampered: [(&str, Edit); 4] = [
            ("address", Box::new(move |v| v["address"] = json!(mallory))),
            ("name", Box::new(|v| v["name"] = json!("bob"))),
            ("kind", Box::new(|v| v["secret"] = json!("tls-client-key"))),
            ("check", Box::new(|v| v["key_check"] = serde_json::Value::Null)),
        ];
        for (what, f) in tampered {
            std::fs::write(&path, &original).expect("restore");
            edit(&path, f);
            let e = ks.unlock_with("alice", "pw").expect_err(what).to_string();
            assert!(
                e.contains("was altered") || e.contains("does not hold an account key"),
                "{what}: {e}"
            );
        }
        // Other KDF parameters derive another key: refused like a wrong passphrase.
        std::fs::write(&path, &original).expect("restore");
        edit(&path, |v| v["kdf"]["t_cost"] = json!(3));
        assert!(ks.unlock_with("alice", "pw").is_err(), "edited kdf");
        // Going back to the old format (no version, nothing bound) does not help either.
        std::fs::write(&path, &original).expect("restore");
        edit(&path, |v| {
            let o = v.as_object_mut().expect("object");
            o.remove("version");
            o.insert("address".into(), json!(mallory));
        });
        assert!(ks.unlock_with("alice", "pw").is_err(), "downgraded and edited");
        std::fs::write(&path, &original).expect("restore");
        let e = ks.unlock_with("alice", "nope").expect_err("wrong passphrase").to_string();
        assert_eq!(e, "wrong passphrase for key `alice`");
        assert_eq!(ks.unlock_with("alice", "pw").expect("intact").address(), a);
    }

    /// A file as gridlease wrote it before format 2: no version, no associated data.
    fn write_version_1(path: &Path, name: &str, address: Address, mnemonic: &str, pw: &str) {
        let mut f = SealedFile::seal(SecretKind::Mnemonic, name, address, b"", pw).expect("seal");
        let secret = derive(pw, &f.kdf).expect("derive");
        let nonce = gridlease_types::hex::decode(&f.nonce).expect("nonce");
        let c = ChaCha20Poly1305::new(Key::from_slice(&secret))
            .encrypt(Nonce::from_slice(&nonce), mnemonic.as_bytes())
            .expect("encrypt");
        f.ciphertext = gridlease_types::hex::encode(&c);
        let mut v = serde_json::to_value(&f).expect("json");
        let o = v.as_object_mut().expect("object");
        for field in ["version", "secret", "key_check"] {
            o.remove(field);
        }
        std::fs::write(path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    }

    #[test]
    fn version_1_files_open_when_intact_and_are_rewritten_in_the_current_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ks = Keystore::new(dir.path());
        std::fs::create_dir_all(dir.path().join("keys")).expect("mkdir");
        let m = Keypair::mnemonic_from_entropy(&[5; 32]).expect("mnemonic");
        let a = Keypair::from_mnemonic(&m, "", 0).expect("key").address();
        let path = dir.path().join("keys/old.json");
        let mallory = Keypair::from_secret([9; 32]).address();
        write_version_1(&path, "old", mallory, &m, "pw");
        let e = ks.unlock_with("old", "pw").expect_err("edited address").to_string();
        assert!(e.contains("was altered"), "{e}");
        write_version_1(&path, "old", a, &m, "pw");
        assert_eq!(ks.unlock_with("old", "pw").expect("intact v1").address(), a);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(v["version"], FORMAT_VERSION, "rewritten in the current format");
        assert_eq!(ks.unlock_with("old", "pw").expect("v2").address(), a);
    }
}
