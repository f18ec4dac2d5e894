//! The manifest service: HTTPS with mutual TLS. A tenant presents the certificate it
//! registered on chain; only the owner of a lease may send its manifest, read its status and
//! logs, or run a command in it, and the manifest must hash to the deployment's on-chain
//! version. Every refusal is a 401 (who are you), 403 (not yours), 404 (no such lease here),
//! 409 (not now: closed lease, wrong manifest version) or 422 (`manifest_exceeds_lease`: the
//! manifest asks for more than the lease's group spec and winning bid pay for, see
//! [`crate::leased`]) with a JSON reason.
//!
//! Routes: `GET /status` (public: inventory, free resources, recent bid decisions);
//! `GET /decisions/{owner}/{dseq}` (public: its decisions on one deployment's orders, with the
//! reason and the change that would get a bid); both public routes are rate-limited per client
//! address ([`PublicLimiter`]: 429 `rate_limited` past it);
//! `PUT /lease/{owner}/{dseq}/{gseq}/{oseq}/manifest`; `GET .../status`;
//! `GET .../logs?service=S&replica=N&follow=true&tail=100`; `POST .../shell` with
//! `{"service": S, "replica": N, "command": [...]}`; `POST .../attach` with `Upgrade:
//! gridlease-shell` and a [`crate::api::ShellOpen`]: an interactive session (a terminal when
//! asked) over the same mutual-TLS connection, in [`crate::api::ShellFrame`]s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use gridlease_client::{CertState, ClientError, LeaseState};
use gridlease_types::{Address, BidId, GroupSpec, OrderId};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{
    DeploymentDecisions, ErrorBody, ExecOutput, LeaseStatus, LogQuery, PricingSummary,
    ProviderStatus, ShellRequest,
};
use crate::leased::Leased;
use crate::leases;
use crate::manifest::Manifest;
use crate::state::{Provider, lock};
use crate::tls;

/// The client certificate of a connection (DER), if it presented one.
#[derive(Clone, Debug)]
struct PeerCert(Option<Vec<u8>>);

/// The address a connection comes from.
#[derive(Clone, Copy, Debug)]
struct PeerAddr(IpAddr);

/// A token bucket per client address for the public routes, which need no certificate and
/// so are what a stranger can call: `PER_SECOND` requests a second, bursts of `BURST`; at
/// most `ADDRESSES` addresses are tracked (the fullest buckets are forgotten first, which
/// only ever lets a forgotten address start afresh with a full bucket).
#[derive(Debug, Default)]
pub struct PublicLimiter {
    buckets: std::sync::Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl PublicLimiter {
    pub const PER_SECOND: f64 = 5.0;
    pub const BURST: f64 = 20.0;
    const ADDRESSES: usize = 4096;

    /// Takes one request's token for `ip`, or says how long until one is there.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= Self::ADDRESSES && !buckets.contains_key(&ip) {
            // Forget the addresses that have been quiet longest (their buckets are full).
            let mut by_age: Vec<(IpAddr, Instant)> =
                buckets.iter().map(|(a, (_, t))| (*a, *t)).collect();
            by_age.sort_by_key(|(_, t)| *t);
            for (a, _) in by_age.into_iter().take(Self::ADDRESSES / 4) {
                buckets.remove(&a);
            }
        }
        let (tokens, last) = buckets.entry(ip).or_insert((Self::BURST, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * Self::PER_SECOND;
        *tokens = (*tokens + refill).min(Self::BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / Self::PER_SECOND))
        }
    }
}

/// Interactive sessions open per lease: each runs a process in the tenant's container and holds
/// a task and a connection on the provider, so a lease may have at most
/// [`ShellSessions::PER_LEASE`] at once (429 `too_many_sessions` past it).
#[derive(Debug, Default)]
pub struct ShellSessions {
    open: std::sync::Mutex<HashMap<BidId, u32>>,
}

/// One open session; it counts until dropped.
#[derive(Debug)]
pub struct SessionSlot {
    sessions: Arc<ShellSessions>,
    lease: BidId,
}

impl ShellSessions {
    pub const PER_LEASE: u32 = 8;

    /// A slot for one more session of `lease`, or none when it has its fill.
    pub fn take(self: &Arc<Self>, lease: BidId) -> Option<SessionSlot> {
        let mut open = lock(&self.open);
        let n = open.entry(lease).or_insert(0);
        if *n >= Self::PER_LEASE {
            return None;
        }
        *n += 1;
        Some(SessionSlot { sessions: Arc::clone(self), lease })
    }

    pub fn open(&self, lease: &BidId) -> u32 {
        lock(&self.open).get(lease).copied().unwrap_or(0)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.sessions.open);
        if let Some(n) = open.get_mut(&self.lease) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.lease);
            }
        }
    }
}

/// Refuses the request with 429 when the client's address is past its rate.
fn limit(limiter: &PublicLimiter, peer: Option<Extension<PeerAddr>>) -> ApiResult<()> {
    let Some(Extension(PeerAddr(ip))) = peer else { return Ok(()) };
    limiter.take(ip, Instant::now()).map_err(|wait| {
        err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "at most {} requests a second per address to the public routes; retry in {} ms",
                PublicLimiter::PER_SECOND,
                wait.as_millis().max(1)
            ),
        )
    })
}

/// A refusal with its reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { status, code, message: message.into() }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_owned(), message: self.message };
        (self.status, Json(body)).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "chain_unavailable",
            format!("cannot check against the chain: {e}"),
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(p: Arc<Provider>) -> Router {
    Router::new()
        .route("/status", get(provider_status))
        .route("/decisions/{owner}/{dseq}", get(deployment_decisions))
        .route("/lease/{owner}/{dseq}/{gseq}/{oseq}/manifest", put(send_manifest))
        .route("/lease/{owner}/{dseq}/{gseq}/{oseq}/status", get(lease_status))
        .route("/lease/{owner}/{dseq}/{gseq}/{oseq}/logs", get(lease_logs))
        .route("/lease/{owner}/{dseq}/{gseq}/{oseq}/shell", post(lease_shell))
        .route("/lease/{owner}/{dseq}/{gseq}/{oseq}/attach", post(lease_attach))
        .layer(Extension(Arc::new(PublicLimiter::default())))
        .layer(Extension(Arc::new(ShellSessions::default())))
        .with_state(p)
}

/// Accepts TLS connections forever and serves the router on each.
pub async fn serve(
    p: Arc<Provider>,
    listener: TcpListener,
) -> Result<(), crate::error::ProviderError> {
    let acceptor = TlsAcceptor::from(tls::server_config(&p.tls)?);
    let app = router(p);
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "server.accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let service = hyper_util::service::TowerToHyperService::new(
                app.layer(Extension(PeerCert(peer))).layer(Extension(PeerAddr(from.ip()))),
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// What this provider decided on the orders of deployment `owner`/`dseq`, newest first.
async fn deployment_decisions(
    State(p): State<Arc<Provider>>,
    Extension(limiter): Extension<Arc<PublicLimiter>>,
    peer: Option<Extension<PeerAddr>>,
    Path((owner, dseq)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentDecisions>> {
    limit(&limiter, peer)?;
    let owner: Address = owner.parse().map_err(|e| {
        err(StatusCode::BAD_REQUEST, "bad_owner", format!("{owner:?} is not an address: {e}"))
    })?;
    let dseq: u64 = dseq.parse().map_err(|_| {
        err(StatusCode::BAD_REQUEST, "bad_dseq", format!("{dseq:?} is not a deployment sequence"))
    })?;
    let prefix = format!("{owner}/{dseq}/");
    let decisions =
        lock(&p.decisions).iter().rev().filter(|d| d.order.starts_with(&prefix)).cloned().collect();
    Ok(Json(DeploymentDecisions {
        provider: p.address,
        height: p.height.load(Ordering::Relaxed),
        decisions,
    }))
}

async fn provider_status(
    State(p): State<Arc<Provider>>,
    Extension(limiter): Extension<Arc<PublicLimiter>>,
    peer: Option<Extension<PeerAddr>>,
) -> ApiResult<Json<ProviderStatus>> {
    limit(&limiter, peer)?;
    let free = lock(&p.reservations).free();
    let leases = p.leases.summaries().await;
    let recent_decisions = lock(&p.decisions).iter().rev().take(50).cloned().collect();
    let pricing = &p.config.pricing;
    Ok(Json(ProviderStatus {
        address: p.address,
        driver: p.driver.name().to_owned(),
        node: p.config.node.clone(),
        node_connected: p.node_connected.load(Ordering::Relaxed),
        height: p.height.load(Ordering::Relaxed),
        inventory: p.inventory.clone(),
        free,
        pricing: PricingSummary {
            denom: pricing.denom.clone(),
            cpu_per_core: pricing.cpu_per_core.clone(),
            memory_per_gib: pricing.memory_per_gib.clone(),
            storage_per_gib: pricing.storage_per_gib.clone(),
            gpu_default: pricing.gpu_default.clone(),
            gpu: pricing.gpu.clone(),
            script: pricing.script.is_some(),
        },
        leases,
        recent_decisions,
    }))
}

/// The tenant behind a connection: the certificate must be registered and valid on chain
/// under the address in its common name.
async fn tenant(p: &Provider, peer: &PeerCert) -> ApiResult<Address> {
    let der = peer.0.as_ref().ok_or_else(|| {
        err(
            StatusCode::UNAUTHORIZED,
            "no_client_certificate",
            "a client certificate is required: present the certificate you registered on chain",
        )
    })?;
    let owner = tls::owner_of(der)
        .map_err(|e| err(StatusCode::UNAUTHORIZED, "bad_client_certificate", e.to_string()))?;
    // The owner's own certificates only: at most `max_certs_per_owner`, under one key prefix.
    let certs = p.client.certificates(&owner).await?;
    let found =
        certs.iter().find(|c| tls::pem_to_der(c.cert_pem.as_bytes()).is_ok_and(|d| &d == der));
    match found {
        Some(c) if c.is_valid() => Ok(owner),
        Some(c) => {
            let at = match c.state {
                CertState::Revoked { at } => at.to_string(),
                CertState::Valid => "?".to_owned(),
            };
            Err(err(
                StatusCode::UNAUTHORIZED,
                "certificate_revoked",
                format!(
                    "certificate {} of {owner} was revoked at height {at}: create a new one",
                    c.serial
                ),
            ))
        }
        None => Err(err(
            StatusCode::UNAUTHORIZED,
            "certificate_not_registered",
            format!(
                "this client certificate is not registered on chain for {owner}: register it with a cert.create transaction"
            ),
        )),
    }
}

fn lease_id(
    p: &Provider,
    (owner, dseq, gseq, oseq): (String, String, String, String),
) -> ApiResult<BidId> {
    let bad = |what: &str| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_lease_id",
            format!("{what} in the lease path is not valid"),
        )
    };
    let order = OrderId {
        owner: owner.parse().map_err(|_| bad("owner"))?,
        dseq: dseq.parse().map_err(|_| bad("dseq"))?,
        gseq: gseq.parse().map_err(|_| bad("gseq"))?,
        oseq: oseq.parse().map_err(|_| bad("oseq"))?,
    };
    Ok(BidId { order, provider: p.address })
}

/// Checks the tenant owns the lease and that it is active on chain.
async fn authorize(p: &Provider, peer: &PeerCert, id: &BidId) -> ApiResult<()> {
    let who = tenant(p, peer).await?;
    if who != id.order.owner {
        return Err(err(
            StatusCode::FORBIDDEN,
            "not_lease_owner",
            format!("lease {} belongs to another tenant, not {who}", id.order),
        ));
    }
    // One keyed read: the lease itself, never a list.
    let Some(lease) = p.client.lease(id).await? else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "no_such_lease",
            format!("there is no lease {} with this provider", id.order),
        ));
    };
    if let LeaseState::Closed { reason, .. } = lease.state {
        return Err(err(
            StatusCode::CONFLICT,
            "lease_closed",
            format!("lease {} is closed ({reason})", id.order),
        ));
    }
    Ok(())
}

async fn send_manifest(
    State(p): State<Arc<Provider>>,
    Extension(peer): Extension<PeerCert>,
    Path(path): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult<Json<LeaseStatus>> {
    let id = lease_id(&p, path)?;
    authorize(&p, &peer, &id).await?;
    let record = p.client.deployment(&id.order.owner, id.order.dseq).await?.ok_or_else(|| {
        err(StatusCode::NOT_FOUND, "no_such_deployment", "the lease's deployment does not exist")
    })?;
    let got = gridlease_types::hex::encode(&crate::manifest::manifest_hash(&body));
    if !got.eq_ignore_ascii_case(&record.deployment.manifest_hash) {
        return Err(err(
            StatusCode::CONFLICT,
            "manifest_hash_mismatch",
            format!(
                "the manifest hashes to {got}, the deployment's on-chain version is {}: send the manifest of the deployed SDL, or update the deployment first",
                record.deployment.manifest_hash
            ),
        ));
    }
    let group = record.groups.iter().find(|g| g.id.gseq == id.order.gseq).ok_or_else(|| {
        err(StatusCode::NOT_FOUND, "no_such_group", "the lease's group does not exist")
    })?;
    let leased = leased_limits(&p, &id, &group.spec).await?;
    let bad =
        |e: &dyn std::fmt::Display| err(StatusCode::BAD_REQUEST, "manifest_refused", e.to_string());
    let manifest = Manifest::parse(&body).map_err(|e| bad(&e))?;
    let group = manifest.group(&group.spec.name).map_err(|e| bad(&e))?;
    leased.check(group).map_err(|e| {
        err(StatusCode::UNPROCESSABLE_ENTITY, "manifest_exceeds_lease", e.to_string())
    })?;
    // The lease is active on chain: take it in now if its event has not arrived yet.
    p.leases.adopt(id).await;
    let r =
        leases::deploy(&p, id, group.clone(), leased, &got).await.map_err(|refusal| ApiError {
            status: StatusCode::from_u16(refusal.status)
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            code: refusal.code,
            message: refusal.message,
        })?;
    Ok(Json(leases::lease_status(&p, &r).await))
}

/// What the lease pays for: the shape of its group spec with the amounts of its winning bid
/// (this provider's own offer, as the chain recorded it).
async fn leased_limits(p: &Provider, id: &BidId, spec: &GroupSpec) -> ApiResult<Leased> {
    let bid = p.client.bid(id).await?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "no_such_bid",
            format!("the chain has no winning bid of this provider for lease {}", id.order),
        )
    })?;
    Leased::new(spec, &bid.offer).map_err(|e| {
        err(
            StatusCode::CONFLICT,
            "lease_inconsistent",
            format!("lease {} cannot be run: {e}", id.order),
        )
    })
}

/// Service names as SDL allows them; anything else never reaches a driver (it names files
/// and containers).
fn check_service(name: &str) -> ApiResult<()> {
    if gridlease_sdl::is_valid_service_name(name) {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            "bad_service",
            format!("`{name}` is not a service name: {}", gridlease_sdl::SERVICE_NAME_RULE),
        ))
    }
}

async fn record_of(p: &Provider, id: &BidId) -> ApiResult<leases::LeaseRecord> {
    p.leases.get(*id).await.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "no_such_lease",
            format!("this provider runs nothing for lease {} yet", id.order),
        )
    })
}

async fn lease_status(
    State(p): State<Arc<Provider>>,
    Extension(peer): Extension<PeerCert>,
    Path(path): Path<(String, String, String, String)>,
) -> ApiResult<Json<LeaseStatus>> {
    let id = lease_id(&p, path)?;
    authorize(&p, &peer, &id).await?;
    let r = record_of(&p, &id).await?;
    Ok(Json(leases::lease_status(&p, &r).await))
}

async fn lease_logs(
    State(p): State<Arc<Provider>>,
    Extension(peer): Extension<PeerCert>,
    Path(path): Path<(String, String, String, String)>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map_err(|e| err(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?.0;
    check_service(&q.service)?;
    let id = lease_id(&p, path)?;
    authorize(&p, &peer, &id).await?;
    let r = record_of(&p, &id).await?;
    let stream = p
        .driver
        .logs(&r.tag, &q.service, q.replica, q.follow, q.tail)
        .await
        .map_err(|e| err(StatusCode::NOT_FOUND, "no_such_replica", e.to_string()))?;
    Ok(([("content-type", "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}

async fn lease_shell(
    State(p): State<Arc<Provider>>,
    Extension(peer): Extension<PeerCert>,
    Path(path): Path<(String, String, String, String)>,
    body: Result<Json<ShellRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<ExecOutput>> {
    let id = lease_id(&p, path)?;
    authorize(&p, &peer, &id).await?;
    let req = body.map_err(|e| err(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?.0;
    check_service(&req.service)?;
    if req.command.is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "bad_request", "command must name a program"));
    }
    let r = record_of(&p, &id).await?;
    let out = p
        .driver
        .exec(&r.tag, &req.service, req.replica, &req.command)
        .await
        .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "exec_failed", e.to_string()))?;
    Ok(Json(out))
}

/// Opens an interactive session in a replica and turns the connection into its channel.
async fn lease_attach(
    State(p): State<Arc<Provider>>,
    Extension(peer): Extension<PeerCert>,
    Extension(sessions): Extension<Arc<ShellSessions>>,
    Path(path): Path<(String, String, String, String)>,
    mut req: axum::extract::Request,
) -> ApiResult<Response> {
    use crate::api::{SHELL_PROTOCOL, ShellOpen};
    let id = lease_id(&p, path)?;
    authorize(&p, &peer, &id).await?;
    let upgrade = req.headers().get(axum::http::header::UPGRADE).and_then(|v| v.to_str().ok());
    if upgrade != Some(SHELL_PROTOCOL) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "upgrade_required",
            format!("an interactive session needs `Upgrade: {SHELL_PROTOCOL}`"),
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 64 << 10)
        .await
        .map_err(|e| err(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let open: ShellOpen = serde_json::from_slice(&body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    check_service(&open.service)?;
    let r = record_of(&p, &id).await?;
    let slot = sessions.take(id).ok_or_else(|| {
        err(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sessions",
            format!(
                "this lease has {} interactive sessions open, the most it may: end one first",
                ShellSessions::PER_LEASE
            ),
        )
    })?;
    let io = p
        .driver
        .shell(&r.tag, &open.service, open.replica, &open.command, open.tty, (open.cols, open.rows))
        .await
        .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "exec_failed", e.to_string()))?;
    let driver = Arc::clone(&p.driver);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run_shell(driver, io, open.tty, TokioIo::new(upgraded)).await,
            Err(e) => tracing::warn!(error = %e, "shell.upgrade failed"),
        }
        // The session counts until its program has ended and its connection is done.
        drop(slot);
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "upgrade")
        .header(axum::http::header::UPGRADE, SHELL_PROTOCOL)
        .body(Body::empty())
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Carries a session over its upgraded connection: input, resizes and the end of input in,
/// output out, then the exit code (or why there is none) as the last frame.
async fn run_shell(
    driver: Arc<dyn crate::driver::Driver>,
    io: crate::driver::ShellIo,
    tty: bool,
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
) {
    use crate::api::ShellFrame;
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let (mut from_client, mut to_client) = tokio::io::split(stream);
    let crate::driver::ShellIo { session, mut input, mut output } = io;
    let exec_id = session.exec_id.clone();
    let resizer = Arc::clone(&driver);
    let inbound = tokio::spawn(async move {
        // Resizes go to the runtime one at a time (each waits for its answer), so a flood of
        // them costs the client as much as the provider.
        while let Ok(Some(frame)) = ShellFrame::read(&mut from_client).await {
            match frame {
                ShellFrame::Input(bytes) => {
                    if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                        break;
                    }
                }
                ShellFrame::Resize { cols, rows } => {
                    let _ = resizer.resize_shell(&exec_id, cols, rows).await;
                }
                ShellFrame::EndOfInput => {
                    let _ = input.shutdown().await;
                }
                _ => break,
            }
        }
        // The client is gone (or broke the protocol): what a terminal's hangup would do. On a
        // terminal, Ctrl-C then Ctrl-D (a running command is interrupted, then the shell reads
        // the end of its input); without one, the input ends. A program that ignores both runs
        // on, and its session counts against the lease's limit until it ends.
        if tty {
            let _ = input.write_all(b"\x03\x04").await;
            let _ = input.flush().await;
        }
        let _ = input.shutdown().await;
    });
    let mut last = None;
    // Once the client is gone its program's output is read and dropped until the program ends:
    // the session (and its slot in `ShellSessions`) lasts as long as the program.
    let mut client_gone = false;
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(bytes) => {
                for piece in bytes.chunks(ShellFrame::MAX_PAYLOAD) {
                    if client_gone {
                        break;
                    }
                    let frame = ShellFrame::Output(piece.to_vec()).encode();
                    client_gone = to_client.write_all(&frame).await.is_err();
                }
            }
            Err(e) => {
                last = Some(ShellFrame::Error(e.to_string()));
                break;
            }
        }
    }
    inbound.abort();
    if client_gone {
        return;
    }
    let last = match last {
        Some(f) => f,
        None => match driver.shell_exit(&session).await {
            Ok(code) => ShellFrame::Exit(code),
            Err(e) => ShellFrame::Error(e.to_string()),
        },
    };
    let _ = to_client.write_all(&last.encode()).await;
    let _ = to_client.shutdown().await;
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn attack_a_lease_holds_a_bounded_number_of_sessions() {
        let sessions = Arc::new(ShellSessions::default());
        let owner = Address([3; 20]);
        let lease = BidId { order: OrderId { owner, dseq: 1, gseq: 1, oseq: 1 }, provider: owner };
        let other = BidId { order: OrderId { dseq: 2, ..lease.order }, ..lease };
        let mut slots: Vec<SessionSlot> =
            (0..ShellSessions::PER_LEASE).map(|_| sessions.take(lease).expect("slot")).collect();
        assert!(sessions.take(lease).is_none(), "one past the limit is refused");
        assert!(sessions.take(other).is_some(), "another lease has its own slots");
        drop(slots.pop());
        assert_eq!(sessions.open(&lease), ShellSessions::PER_LEASE - 1);
        assert!(sessions.take(lease).is_some(), "an ended session frees its slot");
    }

    #[test]
    fn the_public_routes_take_a_burst_then_their_rate_per_address() {
        let l = PublicLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(l.take(a, t0).is_ok());
        }
        let wait = l.take(a, t0).expect_err("past the burst");
        assert!(wait <= Duration::from_millis(200) && wait > Duration::ZERO, "{wait:?}");
        // Another address has its own bucket.
        assert!(l.take(b, t0).is_ok());
        // A fifth of a second later one more request is let through, and only one.
        let t1 = t0 + Duration::from_millis(200);
        assert!(l.take(a, t1).is_ok());
        assert!(l.take(a, t1).is_err());
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded() {
        let l = PublicLimiter::default();
        let now = Instant::now();
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            assert!(l.take(ip, now + Duration::from_micros(u64::from(i))).is_ok());
        }
        assert!(lock(&l.buckets).len() <= PublicLimiter::ADDRESSES);
    }
}
