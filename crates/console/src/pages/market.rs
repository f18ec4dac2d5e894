//! `/`: the market at a glance: GPU models on offer, free and leased units, prices per
//! GPU-hour in each denomination beside the reference cloud price, and their history.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Response;

use crate::chart::{Series, line_chart};
use crate::html::{self, Section, duration, esc, int, num};
use crate::index::Snapshot;
use crate::{Console, html_response};

pub async fn page(State(console): State<Console>) -> Response {
    let snap = console.snapshot();
    let height = console.height();
    html_response(html::page("Market", Section::Market, height, &body(&snap, height)))
}

fn prices(map: &std::collections::BTreeMap<String, f64>, places: usize) -> String {
    if map.is_empty() {
        return "—".into();
    }
    map.iter()
        .map(|(denom, p)| {
            let shown = if places == 0 && p.is_finite() && *p >= 0.0 {
                int(p.round() as u128)
            } else {
                num(*p, places)
            };
            format!("{shown} {}", esc(denom))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn body(snap: &Snapshot, height: u64) -> String {
    if snap.height == 0 {
        return "<p class=\"empty\" role=\"status\">The console is reading the chain; this page fills in within seconds.</p>".into();
    }
    let mut out = String::new();
    out.push_str(&html::facts(&[
        ("Providers", int(snap.providers.len() as u64)),
        ("Active leases", int(snap.leases_active as u64)),
        ("Leases ever", int(snap.leases_total as u64)),
        ("Deployments", int(snap.deployments as u64)),
        ("Block time", format!("{} s", num(snap.block_seconds, 2))),
        (
            "Providers answering",
            if snap.statuses_asked == 0 {
                "first poll under way".to_string()
            } else {
                format!(
                    "{} of {}",
                    int(snap.statuses_answered as u64),
                    int(snap.statuses_asked as u64)
                )
            },
        ),
    ]));
    out.push_str("<h2>GPUs on offer</h2>");
    let rows: Vec<Vec<String>> = snap
        .market
        .iter()
        .map(|r| {
            let reference = match r.reference_usd_hour {
                Some(p) => format!(
                    "${} <span class=\"muted\">{}</span>",
                    num(p, 2),
                    esc(&r.reference_source)
                ),
                None => "—".into(),
            };
            let saving = match r.saving_percent {
                Some(s) if s >= 0.0 => {
                    format!("<strong class=\"good\">{}% cheaper</strong>", num(s, 0))
                }
                Some(s) => format!("<strong class=\"warn\">{}% dearer</strong>", num(-s, 0)),
                None => "—".into(),
            };
            vec![
                format!("<strong>{}</strong>", esc(&r.model)),
                int(r.providers),
                int(r.units),
                int(r.free),
                int(r.leased),
                r.utilization().map_or("—".into(), |u| format!("{}%", num(u, 0))),
                prices(&r.lease_price_hour, 0),
                prices(&r.offer_low_hour, 0),
                r.usd_hour.map_or("—".into(), |p| format!("${}", num(p, 2))),
                reference,
                saving,
            ]
        })
        .collect();
    out.push_str(&html::table(
        "GPU models: units in the providers' inventories, free and leased, and prices per GPU-hour",
        &[
            "Model",
            "Providers listing it",
            "Units",
            "Free",
            "Leased",
            "Utilization",
            "Lease price / GPU-hour (median)",
            "Lowest offer / GPU-hour",
            "USD / GPU-hour",
            "Reference cloud price",
            "Saving",
        ],
        &rows,
        "No GPU is on offer or leased yet.",
    ));
    out.push_str(
        "<p class=\"muted\">Units and free units are what the providers that answered report; \
leased units and lease prices come from the chain. Prices per hour are prices per block \
times the blocks of an hour at the measured block time; dollars count the stable \
denominations at their peg.</p>",
    );
    out.push_str("<h2>Over time</h2>");
    let h = &snap.history;
    if h.heights.is_empty() {
        out.push_str("<p class=\"empty\">No lease yet: the charts start with the first.</p>");
    } else {
        let label = |at: u64| {
            let ago = height.saturating_sub(at) as f64 * snap.block_seconds;
            format!("block {at} ({} ago)", duration(ago))
        };
        let first = label(h.heights[0]);
        let last = label(*h.heights.last().unwrap_or(&height));
        // Utilization: each model's line is named with the units listed now (capacity is
        // known only now; the chain records leases, not inventories).
        let names: Vec<String> = h
            .leased
            .keys()
            .map(|m| match snap.market.iter().find(|r| &r.model == m) {
                Some(r) if r.units > 0 => format!("{m} (of {} listed now)", r.units),
                _ => m.clone(),
            })
            .collect();
        let leased: Vec<Series<'_>> =
            h.leased.values().zip(&names).map(|(v, name)| Series { name, values: v }).collect();
        let price: Vec<Series<'_>> =
            h.usd_hour.iter().map(|(m, v)| Series { name: m, values: v }).collect();
        let _ = write!(
            out,
            "<div class=\"charts\">{}{}</div>",
            line_chart("leased", "GPUs leased (utilization)", "GPUs", &leased, &first, &last),
            line_chart(
                "price",
                "Median lease price per GPU-hour",
                "US dollars",
                &price,
                &first,
                &last
            ),
        );
    }
    let _ = write!(
        out,
        "<p class=\"muted\">Figures as of block {} (read in {} ms).</p>",
        snap.height,
        snap.build.as_millis()
    );
    out
}
