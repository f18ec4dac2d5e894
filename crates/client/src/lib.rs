//! Typed client of the node's JSON RPC, and transaction builders. Everything off-chain
//! (provider, CLI, gateway, console) talks to the chain through this crate only.
#![forbid(unsafe_code)]

pub mod events;
pub mod sdl;

use std::time::Duration;

/// The RPC's wire types, which this client decodes (the node encodes the same ones).
pub use gridlease_rpc_types as rpc;
pub use gridlease_rpc_types::{
    AccountInfo, AuditRecord, Bid, BidState, BlockEvents, CertState, CertificateView, ChainEvent,
    CloseReason, DeploymentRecord, DeploymentState, DeploymentView, ErrorCode, Event, Group,
    GroupState, Lease, LeaseState, ListQuery, NoBidReason, Order, OrderState, Params, Provider,
    ProviderRecord, Receipt, ReceiptCode, StateName, Status, SubmitResult, TxStatus,
};

use gridlease_rpc_types::{
    BidAnswer, BidsPage, CertificateAnswer, Certificates, ErrorBody, LeaseAnswer, LeasesPage,
    OrdersPage, Paged, ProvidersPage, SubmitRequest,
};
use gridlease_types::{Address, Coin, Keypair, Msg, Tx, TxBody};
use serde::Deserialize;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("node at {url} is unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("node refused the request ({status}): {message}")]
    Refused { status: u16, code: ErrorCode, message: String },
    #[error("node answered with something unexpected: {0}")]
    BadResponse(String),
    /// The event stream skipped blocks (the node said it lagged, or heights jumped): the
    /// follower must resubscribe and reconcile from the queries.
    #[error("event stream missed blocks after height {after:?}: {why}; resubscribe and reconcile")]
    EventsMissed { after: Option<u64>, why: String },
    /// The node admitted the transaction but did not commit it within its wait.
    #[error("transaction {hash} was not committed in time")]
    NotCommitted { hash: String },
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
                Err(_) => (ErrorCode::Unknown, String::from_utf8_lossy(&bytes).into_owned()),
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

    /// What `address` holds: nothing for an account the chain has never seen.
    pub async fn balances(&self, address: &Address) -> Result<Vec<Coin>, ClientError> {
        Ok(not_found_is_none(self.account(address).await)?.map(|a| a.balances).unwrap_or_default())
    }

    /// The sequence the next transaction of `address` must carry: 0 for an account the chain
    /// has never seen.
    pub async fn next_sequence(&self, address: &Address) -> Result<u64, ClientError> {
        Ok(not_found_is_none(self.account(address).await)?.map_or(0, |a| a.sequence))
    }

    /// Signs `msgs` with the builder's next sequence, submits them and waits for the block:
    /// the height and the receipt, successful or not. `NotCommitted` when the node's wait
    /// ended first.
    pub async fn submit_and_wait(
        &self,
        builder: &mut TxBuilder,
        msgs: Vec<Msg>,
    ) -> Result<(u64, Receipt), ClientError> {
        let tx = builder.build(msgs);
        let result = self.submit(&tx, true).await?;
        match (result.height, result.receipt) {
            (Some(height), Some(receipt)) => Ok((height, receipt)),
            _ => Err(ClientError::NotCommitted { hash: result.hash }),
        }
    }

    /// `GET /params`: the chain's parameters (bid window, deposits, fees, ...).
    pub async fn params(&self) -> Result<Params, ClientError> {
        self.get("/params").await
    }

    /// `GET /validators`: the set that decides the next block, and a scheduled change.
    pub async fn validators(&self) -> Result<rpc::ValidatorsAnswer, ClientError> {
        self.get("/validators").await
    }

    /// `GET /evidence`: double signs the node's consensus saw lately.
    pub async fn evidence(&self) -> Result<rpc::EvidenceAnswer, ClientError> {
        self.get("/evidence").await
    }

    /// `GET /blocks/{height}`, `None` when there is no block there (yet).
    pub async fn block(&self, height: u64) -> Result<Option<rpc::BlockView>, ClientError> {
        not_found_is_none(self.get(&format!("/blocks/{height}")).await)
    }

    /// `GET /blocks`: up to `limit` blocks below `before` (from the latest without it), newest
    /// first, each counted.
    pub async fn blocks(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<rpc::BlocksPage, ClientError> {
        let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
        self.get(&format!("/blocks?limit={limit}{before}")).await
    }

    /// `GET /txs/{hash}` (hex): committed with its receipt, or pending; `None` when the node
    /// knows nothing of it.
    pub async fn tx(&self, hash: &str) -> Result<Option<rpc::TxView>, ClientError> {
        not_found_is_none(self.get(&format!("/txs/{hash}")).await)
    }

    /// `GET /providers/{address}`, `None` when the address is not a provider.
    pub async fn provider(&self, address: &Address) -> Result<Option<ProviderRecord>, ClientError> {
        not_found_is_none(self.get(&format!("/providers/{address}")).await)
    }

    /// Every registered provider (all pages of `GET /providers`).
    pub async fn providers(&self) -> Result<Vec<Provider>, ClientError> {
        self.list_all::<ProvidersPage>("/providers", &ListQuery::default()).await
    }

    /// One page of a list endpoint (`query.limit` items at most, from `query.cursor`).
    pub async fn page<P: Paged + for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &ListQuery,
    ) -> Result<P, ClientError> {
        self.get(&format!("{path}?{}", query_string(query))).await
    }

    /// Every item of a paged list endpoint: follows `next_cursor` page by page.
    async fn list_all<P: Paged + for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &ListQuery,
    ) -> Result<Vec<P::Item>, ClientError> {
        let mut out = Vec::new();
        let mut query = ListQuery { limit: Some(LIST_PAGE), cursor: None, ..query.clone() };
        loop {
            let (items, next) = self.page::<P>(path, &query).await?.into_parts();
            out.extend(items);
            match next {
                Some(c) => query.cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// `GET /leases/{id}`: one lease, `None` when it does not exist.
    pub async fn lease(&self, id: &gridlease_types::BidId) -> Result<Option<Lease>, ClientError> {
        let o = &id.order;
        let path = format!("/leases/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider);
        Ok(not_found_is_none(self.get::<LeaseAnswer>(&path).await)?.map(|one| one.lease))
    }

    /// `GET /leases/{id}` whole: the lease and what the tenant's monitors say of it.
    pub async fn lease_record(
        &self,
        id: &gridlease_types::BidId,
    ) -> Result<Option<LeaseAnswer>, ClientError> {
        let o = &id.order;
        let path = format!("/leases/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider);
        not_found_is_none(self.get::<LeaseAnswer>(&path).await)
    }

    /// `GET /bids/{id}`: one bid, `None` when it does not exist.
    pub async fn bid(&self, id: &gridlease_types::BidId) -> Result<Option<Bid>, ClientError> {
        let o = &id.order;
        let path = format!("/bids/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider);
        Ok(not_found_is_none(self.get::<BidAnswer>(&path).await)?.map(|one| one.bid))
    }

    /// `GET /certificates/{address}/{serial}`: one certificate, `None` when unknown.
    pub async fn certificate(
        &self,
        address: &Address,
        serial: &[u8; 32],
    ) -> Result<Option<CertificateView>, ClientError> {
        let path = format!("/certificates/{address}/{}", hex(serial));
        Ok(not_found_is_none(self.get::<CertificateAnswer>(&path).await)?.map(|c| c.certificate))
    }

    /// Every certificate of `address`, valid or revoked.
    pub async fn certificates(
        &self,
        address: &Address,
    ) -> Result<Vec<CertificateView>, ClientError> {
        Ok(self.get::<Certificates>(&format!("/certificates/{address}")).await?.certificates)
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
    pub async fn orders(&self, query: &ListQuery) -> Result<Vec<Order>, ClientError> {
        self.list_all::<OrdersPage>("/orders", query).await
    }

    /// `GET /bids` with optional `owner`, `provider` and `state` filters.
    pub async fn bids(&self, query: &ListQuery) -> Result<Vec<Bid>, ClientError> {
        self.list_all::<BidsPage>("/bids", query).await
    }

    /// `GET /leases` with optional `owner`, `provider` and `state` filters.
    pub async fn leases(&self, query: &ListQuery) -> Result<Vec<Lease>, ClientError> {
        self.list_all::<LeasesPage>("/leases", query).await
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
        let body = SubmitRequest { tx: hex(bytes) };
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

/// Page size the client asks for when it reads a whole list.
const LIST_PAGE: usize = 1_000;

/// The query string of a list request. Addresses, state names and cursors are made of
/// characters that need no escaping (bech32, snake_case, hex); anything else in `state` is
/// percent-encoded.
fn query_string(query: &ListQuery) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &query.owner {
        parts.push(format!("owner={o}"));
    }
    if let Some(p) = &query.provider {
        parts.push(format!("provider={p}"));
    }
    if let Some(d) = query.dseq {
        parts.push(format!("dseq={d}"));
    }
    if let Some(s) = &query.state {
        let escaped: String = s
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        parts.push(format!("state={escaped}"));
    }
    if let Some(limit) = query.limit {
        parts.push(format!("limit={limit}"));
    }
    if let Some(c) = &query.cursor {
        parts.push(format!("cursor={c}"));
    }
    parts.join("&")
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
    /// The chain's `fee_per_msg` and `fee_per_byte`.
    pub fn of_params(params: &Params) -> FeeSchedule {
        FeeSchedule { per_msg: params.fee_per_msg, per_byte: params.fee_per_byte }
    }

    pub fn required(&self, msgs: usize, bytes: usize) -> u128 {
        self.per_msg
            .saturating_mul(msgs as u128)
            .saturating_add(self.per_byte.saturating_mul(bytes as u128))
    }
}

impl TxBuilder {
    /// A builder that pays the chain's own fees (`min_fee` in the native denomination, or the
    /// size-based fee when more), with the chain id and the key's sequence read from the node.
    pub async fn for_chain(client: &Client, key: Keypair) -> Result<TxBuilder, ClientError> {
        let params = client.params().await?;
        let fee = Coin::new(params.min_fee, &params.native_denom);
        Self::with_params(client, key, fee, &params).await
    }

    /// A builder paying `fee` (at least; the size-based fee when more), with the chain id and
    /// the key's sequence read from the node.
    pub async fn for_key(
        client: &Client,
        key: Keypair,
        fee: Coin,
    ) -> Result<TxBuilder, ClientError> {
        Self::with_params(client, key, fee, &client.params().await?).await
    }

    async fn with_params(
        client: &Client,
        key: Keypair,
        fee: Coin,
        params: &Params,
    ) -> Result<TxBuilder, ClientError> {
        let status = client.status().await?;
        let sequence = client.next_sequence(&key.address()).await?;
        let fees = FeeSchedule::of_params(params);
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
