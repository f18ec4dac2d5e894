//! Three mock replicas behind the gateway under steady load; one is killed mid-run: no
//! non-streaming request fails (they are retried on another replica before the first byte),
//! streams in flight on the killed replica end with an error event, the replica is ejected,
//! and it is re-admitted once it answers again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gridlease_gateway::balancer::EjectionPolicy;
use gridlease_gateway::mock::{MockConfig, serve as serve_mock};
use gridlease_gateway::{Gateway, Settings, Timeouts, serve};
use tokio::sync::oneshot;

struct Mock {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_mock(addr: SocketAddr, name: &str, token_interval: Duration) -> Mock {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind mock");
    let addr = listener.local_addr().expect("addr");
    let config = MockConfig {
        name: name.into(),
        latency: Duration::from_millis(2),
        token_interval,
        tokens: 20,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_mock(listener, config, async move {
        let _ = stopped.await;
    }));
    Mock { addr, stop: Some(stop), task }
}

impl Mock {
    /// Drops its listener and every connection at once.
    async fn kill(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn start_gateway(replicas: &[SocketAddr]) -> (String, Arc<Gateway>) {
    let mut routes = BTreeMap::new();
    let list = replicas
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("r{i}"), format!("http://{a}")))
        .collect();
    routes.insert("llama".to_string(), list);
    let settings = Settings {
        timeouts: Timeouts {
            first_byte: Duration::from_secs(5),
            between_tokens: Duration::from_secs(2),
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(200),
            client_headers: Duration::from_millis(300),
            ..Timeouts::default()
        },
        ejection: EjectionPolicy {
            failures_to_eject: 1,
            base_ejection: Duration::from_millis(500),
            ..EjectionPolicy::default()
        },
        max_attempts: 3,
    };
    let gateway = Gateway::new(routes, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind gateway");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, gateway.clone(), std::future::pending()));
    (url, gateway)
}

async fn metrics_of(http: &reqwest::Client, url: &str) -> String {
    let r = http.get(format!("{url}/metrics")).send().await.expect("metrics");
    r.text().await.expect("metrics text")
}

fn replica_ejected(metrics: &str, replica: &str) -> Option<bool> {
    let needle =
        format!("gridlease_gateway_replica_ejected{{route=\"llama\",replica=\"{replica}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&needle)).map(|v| v.trim() == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_request() {
    let mut mocks = Vec::new();
    for i in 0..3 {
        let slow = Duration::from_millis(100);
        mocks.push(start_mock("127.0.0.1:0".parse().expect("addr"), &format!("r{i}"), slow).await);
    }
    let addrs: Vec<SocketAddr> = mocks.iter().map(|m| m.addr).collect();
    let (url, _gateway) = start_gateway(&addrs).await;
    let http = reqwest::Client::new();

    // Streams first, so some run on r1 when it dies (20 tokens at 100 ms: 2 s each).
    let mut streams = Vec::new();
    for _ in 0..9 {
        let (http, url) = (http.clone(), url.clone());
        streams.push(tokio::spawn(async move {
            let body =
                r#"{"model":"llama","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
            let resp = http
                .post(format!("{url}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("stream request");
            assert_eq!(resp.status(), 200);
            let replica =
                resp.headers()["x-gridlease-replica"].to_str().expect("ascii").to_string();
            let mut text = String::new();
            let mut chunks = resp.bytes_stream();
            while let Some(c) = chunks.next().await {
                text.push_str(&String::from_utf8_lossy(
                    &c.expect("the gateway never cuts a stream"),
                ));
            }
            (replica, text)
        }));
    }

    // Steady non-streaming load from 8 workers for 3 s; r1 dies after 1 s.
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, ok, failed) = (http.clone(), url.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let body = r#"{"model":"llama","messages":[{"role":"user","content":"hi"}]}"#;
                let r = http
                    .post(format!("{url}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let good = match r {
                    Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t.contains("usage")),
                    _ => false,
                };
                let counter = if good { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead = mocks[1].addr;
    mocks[1].kill().await;
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "non-streaming requests failed");
    assert!(ok.load(Ordering::Relaxed) > 100, "too little load: {}", ok.load(Ordering::Relaxed));

    // Streams on r1 ended with an error event; the others ended with [DONE].
    let mut broken = 0;
    for s in streams {
        let (replica, text) = s.await.expect("stream task");
        if replica == "r1" {
            assert!(
                text.contains("\"error\""),
                "a stream on the killed replica ended silently: {text}"
            );
            assert!(!text.contains("[DONE]"));
            broken += 1;
        } else {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{replica}: {text}");
            assert!(text.contains("\"usage\""), "usage is asked for on streams");
        }
    }
    assert!(broken > 0, "no stream ran on the killed replica");

    // Ejected while dead; back in once it answers again on the same address.
    let metrics = metrics_of(&http, &url).await;
    assert_eq!(replica_ejected(&metrics, "r1"), Some(true), "{metrics}");
    let _back = start_mock(dead, "r1", Duration::ZERO).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if replica_ejected(&metrics_of(&http, &url).await, "r1") == Some(false) {
            break;
        }
        assert!(Instant::now() < deadline, "r1 was not re-admitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_openai_shaped() {
    let mock = start_mock("127.0.0.1:0".parse().expect("addr"), "r0", Duration::ZERO).await;
    let (url, _gateway) = start_gateway(&[mock.addr]).await;
    let http = reqwest::Client::new();
    let cases = [
        ("{not json", 400, "invalid_json"),
        (r#"{"messages":[]}"#, 400, "missing_model"),
        (r#"{"model":"gpt-9","messages":[]}"#, 404, "model_not_found"),
    ];
    for (body, status, code) in cases {
        let r =
            http.post(format!("{url}/v1/chat/completions")).body(body).send().await.expect("send");
        assert_eq!(r.status(), status, "{body}");
        assert!(r.headers().contains_key("x-request-id"));
        let v: serde_json::Value = r.json().await.expect("json error");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let models: serde_json::Value = http
        .get(format!("{url}/v1/models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["data"][0]["id"], "llama");
    // The only replica gone: a clear 5xx, not a hang.
    let mut mock = mock;
    mock.kill().await;
    let r = http
        .post(format!("{url}/v1/embeddings"))
        .body(r#"{"model":"llama","input":"x"}"#)
        .send()
        .await
        .expect("send");
    assert!(r.status().is_server_error());
    let v: serde_json::Value = r.json().await.expect("json error");
    assert!(
        ["upstream_failed", "no_healthy_replica"]
            .contains(&v["error"]["code"].as_str().unwrap_or("")),
        "{v}"
    );
}

/// A client that opens a connection and never finishes its headers (slowloris) loses it after
/// `client_headers`, so slow clients cannot pile up connections up to the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_slow_client_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = start_mock("127.0.0.1:0".parse().expect("addr"), "r0", Duration::ZERO).await;
    let (url, _gateway) = start_gateway(&[mock.addr]).await;
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the gateway kept a connection with unfinished headers open");
    assert!(started.elapsed() < Duration::from_secs(3));
}
