//! The pages, one module per section, and what they share: query parameters checked as
//! hostile input, paging links, state names.

pub mod blocks;
pub mod deployments;
pub mod leases;
pub mod market;
pub mod providers;
pub mod search;

use std::fmt::Write as _;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use gridlease_client::{BidState, CloseReason, DeploymentState, LeaseState, ListQuery, OrderState};
use gridlease_types::{Address, DecCoin};
use serde::Deserialize;

use crate::PageError;
use crate::html::{badge, dec, esc, url_encode};

/// Items on one page of a list.
pub const PAGE_SIZE: usize = 50;
/// Longest cursor or search text taken.
const MAX_PARAM: usize = 256;

/// The query parameters any page may take.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The node's cursor of the page to show.
    pub cursor: Option<String>,
    /// A state filter (`active`, `closed`, ...).
    pub state: Option<String>,
    /// Search text.
    pub q: Option<String>,
    /// A sort key.
    pub sort: Option<String>,
    /// A page number (lists sorted by the console).
    pub page: Option<usize>,
    /// Blocks below this height.
    pub before: Option<u64>,
    /// `1`: ask the providers why they did not bid.
    pub why: Option<u8>,
}

/// The checked parameters of a request.
pub fn params(q: Result<Query<Params>, QueryRejection>) -> Result<Params, PageError> {
    let p = q.map_err(|e| PageError::BadRequest(e.body_text()))?.0;
    if let Some(c) = &p.cursor
        && (c.len() > MAX_PARAM || c.len() % 2 != 0 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(PageError::BadRequest("cursor must be a next-page link's cursor".into()));
    }
    if p.q.as_ref().is_some_and(|q| q.len() > MAX_PARAM) {
        return Err(PageError::BadRequest(format!("search text is longer than {MAX_PARAM} bytes")));
    }
    Ok(p)
}

/// `state` checked against the names a list knows.
pub fn state_param(p: &Params, known: &[&str]) -> Result<Option<String>, PageError> {
    match p.state.as_deref() {
        None | Some("") | Some("all") => Ok(None),
        Some(s) if known.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(PageError::BadRequest(format!(
            "state `{}` is not one of {}",
            s.chars().take(40).collect::<String>(),
            known.join(", ")
        ))),
    }
}

/// The state filter (`active` or `closed`) of a deployments or leases list, and the node's
/// query for the page to show.
pub fn state_page_query(p: &Params) -> Result<(Option<String>, ListQuery), PageError> {
    let state = state_param(p, &["active", "closed"])?;
    let query = ListQuery {
        state: state.clone(),
        limit: Some(PAGE_SIZE),
        cursor: p.cursor.clone(),
        ..Default::default()
    };
    Ok((state, query))
}

pub fn parse_address(s: &str) -> Result<Address, PageError> {
    s.parse().map_err(|e: gridlease_types::AddressError| {
        PageError::BadRequest(format!(
            "`{}` is not an address: {e}",
            s.chars().take(80).collect::<String>()
        ))
    })
}

pub fn parse_number<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, PageError> {
    s.parse().map_err(|_| {
        PageError::BadRequest(format!(
            "{what} `{}` is not a number",
            s.chars().take(40).collect::<String>()
        ))
    })
}

/// Links to the first and next pages of a list the node pages (`path` keeps its filters in
/// `query`, already encoded, without the cursor).
pub fn pager(path: &str, query: &str, cursor: Option<&str>, next: Option<&str>) -> String {
    let sep = if query.is_empty() { "" } else { "&amp;" };
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\"><ul>");
    if cursor.is_some() {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        let _ = write!(out, "<li><a href=\"{path}{q}\">First page</a></li>");
    }
    if let Some(n) = next {
        let _ = write!(
            out,
            "<li><a href=\"{path}?{query}{sep}cursor={}\" rel=\"next\">Next page</a></li>",
            url_encode(n)
        );
    }
    out.push_str("</ul></nav>");
    out
}

/// Links to the previous and next of `pages` numbered pages (`href` ends where the page
/// number goes, already escaped); `what` names the pages ("page", "transactions").
pub fn numbered_pager(label: &str, href: &str, page: usize, pages: usize, what: &str) -> String {
    let mut out = format!("<nav class=\"pager\" aria-label=\"{label}\"><ul>");
    if page > 1 {
        let _ =
            write!(out, "<li><a href=\"{href}{}\" rel=\"prev\">Previous {what}</a></li>", page - 1);
    }
    if page < pages {
        let _ = write!(out, "<li><a href=\"{href}{}\" rel=\"next\">Next {what}</a></li>", page + 1);
    }
    out.push_str("</ul></nav>");
    out
}

/// Links that filter a list by state, the current one marked.
pub fn state_links(path: &str, current: Option<&str>, states: &[&str]) -> String {
    let mut out = String::from("<nav class=\"filters\" aria-label=\"Filter by state\"><ul>");
    let all = std::iter::once("all").chain(states.iter().copied());
    for s in all {
        let is = current.unwrap_or("all") == s;
        let mark = if is { " aria-current=\"true\"" } else { "" };
        let href = if s == "all" { path.to_string() } else { format!("{path}?state={s}") };
        let _ = write!(out, "<li><a href=\"{href}\"{mark}>{s}</a></li>");
    }
    out.push_str("</ul></nav>");
    out
}

pub fn coin(c: &DecCoin) -> String {
    format!("{} {}", dec(c.amount, 6), esc(c.denom.as_str()))
}

fn closed(reason: CloseReason, at: u64) -> String {
    format!(
        "{} <span class=\"muted\">{} at {}</span>",
        badge("closed"),
        esc(reason.name()),
        crate::html::block_link(at)
    )
}

pub fn lease_state(s: &LeaseState) -> String {
    match s {
        LeaseState::Active => badge("active"),
        LeaseState::Closed { reason, at } => closed(*reason, *at),
    }
}

pub fn deployment_state(s: &DeploymentState) -> String {
    match s {
        DeploymentState::Active => badge("active"),
        DeploymentState::Closed { reason, at } => closed(*reason, *at),
    }
}

pub fn bid_state(s: &BidState) -> String {
    match s {
        BidState::Open => badge("open"),
        BidState::Won => badge("won"),
        BidState::Closed { reason, at } => closed(*reason, *at),
    }
}

pub fn order_state(s: &OrderState) -> String {
    match s {
        OrderState::Open { closes_at, stalled } => {
            let mut out = badge("open");
            if let Some(h) = closes_at {
                let _ = write!(
                    out,
                    " <span class=\"muted\">auction closes at {}</span>",
                    crate::html::block_link(*h)
                );
            }
            if let Some(r) = stalled {
                let _ = write!(out, " <span class=\"warn\">stalled: {}</span>", esc(r.name()));
            }
            out
        }
        OrderState::Matched { provider } => {
            format!("{} to {}", badge("matched"), crate::html::provider_link(provider))
        }
        OrderState::Closed { reason, at } => closed(*reason, *at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_parameters_are_refused_with_a_reason() {
        let bad = |p: Params| params(Ok(Query(p))).unwrap_err().to_string();
        assert!(bad(Params { cursor: Some("zz".into()), ..Default::default() }).contains("cursor"));
        assert!(bad(Params { q: Some("x".repeat(300)), ..Default::default() }).contains("longer"));
        let p = Params { state: Some("<script>".into()), ..Default::default() };
        let e = state_param(&p, &["active", "closed"]).unwrap_err().to_string();
        assert!(e.contains("is not one of active, closed"), "{e}");
        assert_eq!(state_param(&Params::default(), &["active"]).unwrap(), None);
    }

    #[test]
    fn numbered_pages_link_only_to_pages_that_exist() {
        let first = numbered_pager("Pages", "/x?page=", 1, 3, "page");
        assert!(!first.contains("Previous") && first.contains("href=\"/x?page=2\" rel=\"next\""));
        let last = numbered_pager("Pages", "/x?page=", 3, 3, "page");
        assert!(last.contains("href=\"/x?page=2\" rel=\"prev\"") && !last.contains("Next"));
    }

    #[test]
    fn pager_links_keep_filters() {
        let p = pager("/leases", "state=active", Some("00ff"), Some("0a0b"));
        assert!(p.contains("href=\"/leases?state=active\">First page"));
        assert!(p.contains("href=\"/leases?state=active&amp;cursor=0a0b\" rel=\"next\""));
        assert!(!pager("/leases", "", None, None).contains("<a "));
    }
}
