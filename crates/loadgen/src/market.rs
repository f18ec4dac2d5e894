//! `market`: seeds a running node with many providers, deployments, bids and active leases
//! through real signed transactions, so that a console or an RPC client can be measured on a
//! market of realistic size.
//!
//! Every account is a seed-derived key (`accounts`): providers are indices `0..P`, tenants
//! `P..P+T`, all funded at genesis. The whole market is planned up front (`plan.rs`) and every
//! transaction signed before the first is sent, so the funds each account needs are checked
//! first. Then the providers register, and the orders go out in waves: a wave's deployments,
//! then, once they are in a block, the bids on their orders (1 to `--max-bids` per order,
//! distinct providers offering the asked GPU model, at distinct prices). The chain closes each
//! auction `bid_window` blocks after the order opened and makes the cheapest bid a lease;
//! nobody accepts anything. A wave's bids go out while its auctions are open when at least two
//! blocks of the window are left; otherwise (a short window, a slow chain) the seeder waits
//! until the auctions have stalled without bids, and the first bid on a stalled order opens a
//! new window.
//!
//! Each signer's transactions are posted in sequence order, `--concurrency` signers at a time,
//! and their receipts read from the blocks. A refused or failed transaction stops the run.

mod plan;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use gridlease_client::rpc::DeploymentsPage;
use gridlease_client::{
    AccountInfo, Client, ClientError, FeeSchedule, ListQuery, Params, ReceiptCode, TxBuilder,
};
use gridlease_types::tx::{MAX_MSGS, MAX_TX_BYTES};
use gridlease_types::{Address, Coin, Denom, Msg, OrderId, TxHash};
use tokio::time::Instant;

use crate::accounts;
use plan::{MarketPlan, PlanSettings};

#[derive(Args)]
pub struct MarketArgs {
    /// The node's RPC base URL.
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    rpc: String,
    /// Seed of the accounts (fund them at genesis: `accounts --seed S --count P+T --coins ...`)
    /// and of the market's plan.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Providers to register: accounts 0..P.
    #[arg(long, default_value_t = 100)]
    providers: usize,
    /// Tenants owning the deployments: accounts P..P+T.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Active leases to create (one order each; deployments hold 1 to 3 orders).
    #[arg(long, default_value_t = 1_000)]
    leases: usize,
    /// Orders created per wave: a wave's deployments go in, then its bids.
    #[arg(long, default_value_t = 2_500)]
    wave: usize,
    /// Most bids on one order (each order gets 1 to this many; at most the chain's
    /// `max_bids_per_order`).
    #[arg(long, default_value_t = 3)]
    max_bids: usize,
    /// Escrow denominations the deployments are priced in, comma-separated.
    #[arg(long, default_value = "uusdc,uact")]
    denoms: String,
    /// Blocks each deployment's deposit pays for at its maximum price (86,400: a day of
    /// one-second blocks), so the leases stay active while a console is measured.
    #[arg(long, default_value_t = 86_400)]
    deposit_blocks: u64,
    /// Signers posting at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Give up when the chain commits none of the awaited transactions (or no block) for this
    /// many seconds.
    #[arg(long, default_value_t = 60.0)]
    stall_timeout: f64,
}

/// What a message creates in the plan: a deployment `(d, 0)`, or a bid on group `(d, g)`
/// (provider registrations are `(p, 0)`).
type Item = (usize, usize);

/// One signed transaction, ready to post.
struct Signed {
    bytes: Vec<u8>,
    hash: TxHash,
    /// What it does, for messages.
    what: String,
    /// What its messages create.
    items: Vec<Item>,
}

/// Transactions of one step, per signer, each signer's in sequence order.
type Batch = Vec<Vec<Signed>>;

/// One wave: deployments `range` of the plan, their transactions and their bids'.
struct Wave {
    range: std::ops::Range<usize>,
    deployments: Batch,
    bids: Batch,
}

/// What each account spends: fees and bid deposits in the native denomination, deposits in
/// escrow denominations.
#[derive(Default, Clone)]
struct Spend(BTreeMap<Denom, u128>);

impl Spend {
    fn add(&mut self, denom: &Denom, amount: u128) {
        let e = self.0.entry(denom.clone()).or_default();
        *e = e.saturating_add(amount);
    }
}

pub async fn run(args: MarketArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.providers == 0 || args.tenants == 0 {
        bail!("--providers and --tenants must be at least 1");
    }
    let client = Client::new(&args.rpc);
    let status = wait_for_node(&client).await?;
    let params = client.params().await.context("cannot read the chain's parameters")?;
    let denoms = escrow_denoms(&args.denoms, &params)?;
    let bid_window = params.bid_window;
    let max_bids = if bid_window < 2 {
        eprintln!("the bid window is {bid_window} block: one bid per order");
        1
    } else {
        args.max_bids.clamp(1, params.max_bids_per_order.max(1) as usize)
    };
    let plan = MarketPlan::new(&PlanSettings {
        seed: args.seed,
        providers: args.providers,
        tenants: args.tenants,
        leases: args.leases,
        max_bids,
        denoms: denoms.len(),
        max_groups: params.max_groups as usize,
    });

    let p = args.providers;
    let keys: Vec<_> =
        (0..p + args.tenants).map(|i| accounts::derive_key(args.seed, i as u64)).collect();
    let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let accounts = read_accounts(&client, &addresses, args.seed, args.concurrency).await?;
    let registered = registered_providers(&client, &addresses[..p], args.concurrency).await?;
    let dseq_base = next_dseqs(&client, &addresses[p..], args.concurrency).await?;
    let mut builders: Vec<TxBuilder> = keys
        .into_iter()
        .zip(&accounts)
        .map(|(key, a)| TxBuilder {
            key,
            chain_id: status.chain_id.clone(),
            sequence: a.sequence,
            fee: Coin::new(params.min_fee, &params.native_denom),
            fees: FeeSchedule::of_params(&params),
        })
        .collect();
    let market = Market {
        plan: &plan,
        providers: p,
        addresses: &addresses,
        dseq_base: &dseq_base,
        denoms: &denoms,
        bid_deposit: &params.bid_deposit,
    };
    let mut spend = vec![Spend::default(); addresses.len()];
    let signed = market.sign(&mut builders, &mut spend, &registered, &args);
    check_funds(&accounts, &spend, p, args.seed)?;
    let tx_count = signed.tx_count();
    eprintln!(
        "planned {p} providers ({} to register), {} deployments, {} orders, {} bids in {} \
         waves: {tx_count} transactions signed in {:.1} s; bid window {bid_window} blocks",
        signed.providers.len(),
        plan.deployments.len(),
        plan.orders(),
        plan.bids(),
        signed.waves.len(),
        started.elapsed().as_secs_f64(),
    );

    let stall = Duration::from_secs_f64(args.stall_timeout.max(1.0));
    let mut chain = Chain { client: client.clone(), next: status.latest_height + 1, stall };
    let first_height = chain.next;

    let t = Instant::now();
    post_all(&client, &signed.providers, args.concurrency).await?;
    chain.settle(&signed.providers).await?;
    let providers_secs = t.elapsed().as_secs_f64();
    eprintln!("providers: {} registered in {providers_secs:.1} s", signed.providers.len());

    // Each order's auction closes at this height.
    let mut closes_at: Vec<Vec<u64>> =
        plan.deployments.iter().map(|d| vec![0; d.groups.len()]).collect();
    let waves_started = Instant::now();
    let n_waves = signed.waves.len();
    for (w, wave) in signed.waves.iter().enumerate() {
        let t = Instant::now();
        let report = seed_wave(&client, &mut chain, wave, bid_window, args.concurrency).await?;
        for (&(d, g), &close) in &report.closes_at {
            closes_at[d][g] = close;
        }
        let groups = || wave.range.clone().flat_map(|d| &plan.deployments[d].groups);
        let (orders, bids) = (groups().count(), groups().map(|g| g.bids.len()).sum::<usize>());
        eprintln!(
            "wave {}/{n_waves}: {} deployments ({orders} orders) in blocks {}-{}, {bids} bids \
             in blocks {}-{} ({}), {:.1} s",
            w + 1,
            wave.range.len(),
            report.deployment_blocks.start(),
            report.deployment_blocks.end(),
            report.bid_blocks.start(),
            report.bid_blocks.end(),
            match report.timing {
                BidTiming::Live => "while the auctions ran".to_string(),
                BidTiming::AfterStall { from } => format!("after the auctions stalled at {from}"),
            },
            t.elapsed().as_secs_f64()
        );
    }
    let waves_secs = waves_started.elapsed().as_secs_f64();

    let t = Instant::now();
    let last_close = closes_at.iter().flatten().copied().max().unwrap_or(0);
    chain.wait_for_height(last_close).await?;
    let expected = market.expected_leases();
    let leases = count_leases(&client, &expected).await?;
    let auctions_secs = t.elapsed().as_secs_f64();

    let total = started.elapsed().as_secs_f64();
    println!("market seeded on {} (chain {}):", client.url(), status.chain_id);
    println!(
        "  providers      {p} ({} registered now, {} already)",
        signed.providers.len(),
        p - signed.providers.len()
    );
    println!("  tenants        {}", args.tenants);
    println!("  deployments    {}", plan.deployments.len());
    println!("  orders         {}", plan.orders());
    println!("  bids           {}", plan.bids());
    println!(
        "  active leases  {} of {} expected ({} won by the planned cheapest bid)",
        leases.ours,
        expected.len(),
        leases.as_planned
    );
    println!("  txs submitted  {tx_count}");
    println!("  blocks         {first_height}-{}", chain.latest());
    println!(
        "  seconds        {total:.1} (providers {providers_secs:.1}, {n_waves} waves \
         {waves_secs:.1}, last auctions and lease count {auctions_secs:.1})"
    );
    if leases.ours != expected.len() {
        bail!(
            "{} of the {} orders have no active lease",
            expected.len() - leases.ours,
            expected.len()
        );
    }
    Ok(())
}

/// The planned market on this chain: the accounts' addresses, each tenant's first dseq, the
/// escrow denominations and the bid deposit.
struct Market<'a> {
    plan: &'a MarketPlan,
    /// Accounts `0..providers` are the providers, the rest the tenants.
    providers: usize,
    addresses: &'a [Address],
    dseq_base: &'a [u64],
    /// Each escrow denomination, with its minimum deposit.
    denoms: &'a [(Denom, u128)],
    bid_deposit: &'a Coin,
}

/// Every transaction of a run, signed.
struct SignedMarket {
    /// The registrations of the providers that are not registered yet.
    providers: Batch,
    waves: Vec<Wave>,
}

impl SignedMarket {
    fn tx_count(&self) -> usize {
        let batches = std::iter::once(&self.providers)
            .chain(self.waves.iter().flat_map(|w| [&w.deployments, &w.bids]));
        batches.flatten().map(Vec::len).sum()
    }
}

impl Market<'_> {
    fn order_id(&self, d: usize, g: usize) -> OrderId {
        let dep = &self.plan.deployments[d];
        OrderId {
            owner: self.addresses[self.providers + dep.tenant],
            dseq: self.dseq_base[dep.tenant] + dep.nth,
            gseq: g as u32 + 1,
            oseq: 1,
        }
    }

    /// Signs every transaction, each account's sequences in the order they will be posted,
    /// and adds what each account spends to `spend`.
    fn sign(
        &self,
        builders: &mut [TxBuilder],
        spend: &mut [Spend],
        registered: &[bool],
        args: &MarketArgs,
    ) -> SignedMarket {
        let plan = self.plan;
        let provider_msgs = plan
            .providers
            .iter()
            .enumerate()
            .filter(|(i, _)| !registered[*i])
            .map(|(i, pp)| (i, plan::provider_msg(i, pp), (i, 0)));
        let providers = sign_batch(builders, spend, provider_msgs, "provider");
        let mut waves = Vec::new();
        for range in split_waves(plan, args.wave) {
            let mut deployment_msgs = Vec::new();
            let mut bid_msgs = Vec::new();
            for d in range.clone() {
                let dep = &plan.deployments[d];
                let tenant = self.providers + dep.tenant;
                let (denom, min) = &self.denoms[dep.denom];
                let deposit = plan::deposit_amount(dep, args.deposit_blocks, *min);
                spend[tenant].add(denom, deposit);
                let dseq = self.dseq_base[dep.tenant] + dep.nth;
                deployment_msgs.push((
                    tenant,
                    plan::deployment_msg(dep, dseq, denom, deposit),
                    (d, 0),
                ));
                for (g, group) in dep.groups.iter().enumerate() {
                    for b in &group.bids {
                        let order = self.order_id(d, g);
                        let msg = plan::bid_msg(order, group, b, denom, self.bid_deposit);
                        spend[b.provider].add(&self.bid_deposit.denom, self.bid_deposit.amount);
                        bid_msgs.push((b.provider, msg, (d, g)));
                    }
                }
            }
            let deployments = sign_batch(builders, spend, deployment_msgs, "tenant");
            let bids = sign_batch(builders, spend, bid_msgs, "provider");
            waves.push(Wave { range, deployments, bids });
        }
        SignedMarket { providers, waves }
    }

    /// Each order's planned winner: the provider's address and the price.
    fn expected_leases(&self) -> HashMap<OrderId, (Address, u128)> {
        let mut out = HashMap::new();
        for (d, dep) in self.plan.deployments.iter().enumerate() {
            for (g, group) in dep.groups.iter().enumerate() {
                if let Some(w) = group.winner() {
                    out.insert(self.order_id(d, g), (self.addresses[w.provider], w.price));
                }
            }
        }
        out
    }
}

/// What a wave did on the chain.
struct WaveReport {
    timing: BidTiming,
    deployment_blocks: std::ops::RangeInclusive<u64>,
    bid_blocks: std::ops::RangeInclusive<u64>,
    /// Each order's auction closes at this height.
    closes_at: HashMap<Item, u64>,
}

/// Posts a wave's deployments, then its bids once the deployments are in a block (at once,
/// or after the auctions stalled when too little of the bid window is left).
async fn seed_wave(
    client: &Client,
    chain: &mut Chain,
    wave: &Wave,
    bid_window: u64,
    concurrency: usize,
) -> anyhow::Result<WaveReport> {
    post_all(client, &wave.deployments, concurrency).await?;
    let heights = chain.settle(&wave.deployments).await?;
    let mut created: HashMap<usize, u64> = HashMap::new();
    for tx in wave.deployments.iter().flatten() {
        created.extend(tx.items.iter().map(|(d, _)| (*d, heights[&tx.hash])));
    }
    let first = created.values().copied().min().unwrap_or(0);
    let last = created.values().copied().max().unwrap_or(0);
    let timing = bid_timing(chain.latest(), first, last, bid_window);
    if let BidTiming::AfterStall { from } = timing {
        chain.wait_for_height(from).await?;
    }
    post_all(client, &wave.bids, concurrency).await?;
    let bid_heights = chain.settle(&wave.bids).await?;
    let mut closes_at: HashMap<Item, u64> = HashMap::new();
    for tx in wave.bids.iter().flatten() {
        let h = bid_heights[&tx.hash];
        for &(d, g) in &tx.items {
            // Live, the auction closes a window after the order opened; after a stall, a
            // window after the order's first bid.
            let close = match timing {
                BidTiming::Live => created[&d] + bid_window,
                BidTiming::AfterStall { .. } => h + bid_window,
            };
            let e = closes_at.entry((d, g)).or_insert(close);
            *e = (*e).min(close);
        }
    }
    let bid_first = bid_heights.values().copied().min().unwrap_or(0);
    let bid_last = bid_heights.values().copied().max().unwrap_or(0);
    Ok(WaveReport {
        timing,
        deployment_blocks: first..=last,
        bid_blocks: bid_first..=bid_last,
        closes_at,
    })
}

/// The escrow denominations `list` names, each with the chain's minimum deposit.
fn escrow_denoms(list: &str, params: &Params) -> anyhow::Result<Vec<(Denom, u128)>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let denom = Denom::new(name).map_err(|e| anyhow!("--denoms: `{name}`: {e}"))?;
        let Some(min) = params.min_deposit(&denom) else {
            bail!(
                "--denoms: {denom} cannot fund deployments on this chain; it takes {}",
                params
                    .min_deposits
                    .iter()
                    .map(|c| c.denom.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        out.push((denom, min));
    }
    if out.is_empty() {
        bail!("--denoms names no denomination");
    }
    Ok(out)
}

/// Waits until the node answers and has a block.
async fn wait_for_node(client: &Client) -> anyhow::Result<gridlease_client::Status> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.status().await {
            Ok(s) if s.latest_height > 0 => return Ok(s),
            Ok(_) | Err(ClientError::Unreachable { .. }) if Instant::now() < deadline => {}
            Ok(_) => bail!("the node at {} has produced no block in 60 s", client.url()),
            Err(e) => return Err(e).context("cannot read the node's status"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every account, which must exist (be funded).
async fn read_accounts(
    client: &Client,
    addresses: &[Address],
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<Vec<AccountInfo>> {
    let n = addresses.len();
    futures_util::stream::iter(addresses.iter().map(|a| async move {
        match client.account(a).await {
            Ok(info) => Ok(info),
            Err(ClientError::Refused { status: 404, .. }) => bail!(
                "account {a} is not funded: fund the seed's accounts at genesis \
                 (`gridlease-loadgen accounts --seed {seed} --count {n} --coins ...`)"
            ),
            Err(e) => Err(e).with_context(|| format!("cannot read account {a}")),
        }
    }))
    .buffered(concurrency.max(1))
    .try_collect()
    .await
}

/// Whether each provider account is already a registered provider (an earlier run).
async fn registered_providers(
    client: &Client,
    providers: &[Address],
    concurrency: usize,
) -> anyhow::Result<Vec<bool>> {
    futures_util::stream::iter(providers.iter().map(|a| async move {
        client
            .provider(a)
            .await
            .map(|p| p.is_some())
            .with_context(|| format!("cannot look up provider {a}"))
    }))
    .buffered(concurrency.max(1))
    .try_collect()
    .await
}

/// Each tenant's first free dseq: one past its highest deployment (1 for a new tenant).
async fn next_dseqs(
    client: &Client,
    tenants: &[Address],
    concurrency: usize,
) -> anyhow::Result<Vec<u64>> {
    futures_util::stream::iter(tenants.iter().map(|a| async move {
        let mut query = ListQuery { owner: Some(*a), limit: Some(1_000), ..Default::default() };
        let mut highest = 0;
        loop {
            let page: DeploymentsPage = client
                .page("/deployments", &query)
                .await
                .with_context(|| format!("cannot list the deployments of {a}"))?;
            highest = page.deployments.iter().map(|d| d.id.dseq).fold(highest, u64::max);
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => return anyhow::Ok(highest + 1),
            }
        }
    }))
    .buffered(concurrency.max(1))
    .try_collect()
    .await
}

/// The deployments of each wave: consecutive deployments holding at least `orders` orders
/// (the last wave may hold fewer).
fn split_waves(plan: &MarketPlan, orders: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (d, dep) in plan.deployments.iter().enumerate() {
        count += dep.groups.len();
        if count >= orders.max(1) {
            out.push(start..d + 1);
            (start, count) = (d + 1, 0);
        }
    }
    if start < plan.deployments.len() {
        out.push(start..plan.deployments.len());
    }
    out
}

/// Most bytes of messages in one transaction: the limit less room for the envelope.
const TX_MSG_BYTES: usize = MAX_TX_BYTES * 3 / 4;

/// Splits one signer's messages into transactions: at most `MAX_MSGS` messages and
/// `TX_MSG_BYTES` bytes of them in each.
fn chunk_msgs<T>(msgs: Vec<(Msg, T)>) -> Vec<Vec<(Msg, T)>> {
    let mut out = Vec::new();
    let (mut cur, mut bytes) = (Vec::new(), 0);
    for (msg, item) in msgs {
        let n = gridlease_types::encode(&msg).len();
        if !cur.is_empty() && (cur.len() == MAX_MSGS || bytes + n > TX_MSG_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += n;
        cur.push((msg, item));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Signs `msgs` (signer account, message, plan item) into transactions, each signer's in
/// order, adding the fees to `spend`.
fn sign_batch(
    builders: &mut [TxBuilder],
    spend: &mut [Spend],
    msgs: impl IntoIterator<Item = (usize, Msg, Item)>,
    role: &str,
) -> Batch {
    let mut by_signer: BTreeMap<usize, Vec<(Msg, Item)>> = BTreeMap::new();
    for (signer, msg, item) in msgs {
        by_signer.entry(signer).or_default().push((msg, item));
    }
    by_signer
        .into_iter()
        .map(|(signer, msgs)| {
            chunk_msgs(msgs)
                .into_iter()
                .map(|chunk| {
                    let kind = chunk[0].0.kind();
                    let n = chunk.len();
                    let (msgs, items): (Vec<Msg>, Vec<_>) = chunk.into_iter().unzip();
                    let tx = builders[signer].build(msgs);
                    spend[signer].add(&tx.body.fee.denom, tx.body.fee.amount);
                    let bytes = tx.to_bytes();
                    let hash = TxHash::of_bytes(&bytes);
                    let what = format!(
                        "transaction {hash} ({n} x {kind}, sequence {}) of {role} {}",
                        tx.body.sequence, tx.body.signer
                    );
                    Signed { bytes, hash, what, items }
                })
                .collect()
        })
        .collect()
}

/// Refuses a plan that some account cannot pay for.
fn check_funds(
    accounts: &[AccountInfo],
    spend: &[Spend],
    providers: usize,
    seed: u64,
) -> anyhow::Result<()> {
    for (i, (a, s)) in accounts.iter().zip(spend).enumerate() {
        for (denom, need) in &s.0 {
            let have = a.balances.iter().find(|c| &c.denom == denom).map_or(0, |c| c.amount);
            if have < *need {
                let role = if i < providers { "provider" } else { "tenant" };
                bail!(
                    "{role} account {} holds {have}{denom} but the plan spends up to \
                     {need}{denom}: fund the seed's accounts with more at genesis \
                     (`gridlease-loadgen accounts --seed {seed} --count {} --coins ...`), or \
                     lower --deposit-blocks",
                    a.address,
                    accounts.len()
                );
            }
        }
    }
    Ok(())
}

/// Posts every batch: each signer's transactions in order, `concurrency` signers at once.
/// The first refusal stops it with the node's answer.
async fn post_all(client: &Client, batch: &Batch, concurrency: usize) -> anyhow::Result<()> {
    futures_util::stream::iter(batch.iter().map(Ok))
        .try_for_each_concurrent(concurrency.max(1), |txs| async move {
            for tx in txs {
                match client.submit_bytes(&tx.bytes, false).await {
                    Ok(_) => {}
                    Err(ClientError::Refused { status, code, message }) => {
                        bail!("the node refused {} ({status} {code}): {message}", tx.what)
                    }
                    Err(e) => return Err(e).with_context(|| format!("cannot post {}", tx.what)),
                }
            }
            Ok(())
        })
        .await
}

/// When a wave's bids go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BidTiming {
    /// Now, while every auction of the wave is open: they land before the first one closes.
    Live,
    /// Once the chain is at `from`, where every auction of the wave has closed without bids;
    /// the first bid on each order opens a new window.
    AfterStall { from: u64 },
}

/// Bids posted when the chain is at `latest` land by `latest + 2`; the first of the wave's
/// orders (opened at `first`..=`last`) takes no more bids from `first + bid_window` on.
fn bid_timing(latest: u64, first: u64, last: u64, bid_window: u64) -> BidTiming {
    if latest + 2 < first + bid_window {
        BidTiming::Live
    } else {
        BidTiming::AfterStall { from: last + bid_window }
    }
}

/// Reads the chain block by block, for the receipts of the transactions it awaits.
struct Chain {
    client: Client,
    /// The next block to read.
    next: u64,
    stall: Duration,
}

impl Chain {
    /// The last block read.
    fn latest(&self) -> u64 {
        self.next.saturating_sub(1)
    }

    /// Waits for every transaction of `batch` to be in a block with a successful receipt;
    /// returns each one's height. A failed receipt, or `stall` without one of them landing,
    /// stops it.
    async fn settle(&mut self, batch: &Batch) -> anyhow::Result<HashMap<TxHash, u64>> {
        let mut pending: HashMap<TxHash, &str> =
            batch.iter().flatten().map(|t| (t.hash, t.what.as_str())).collect();
        let mut heights = HashMap::with_capacity(pending.len());
        let mut progress = Instant::now();
        while !pending.is_empty() {
            let latest = self.client.status().await.context("cannot read the node's status")?;
            while self.next <= latest.latest_height {
                let Some(block) = self
                    .client
                    .block(self.next)
                    .await
                    .with_context(|| format!("cannot read block {}", self.next))?
                else {
                    break;
                };
                for r in &block.receipts {
                    if let Some(what) = pending.remove(&r.tx_hash) {
                        if r.code != ReceiptCode::Ok {
                            bail!(
                                "{what} failed in block {}: {}: {}",
                                block.height,
                                r.code.name(),
                                r.log
                            );
                        }
                        heights.insert(r.tx_hash, block.height);
                        progress = Instant::now();
                    }
                }
                self.next += 1;
            }
            if pending.is_empty() {
                break;
            }
            if progress.elapsed() > self.stall {
                let Some((hash, what)) = pending.iter().next().map(|(h, w)| (*h, *w)) else {
                    break;
                };
                let state = match self.client.tx(&hash.to_string()).await {
                    Ok(Some(v)) => format!("{:?}", v.status).to_lowercase(),
                    Ok(None) => "unknown to the node (dropped from its mempool)".into(),
                    Err(e) => format!("unreadable: {e}"),
                };
                bail!(
                    "{} transactions are not in a block after {:.0} s (at height {}); \
                     {what} is {state}",
                    pending.len(),
                    self.stall.as_secs_f64(),
                    self.latest()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(heights)
    }

    /// Waits until block `height` is committed.
    async fn wait_for_height(&mut self, height: u64) -> anyhow::Result<()> {
        let mut seen = self.latest();
        let mut progress = Instant::now();
        while self.latest() < height {
            let latest = self.client.status().await.context("cannot read the node's status")?;
            if latest.latest_height > seen {
                seen = latest.latest_height;
                progress = Instant::now();
            } else if progress.elapsed() > self.stall {
                bail!(
                    "the chain made no block for {:.0} s, at height {seen}",
                    self.stall.as_secs_f64()
                );
            }
            // Nothing is awaited in these blocks: skip reading them.
            self.next = self.next.max(latest.latest_height.min(height) + 1);
            if self.latest() < height {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// The active leases of the planned orders.
struct LeaseCount {
    ours: usize,
    /// Won by the planned provider at the planned price.
    as_planned: usize,
}

/// Pages through `GET /leases?state=active` and counts the leases of `expected`'s orders.
async fn count_leases(
    client: &Client,
    expected: &HashMap<OrderId, (Address, u128)>,
) -> anyhow::Result<LeaseCount> {
    let query = ListQuery { state: Some("active".into()), ..Default::default() };
    let leases = client.leases(&query).await.context("cannot list the active leases")?;
    let mut count = LeaseCount { ours: 0, as_planned: 0 };
    for lease in &leases {
        if let Some((provider, price)) = expected.get(&lease.id.order) {
            count.ours += 1;
            if *provider == lease.id.provider && *price == lease.price.amount.0 {
                count.as_planned += 1;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_go_out_live_only_with_two_blocks_to_spare() {
        // Deployments in block 10, seen at 10: with a 5-block window the auctions close at
        // 15, and bids posted now land by 12. Seen at 12 they land by 14, still in time; at
        // 13 they may land at 15, too late.
        assert_eq!(bid_timing(10, 10, 10, 5), BidTiming::Live);
        assert_eq!(bid_timing(12, 10, 11, 5), BidTiming::Live);
        assert_eq!(bid_timing(13, 10, 11, 5), BidTiming::AfterStall { from: 16 });
        // A devnet's 2-block window never leaves time: wait for the stall.
        assert_eq!(bid_timing(10, 10, 10, 2), BidTiming::AfterStall { from: 12 });
    }

    #[test]
    fn waves_hold_whole_deployments_and_every_order() {
        let plan = MarketPlan::new(&PlanSettings {
            seed: 1,
            providers: 8,
            tenants: 3,
            leases: 101,
            max_bids: 3,
            denoms: 2,
            max_groups: 20,
        });
        let waves = split_waves(&plan, 25);
        assert_eq!(waves.first().map(|w| w.start), Some(0));
        assert_eq!(waves.last().map(|w| w.end), Some(plan.deployments.len()));
        assert!(waves.windows(2).all(|w| w[0].end == w[1].start));
        let orders = |r: &std::ops::Range<usize>| -> usize {
            r.clone().map(|d| plan.deployments[d].groups.len()).sum()
        };
        assert!(waves[..waves.len() - 1].iter().all(|w| (25..25 + 3).contains(&orders(w))));
        assert_eq!(waves.iter().map(orders).sum::<usize>(), 101);
    }

    #[test]
    fn chunks_respect_the_message_count_and_size_limits() {
        let msg = |n: usize| Msg::Send {
            to: Address([n as u8; 20]),
            amount: Coin::new(1, &Denom::new("ugrid").unwrap()),
        };
        let chunks = chunk_msgs((0..130).map(|i| (msg(i), i)).collect());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![64, 64, 2]);
        assert_eq!(chunks[2][1].1, 129);
        // Messages of 2 KiB: the size limit splits them before the count does.
        let big = Msg::CreateProvider {
            host_uri: "x".repeat(2_048),
            attributes: Vec::new(),
            info: Default::default(),
        };
        let per_tx = TX_MSG_BYTES / gridlease_types::encode(&big).len();
        assert!(per_tx < MAX_MSGS);
        let chunks = chunk_msgs((0..per_tx + 1).map(|i| (big.clone(), i)).collect());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![per_tx, 1]);
    }
}
