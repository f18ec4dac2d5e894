//! A mock OpenAI upstream for tests and benchmarks (no model): `/v1/models`,
//! `/v1/chat/completions` and `/v1/completions` (streamed as SSE or not) and
//! `/v1/embeddings`, with a configurable latency before the answer and a token rate. Stopping
//! it drops every connection at once, as a killed process would.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;

use crate::relay::Answer;

/// How the mock answers.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Reported as the model and in the content (tells replicas apart).
    pub name: String,
    /// Delay before the answer (or the first token) starts.
    pub latency: Duration,
    /// Delay between two streamed tokens.
    pub token_interval: Duration,
    /// Tokens in every completion.
    pub tokens: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            name: "mock".into(),
            latency: Duration::ZERO,
            token_interval: Duration::ZERO,
            tokens: 16,
        }
    }
}

/// A streamed answer: chunks from a channel.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// Either a whole body or a stream.
pub type MockBody = Answer<ChannelBody>;

fn answer(status: StatusCode, body: serde_json::Value) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn usage(prompt: usize, completion: usize) -> serde_json::Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

async fn handle(
    config: Arc<MockConfig>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::GET && path == "/v1/models" {
        let models = json!({"object": "list", "data": [{"id": config.name, "object": "model", "created": 0, "owned_by": "mock"}]});
        return Ok(answer(StatusCode::OK, models));
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "unreadable body"}}),
        ));
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(answer(StatusCode::BAD_REQUEST, json!({"error": {"message": "bad json"}})));
    };
    let model = doc["model"].as_str().unwrap_or("mock").to_string();
    let prompt = body.len() / 4;
    tokio::time::sleep(config.latency).await;
    match (method, path.as_str()) {
        (Method::POST, "/v1/embeddings") => Ok(answer(
            StatusCode::OK,
            json!({"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125, 1.0]}], "usage": usage(prompt, 0)}),
        )),
        (Method::POST, "/v1/chat/completions" | "/v1/completions") => {
            let chat = path == "/v1/chat/completions";
            if doc["stream"].as_bool() == Some(true) {
                let with_usage = doc["stream_options"]["include_usage"].as_bool() == Some(true);
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(stream_tokens(config.clone(), tx, model, chat, with_usage, prompt));
                let mut r = Response::new(MockBody::Stream(ChannelBody(rx)));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                Ok(r)
            } else {
                let text: String =
                    (0..config.tokens).map(|i| format!("{}-{i} ", config.name)).collect();
                let choice = if chat {
                    json!({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}})
                } else {
                    json!({"index": 0, "finish_reason": "stop", "text": text})
                };
                let object = if chat { "chat.completion" } else { "text_completion" };
                Ok(answer(
                    StatusCode::OK,
                    json!({"id": "mock-1", "object": object, "created": 0, "model": model, "choices": [choice], "usage": usage(prompt, config.tokens)}),
                ))
            }
        }
        _ => Ok(answer(StatusCode::NOT_FOUND, json!({"error": {"message": "no such route"}}))),
    }
}

async fn stream_tokens(
    config: Arc<MockConfig>,
    tx: mpsc::Sender<Bytes>,
    model: String,
    chat: bool,
    with_usage: bool,
    prompt: usize,
) {
    let object = if chat { "chat.completion.chunk" } else { "text_completion" };
    for i in 0..config.tokens {
        if i > 0 {
            tokio::time::sleep(config.token_interval).await;
        }
        let token = format!("{}-{i} ", config.name);
        let choice = if chat {
            json!({"index": 0, "delta": {"content": token}, "finish_reason": null})
        } else {
            json!({"index": 0, "text": token, "finish_reason": null})
        };
        let chunk = json!({"id": "mock-1", "object": object, "created": 0, "model": model, "choices": [choice]});
        if tx.send(Bytes::from(format!("data: {chunk}\n\n"))).await.is_err() {
            return;
        }
    }
    if with_usage {
        let chunk = json!({"id": "mock-1", "object": object, "created": 0, "model": model, "choices": [], "usage": usage(prompt, config.tokens)});
        let _ = tx.send(Bytes::from(format!("data: {chunk}\n\n"))).await;
    }
    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
}

/// Serves the mock on `listener` until `shutdown` resolves, then drops every connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config = Arc::new(config);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let config = config.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(config.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

impl std::fmt::Debug for ChannelBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBody").finish_non_exhaustive()
    }
}
