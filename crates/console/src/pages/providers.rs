//! `/providers` (searchable, sortable) and `/providers/{address}`: attributes and audits,
//! GPUs and prices, uptime record, leases and what they billed.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use gridlease_client::rpc::{LeasesPage, ProvidersPage};
use gridlease_client::{ListQuery, Provider};
use gridlease_provider::api_client::ProviderApi;
use std::collections::BTreeMap;

use futures_util::StreamExt;
use gridlease_types::{Address, BidId, DecAmount};

use super::{PAGE_SIZE, Params, lease_state, numbered_pager, pager, params, parse_address};
use crate::html::{self, Section, badge, dec, esc, int, num, url_encode};
use crate::index::{ProviderSummary, STATUS_TIMEOUT};
use crate::{Console, PageError, html_response};

/// Sort keys of the list.
const SORTS: [(&str, &str); 5] = [
    ("", "registration order"),
    ("leases", "active leases"),
    ("gpus", "leased GPUs"),
    ("served", "leases served"),
    ("uptime", "uptime"),
];

fn attributes(p: &Provider) -> String {
    p.attributes
        .iter()
        .take(6)
        .map(|a| format!("<span class=\"attr\">{}={}</span>", esc(&a.key), esc(&a.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn uptime(s: Option<&ProviderSummary>) -> String {
    s.and_then(|s| s.uptime_ppm())
        .map_or("—".into(), |ppm| format!("{}%", num(ppm as f64 / 10_000.0, 2)))
}

fn billed(s: &ProviderSummary) -> String {
    if s.billed.is_empty() {
        return "—".into();
    }
    s.billed
        .iter()
        .map(|(d, a)| format!("{} {}", dec(*a, 0), esc(d)))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn row(p: &Provider, s: Option<&ProviderSummary>) -> Vec<String> {
    let models = s
        .map(|s| s.gpu_models.iter().map(|m| esc(m)).collect::<Vec<_>>().join(", "))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "—".into());
    vec![
        html::provider_link(&p.owner),
        esc(&p.host_uri),
        attributes(p),
        models,
        s.map_or("—".into(), |s| int(s.active_leases)),
        s.map_or("—".into(), |s| int(s.leased_gpus)),
        s.map_or("—".into(), |s| int(s.leases_served)),
        s.map_or("—".into(), billed),
        uptime(s),
    ]
}

const HEADERS: [&str; 9] = [
    "Provider",
    "Host",
    "Attributes",
    "GPU models",
    "Active leases",
    "Leased GPUs",
    "Leases served",
    "Billed (price × blocks)",
    "Uptime",
];

fn matches(s: &ProviderSummary, needle: &str) -> bool {
    let p = &s.provider;
    let has = |t: &str| t.to_ascii_lowercase().contains(needle);
    has(&p.owner.to_string())
        || has(&p.host_uri)
        || has(&p.info.email)
        || has(&p.info.website)
        || p.attributes.iter().any(|a| has(&a.key) || has(&a.value))
        || s.gpu_models.iter().any(|m| has(m))
}

pub async fn list(
    State(console): State<Console>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let snap = console.snapshot();
    let search =
        p.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase);
    let sort = p.sort.as_deref().unwrap_or("");
    if !SORTS.iter().any(|(k, _)| *k == sort) {
        return Err(PageError::BadRequest(format!(
            "sort must be one of {}",
            SORTS
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut form = String::from(
        "<form class=\"filter\" action=\"/providers\" method=\"get\"><label for=\"pq\">Find providers</label>",
    );
    let _ = write!(
        form,
        "<input id=\"pq\" name=\"q\" type=\"search\" value=\"{}\" placeholder=\"address, host, attribute or GPU model\">\
<label for=\"sort\">Sort by</label><select id=\"sort\" name=\"sort\">",
        esc(search.as_deref().unwrap_or(""))
    );
    for (k, label) in SORTS {
        let sel = if k == sort { " selected" } else { "" };
        let _ = write!(form, "<option value=\"{k}\"{sel}>{label}</option>");
    }
    form.push_str("</select><button type=\"submit\">Apply</button></form>");

    let mut body = form;
    if search.is_none() && sort.is_empty() {
        // Registration order: one page of the node's list at a time.
        let query =
            ListQuery { limit: Some(PAGE_SIZE), cursor: p.cursor.clone(), ..Default::default() };
        let page: ProvidersPage = console.client.page("/providers", &query).await?;
        let rows: Vec<Vec<String>> =
            page.providers.iter().map(|pr| row(pr, snap.providers.get(&pr.owner))).collect();
        let _ = write!(body, "<p>{} providers registered.</p>", int(snap.providers.len() as u64));
        body.push_str(&html::table("Providers", &HEADERS, &rows, "No provider is registered yet."));
        body.push_str(&pager("/providers", "", p.cursor.as_deref(), page.next_cursor.as_deref()));
    } else {
        // Searched or sorted: the console's index, a page at a time.
        let mut found: Vec<&ProviderSummary> = snap
            .providers
            .values()
            .filter(|s| search.as_deref().is_none_or(|n| matches(s, n)))
            .collect();
        match sort {
            "leases" => found.sort_by_key(|s| std::cmp::Reverse(s.active_leases)),
            "gpus" => found.sort_by_key(|s| std::cmp::Reverse(s.leased_gpus)),
            "served" => found.sort_by_key(|s| std::cmp::Reverse(s.leases_served)),
            "uptime" => found.sort_by_key(|s| std::cmp::Reverse(s.uptime_ppm().unwrap_or(0))),
            _ => {}
        }
        let page = p.page.unwrap_or(1).max(1);
        let pages = found.len().div_ceil(PAGE_SIZE).max(1);
        if page > pages {
            return Err(PageError::NotFound(format!("there are {pages} pages")));
        }
        let shown = &found[(page - 1) * PAGE_SIZE..(page * PAGE_SIZE).min(found.len())];
        let rows: Vec<Vec<String>> = shown.iter().map(|s| row(&s.provider, Some(s))).collect();
        let _ = write!(
            body,
            "<p role=\"status\">{} of {} providers match; page {page} of {pages}.</p>",
            int(found.len() as u64),
            int(snap.providers.len() as u64)
        );
        body.push_str(&html::table("Providers found", &HEADERS, &rows, "No provider matches."));
        let base = format!(
            "q={}&amp;sort={}",
            url_encode(search.as_deref().unwrap_or("")),
            url_encode(sort)
        );
        let href = format!("/providers?{base}&amp;page=");
        body.push_str(&numbered_pager("Pages", &href, page, pages, "page"));
    }
    Ok(html_response(html::page("Providers", Section::Providers, console.height(), &body)))
}

/// Leases whose payments a provider's page adds up, at most.
const EARNINGS_LEASES: usize = 200;

/// What a provider's leases earned, from the chain's payment records.
#[derive(Debug, Default)]
struct Earnings {
    /// Per denomination.
    total: BTreeMap<String, DecAmount>,
    by_lease: BTreeMap<BidId, DecAmount>,
    /// It held more leases than are added up.
    partial: bool,
}

fn earned_text(e: &Earnings) -> String {
    if e.total.is_empty() {
        return "—".into();
    }
    let sums: Vec<String> =
        e.total.iter().map(|(d, a)| format!("{} {}", dec(*a, 2), esc(d))).collect();
    let note =
        if e.partial { format!(" (its first {EARNINGS_LEASES} leases)") } else { String::new() };
    format!("{}{note}", sums.join("<br>"))
}

/// Adds up the payments of the provider's leases (its first `EARNINGS_LEASES`), 16 asked at
/// once.
async fn earnings(console: &Console, address: Address) -> Result<Earnings, PageError> {
    let mut leases = Vec::new();
    let mut query = ListQuery { provider: Some(address), limit: Some(1000), ..Default::default() };
    let mut partial = false;
    loop {
        let page: LeasesPage = console.client.page("/leases", &query).await?;
        leases.extend(page.leases);
        match page.next_cursor {
            Some(c) if leases.len() < EARNINGS_LEASES => query.cursor = Some(c),
            Some(_) => {
                partial = true;
                break;
            }
            None => break,
        }
    }
    leases.truncate(EARNINGS_LEASES);
    let client = &console.client;
    let records: Vec<_> = futures_util::stream::iter(leases)
        .map(|l| async move { (l.price.denom.to_string(), client.lease_record(&l.id).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut out = Earnings { partial, ..Default::default() };
    for (denom, r) in records {
        let Some(answer) = r? else { continue };
        let Some(e) = answer.earned else { continue };
        out.by_lease.insert(answer.lease.id, e);
        let sum = out.total.entry(denom).or_default();
        *sum = DecAmount(sum.0.saturating_add(e.0));
    }
    Ok(out)
}

pub async fn one(
    State(console): State<Console>,
    Path(address): Path<String>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = params(q)?;
    let address: Address = parse_address(&address)?;
    let record =
        console.client.provider(&address).await?.ok_or_else(|| {
            PageError::NotFound(format!("{address} is not a registered provider"))
        })?;
    let snap = console.snapshot();
    let summary = snap.providers.get(&address);
    let pr = &record.provider;
    let earned = earnings(&console, address).await?;
    let mut body = String::new();
    let _ = write!(body, "<p class=\"mono\">{address}</p>");
    body.push_str(&html::facts(&[
        ("Host", esc(&pr.host_uri)),
        ("Registered at", html::block_link(pr.created_at)),
        ("Email", esc(&pr.info.email)),
        ("Website", esc(&pr.info.website)),
        ("Active leases", summary.map_or("—".into(), |s| int(s.active_leases))),
        ("Leases served", summary.map_or("—".into(), |s| int(s.leases_served))),
        ("Earned (chain payments)", earned_text(&earned)),
        ("Billed (price × blocks)", summary.map_or("—".into(), billed)),
        ("Account", html::account_link(&address)),
    ]));

    body.push_str("<h2>Reliability</h2>");
    let u = &record.uptime;
    body.push_str(&html::facts(&[
        ("Uptime", format!("{}%", num(record.uptime_ppm as f64 / 10_000.0, 2))),
        ("Blocks of ended leases", int(u.lease_blocks)),
        ("Blocks down", int(u.down_blocks)),
        ("Outages", int(u.outages)),
        ("Failovers", int(u.failovers)),
    ]));

    body.push_str("<h2>Attributes and audits</h2>");
    let attrs: Vec<Vec<String>> =
        pr.attributes.iter().map(|a| vec![esc(&a.key), esc(&a.value)]).collect();
    body.push_str(&html::table(
        "Attributes it declares",
        &["Key", "Value"],
        &attrs,
        "It declares no attribute.",
    ));
    let audits: Vec<Vec<String>> = record
        .audits
        .iter()
        .map(|a| {
            let signed = a
                .attributes
                .iter()
                .map(|x| format!("{}={}", esc(&x.key), esc(&x.value)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![html::account_link(&a.auditor), signed]
        })
        .collect();
    body.push_str(&html::table(
        "Attributes auditors signed",
        &["Auditor", "Attributes"],
        &audits,
        "No auditor signed its attributes.",
    ));

    body.push_str("<h2>GPUs and prices</h2>");
    // A provider that did not answer the last poll is not waited for again: the page says
    // why it failed then.
    let failed_at_poll = summary
        .and_then(|s| s.extra.as_ref())
        .and_then(|e| e.status.as_ref().err())
        .map(|e| format!("{e} (at the console's last poll)"));
    let status = match failed_at_poll {
        Some(e) => Err(e),
        None => tokio::time::timeout(STATUS_TIMEOUT, async {
            let api = ProviderApi::from_chain(&console.client, &address, None)
                .await
                .map_err(|e| e.to_string())?;
            api.status().await.map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|_| Err("it did not answer within 3 s".into())),
    };
    match status {
        Ok(s) => {
            let mut by_model: std::collections::BTreeMap<(String, String, String), u32> =
                Default::default();
            for g in &s.inventory.gpus {
                *by_model
                    .entry((g.model.clone(), g.ram.clone(), g.interface.clone()))
                    .or_default() += 1;
            }
            let rows: Vec<Vec<String>> = by_model
                .iter()
                .map(|((model, ram, iface), n)| {
                    let free = s.free.gpus.get(model).copied().unwrap_or(0);
                    let price = s.pricing.gpu.get(model).unwrap_or(&s.pricing.gpu_default);
                    vec![
                        esc(model),
                        esc(ram),
                        esc(iface),
                        int(*n),
                        int(free.min(*n)),
                        format!("{} {}", esc(price), esc(&s.pricing.denom)),
                    ]
                })
                .collect();
            let _ =
                write!(body, "<p>Its daemon ({}) follows block {}.</p>", esc(&s.driver), s.height);
            body.push_str(&html::table(
                "GPUs in its inventory",
                &["Model", "Memory", "Interface", "Units", "Free", "Price per GPU per block"],
                &rows,
                "It has no GPU.",
            ));
            let decisions: Vec<Vec<String>> = s
                .recent_decisions
                .iter()
                .take(10)
                .map(|d| {
                    vec![esc(&d.order), int(d.height), badge(d.outcome.name()), esc(&d.detail)]
                })
                .collect();
            body.push_str(&html::table(
                "Its latest bid decisions",
                &["Order", "Height", "Decision", "Detail"],
                &decisions,
                "It has decided on no order lately.",
            ));
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"warn\">Its public status could not be read: {}</p>",
                esc(&e)
            );
        }
    }

    body.push_str("<h2>Leases</h2>");
    let query = ListQuery {
        provider: Some(address),
        limit: Some(PAGE_SIZE),
        cursor: p.cursor.clone(),
        ..Default::default()
    };
    let page: LeasesPage = console.client.page("/leases", &query).await?;
    let rows: Vec<Vec<String>> = page
        .leases
        .iter()
        .map(|l| {
            vec![
                html::lease_link(&l.id),
                html::account_link(&l.id.order.owner),
                super::coin(&l.price),
                lease_state(&l.state),
                html::block_link(l.created_at),
                earned.by_lease.get(&l.id).map_or("—".into(), |e| {
                    format!("{} {}", dec(*e, 2), esc(l.price.denom.as_str()))
                }),
            ]
        })
        .collect();
    body.push_str(&html::table(
        "Its leases",
        &["Lease", "Tenant", "Price per block", "State", "Created at", "Earned"],
        &rows,
        "It has held no lease.",
    ));
    body.push_str(&pager(
        &format!("/providers/{address}"),
        "",
        p.cursor.as_deref(),
        page.next_cursor.as_deref(),
    ));
    let title = format!("Provider {}", html::short(&address.to_string()));
    Ok(html_response(html::page(&title, Section::Providers, console.height(), &body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridlease_types::Attribute;
    use gridlease_types::msg::ProviderInfo;

    /// A provider names itself, its host and its attributes: all of it reaches the page as
    /// text, never as markup.
    #[test]
    fn attack_a_provider_s_own_words_are_escaped() {
        let p = Provider {
            owner: Address([7; 20]),
            host_uri: "https://x\"><script>alert(1)</script>:8443".into(),
            attributes: vec![Attribute {
                key: "region".into(),
                value: "<img src=x onerror=alert(1)>".into(),
            }],
            info: ProviderInfo { email: "<b>".into(), website: "javascript:alert(1)".into() },
            created_at: 1,
        };
        let cells = row(&p, None).join("");
        assert!(!cells.contains("<script") && !cells.contains("<img"), "{cells}");
        assert!(cells.contains("&lt;script&gt;") && cells.contains("&lt;img src=x"), "{cells}");
        let summary = ProviderSummary {
            provider: p,
            active_leases: 0,
            leases_served: 0,
            leased_gpus: 0,
            gpu_models: Default::default(),
            billed: Default::default(),
            extra: None,
        };
        assert!(matches(&summary, "onerror"));
    }
}
