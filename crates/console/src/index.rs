//! The console's picture of the whole market, which the market page, the provider list's
//! search and sort, and the search box read: built by paging through the node's list
//! queries, refreshed after new blocks, and published whole (`Arc<Snapshot>`) by the one task
//! that owns it. The providers' own words (inventory, free GPUs, prices) and their records
//! on chain (audits, uptime) are polled apart, more slowly, by a second task.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gridlease_client::rpc::{DeploymentsPage, LeasesPage, Paged};
use gridlease_client::{Bid, Client, ClientError, Lease, LeaseState, ListQuery, Provider};
use gridlease_provider::api::ProviderStatus;
use gridlease_provider::api_client::ProviderApi;
use gridlease_types::{Address, BidId, DecAmount};
use serde::Deserialize;
use tokio::sync::watch;

use crate::reference::{ReferencePrices, saving_percent};

/// What the console knows of the market at one height.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub height: u64,
    /// Seconds per block, measured over the latest blocks.
    pub block_seconds: f64,
    /// How long building it took.
    pub build: Duration,
    pub providers: BTreeMap<Address, ProviderSummary>,
    pub leases_active: usize,
    pub leases_total: usize,
    pub deployments: usize,
    /// Owners of each dseq (the search box's numbers).
    pub dseq_owners: BTreeMap<u64, Vec<Address>>,
    pub market: Vec<GpuRow>,
    pub history: History,
    /// Providers whose public status answered at the last poll, of those asked.
    pub statuses_answered: usize,
    pub statuses_asked: usize,
}

impl Snapshot {
    pub fn blocks_per_hour(&self) -> f64 {
        if self.block_seconds > 0.0 { 3600.0 / self.block_seconds } else { f64::NAN }
    }
}

/// One provider as the lists show it.
#[derive(Clone, Debug)]
pub struct ProviderSummary {
    pub provider: Provider,
    pub active_leases: u32,
    pub leases_served: u32,
    /// GPUs its active leases hold.
    pub leased_gpus: u32,
    /// GPU models it leased or offers.
    pub gpu_models: BTreeSet<String>,
    /// Price × blocks of every lease it held, per denomination (an estimate of what it
    /// earned: the blocks its tenants' monitors held down were not paid).
    pub billed: BTreeMap<String, DecAmount>,
    pub extra: Option<Arc<ProviderExtra>>,
}

impl ProviderSummary {
    /// Uptime in parts per million, when its record was read.
    pub fn uptime_ppm(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.uptime_ppm)
    }
}

/// What the slow poll learnt of one provider.
#[derive(Clone, Debug)]
pub struct ProviderExtra {
    pub uptime_ppm: Option<u64>,
    pub audited_by: Vec<Address>,
    /// Its public status, or why it could not be read.
    pub status: Result<StatusSummary, String>,
}

/// The part of a provider's public status the market needs.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusSummary {
    /// Model → (units, free units).
    pub gpus: BTreeMap<String, (u32, u32)>,
    pub denom: String,
    /// Model → price per GPU per block.
    pub gpu_prices: BTreeMap<String, f64>,
}

impl StatusSummary {
    pub fn of(status: &ProviderStatus) -> StatusSummary {
        let mut gpus: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for g in &status.inventory.gpus {
            gpus.entry(g.model.to_ascii_lowercase()).or_default().0 += 1;
        }
        for (model, free) in &status.free.gpus {
            let e = gpus.entry(model.to_ascii_lowercase()).or_default();
            e.1 = (*free).min(e.0);
        }
        let parse = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        let default = parse(&status.pricing.gpu_default);
        let mut gpu_prices = BTreeMap::new();
        for model in gpus.keys() {
            let price = status.pricing.gpu.get(model).and_then(|p| parse(p)).or(default);
            if let Some(p) = price {
                gpu_prices.insert(model.clone(), p);
            }
        }
        StatusSummary { gpus, denom: status.pricing.denom.clone(), gpu_prices }
    }
}

/// One GPU model on the market page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuRow {
    pub model: String,
    /// Providers that list it in their inventory.
    pub providers: u32,
    /// Units in the inventories that answered.
    pub units: u32,
    pub free: u32,
    /// Units active leases hold (from the chain, whatever the providers answer).
    pub leased: u32,
    /// Per denomination: the median price per GPU-hour of the active leases.
    pub lease_price_hour: BTreeMap<String, f64>,
    /// Per denomination: the lowest price per GPU-hour the providers ask.
    pub offer_low_hour: BTreeMap<String, f64>,
    /// The median lease price in dollars (stable denominations), else the lowest offer's.
    pub usd_hour: Option<f64>,
    pub reference_usd_hour: Option<f64>,
    pub reference_source: String,
    pub saving_percent: Option<f64>,
}

impl GpuRow {
    /// Leased share of the units the answering providers list, in percent (at most 100:
    /// providers that did not answer may hold leased units too); `None` when none answered.
    pub fn utilization(&self) -> Option<f64> {
        (self.units > 0)
            .then(|| (f64::from(self.leased) * 100.0 / f64::from(self.units)).min(100.0))
    }
}

/// The market over chain time, from the leases' start and close heights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The heights sampled, oldest first.
    pub heights: Vec<u64>,
    /// Model → GPUs leased at each height.
    pub leased: BTreeMap<String, Vec<f64>>,
    /// Model → median price per GPU-hour in dollars of the leases active at each height (NaN
    /// where none was priced in a priced denomination).
    pub usd_hour: BTreeMap<String, Vec<f64>>,
}

/// Points on each chart.
pub const HISTORY_POINTS: usize = 48;

/// A lease with what its winning bid offered.
#[derive(Clone, Debug)]
pub struct LeaseFacts {
    pub id: BidId,
    pub created_at: u64,
    pub closed_at: Option<u64>,
    pub denom: String,
    /// Price per block of the whole lease.
    pub price: f64,
    pub price_dec: DecAmount,
    /// GPUs by model.
    pub gpus: BTreeMap<String, u32>,
}

impl LeaseFacts {
    pub fn of(lease: &Lease, bid: Option<&Bid>) -> LeaseFacts {
        let mut gpus = BTreeMap::new();
        for offer in bid.map(|b| b.offer.as_slice()).unwrap_or_default() {
            if let Some(g) = &offer.gpu {
                *gpus.entry(g.model.to_ascii_lowercase()).or_insert(0u32) +=
                    offer.count.saturating_mul(g.units);
            }
        }
        LeaseFacts {
            id: lease.id,
            created_at: lease.created_at,
            closed_at: match lease.state {
                LeaseState::Active => None,
                LeaseState::Closed { at, .. } => Some(at),
            },
            denom: lease.price.denom.to_string(),
            price: dec_f64(lease.price.amount),
            price_dec: lease.price.amount,
            gpus,
        }
    }

    fn active_at(&self, h: u64) -> bool {
        self.created_at <= h && self.closed_at.is_none_or(|c| c > h)
    }

    fn gpu_count(&self) -> u32 {
        self.gpus.values().sum()
    }
}

pub fn dec_f64(d: DecAmount) -> f64 {
    d.0 as f64 / 1e18
}

/// The median of `xs` (NaN when empty).
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// The market page's rows from the leases (chain) and the providers' statuses.
pub fn market_rows(
    leases: &[LeaseFacts],
    statuses: &[&StatusSummary],
    blocks_per_hour: f64,
    reference: &ReferencePrices,
) -> Vec<GpuRow> {
    let mut rows: BTreeMap<String, GpuRow> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<String, GpuRow>, model: &str| -> GpuRow {
        rows.remove(model)
            .unwrap_or_else(|| GpuRow { model: model.to_string(), ..GpuRow::default() })
    };
    let mut lease_prices: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut usd_prices: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in leases.iter().filter(|l| l.closed_at.is_none()) {
        let all = l.gpu_count();
        for (model, units) in &l.gpus {
            let mut r = row(&mut rows, model);
            r.leased = r.leased.saturating_add(*units);
            rows.insert(model.clone(), r);
            if all > 0 {
                let per_hour = l.price / f64::from(all) * blocks_per_hour;
                lease_prices.entry((model.clone(), l.denom.clone())).or_default().push(per_hour);
                if let Some(usd) = reference.usd_per_unit(&l.denom) {
                    usd_prices.entry(model.clone()).or_default().push(per_hour * usd);
                }
            }
        }
    }
    let mut offer_usd: BTreeMap<String, f64> = BTreeMap::new();
    for s in statuses {
        for (model, (units, free)) in &s.gpus {
            let mut r = row(&mut rows, model);
            r.providers += 1;
            r.units = r.units.saturating_add(*units);
            r.free = r.free.saturating_add(*free);
            if let Some(price) = s.gpu_prices.get(model) {
                let per_hour = price * blocks_per_hour;
                let low = r.offer_low_hour.entry(s.denom.clone()).or_insert(per_hour);
                *low = low.min(per_hour);
                if let Some(usd) = reference.usd_per_unit(&s.denom) {
                    let e = offer_usd.entry(model.clone()).or_insert(per_hour * usd);
                    *e = e.min(per_hour * usd);
                }
            }
            rows.insert(model.clone(), r);
        }
    }
    for ((model, denom), mut prices) in lease_prices {
        if let Some(r) = rows.get_mut(&model) {
            r.lease_price_hour.insert(denom, median(&mut prices));
        }
    }
    for r in rows.values_mut() {
        let leased_usd = usd_prices.get_mut(&r.model).map(|p| median(p));
        r.usd_hour =
            leased_usd.filter(|x| x.is_finite()).or_else(|| offer_usd.get(&r.model).copied());
        if let Some(g) = reference.gpu(&r.model) {
            r.reference_usd_hour = Some(g.usd_per_hour);
            r.reference_source = g.source.clone();
            r.saving_percent = r.usd_hour.map(|ours| saving_percent(ours, g.usd_per_hour));
        }
    }
    let mut out: Vec<GpuRow> = rows.into_values().collect();
    out.sort_by(|a, b| (b.leased + b.units).cmp(&(a.leased + a.units)).then(a.model.cmp(&b.model)));
    out
}

/// GPUs leased and their median dollar price, per model, at `HISTORY_POINTS` heights from
/// the first lease to `height`.
pub fn history(
    leases: &[LeaseFacts],
    height: u64,
    blocks_per_hour: f64,
    reference: &ReferencePrices,
) -> History {
    let Some(first) = leases.iter().map(|l| l.created_at).min() else {
        return History::default();
    };
    let span = height.saturating_sub(first);
    let points = if span == 0 { 1 } else { HISTORY_POINTS };
    let heights: Vec<u64> = (0..points)
        .map(|i| if points == 1 { height } else { first + span * i as u64 / (points as u64 - 1) })
        .collect();
    let models: BTreeSet<&String> = leases.iter().flat_map(|l| l.gpus.keys()).collect();
    let mut leased: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut usd_hour: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for model in models {
        let mut counts = Vec::with_capacity(points);
        let mut prices = Vec::with_capacity(points);
        for &h in &heights {
            let mut n = 0u32;
            let mut usd = Vec::new();
            for l in leases.iter().filter(|l| l.active_at(h)) {
                let Some(units) = l.gpus.get(model) else { continue };
                n = n.saturating_add(*units);
                if let Some(rate) = reference.usd_per_unit(&l.denom) {
                    usd.push(l.price / f64::from(l.gpu_count().max(1)) * blocks_per_hour * rate);
                }
            }
            counts.push(f64::from(n));
            prices.push(median(&mut usd));
        }
        leased.insert(model.clone(), counts);
        usd_hour.insert(model.clone(), prices);
    }
    History { heights, leased, usd_hour }
}

/// Every item of a paged list endpoint.
pub async fn list_all<P: Paged + for<'de> Deserialize<'de>>(
    client: &Client,
    path: &str,
    query: &ListQuery,
) -> Result<Vec<P::Item>, ClientError> {
    let mut out = Vec::new();
    let mut q = ListQuery { limit: Some(1000), cursor: None, ..query.clone() };
    loop {
        let (items, next) = client.page::<P>(path, &q).await?.into_parts();
        out.extend(items);
        match next {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Seconds per block over the latest (at most) 100 blocks.
async fn block_seconds(client: &Client, height: u64, latest_ms: u64) -> f64 {
    let back = height.saturating_sub(100).max(1);
    if back >= height {
        return f64::NAN;
    }
    match client.block(back).await {
        Ok(Some(b)) if latest_ms > b.time_ms => {
            (latest_ms - b.time_ms) as f64 / 1000.0 / (height - back) as f64
        }
        _ => f64::NAN,
    }
}

/// Builds a snapshot from the node, with the providers' extras polled so far.
pub async fn build(
    client: &Client,
    extras: &BTreeMap<Address, Arc<ProviderExtra>>,
    reference: &ReferencePrices,
) -> Result<Snapshot, ClientError> {
    let started = Instant::now();
    let status = client.status().await?;
    let height = status.latest_height;
    let block_seconds = block_seconds(client, height, status.latest_block_time_ms).await;
    let providers = client.providers().await?;
    let leases = list_all::<LeasesPage>(client, "/leases", &ListQuery::default()).await?;
    let won = client.bids(&ListQuery { state: Some("won".into()), ..Default::default() }).await?;
    let deployments =
        list_all::<DeploymentsPage>(client, "/deployments", &ListQuery::default()).await?;
    let won: BTreeMap<BidId, Bid> = won.into_iter().map(|b| (b.id, b)).collect();
    // A closed lease's bid is closed too: only active leases find theirs among the won.
    let facts: Vec<LeaseFacts> = leases.iter().map(|l| LeaseFacts::of(l, won.get(&l.id))).collect();

    let mut summaries: BTreeMap<Address, ProviderSummary> = providers
        .into_iter()
        .map(|p| {
            let extra = extras.get(&p.owner).cloned();
            let gpu_models = extra
                .as_ref()
                .and_then(|e| e.status.as_ref().ok())
                .map(|s| s.gpus.keys().cloned().collect())
                .unwrap_or_default();
            (
                p.owner,
                ProviderSummary {
                    provider: p,
                    active_leases: 0,
                    leases_served: 0,
                    leased_gpus: 0,
                    gpu_models,
                    billed: BTreeMap::new(),
                    extra,
                },
            )
        })
        .collect();
    for l in &facts {
        let Some(s) = summaries.get_mut(&l.id.provider) else { continue };
        s.leases_served += 1;
        if l.closed_at.is_none() {
            s.active_leases += 1;
            s.leased_gpus = s.leased_gpus.saturating_add(l.gpu_count());
        }
        s.gpu_models.extend(l.gpus.keys().cloned());
        let blocks = l.closed_at.unwrap_or(height).saturating_sub(l.created_at);
        let billed = DecAmount(l.price_dec.0.saturating_mul(u128::from(blocks)));
        let e = s.billed.entry(l.denom.clone()).or_default();
        *e = DecAmount(e.0.saturating_add(billed.0));
    }
    let bph = if block_seconds > 0.0 { 3600.0 / block_seconds } else { f64::NAN };
    let statuses: Vec<&StatusSummary> =
        extras.values().filter_map(|e| e.status.as_ref().ok()).collect();
    let market = market_rows(&facts, &statuses, bph, reference);
    let history = history(&facts, height, bph, reference);
    let mut dseq_owners: BTreeMap<u64, Vec<Address>> = BTreeMap::new();
    for d in &deployments {
        dseq_owners.entry(d.id.dseq).or_default().push(d.id.owner);
    }
    Ok(Snapshot {
        height,
        block_seconds,
        build: started.elapsed(),
        leases_active: facts.iter().filter(|l| l.closed_at.is_none()).count(),
        leases_total: facts.len(),
        deployments: deployments.len(),
        providers: summaries,
        dseq_owners,
        market,
        history,
        statuses_answered: statuses.len(),
        statuses_asked: extras.len(),
    })
}

/// How long one provider may take to answer the status poll.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Providers asked at once.
const POLL_CONCURRENCY: usize = 32;

/// The record and public status of one provider.
pub async fn poll_provider(client: &Client, address: Address) -> ProviderExtra {
    let record = client.provider(&address).await.ok().flatten();
    let status = tokio::time::timeout(STATUS_TIMEOUT, async {
        let api =
            ProviderApi::from_chain(client, &address, None).await.map_err(|e| e.to_string())?;
        api.status().await.map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 3 s".into()));
    ProviderExtra {
        uptime_ppm: record.as_ref().map(|r| r.uptime_ppm),
        audited_by: record
            .map(|r| r.audits.iter().map(|a| a.auditor).collect())
            .unwrap_or_default(),
        status: status.map(|s| StatusSummary::of(&s)),
    }
}

/// Polls every provider's record and public status, `POLL_CONCURRENCY` at a time.
pub async fn poll_all(
    client: &Client,
    addresses: Vec<Address>,
) -> BTreeMap<Address, Arc<ProviderExtra>> {
    futures_util::stream::iter(addresses)
        .map(|a| async move { (a, Arc::new(poll_provider(client, a).await)) })
        .buffer_unordered(POLL_CONCURRENCY)
        .collect()
        .await
}

/// How the index refreshes.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Least time between two builds of the snapshot.
    pub snapshot: Duration,
    /// Time between two polls of the providers.
    pub providers: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence { snapshot: Duration::from_secs(3), providers: Duration::from_secs(30) }
    }
}

/// Starts the two tasks; the receiver always holds the latest snapshot (an empty one until
/// the first build).
pub fn start(
    client: Client,
    reference: Arc<ReferencePrices>,
    cadence: Cadence,
    mut new_block: watch::Receiver<u64>,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let (extras_tx, extras_rx) = watch::channel(Arc::new(BTreeMap::new()));
    let poller_client = client.clone();
    let poller_snapshots = rx.clone();
    tokio::spawn(async move {
        let snapshots = poller_snapshots;
        loop {
            // The providers of the latest snapshot, or of the chain before the first.
            let mut addresses: Vec<Address> =
                snapshots.borrow().providers.keys().copied().collect();
            if addresses.is_empty() {
                addresses = poller_client
                    .providers()
                    .await
                    .map(|ps| ps.into_iter().map(|p| p.owner).collect())
                    .unwrap_or_default();
            }
            let extras = poll_all(&poller_client, addresses).await;
            if extras_tx.send(Arc::new(extras)).is_err() {
                return;
            }
            tokio::time::sleep(cadence.providers).await;
        }
    });
    tokio::spawn(async move {
        let mut extras_rx = extras_rx;
        loop {
            let extras = extras_rx.borrow_and_update().clone();
            match build(&client, &extras, &reference).await {
                Ok(s) => {
                    tracing::debug!(target: "console.index", height = s.height, build_ms = s.build.as_millis() as u64, "snapshot built");
                    if tx.send(Arc::new(s)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "console.index", "cannot build the market snapshot: {e}")
                }
            }
            tokio::time::sleep(cadence.snapshot).await;
            // Then wait for a new block or new extras (at most a minute, to retry errors).
            tokio::select! {
                _ = new_block.changed() => {}
                _ = extras_rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address([i; 20])
    }

    fn lease(
        dseq: u64,
        created: u64,
        closed: Option<u64>,
        denom: &str,
        price: f64,
        gpus: &[(&str, u32)],
    ) -> LeaseFacts {
        let id = BidId {
            order: gridlease_types::OrderId { owner: addr(1), dseq, gseq: 1, oseq: 1 },
            provider: addr(2),
        };
        LeaseFacts {
            id,
            created_at: created,
            closed_at: closed,
            denom: denom.into(),
            price,
            price_dec: DecAmount((price * 1e18) as u128),
            gpus: gpus.iter().map(|(m, n)| (m.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn market_rows_join_chain_leases_and_provider_offers() {
        let reference = ReferencePrices::defaults();
        // 1 block a second: 3,600 blocks an hour. Two active h100 leases (2 GPUs at 1,000
        // uusdc/block, 1 GPU at 400), one closed (ignored).
        let leases = vec![
            lease(1, 10, None, "uusdc", 1000.0, &[("h100", 2)]),
            lease(2, 20, None, "uusdc", 400.0, &[("h100", 1)]),
            lease(3, 5, Some(15), "uusdc", 9999.0, &[("h100", 8)]),
        ];
        let status = StatusSummary {
            gpus: [("h100".to_string(), (8, 5)), ("a100".to_string(), (4, 4))].into(),
            denom: "uusdc".into(),
            gpu_prices: [("h100".to_string(), 300.0), ("a100".to_string(), 200.0)].into(),
        };
        let rows = market_rows(&leases, &[&status], 3600.0, &reference);
        let h100 = rows.iter().find(|r| r.model == "h100").unwrap();
        assert_eq!((h100.leased, h100.units, h100.free, h100.providers), (3, 8, 5, 1));
        // Median of 500×3600 and 400×3600 uusdc per GPU-hour = 1.62 USD.
        assert!((h100.lease_price_hour["uusdc"] - 1_620_000.0).abs() < 1e-6);
        assert!((h100.usd_hour.unwrap() - 1.62).abs() < 1e-9);
        assert!((h100.offer_low_hour["uusdc"] - 1_080_000.0).abs() < 1e-6);
        let saving = h100.saving_percent.unwrap();
        assert!((saving - (1.0 - 1.62 / 6.88) * 100.0).abs() < 1e-9, "{saving}");
        assert!((h100.utilization().unwrap() - 37.5).abs() < 1e-9);
        // No a100 leased: its dollar price is the lowest offer.
        let a100 = rows.iter().find(|r| r.model == "a100").unwrap();
        assert_eq!(a100.leased, 0);
        assert!((a100.usd_hour.unwrap() - 0.72).abs() < 1e-9);
        // Without an answering inventory, utilization is unknown rather than 100%.
        let rows = market_rows(&leases, &[], 3600.0, &reference);
        assert_eq!(rows.iter().find(|r| r.model == "h100").unwrap().utilization(), None);
    }

    #[test]
    fn history_counts_leases_active_at_each_height() {
        let reference = ReferencePrices::defaults();
        let leases = vec![
            lease(1, 0, None, "uusdc", 100.0, &[("h100", 1)]),
            lease(2, 50, Some(80), "ugrid", 100.0, &[("h100", 2)]),
        ];
        let h = history(&leases, 94, 3600.0, &reference);
        assert_eq!(h.heights.len(), HISTORY_POINTS);
        assert_eq!((h.heights[0], *h.heights.last().unwrap()), (0, 94));
        let counts = &h.leased["h100"];
        let at = |height: u64| counts[h.heights.iter().position(|x| *x >= height).unwrap()];
        assert_eq!(at(0), 1.0);
        assert_eq!(at(60), 3.0);
        assert_eq!(*counts.last().unwrap(), 1.0);
        // ugrid has no dollar price: the median is of the uusdc lease alone.
        assert!(h.usd_hour["h100"].iter().all(|p| (p - 0.36).abs() < 1e-9));
        assert_eq!(history(&[], 10, 3600.0, &reference), History::default());
    }

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
