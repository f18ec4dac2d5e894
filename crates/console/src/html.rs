//! HTML building blocks: escaping (everything a provider, tenant or node says is hostile
//! text), the page shell with its navigation and search box, and the formats of amounts,
//! heights and durations.

use std::fmt::Write as _;

use gridlease_types::{Address, BidId, DecAmount};

/// `s` as HTML text or attribute value: `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value, percent-encoded (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Market,
    Providers,
    Deployments,
    Leases,
    Blocks,
    None,
}

/// A whole page: `title`, the navigation with `section` marked current, and `body` (HTML).
pub fn page(title: &str, section: Section, height: u64, body: &str) -> String {
    let nav = [
        (Section::Market, "/", "Market"),
        (Section::Providers, "/providers", "Providers"),
        (Section::Deployments, "/deployments", "Deployments"),
        (Section::Leases, "/leases", "Leases"),
        (Section::Blocks, "/blocks", "Chain"),
    ];
    let mut links = String::new();
    for (s, href, label) in nav {
        let current = if s == section { " aria-current=\"page\"" } else { "" };
        let _ = write!(links, "<li><a href=\"{href}\"{current}>{label}</a></li>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · gridlease console</title>\
<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/console.css\">\
<script src=\"/assets/console.js\" defer></script></head>\
<body><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><nav aria-label=\"Sections\"><a class=\"brand\" href=\"/\">gridlease</a><ul>{links}</ul></nav>\
<form class=\"search\" role=\"search\" action=\"/search\" method=\"get\">\
<label for=\"q\">Search</label>\
<input id=\"q\" name=\"q\" type=\"search\" placeholder=\"address, dseq or block height\" required>\
<button type=\"submit\">Go</button></form>\
<p class=\"tip\">Block <a id=\"tip\" href=\"/blocks/{height}\" data-height=\"{height}\">{height}</a></p>\
</header><main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main>\
<footer><p>Read-only view of the chain and of the providers' public status. No keys in the browser.</p></footer>\
</body></html>",
        title = esc(title),
    )
}

/// A link to a provider's page, showing the address shortened.
pub fn provider_link(a: &Address) -> String {
    format!("<a href=\"/providers/{a}\" title=\"{a}\">{}</a>", short(&a.to_string()))
}

/// A link to an account's page, shortened.
pub fn account_link(a: &Address) -> String {
    format!("<a href=\"/accounts/{a}\" title=\"{a}\">{}</a>", short(&a.to_string()))
}

/// A link to a deployment's page.
pub fn deployment_link(owner: &Address, dseq: u64) -> String {
    format!("<a href=\"/deployments/{owner}/{dseq}\">{}/{dseq}</a>", short(&owner.to_string()))
}

/// The path of a lease's page.
pub fn lease_path(id: &BidId) -> String {
    let o = &id.order;
    format!("/leases/{}/{}/{}/{}/{}", o.owner, o.dseq, o.gseq, o.oseq, id.provider)
}

/// A link to a lease's page, named by its deployment, group and order.
pub fn lease_link(id: &BidId) -> String {
    let o = &id.order;
    format!("<a href=\"{}\">{}/{}/{}</a>", lease_path(id), o.dseq, o.gseq, o.oseq)
}

pub fn block_link(height: u64) -> String {
    format!("<a href=\"/blocks/{height}\">{height}</a>")
}

/// `grid1abcdef…wxyz`: the first 10 and last 4 characters of a long identifier.
pub fn short(s: &str) -> String {
    if s.len() <= 18 || !s.is_ascii() {
        return esc(s);
    }
    format!("{}…{}", &s[..10], &s[s.len() - 4..])
}

/// A decimal amount with at most `places` decimals, trailing zeros removed.
pub fn dec(amount: DecAmount, places: usize) -> String {
    let text = amount.to_string();
    let Some((int, frac)) = text.split_once('.') else { return text };
    let frac = frac[..places.min(frac.len())].trim_end_matches('0');
    let int = group_thousands(int);
    if frac.is_empty() { int } else { format!("{int}.{frac}") }
}

/// `1234567` as `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn int(n: impl Into<u128>) -> String {
    group_thousands(&n.into().to_string())
}

/// A float with `places` decimals, or a dash when it is not a number.
pub fn num(x: f64, places: usize) -> String {
    if x.is_finite() { format!("{x:.places$}") } else { "—".to_string() }
}

/// Seconds as `3d 4h`, `5h 12m`, `7m 3s` or `42s`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "—".to_string();
    }
    let s = seconds as u64;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// A state name as a badge (`class` picks its colour, the text says it for everyone).
pub fn badge(text: &str) -> String {
    let class = match text {
        "active" | "open" | "won" | "valid" | "up" | "bid" => "ok",
        "closed" | "revoked" | "down" | "failed" => "bad",
        _ => "neutral",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// A definition list from (term, HTML description) pairs.
pub fn facts(items: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (term, value) in items {
        let _ = write!(out, "<div><dt>{}</dt><dd>{value}</dd></div>", esc(term));
    }
    out.push_str("</dl>");
    out
}

/// A table: a caption, header cells and rows of HTML cells. Empty rows say `empty` instead.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = format!(
        "<div class=\"scroll\" role=\"region\" aria-label=\"{0}\" tabindex=\"0\"><table><caption>{0}</caption><thead><tr>",
        esc(caption)
    );
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn amounts_and_durations_read_well() {
        let a: DecAmount = "1234567.500000000000000000".parse().unwrap();
        assert_eq!(dec(a, 2), "1,234,567.5");
        assert_eq!(dec(DecAmount::ZERO, 4), "0");
        assert_eq!(group_thousands("100"), "100");
        assert_eq!(group_thousands("1000"), "1,000");
        assert_eq!(duration(90_061.0), "1d 1h");
        assert_eq!(duration(3_725.0), "1h 2m");
        assert_eq!(duration(61.0), "1m 1s");
        assert_eq!(duration(f64::INFINITY), "—");
        assert_eq!(short("grid1qqqqqqqqqqqqqqqqqqqqqqqqqqq"), "grid1qqqqq…qqqq");
    }

    #[test]
    fn empty_tables_say_so() {
        assert!(table("Leases", &["a"], &[], "no leases").contains("no leases"));
        let t = table("Leases", &["a"], &[vec!["<b>x</b>".into()]], "none");
        assert!(t.contains("<caption>Leases</caption>") && t.contains("<td><b>x</b></td>"));
    }
}
