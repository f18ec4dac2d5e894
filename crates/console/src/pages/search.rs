//! `/search?q=`: an address, a dseq, a block height, or a deployment or lease id, to its page.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridlease_types::{Address, BidId, OrderId};

use super::{Params, params};
use crate::html::{self, Section, esc};
use crate::{Console, PageError, html_response};

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

pub async fn search(
    State(console): State<Console>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let text = p.q.as_deref().map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(PageError::BadRequest("type an address, a dseq or a block height".into()));
    }
    let snap = console.snapshot();
    if let Ok(a) = text.parse::<Address>() {
        if snap.providers.contains_key(&a) || console.client.provider(&a).await?.is_some() {
            return Ok(redirect(&format!("/providers/{a}")));
        }
        return Ok(redirect(&format!("/accounts/{a}")));
    }
    if let Some((order, provider)) = text.rsplit_once('/')
        && let (Ok(order), Ok(provider)) = (order.parse::<OrderId>(), provider.parse::<Address>())
    {
        return Ok(redirect(&html::lease_path(&BidId { order, provider })));
    }
    if let Some((owner, dseq)) = text.split_once('/')
        && let (Ok(owner), Ok(dseq)) = (owner.parse::<Address>(), dseq.parse::<u64>())
    {
        return Ok(redirect(&format!("/deployments/{owner}/{dseq}")));
    }
    let Ok(n) = text.parse::<u64>() else {
        return Err(PageError::BadRequest(format!(
            "`{}` is not an address, a dseq, a block height or a lease id",
            text.chars().take(80).collect::<String>()
        )));
    };
    let mut found: Vec<(String, String)> = Vec::new();
    let height = console.height();
    if n >= 1 && n <= height.max(snap.height) {
        found.push((format!("/blocks/{n}"), format!("Block {n}")));
    }
    let owners = snap.dseq_owners.get(&n).cloned().unwrap_or_default();
    for owner in owners.iter().take(50) {
        found.push((format!("/deployments/{owner}/{n}"), format!("Deployment {n} of {owner}")));
    }
    match found.len() {
        0 => Err(PageError::NotFound(format!("no block and no deployment is numbered {n}"))),
        1 => Ok(redirect(&found[0].0)),
        _ => {
            let mut body = format!("<p>{} pages match {n}:</p><ul class=\"results\">", found.len());
            for (href, label) in &found {
                let _ = write!(body, "<li><a href=\"{href}\">{}</a></li>", esc(label));
            }
            body.push_str("</ul>");
            Ok(html_response(html::page(&format!("Search: {n}"), Section::None, height, &body)))
        }
    }
}
