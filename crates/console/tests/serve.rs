//! The console's HTTP server on its own (no node behind it: the pages it can draw without
//! one are enough): what it answers, and that slow clients cannot hold its connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gridlease_console::index::Cadence;
use gridlease_console::reference::ReferencePrices;
use gridlease_console::{Running, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

async fn console() -> Running {
    let settings = Settings {
        // Nothing listens there: the console keeps retrying the node in the background.
        node: "http://127.0.0.1:9".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        reference: ReferencePrices::defaults(),
        cadence: Cadence::default(),
        header_timeout: HEADER_TIMEOUT,
    };
    gridlease_console::start(settings).await.expect("start the console")
}

/// Reads until the console closes the connection; how long that took, and what it sent.
async fn until_closed(s: &mut tokio::net::TcpStream) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the console kept the connection open for 10 s");
    (started.elapsed(), buf)
}

#[tokio::test]
async fn the_console_serves_its_assets_and_health_with_its_security_headers() {
    let running = console().await;
    let base = format!("http://{}", running.addr);
    let css = reqwest::get(format!("{base}/assets/console.css")).await.expect("get the stylesheet");
    assert_eq!(css.status(), 200);
    let csp = css.headers().get("content-security-policy").expect("a CSP header");
    assert!(csp.to_str().expect("ascii").contains("script-src 'self'"), "{csp:?}");
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
    assert!(css.text().await.expect("body").contains("body"));
    let health = reqwest::get(format!("{base}/health")).await.expect("get /health");
    assert_eq!(health.status(), 200);
    let missing = reqwest::get(format!("{base}/no/such/page")).await.expect("get a missing page");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn attack_a_client_that_never_finishes_its_headers_is_cut_off() {
    let running = console().await;
    let mut s = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let (took, _) = until_closed(&mut s).await;
    assert!(took >= HEADER_TIMEOUT / 2, "cut after {took:?}, before the timeout");
    assert!(took < HEADER_TIMEOUT * 4, "cut after {took:?}");

    // One that connects and says nothing is cut off too.
    let mut silent = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
    let (took, sent) = until_closed(&mut silent).await;
    assert!(took < HEADER_TIMEOUT * 4, "cut after {took:?}");
    assert!(
        sent.is_empty() || sent.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );

    // The server still answers after both.
    let health =
        reqwest::get(format!("http://{}/health", running.addr)).await.expect("get /health");
    assert_eq!(health.status(), 200);
}
