//! The JSON RPC: transactions in, every ledger object, blocks and receipts out, a live event
//! stream (server-sent events), Prometheus metrics, health, and an OpenAPI description.

pub mod openapi;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use gridlease_ledger::{keyspace, query};
use gridlease_rpc_types::{
    AccountInfo, BidAnswer, BidsPage, BlockEvents, BlockSummary, BlockView, BlocksPage,
    BlocksQuery, CertificateAnswer, CertificateView, Certificates, ChainEvent, DeploymentRecord,
    DeploymentView, DeploymentsPage, ErrorBody, ErrorCode, EventFilter, EvidenceAnswer, Health,
    Lagged, LeaseAnswer, LeasesPage, ListQuery, OrdersPage, Params, Pool, ProviderRecord,
    ProvidersPage, StateName, Status, SubmitQuery, SubmitRequest, SubmitResult, TxStatus, TxView,
    ValidatorView, ValidatorsAnswer, Wait,
};
use gridlease_storage::StoreView;
use gridlease_types::{Address, DeploymentId, TxHash};
use serde_json::Value;

use crate::mempool::Rejection;
use crate::state::{CommittedBlock, MAX_RPC_IN_FLIGHT, MAX_SUBSCRIBERS, Metrics, Node, lock, read};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long `POST /txs?wait=commit` waits for the block.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// An error answer: a status, a stable code and a sentence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.code, message: self.message })).into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let (status, code) = match &r {
            Rejection::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidTx),
            Rejection::WrongChain { .. } => (StatusCode::BAD_REQUEST, ErrorCode::WrongChainId),
            Rejection::SequenceTooLow { .. } => (StatusCode::CONFLICT, ErrorCode::SequenceTooLow),
            Rejection::SequenceTooHigh { .. } => (StatusCode::CONFLICT, ErrorCode::SequenceTooHigh),
            Rejection::SequencePending(_) => (StatusCode::CONFLICT, ErrorCode::SequencePending),
            Rejection::FeeTooLow { .. } => (StatusCode::BAD_REQUEST, ErrorCode::FeeTooLow),
            Rejection::CannotPayFee { .. } => {
                (StatusCode::PAYMENT_REQUIRED, ErrorCode::CannotPayFee)
            }
            Rejection::PeerLimit(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::PeerLimit),
            Rejection::PeerGapLimit(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::PeerGapLimit),
            Rejection::Duplicate => (StatusCode::CONFLICT, ErrorCode::Duplicate),
            Rejection::Full => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::MempoolFull),
            Rejection::State(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        };
        ApiError::new(status, code, r.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn view(node: &Node) -> Result<StoreView, ApiError> {
    read(&node.store).view().map_err(ApiError::unavailable)
}

fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|e: gridlease_types::AddressError| ApiError::bad(e.to_string()))
}

/// RFC 3339 (UTC, milliseconds) from unix milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/params", get(params))
        .route("/pool", get(pool))
        .route("/accounts/{address}", get(account))
        .route("/providers", get(providers))
        .route("/providers/{address}", get(provider))
        .route("/certificates/{address}", get(certificates))
        .route("/certificates/{address}/{serial}", get(certificate))
        .route("/deployments", get(deployments))
        .route("/deployments/{owner}/{dseq}", get(deployment))
        .route("/orders", get(orders))
        .route("/bids", get(bids))
        .route("/bids/{owner}/{dseq}/{gseq}/{oseq}/{provider}", get(bid))
        .route("/leases", get(leases))
        .route("/leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}", get(lease))
        .route("/validators", get(validators))
        .route("/evidence", get(evidence))
        .route("/blocks", get(blocks))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/{height}", get(block))
        .route("/txs", post(submit))
        .route("/txs/{hash}", get(tx))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("no such endpoint: see /openapi.json") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(node.clone(), limit_in_flight))
        .with_state(node)
}

#[utoipa::path(get, path = "/health", tag = "node", responses((status = 200, description = "the node answers, with its latest height", body = Health)))]
pub(crate) async fn health(State(node): State<Arc<Node>>) -> ApiResult<Health> {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let height = read(&node.store).height();
    Ok(Json(Health { status: "ok".to_owned(), latest_height: height }))
}

#[utoipa::path(get, path = "/status", tag = "node", responses((status = 200, description = "chain id, latest height, block time, state root, mempool size", body = Status)))]
pub(crate) async fn status(State(node): State<Arc<Node>>) -> ApiResult<Status> {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let (height, root, time) = {
        let store = read(&node.store);
        let h = store.height();
        let time = store.block(h).ok().flatten().map_or(0, |b| b.time_ms);
        (h, store.state_root(), time)
    };
    Ok(Json(Status {
        chain_id: node.chain_id.clone(),
        latest_height: height,
        latest_block_time: rfc3339(time),
        latest_block_time_ms: time,
        state_root: crate::hex(&root),
        mempool_size: lock(&node.mempool).len(),
    }))
}

#[utoipa::path(get, path = "/params", tag = "node", responses((status = 200, description = "the chain's parameters", body = Params)))]
pub(crate) async fn params(State(node): State<Arc<Node>>) -> ApiResult<Params> {
    Ok(Json(node.params.clone()))
}

#[utoipa::path(get, path = "/pool", tag = "bank", responses((status = 200, description = "the community pool per denomination", body = Pool), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn pool(State(node): State<Arc<Node>>) -> ApiResult<Pool> {
    let v = view(&node)?;
    let mut community_pool = std::collections::BTreeMap::new();
    for d in &node.params.denoms {
        let amount = query::pool(&v, d).map_err(ApiError::unavailable)?;
        community_pool.insert(d.to_string(), amount.to_string());
    }
    Ok(Json(Pool { community_pool }))
}

#[utoipa::path(get, path = "/accounts/{address}", tag = "bank", params(("address" = Address, Path, description = "bech32 account address")), responses((status = 200, description = "sequence and balances", body = AccountInfo), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn account(
    State(node): State<Arc<Node>>,
    Path(address): Path<String>,
) -> ApiResult<AccountInfo> {
    let addr = parse_address(&address)?;
    let v = view(&node)?;
    let account = query::account(&v, &addr).map_err(ApiError::unavailable)?;
    let balances = query::balances_of(&v, &addr).map_err(ApiError::unavailable)?;
    if account.is_none() && balances.is_empty() {
        return Err(ApiError::not_found(format!("account {addr} has never held funds")));
    }
    let account = account.unwrap_or_default();
    Ok(Json(AccountInfo {
        address: addr,
        sequence: account.sequence,
        public_key: account.public_key,
        balances,
    }))
}

/// Largest page a list endpoint returns, and its default.
pub const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;
/// Keys a page may read per item asked for (filters that match rarely end a page early,
/// with a cursor to go on).
const SCAN_PER_ITEM: usize = 8;

#[utoipa::path(get, path = "/providers", tag = "provider", params(ListQuery), responses((status = 200, description = "a page of registered providers", body = ProvidersPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn providers(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ProvidersPage> {
    let f = query_filter(q)?;
    let v = view(&node)?;
    let page = query::page::<gridlease_ledger::state::Provider>(
        &v,
        &[keyspace::PROVIDER],
        f.cursor.as_deref(),
        f.limit,
        f.limit * SCAN_PER_ITEM,
        |_| true,
    )
    .map_err(ApiError::unavailable)?;
    Ok(Json(ProvidersPage { providers: page.items, next_cursor: cursor_of(page.next) }))
}

#[utoipa::path(get, path = "/providers/{address}", tag = "provider", params(("address" = Address, Path, description = "bech32 account address")), responses((status = 200, description = "one provider with the attributes each auditor signed", body = ProviderRecord), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn provider(
    State(node): State<Arc<Node>>,
    Path(address): Path<String>,
) -> ApiResult<ProviderRecord> {
    let addr = parse_address(&address)?;
    let v = view(&node)?;
    let p = query::provider(&v, &addr)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("{addr} is not a registered provider")))?;
    // One record per registered auditor at most.
    let mut prefix = vec![keyspace::AUDIT];
    prefix.extend_from_slice(&addr.0);
    let audits: Vec<gridlease_ledger::state::AuditRecord> =
        query::list_prefix(&v, &prefix).map_err(ApiError::unavailable)?;
    let uptime = query::provider_uptime(&v, &addr).map_err(ApiError::unavailable)?;
    let uptime_ppm = uptime.uptime_ppm();
    Ok(Json(ProviderRecord { provider: p, audits, uptime, uptime_ppm }))
}

fn certificate_view(c: &gridlease_ledger::state::Certificate) -> CertificateView {
    CertificateView {
        owner: c.owner,
        serial: crate::hex(&c.serial),
        state: c.state,
        cert_pem: String::from_utf8_lossy(&c.cert_pem).into_owned(),
        pubkey_pem: String::from_utf8_lossy(&c.pubkey_pem).into_owned(),
        created_at: c.created_at,
    }
}

#[utoipa::path(get, path = "/certificates/{address}", tag = "cert", params(("address" = Address, Path, description = "bech32 account address")), responses((status = 200, description = "every certificate of the account, valid or revoked", body = Certificates), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn certificates(
    State(node): State<Arc<Node>>,
    Path(address): Path<String>,
) -> ApiResult<Certificates> {
    let addr = parse_address(&address)?;
    let v = view(&node)?;
    // At most `max_certs_per_owner` records under this prefix.
    let certs: Vec<gridlease_ledger::state::Certificate> =
        query::list_prefix(&v, &keyspace::certs_of(&addr)).map_err(ApiError::unavailable)?;
    Ok(Json(Certificates { certificates: certs.iter().map(certificate_view).collect() }))
}

#[utoipa::path(get, path = "/certificates/{address}/{serial}", tag = "cert", params(("address" = Address, Path, description = "bech32 account address"), ("serial" = String, Path, description = "hex SHA-256 of the certificate's PEM")), responses((status = 200, description = "one certificate", body = CertificateAnswer), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn certificate(
    State(node): State<Arc<Node>>,
    Path((address, serial)): Path<(String, String)>,
) -> ApiResult<CertificateAnswer> {
    let addr = parse_address(&address)?;
    let serial: [u8; 32] = crate::unhex(&serial)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad("serial must be 32 bytes in hex"))?;
    let v = view(&node)?;
    let c = query::certificate(&v, &addr, &serial).map_err(ApiError::unavailable)?.ok_or_else(
        || ApiError::not_found(format!("{addr} has no certificate with this serial")),
    )?;
    Ok(Json(CertificateAnswer { certificate: certificate_view(&c) }))
}

/// A list query, checked.
struct Filter {
    owner: Option<Address>,
    dseq: Option<u64>,
    provider: Option<Address>,
    state: Option<String>,
    limit: usize,
    cursor: Option<Vec<u8>>,
}

impl Filter {
    fn parse(q: ListQuery) -> Result<Filter, ApiError> {
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::bad(format!("limit must be 1 to {MAX_PAGE}")));
        }
        let cursor = match q.cursor.as_deref() {
            None => None,
            Some(c) => Some(crate::unhex(c).ok_or_else(|| {
                ApiError::bad("cursor must be the next_cursor of a previous page")
            })?),
        };
        if q.dseq.is_some() && q.owner.is_none() {
            return Err(ApiError::bad("dseq needs owner: a deployment is known by both"));
        }
        Ok(Filter {
            owner: q.owner,
            dseq: q.dseq,
            provider: q.provider,
            state: q.state,
            limit,
            cursor,
        })
    }

    fn state_matches(&self, state: &impl StateName) -> bool {
        self.state.as_deref().is_none_or(|want| state.state_name() == want)
    }

    /// Where a list of objects of `tag` keyed by owner and dseq first lives: one deployment's
    /// prefix, the owner's, or the whole kind.
    fn owner_prefix(&self, tag: u8) -> Vec<u8> {
        let mut prefix = vec![tag];
        if let Some(o) = self.owner {
            prefix.extend_from_slice(&o.0);
            if let Some(d) = self.dseq {
                prefix.extend_from_slice(&d.to_be_bytes());
            }
        }
        prefix
    }

    fn budget(&self) -> usize {
        self.limit * SCAN_PER_ITEM
    }
}

/// The hex cursor of the next page.
fn cursor_of(next: Option<Vec<u8>>) -> Option<String> {
    next.map(|k| crate::hex(&k))
}

fn query_filter(
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Filter, ApiError> {
    Filter::parse(q.map_err(|e| ApiError::bad(e.body_text()))?.0)
}

fn deployment_view(d: &gridlease_ledger::state::Deployment) -> DeploymentView {
    DeploymentView {
        id: d.id,
        state: d.state,
        manifest_hash: crate::hex(&d.manifest_hash),
        groups: d.groups,
        created_at: d.created_at,
    }
}

#[utoipa::path(get, path = "/deployments", tag = "deployment", params(ListQuery), responses((status = 200, description = "a page of deployments", body = DeploymentsPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn deployments(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<DeploymentsPage> {
    let f = query_filter(q)?;
    let v = view(&node)?;
    let page = query::page::<gridlease_ledger::state::Deployment>(
        &v,
        &f.owner_prefix(keyspace::DEPLOYMENT),
        f.cursor.as_deref(),
        f.limit,
        f.budget(),
        |d| f.state_matches(&d.state),
    )
    .map_err(ApiError::unavailable)?;
    Ok(Json(DeploymentsPage {
        deployments: page.items.iter().map(deployment_view).collect(),
        next_cursor: cursor_of(page.next),
    }))
}

#[utoipa::path(get, path = "/deployments/{owner}/{dseq}", tag = "deployment", params(("owner" = Address, Path), ("dseq" = u64, Path)), responses((status = 200, description = "a deployment with its groups and escrow account", body = DeploymentRecord), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn deployment(
    State(node): State<Arc<Node>>,
    Path((owner, dseq)): Path<(String, String)>,
) -> ApiResult<DeploymentRecord> {
    let owner = parse_address(&owner)?;
    let dseq: u64 =
        dseq.parse().map_err(|_| ApiError::bad(format!("dseq `{dseq}` is not a number")))?;
    let id = DeploymentId { owner, dseq };
    let v = view(&node)?;
    let d = query::deployment(&v, &id)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("deployment {id} does not exist")))?;
    // A deployment has at most `max_groups` groups, all under its own prefix.
    let mut prefix = keyspace::deployment(&id);
    prefix[0] = keyspace::GROUP;
    let groups: Vec<gridlease_ledger::state::Group> =
        query::list_prefix(&v, &prefix).map_err(ApiError::unavailable)?;
    let escrow = query::escrow(&v, &id).map_err(ApiError::unavailable)?;
    let monitors = query::monitors(&v, &id).map_err(ApiError::unavailable)?;
    Ok(Json(DeploymentRecord { deployment: deployment_view(&d), groups, escrow, monitors }))
}

#[utoipa::path(get, path = "/orders", tag = "market", params(ListQuery), responses((status = 200, description = "a page of orders", body = OrdersPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn orders(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<OrdersPage> {
    let f = query_filter(q)?;
    let v = view(&node)?;
    let page = query::page::<gridlease_ledger::state::Order>(
        &v,
        &f.owner_prefix(keyspace::ORDER),
        f.cursor.as_deref(),
        f.limit,
        f.budget(),
        |o| f.state_matches(&o.state),
    )
    .map_err(ApiError::unavailable)?;
    Ok(Json(OrdersPage { orders: page.items, next_cursor: cursor_of(page.next) }))
}

#[utoipa::path(get, path = "/bids", tag = "market", params(ListQuery), responses((status = 200, description = "a page of bids", body = BidsPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn bids(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<BidsPage> {
    let f = query_filter(q)?;
    let page = bid_like_page::<gridlease_ledger::state::Bid, _>(
        &node,
        &f,
        (keyspace::BID, keyspace::BID_BY_PROVIDER, keyspace::bid),
        |b| (b.id, &b.state),
    )?;
    Ok(Json(BidsPage { bids: page.items, next_cursor: cursor_of(page.next) }))
}

#[utoipa::path(get, path = "/leases", tag = "market", params(ListQuery), responses((status = 200, description = "a page of leases", body = LeasesPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn leases(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<LeasesPage> {
    let f = query_filter(q)?;
    let page = bid_like_page::<gridlease_ledger::state::Lease, _>(
        &node,
        &f,
        (keyspace::LEASE, keyspace::LEASE_BY_PROVIDER, keyspace::lease),
        |l| (l.id, &l.state),
    )?;
    Ok(Json(LeasesPage { leases: page.items, next_cursor: cursor_of(page.next) }))
}

/// (object tag, by-provider index tag, key of one object) of bids or leases.
type BidLikeKind = (u8, u8, fn(&gridlease_types::BidId) -> Vec<u8>);

/// A page of bids or leases (objects keyed by a bid id): by the owner's key prefix, or by
/// the provider's index when only the provider is given. `kind` is (object tag, index tag,
/// key of one object); `parts` gives an object's id and state.
fn bid_like_page<T: borsh::BorshDeserialize, S: StateName>(
    node: &Node,
    f: &Filter,
    kind: BidLikeKind,
    parts: impl Fn(&T) -> (gridlease_types::BidId, &S),
) -> Result<query::Page<T>, ApiError> {
    let (tag, index, primary) = kind;
    let v = view(node)?;
    let keep = |item: &T| {
        let (id, state) = parts(item);
        f.owner.is_none_or(|a| id.order.owner == a)
            && f.dseq.is_none_or(|d| id.order.dseq == d)
            && f.provider.is_none_or(|p| id.provider == p)
            && f.state_matches(state)
    };
    let cursor = f.cursor.as_deref();
    match (f.owner, f.provider) {
        (None, Some(p)) => {
            query::page_by_provider(&v, index, &p, primary, cursor, f.limit, f.budget(), keep)
        }
        _ => query::page(&v, &f.owner_prefix(tag), cursor, f.limit, f.budget(), keep),
    }
    .map_err(ApiError::unavailable)
}

fn bid_id_of(
    (owner, dseq, gseq, oseq, provider): (String, String, String, String, String),
) -> Result<gridlease_types::BidId, ApiError> {
    let bad = |what: &str, s: &str| ApiError::bad(format!("{what} `{s}` is not a number"));
    let order = gridlease_types::OrderId {
        owner: parse_address(&owner)?,
        dseq: dseq.parse().map_err(|_| bad("dseq", &dseq))?,
        gseq: gseq.parse().map_err(|_| bad("gseq", &gseq))?,
        oseq: oseq.parse().map_err(|_| bad("oseq", &oseq))?,
    };
    Ok(gridlease_types::BidId { order, provider: parse_address(&provider)? })
}

type BidPath = Path<(String, String, String, String, String)>;

/// `GET /leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}`: one lease by its id.
#[utoipa::path(get, path = "/leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}", tag = "market", params(("owner" = Address, Path, description = "the deployment's owner"), ("dseq" = u64, Path), ("gseq" = u32, Path), ("oseq" = u32, Path), ("provider" = Address, Path, description = "the bidder's address")), responses((status = 200, description = "one lease", body = LeaseAnswer), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn lease(
    State(node): State<Arc<Node>>,
    Path(path): BidPath,
) -> ApiResult<LeaseAnswer> {
    let id = bid_id_of(path)?;
    let (v, height) = {
        let store = read(&node.store);
        (store.view().map_err(ApiError::unavailable)?, store.height())
    };
    let l = query::lease(&v, &id)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("lease {id} does not exist")))?;
    let health = query::lease_health(&v, &id).map_err(ApiError::unavailable)?;
    let payment = query::payment(&v, &id).map_err(ApiError::unavailable)?;
    let account = query::escrow(&v, &id.order.deployment()).map_err(ApiError::unavailable)?;
    let earned = payment.as_ref().map(|p| {
        // As settlement at the latest block would leave it (settlement is lazy).
        let pending =
            account.as_ref().map_or(gridlease_types::DecAmount::ZERO, |a| p.pending_at(a, height));
        gridlease_types::DecAmount(
            p.withdrawn.0.saturating_add(p.unwithdrawn.0).saturating_add(pending.0),
        )
    });
    Ok(Json(LeaseAnswer { lease: l, health, payment, earned }))
}

/// `GET /bids/{owner}/{dseq}/{gseq}/{oseq}/{provider}`: one bid by its id.
#[utoipa::path(get, path = "/bids/{owner}/{dseq}/{gseq}/{oseq}/{provider}", tag = "market", params(("owner" = Address, Path, description = "the deployment's owner"), ("dseq" = u64, Path), ("gseq" = u32, Path), ("oseq" = u32, Path), ("provider" = Address, Path, description = "the bidder's address")), responses((status = 200, description = "one bid", body = BidAnswer), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn bid(
    State(node): State<Arc<Node>>,
    Path(path): BidPath,
) -> ApiResult<BidAnswer> {
    let id = bid_id_of(path)?;
    let v = view(&node)?;
    let b = query::bid(&v, &id)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("bid {id} does not exist")))?;
    Ok(Json(BidAnswer { bid: b }))
}

fn block_view(node: &Node, height: u64) -> ApiResult<BlockView> {
    let record = read(&node.store)
        .block(height)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let txs: Vec<String> = record.txs.iter().map(|t| crate::hex(&TxHash::of_bytes(t).0)).collect();
    Ok(Json(BlockView {
        height: record.height,
        time: rfc3339(record.time_ms),
        time_ms: record.time_ms,
        round: record.round,
        parent_root: crate::hex(&record.parent_root),
        state_root: crate::hex(&record.state_root),
        txs,
        receipts: record.receipts,
        begin_events: record.begin_events,
        signers: gridlease_consensus::certificate_info(&record.certificate)
            .map(|c| c.signers.into_iter().map(gridlease_types::Address).collect())
            .unwrap_or_default(),
    }))
}

#[utoipa::path(get, path = "/evidence", tag = "staking", responses((status = 200, description = "double signs this node's consensus saw lately", body = EvidenceAnswer)))]
pub(crate) async fn evidence(State(node): State<Arc<Node>>) -> ApiResult<EvidenceAnswer> {
    Ok(Json(EvidenceAnswer { seen: lock(&node.evidence).iter().cloned().collect() }))
}

#[utoipa::path(get, path = "/validators", tag = "staking", responses((status = 200, description = "the validator set of the next block and a scheduled change", body = ValidatorsAnswer), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn validators(State(node): State<Arc<Node>>) -> ApiResult<ValidatorsAnswer> {
    let store = read(&node.store);
    let height = store.height();
    let v = store.view().map_err(ApiError::unavailable)?;
    drop(store);
    let members =
        |set: &gridlease_ledger::state::ValidatorSet| -> Result<Vec<ValidatorView>, ApiError> {
            let mut out = Vec::with_capacity(set.members.len());
            for m in &set.members {
                let record = query::validator(&v, &m.operator).map_err(ApiError::unavailable)?;
                out.push(ValidatorView {
                    operator: m.operator,
                    consensus_key: crate::hex(&m.consensus_key.0),
                    consensus_address: m.consensus_key.address(),
                    moniker: record.as_ref().map(|r| r.moniker.clone()).unwrap_or_default(),
                    bonded: record.map(|r| r.bonded).unwrap_or_else(|| {
                        gridlease_types::Coin::new(0, &node.params.native_denom)
                    }),
                    power: m.power,
                });
            }
            Ok(out)
        };
    let active = query::validator_set_at(&v, height + 1).map_err(ApiError::unavailable)?;
    let scheduled = query::next_validator_set(&v)
        .map_err(ApiError::unavailable)?
        .filter(|s| s.from_height > height + 1);
    Ok(Json(ValidatorsAnswer {
        height,
        total_power: active.as_ref().map_or(0, |s| s.total_power()),
        active: match &active {
            Some(s) => members(s)?,
            None => Vec::new(),
        },
        scheduled_from: scheduled.as_ref().map(|s| s.from_height),
        scheduled: scheduled.as_ref().map(members).transpose()?,
    }))
}

/// Most blocks `GET /blocks` returns, and its default.
const MAX_BLOCKS_PAGE: usize = 100;
const DEFAULT_BLOCKS_PAGE: usize = 20;

#[utoipa::path(get, path = "/blocks", tag = "blocks", params(BlocksQuery), responses((status = 200, description = "the newest blocks first, each counted (transactions, failures, events by type)", body = BlocksPage), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn blocks(
    State(node): State<Arc<Node>>,
    q: Result<Query<BlocksQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<BlocksPage> {
    let q = q.map_err(|e| ApiError::bad(e.body_text()))?.0;
    let limit = q.limit.unwrap_or(DEFAULT_BLOCKS_PAGE);
    if limit == 0 || limit > MAX_BLOCKS_PAGE {
        return Err(ApiError::bad(format!("limit must be 1 to {MAX_BLOCKS_PAGE}")));
    }
    let latest = read(&node.store).height();
    let top = q.before.map_or(latest, |b| b.saturating_sub(1).min(latest));
    let mut blocks = Vec::with_capacity(limit);
    let mut h = top;
    while h >= 1 && blocks.len() < limit {
        // One block at a time: the store's lock is not held across the page.
        let record = read(&node.store).block(h).map_err(ApiError::unavailable)?;
        if let Some(r) = record {
            let mut event_kinds = std::collections::BTreeMap::new();
            let all = r.begin_events.iter().chain(r.receipts.iter().flat_map(|x| x.events.iter()));
            for e in all {
                *event_kinds.entry(e.kind().to_string()).or_insert(0u32) += 1;
            }
            blocks.push(BlockSummary {
                height: r.height,
                time: rfc3339(r.time_ms),
                time_ms: r.time_ms,
                txs: u32::try_from(r.txs.len()).unwrap_or(u32::MAX),
                failed_txs: u32::try_from(r.receipts.iter().filter(|x| !x.is_ok()).count())
                    .unwrap_or(u32::MAX),
                events: event_kinds.values().sum(),
                event_kinds,
            });
        }
        h -= 1;
    }
    let next_before = blocks.last().map(|b| b.height).filter(|h| *h > 1);
    Ok(Json(BlocksPage { blocks, next_before }))
}

#[utoipa::path(get, path = "/blocks/latest", tag = "blocks", responses((status = 200, description = "the latest block with its receipts and state root", body = BlockView), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn latest_block(State(node): State<Arc<Node>>) -> ApiResult<BlockView> {
    let h = read(&node.store).height();
    block_view(&node, h)
}

#[utoipa::path(get, path = "/blocks/{height}", tag = "blocks", params(("height" = u64, Path)), responses((status = 200, description = "a block with its receipts and state root", body = BlockView), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn block(
    State(node): State<Arc<Node>>,
    Path(height): Path<String>,
) -> ApiResult<BlockView> {
    let h: u64 =
        height.parse().map_err(|_| ApiError::bad(format!("height `{height}` is not a number")))?;
    block_view(&node, h)
}

#[utoipa::path(get, path = "/txs/{hash}", tag = "txs", params(("hash" = TxHash, Path, description = "hex SHA-256 of the transaction's bytes")), responses((status = 200, description = "a committed transaction with its receipt, or a pending one", body = TxView), (status = 400, description = "a malformed parameter", body = ErrorBody), (status = 404, description = "no such object", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn tx(
    State(node): State<Arc<Node>>,
    Path(hash): Path<String>,
) -> ApiResult<TxView> {
    let h: TxHash = hash.to_uppercase().parse().map_err(ApiError::bad)?;
    let store = read(&node.store);
    let Some((height, index)) = store.tx_location(&h.0).map_err(ApiError::unavailable)? else {
        drop(store);
        if lock(&node.mempool).contains(&h) {
            return Ok(Json(TxView {
                hash: h.to_string(),
                status: TxStatus::Pending,
                height: None,
                index: None,
                tx: None,
                receipt: None,
            }));
        }
        return Err(ApiError::not_found(format!(
            "transaction {h} is neither committed nor pending"
        )));
    };
    let record = store.block(height).map_err(ApiError::unavailable)?;
    let receipt = record.as_ref().and_then(|r| r.receipts.get(index as usize)).cloned();
    let tx = record
        .as_ref()
        .and_then(|r| r.txs.get(index as usize))
        .and_then(|b| gridlease_types::Tx::from_bytes(b).ok());
    Ok(Json(TxView {
        hash: h.to_string(),
        status: TxStatus::Committed,
        height: Some(height),
        index: Some(index),
        tx,
        receipt,
    }))
}

#[utoipa::path(post, path = "/txs", tag = "txs", params(SubmitQuery), request_body = SubmitRequest, responses((status = 200, description = "committed, with its receipt (wait=commit)", body = SubmitResult), (status = 202, description = "admitted to the mempool, or still pending after the wait", body = SubmitResult), (status = 400, description = "an invalid transaction or request", body = ErrorBody), (status = 402, description = "the signer's balance cannot pay this fee and its pending fees", body = ErrorBody), (status = 409, description = "a sequence conflict or a duplicate", body = ErrorBody), (status = 413, description = "the body is too large", body = ErrorBody), (status = 429, description = "the mempool is full, or this peer's pending or gapped transactions are at their limit", body = ErrorBody), (status = 503, description = "the node's store is unavailable, or it is busy", body = ErrorBody)))]
pub(crate) async fn submit(
    State(node): State<Arc<Node>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    q: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let q = q
        .map_err(|e| ApiError::bad(format!("{} (wait must be `none` or `commit`)", e.body_text())))?
        .0;
    let wait = q.wait == Wait::Commit;
    let body = body.map_err(|e| match e {
        JsonRejection::BytesRejection(b) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, b.body_text())
        }
        other => ApiError::bad(other.body_text()),
    })?;
    let bytes = crate::unhex(&body.tx)
        .ok_or_else(|| ApiError::bad("tx must be the transaction's bytes in hex"))?;
    // Signature checks need no lock: do them before taking the mempool's.
    let vtx = match crate::mempool::Mempool::verify(&bytes) {
        Ok(v) => v,
        Err(r) => {
            Metrics::add(&node.metrics.txs_rejected, 1);
            return Err(r.into());
        }
    };
    // Subscribe before admission so the commit cannot slip past us.
    let mut commits = node.committed.subscribe();
    let hash = {
        let v = view(&node)?;
        let peer = peer.map(|axum::Extension(info)| info.0.ip());
        let admitted =
            lock(&node.mempool).admit_verified(bytes, &vtx, &node.chain_id, &node.params, &v, peer);
        match admitted {
            Ok(h) => {
                Metrics::add(&node.metrics.txs_admitted, 1);
                h
            }
            Err(r) => {
                Metrics::add(&node.metrics.txs_rejected, 1);
                return Err(r.into());
            }
        }
    };
    let answer =
        |status, height, receipt| SubmitResult { hash: hash.to_string(), status, height, receipt };
    if !wait {
        return Ok(
            (StatusCode::ACCEPTED, Json(answer(TxStatus::Admitted, None, None))).into_response()
        );
    }
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, commits.recv()).await {
            Ok(Ok(block)) => {
                if let Some(r) = block.contains(&hash) {
                    let committed =
                        answer(TxStatus::Committed, Some(block.height), Some(r.clone()));
                    return Ok(Json(committed).into_response());
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                if let Ok(Some((height, index))) = read(&node.store).tx_location(&hash.0) {
                    let record = read(&node.store).block(height).ok().flatten();
                    let receipt =
                        record.as_ref().and_then(|r| r.receipts.get(index as usize)).cloned();
                    let committed = answer(TxStatus::Committed, Some(height), receipt);
                    return Ok(Json(committed).into_response());
                }
            }
            Ok(Err(_)) | Err(_) => {
                return Ok((StatusCode::ACCEPTED, Json(answer(TxStatus::Pending, None, None)))
                    .into_response());
            }
        }
    }
}

fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

#[utoipa::path(get, path = "/events", tag = "events", params(EventFilter), responses((status = 200, description = "server-sent events: one `block` event (BlockEvents) per committed block with the events that pass the filters; a `lagged` event (Lagged) ends the stream of a subscriber that fell behind", content_type = "text/event-stream", body = String), (status = 400, description = "a malformed filter", body = ErrorBody), (status = 503, description = "too many event streams are open", body = ErrorBody)))]
pub(crate) async fn events(
    State(node): State<Arc<Node>>,
    q: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let f = q.map_err(|e| ApiError::bad(e.body_text()))?.0;
    let types: Option<Vec<String>> =
        f.types.map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let address = f.address.map(|a| a.to_string());
    let permit = Arc::clone(&node.subscribers).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManySubscribers,
            format!("{MAX_SUBSCRIBERS} event streams are open: retry later"),
        )
    })?;
    let rx = node.committed.subscribe();
    let stream = follow_blocks(rx, permit).map(move |item| {
        Ok(match item {
            Followed::Block(block) => block_event(&block, &types, &address),
            Followed::Lagged(missed) => {
                let data = Lagged { lagged: true, missed_blocks: missed };
                SseEvent::default().event("lagged").data(to_text(&data))
            }
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What a subscriber's stream yields: every committed block in order, or, once it fell more
/// than the channel's capacity behind, `Lagged` with the number of blocks it missed, after
/// which the stream ends (the subscriber must reconnect and reconcile from the queries; it
/// never silently skips blocks). `permit` is held for as long as the stream lives.
fn follow_blocks<P: Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<Arc<CommittedBlock>>,
    permit: P,
) -> impl Stream<Item = Followed> + Send {
    futures_util::stream::unfold(Some((rx, permit)), |state| async move {
        let (mut rx, permit) = state?;
        match rx.recv().await {
            Ok(block) => Some((Followed::Block(block), Some((rx, permit)))),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                Some((Followed::Lagged(missed), None))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
}

#[derive(Debug)]
enum Followed {
    Block(Arc<CommittedBlock>),
    Lagged(u64),
}

/// One committed block as an SSE `block` event, holding the events that pass the filters.
fn block_event(
    block: &CommittedBlock,
    types: &Option<Vec<String>>,
    address: &Option<String>,
) -> SseEvent {
    let mut events = Vec::new();
    let tagged = block.begin_events.iter().map(|e| (None, e)).chain(
        block.receipts.iter().flat_map(|r| r.events.iter().map(move |e| (Some(r.tx_hash), e))),
    );
    for (tx, e) in tagged {
        // The filters read the event as it goes on the wire (its `type`, any field).
        if types.as_ref().is_some_and(|t| !t.iter().any(|want| want == e.kind())) {
            continue;
        }
        if let Some(a) = address
            && !mentions(&serde_json::to_value(e).unwrap_or(Value::Null), a)
        {
            continue;
        }
        events.push(ChainEvent {
            height: block.height,
            tx_hash: tx.map(|h| h.to_string()),
            event: e.clone(),
        });
    }
    let data = BlockEvents { height: block.height, time: rfc3339(block.time_ms), events };
    SseEvent::default().event("block").data(to_text(&data))
}

/// JSON text of an answer (every wire type serializes: no maps with non-string keys).
fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Refuses a request at once (503) when `MAX_RPC_IN_FLIGHT` are being served.
async fn limit_in_flight(
    State(node): State<Arc<Node>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = Arc::clone(&node.requests).try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            format!("{MAX_RPC_IN_FLIGHT} requests are in flight: retry later"),
        )
        .into_response();
    };
    next.run(request).await
}

#[utoipa::path(get, path = "/metrics", tag = "node", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let m = &node.metrics;
    let height = read(&node.store).height();
    let mempool = lock(&node.mempool).len();
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let body = format!(
        "# HELP gridlease_block_height Height of the last committed block.\n# TYPE gridlease_block_height gauge\ngridlease_block_height {height}\n\
# HELP gridlease_blocks_committed_total Blocks committed since start.\n# TYPE gridlease_blocks_committed_total counter\ngridlease_blocks_committed_total {}\n\
# HELP gridlease_txs_committed_total Transactions committed since start.\n# TYPE gridlease_txs_committed_total counter\ngridlease_txs_committed_total {}\n\
# HELP gridlease_txs_failed_total Committed transactions whose receipt is an error.\n# TYPE gridlease_txs_failed_total counter\ngridlease_txs_failed_total {}\n\
# HELP gridlease_mempool_admitted_total Transactions admitted to the mempool.\n# TYPE gridlease_mempool_admitted_total counter\ngridlease_mempool_admitted_total {}\n\
# HELP gridlease_mempool_rejected_total Transactions refused by the mempool.\n# TYPE gridlease_mempool_rejected_total counter\ngridlease_mempool_rejected_total {}\n\
# HELP gridlease_mempool_size Transactions waiting in the mempool.\n# TYPE gridlease_mempool_size gauge\ngridlease_mempool_size {mempool}\n\
# HELP gridlease_block_commit_seconds Time to execute and commit the last block.\n# TYPE gridlease_block_commit_seconds gauge\ngridlease_block_commit_seconds {}\n\
# HELP gridlease_rpc_requests_total RPC requests served.\n# TYPE gridlease_rpc_requests_total counter\ngridlease_rpc_requests_total {}\n\
# HELP gridlease_signatures_reused_total Committed transactions whose signature admission had already verified.\n# TYPE gridlease_signatures_reused_total counter\ngridlease_signatures_reused_total {}\n",
        c(&m.blocks_committed),
        c(&m.txs_committed),
        c(&m.txs_failed),
        c(&m.txs_admitted),
        c(&m.txs_rejected),
        c(&m.last_commit_micros) as f64 / 1e6,
        c(&m.rpc_requests),
        c(&m.signatures_reused),
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "node", responses((status = 200, description = "this document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi::document_json())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64) -> Arc<CommittedBlock> {
        Arc::new(CommittedBlock {
            height,
            time_ms: 0,
            state_root: [0; 32],
            begin_events: Vec::new(),
            receipts: Vec::new(),
        })
    }

    /// Issue 10 item 6: a subscriber that falls behind is told how many blocks it missed and
    /// its stream ends; before, the missed blocks were dropped without a word.
    #[tokio::test]
    async fn attack_lagging_subscriber_is_told_and_closed() {
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let stream = follow_blocks(rx, ());
        for h in 1..=5 {
            tx.send(block(h)).unwrap();
        }
        let items: Vec<Followed> = stream.collect().await;
        assert!(matches!(items.as_slice(), [Followed::Lagged(3)]), "{items:?}");
    }

    #[tokio::test]
    async fn a_subscriber_that_keeps_up_sees_every_block_in_order() {
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let mut stream = Box::pin(follow_blocks(rx, ()));
        for h in 1..=5 {
            tx.send(block(h)).unwrap();
            match stream.next().await {
                Some(Followed::Block(b)) => assert_eq!(b.height, h),
                other => panic!("block {h}: {other:?}"),
            }
        }
        drop(tx);
        assert!(stream.next().await.is_none());
    }
}
