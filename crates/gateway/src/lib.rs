//! The inference gateway: one OpenAI-compatible endpoint in front of several replicas of the
//! same model, routing each request by its `model` to a route's replicas.
//!
//! Routing is power of two choices on outstanding requests (`balancer`); a replica that fails
//! is ejected for a growing time and comes back through a probe (passive ejection and a
//! circuit breaker), and active probes re-admit it as soon as it answers again. A request is
//! retried on another replica until its first byte reaches the client; a non-streaming answer
//! is read whole first (so any failure is still retryable), a streamed one is passed through
//! frame by frame and ends with an error event if it breaks (`relay`).
#![forbid(unsafe_code)]

pub mod balancer;
pub mod discovery;
pub mod keys;
pub mod metrics;
pub mod mock;
pub mod openai;
pub mod relay;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use balancer::{EjectionPolicy, Pool, Replica};
use keys::{KeyRefusal, Keys};
use metrics::Metrics;
use openai::Refusal;
use relay::{GatewayBody, Relay, RelayTo};

/// Largest request body the gateway reads.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Most client connections open at once.
pub const MAX_CONNECTIONS: usize = 8192;
/// Largest non-streamed answer it reads from a replica.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The fields of a request body the gateway routes on.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Deadlines of one request.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to a replica to its answer's head (and, when not streaming,
    /// its whole body).
    pub first_byte: Duration,
    /// Between two frames of a streamed answer.
    pub between_tokens: Duration,
    /// Active health probes: how often, and how long one may take.
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// Time a client has to send a request's headers (slow clients cannot hold connections).
    pub client_headers: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(60),
            between_tokens: Duration::from_secs(30),
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            client_headers: Duration::from_secs(10),
        }
    }
}

/// How the gateway runs.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub timeouts: Timeouts,
    pub ejection: EjectionPolicy,
    /// Replicas one request may try (at least 1).
    pub max_attempts: usize,
}

/// The gateway's shared state.
pub struct Gateway {
    routes: BTreeMap<String, Arc<Pool>>,
    client: Client<HttpConnector, Full<Bytes>>,
    settings: Settings,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    next_id: AtomicU64,
}

impl Gateway {
    /// A gateway over `routes`: model name → replicas as `(name, base URL)`.
    pub fn new(routes: BTreeMap<String, Vec<(String, String)>>, settings: Settings) -> Arc<Self> {
        Self::with_keys(routes, settings, Keys::open())
    }

    /// [`Gateway::new`] that admits only `keys` (and meters their tokens).
    pub fn with_keys(
        routes: BTreeMap<String, Vec<(String, String)>>,
        settings: Settings,
        keys: Keys,
    ) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeouts.connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let routes = routes
            .into_iter()
            .map(|(name, replicas)| {
                let replicas =
                    replicas.into_iter().map(|(n, url)| Arc::new(Replica::new(n, url))).collect();
                (name, Arc::new(Pool::new(replicas, settings.ejection.clone())))
            })
            .collect();
        Arc::new(Gateway {
            routes,
            client,
            settings,
            metrics: Arc::default(),
            keys: Arc::new(keys),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn pool(&self, route: &str) -> Option<&Arc<Pool>> {
        self.routes.get(route)
    }

    fn request_id(&self, req: &Request<Incoming>) -> HeaderValue {
        if let Some(v) = req.headers().get("x-request-id")
            && v.len() <= 128
        {
            return v.clone();
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("gl-{n:016x}")).unwrap_or(HeaderValue::from_static("gl"))
    }

    /// Answers one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<GatewayBody>, Infallible> {
        let id = self.request_id(&req);
        let path = req.uri().path().to_string();
        let account = if path.starts_with("/v1/") {
            let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            match self.keys.admit(auth) {
                Ok(a) => a,
                Err(e) => {
                    let who = match &e {
                        KeyRefusal::Exhausted { name, .. } => name.clone(),
                        _ => String::new(),
                    };
                    let why = match e {
                        KeyRefusal::Missing => Refusal::BadKey(
                            "this gateway needs an API key: Authorization: Bearer KEY".into(),
                        ),
                        KeyRefusal::Unknown => {
                            Refusal::BadKey("the API key is not valid here".into())
                        }
                        KeyRefusal::Exhausted { name, budget } => Refusal::QuotaExhausted(format!(
                            "key `{name}` used its budget of {budget} tokens"
                        )),
                    };
                    self.metrics.finished("", "", why.code(), Duration::ZERO);
                    self.metrics.key_finished(&who, why.code(), Duration::ZERO);
                    return Ok(refusal(&why, &id));
                }
            }
        } else {
            String::new()
        };
        let answer = match (req.method(), path.as_str()) {
            (&Method::GET, "/v1/models") => {
                let body = openai::model_list(self.routes.keys().map(String::as_str));
                json(StatusCode::OK, body, &id)
            }
            (&Method::GET, "/health") => json(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec(), &id),
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(GatewayBody::full(
                    self.metrics.render(self.routes.iter(), &self.keys),
                ));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            (&Method::POST, "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings") => {
                match self.proxy(req, &path, &id, account.clone()).await {
                    Ok(r) => r,
                    Err((route, e)) => {
                        self.metrics.finished(&route, "", e.code(), Duration::ZERO);
                        self.metrics.key_finished(&account, e.code(), Duration::ZERO);
                        refusal(&e, &id)
                    }
                }
            }
            _ => refusal(&Refusal::NotFound(format!("{} {path}", req.method())), &id),
        };
        Ok(answer)
    }

    async fn proxy(
        self: &Arc<Self>,
        req: Request<Incoming>,
        path: &str,
        id: &HeaderValue,
        account: String,
    ) -> Result<Response<GatewayBody>, (String, Refusal)> {
        let started = Instant::now();
        let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Err((String::new(), Refusal::TooLarge(MAX_REQUEST_BYTES))),
        };
        // Only `model` and `stream` matter here: read them without building the document.
        let peek: Peek<'_> = serde_json::from_slice(&body)
            .map_err(|e| (String::new(), Refusal::BadJson(e.to_string())))?;
        let Some(model) = peek.model.map(|m| m.into_owned()) else {
            return Err((String::new(), Refusal::MissingModel));
        };
        let Some(pool) = self.routes.get(&model).cloned() else {
            return Err((String::new(), Refusal::UnknownModel(model)));
        };
        let stream = peek.stream == Some(true);
        let body = if stream {
            // Usage comes back on streams only when asked for: metering needs it.
            let mut doc: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| (model.clone(), Refusal::BadJson(e.to_string())))?;
            if let Some(fields) = doc.as_object_mut() {
                let options =
                    fields.entry("stream_options").or_insert_with(|| serde_json::json!({}));
                if let Some(o) = options.as_object_mut() {
                    o.insert("include_usage".into(), serde_json::Value::Bool(true));
                }
            }
            Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
        } else {
            body
        };
        let attempts = self.settings.max_attempts.max(1);
        let mut tried = Vec::new();
        let mut last = Refusal::NoHealthyReplica(model.clone());
        for _ in 0..attempts {
            let Some(lease) = pool.pick(&tried) else { break };
            tried.push(lease.replica.clone());
            let upstream = match Request::post(format!("{}{path}", lease.replica.url))
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("x-request-id", id.clone())
                .body(Full::new(body.clone()))
            {
                Ok(r) => r,
                Err(e) => {
                    last = Refusal::UpstreamFailed(format!("bad replica URL: {e}"));
                    continue;
                }
            };
            let deadline = self.settings.timeouts.first_byte;
            let answer = match tokio::time::timeout(deadline, self.client.request(upstream)).await {
                Err(_) => {
                    pool.failure(&lease.replica);
                    last =
                        Refusal::UpstreamTimeout(format!("{} gave no answer", lease.replica.name));
                    continue;
                }
                Ok(Err(e)) => {
                    pool.failure(&lease.replica);
                    last = Refusal::UpstreamFailed(format!("{}: {e}", lease.replica.name));
                    continue;
                }
                Ok(Ok(a)) => a,
            };
            let status = answer.status();
            if status.is_server_error() {
                pool.failure(&lease.replica);
                last = Refusal::UpstreamFailed(format!("{} answered {status}", lease.replica.name));
                continue;
            }
            let content_type = answer.headers().get(http::header::CONTENT_TYPE).cloned();
            let replica_name = HeaderValue::from_str(&lease.replica.name).ok();
            let body = if stream && status.is_success() {
                let to = RelayTo {
                    pool: pool.clone(),
                    metrics: self.metrics.clone(),
                    keys: self.keys.clone(),
                    route: model.clone(),
                    account: account.clone(),
                    started,
                };
                let between = self.settings.timeouts.between_tokens;
                GatewayBody::Stream(Box::new(Relay::new(answer.into_body(), between, lease, to)))
            } else {
                let read = Limited::new(answer.into_body(), MAX_ANSWER_BYTES).collect();
                match tokio::time::timeout(deadline, read).await {
                    Ok(Ok(b)) => {
                        let b = b.to_bytes();
                        pool.success(&lease.replica);
                        self.metrics.finished(&model, &lease.replica.name, "ok", started.elapsed());
                        self.metrics.key_finished(&account, "ok", started.elapsed());
                        if let Some(tokens) = keys::total_tokens(&b) {
                            self.keys.charge(&account, tokens);
                            self.metrics.tokens(&model, &account, tokens);
                        }
                        GatewayBody::full(b)
                    }
                    Ok(Err(e)) => {
                        pool.failure(&lease.replica);
                        last = Refusal::UpstreamFailed(format!("{}: {e}", lease.replica.name));
                        continue;
                    }
                    Err(_) => {
                        pool.failure(&lease.replica);
                        last = Refusal::UpstreamTimeout(format!("{} stalled", lease.replica.name));
                        continue;
                    }
                }
            };
            let mut r = Response::new(body);
            *r.status_mut() = status;
            if let Some(ct) = content_type {
                r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
            }
            r.headers_mut().insert("x-request-id", id.clone());
            if let Some(name) = replica_name {
                r.headers_mut().insert("x-gridlease-replica", name);
            }
            return Ok(r);
        }
        Err((model, last))
    }

    /// Probes every replica every `probe_interval` (`GET /v1/models`): an answer re-admits an
    /// ejected replica, a failure counts like a failed request.
    pub async fn probe_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.settings.timeouts.probe_interval).await;
            for pool in self.routes.values() {
                for r in pool.replicas() {
                    let ok = self.probe(&r).await;
                    pool.probed(&r, ok);
                }
            }
        }
    }

    async fn probe(&self, r: &Replica) -> bool {
        let Ok(req) = Request::get(format!("{}/v1/models", r.url)).body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match tokio::time::timeout(self.settings.timeouts.probe_timeout, self.client.request(req))
            .await
        {
            Ok(Ok(a)) => a.status().is_success(),
            _ => false,
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>, id: &HeaderValue) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert("x-request-id", id.clone());
    r
}

fn refusal(e: &Refusal, id: &HeaderValue) -> Response<GatewayBody> {
    let mut r = json(e.status(), e.body(), id);
    *r.status_mut() = e.status();
    r
}

/// Serves the gateway on `listener` until `shutdown` resolves; probes run alongside.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let probes = tokio::spawn(gateway.clone().probe_forever());
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        // Past the cap, new clients wait in the kernel's backlog until a connection closes.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "gateway", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let headers = gateway.settings.timeouts.client_headers;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| gw.clone().handle(req));
            // A client that never finishes its headers loses its connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(headers)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
    probes.abort();
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
