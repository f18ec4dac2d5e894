//! `gridlease-demo-llm`: a DEMO server that speaks the OpenAI HTTP API but runs no model. It
//! answers chat and text completions by echoing the prompt back, deterministically, so that
//! devnet and the tests have a real workload to deploy, reach and measure. Listens on `$PORT`
//! (or `--port N`), on all interfaces.
//!
//! Routes: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (with `"stream":
//! true`, server-sent events ending in `data: [DONE]`), `POST /v1/completions`.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The one model this server pretends to serve.
const MODEL: &str = "gridlease-demo-echo";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn bad(message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error" } });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The demo's "generation": the prompt, prefixed so nobody mistakes it for a model's answer.
fn reply_to(prompt: &str) -> String {
    format!("[demo model, no inference] you said: {prompt}")
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{ "id": MODEL, "object": "model", "created": 0, "owned_by": "gridlease-demo" }],
    }))
}

async fn chat(body: Result<Json<Value>, axum::extract::rejection::JsonRejection>) -> Response {
    let Ok(Json(req)) = body else { return bad("the body must be a JSON object") };
    let Some(messages) = req["messages"].as_array() else {
        return bad("`messages` must be an array of {role, content}");
    };
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    let prompt = last.and_then(|m| m["content"].as_str()).unwrap_or("");
    let text = reply_to(prompt);
    let id = format!("chatcmpl-demo-{}", now());
    if req["stream"].as_bool() == Some(true) {
        let mut events = String::new();
        for (i, word) in text.split_inclusive(' ').enumerate() {
            let delta = if i == 0 {
                json!({ "role": "assistant", "content": word })
            } else {
                json!({ "content": word })
            };
            let chunk = json!({ "id": id, "object": "chat.completion.chunk", "created": now(), "model": MODEL,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] });
            events.push_str(&format!("data: {chunk}\n\n"));
        }
        let end = json!({ "id": id, "object": "chat.completion.chunk", "created": now(), "model": MODEL,
            "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] });
        events.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        return ([("content-type", "text/event-stream")], events).into_response();
    }
    let words = text.split_whitespace().count();
    Json(json!({
        "id": id, "object": "chat.completion", "created": now(), "model": MODEL,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": prompt.split_whitespace().count(), "completion_tokens": words,
                   "total_tokens": prompt.split_whitespace().count() + words },
    }))
    .into_response()
}

async fn completions(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else { return bad("the body must be a JSON object") };
    let Some(prompt) = req["prompt"].as_str() else { return bad("`prompt` must be a string") };
    Json(json!({
        "id": format!("cmpl-demo-{}", now()), "object": "text_completion", "created": now(), "model": MODEL,
        "choices": [{ "index": 0, "text": reply_to(prompt), "finish_reason": "stop" }],
    }))
    .into_response()
}

fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().collect();
    let from_flag = args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).cloned();
    let text = from_flag.or_else(|| std::env::var("PORT").ok()).unwrap_or_else(|| "8080".into());
    text.parse().map_err(|_| format!("port `{text}` is not a number"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let port = match port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions));
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on port {port}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    println!("demo model server (echo, no inference) listening on port {port}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
