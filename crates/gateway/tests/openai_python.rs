//! The official `openai` Python client (from PyPI) against the gateway, streaming and not:
//! `tests/openai_client.py` over a mock replica. `GRIDLEASE_PYTHON` names the interpreter
//! (default `python3`); `.ci/run` installs the client in a virtual environment. Without the
//! client the test says so and passes, except under CI, where it fails.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use gridlease_gateway::mock::{MockConfig, serve as serve_mock};
use gridlease_gateway::{Gateway, Settings, serve};

fn python() -> String {
    std::env::var("GRIDLEASE_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_works() {
    let has_client = Command::new(python())
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_client {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the openai client test: {} cannot import openai (.ci/run installs it)",
            python()
        );
        eprintln!("skipped: {} cannot import openai (pip install openai)", python());
        return;
    }
    let mock = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
    let mock_url = format!("http://{}", mock.local_addr().expect("addr"));
    let config =
        MockConfig { tokens: 8, token_interval: Duration::from_millis(2), ..MockConfig::default() };
    tokio::spawn(serve_mock(mock, config, std::future::pending()));
    let routes = BTreeMap::from([("llama".to_string(), vec![("r0".to_string(), mock_url)])]);
    let gateway = Gateway::new(routes, Settings { max_attempts: 2, ..Settings::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, gateway, std::future::pending()));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python()).arg(script).args([&url, "llama"]).output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openai client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}
