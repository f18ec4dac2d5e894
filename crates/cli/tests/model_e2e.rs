//! A real model through the market: `gridlease devnet --model-gguf` builds the llama.cpp image
//! (Debian's `llama.cpp-tools` by debootstrap), leases a GPU for it on the podman driver and
//! serves it through the gateway; a chat completion, streamed and not, returns generated text.
//! The model is a tiny llama-architecture GGUF written at test time
//! (`support/tiny_gguf.py`, PyPI's `gguf`), so nothing large is downloaded; the same path with
//! Gemma 3 270M is `gridlease devnet --model gemma3-270m` (README, "A real model").
//!
//! The same devnet also leases an image no registry serves: the pull fails and `deploy` and
//! the lease status say it was the registry that could not be reached.
//!
//! Needs podman (`.ci/podman-setup`), debootstrap and Debian's mirror, and a Python with
//! `gguf` (`GRIDLEASE_PYTHON`); fails under CI when one is missing, skips loudly elsewhere.

mod common;

#[path = "../../provider/tests/support/podman_host.rs"]
mod podman_host;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{GRIDLEASE, free_port};
use serde_json::Value;

/// A deployment of an image at a registry that cannot exist (`.invalid` never resolves).
const UNPULLABLE: &str = r#"version: "2.0"
services:
  app:
    image: registry.invalid/acme/app:1.0
    expose:
      - port: 80
        to:
          - global: true
profiles:
  compute:
    app:
      resources:
        cpu: { units: 0.1 }
        memory: { size: 64Mi }
        storage: { size: 128Mi }
  placement:
    dc:
      pricing:
        app: { denom: uusdc, amount: 100 }
deployment:
  app:
    dc: { profile: app, count: 1 }
"#;

fn python() -> String {
    std::env::var("GRIDLEASE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the model test cannot run here, if it cannot.
async fn missing_tool() -> Option<String> {
    match podman_host::podman_socket_or_skip().await {
        Ok(Some(_)) => {}
        Ok(None) => return Some("podman is not usable".into()),
        Err(e) => return Some(e.to_string()),
    }
    if !Path::new("/usr/sbin/debootstrap").is_file() {
        return Some("debootstrap is not installed (apt-get install -y debootstrap)".into());
    }
    let gguf = Command::new(python()).args(["-c", "import gguf, numpy"]).output();
    if !gguf.is_ok_and(|o| o.status.success()) {
        return Some(format!("{} cannot import gguf (pip install gguf)", python()));
    }
    None
}

fn post(url: &str, path: &str, body: &str) -> Option<(u16, String)> {
    common::post_json(url, path, body, Duration::from_secs(30))
}

/// POSTs until the answer is 200 (llama-server answers 503 while it loads the weights).
fn post_until_ok(url: &str, body: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = post(url, "/v1/chat/completions", body);
        if let Some((200, text)) = got {
            return text;
        }
        assert!(Instant::now() < deadline, "the model never answered 200: {got:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn model_containers() -> Vec<String> {
    let out =
        Command::new("podman").args(["ps", "--format", "{{.Image}}"]).output().expect("podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("gridlease/model-gguf"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gguf_model_answers_through_the_market() {
    if let Some(why) = missing_tool().await {
        assert!(std::env::var_os("CI").is_none(), "CI must run the model test: {why}");
        let _ = writeln!(
            std::io::stderr(),
            "\n!! SKIPPED: model end-to-end test: {why}.\n!! Run .ci/podman-setup, \
             apt-get install -y debootstrap and pip install gguf to run it."
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny-test.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tiny_gguf.py");
    let made = Command::new(python()).arg(&script).arg(&model).output().expect("run python");
    assert!(made.status.success(), "tiny_gguf.py: {}", String::from_utf8_lossy(&made.stderr));

    // The llama.cpp image is kept between runs in the target folder's cache.
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gridlease-cache");
    let home = dir.path().join("devnet");
    let port = free_port();
    let err_path = dir.path().join("devnet.err");
    let mut devnet = Command::new(GRIDLEASE)
        .args(["devnet", "--driver", "podman", "--providers", "2", "--demo-replicas", "1"])
        .args(["--rpc-port", &port.to_string(), "--output", "json", "--model-gguf"])
        .arg(&model)
        .arg("--home")
        .arg(&home)
        .env("GRIDLEASE_CACHE", &cache)
        .stdout(std::fs::File::create(dir.path().join("devnet.out")).expect("create"))
        .stderr(std::fs::File::create(&err_path).expect("create"))
        .spawn()
        .expect("start devnet");
    // A first run builds the llama.cpp image: debootstrap from Debian's mirror.
    let deadline = Instant::now() + Duration::from_secs(600);
    let info_path = home.join("devnet.json");
    while !info_path.exists() {
        if let Ok(Some(status)) = devnet.try_wait() {
            panic!(
                "devnet exited with {status}:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the model devnet did not come up in time");
        std::thread::sleep(Duration::from_millis(500));
    }
    let info: Value =
        serde_json::from_slice(&std::fs::read(&info_path).expect("read")).expect("json");
    let gateway = info["gateway"].as_str().expect("devnet.json names the gateway").to_string();
    assert_eq!(
        (&info["demo"]["model"], &info["demo"]["real_model"]),
        (&Value::from("tiny-test"), &Value::from(true)),
        "{info}"
    );
    let said = std::fs::read_to_string(&err_path).expect("devnet.err");
    assert!(said.contains("tiny-test answered through the gateway: first token"), "{said}");

    // Not streamed: the model generates the tokens asked for (its random weights would stop
    // at the end-of-text token at random, so llama-server is told to ignore it).
    let ask = |stream: bool| {
        serde_json::json!({
            "model": "tiny-test",
            "messages": [{"role": "user", "content": "hello grid"}],
            "max_tokens": 8,
            "ignore_eos": true,
            "stream": stream,
        })
        .to_string()
    };
    let text = post_until_ok(&gateway, &ask(false));
    let body = &text[text.find("\r\n\r\n").expect("headers end") + 4..];
    let answer: Value = serde_json::from_str(body).expect("a JSON answer");
    assert_eq!(answer["usage"]["completion_tokens"], 8, "{answer}");
    assert_eq!(answer["model"], "tiny-test", "{answer}");
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(!content.is_empty(), "{answer}");
    assert!(text.to_ascii_lowercase().contains("x-gridlease-replica"), "{text}");

    // Streamed: the tokens come as server-sent events, then [DONE].
    let text = post_until_ok(&gateway, &ask(true));
    let deltas = text.matches("\"content\":\"").count();
    assert!(deltas >= 2, "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    assert_eq!(model_containers().len(), 1, "one replica runs");

    // An image no registry serves: the lease is won, the pull fails, and the tenant is told
    // which failure it was, by `deploy` and in the lease status.
    let sdl = dir.path().join("unpullable.yaml");
    std::fs::write(&sdl, UNPULLABLE).expect("write sdl");
    let rpc = format!("http://127.0.0.1:{port}");
    let tenant = |args: &[&str]| {
        let out = Command::new(GRIDLEASE)
            .args(args)
            .env("GRIDLEASE_HOME", &home)
            .env("GRIDLEASE_NODE", &rpc)
            .env("GRIDLEASE_FROM", "tenant")
            .env("GRIDLEASE_PASSPHRASE", "devnet")
            .output()
            .expect("run gridlease");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let path = sdl.to_str().expect("utf-8");
    let (code, said) = tenant(&["deploy", path, "--timeout", "60", "--keep-on-failure"]);
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("lease:") && said.contains("registry unreachable: "), "{said}");
    let dseq = said
        .split_whitespace()
        .skip_while(|w| *w != "deployment")
        .nth(1)
        .and_then(|d| d.parse::<u64>().ok())
        .expect("deploy names the deployment");
    let (code, status) = tenant(&["status", &dseq.to_string(), "--output", "json"]);
    assert_eq!(code, Some(0), "{status}");
    let status: Value = serde_json::from_str(&status).expect("json");
    let lease = &status["leases"][0]["status"];
    assert_eq!(lease["phase"], "failed", "{status}");
    let message = lease["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("registry unreachable: ") && message.contains("registry.invalid"),
        "{status}"
    );
    let (code, said) = tenant(&["close", &dseq.to_string()]);
    assert_eq!(code, Some(0), "{said}");

    // Ctrl-C stops the devnet and its workload.
    let _ = Command::new("kill").args(["-INT", &devnet.id().to_string()]).status();
    let stop = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(s)) = devnet.try_wait() {
            break s;
        }
        assert!(Instant::now() < stop, "devnet did not stop");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{status}");
    assert!(model_containers().is_empty(), "{:?}", model_containers());
}
