//! `/leases` and `/leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}`: state and close reason,
//! the winning offer, health as the tenant's monitors report it, and the escrow that pays it.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use gridlease_client::rpc::LeasesPage;
use gridlease_types::{BidId, OrderId};

use super::{
    Params, bid_state, coin, lease_state, pager, params, parse_address, parse_number, state_links,
    state_page_query,
};
use crate::html::{self, Section, badge, dec, duration, esc, int, num};
use crate::index::dec_f64;
use crate::{Console, PageError, html_response};

pub async fn list(
    State(console): State<Console>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let (state, query) = state_page_query(&p)?;
    let page: LeasesPage = console.client.page("/leases", &query).await?;
    let rows: Vec<Vec<String>> = page
        .leases
        .iter()
        .map(|l| {
            vec![
                html::lease_link(&l.id),
                html::account_link(&l.id.order.owner),
                html::provider_link(&l.id.provider),
                coin(&l.price),
                lease_state(&l.state),
                html::block_link(l.created_at),
            ]
        })
        .collect();
    let snap = console.snapshot();
    let mut body = format!(
        "<p>{} active of {} leases.</p>",
        int(snap.leases_active as u64),
        int(snap.leases_total as u64)
    );
    body.push_str(&state_links("/leases", state.as_deref(), &["active", "closed"]));
    body.push_str(&html::table(
        "Leases",
        &["Lease (dseq/gseq/oseq)", "Tenant", "Provider", "Price per block", "State", "Created at"],
        &rows,
        "No lease matches.",
    ));
    let filter = state.map(|s| format!("state={s}")).unwrap_or_default();
    body.push_str(&pager("/leases", &filter, p.cursor.as_deref(), page.next_cursor.as_deref()));
    Ok(html_response(html::page("Leases", Section::Leases, console.height(), &body)))
}

type LeasePath = Path<(String, String, String, String, String)>;

pub async fn one(
    State(console): State<Console>,
    Path((owner, dseq, gseq, oseq, provider)): LeasePath,
) -> Result<Response, PageError> {
    let id = BidId {
        order: OrderId {
            owner: parse_address(&owner)?,
            dseq: parse_number("dseq", &dseq)?,
            gseq: parse_number("gseq", &gseq)?,
            oseq: parse_number("oseq", &oseq)?,
        },
        provider: parse_address(&provider)?,
    };
    let record = console
        .client
        .lease_record(&id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("lease {id} does not exist")))?;
    let lease = &record.lease;
    let bid = console.client.bid(&id).await?;
    let deployment = console.client.deployment(&id.order.owner, id.order.dseq).await?;
    let snap = console.snapshot();
    let height = console.height();
    let o = &id.order;

    let mut body = String::new();
    let blocks = match lease.state {
        gridlease_client::LeaseState::Active => height.saturating_sub(lease.created_at),
        gridlease_client::LeaseState::Closed { at, .. } => at.saturating_sub(lease.created_at),
    };
    let per_hour = dec_f64(lease.price.amount) * snap.blocks_per_hour();
    body.push_str(&html::facts(&[
        ("State", lease_state(&lease.state)),
        ("Deployment", html::deployment_link(&o.owner, o.dseq)),
        ("Group / order", format!("{} / {}", o.gseq, o.oseq)),
        ("Tenant", html::account_link(&o.owner)),
        ("Provider", html::provider_link(&id.provider)),
        (
            "Price",
            format!(
                "{} per block ({} {} per hour)",
                coin(&lease.price),
                num(per_hour, 2),
                esc(lease.price.denom.as_str())
            ),
        ),
        ("Created at", html::block_link(lease.created_at)),
        (
            "Ran for",
            format!("{} blocks ({})", int(blocks), duration(blocks as f64 * snap.block_seconds)),
        ),
    ]));

    body.push_str("<h2>Offer</h2>");
    match &bid {
        Some(b) => {
            let rows: Vec<Vec<String>> = b
                .offer
                .iter()
                .map(|u| {
                    let gpu = u.gpu.as_ref().map_or("—".into(), |g| {
                        format!(
                            "{}× {} {} {}",
                            g.units,
                            esc(&g.model),
                            esc(&g.ram),
                            esc(&g.interface)
                        )
                    });
                    vec![
                        int(u.count),
                        num(u.cpu_millis as f64 / 1000.0, 2),
                        int(u.memory_bytes >> 20),
                        gpu,
                    ]
                })
                .collect();
            let _ = write!(
                body,
                "<p>Bid {}, deposit {} {}.</p>",
                bid_state(&b.state),
                int(b.deposit.amount),
                esc(b.deposit.denom.as_str())
            );
            body.push_str(&html::table(
                "What the provider offered",
                &["Replicas", "CPU", "Memory (MiB)", "GPU per replica"],
                &rows,
                "The offer is empty.",
            ));
        }
        None => body.push_str("<p class=\"empty\">Its bid is no longer on chain.</p>"),
    }

    body.push_str("<h2>Health</h2>");
    match &record.health {
        Some(h) => {
            let now = match h.down_since {
                Some(since) => format!("{} since {}", badge("down"), html::block_link(since)),
                None => badge("up"),
            };
            body.push_str(&html::facts(&[
                ("Now", now),
                ("Blocks down", int(h.down_blocks_at(height))),
                ("SLA period", int(h.sla_period)),
                ("Down blocks this period", int(h.sla_period_down)),
                ("SLA breaches", int(h.sla_breaches)),
            ]));
            let rows: Vec<Vec<String>> = h
                .votes
                .iter()
                .map(|(m, up, at)| {
                    vec![
                        html::account_link(m),
                        badge(if *up { "up" } else { "down" }),
                        html::block_link(*at),
                    ]
                })
                .collect();
            body.push_str(&html::table(
                "The monitors' latest reports",
                &["Monitor", "Says", "At"],
                &rows,
                "No monitor reported.",
            ));
        }
        None => body.push_str("<p class=\"empty\">No monitor has reported on this lease.</p>"),
    }

    let journal = console.live.journal.borrow().clone();
    let seen = journal.lease(&id);
    let since = journal.since.map_or("the console's start".to_string(), |h| format!("block {h}"));
    let rows: Vec<Vec<String>> =
        seen.iter().rev().map(|e| vec![html::block_link(e.height), esc(&e.what)]).collect();
    body.push_str(&html::table(
        &format!("Health history (the chain's events since {since})"),
        &["Block", "What happened"],
        &rows,
        &format!("Nothing happened to this lease since {since}."),
    ));

    body.push_str("<h2>Payment</h2>");
    match (&record.payment, record.earned) {
        (Some(pay), earned) => {
            let denom = esc(lease.price.denom.as_str());
            let state = match pay.state {
                gridlease_client::rpc::PaymentState::Open => badge("open"),
                gridlease_client::rpc::PaymentState::Paused { since } => {
                    format!(
                        "{} since {} (the lease is down: it earns nothing)",
                        badge("paused"),
                        html::block_link(since)
                    )
                }
                gridlease_client::rpc::PaymentState::Closed { at } => {
                    format!("{} at {}", badge("closed"), html::block_link(at))
                }
            };
            body.push_str(&html::facts(&[
                ("State", state),
                (
                    "Earned (before the take rate)",
                    earned.map_or("—".into(), |e| format!("{} {denom}", dec(e, 6))),
                ),
                ("Withdrawn by the provider", format!("{} {denom}", dec(pay.withdrawn, 6))),
                ("Earned, not yet withdrawn", format!("{} {denom}", dec(pay.unwithdrawn, 6))),
            ]));
        }
        (None, _) => {
            body.push_str("<p class=\"empty\">The chain holds no payment for this lease.</p>")
        }
    }

    body.push_str("<h2>Escrow</h2>");
    match deployment.and_then(|d| d.escrow) {
        Some(e) => {
            let rate = dec_f64(e.rate);
            let left = if rate > 0.0 { dec_f64(e.balance) / rate } else { f64::INFINITY };
            body.push_str(&html::facts(&[
                ("Balance", format!("{} {}", dec(e.balance, 6), esc(e.denom.as_str()))),
                (
                    "Burn rate of the deployment",
                    format!("{} {} per block", dec(e.rate, 6), esc(e.denom.as_str())),
                ),
                (
                    "Time left",
                    if rate > 0.0 {
                        format!(
                            "{} ({} blocks)",
                            duration(left * snap.block_seconds),
                            int(left as u64)
                        )
                    } else {
                        "—".into()
                    },
                ),
            ]));
        }
        None => body.push_str("<p class=\"empty\">The deployment has no escrow account.</p>"),
    }
    let title = format!("Lease {}/{}/{}", o.dseq, o.gseq, o.oseq);
    Ok(html_response(html::page(&title, Section::Leases, height, &body)))
}
