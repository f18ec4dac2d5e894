//! `/blocks` (the latest blocks, new ones added live by the page's script) and
//! `/blocks/{height}`: transactions with their receipts, and every event.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use gridlease_client::Event;

use super::{Params, numbered_pager, params, parse_number};
use crate::html::{self, Section, badge, esc, int};
use crate::{Console, PageError, html_response};

/// Blocks on one page of the list.
const BLOCKS_PER_PAGE: usize = 20;
/// Transactions on one page of a block.
const TXS_PER_PAGE: usize = 50;
/// Begin-block events shown at most.
const BEGIN_EVENTS_SHOWN: usize = 100;
/// Characters of an event's details shown.
const EVENT_TEXT: usize = 400;

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
    let page = console.client.blocks(p.before, BLOCKS_PER_PAGE).await?;
    let latest = page.blocks.first().map_or(0, |b| b.height);
    let mut rows = String::new();
    for b in &page.blocks {
        let kinds: std::collections::BTreeMap<String, usize> =
            b.event_kinds.iter().map(|(k, n)| (k.clone(), *n as usize)).collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td><time datetime=\"{t}\">{t}</time></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html::block_link(b.height),
            int(b.txs),
            int(b.events),
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
    body.push_str("<nav class=\"pager\" aria-label=\"Pages\"><ul>");
    if p.before.is_some() {
        body.push_str("<li><a href=\"/blocks\">Latest blocks</a></li>");
    }
    if let Some(bottom) = page.next_before {
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
        rows.push(vec![source.to_string(), esc(e.kind()), format!("<code>{}</code>", esc(&text))]);
    }
}

pub async fn one(
    State(console): State<Console>,
    Path(height): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
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
    let pages = b.receipts.len().div_ceil(TXS_PER_PAGE).max(1);
    let page = p.page.unwrap_or(1).max(1);
    if page > pages {
        return Err(PageError::NotFound(format!("block {h} has {pages} pages of transactions")));
    }
    let shown = &b.receipts[(page - 1) * TXS_PER_PAGE..(page * TXS_PER_PAGE).min(b.receipts.len())];
    if pages > 1 {
        let _ = write!(
            body,
            "<p role=\"status\">{} transactions; page {page} of {pages}, with their events.</p>",
            int(b.receipts.len() as u64)
        );
    }
    let rows: Vec<Vec<String>> = shown
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
    if page == 1 {
        let begin = &b.begin_events[..b.begin_events.len().min(BEGIN_EVENTS_SHOWN)];
        event_rows("begin block", begin, &mut rows);
        if b.begin_events.len() > BEGIN_EVENTS_SHOWN {
            let more = b.begin_events.len() - BEGIN_EVENTS_SHOWN;
            rows.push(vec![
                "begin block".into(),
                String::new(),
                format!("and {} more", int(more as u64)),
            ]);
        }
    }
    for r in shown {
        event_rows(&format!("tx {}", html::short(&r.tx_hash.to_string())), &r.events, &mut rows);
    }
    body.push_str(&html::table(
        "Events",
        &["Source", "Type", "Details"],
        &rows,
        "No event in this block.",
    ));
    if pages > 1 {
        let href = format!("/blocks/{h}?page=");
        body.push_str(&numbered_pager("Pages of transactions", &href, page, pages, "transactions"));
    }
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
