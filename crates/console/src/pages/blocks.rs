//! `/blocks` (the latest blocks, new ones added live by the page's script) and
//! `/blocks/{height}`: transactions with their receipts, and every event.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::StreamExt;
use gridlease_client::Event;

use super::{Params, params, parse_number};
use crate::html::{self, Section, badge, esc, int};
use crate::{Console, PageError, html_response};

/// Blocks on one page of the list.
const BLOCKS_PER_PAGE: u64 = 20;
/// Characters of an event's details shown.
const EVENT_TEXT: usize = 400;

fn event_type(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// `lease_created ×3, fee_paid ×5`, the fee payments last (every transaction has one).
pub fn kinds_text(kinds: &std::collections::BTreeMap<String, usize>) -> String {
    let mut parts: Vec<(&String, &usize)> = kinds.iter().collect();
    parts.sort_by_key(|(k, n)| (k.as_str() == "fee_paid", std::cmp::Reverse(**n)));
    parts.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
}

pub async fn list(
    State(console): State<Console>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let latest = console.client.status().await?.latest_height;
    let top = match p.before {
        Some(b) => b.saturating_sub(1).min(latest),
        None => latest,
    };
    let heights: Vec<u64> = (top.saturating_sub(BLOCKS_PER_PAGE - 1).max(1)..=top).rev().collect();
    let client = &console.client;
    let blocks: Vec<_> = futures_util::stream::iter(heights.iter().copied())
        .map(|h| async move { client.block(h).await })
        .buffered(8)
        .collect()
        .await;
    let mut rows = String::new();
    for b in blocks {
        let Some(b) = b? else { continue };
        let all = b.begin_events.iter().chain(b.receipts.iter().flat_map(|r| r.events.iter()));
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for e in all {
            *kinds.entry(event_type(e)).or_default() += 1;
        }
        let events: usize = kinds.values().sum();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td><time datetime=\"{t}\">{t}</time></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html::block_link(b.height),
            int(b.txs.len() as u64),
            int(events as u64),
            esc(&kinds_text(&kinds)),
            t = esc(&b.time),
        );
    }
    let live = p.before.is_none();
    let mut body = String::new();
    if live {
        body.push_str("<p id=\"live-status\" role=\"status\">New blocks appear here as the chain commits them.</p>");
    }
    let _ = write!(
        body,
        "<div class=\"scroll\" role=\"region\" aria-label=\"Latest blocks\" tabindex=\"0\"><table><caption>Latest blocks</caption>\
<thead><tr><th scope=\"col\">Height</th><th scope=\"col\">Time</th><th scope=\"col\">Transactions</th><th scope=\"col\">Events</th><th scope=\"col\">Kinds of events</th></tr></thead>\
<tbody id=\"blocks\"{}>{rows}</tbody></table></div>",
        if live { " data-live=\"blocks\"" } else { "" }
    );
    let bottom = heights.last().copied().unwrap_or(1);
    body.push_str("<nav class=\"pager\" aria-label=\"Pages\"><ul>");
    if p.before.is_some() {
        body.push_str("<li><a href=\"/blocks\">Latest blocks</a></li>");
    }
    if bottom > 1 {
        let _ = write!(
            body,
            "<li><a href=\"/blocks?before={bottom}\" rel=\"next\">Older blocks</a></li>"
        );
    }
    body.push_str("</ul></nav>");
    Ok(html_response(html::page("Chain", Section::Blocks, console.height().max(latest), &body)))
}

fn event_rows(source: &str, events: &[Event], rows: &mut Vec<Vec<String>>) {
    for e in events {
        let mut text = serde_json::to_string(e).unwrap_or_default();
        if text.len() > EVENT_TEXT {
            let cut = (0..=EVENT_TEXT).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        rows.push(vec![
            source.to_string(),
            esc(&event_type(e)),
            format!("<code>{}</code>", esc(&text)),
        ]);
    }
}

pub async fn one(
    State(console): State<Console>,
    Path(height): Path<String>,
) -> Result<Response, PageError> {
    let h: u64 = parse_number("height", &height)?;
    let b = console
        .client
        .block(h)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("there is no block at height {h} yet")))?;
    let mut body = html::facts(&[
        ("Time", format!("<time datetime=\"{0}\">{0}</time>", esc(&b.time))),
        ("Round", int(b.round)),
        ("State root", format!("<span class=\"mono\">{}</span>", html::short(&b.state_root))),
        ("Signers", b.signers.iter().map(html::account_link).collect::<Vec<_>>().join(", ")),
    ]);
    body.push_str("<nav class=\"pager\" aria-label=\"Neighbouring blocks\"><ul>");
    if h > 1 {
        let _ =
            write!(body, "<li><a href=\"/blocks/{}\" rel=\"prev\">Block {}</a></li>", h - 1, h - 1);
    }
    let _ = write!(
        body,
        "<li><a href=\"/blocks/{}\" rel=\"next\">Block {}</a></li></ul></nav>",
        h + 1,
        h + 1
    );
    body.push_str("<h2>Transactions</h2>");
    let rows: Vec<Vec<String>> = b
        .receipts
        .iter()
        .map(|r| {
            let code = format!("{:?}", r.code);
            let outcome =
                if r.is_ok() { badge("ok") } else { format!("{} {}", badge("failed"), esc(&code)) };
            vec![
                format!("<span class=\"mono\">{}</span>", html::short(&r.tx_hash.to_string())),
                outcome,
                esc(&r.log),
                int(r.events.len() as u64),
            ]
        })
        .collect();
    body.push_str(&html::table(
        "Transactions and receipts",
        &["Hash", "Outcome", "Log", "Events"],
        &rows,
        "No transaction in this block.",
    ));
    body.push_str("<h2>Events</h2>");
    let mut rows = Vec::new();
    event_rows("begin block", &b.begin_events, &mut rows);
    for r in &b.receipts {
        event_rows(&format!("tx {}", html::short(&r.tx_hash.to_string())), &r.events, &mut rows);
    }
    body.push_str(&html::table(
        "Events",
        &["Source", "Type", "Details"],
        &rows,
        "No event in this block.",
    ));
    Ok(html_response(html::page(
        &format!("Block {h}"),
        Section::Blocks,
        console.height().max(h),
        &body,
    )))
}

#[cfg(test)]
mod tests {
    use super::kinds_text;

    #[test]
    fn event_kinds_by_count_with_fees_last() {
        let kinds = [
            ("fee_paid".to_string(), 9),
            ("bid_created".into(), 2),
            ("lease_created".into(), 3),
            ("auction_won".into(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            kinds_text(&kinds),
            "auction_won ×3, lease_created ×3, bid_created ×2, fee_paid ×9"
        );
    }
}
