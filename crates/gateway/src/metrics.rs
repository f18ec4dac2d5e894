//! Prometheus metrics: requests and errors by route, replica and outcome; latency and time to
//! first token by route; streams broken after they started.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::balancer::Pool;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default, Debug, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default, Debug)]
struct Inner {
    /// (route, replica, outcome) → requests.
    outcomes: BTreeMap<(String, String, String), u64>,
    latency: BTreeMap<String, Histogram>,
    ttft: BTreeMap<String, Histogram>,
    broken: BTreeMap<(String, String), u64>,
    /// (route, key) → tokens the replicas reported.
    tokens: BTreeMap<(String, String), u64>,
}

/// What the gateway counts.
#[derive(Default, Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request ended: `outcome` is `ok` or an error code; `replica` is empty when none took it.
    pub fn finished(&self, route: &str, replica: &str, outcome: &str, took: Duration) {
        let mut m = self.inner();
        *m.outcomes.entry((route.into(), replica.into(), outcome.into())).or_default() += 1;
        m.latency.entry(route.into()).or_default().observe(took);
    }

    pub fn first_token(&self, route: &str, after: Duration) {
        self.inner().ttft.entry(route.into()).or_default().observe(after);
    }

    pub fn tokens(&self, route: &str, key: &str, n: u64) {
        *self.inner().tokens.entry((route.into(), key.into())).or_default() += n;
    }

    pub fn stream_broken(&self, route: &str, replica: &str) {
        *self.inner().broken.entry((route.into(), replica.into())).or_default() += 1;
    }

    /// The Prometheus text exposition, with each replica's state from `pools`.
    pub fn render<'a>(
        &self,
        pools: impl Iterator<Item = (&'a String, &'a std::sync::Arc<Pool>)>,
        keys: &crate::keys::Keys,
    ) -> String {
        let m = self.inner();
        let mut out = String::new();
        out.push_str("# HELP gridlease_gateway_tokens_total Tokens the replicas reported used, by route and key.\n# TYPE gridlease_gateway_tokens_total counter\n");
        for ((route, key), n) in &m.tokens {
            let _ = writeln!(
                out,
                "gridlease_gateway_tokens_total{{route=\"{route}\",key=\"{key}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_key_budget_remaining_tokens Tokens a key may still use (keys with a budget).\n# TYPE gridlease_gateway_key_budget_remaining_tokens gauge\n");
        for (name, used, budget) in keys.usage() {
            if let Some(b) = budget {
                let left = b.saturating_sub(used);
                let _ = writeln!(
                    out,
                    "gridlease_gateway_key_budget_remaining_tokens{{key=\"{name}\"}} {left}"
                );
            }
        }
        out.push_str("# HELP gridlease_gateway_requests_total Requests by route, replica and outcome (ok or error code).\n# TYPE gridlease_gateway_requests_total counter\n");
        for ((route, replica, outcome), n) in &m.outcomes {
            let _ = writeln!(
                out,
                "gridlease_gateway_requests_total{{route=\"{route}\",replica=\"{replica}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_request_seconds Time from request to the end of the answer.\n# TYPE gridlease_gateway_request_seconds histogram\n");
        for (route, h) in &m.latency {
            h.render(&mut out, "gridlease_gateway_request_seconds", &format!("route=\"{route}\""));
        }
        out.push_str("# HELP gridlease_gateway_time_to_first_token_seconds Time from request to the first streamed bytes.\n# TYPE gridlease_gateway_time_to_first_token_seconds histogram\n");
        for (route, h) in &m.ttft {
            h.render(
                &mut out,
                "gridlease_gateway_time_to_first_token_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP gridlease_gateway_streams_broken_total Streams that broke after they started (ended with an error event).\n# TYPE gridlease_gateway_streams_broken_total counter\n");
        for ((route, replica), n) in &m.broken {
            let _ = writeln!(
                out,
                "gridlease_gateway_streams_broken_total{{route=\"{route}\",replica=\"{replica}\"}} {n}"
            );
        }
        out.push_str("# HELP gridlease_gateway_replica_ejected Whether the replica is ejected now (1) or takes traffic (0).\n# TYPE gridlease_gateway_replica_ejected gauge\n");
        out.push_str("# HELP gridlease_gateway_replica_outstanding Requests in flight on the replica.\n# TYPE gridlease_gateway_replica_outstanding gauge\n");
        let now = std::time::Instant::now();
        for (route, pool) in pools {
            for r in pool.replicas() {
                let labels = format!("route=\"{route}\",replica=\"{}\"", r.name);
                let _ = writeln!(
                    out,
                    "gridlease_gateway_replica_ejected{{{labels}}} {}",
                    u8::from(r.is_ejected(now))
                );
                let _ = writeln!(
                    out,
                    "gridlease_gateway_replica_outstanding{{{labels}}} {}",
                    r.outstanding()
                );
            }
        }
        out
    }
}
