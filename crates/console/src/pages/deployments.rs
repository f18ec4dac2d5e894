//! `/deployments`, `/deployments/{owner}/{dseq}` (groups, auctions with their bids and the
//! providers' reasons for not bidding, leases with health, escrow with burn rate and time
//! left) and `/accounts/{address}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::StreamExt;
use gridlease_client::rpc::EscrowState;
use gridlease_client::rpc::{BidsPage, DeploymentsPage, LeasesPage, OrdersPage};
use gridlease_client::{Bid, ListQuery};
use gridlease_provider::api_client::ProviderApi;
use gridlease_types::Address;

use super::{
    PAGE_SIZE, Params, bid_state, coin, deployment_state, lease_state, order_state, pager, params,
    parse_address, parse_number, state_links, state_page_query,
};
use crate::html::{self, Section, badge, dec, duration, esc, int, num};
use crate::index::{STATUS_TIMEOUT, dec_f64, list_all};
use crate::{Console, PageError, html_response};

/// Providers asked why they did not bid, at most.
const WHY_ASKED: usize = 16;

pub async fn list(
    State(console): State<Console>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let (state, query) = state_page_query(&p)?;
    let page: DeploymentsPage = console.client.page("/deployments", &query).await?;
    let rows: Vec<Vec<String>> = page
        .deployments
        .iter()
        .map(|d| {
            vec![
                html::deployment_link(&d.id.owner, d.id.dseq),
                html::account_link(&d.id.owner),
                deployment_state(&d.state),
                int(d.groups),
                html::block_link(d.created_at),
            ]
        })
        .collect();
    let mut body = state_links("/deployments", state.as_deref(), &["active", "closed"]);
    body.push_str(&html::table(
        "Deployments",
        &["Deployment", "Owner", "State", "Groups", "Created at"],
        &rows,
        "No deployment matches.",
    ));
    let filter = state.map(|s| format!("state={s}")).unwrap_or_default();
    body.push_str(&pager(
        "/deployments",
        &filter,
        p.cursor.as_deref(),
        page.next_cursor.as_deref(),
    ));
    Ok(html_response(html::page("Deployments", Section::Deployments, console.height(), &body)))
}

fn gpus_of(bid: &Bid) -> String {
    let parts: Vec<String> = bid
        .offer
        .iter()
        .filter_map(|o| {
            o.gpu.as_ref().map(|g| {
                format!("{}× {} {}", o.count.saturating_mul(g.units), esc(&g.model), esc(&g.ram))
            })
        })
        .collect();
    if parts.is_empty() { "no GPU".into() } else { parts.join(", ") }
}

pub async fn one(
    State(console): State<Console>,
    Path((owner, dseq)): Path<(String, String)>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let owner = parse_address(&owner)?;
    let dseq: u64 = parse_number("dseq", &dseq)?;
    let record =
        console.client.deployment(&owner, dseq).await?.ok_or_else(|| {
            PageError::NotFound(format!("deployment {owner}/{dseq} does not exist"))
        })?;
    let of_it = ListQuery { owner: Some(owner), dseq: Some(dseq), ..Default::default() };
    let orders = list_all::<OrdersPage>(&console.client, "/orders", &of_it).await?;
    let bids = list_all::<BidsPage>(&console.client, "/bids", &of_it).await?;
    let leases = list_all::<LeasesPage>(&console.client, "/leases", &of_it).await?;
    let snap = console.snapshot();
    let height = console.height();
    let d = &record.deployment;

    let mut body = String::new();
    body.push_str(&html::facts(&[
        ("Owner", html::account_link(&owner)),
        ("State", deployment_state(&d.state)),
        ("Created at", html::block_link(d.created_at)),
        ("Groups", int(d.groups)),
        ("Manifest hash", format!("<span class=\"mono\">{}</span>", html::short(&d.manifest_hash))),
        (
            "Monitors",
            if record.monitors.is_empty() {
                "none".into()
            } else {
                record.monitors.iter().map(html::account_link).collect::<Vec<_>>().join(", ")
            },
        ),
    ]));

    body.push_str("<h2>Escrow</h2>");
    match &record.escrow {
        Some(e) => {
            let rate = dec_f64(e.rate);
            let balance = dec_f64(e.balance);
            let per_hour = rate * snap.blocks_per_hour();
            let left_blocks = if rate > 0.0 { balance / rate } else { f64::INFINITY };
            let state = match e.state {
                EscrowState::Open => badge("open"),
                EscrowState::Overdrawn { since, grace_until } => format!(
                    "{} since {}; the deployment closes at {} unless its owner deposits",
                    badge("overdrawn"),
                    html::block_link(since),
                    html::block_link(grace_until)
                ),
                EscrowState::Closed { at } => {
                    format!("{} at {}", badge("closed"), html::block_link(at))
                }
            };
            let denom = esc(e.denom.as_str());
            let time_left = if rate > 0.0 && matches!(e.state, EscrowState::Open) {
                format!(
                    "{} ({} blocks)",
                    duration(left_blocks * snap.block_seconds),
                    int(left_blocks as u64)
                )
            } else {
                "—".into()
            };
            body.push_str(&html::facts(&[
                ("State", state),
                ("Balance", format!("{} {denom}", dec(e.balance, 6))),
                (
                    "Burn rate",
                    format!(
                        "{} {denom} per block ({} {denom} per hour)",
                        dec(e.rate, 6),
                        num(per_hour, 2)
                    ),
                ),
                ("Time left", time_left),
                ("Deposited", format!("{} {denom}", dec(e.deposited, 6))),
                ("Paid to providers", format!("{} {denom}", dec(e.transferred, 6))),
                ("Refunded", format!("{} {denom}", dec(e.refunded, 6))),
            ]));
        }
        None => body.push_str("<p class=\"empty\">It has no escrow account.</p>"),
    }

    body.push_str("<h2>Groups and auctions</h2>");
    let mut bids_by_order: BTreeMap<_, Vec<&Bid>> = BTreeMap::new();
    for b in &bids {
        bids_by_order.entry(b.id.order).or_default().push(b);
    }
    let mut any_open = false;
    let journal = console.live.journal.borrow().clone();
    for g in &record.groups {
        let spec = &g.spec;
        let _ = write!(
            body,
            "<section class=\"group\" aria-labelledby=\"g{0}\"><h3 id=\"g{0}\">Group {0}: {1}</h3>",
            g.id.gseq,
            esc(&spec.name)
        );
        let units: Vec<String> = spec
            .resources
            .iter()
            .map(|u| {
                let r = &u.resources;
                let gpu = if r.gpu.units > 0 {
                    let models: Vec<String> = r
                        .gpu
                        .options
                        .iter()
                        .map(|o| esc(o.model.as_deref().unwrap_or("any")))
                        .collect();
                    format!(", {} GPU ({})", r.gpu.units, models.join(" or "))
                } else {
                    String::new()
                };
                format!(
                    "{}× {} CPU, {} MiB{gpu}, at most {} per block",
                    u.count,
                    num(r.cpu_millis as f64 / 1000.0, 2),
                    int(r.memory_bytes >> 20),
                    coin(&u.price)
                )
            })
            .collect();
        let gstate = match &g.state {
            gridlease_client::GroupState::Open => badge("open"),
            gridlease_client::GroupState::Leased { provider } => {
                format!("{} with {}", badge("leased"), html::provider_link(provider))
            }
            gridlease_client::GroupState::Closed { reason, at } => {
                format!("{} {} at {}", badge("closed"), esc(reason.name()), html::block_link(*at))
            }
        };
        body.push_str(&html::facts(&[
            ("State", gstate),
            ("Resources", units.join("<br>")),
            ("Auction policy", esc(&format!("{:?}", spec.bid_policy))),
        ]));
        for o in orders.iter().filter(|o| o.id.gseq == g.id.gseq) {
            if matches!(o.state, gridlease_client::OrderState::Open { .. }) {
                any_open = true;
            }
            let _ = write!(body, "<h4>Order {} (auction round)</h4>", o.id.oseq);
            let mut order_facts = vec![
                ("State", order_state(&o.state)),
                ("Max price", coin(&o.max_price)),
                ("Opened at", html::block_link(o.created_at)),
            ];
            if let Some((at, why)) = journal.auction(&o.id) {
                let result = format!("{} (at {})", esc(&why), html::block_link(at));
                order_facts.push(("Auction result", result));
            }
            body.push_str(&html::facts(&order_facts));
            let mut order_bids = bids_by_order.remove(&o.id).unwrap_or_default();
            order_bids.sort_by_key(|b| b.price.amount);
            let rows: Vec<Vec<String>> = order_bids
                .iter()
                .map(|b| {
                    let result = match b.state {
                        gridlease_client::BidState::Won => "<strong>winner</strong>".to_string(),
                        gridlease_client::BidState::Open => "in the auction".to_string(),
                        gridlease_client::BidState::Closed { reason, .. } => esc(reason.name()),
                    };
                    vec![
                        html::provider_link(&b.id.provider),
                        coin(&b.price),
                        gpus_of(b),
                        bid_state(&b.state),
                        result,
                    ]
                })
                .collect();
            body.push_str(&html::table(
                &format!("Bids on order {}", o.id.oseq),
                &["Provider", "Price per block", "Offer", "State", "Result"],
                &rows,
                "No provider bid on this order.",
            ));
        }
        body.push_str("</section>");
    }

    body.push_str("<h2>Why providers did not bid</h2>");
    if p.why == Some(1) {
        let bidders: std::collections::BTreeSet<Address> =
            bids.iter().map(|b| b.id.provider).collect();
        // Providers that answered the last poll first: the others are likely down.
        let mut candidates: Vec<Address> = snap
            .providers
            .values()
            .filter(|s| !bidders.contains(&s.provider.owner))
            .filter(|s| s.extra.as_ref().is_some_and(|e| e.status.is_ok()))
            .map(|s| s.provider.owner)
            .collect();
        candidates.truncate(WHY_ASKED);
        let client = &console.client;
        let answers: Vec<(Address, Result<gridlease_provider::api::DeploymentDecisions, String>)> =
            futures_util::stream::iter(candidates)
                .map(|a| async move {
                    let r = tokio::time::timeout(STATUS_TIMEOUT, async {
                        let api = ProviderApi::from_chain(client, &a, None)
                            .await
                            .map_err(|e| e.to_string())?;
                        api.decisions(&owner, dseq).await.map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|_| Err("no answer within 3 s".into()));
                    (a, r)
                })
                .buffer_unordered(8)
                .collect()
                .await;
        let mut rows = Vec::new();
        for (a, r) in &answers {
            match r {
                Ok(d) if d.decisions.is_empty() => rows.push(vec![
                    html::provider_link(a),
                    "—".into(),
                    "it has not decided on this deployment".into(),
                    String::new(),
                ]),
                Ok(d) => {
                    for dec in d.decisions.iter().take(4) {
                        rows.push(vec![
                            html::provider_link(a),
                            badge(dec.outcome.name()),
                            esc(&dec.detail),
                            dec.suggestion.as_deref().map(esc).unwrap_or_default(),
                        ]);
                    }
                }
                Err(e) => rows.push(vec![
                    html::provider_link(a),
                    badge("no answer"),
                    esc(e),
                    String::new(),
                ]),
            }
        }
        body.push_str(&html::table(
            "What providers that did not bid say",
            &["Provider", "Decision", "Reason", "What would get a bid"],
            &rows,
            "Every answering provider bid, or none answers.",
        ));
    } else {
        let hint = if any_open { "An order is still open: " } else { "" };
        let _ = write!(
            body,
            "<p>{hint}<a href=\"/deployments/{owner}/{dseq}?why=1\">Ask up to {WHY_ASKED} providers that did not bid why</a> (their public answer, read now).</p>"
        );
    }

    body.push_str("<h2>Leases</h2>");
    let mut rows = Vec::new();
    for l in &leases {
        let health = console.client.lease_record(&l.id).await?.and_then(|r| r.health);
        let health = match health {
            Some(h) => match h.down_since {
                Some(since) => format!("{} since {}", badge("down"), html::block_link(since)),
                None => format!("{} ({} blocks down before)", badge("up"), int(h.down_blocks)),
            },
            None => "no report".into(),
        };
        rows.push(vec![
            html::lease_link(&l.id),
            html::provider_link(&l.id.provider),
            coin(&l.price),
            lease_state(&l.state),
            health,
        ]);
    }
    body.push_str(&html::table(
        "Leases of the deployment",
        &["Lease", "Provider", "Price per block", "State", "Health"],
        &rows,
        "No lease yet.",
    ));
    let _ = height;
    let title = format!("Deployment {dseq}");
    Ok(html_response(html::page(&title, Section::Deployments, console.height(), &body)))
}

pub async fn account(
    State(console): State<Console>,
    Path(address): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let address = parse_address(&address)?;
    let balances = console.client.balances(&address).await?;
    let snap = console.snapshot();
    let mut body = format!("<p class=\"mono\">{address}</p>");
    if snap.providers.contains_key(&address) {
        let _ = write!(
            body,
            "<p>This account is a provider: <a href=\"/providers/{address}\">its provider page</a>.</p>"
        );
    }
    let rows: Vec<Vec<String>> =
        balances.iter().map(|c| vec![int(c.amount), esc(c.denom.as_str())]).collect();
    body.push_str(&html::table(
        "Balances",
        &["Amount", "Denomination"],
        &rows,
        "It holds nothing.",
    ));
    let query = ListQuery {
        owner: Some(address),
        limit: Some(PAGE_SIZE),
        cursor: p.cursor.clone(),
        ..Default::default()
    };
    let page: DeploymentsPage = console.client.page("/deployments", &query).await?;
    let rows: Vec<Vec<String>> = page
        .deployments
        .iter()
        .map(|d| {
            vec![
                html::deployment_link(&d.id.owner, d.id.dseq),
                deployment_state(&d.state),
                int(d.groups),
                html::block_link(d.created_at),
            ]
        })
        .collect();
    body.push_str("<h2>Deployments</h2>");
    body.push_str(&html::table(
        "Its deployments",
        &["Deployment", "State", "Groups", "Created at"],
        &rows,
        "It owns no deployment.",
    ));
    body.push_str(&pager(
        &format!("/accounts/{address}"),
        "",
        p.cursor.as_deref(),
        page.next_cursor.as_deref(),
    ));
    let title = format!("Account {}", html::short(&address.to_string()));
    Ok(html_response(html::page(&title, Section::None, console.height(), &body)))
}
