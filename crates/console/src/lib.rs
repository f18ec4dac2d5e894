//! The web console: the market at a glance (GPU models on offer, free and leased units,
//! prices next to a reference cloud price, their history), providers, deployments with their
//! auctions and escrow, leases with their health, and the chain's blocks, updating live. It
//! reads the chain over the node's RPC and the providers' public status; pages are HTML drawn
//! on the server, with one small script for live updates, all served by this binary.
#![forbid(unsafe_code)]

pub mod chart;
pub mod html;
pub mod index;
pub mod journal;
pub mod live;
mod pages;
pub mod reference;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gridlease_client::Client;
use tokio::sync::{Semaphore, watch};

use crate::html::{Section, esc};
use crate::index::{Cadence, Snapshot};
use crate::live::Live;
use crate::reference::ReferencePrices;

/// Requests served at once; more are answered 503 at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Connections held at once; more wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's headers (also how long an idle
/// keep-alive connection is kept) before its connection is cut.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run a console.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The node's RPC.
    pub node: String,
    pub listen: SocketAddr,
    pub reference: ReferencePrices,
    pub cadence: Cadence,
    /// How long a client may take to send a request's headers ([`HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
}

/// What every page handler reads.
#[derive(Clone, Debug)]
pub(crate) struct Console {
    pub client: Client,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub live: Live,
    in_flight: Arc<Semaphore>,
}

impl Console {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// The latest height known: the live stream's, or the snapshot's.
    pub fn height(&self) -> u64 {
        (*self.live.height.borrow()).max(self.snapshot.borrow().height)
    }
}

/// A running console.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `settings.listen` and serves the console in a task.
pub async fn start(settings: Settings) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let client = Client::new(&settings.node);
    let live = Live::start(client.clone());
    let reference = Arc::new(settings.reference);
    let snapshot =
        index::start(client.clone(), Arc::clone(&reference), settings.cadence, live.height.clone());
    let console =
        Console { client, snapshot, live, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) };
    let app = router(console);
    let task = tokio::spawn(serve(listener, app, settings.header_timeout));
    Ok(Running { addr, task })
}

/// Accepts connections forever, at most [`MAX_CONNECTIONS`] at once, and serves `app` on
/// each; a client that does not finish a request's headers in `header_timeout` is cut off,
/// so slow clients cannot hold connections open for nothing.
async fn serve(listener: tokio::net::TcpListener, app: Router, header_timeout: Duration) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(target: "console.serve", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::market::page))
        .route("/providers", get(pages::providers::list))
        .route("/providers/{address}", get(pages::providers::one))
        .route("/accounts/{address}", get(pages::deployments::account))
        .route("/deployments", get(pages::deployments::list))
        .route("/deployments/{owner}/{dseq}", get(pages::deployments::one))
        .route("/leases", get(pages::leases::list))
        .route("/leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}", get(pages::leases::one))
        .route("/blocks", get(pages::blocks::list))
        .route("/blocks/{height}", get(pages::blocks::one))
        .route("/search", get(pages::search::search))
        .route("/events", get(events))
        .route("/health", get(|| async { "ok" }))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// Security headers on every answer, and the in-flight limit.
async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    let Ok(_permit) = Arc::clone(&console.in_flight).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the console is busy: retry in a moment")
            .into_response();
    };
    let mut response = next.run(request).await;
    if let Some(e) = response.extensions().get::<PageError>().cloned() {
        response = e.render(console.height());
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn events(State(console): State<Console>) -> Response {
    match console.live.browser_stream() {
        Some(sse) => sse.into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "too many live pages are open: retry later")
            .into_response(),
    }
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=300")], body)
        .into_response()
}

async fn not_found() -> PageError {
    PageError::NotFound("no such page".into())
}

/// Why a page cannot be shown. A handler returns it; `guard` draws its page (with the
/// latest height in the header).
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the node could not answer: {0}")]
    Node(String),
}

impl From<gridlease_client::ClientError> for PageError {
    fn from(e: gridlease_client::ClientError) -> Self {
        match e {
            gridlease_client::ClientError::Refused { status: 400, message, .. } => {
                PageError::BadRequest(message)
            }
            gridlease_client::ClientError::Refused { status: 404, message, .. } => {
                PageError::NotFound(message)
            }
            other => PageError::Node(other.to_string()),
        }
    }
}

impl PageError {
    pub fn render(&self, height: u64) -> Response {
        let (status, title) = match self {
            PageError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            PageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            PageError::Node(_) => (StatusCode::BAD_GATEWAY, "The node did not answer"),
        };
        let body = format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back to the market</a></p>",
            esc(&self.to_string())
        );
        (status, html_response(html::page(title, Section::None, height, &body))).into_response()
    }
}

/// An HTML answer.
pub(crate) fn html_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

impl IntoResponse for PageError {
    /// A placeholder carrying the error, which `guard` replaces with the error page.
    fn into_response(self) -> Response {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
