//! The JSON RPC: transactions in, every ledger object, blocks and receipts out, a live event
//! stream (server-sent events), Prometheus metrics, health, and an OpenAPI description.

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
use gridlease_ledger::{Receipt, keyspace, query};
use gridlease_storage::StoreView;
use gridlease_types::{Address, DeploymentId, TxHash};
use serde::Deserialize;
use serde_json::{Value, json};

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
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let (status, code) = match &r {
            Rejection::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_tx"),
            Rejection::WrongChain { .. } => (StatusCode::BAD_REQUEST, "wrong_chain_id"),
            Rejection::SequenceTooLow { .. } => (StatusCode::CONFLICT, "sequence_too_low"),
            Rejection::SequenceTooHigh { .. } => (StatusCode::CONFLICT, "sequence_too_high"),
            Rejection::SequencePending(_) => (StatusCode::CONFLICT, "sequence_pending"),
            Rejection::FeeTooLow { .. } => (StatusCode::BAD_REQUEST, "fee_too_low"),
            Rejection::CannotPayFee { .. } => (StatusCode::PAYMENT_REQUIRED, "cannot_pay_fee"),
            Rejection::PeerLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "peer_limit"),
            Rejection::PeerGapLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "peer_gap_limit"),
            Rejection::Duplicate => (StatusCode::CONFLICT, "duplicate"),
            Rejection::Full => (StatusCode::TOO_MANY_REQUESTS, "mempool_full"),
            Rejection::State(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, r.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

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

async fn health(State(node): State<Arc<Node>>) -> ApiResult {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let height = read(&node.store).height();
    Ok(Json(json!({ "status": "ok", "latest_height": height })))
}

async fn status(State(node): State<Arc<Node>>) -> ApiResult {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let (height, root, time) = {
        let store = read(&node.store);
        let h = store.height();
        let time = store.block(h).ok().flatten().map_or(0, |b| b.time_ms);
        (h, store.state_root(), time)
    };
    Ok(Json(json!({
        "chain_id": node.chain_id,
        "latest_height": height,
        "latest_block_time": rfc3339(time),
        "latest_block_time_ms": time,
        "state_root": crate::hex(&root),
        "mempool_size": lock(&node.mempool).len(),
    })))
}

async fn params(State(node): State<Arc<Node>>) -> ApiResult {
    Ok(Json(to_json(&node.params)))
}

async fn pool(State(node): State<Arc<Node>>) -> ApiResult {
    let v = view(&node)?;
    let mut out = serde_json::Map::new();
    for d in &node.params.denoms {
        let amount = query::pool(&v, d).map_err(ApiError::unavailable)?;
        out.insert(d.to_string(), Value::String(amount.to_string()));
    }
    Ok(Json(json!({ "community_pool": out })))
}

async fn account(State(node): State<Arc<Node>>, Path(address): Path<String>) -> ApiResult {
    let addr = parse_address(&address)?;
    let v = view(&node)?;
    let account = query::account(&v, &addr).map_err(ApiError::unavailable)?;
    let balances = query::balances_of(&v, &addr).map_err(ApiError::unavailable)?;
    if account.is_none() && balances.is_empty() {
        return Err(ApiError::not_found(format!("account {addr} has never held funds")));
    }
    let account = account.unwrap_or_default();
    Ok(Json(json!({
        "address": addr,
        "sequence": account.sequence,
        "public_key": account.public_key,
        "balances": balances,
    })))
}

/// Largest page a list endpoint returns, and its default.
pub const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;
/// Keys a page may read per item asked for (filters that match rarely end a page early,
/// with a cursor to go on).
const SCAN_PER_ITEM: usize = 8;

async fn providers(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
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
    Ok(list_json("providers", to_json(&page.items), page.next))
}

async fn provider(State(node): State<Arc<Node>>, Path(address): Path<String>) -> ApiResult {
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
    Ok(Json(json!({ "provider": to_json(&p), "audits": to_json(&audits) })))
}

fn certificate_json(c: &gridlease_ledger::state::Certificate) -> Value {
    json!({
        "owner": c.owner,
        "serial": crate::hex(&c.serial),
        "state": to_json(&c.state),
        "cert_pem": String::from_utf8_lossy(&c.cert_pem),
        "pubkey_pem": String::from_utf8_lossy(&c.pubkey_pem),
        "created_at": c.created_at,
    })
}

async fn certificates(State(node): State<Arc<Node>>, Path(address): Path<String>) -> ApiResult {
    let addr = parse_address(&address)?;
    let v = view(&node)?;
    // At most `max_certs_per_owner` records under this prefix.
    let certs: Vec<gridlease_ledger::state::Certificate> =
        query::list_prefix(&v, &keyspace::certs_of(&addr)).map_err(ApiError::unavailable)?;
    let certs: Vec<Value> = certs.iter().map(certificate_json).collect();
    Ok(Json(json!({ "certificates": certs })))
}

async fn certificate(
    State(node): State<Arc<Node>>,
    Path((address, serial)): Path<(String, String)>,
) -> ApiResult {
    let addr = parse_address(&address)?;
    let serial: [u8; 32] = crate::unhex(&serial)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad("serial must be 32 bytes in hex"))?;
    let v = view(&node)?;
    let c = query::certificate(&v, &addr, &serial).map_err(ApiError::unavailable)?.ok_or_else(
        || ApiError::not_found(format!("{addr} has no certificate with this serial")),
    )?;
    Ok(Json(json!({ "certificate": certificate_json(&c) })))
}

/// Filters and paging shared by the list endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFilter {
    owner: Option<String>,
    provider: Option<String>,
    /// State name as the objects report it (`open`, `active`, `closed`, ...).
    state: Option<String>,
    /// Most items in the answer (default 100, at most 1000).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

struct Filter {
    owner: Option<Address>,
    provider: Option<Address>,
    state: Option<String>,
    limit: usize,
    cursor: Option<Vec<u8>>,
}

impl ListFilter {
    fn parse(self) -> Result<Filter, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::bad(format!("limit must be 1 to {MAX_PAGE}")));
        }
        let cursor = match self.cursor.as_deref() {
            None => None,
            Some(c) => Some(crate::unhex(c).ok_or_else(|| {
                ApiError::bad("cursor must be the next_cursor of a previous page")
            })?),
        };
        Ok(Filter {
            owner: self.owner.as_deref().map(parse_address).transpose()?,
            provider: self.provider.as_deref().map(parse_address).transpose()?,
            state: self.state,
            limit,
            cursor,
        })
    }
}

impl Filter {
    fn state_matches<S: serde::Serialize>(&self, state: &S) -> bool {
        self.state.as_ref().is_none_or(|want| to_json(state)["state"].as_str() == Some(want))
    }

    /// Where a list of objects of `tag` keyed by owner first lives: the owner's prefix, or
    /// the whole kind.
    fn owner_prefix(&self, tag: u8) -> Vec<u8> {
        let mut prefix = vec![tag];
        if let Some(o) = self.owner {
            prefix.extend_from_slice(&o.0);
        }
        prefix
    }

    fn budget(&self) -> usize {
        self.limit * SCAN_PER_ITEM
    }
}

fn list_json(name: &str, items: Value, next: Option<Vec<u8>>) -> Json<Value> {
    Json(json!({ name: items, "next_cursor": next.map(|k| crate::hex(&k)) }))
}

fn query_filter(
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Filter, ApiError> {
    q.map_err(|e| ApiError::bad(e.body_text()))?.0.parse()
}

async fn deployments(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
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
    let list: Vec<_> = page.items.iter()
        .map(|d| json!({ "id": d.id, "state": to_json(&d.state), "manifest_hash": crate::hex(&d.manifest_hash), "groups": d.groups, "created_at": d.created_at }))
        .collect();
    Ok(list_json("deployments", Value::Array(list), page.next))
}

async fn deployment(
    State(node): State<Arc<Node>>,
    Path((owner, dseq)): Path<(String, String)>,
) -> ApiResult {
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
    Ok(Json(json!({
        "deployment": { "id": d.id, "state": to_json(&d.state), "manifest_hash": crate::hex(&d.manifest_hash), "groups": d.groups, "created_at": d.created_at },
        "groups": to_json(&groups),
        "escrow": to_json(&escrow),
    })))
}

async fn orders(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
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
    Ok(list_json("orders", to_json(&page.items), page.next))
}

async fn bids(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let f = query_filter(q)?;
    let page = bid_like_page::<gridlease_ledger::state::Bid>(
        &node,
        &f,
        (keyspace::BID, keyspace::BID_BY_PROVIDER, keyspace::bid),
        |b| (b.id, to_json(&b.state)),
    )?;
    Ok(list_json("bids", to_json(&page.items), page.next))
}

async fn leases(
    State(node): State<Arc<Node>>,
    q: Result<Query<ListFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let f = query_filter(q)?;
    let page = bid_like_page::<gridlease_ledger::state::Lease>(
        &node,
        &f,
        (keyspace::LEASE, keyspace::LEASE_BY_PROVIDER, keyspace::lease),
        |l| (l.id, to_json(&l.state)),
    )?;
    Ok(list_json("leases", to_json(&page.items), page.next))
}

/// (object tag, by-provider index tag, key of one object) of bids or leases.
type BidLikeKind = (u8, u8, fn(&gridlease_types::BidId) -> Vec<u8>);

/// A page of bids or leases (objects keyed by a bid id): by the owner's key prefix, or by
/// the provider's index when only the provider is given. `kind` is (object tag, index tag,
/// key of one object); `parts` gives an object's id and state.
fn bid_like_page<T: borsh::BorshDeserialize>(
    node: &Node,
    f: &Filter,
    kind: BidLikeKind,
    parts: impl Fn(&T) -> (gridlease_types::BidId, Value),
) -> Result<query::Page<T>, ApiError> {
    let (tag, index, primary) = kind;
    let v = view(node)?;
    let keep = |item: &T| {
        let (id, state) = parts(item);
        f.owner.is_none_or(|a| id.order.owner == a)
            && f.provider.is_none_or(|p| id.provider == p)
            && f.state_matches(&state)
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
async fn lease(State(node): State<Arc<Node>>, Path(path): BidPath) -> ApiResult {
    let id = bid_id_of(path)?;
    let v = view(&node)?;
    let l = query::lease(&v, &id)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("lease {id} does not exist")))?;
    Ok(Json(json!({ "lease": to_json(&l) })))
}

/// `GET /bids/{owner}/{dseq}/{gseq}/{oseq}/{provider}`: one bid by its id.
async fn bid(State(node): State<Arc<Node>>, Path(path): BidPath) -> ApiResult {
    let id = bid_id_of(path)?;
    let v = view(&node)?;
    let b = query::bid(&v, &id)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("bid {id} does not exist")))?;
    Ok(Json(json!({ "bid": to_json(&b) })))
}

fn block_json(node: &Node, height: u64) -> ApiResult {
    let record = read(&node.store)
        .block(height)
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let txs: Vec<String> = record.txs.iter().map(|t| crate::hex(&TxHash::of_bytes(t).0)).collect();
    Ok(Json(json!({
        "height": record.height,
        "time": rfc3339(record.time_ms),
        "time_ms": record.time_ms,
        "round": record.round,
        "parent_root": crate::hex(&record.parent_root),
        "state_root": crate::hex(&record.state_root),
        "txs": txs,
        "receipts": receipts_json(&record.receipts),
        "begin_events": to_json(&record.begin_events),
    })))
}

fn receipt_json(r: &Receipt) -> Value {
    json!({
        "tx_hash": r.tx_hash.to_string(),
        "code": to_json(&r.code),
        "log": r.log,
        "events": to_json(&r.events),
    })
}

fn receipts_json(rs: &[Receipt]) -> Vec<Value> {
    rs.iter().map(receipt_json).collect()
}

async fn latest_block(State(node): State<Arc<Node>>) -> ApiResult {
    let h = read(&node.store).height();
    block_json(&node, h)
}

async fn block(State(node): State<Arc<Node>>, Path(height): Path<String>) -> ApiResult {
    let h: u64 =
        height.parse().map_err(|_| ApiError::bad(format!("height `{height}` is not a number")))?;
    block_json(&node, h)
}

async fn tx(State(node): State<Arc<Node>>, Path(hash): Path<String>) -> ApiResult {
    let h: TxHash = hash.to_uppercase().parse().map_err(ApiError::bad)?;
    let store = read(&node.store);
    let Some((height, index)) = store.tx_location(&h.0).map_err(ApiError::unavailable)? else {
        drop(store);
        if lock(&node.mempool).contains(&h) {
            return Ok(Json(json!({ "hash": h.to_string(), "status": "pending" })));
        }
        return Err(ApiError::not_found(format!(
            "transaction {h} is neither committed nor pending"
        )));
    };
    let record = store.block(height).map_err(ApiError::unavailable)?;
    let receipt = record.as_ref().and_then(|r| r.receipts.get(index as usize));
    let tx = record
        .as_ref()
        .and_then(|r| r.txs.get(index as usize))
        .and_then(|b| gridlease_types::Tx::from_bytes(b).ok());
    Ok(Json(json!({
        "hash": h.to_string(),
        "status": "committed",
        "height": height,
        "index": index,
        "tx": to_json(&tx),
        "receipt": receipt.map(receipt_json),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The transaction's canonical bytes, hex.
    tx: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    /// `commit` waits for the block; `none` (default) returns after admission.
    wait: Option<String>,
}

async fn submit(
    State(node): State<Arc<Node>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    q: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    Metrics::add(&node.metrics.rpc_requests, 1);
    let q = q.map_err(|e| ApiError::bad(e.body_text()))?.0;
    let wait = match q.wait.as_deref() {
        None | Some("none") => false,
        Some("commit") => true,
        Some(other) => {
            return Err(ApiError::bad(format!("wait must be `none` or `commit`, not `{other}`")));
        }
    };
    let body = body.map_err(|e| match e {
        JsonRejection::BytesRejection(b) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", b.body_text())
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
    if !wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "hash": hash.to_string(), "status": "admitted" })),
        )
            .into_response());
    }
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, commits.recv()).await {
            Ok(Ok(block)) => {
                if let Some(r) = block.contains(&hash) {
                    return Ok(Json(json!({
                        "hash": hash.to_string(),
                        "status": "committed",
                        "height": block.height,
                        "receipt": receipt_json(r),
                    }))
                    .into_response());
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                if let Ok(Some((height, index))) = read(&node.store).tx_location(&hash.0) {
                    let record = read(&node.store).block(height).ok().flatten();
                    let receipt = record
                        .as_ref()
                        .and_then(|r| r.receipts.get(index as usize))
                        .map(receipt_json);
                    return Ok(Json(json!({ "hash": hash.to_string(), "status": "committed", "height": height, "receipt": receipt })).into_response());
                }
            }
            Ok(Err(_)) | Err(_) => {
                return Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({ "hash": hash.to_string(), "status": "pending" })),
                )
                    .into_response());
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFilter {
    /// Comma-separated event types (`order_opened,lease_created`); all when absent.
    types: Option<String>,
    /// Only events that mention this address (owner, provider, sender, ...).
    address: Option<String>,
}

fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

async fn events(
    State(node): State<Arc<Node>>,
    q: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let f = q.map_err(|e| ApiError::bad(e.body_text()))?.0;
    let types: Option<Vec<String>> =
        f.types.map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let address = f.address.as_deref().map(parse_address).transpose()?.map(|a| a.to_string());
    let permit = Arc::clone(&node.subscribers).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            format!("{MAX_SUBSCRIBERS} event streams are open: retry later"),
        )
    })?;
    let rx = node.committed.subscribe();
    let stream = follow_blocks(rx, permit).map(move |item| {
        Ok(match item {
            Followed::Block(block) => block_event(&block, &types, &address),
            Followed::Lagged(missed) => {
                let data = json!({ "lagged": true, "missed_blocks": missed });
                SseEvent::default().event("lagged").data(data.to_string())
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
    let mut out = Vec::new();
    let tagged = block.begin_events.iter().map(|e| (None, e)).chain(
        block.receipts.iter().flat_map(|r| r.events.iter().map(move |e| (Some(r.tx_hash), e))),
    );
    for (tx, e) in tagged {
        let v = to_json(e);
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        if types.as_ref().is_some_and(|t| !t.contains(&kind)) {
            continue;
        }
        if address.as_ref().is_some_and(|a| !mentions(&v, a)) {
            continue;
        }
        out.push(
            json!({ "height": block.height, "tx_hash": tx.map(|h| h.to_string()), "event": v }),
        );
    }
    let data = json!({ "height": block.height, "time": rfc3339(block.time_ms), "events": out });
    SseEvent::default().event("block").data(data.to_string())
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
            "busy",
            format!("{MAX_RPC_IN_FLIGHT} requests are in flight: retry later"),
        )
        .into_response();
    };
    next.run(request).await
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
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
# HELP gridlease_rpc_requests_total RPC requests served.\n# TYPE gridlease_rpc_requests_total counter\ngridlease_rpc_requests_total {}\n",
        c(&m.blocks_committed),
        c(&m.txs_committed),
        c(&m.txs_failed),
        c(&m.txs_admitted),
        c(&m.txs_rejected),
        c(&m.last_commit_micros) as f64 / 1e6,
        c(&m.rpc_requests),
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
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
