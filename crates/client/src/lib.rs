//! Typed client of the node's JSON RPC, and transaction builders. Everything off-chain
//! (provider, CLI, gateway, console) talks to the chain through this crate only.
#![forbid(unsafe_code)]

pub mod dto;
pub mod events;
pub mod sdl;

use std::time::Duration;

pub use dto::*;

use gridlease_types::{Address, Coin, Keypair, Msg, Tx, TxBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("node at {url} is unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("node refused the request ({status}): {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("node answered with something unexpected: {0}")]
    BadResponse(String),
    /// The event stream skipped blocks (the node said it lagged, or heights jumped): the
    /// follower must resubscribe and reconcile from the queries.
    #[error("event stream missed blocks after height {after:?}: {why}; resubscribe and reconcile")]
    EventsMissed { after: Option<u64>, why: String },
}

/// `GET /status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub chain_id: String,
    pub latest_height: u64,
    pub latest_block_time: String,
    pub latest_block_time_ms: u64,
    pub state_root: String,
    pub mempool_size: usize,
}

/// A transaction's receipt as the RPC reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptInfo {
    pub tx_hash: String,
    /// `ok` or the snake_case receipt code.
    pub code: String,
    pub log: String,
    pub events: Vec<Value>,
}

impl ReceiptInfo {
    pub fn is_ok(&self) -> bool {
        self.code == "ok"
    }
}

/// `POST /txs` result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitResult {
    pub hash: String,
    /// `admitted` (in the mempool), `committed` (with `height` and `receipt`), or `pending`
    /// (admitted, but not committed within the wait).
    pub status: String,
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(default)]
    pub receipt: Option<ReceiptInfo>,
}

/// `GET /accounts/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    pub address: Address,
    pub sequence: u64,
    pub balances: Vec<Coin>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client { base: url.trim_end_matches('/').to_string(), http }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::BadResponse(e.to_string()))?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.error, b.message),
                Err(_) => ("http".into(), String::from_utf8_lossy(&bytes).into_owned()),
            };
            return Err(ClientError::Refused { status: status.as_u16(), code, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// `GET` any path and decode its JSON.
    pub async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        self.decode(resp).await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/status").await
    }

    pub async fn account(&self, address: &Address) -> Result<AccountInfo, ClientError> {
        self.get(&format!("/accounts/{address}")).await
    }

    /// `GET /params`: the chain's parameters as JSON (bid window, deposits, fees, ...).
    pub async fn params(&self) -> Result<Value, ClientError> {
        self.get("/params").await
    }

    /// `GET /providers/{address}`, `None` when the address is not a provider.
    pub async fn provider(&self, address: &Address) -> Result<Option<ProviderRecord>, ClientError> {
        not_found_is_none(self.get(&format!("/providers/{address}")).await)
    }

    /// Every registered provider (all pages of `GET /providers`).
    pub async fn providers(&self) -> Result<Vec<ProviderDto>, ClientError> {
        self.list_all("/providers", "providers", &ListQuery::default()).await
    }

    /// Every item of a paged list endpoint: follows `next_cursor` page by page.
    async fn list_all<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        field: &str,
        query: &ListQuery,
    ) -> Result<Vec<T>, ClientError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut parts = query.parts();
            parts.push(format!("limit={LIST_PAGE}"));
            if let Some(c) = &cursor {
                parts.push(format!("cursor={c}"));
            }
            let page: Value = self.get(&format!("{path}?{}", parts.join("&"))).await?;
            let items: Vec<T> = serde_json::from_value(page[field].clone())
                .map_err(|e| ClientError::BadResponse(format!("{path}: {e}")))?;
            out.extend(items);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// `GET /leases/{id}`: one lease, `None` when it does not exist.
    pub async fn lease(
        &self,
        id: &gridlease_types::BidId,
    ) -> Result<Option<LeaseDto>, ClientError> {
        #[derive(Deserialize)]
        struct One {
            lease: LeaseDto,
        }
        let o = &id.order;
        let path = format!("/leases/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider);
        Ok(not_found_is_none(self.get::<One>(&path).await)?.map(|one| one.lease))
    }

    /// `GET /bids/{id}`: one bid, `None` when it does not exist.
    pub async fn bid(&self, id: &gridlease_types::BidId) -> Result<Option<BidDto>, ClientError> {
        #[derive(Deserialize)]
        struct One {
            bid: BidDto,
        }
        let o = &id.order;
        let path = format!("/bids/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider);
        Ok(not_found_is_none(self.get::<One>(&path).await)?.map(|one| one.bid))
    }

    /// `GET /certificates/{address}/{serial}`: one certificate, `None` when unknown.
    pub async fn certificate(
        &self,
        address: &Address,
        serial: &[u8; 32],
    ) -> Result<Option<CertificateDto>, ClientError> {
        #[derive(Deserialize)]
        struct One {
            certificate: CertificateDto,
        }
        let path = format!("/certificates/{address}/{}", hex(serial));
        Ok(not_found_is_none(self.get::<One>(&path).await)?.map(|one| one.certificate))
    }

    /// Every certificate of `address`, valid or revoked.
    pub async fn certificates(
        &self,
        address: &Address,
    ) -> Result<Vec<CertificateDto>, ClientError> {
        #[derive(Deserialize)]
        struct List {
            certificates: Vec<CertificateDto>,
        }
        Ok(self.get::<List>(&format!("/certificates/{address}")).await?.certificates)
    }

    /// A deployment with its groups and escrow, `None` when it does not exist.
    pub async fn deployment(
        &self,
        owner: &Address,
        dseq: u64,
    ) -> Result<Option<DeploymentRecord>, ClientError> {
        not_found_is_none(self.get(&format!("/deployments/{owner}/{dseq}")).await)
    }

    /// `GET /orders` with optional `owner` and `state` filters.
    pub async fn orders(&self, query: &ListQuery) -> Result<Vec<OrderDto>, ClientError> {
        self.list_all("/orders", "orders", query).await
    }

    /// `GET /bids` with optional `owner`, `provider` and `state` filters.
    pub async fn bids(&self, query: &ListQuery) -> Result<Vec<BidDto>, ClientError> {
        self.list_all("/bids", "bids", query).await
    }

    /// `GET /leases` with optional `owner`, `provider` and `state` filters.
    pub async fn leases(&self, query: &ListQuery) -> Result<Vec<LeaseDto>, ClientError> {
        self.list_all("/leases", "leases", query).await
    }

    /// Submits a signed transaction. With `wait_commit`, returns once it is in a block (or
    /// after the node's wait limit, with status `pending`).
    pub async fn submit(&self, tx: &Tx, wait_commit: bool) -> Result<SubmitResult, ClientError> {
        self.submit_bytes(&tx.to_bytes(), wait_commit).await
    }

    pub async fn submit_bytes(
        &self,
        bytes: &[u8],
        wait_commit: bool,
    ) -> Result<SubmitResult, ClientError> {
        let wait = if wait_commit { "commit" } else { "none" };
        let url = format!("{}/txs?wait={wait}", self.base);
        let body = serde_json::json!({ "tx": hex(bytes) });
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        self.decode(resp).await
    }
}

fn not_found_is_none<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Filters of the list endpoints.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub owner: Option<Address>,
    pub provider: Option<Address>,
    /// State name (`open`, `active`, `closed`, ...).
    pub state: Option<String>,
}

/// Page size the client asks for when it reads a whole list.
const LIST_PAGE: usize = 1_000;

impl ListQuery {
    fn parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if let Some(o) = &self.owner {
            parts.push(format!("owner={o}"));
        }
        if let Some(p) = &self.provider {
            parts.push(format!("provider={p}"));
        }
        if let Some(s) = &self.state {
            parts.push(format!("state={s}"));
        }
        parts
    }
}

/// Builds and signs transactions for one key, tracking its sequence.
#[derive(Debug)]
pub struct TxBuilder {
    pub key: Keypair,
    pub chain_id: String,
    pub sequence: u64,
    /// The fee paid when the size-based fee is lower.
    pub fee: Coin,
    pub fees: FeeSchedule,
}

/// The chain's fee per message and per byte (`/params`), for transactions bigger than the
/// flat minimum covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeeSchedule {
    pub per_msg: u128,
    pub per_byte: u128,
}

impl FeeSchedule {
    /// Reads `fee_per_msg` and `fee_per_byte` from `/params` (absent: zero).
    pub fn of_params(params: &Value) -> FeeSchedule {
        let num = |k: &str| params[k].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        FeeSchedule { per_msg: num("fee_per_msg"), per_byte: num("fee_per_byte") }
    }

    pub fn required(&self, msgs: usize, bytes: usize) -> u128 {
        self.per_msg
            .saturating_mul(msgs as u128)
            .saturating_add(self.per_byte.saturating_mul(bytes as u128))
    }
}

impl TxBuilder {
    /// A builder whose sequence is read from the node.
    pub async fn for_key(
        client: &Client,
        key: Keypair,
        fee: Coin,
    ) -> Result<TxBuilder, ClientError> {
        let status = client.status().await?;
        let sequence = match client.account(&key.address()).await {
            Ok(a) => a.sequence,
            Err(ClientError::Refused { status: 404, .. }) => 0,
            Err(e) => return Err(e),
        };
        let fees = FeeSchedule::of_params(&client.params().await?);
        Ok(TxBuilder { key, chain_id: status.chain_id, sequence, fee, fees })
    }

    /// Signs `messages` with the next sequence, paying `fee` or, when the transaction is big
    /// enough, what the chain's fee per message and per byte asks.
    pub fn build(&mut self, messages: Vec<Msg>) -> Tx {
        let mut body = TxBody {
            chain_id: self.chain_id.clone(),
            signer: self.key.address(),
            sequence: self.sequence,
            fee: self.fee.clone(),
            memo: String::new(),
            messages,
        };
        let mut tx = body.clone().sign(&self.key);
        // The fee is a fixed-width integer: raising it does not change the length.
        let required = self.fees.required(body.messages.len(), tx.to_bytes().len());
        if required > body.fee.amount {
            body.fee.amount = required;
            tx = body.sign(&self.key);
        }
        self.sequence += 1;
        tx
    }
}

pub use gridlease_types::hex::encode as hex;
