//! API keys and token budgets: requests without a valid key are refused (401), usage the
//! replica reports is metered per key (streams included, through the usage the gateway asks
//! for), and a key that used its budget is refused (429), all OpenAI-shaped.

use std::collections::BTreeMap;
use std::time::Duration;

use gridlease_gateway::keys::Keys;
use gridlease_gateway::mock::{MockConfig, serve as serve_mock};
use gridlease_gateway::{Gateway, Settings, serve};

const KEY: &str = "sk-alice-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked_metered_and_capped() {
    let mock = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
    let mock_url = format!("http://{}", mock.local_addr().expect("addr"));
    let config = MockConfig { tokens: 10, token_interval: Duration::ZERO, ..MockConfig::default() };
    tokio::spawn(serve_mock(mock, config, std::future::pending()));
    let keys = Keys::from_toml(&format!(
        "[[key]]\nname = \"alice\"\nkey = \"{KEY}\"\nbudget_tokens = 40\n"
    ))
    .expect("keys");
    let routes = BTreeMap::from([("llama".to_string(), vec![("r0".to_string(), mock_url)])]);
    let gateway =
        Gateway::with_keys(routes, Settings { max_attempts: 1, ..Settings::default() }, keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, gateway, std::future::pending()));
    let http = reqwest::Client::new();
    let chat = |stream: bool, key: Option<&str>| {
        let mut r = http
            .post(format!("{url}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"model":"llama","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };

    for key in [None, Some("sk-not-a-key-at-all")] {
        let r = chat(false, key).await.expect("send");
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
    }
    // Each answer reports about 10 completion tokens plus the prompt: the budget of 40 lasts
    // for a few requests, a stream's usage counts too, then the key is refused.
    let mut answered = 0;
    let refused = loop {
        let r = chat(answered % 2 == 1, Some(KEY)).await.expect("send");
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 200);
        let text = r.text().await.expect("body");
        assert!(text.contains("usage"), "{text}");
        answered += 1;
        assert!(answered < 10, "the budget never ran out");
    };
    assert!(answered >= 2, "both a plain answer and a stream were metered first");
    let v: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(v["error"]["code"], "insufficient_quota", "{v}");
    let metrics =
        http.get(format!("{url}/metrics")).send().await.expect("m").text().await.expect("t");
    let tokens: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("gridlease_gateway_tokens_total{route=\"llama\",key=\"alice\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("tokens metered for alice");
    assert!(tokens >= 40, "{metrics}");
    assert!(
        metrics.contains("gridlease_gateway_key_budget_remaining_tokens{key=\"alice\"} 0"),
        "{metrics}"
    );
}
