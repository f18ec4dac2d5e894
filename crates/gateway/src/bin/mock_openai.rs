//! `gridlease-mock-openai`: the mock OpenAI upstream (no model) for tests and benchmarks.

use std::time::Duration;

use clap::Parser;
use gridlease_gateway::mock::{MockConfig, serve};

#[derive(Parser)]
#[command(name = "gridlease-mock-openai", about = "A mock OpenAI-compatible upstream (no model)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Name in answers and tokens.
    #[arg(long, default_value = "mock")]
    name: String,
    /// Milliseconds before an answer starts.
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// Streamed tokens per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    tokens_per_second: f64,
    /// Tokens per completion.
    #[arg(long, default_value_t = 16)]
    tokens: usize,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let listener = match tokio::net::TcpListener::bind(a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", a.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let token_interval = if a.tokens_per_second > 0.0 {
        Duration::from_secs_f64(1.0 / a.tokens_per_second)
    } else {
        Duration::ZERO
    };
    let config = MockConfig {
        name: a.name,
        latency: Duration::from_secs_f64(a.latency_ms.max(0.0) / 1000.0),
        token_interval,
        tokens: a.tokens,
    };
    println!("mock OpenAI upstream on http://{}", a.listen);
    serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    std::process::ExitCode::SUCCESS
}
